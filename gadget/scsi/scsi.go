// Package scsi is the SCSI target of msdav's userspace drives: one logical unit
// that answers as a removable disk or an MMC CD/DVD drive over any medium.
package scsi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Medium is what a drive serves: a file, or an image fetched from a URL.
type Medium interface {
	io.ReaderAt
	io.WriterAt
	Size() int64
	Sync() error
}

// Block sizes: a CD/DVD has 2048-byte sectors, a disk 512-byte ones.
const (
	CDBlock   = 2048
	DiskBlock = 512
)

// CDMaxBlocks is the most a CD holds (80 min); a bigger disc is a DVD, so
// GET CONFIGURATION and READ DVD STRUCTURE answer as a DVD-ROM.
const CDMaxBlocks = 360000

// ErrLocked: the host prevents medium removal (PREVENT ALLOW MEDIUM REMOVAL).
var ErrLocked = errors.New("the host has locked the medium (it is mounted or in use there)")

// Sense is a sense key with its additional sense code and qualifier.
type Sense struct{ Key, ASC, ASCQ byte }

// Sense keys and the conditions this target reports.
var (
	NoSense             = Sense{}
	NotReadyNoMedium    = Sense{0x02, 0x3A, 0x00}
	MediumError         = Sense{0x03, 0x11, 0x00} // unrecovered read error
	WriteError          = Sense{0x03, 0x0C, 0x00}
	InvalidOpcode       = Sense{0x05, 0x20, 0x00}
	LBAOutOfRange       = Sense{0x05, 0x21, 0x00}
	InvalidField        = Sense{0x05, 0x24, 0x00}
	InvalidParamList    = Sense{0x05, 0x26, 0x00}
	IncompatibleMedium  = Sense{0x05, 0x30, 0x02} // cannot read medium: incompatible format
	SavingNotSupported  = Sense{0x05, 0x39, 0x00}
	RemovalPrevented    = Sense{0x05, 0x53, 0x02}
	MediumMayHaveChange = Sense{0x06, 0x28, 0x00}
	WriteProtected      = Sense{0x07, 0x27, 0x00}
)

// Media events GET EVENT STATUS NOTIFICATION reports (MMC media class).
const (
	evNone        = 0
	evEjectReq    = 1
	evNewMedia    = 2
	evMediaRemove = 3
)

// Dir is the direction of a data phase, from the host's point of view.
type Dir int

const (
	None Dir = iota
	In       // device to host
	Out      // host to device
)

// Inquiry is what INQUIRY shows: vendor (8), product (16), revision (4).
type Inquiry struct{ Vendor, Product, Revision string }

// LUN is one logical unit. Its methods are safe for concurrent use: the
// USB side runs commands while the API inserts and ejects.
type LUN struct {
	mu      sync.Mutex
	cd      bool // device type the host sees: MMC (CD/DVD) or disk
	med     Medium
	ro      bool
	sense   Sense
	ua      bool // a unit attention is pending (medium changed)
	prevent bool
	event   int
	inq     Inquiry
	serial  string
	// onHostEject is told when the host ejects the medium itself (START
	// STOP UNIT with LoEj), so the drive's owner can let go of the image.
	onHostEject func(Medium)
	// typeRead: the host asked INQUIRY, which carries the device type,
	// since the device was last plugged in (SetCD, Unplugged).
	typeRead bool
	// buf is the data buffer of READ and WRITE, kept between commands
	// (one Serve loop runs a LUN's commands one at a time).
	buf []byte
}

func (l *LUN) buffer(n int64) []byte {
	if int64(cap(l.buf)) < n {
		l.buf = make([]byte, n)
	}
	return l.buf[:n]
}

// NewLUN returns an empty drive that shows itself as a CD/DVD drive when cd.
func NewLUN(cd bool, inq Inquiry, serial string) *LUN {
	if inq.Vendor == "" {
		inq.Vendor = "msdav"
	}
	if inq.Revision == "" {
		inq.Revision = "1.00"
	}
	return &LUN{cd: cd, inq: inq, serial: serial}
}

