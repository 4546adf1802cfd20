//go:build vmguest

package guest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sgIOHdr is struct sg_io_hdr of <scsi/sg.h>. Its buffers are
// unsafe.Pointers, not uintptrs, so that the collector keeps them where
// the kernel reads and writes them until SG_IO returns.
type sgIOHdr struct {
	interfaceID    int32
	dxferDirection int32
	cmdLen         uint8
	mxSbLen        uint8
	iovecCount     uint16
	dxferLen       uint32
	dxferp         unsafe.Pointer
	cmdp           unsafe.Pointer
	sbp            unsafe.Pointer
	timeout        uint32
	flags          uint32
	packID         int32
	usrPtr         unsafe.Pointer
	status         uint8
	maskedStatus   uint8
	msgStatus      uint8
	sbLenWr        uint8
	hostStatus     uint16
	driverStatus   uint16
	resid          int32
	duration       uint32
	info           uint32
}

// The kernel's layout of sg_io_hdr by pointer size: 88 bytes on 64-bit
// (x86-64, arm64, riscv64), 64 on 32-bit (armhf, i386), where the four
// pointers shrink and the padding before them and usr_ptr goes. A field out
// of place sends the kernel garbage; the guest tests run on both.
var sgIOHdrLayout = map[uintptr]struct{ size, dxferp, timeout, usrPtr, status, info uintptr }{
	8: {88, 16, 40, 56, 64, 80},
	4: {64, 16, 28, 40, 44, 60},
}

func TestSgIOHdrLayout(t *testing.T) {
	var h sgIOHdr
	want, ok := sgIOHdrLayout[unsafe.Sizeof(uintptr(0))]
	if !ok {
		t.Fatalf("no sg_io_hdr layout for %d-byte pointers", unsafe.Sizeof(uintptr(0)))
	}
	got := struct{ size, dxferp, timeout, usrPtr, status, info uintptr }{unsafe.Sizeof(h),
		unsafe.Offsetof(h.dxferp), unsafe.Offsetof(h.timeout), unsafe.Offsetof(h.usrPtr), unsafe.Offsetof(h.status), unsafe.Offsetof(h.info)}
	if got != want {
		t.Errorf("sg_io_hdr (size, dxferp, timeout, usr_ptr, status, info) = %v, the kernel's is %v", got, want)
	}
}

// didError is the host's status for a command that ended in its reset
// recovery (a phase error).
const didError = 0x07

const (
	sgIO           = 0x2285
	sgDxferNone    = -1
	sgDxferToDev   = -2
	sgDxferFromDev = -3
)

// answer is what a device made of one command: its SCSI status, the sense
// key, code and qualifier of a CHECK CONDITION, and the data it sent; and
// the host's own status when the transport failed (a phase error ends in
// the host's reset recovery and DID_ERROR).
type answer struct {
	status byte
	sense  [3]byte
	data   []byte
	host   uint16
}

func (a answer) String() string {
	s := fmt.Sprintf("status %#02x", a.status)
	if a.host != 0 {
		s += fmt.Sprintf(" host status %#x", a.host)
	}
	if a.status != 0 {
		s += fmt.Sprintf(" sense %02x/%02x/%02x", a.sense[0], a.sense[1], a.sense[2])
	}
	if a.data != nil {
		if len(a.data) > 48 {
			s += fmt.Sprintf(" data(%d, sha256 %.8x) % x ...", len(a.data), sha256.Sum256(a.data), a.data[:48])
		} else {
			s += fmt.Sprintf(" data(%d) % x", len(a.data), a.data)
		}
	}
	return s
}