// OnHostEject sets the function told when the host ejects the medium.
func (l *LUN) OnHostEject(f func(Medium)) {
	l.mu.Lock()
	l.onHostEject = f
	l.mu.Unlock()
}

// SetCD changes the device type. A host reads it (INQUIRY) once after the
// device is plugged in, and SetCD reports whether this one already has:
// then the caller reconnects the USB device for the host to see the new
// type. Before that (msdav restoring its drives as it starts, a host that
// is off) the host simply reads the new type, and a reconnect would only
// show it the device twice.
func (l *LUN) SetCD(cd bool) (reconnect bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	reconnect = l.cd != cd && l.typeRead
	l.cd = cd
	return reconnect
}

// Unplugged forgets that the host read the device type: the device is off
// the bus, and a host reads the type again when it comes back.
func (l *LUN) Unplugged() {
	l.mu.Lock()
	l.typeRead = false
	l.mu.Unlock()
}

// CD reports whether the drive shows itself as a CD/DVD drive.
func (l *LUN) CD() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cd
}

// Insert puts m in the drive, replacing what was there, and tells the host
// the way a real drive does: a unit attention and a new-media event.
func (l *LUN) Insert(m Medium, ro bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.med, l.ro = m, ro || l.cd
	l.ua = true
	l.event = evNewMedia
}

// Eject removes the medium. A medium the host has locked stays unless force.
// It returns the medium taken out, nil if the drive was empty.
func (l *LUN) Eject(force bool) (Medium, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.med == nil {
		return nil, nil
	}
	if l.prevent && !force {
		return nil, ErrLocked
	}
	m := l.med
	l.removeLocked()
	return m, nil
}

func (l *LUN) removeLocked() {
	l.med = nil
	l.prevent = false
	l.ua = false
	l.event = evMediaRemove
}

// State is what the drive holds now.
func (l *LUN) State() (m Medium, ro, locked bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.med, l.ro, l.prevent
}

// Reset is a bus reset: the host's lock goes, the sense is cleared.
func (l *LUN) Reset() {
	l.mu.Lock()
	l.sense = NoSense
	l.mu.Unlock()
}

func (l *LUN) blockSize() int64 {
	if l.cd {
		return CDBlock
	}
	return DiskBlock
}

// blocks is the medium's capacity in blocks; a partial last block is not
// served, as f_mass_storage does.
func (l *LUN) blocks() int64 {
	if l.med == nil {
		return 0
	}
	return l.med.Size() / l.blockSize()
}

func (l *LUN) dvd() bool { return l.blocks() > CDMaxBlocks }

// Xfer is the data phase of one command, set up by the transport with the
// length both sides agreed on. Send and Recv move at most Len bytes in all.
type Xfer interface {
	Send(p []byte) error
	Recv(p []byte) error
}

// CheckError is a command ending in CHECK CONDITION with this sense.
type CheckError struct{ Sense Sense }

func (e *CheckError) Error() string {
	return fmt.Sprintf("check condition: sense %02x/%02x/%02x", e.Sense.Key, e.Sense.ASC, e.Sense.ASCQ)
}

func check(s Sense) error { return &CheckError{s} }

// command describes one opcode: its data phase as the CDB declares it, and
// how to run it.
type command struct {
	name string
	dir  Dir
	// length is the data phase the CDB declares, in bytes.
	length func(l *LUN, cdb []byte) int64
	run    func(l *LUN, cdb []byte, x Xfer) error
	// noMedium: runs with no medium; attention: runs and leaves a pending
	// unit attention alone (INQUIRY, REQUEST SENSE, the event poll).
	noMedium, attention bool
	cdOnly              bool
}

// Phase is what a CDB asks of the data phase.
func (l *LUN) Phase(cdb []byte) (Dir, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.lookup(cdb)
	if c == nil {
		return None, 0
	}
	return c.dir, c.length(l, pad(cdb))
}

func pad(cdb []byte) []byte {
	if len(cdb) >= 16 {
		return cdb
	}
	p := make([]byte, 16)
	copy(p, cdb)
	return p
}

func (l *LUN) lookup(cdb []byte) *command {
	if len(cdb) == 0 {
		return nil
	}
	c, ok := commands[cdb[0]]
	if !ok || (c.cdOnly && !l.cd) {
		return nil
	}
	return c
}

// Exec runs one command; x moves its data. A nil error is GOOD status, a
// *CheckError a CHECK CONDITION whose sense REQUEST SENSE then returns;
// any other error is the transport's.
func (l *LUN) Exec(cdb []byte, x Xfer) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.lookup(cdb)
	cdb = pad(cdb)
	if c == nil {
		l.sense = InvalidOpcode
		return check(l.sense)
	}
	if c.name != "REQUEST SENSE" {
		l.sense = NoSense
	}
	if l.ua && !c.attention {
		l.ua = false
		l.sense = MediumMayHaveChange
		return check(l.sense)
	}
	if l.med == nil && !c.noMedium {
		l.sense = NotReadyNoMedium
		return check(l.sense)
	}
	err := c.run(l, cdb, x)
	var ce *CheckError
	if errors.As(err, &ce) {
		l.sense = ce.Sense
	}
	return err
}

func be16(b []byte) int64 { return int64(binary.BigEndian.Uint16(b)) }
func be32(b []byte) int64 { return int64(binary.BigEndian.Uint32(b)) }
func be64(b []byte) int64 { return int64(binary.BigEndian.Uint64(b)) }

func fixed(n int64) func(*LUN, []byte) int64 { return func(*LUN, []byte) int64 { return n } }

func alloc16(at int) func(*LUN, []byte) int64 {
	return func(_ *LUN, c []byte) int64 { return be16(c[at:]) }
}

func alloc8(at int) func(*LUN, []byte) int64 {
	return func(_ *LUN, c []byte) int64 { return int64(c[at]) }
}

func alloc32(at int) func(*LUN, []byte) int64 {
	return func(_ *LUN, c []byte) int64 { return be32(c[at:]) }
}

// rw decodes the LBA and block count of READ/WRITE/VERIFY 6, 10, 12 and 16.
func rw(cdb []byte) (lba, n int64) {
	switch cdb[0] {
	case 0x08, 0x0A:
		lba = int64(cdb[1]&0x1f)<<16 | be16(cdb[2:])
		n = int64(cdb[4])
		if n == 0 {
			n = 256 // READ(6) with 0 means 256 blocks
		}
	case 0x28, 0x2A, 0x2F:
		lba, n = be32(cdb[2:]), be16(cdb[7:])
	case 0xA8, 0xAA:
		lba, n = be32(cdb[2:]), be32(cdb[6:])
	case 0x88, 0x8A:
		lba, n = be64(cdb[2:]), be32(cdb[10:])
	}
	return lba, n
}

func rwLength(l *LUN, cdb []byte) int64 {
	_, n := rw(cdb)
	return n * l.blockSize()
}

// chunk bounds one medium read or write: big enough that a host's largest
// request is one transfer, small enough to keep memory flat.
const chunk = 1 << 20

func (l *LUN) inRange(lba, n int64) error {
	if lba < 0 || n < 0 || lba > l.blocks() || n > l.blocks()-lba {
		return check(LBAOutOfRange)
	}
	return nil
}

func doRead(l *LUN, cdb []byte, x Xfer) error {
	lba, n := rw(cdb)
	if err := l.inRange(lba, n); err != nil {
		return err
	}
	bs := l.blockSize()
	off, left := lba*bs, n*bs
	buf := l.buffer(min(left, chunk))
	// The data phase runs unlocked: a host that stops reading must not
	// hold up the API's eject. An image ejected meanwhile is closed, and
	// the read ends in a medium error.
	med := l.med
	l.mu.Unlock()
	defer l.mu.Lock()
	for left > 0 {
		b := buf[:min(left, chunk)]
		if _, err := med.ReadAt(b, off); err != nil {
			return check(MediumError)
		}
		if err := x.Send(b); err != nil {
			return err
		}
		off += int64(len(b))
		left -= int64(len(b))
	}
	return nil
}