// sgCommand sends cdb to dev through SG_IO: in bytes come back from the
// device, out bytes go to it (at most one of the two).
func sgCommand(dev string, cdb []byte, in int, out []byte) (answer, error) {
	f, err := os.OpenFile(dev, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return answer{}, err
	}
	defer f.Close()
	sense := make([]byte, 64)
	h := sgIOHdr{interfaceID: 'S', dxferDirection: sgDxferNone, cmdLen: uint8(len(cdb)),
		mxSbLen: uint8(len(sense)), cmdp: unsafe.Pointer(&cdb[0]), sbp: unsafe.Pointer(&sense[0]), timeout: 20000}
	var buf []byte
	switch {
	case in > 0:
		buf = make([]byte, in)
		h.dxferDirection, h.dxferLen, h.dxferp = sgDxferFromDev, uint32(in), unsafe.Pointer(&buf[0])
	case len(out) > 0:
		h.dxferDirection, h.dxferLen, h.dxferp = sgDxferToDev, uint32(len(out)), unsafe.Pointer(&out[0])
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), sgIO, uintptr(unsafe.Pointer(&h))); e != 0 {
		return answer{}, fmt.Errorf("SG_IO on %s: %w", dev, e)
	}
	a := answer{status: h.status, host: h.hostStatus}
	if sb := sense[:h.sbLenWr]; len(sb) >= 14 && sb[0]&0x7f >= 0x70 && sb[0]&0x7f <= 0x71 {
		a.sense = [3]byte{sb[2] & 0x0f, sb[12], sb[13]}
	} else if len(sb) >= 4 && sb[0]&0x7f >= 0x72 {
		a.sense = [3]byte{sb[1] & 0x0f, sb[2], sb[3]}
	}
	if in > 0 {
		a.data = buf[:in-int(h.resid)]
	}
	return a, nil
}

// scsiCase is one command sent to both drives.
type scsiCase struct {
	name string
	cdb  []byte
	in   int    // bytes the host asks back
	out  []byte // bytes the host sends
	// first is sent just before, its answer not compared.
	first []byte
	// unlike says why msdav answers otherwise than f_mass_storage; its
	// answer must then be want, or GOOD with some data when wantSome.
	unlike   string
	want     answer
	wantSome bool
}

// good is a GOOD answer with data; checkCond a CHECK CONDITION.
func good(data []byte) answer { return answer{data: data} }

func checkCond(key, asc, ascq byte) answer {
	return answer{status: 0x02, sense: [3]byte{key, asc, ascq}}
}

// equal: the same status, sense, data and host status.
func (a answer) equal(b answer) bool {
	return a.status == b.status && a.sense == b.sense && bytes.Equal(a.data, b.data) && a.host == b.host
}

func (c scsiCase) wanted(a answer) bool {
	if c.wantSome {
		return a.status == 0 && len(a.data) > 0
	}
	return a.equal(c.want)
}