func doWrite(l *LUN, cdb []byte, x Xfer) error {
	if l.ro {
		return check(WriteProtected)
	}
	lba, n := rw(cdb)
	if err := l.inRange(lba, n); err != nil {
		return err
	}
	bs := l.blockSize()
	off, left := lba*bs, n*bs
	buf := l.buffer(min(left, chunk))
	med := l.med // unlocked as in doRead
	l.mu.Unlock()
	defer l.mu.Lock()
	for left > 0 {
		b := buf[:min(left, chunk)]
		if err := x.Recv(b); err != nil {
			return err
		}
		if _, err := med.WriteAt(b, off); err != nil {
			return check(WriteError)
		}
		off += int64(len(b))
		left -= int64(len(b))
	}
	// FUA: the host wants the blocks on the medium before GOOD.
	if cdb[0] != 0x0A && cdb[1]&0x08 != 0 {
		if err := med.Sync(); err != nil {
			return check(WriteError)
		}
	}
	return nil
}

func doVerify(l *LUN, cdb []byte, _ Xfer) error {
	if cdb[1]&0x06 != 0 {
		return check(InvalidField) // BYTCHK: comparing host data is not offered
	}
	lba, n := rw(cdb)
	return l.inRange(lba, n)
}

func doSync(l *LUN, cdb []byte, _ Xfer) error {
	if l.ro {
		return nil
	}
	if err := l.med.Sync(); err != nil {
		return check(WriteError)
	}
	return nil
}

func padded(s string, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = ' '
	}
	copy(b, s)
	return b
}

func doInquiry(l *LUN, cdb []byte, x Xfer) error {
	l.typeRead = true
	if cdb[1]&0x01 != 0 {
		switch cdb[2] {
		case 0x00:
			return x.Send([]byte{l.devType(), 0x00, 0, 3, 0x00, 0x80, 0x83})
		case 0x80:
			s := []byte(l.serial)
			return x.Send(append([]byte{l.devType(), 0x80, 0, byte(len(s))}, s...))
		case 0x83:
			// SPC-3, which the standard data claims, requires this page.
			// One designator: T10 vendor ID (vendor, then the drive's
			// serial), ASCII, of the logical unit, padded to 4 bytes.
			id := append(padded(l.inq.Vendor, 8), l.serial...)
			id = append(id, bytes.Repeat([]byte{' '}, -len(id)&3)...)
			d := append([]byte{0x02, 0x01, 0, byte(len(id))}, id...)
			return x.Send(append([]byte{l.devType(), 0x83, 0, byte(len(d))}, d...))
		}
		return check(InvalidField)
	}
	if cdb[2] != 0 {
		return check(InvalidField)
	}
	b := []byte{l.devType(), 0x80, 0x05, 0x02, 31, 0, 0, 0}
	b = append(b, padded(l.inq.Vendor, 8)...)
	product := l.inq.Product
	if product == "" {
		// The drive changes type with what it holds; so does its default name.
		product = "Virtual Flash"
		if l.cd {
			product = "Virtual DVD-ROM"
		}
	}
	b = append(b, padded(product, 16)...)
	b = append(b, padded(l.inq.Revision, 4)...)
	return x.Send(b)
}

func (l *LUN) devType() byte {
	if l.cd {
		return 0x05
	}
	return 0x00
}

// doRequestSense returns the pending sense in fixed format and clears it;
// a pending unit attention is reported (and cleared) first.
func doRequestSense(l *LUN, cdb []byte, x Xfer) error {
	s := l.sense
	if l.ua {
		s, l.ua = MediumMayHaveChange, false
	} else if l.med == nil && s == NoSense {
		s = NotReadyNoMedium
	}
	l.sense = NoSense
	b := make([]byte, 18)
	b[0] = 0x70
	b[2] = s.Key
	b[7] = 10
	b[12], b[13] = s.ASC, s.ASCQ
	return x.Send(b)
}

func doReadCapacity10(l *LUN, cdb []byte, x Xfer) error {
	b := make([]byte, 8)
	last := l.blocks() - 1
	if last > 0xffffffff {
		last = 0xffffffff // the host then asks READ CAPACITY 16
	}
	binary.BigEndian.PutUint32(b, uint32(last))
	binary.BigEndian.PutUint32(b[4:], uint32(l.blockSize()))
	return x.Send(b)
}

func doServiceAction16(l *LUN, cdb []byte, x Xfer) error {
	if cdb[1]&0x1f != 0x10 {
		return check(InvalidField)
	}
	b := make([]byte, 32)
	binary.BigEndian.PutUint64(b, uint64(l.blocks()-1))
	binary.BigEndian.PutUint32(b[8:], uint32(l.blockSize()))
	return x.Send(b)
}

func doReadFormatCapacities(l *LUN, cdb []byte, x Xfer) error {
	b := make([]byte, 12)
	b[3] = 8
	binary.BigEndian.PutUint32(b[4:], uint32(min(l.blocks(), 0xffffffff)))
	b[8] = 0x02 // formatted media
	if l.med == nil {
		b[8] = 0x03 // no media present
	}
	b[9], b[10], b[11] = byte(l.blockSize()>>16), byte(l.blockSize()>>8), byte(l.blockSize())
	return x.Send(b)
}

func doTUR(*LUN, []byte, Xfer) error { return nil }

func doPrevent(l *LUN, cdb []byte, _ Xfer) error {
	l.prevent = cdb[4]&0x01 != 0
	return nil
}

// doStartStop honours LoEj: the host ejects unless it locked the medium
// itself, which a real drive refuses the same way.
func doStartStop(l *LUN, cdb []byte, _ Xfer) error {
	loej, start := cdb[4]&0x02 != 0, cdb[4]&0x01 != 0
	if !loej || cdb[4]&0xf0 != 0 {
		return nil // spin up or down, power conditions: nothing to do
	}
	if start {
		if l.med == nil {
			return check(NotReadyNoMedium) // the tray holds nothing to load
		}
		return nil
	}
	if l.med == nil {
		return nil
	}
	if l.prevent {
		return check(RemovalPrevented)
	}
	m := l.med
	l.removeLocked()
	if f := l.onHostEject; f != nil {
		// Outside the lock: the owner reads the drive's state back.
		go f(m)
	}
	return nil
}

// modePages builds the pages MODE SENSE returns for page code pc.
func (l *LUN) modePages(page byte, pcf byte) ([]byte, bool) {
	var out []byte
	all := page == 0x3f
	changeable := pcf == 1
	if all || page == 0x08 {
		p := make([]byte, 20)
		p[0], p[1] = 0x08, 18
		if !changeable {
			p[2] = 0x04 // WCE: the write cache is on; SYNCHRONIZE CACHE flushes it
		}
		out = append(out, p...)
	}
	if l.cd && (all || page == 0x2a) {
		// MM capabilities and mechanical status.
		p := make([]byte, 28)
		p[0], p[1] = 0x2a, 26
		if !changeable {
			p[2] = 0x3b // reads CD-R, CD-RW, DVD-ROM and more
			p[4] = 0x71 // mode 2 form 1 and 2, multisession
			p[6] = 0x29 // tray, eject, lock
			if l.prevent {
				p[6] |= 0x02
			}
		}
		out = append(out, p...)
	}
	return out, all || len(out) > 0
}

func doModeSense(l *LUN, cdb []byte, x Xfer) error {
	pcf, page := cdb[2]>>6, cdb[2]&0x3f
	if pcf == 3 {
		return check(SavingNotSupported)
	}
	// No page here has subpages: FFh (all subpages) is the page itself,
	// any other subpage is not there.
	if sub := cdb[3]; sub != 0 && sub != 0xff {
		return check(InvalidField)
	}
	pages, ok := l.modePages(page, pcf)
	if !ok {
		return check(InvalidField)
	}
	var wp byte
	if l.ro {
		wp = 0x80
	}
	var medType byte
	if l.cd && l.med != nil {
		medType = 0x01 // 120 mm data disc
	}
	if cdb[0] == 0x1a {
		h := []byte{byte(3 + len(pages)), medType, wp, 0}
		return x.Send(append(h, pages...))
	}
	n := 6 + len(pages)
	h := []byte{byte(n >> 8), byte(n), medType, wp, 0, 0, 0, 0}
	return x.Send(append(h, pages...))
}