// scsiAnswersMatchKernel sends the same commands to a drive of each
// backend, the same image in both, and holds msdav's own target to the
// kernel's f_mass_storage: the same status, sense and data, or the answer
// a case names with the reason they differ. A case whose answers come to
// agree fails too, so the list of differences stays true.
func scsiAnswersMatchKernel(t *testing.T) {
	const blocks = 8192 // 4 MiB of 512-byte blocks
	img := make([]byte, blocks*512)
	for i := range img {
		img[i] = byte(i*7 + i>>9)
	}
	if err := os.WriteFile("/tmp/scsidiff.img", img, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "cp", "/fixtures/test.iso", "/tmp/scsidiff.iso")
	iso, _ := os.Stat("/tmp/scsidiff.iso")
	k := startBackendBox(t, "K", "8091", "dummy_udc.0", "kernel")
	u := startBackendBox(t, "U", "8092", "dummy_udc.1", "userspace")
	for _, b := range []*box{k, u} {
		b.link(t, "/tmp/scsidiff.img", "disk.img")
		b.link(t, "/tmp/scsidiff.iso", "cd.iso")
		// Each its own copy to write to.
		if err := os.WriteFile("/tmp/box"+b.name+"/rw.img", img, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	defer stopBackendBoxes(t, k, u)

	attach := func(t *testing.T, body string, size int64) (kd, ud string) {
		t.Helper()
		devs := map[string]string{}
		for _, x := range []struct {
			b   *box
			bus string
		}{{k, "usb1"}, {u, "usb2"}} {
			if code, out := x.b.do(t, "PUT", "/api/drives/0", body); code != 200 {
				t.Fatalf("attach %s on box %s: %d %s", body, x.b.name, code, out)
			}
			devs[x.b.name], _ = waitBlockOnBus(t, "box "+x.b.name+"'s drive on "+x.bus, x.bus, size, 30*time.Second)
		}
		return devs["K"], devs["U"]
	}
	compare := func(t *testing.T, kd, ud string, cases []scsiCase) {
		for _, c := range cases {
			var got [2]answer
			for i, dev := range []string{kd, ud} {
				// A pending unit attention (the medium just changed) would
				// answer the first command; both drives report it, so clear it.
				for range 3 {
					sgCommand(dev, []byte{0, 0, 0, 0, 0, 0}, 0, nil)
				}
				if c.first != nil {
					sgCommand(dev, c.first, 0, nil)
				}
				a, err := sgCommand(dev, c.cdb, c.in, c.out)
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				got[i] = a
			}
			same := got[0].equal(got[1])
			switch {
			case c.unlike == "" && !same:
				t.Errorf("%s (% x):\n  f_mass_storage: %v\n  msdav:          %v", c.name, c.cdb, got[0], got[1])
			case c.unlike != "" && same:
				t.Errorf("%s: both answer %v now; the difference (%s) is gone", c.name, got[0], c.unlike)
			case c.unlike != "" && !c.wanted(got[1]):
				t.Errorf("%s (% x): msdav answers %v, want %v (some data: %v)", c.name, c.cdb, got[1], c.want, c.wantSome)
			case c.unlike != "":
				t.Logf("%s: unlike f_mass_storage (%v), as %s: %v", c.name, got[0], c.unlike, got[1])
			default:
				t.Logf("%s: both %v", c.name, got[0])
			}
		}
	}

	t.Run("flash, read-only", func(t *testing.T) {
		kd, ud := attach(t, `{"image":"disk.img","cdrom":false}`, int64(len(img)))
		compare(t, kd, ud, diskCases(blocks, img))
	})
	t.Run("flash, read-write", func(t *testing.T) {
		kd, ud := attach(t, `{"image":"rw.img","cdrom":false,"rw":true}`, int64(len(img)))
		compare(t, kd, ud, rwCases(blocks, img))
	})
	t.Run("CD", func(t *testing.T) {
		kd, ud := attach(t, `{"image":"cd.iso","cdrom":true}`, iso.Size())
		compare(t, kd, ud, cdCases(iso.Size()/2048))
		for _, b := range []*box{k, u} {
			if code, out := b.do(t, "DELETE", "/api/drives/0", ""); code != 200 {
				t.Fatalf("eject on box %s: %d %s", b.name, code, out)
			}
		}
		waitFor(t, "both CD drives empty", 30*time.Second, func() bool { return deviceSize(kd) == 0 && deviceSize(ud) == 0 })
		compare(t, kd, ud, emptyCases())
	})
}

func be32b(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

func cdb10(op byte, lba uint32, n uint16) []byte {
	return append(append([]byte{op, 0}, be32b(lba)...), 0, byte(n>>8), byte(n), 0)
}

// Where msdav is meant to answer otherwise than f_mass_storage.
const (
	whyInquiry = "msdav's drives name themselves (gadget.inquiry sets the kernel's) and claim SPC-3, f_mass_storage SCSI-2"
	whyVPD     = "msdav has the VPD pages SPC-3 requires (supported pages, serial, device identification)"
	whyRange   = "SBC: a transfer running past the capacity is refused whole; f_mass_storage moves the blocks before it first"
	whyCaching = "msdav's caching page is SBC's 18-byte one, f_mass_storage's the 10-byte SCSI-2 page"
	whySubpage = "SPC: subpage FFh of page 3Fh is all pages and subpages, which are these pages"
	whySelect  = "MODE SELECT is in the command set the issue names; no page has a changeable field, so it keeps nothing"
	whyLUNs    = "SPC-3 requires REPORT LUNS"
	whyMMC     = "MMC commands f_mass_storage does not have, which a DVD needs for BIOS, UEFI and Windows"
	whySync16  = "SBC-3's SYNCHRONIZE CACHE(16), which f_mass_storage does not have"
	whyLeadOut = "MMC: a TOC from track AAh is the lead-out alone; f_mass_storage refuses it"
	whySession = "MMC: format 1 is the session information; f_mass_storage answers it as format 0"
	whyFullTOC = "MMC: the full TOC has a descriptor per track too; f_mass_storage gives only points A0h to A2h"
	whyCase7   = "BOT case 7: f_mass_storage sends the host's 512 bytes before its phase error, msdav stalls at once; the host's reset recovery discards both (DID_ERROR)"
	whyCase13  = "BOT case 13: msdav writes nothing of a WRITE whose data the host sends too little of, f_mass_storage writes what came; the host sees an error either way"
	whyPolled  = "SPC-4: REQUEST SENSE reports a not-ready condition that holds (no medium); f_mass_storage reports none"
)

var (
	inquiryFlash = append([]byte{0, 0x80, 5, 2, 31, 0, 0, 0}, "msdav   Virtual Flash   1.00"...)
	inquiryCD    = append([]byte{5, 0x80, 5, 2, 31, 0, 0, 0}, "msdav   Virtual DVD-ROM 1.00"...)
	cachingPage  = []byte{0x08, 18, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
)

func diskCases(blocks int, img []byte) []scsiCase {
	last := uint32(blocks - 1)
	block := func(n int) []byte { return img[n*512 : (n+1)*512] }
	modeRO := append([]byte{23, 0, 0x80, 0}, cachingPage...)
	return []scsiCase{
		{name: "TEST UNIT READY", cdb: []byte{0x00, 0, 0, 0, 0, 0}},
		{name: "INQUIRY", cdb: []byte{0x12, 0, 0, 0, 36, 0}, in: 36, unlike: whyInquiry, want: good(inquiryFlash)},
		{name: "INQUIRY, 96 bytes asked", cdb: []byte{0x12, 0, 0, 0, 96, 0}, in: 96, unlike: whyInquiry, want: good(inquiryFlash)},
		{name: "INQUIRY, 5 bytes asked", cdb: []byte{0x12, 0, 0, 0, 5, 0}, in: 5, unlike: whyInquiry, want: good(inquiryFlash[:5])},
		{name: "INQUIRY VPD 0x00", cdb: []byte{0x12, 1, 0x00, 0, 255, 0}, in: 255, unlike: whyVPD, want: good([]byte{0, 0, 0, 3, 0, 0x80, 0x83})},
		{name: "INQUIRY VPD 0x80", cdb: []byte{0x12, 1, 0x80, 0, 255, 0}, in: 255, unlike: whyVPD, want: good(append([]byte{0, 0x80, 0, 8}, "msdav0-0"...))},
		{name: "INQUIRY VPD 0x83", cdb: []byte{0x12, 1, 0x83, 0, 255, 0}, in: 255, unlike: whyVPD, want: good(append([]byte{0, 0x83, 0, 20, 2, 1, 0, 16}, "msdav   msdav0-0"...))},
		{name: "INQUIRY VPD 0xb0", cdb: []byte{0x12, 1, 0xb0, 0, 255, 0}, in: 255},
		{name: "INQUIRY page code without EVPD", cdb: []byte{0x12, 0, 0x80, 0, 255, 0}, in: 255},
		{name: "REQUEST SENSE", cdb: []byte{0x03, 0, 0, 0, 18, 0}, in: 18},
		{name: "REQUEST SENSE after an invalid opcode", first: []byte{0x02, 0, 0, 0, 0, 0}, cdb: []byte{0x03, 0, 0, 0, 18, 0}, in: 18},
		{name: "READ CAPACITY(10)", cdb: []byte{0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0}, in: 8},
		{name: "READ CAPACITY(16)", cdb: []byte{0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0}, in: 32},
		{name: "READ FORMAT CAPACITIES", cdb: []byte{0x23, 0, 0, 0, 0, 0, 0, 0, 252, 0}, in: 252},
		{name: "READ(10) of block 0", cdb: cdb10(0x28, 0, 1), in: 512},
		{name: "READ(10) of the last block", cdb: cdb10(0x28, last, 1), in: 512},
		{name: "READ(10) of 64 KiB", cdb: cdb10(0x28, 100, 128), in: 64 << 10},
		{name: "READ(10) of no blocks", cdb: cdb10(0x28, 5, 0)},
		{name: "READ(10) past the end", cdb: cdb10(0x28, last, 2), in: 1024, unlike: whyRange, want: checkCond(5, 0x21, 0)},
		{name: "READ(10) at the capacity", cdb: cdb10(0x28, last+1, 1), in: 512},
		{name: "READ(6) of block 3", cdb: []byte{0x08, 0, 0, 3, 1, 0}, in: 512},
		{name: "READ(12) of block 3", cdb: append(append([]byte{0xa8, 0}, be32b(3)...), 0, 0, 0, 1, 0, 0), in: 512},
		{name: "READ(16) of block 3", cdb: append(append([]byte{0x88, 0, 0, 0, 0, 0}, be32b(3)...), 0, 0, 0, 1, 0, 0), in: 512},
		{name: "READ(10) with FUA", cdb: append([]byte{0x28, 0x08}, cdb10(0x28, 3, 1)[2:]...), in: 512},
		{name: "WRITE(10) to a read-only medium", cdb: cdb10(0x2a, 3, 1), out: make([]byte, 512)},
		{name: "VERIFY(10)", cdb: cdb10(0x2f, 3, 8)},
		{name: "VERIFY(10) past the end", cdb: cdb10(0x2f, last, 2)},
		{name: "VERIFY(10) with BYTCHK", cdb: append([]byte{0x2f, 0x02}, cdb10(0x2f, 3, 1)[2:]...), out: block(3)},
		{name: "SYNCHRONIZE CACHE(10)", cdb: []byte{0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{name: "MODE SENSE(6), all pages", cdb: []byte{0x1a, 0, 0x3f, 0, 255, 0}, in: 255, unlike: whyCaching, want: good(modeRO)},
		{name: "MODE SENSE(6), all pages, DBD", cdb: []byte{0x1a, 0x08, 0x3f, 0, 255, 0}, in: 255, unlike: whyCaching, want: good(modeRO)},
		{name: "MODE SENSE(6), caching page", cdb: []byte{0x1a, 0, 0x08, 0, 255, 0}, in: 255, unlike: whyCaching, want: good(modeRO)},
		{name: "MODE SENSE(6), changeable caching page", cdb: []byte{0x1a, 0, 0x48, 0, 255, 0}, in: 255, unlike: whyCaching,
			want: good(append([]byte{23, 0, 0x80, 0, 0x08, 18}, make([]byte, 18)...))},
		{name: "MODE SENSE(6), saved values", cdb: []byte{0x1a, 0, 0xc8, 0, 255, 0}, in: 255},
		{name: "MODE SENSE(6), a page not there", cdb: []byte{0x1a, 0, 0x15, 0, 255, 0}, in: 255},
		{name: "MODE SENSE(6), 4 bytes asked", cdb: []byte{0x1a, 0, 0x3f, 0, 4, 0}, in: 4, unlike: whyCaching, want: good(modeRO[:4])},
		{name: "MODE SENSE(10), all pages", cdb: []byte{0x5a, 0, 0x3f, 0, 0, 0, 0, 0, 255, 0}, in: 255, unlike: whyCaching,
			want: good(append([]byte{0, 26, 0, 0x80, 0, 0, 0, 0}, cachingPage...))},
		{name: "MODE SENSE(6), all subpages", cdb: []byte{0x1a, 0, 0x3f, 0xff, 255, 0}, in: 255, unlike: whySubpage, want: good(modeRO)},
		{name: "MODE SENSE(6), a subpage not there", cdb: []byte{0x1a, 0, 0x08, 0x01, 255, 0}, in: 255},
		{name: "MODE SELECT(6), header only", cdb: []byte{0x15, 0x10, 0, 0, 4, 0}, out: []byte{0, 0, 0, 0}, unlike: whySelect, want: answer{}},
		{name: "PREVENT MEDIUM REMOVAL", cdb: []byte{0x1e, 0, 0, 0, 1, 0}},
		{name: "ALLOW MEDIUM REMOVAL", cdb: []byte{0x1e, 0, 0, 0, 0, 0}},
		{name: "START STOP UNIT, start", cdb: []byte{0x1b, 0, 0, 0, 1, 0}},
		{name: "REPORT LUNS", cdb: []byte{0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 0, 0}, in: 255, unlike: whyLUNs, want: good([]byte{0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})},
		{name: "an opcode nobody has (0x02)", cdb: []byte{0x02, 0, 0, 0, 0, 0}},
		{name: "READ TOC on a disk", cdb: []byte{0x43, 0, 0, 0, 0, 0, 0, 0, 255, 0}, in: 255},
		{name: "GET CONFIGURATION on a disk", cdb: []byte{0x46, 0, 0, 0, 0, 0, 0, 0, 255, 0}, in: 255},
		// The thirteen cases of the Bulk-Only spec: the host's transfer
		// (SG_IO's) against the device's (the CDB's). The TEST UNIT READYs
		// before each case show the drive back after the host's recovery.
		{name: "BOT case 2, Hn < Di: INQUIRY of 36, the host moves nothing", cdb: []byte{0x12, 0, 0, 0, 36, 0}},
		{name: "BOT case 3, Hn < Do: WRITE(10) of 1 block, the host moves nothing", cdb: cdb10(0x2a, 3, 1)},
		{name: "BOT case 4, Hi > Dn: TEST UNIT READY, the host reads 512", cdb: []byte{0x00, 0, 0, 0, 0, 0}, in: 512},
		{name: "BOT case 5, Hi > Di: INQUIRY of 36, the host reads 512", cdb: []byte{0x12, 0, 0, 0, 36, 0}, in: 512, unlike: whyInquiry, want: good(inquiryFlash)},
		{name: "BOT case 6, Hi = Di: READ(10) of 1 block", cdb: cdb10(0x28, 3, 1), in: 512},
		{name: "BOT case 7, Hi < Di: READ(10) of 2 blocks, the host reads 512", cdb: cdb10(0x28, 3, 2), in: 512, unlike: whyCase7, want: answer{host: didError}},
		{name: "BOT case 8, Hi <> Do: WRITE(10), the host reads", cdb: cdb10(0x2a, 3, 1), in: 512},
		{name: "BOT case 9, Ho > Dn: TEST UNIT READY, the host sends 512", cdb: []byte{0x00, 0, 0, 0, 0, 0}, out: make([]byte, 512)},
		{name: "BOT case 10, Ho <> Di: READ(10), the host sends", cdb: cdb10(0x28, 3, 1), out: make([]byte, 512)},
		{name: "BOT case 10, Ho <> Di: INQUIRY, the host sends", cdb: []byte{0x12, 0, 0, 0, 36, 0}, out: make([]byte, 36)},
		{name: "the drive after the cases above", cdb: cdb10(0x28, 0, 1), in: 512},
	}
}

func rwCases(blocks int, img []byte) []scsiCase {
	last := uint32(blocks - 1)
	data := bytes.Repeat([]byte("msdav!"), 1024)[:1024]
	modeRW := append([]byte{23, 0, 0, 0}, cachingPage...)
	return []scsiCase{
		{name: "WRITE(10) of two blocks", cdb: cdb10(0x2a, 3, 2), out: data},
		{name: "READ(10) of them", cdb: cdb10(0x28, 3, 2), in: 1024},
		{name: "WRITE(6)", cdb: []byte{0x0a, 0, 0, 9, 1, 0}, out: data[:512]},
		{name: "WRITE(10) with FUA", cdb: append([]byte{0x2a, 0x08}, cdb10(0x2a, 11, 1)[2:]...), out: data[512:]},
		{name: "WRITE(16)", cdb: append(append([]byte{0x8a, 0, 0, 0, 0, 0}, be32b(13)...), 0, 0, 0, 1, 0, 0), out: data[:512]},
		{name: "READ(10) of what they wrote", cdb: cdb10(0x28, 9, 5), in: 2560},
		{name: "WRITE(10) of no blocks", cdb: cdb10(0x2a, 5, 0)},
		{name: "WRITE(10) at the capacity", cdb: cdb10(0x2a, last+1, 1), out: data[:512]},
		{name: "WRITE(10) past the end", cdb: cdb10(0x2a, last, 2), out: data, unlike: whyRange, want: checkCond(5, 0x21, 0)},
		{name: "SYNCHRONIZE CACHE(10)", cdb: []byte{0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{name: "SYNCHRONIZE CACHE(16)", cdb: []byte{0x91, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, unlike: whySync16, want: answer{}},
		{name: "MODE SENSE(6): not write-protected", cdb: []byte{0x1a, 0, 0x3f, 0, 255, 0}, in: 255, unlike: whyCaching, want: good(modeRW)},
		{name: "BOT case 11, Ho > Do: WRITE(10) of 1 block, the host sends 1024", cdb: cdb10(0x2a, 20, 1), out: data},
		{name: "BOT case 12, Ho = Do: WRITE(10) of 1 block", cdb: cdb10(0x2a, 21, 1), out: data[:512]},
		{name: "BOT case 13, Ho < Do: WRITE(10) of 2 blocks, the host sends 512", cdb: cdb10(0x2a, 22, 2), out: data[:512]},
		{name: "READ(10) of what cases 11 and 12 wrote", cdb: cdb10(0x28, 20, 2), in: 1024},
		{name: "READ(10) of what case 13 wrote", cdb: cdb10(0x28, 22, 2), in: 1024, unlike: whyCase13, want: good(img[22*512 : 24*512])},
	}
}

func cdCases(blocks int64) []scsiCase {
	last := uint32(blocks - 1)
	msf := func(c []byte) []byte { c[1] |= 0x02; return c }
	toc := func(format, track byte, n uint16) []byte {
		return []byte{0x43, 0, format, 0, 0, 0, track, byte(n >> 8), byte(n), 0}
	}
	return []scsiCase{
		{name: "TEST UNIT READY", cdb: []byte{0x00, 0, 0, 0, 0, 0}},
		{name: "INQUIRY", cdb: []byte{0x12, 0, 0, 0, 36, 0}, in: 36, unlike: whyInquiry, want: good(inquiryCD)},
		{name: "READ CAPACITY(10)", cdb: []byte{0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0}, in: 8},
		{name: "READ FORMAT CAPACITIES", cdb: []byte{0x23, 0, 0, 0, 0, 0, 0, 0, 252, 0}, in: 252},
		{name: "READ(10) of block 16 (the volume descriptor)", cdb: cdb10(0x28, 16, 1), in: 2048},
		{name: "READ(10) of the last block", cdb: cdb10(0x28, last, 1), in: 2048},
		{name: "READ(10) at the capacity", cdb: cdb10(0x28, last+1, 1), in: 2048},
		{name: "READ(12) of block 16", cdb: append(append([]byte{0xa8, 0}, be32b(16)...), 0, 0, 0, 1, 0, 0), in: 2048},
		{name: "READ(6)", cdb: []byte{0x08, 0, 0, 16, 1, 0}, in: 2048},
		{name: "WRITE(10)", cdb: cdb10(0x2a, 16, 1), out: make([]byte, 2048)},
		{name: "READ TOC, format 0", cdb: toc(0, 0, 255), in: 255},
		{name: "READ TOC, format 0, MSF", cdb: msf(toc(0, 0, 255)), in: 255},
		{name: "READ TOC, format 0, 12 bytes asked", cdb: toc(0, 0, 12), in: 12},
		{name: "READ TOC, format 0, from the lead-out", cdb: toc(0, 0xaa, 255), in: 255, unlike: whyLeadOut,
			want: good(append([]byte{0, 10, 1, 1, 0, 0x16, 0xaa, 0}, be32b(uint32(blocks))...))},
		{name: "READ TOC, format 0, from track 2", cdb: toc(0, 2, 255), in: 255},
		{name: "READ TOC, format 1 (sessions)", cdb: toc(1, 0, 255), in: 255, unlike: whySession,
			want: good([]byte{0, 10, 1, 1, 0, 0x16, 1, 0, 0, 0, 0, 0})},
		{name: "READ TOC, format 2 (raw)", cdb: msf(toc(2, 1, 255)), in: 255, unlike: whyFullTOC, wantSome: true},
		{name: "READ TOC, format 5", cdb: toc(5, 0, 255), in: 255},
		{name: "READ HEADER", cdb: []byte{0x44, 0, 0, 0, 0, 16, 0, 0, 8, 0}, in: 8},
		{name: "READ HEADER, MSF", cdb: []byte{0x44, 2, 0, 0, 0, 16, 0, 0, 8, 0}, in: 8},
		{name: "READ HEADER past the end", cdb: append(append([]byte{0x44, 0}, be32b(last+1)...), 0, 0, 8, 0), in: 8},
		{name: "PREVENT MEDIUM REMOVAL", cdb: []byte{0x1e, 0, 0, 0, 1, 0}},
		{name: "ALLOW MEDIUM REMOVAL", cdb: []byte{0x1e, 0, 0, 0, 0, 0}},
		{name: "SYNCHRONIZE CACHE(10)", cdb: []byte{0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{name: "GET CONFIGURATION", cdb: []byte{0x46, 0, 0, 0, 0, 0, 0, 0, 255, 0}, in: 255, unlike: whyMMC, wantSome: true},
		{name: "GET EVENT STATUS NOTIFICATION", cdb: []byte{0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0}, in: 8, unlike: whyMMC, wantSome: true},
		{name: "READ DISC INFORMATION", cdb: []byte{0x51, 0, 0, 0, 0, 0, 0, 0, 34, 0}, in: 34, unlike: whyMMC, wantSome: true},
		{name: "READ TRACK INFORMATION", cdb: []byte{0x52, 1, 0, 0, 0, 1, 0, 0, 36, 0}, in: 36, unlike: whyMMC, wantSome: true},
		{name: "MECHANISM STATUS", cdb: []byte{0xbd, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0}, in: 8, unlike: whyMMC, wantSome: true},
	}
}

// emptyCases are sent to CD drives with no disc.
func emptyCases() []scsiCase {
	return []scsiCase{
		{name: "TEST UNIT READY, no disc", cdb: []byte{0x00, 0, 0, 0, 0, 0}},
		{name: "INQUIRY, no disc", cdb: []byte{0x12, 0, 0, 0, 36, 0}, in: 36, unlike: whyInquiry, want: good(inquiryCD)},
		{name: "REQUEST SENSE, no disc", cdb: []byte{0x03, 0, 0, 0, 18, 0}, in: 18, unlike: whyPolled,
			want: good([]byte{0x70, 0, 2, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x3a, 0, 0, 0, 0, 0})},
		{name: "READ CAPACITY(10), no disc", cdb: []byte{0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0}, in: 8},
		{name: "READ(10), no disc", cdb: cdb10(0x28, 0, 1), in: 2048},
		{name: "READ TOC, no disc", cdb: []byte{0x43, 0, 0, 0, 0, 0, 0, 0, 255, 0}, in: 255},
		{name: "PREVENT MEDIUM REMOVAL, no disc", cdb: []byte{0x1e, 0, 0, 0, 1, 0}},
		{name: "ALLOW MEDIUM REMOVAL, no disc", cdb: []byte{0x1e, 0, 0, 0, 0, 0}},
	}
}