// doModeSelect takes the parameter list and keeps nothing: no page here
// has a changeable field (MODE SENSE with PC=1 says so).
func doModeSelect(l *LUN, cdb []byte, x Xfer) error {
	if cdb[1]&0x01 != 0 {
		return check(SavingNotSupported)
	}
	n := alloc8(4)(l, cdb)
	hdr := int64(4)
	if cdb[0] == 0x55 {
		n, hdr = be16(cdb[7:]), 8
	}
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	if err := x.Recv(b); err != nil {
		return err
	}
	if n < hdr {
		return check(InvalidParamList)
	}
	return nil
}

// doReportLuns lists the one LUN of a function (SPC-3 requires the
// command; Get Max LUN is what USB hosts ask instead).
func doReportLuns(l *LUN, cdb []byte, x Xfer) error {
	if be32(cdb[6:]) < 16 {
		return check(InvalidField)
	}
	switch cdb[2] {
	case 0x00, 0x02: // all LUNs: LUN 0
		return x.Send([]byte{0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	case 0x01: // well-known LUNs: none
		return x.Send([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	}
	return check(InvalidField)
}

var commands = map[byte]*command{
	0x00: {name: "TEST UNIT READY", length: fixed(0), run: doTUR},
	0x03: {name: "REQUEST SENSE", dir: In, length: alloc8(4), run: doRequestSense, noMedium: true, attention: true},
	0x12: {name: "INQUIRY", dir: In, length: alloc16(3), run: doInquiry, noMedium: true, attention: true},
	0xa0: {name: "REPORT LUNS", dir: In, length: alloc32(6), run: doReportLuns, noMedium: true, attention: true},
	0x1a: {name: "MODE SENSE(6)", dir: In, length: alloc8(4), run: doModeSense, noMedium: true},
	0x5a: {name: "MODE SENSE(10)", dir: In, length: alloc16(7), run: doModeSense, noMedium: true},
	0x15: {name: "MODE SELECT(6)", dir: Out, length: alloc8(4), run: doModeSelect, noMedium: true},
	0x55: {name: "MODE SELECT(10)", dir: Out, length: alloc16(7), run: doModeSelect, noMedium: true},
	0x1e: {name: "PREVENT ALLOW MEDIUM REMOVAL", length: fixed(0), run: doPrevent, noMedium: true},
	0x1b: {name: "START STOP UNIT", length: fixed(0), run: doStartStop, noMedium: true},
	0x25: {name: "READ CAPACITY(10)", dir: In, length: fixed(8), run: doReadCapacity10},
	0x9e: {name: "SERVICE ACTION IN(16)", dir: In, length: alloc32(10), run: doServiceAction16},
	0x23: {name: "READ FORMAT CAPACITIES", dir: In, length: alloc16(7), run: doReadFormatCapacities, noMedium: true},
	// MMC has no READ(6) or WRITE(6), but f_mass_storage answers them on a
	// CD too, and a host that sends them is better read than refused.
	0x08: {name: "READ(6)", dir: In, length: rwLength, run: doRead},
	0x28: {name: "READ(10)", dir: In, length: rwLength, run: doRead},
	0xa8: {name: "READ(12)", dir: In, length: rwLength, run: doRead},
	0x88: {name: "READ(16)", dir: In, length: rwLength, run: doRead},
	0x0a: {name: "WRITE(6)", dir: Out, length: rwLength, run: doWrite},
	0x2a: {name: "WRITE(10)", dir: Out, length: rwLength, run: doWrite},
	0xaa: {name: "WRITE(12)", dir: Out, length: rwLength, run: doWrite},
	0x8a: {name: "WRITE(16)", dir: Out, length: rwLength, run: doWrite},
	0x2f: {name: "VERIFY(10)", length: fixed(0), run: doVerify},
	0x35: {name: "SYNCHRONIZE CACHE(10)", length: fixed(0), run: doSync},
	0x91: {name: "SYNCHRONIZE CACHE(16)", length: fixed(0), run: doSync},
}

func init() {
	for op, c := range mmcCommands {
		c.cdOnly = true
		commands[op] = c
	}
}
