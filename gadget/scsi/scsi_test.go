package scsi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// mem is an in-memory medium: its first MiB is in b, the rest (for DVD
// sizes) reads as pat and cannot be written.
type mem struct {
	b      []byte
	size   int64
	syncs  int
	failAt int64 // reads at or past this offset fail; 0: never
	// beforeRead, if set, runs at the start of every read: the host's
	// reset arriving while a slow medium answers.
	beforeRead func()
}

func pat(off int64) byte { return byte(off*7 + off/4096) }

func newMem(n int) *mem {
	m := &mem{b: make([]byte, min(n, 1<<20)), size: int64(n)}
	for i := range m.b {
		m.b[i] = pat(int64(i))
	}
	return m
}

// at returns n bytes at off as a reader sees them.
func (m *mem) at(off, n int64) []byte {
	p := make([]byte, n)
	m.ReadAt(p, off)
	return p
}

func (m *mem) ReadAt(p []byte, off int64) (int, error) {
	if m.beforeRead != nil {
		m.beforeRead()
	}
	if m.failAt > 0 && off+int64(len(p)) > m.failAt {
		return 0, errors.New("gone")
	}
	for i := range p {
		if o := off + int64(i); o < int64(len(m.b)) {
			p[i] = m.b[o]
		} else {
			p[i] = pat(o)
		}
	}
	return len(p), nil
}
func (m *mem) WriteAt(p []byte, off int64) (int, error) { return copy(m.b[off:], p), nil }
func (m *mem) Size() int64                              { return m.size }
func (m *mem) Sync() error                              { m.syncs++; return nil }

// pipes is a scripted host: out holds the transfers it sends, in collects
// what the device sends.
type pipes struct {
	out     [][]byte
	in      [][]byte
	haltIn  int
	haltOut int
}

func (p *pipes) Read(b []byte) (int, error) {
	if len(p.out) == 0 {
		return 0, errors.New("host sends nothing more")
	}
	n := copy(b, p.out[0])
	p.out[0] = p.out[0][n:]
	if len(p.out[0]) == 0 {
		p.out = p.out[1:]
	}
	return n, nil
}

func (p *pipes) Write(b []byte) (int, error) {
	p.in = append(p.in, append([]byte(nil), b...))
	return len(b), nil
}
func (p *pipes) HaltIn() error  { p.haltIn++; return nil }
func (p *pipes) HaltOut() error { p.haltOut++; return nil }

// queuedPipes is a host behind a controller that holds the device's queued
// bulk IN transfers until WaitIn, and refuses what a real one refuses: a
// stall or a plain write with transfers still queued.
type queuedPipes struct {
	*pipes
	queued  [][]byte
	waits   int
	cancels int
	misuses []string
	// readsQueued counts reads of bulk OUT begun with IN transfers still
	// queued; failWait fails the next WaitIn with transfers queued, once.
	readsQueued int
	failWait    error
}

func (q *queuedPipes) Read(b []byte) (int, error) {
	if len(q.queued) > 0 {
		q.readsQueued++
	}
	return q.pipes.Read(b)
}

// CancelIn drops what is queued, as io_cancel on FunctionFS does.
func (q *queuedPipes) CancelIn() {
	q.cancels++
	q.queued = nil
}

func (q *queuedPipes) QueueIn(b []byte) error {
	q.queued = append(q.queued, append([]byte(nil), b...))
	return nil
}

func (q *queuedPipes) WaitIn() error {
	q.waits++
	if err := q.failWait; err != nil && len(q.queued) > 0 {
		q.failWait = nil
		q.queued = nil
		return err
	}
	q.in = append(q.in, q.queued...)
	q.queued = nil
	return nil
}

func (q *queuedPipes) Write(b []byte) (int, error) {
	if len(q.queued) > 0 {
		q.misuses = append(q.misuses, "write with transfers queued")
	}
	return q.pipes.Write(b)
}

func (q *queuedPipes) HaltIn() error {
	if len(q.queued) > 0 {
		q.misuses = append(q.misuses, "halt with transfers queued")
	}
	return q.pipes.HaltIn()
}

// queueIn makes do() run commands over queuedPipes.
var queueIn bool

type result struct {
	data    []byte
	status  byte
	residue uint32
	sense   Sense
	p       *pipes
}

// do runs one command through BOT, the host asking for hostLen bytes in
// direction in, then a REQUEST SENSE to learn the sense it left.
func do(t *testing.T, l *LUN, cdb []byte, hostLen uint32, in bool, out []byte) result {
	t.Helper()
	p := &pipes{}
	if out != nil {
		p.out = [][]byte{out}
	}
	tg := &Target{LUN: l, Pipes: p}
	var q *queuedPipes
	if queueIn {
		q = &queuedPipes{pipes: p}
		tg.Pipes = q
	}
	if err := tg.Handle(CBW{Tag: 7, Length: hostLen, In: in, CDB: cdb}); err != nil {
		t.Fatalf("handle %x: %v", cdb, err)
	}
	if q != nil {
		if len(q.queued) > 0 || len(q.misuses) > 0 {
			t.Fatalf("%x: %d transfers left queued; misuses: %v", cdb, len(q.queued), q.misuses)
		}
		if q.waits == 0 {
			t.Fatalf("%x: the CSW was never waited for", cdb)
		}
	}
	if len(p.in) == 0 {
		t.Fatalf("%x: no CSW", cdb)
	}
	var stream []byte
	for _, b := range p.in {
		stream = append(stream, b...)
	}
	if len(p.in[len(p.in)-1]) != CSWSize {
		t.Fatalf("%x: the CSW is not a transfer of its own", cdb)
	}
	csw := stream[len(stream)-CSWSize:]
	if binary.LittleEndian.Uint32(csw) != cswSig || binary.LittleEndian.Uint32(csw[4:]) != 7 {
		t.Fatalf("%x: bad CSW %x", cdb, csw)
	}
	r := result{status: csw[12], residue: binary.LittleEndian.Uint32(csw[8:]), p: p}
	r.data = stream[:len(stream)-CSWSize]
	r.sense = l.sense
	return r
}

func ready(cd bool, size int, ro bool) (*LUN, *mem) {
	l := NewLUN(cd, Inquiry{}, "SER1")
	m := newMem(size)
	l.Insert(m, ro)
	l.ua = false
	l.event = evNone
	return l, m
}

func cdb10(op byte, lba uint32, n uint16) []byte {
	c := make([]byte, 10)
	c[0] = op
	binary.BigEndian.PutUint32(c[2:], lba)
	binary.BigEndian.PutUint16(c[7:], n)
	return c
}

func cdb16(op byte, lba uint64, n uint32) []byte {
	c := make([]byte, 16)
	c[0] = op
	binary.BigEndian.PutUint64(c[2:], lba)
	binary.BigEndian.PutUint32(c[10:], n)
	return c
}

func cdb12(op byte, lba, n uint32) []byte {
	c := make([]byte, 12)
	c[0] = op
	binary.BigEndian.PutUint32(c[2:], lba)
	binary.BigEndian.PutUint32(c[6:], n)
	return c
}

func alloc(op byte, at int, n uint16, size int) []byte {
	c := make([]byte, size)
	c[0] = op
	binary.BigEndian.PutUint16(c[at:], n)
	return c
}

const dvdSize = (CDMaxBlocks + 100) * CDBlock

func TestCommands(t *testing.T) {
	type setup struct {
		cd    bool
		size  int // 0: no medium
		ro    bool
		ua    bool
		prev  bool
		event int
	}
	disk := setup{size: 64 * DiskBlock}
	cd := setup{cd: true, size: 32 * CDBlock}
	dvd := setup{cd: true, size: dvdSize}
	tests := []struct {
		name    string
		s       setup
		cdb     []byte
		hostLen uint32
		in      bool
		out     []byte
		status  byte
		sense   Sense
		check   func(t *testing.T, r result, l *LUN, m *mem)
	}{
		{name: "TUR ready", s: disk, cdb: []byte{0, 0, 0, 0, 0, 0}},
		{name: "TUR empty", s: setup{}, cdb: []byte{0, 0, 0, 0, 0, 0}, status: 1, sense: NotReadyNoMedium},
		{name: "TUR after insert: unit attention once", s: setup{size: 4096, ua: true}, cdb: []byte{0, 0, 0, 0, 0, 0}, status: 1, sense: MediumMayHaveChange,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if r2 := do(t, l, []byte{0, 0, 0, 0, 0, 0}, 0, false, nil); r2.status != 0 {
					t.Errorf("second TUR status %d, want good", r2.status)
				}
			}},
		{name: "INQUIRY disk", s: disk, cdb: alloc(0x12, 3, 36, 6), hostLen: 36, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if len(r.data) != 36 || r.data[0] != 0 || r.data[1] != 0x80 || string(r.data[8:13]) != "msdav" || string(r.data[16:29]) != "Virtual Flash" {
					t.Errorf("inquiry %q", r.data)
				}
			}},
		{name: "INQUIRY cd, short allocation", s: cd, cdb: alloc(0x12, 3, 5, 6), hostLen: 5, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if len(r.data) != 5 || r.data[0] != 5 {
					t.Errorf("inquiry %x", r.data)
				}
				l.SetCD(true)
				if r2 := do(t, l, alloc(0x12, 3, 36, 6), 36, true, nil); string(r2.data[16:31]) != "Virtual DVD-ROM" {
					t.Errorf("product of a CD drive %q", r2.data[16:32])
				}
			}},
		{name: "INQUIRY host asks more: residue, IN stalled", s: disk, cdb: alloc(0x12, 3, 96, 6), hostLen: 96, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if r.residue != 96-36 || r.p.haltIn != 1 {
					t.Errorf("residue %d halts %d", r.residue, r.p.haltIn)
				}
			}},
		{name: "INQUIRY with unit attention pending is answered", s: setup{size: 4096, ua: true}, cdb: alloc(0x12, 3, 36, 6), hostLen: 36, in: true},
		{name: "INQUIRY serial page", s: disk, cdb: []byte{0x12, 1, 0x80, 0, 64, 0}, hostLen: 64, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if string(r.data[4:]) != "SER1" {
					t.Errorf("serial %q", r.data)
				}
			}},
		{name: "INQUIRY supported pages", s: disk, cdb: []byte{0x12, 1, 0x00, 0, 64, 0}, hostLen: 64, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if !bytes.Equal(r.data, []byte{0, 0, 0, 3, 0x00, 0x80, 0x83}) {
					t.Errorf("supported VPD pages %x", r.data)
				}
			}},
		{name: "INQUIRY device identification page", s: cd, cdb: []byte{0x12, 1, 0x83, 0, 64, 0}, hostLen: 64, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				// One T10 vendor ID designator, ASCII, of the logical unit.
				want := append([]byte{5, 0x83, 0, 16, 0x02, 0x01, 0, 12}, "msdav   SER1"...)
				if !bytes.Equal(r.data, want) {
					t.Errorf("device identification %q, want %q", r.data, want)
				}
			}},
		{name: "REPORT LUNS", s: disk, cdb: []byte{0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0}, hostLen: 64, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if !bytes.Equal(r.data, []byte{0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) {
					t.Errorf("LUN list %x", r.data)
				}
			}},
		{name: "REPORT LUNS with no medium", s: setup{cd: true}, cdb: []byte{0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0}, hostLen: 16, in: true},
		{name: "REPORT LUNS of a kind not offered", s: disk, cdb: []byte{0xa0, 0, 0x10, 0, 0, 0, 0, 0, 0, 64, 0, 0}, hostLen: 64, in: true, status: 1, sense: InvalidField},
		{name: "REPORT LUNS, allocation under 16", s: disk, cdb: []byte{0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0}, hostLen: 8, in: true, status: 1, sense: InvalidField},
		{name: "INQUIRY unknown page", s: disk, cdb: []byte{0x12, 1, 0x99, 0, 64, 0}, hostLen: 64, in: true, status: 1, sense: InvalidField},
		{name: "INQUIRY page without EVPD", s: disk, cdb: []byte{0x12, 0, 0x80, 0, 64, 0}, hostLen: 64, in: true, status: 1, sense: InvalidField},
		{name: "READ CAPACITY(10) disk", s: disk, cdb: cdb10(0x25, 0, 0), hostLen: 8, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if be32(r.data) != 63 || be32(r.data[4:]) != 512 {
					t.Errorf("capacity %x", r.data)
				}
			}},
		{name: "READ CAPACITY(10) dvd", s: dvd, cdb: cdb10(0x25, 0, 0), hostLen: 8, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if be32(r.data) != CDMaxBlocks+99 || be32(r.data[4:]) != 2048 {
					t.Errorf("capacity %x", r.data)
				}
			}},
		{name: "READ CAPACITY(10) empty", s: setup{cd: true}, cdb: cdb10(0x25, 0, 0), hostLen: 8, in: true, status: 1, sense: NotReadyNoMedium},
		{name: "READ CAPACITY(16)", s: disk, cdb: []byte{0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0}, hostLen: 32, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if be64(r.data) != 63 || be32(r.data[8:]) != 512 {
					t.Errorf("capacity %x", r.data)
				}
			}},
		{name: "SERVICE ACTION IN other action", s: disk, cdb: []byte{0x9e, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0}, hostLen: 32, in: true, status: 1, sense: InvalidField},
		{name: "READ(10)", s: disk, cdb: cdb10(0x28, 2, 3), hostLen: 1536, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if !bytes.Equal(r.data, m.b[1024:2560]) {
					t.Error("read(10) data differ")
				}
			}},
		{name: "READ with a residue keeps its CSW apart", s: disk, cdb: cdb10(0x28, 0, 4), hostLen: 4096, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if len(r.p.in) != 2 || r.residue != 2048 || r.p.haltIn != 1 {
					t.Errorf("%d transfers, residue %d, halts %d", len(r.p.in), r.residue, r.p.haltIn)
				}
			}},
		{name: "READ(6)", s: disk, cdb: []byte{0x08, 0, 0, 1, 1, 0}, hostLen: 512, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if !bytes.Equal(r.data, m.b[512:1024]) {
					t.Error("read(6) data differ")
				}
			}},
		{name: "READ(12) cd", s: cd, cdb: cdb12(0xa8, 31, 1), hostLen: 2048, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if !bytes.Equal(r.data, m.b[31*2048:]) {
					t.Error("read(12) data differ")
				}
			}},
		{name: "READ(16) dvd past 4 GiB blocks of CD", s: dvd, cdb: cdb16(0x88, CDMaxBlocks+99, 1), hostLen: 2048, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if !bytes.Equal(r.data, m.at((CDMaxBlocks+99)*2048, 2048)) {
					t.Error("read(16) data differ")
				}
			}},
		{name: "READ past the end", s: disk, cdb: cdb10(0x28, 63, 2), hostLen: 1024, in: true, status: 1, sense: LBAOutOfRange,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if r.residue != 1024 || r.p.haltIn != 1 || len(r.data) != 0 {
					t.Errorf("residue %d halts %d data %d", r.residue, r.p.haltIn, len(r.data))
				}
			}},
		{name: "READ(6) on a CD, as f_mass_storage answers it", s: cd, cdb: []byte{0x08, 0, 0, 1, 1, 0}, hostLen: 2048, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if !bytes.Equal(r.data, m.b[2048:4096]) {
					t.Error("READ(6) of block 1 of a CD read other bytes")
				}
			}},
		{name: "WRITE(6) on a CD is write-protected", s: cd, cdb: []byte{0x0a, 0, 0, 1, 1, 0}, hostLen: 2048, out: make([]byte, 2048), status: 1, sense: WriteProtected},
		{name: "READ of zero blocks", s: disk, cdb: cdb10(0x28, 0, 0)},
		{name: "READ empty drive", s: setup{cd: true}, cdb: cdb10(0x28, 0, 1), hostLen: 2048, in: true, status: 1, sense: NotReadyNoMedium},
		{name: "WRITE(10)", s: disk, cdb: cdb10(0x2a, 1, 1), hostLen: 512, out: bytes.Repeat([]byte{0xab}, 512),
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if !bytes.Equal(m.b[512:1024], bytes.Repeat([]byte{0xab}, 512)) || m.b[1024] == 0xab {
					t.Error("write(10) not in place")
				}
			}},
		{name: "WRITE(12) FUA syncs", s: disk, cdb: append([]byte{0xaa, 0x08}, cdb12(0xaa, 0, 1)[2:]...), hostLen: 512, out: bytes.Repeat([]byte{1}, 512),
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if m.syncs != 1 || m.b[0] != 1 {
					t.Errorf("syncs %d", m.syncs)
				}
			}},
		{name: "WRITE(16)", s: disk, cdb: cdb16(0x8a, 63, 1), hostLen: 512, out: bytes.Repeat([]byte{2}, 512),
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if m.b[len(m.b)-1] != 2 {
					t.Error("write(16) not in place")
				}
			}},
		{name: "WRITE(6)", s: disk, cdb: []byte{0x0a, 0, 0, 2, 1, 0}, hostLen: 512, out: bytes.Repeat([]byte{3}, 512),
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if m.b[1024] != 3 {
					t.Error("write(6) not in place")
				}
			}},
		{name: "WRITE read-only", s: setup{size: 4096, ro: true}, cdb: cdb10(0x2a, 0, 1), hostLen: 512, out: make([]byte, 512), status: 1, sense: WriteProtected,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if r.p.haltOut != 1 || r.residue != 512 {
					t.Errorf("halt out %d residue %d", r.p.haltOut, r.residue)
				}
			}},
		{name: "WRITE to a CD", s: cd, cdb: cdb10(0x2a, 0, 1), hostLen: 2048, out: make([]byte, 2048), status: 1, sense: WriteProtected},
		{name: "WRITE past the end", s: disk, cdb: cdb10(0x2a, 64, 1), hostLen: 512, out: make([]byte, 512), status: 1, sense: LBAOutOfRange},
		{name: "VERIFY in range", s: disk, cdb: cdb10(0x2f, 0, 64)},
		{name: "VERIFY out of range", s: disk, cdb: cdb10(0x2f, 60, 5), status: 1, sense: LBAOutOfRange},
		{name: "VERIFY BYTCHK", s: disk, cdb: []byte{0x2f, 0x02, 0, 0, 0, 0, 0, 0, 1, 0}, status: 1, sense: InvalidField},
		{name: "SYNCHRONIZE CACHE(10)", s: disk, cdb: cdb10(0x35, 0, 0),
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if m.syncs != 1 {
					t.Errorf("syncs %d", m.syncs)
				}
			}},
		{name: "SYNCHRONIZE CACHE(16) empty", s: setup{}, cdb: cdb16(0x91, 0, 0), status: 1, sense: NotReadyNoMedium},
		{name: "MODE SENSE(6) rw disk", s: disk, cdb: []byte{0x1a, 0, 0x3f, 0, 192, 0}, hostLen: 192, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if r.data[2]&0x80 != 0 || int(r.data[0]) != len(r.data)-1 || r.data[4] != 0x08 {
					t.Errorf("mode sense %x", r.data)
				}
			}},
		{name: "MODE SENSE(10) write-protected", s: setup{size: 4096, ro: true}, cdb: append([]byte{0x5a, 0, 0x3f}, alloc(0x5a, 7, 200, 10)[3:]...), hostLen: 200, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if r.data[3]&0x80 == 0 || int(be16(r.data)) != len(r.data)-2 {
					t.Errorf("mode sense %x", r.data)
				}
			}},
		{name: "MODE SENSE(10) cd capabilities page", s: cd, cdb: append([]byte{0x5a, 0, 0x2a}, alloc(0x5a, 7, 200, 10)[3:]...), hostLen: 200, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if r.data[8] != 0x2a || r.data[3]&0x80 == 0 {
					t.Errorf("mode sense %x", r.data)
				}
			}},
		{name: "MODE SENSE capabilities page on a disk", s: disk, cdb: []byte{0x1a, 0, 0x2a, 0, 192, 0}, hostLen: 192, in: true, status: 1, sense: InvalidField},
		{name: "MODE SENSE saved values", s: disk, cdb: []byte{0x1a, 0, 0xff, 0, 192, 0}, hostLen: 192, in: true, status: 1, sense: SavingNotSupported},
		{name: "MODE SENSE all pages and subpages", s: disk, cdb: []byte{0x1a, 0, 0x3f, 0xff, 192, 0}, hostLen: 192, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if len(r.data) != 24 || r.data[4] != 0x08 {
					t.Errorf("mode data %x: want the header and the caching page", r.data)
				}
			}},
		{name: "MODE SENSE a subpage not there", s: disk, cdb: []byte{0x1a, 0, 0x08, 0x01, 192, 0}, hostLen: 192, in: true, status: 1, sense: InvalidField},
		{name: "MODE SENSE(10) a subpage of all pages not there", s: cd, cdb: append([]byte{0x5a, 0, 0x3f, 0x02}, alloc(0x5a, 7, 200, 10)[4:]...), hostLen: 200, in: true, status: 1, sense: InvalidField},
		{name: "MODE SELECT(6)", s: disk, cdb: []byte{0x15, 0x10, 0, 0, 4, 0}, hostLen: 4, out: make([]byte, 4)},
		{name: "MODE SELECT(10) short list", s: disk, cdb: alloc(0x55, 7, 4, 10), hostLen: 4, out: make([]byte, 4), status: 1, sense: InvalidParamList},
		{name: "MODE SELECT save pages", s: disk, cdb: []byte{0x15, 0x11, 0, 0, 4, 0}, hostLen: 4, out: make([]byte, 4), status: 1, sense: SavingNotSupported},
		{name: "PREVENT", s: cd, cdb: []byte{0x1e, 0, 0, 0, 1, 0},
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if !l.prevent {
					t.Error("not locked")
				}
				if _, err := l.Eject(false); !errors.Is(err, ErrLocked) {
					t.Errorf("eject of a locked medium: %v", err)
				}
				if got, err := l.Eject(true); err != nil || got == nil || l.med != nil {
					t.Errorf("forced eject: %v", err)
				}
			}},
		{name: "ALLOW", s: setup{cd: true, size: 4096, prev: true}, cdb: []byte{0x1e, 0, 0, 0, 0, 0},
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if l.prevent {
					t.Error("still locked")
				}
			}},
		{name: "START STOP eject", s: cd, cdb: []byte{0x1b, 0, 0, 0, 0x02, 0},
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if l.med != nil || l.event != evMediaRemove {
					t.Error("medium still in")
				}
				if r2 := do(t, l, []byte{0, 0, 0, 0, 0, 0}, 0, false, nil); r2.sense != NotReadyNoMedium {
					t.Errorf("TUR after eject: sense %v", r2.sense)
				}
			}},
		{name: "START STOP eject while prevented", s: setup{cd: true, size: 4096, prev: true}, cdb: []byte{0x1b, 0, 0, 0, 0x02, 0}, status: 1, sense: RemovalPrevented,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if l.med == nil {
					t.Error("ejected despite prevent")
				}
			}},
		{name: "START STOP load empty tray", s: setup{cd: true}, cdb: []byte{0x1b, 0, 0, 0, 0x03, 0}, status: 1, sense: NotReadyNoMedium},
		{name: "START STOP spin up", s: cd, cdb: []byte{0x1b, 0, 0, 0, 0x01, 0}},
		{name: "READ FORMAT CAPACITIES", s: disk, cdb: alloc(0x23, 7, 12, 10), hostLen: 12, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if be32(r.data[4:]) != 64 || r.data[8] != 2 || r.data[10] != 2 {
					t.Errorf("format capacities %x", r.data)
				}
			}},
		{name: "READ FORMAT CAPACITIES empty", s: setup{}, cdb: alloc(0x23, 7, 12, 10), hostLen: 12, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if r.data[8] != 3 {
					t.Errorf("format capacities %x", r.data)
				}
			}},
		{name: "REQUEST SENSE with nothing pending", s: disk, cdb: []byte{0x03, 0, 0, 0, 18, 0}, hostLen: 18, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if r.data[0] != 0x70 || r.data[2] != 0 || r.data[12] != 0 {
					t.Errorf("sense %x", r.data)
				}
			}},
		{name: "REQUEST SENSE reports the unit attention", s: setup{size: 4096, ua: true}, cdb: []byte{0x03, 0, 0, 0, 18, 0}, hostLen: 18, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if r.data[2] != 6 || r.data[12] != 0x28 || l.ua {
					t.Errorf("sense %x", r.data)
				}
			}},
		{name: "REQUEST SENSE empty drive", s: setup{cd: true}, cdb: []byte{0x03, 0, 0, 0, 18, 0}, hostLen: 18, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if r.data[2] != 2 || r.data[12] != 0x3a {
					t.Errorf("sense %x", r.data)
				}
			}},
		{name: "unknown opcode", s: disk, cdb: []byte{0xee, 0, 0, 0, 0, 0}, status: 1, sense: InvalidOpcode},
		{name: "MMC command on a disk", s: disk, cdb: alloc(0x43, 7, 12, 10), hostLen: 12, in: true, status: 1, sense: InvalidOpcode},
		{name: "READ TOC format 0", s: cd, cdb: alloc(0x43, 7, 20, 10), hostLen: 20, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if be16(r.data) != 18 || r.data[6] != 1 || r.data[14] != 0xaa || be32(r.data[16:]) != 32 {
					t.Errorf("toc %x", r.data)
				}
			}},
		{name: "READ TOC format 0 MSF", s: cd, cdb: []byte{0x43, 0x02, 0, 0, 0, 0, 0, 0, 20, 0}, hostLen: 20, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if !bytes.Equal(r.data[8:12], []byte{0, 0, 2, 0}) || !bytes.Equal(r.data[16:20], []byte{0, 0, 2, 32}) {
					t.Errorf("toc msf %x", r.data)
				}
			}},
		{name: "READ TOC session info", s: cd, cdb: []byte{0x43, 0, 1, 0, 0, 0, 0, 0, 12, 0}, hostLen: 12, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if be16(r.data) != 10 || r.data[2] != 1 || r.data[6] != 1 {
					t.Errorf("session %x", r.data)
				}
			}},
		{name: "READ TOC full TOC", s: cd, cdb: []byte{0x43, 0x02, 2, 0, 0, 0, 0, 0, 200, 0}, hostLen: 200, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if be16(r.data) != 2+4*11 || r.data[7] != 0xa0 {
					t.Errorf("full toc %x", r.data)
				}
			}},
		{name: "READ TOC bad track", s: cd, cdb: []byte{0x43, 0, 0, 0, 0, 0, 5, 0, 20, 0}, hostLen: 20, in: true, status: 1, sense: InvalidField},
		{name: "READ TOC bad format", s: cd, cdb: []byte{0x43, 0, 5, 0, 0, 0, 0, 0, 20, 0}, hostLen: 20, in: true, status: 1, sense: InvalidField},
		{name: "READ TOC empty", s: setup{cd: true}, cdb: alloc(0x43, 7, 20, 10), hostLen: 20, in: true, status: 1, sense: NotReadyNoMedium},
		{name: "READ HEADER", s: cd, cdb: cdb10(0x44, 16, 8), hostLen: 8, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if r.data[0] != 1 || be32(r.data[4:]) != 16 {
					t.Errorf("header %x", r.data)
				}
			}},
		{name: "READ HEADER past the end", s: cd, cdb: cdb10(0x44, 32, 8), hostLen: 8, in: true, status: 1, sense: LBAOutOfRange},
		{name: "GET CONFIGURATION cd", s: cd, cdb: alloc(0x46, 7, 8, 10), hostLen: 8, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if be16(r.data[6:]) != profileCDROM {
					t.Errorf("profile %x", r.data)
				}
			}},
		{name: "GET CONFIGURATION dvd, all features", s: dvd, cdb: alloc(0x46, 7, 1024, 10), hostLen: 1024, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if be16(r.data[6:]) != profileDVDROM || int(be32(r.data)) != len(r.data)-4 {
					t.Errorf("config %x", r.data)
				}
				if !bytes.Contains(r.data, []byte{0x00, 0x1f, 0x05, 0}) {
					t.Errorf("no current DVD Read feature: %x", r.data)
				}
				if !bytes.Contains(r.data, []byte{0x00, profileDVDROM, 1, 0}) {
					t.Errorf("DVD-ROM profile not current: %x", r.data)
				}
			}},
		{name: "GET CONFIGURATION one feature", s: dvd, cdb: []byte{0x46, 2, 0, 0x1f, 0, 0, 0, 4, 0, 0}, hostLen: 1024, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if len(r.data) != 12 || be16(r.data[8:]) != 0x1f {
					t.Errorf("config %x", r.data)
				}
			}},
		{name: "GET CONFIGURATION current only on a CD leaves DVD Read out", s: cd, cdb: []byte{0x46, 1, 0, 0x1e, 0, 0, 0, 4, 0, 0}, hostLen: 1024, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if be16(r.data[8:]) != 0x1e || bytes.Contains(r.data, []byte{0x00, 0x1f}) {
					t.Errorf("config %x", r.data)
				}
			}},
		{name: "GET CONFIGURATION empty", s: setup{cd: true}, cdb: alloc(0x46, 7, 8, 10), hostLen: 8, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if be16(r.data[6:]) != profileNone {
					t.Errorf("profile %x", r.data)
				}
			}},
		{name: "GET CONFIGURATION bad RT", s: cd, cdb: []byte{0x46, 3, 0, 0, 0, 0, 0, 0, 8, 0}, hostLen: 8, in: true, status: 1, sense: InvalidField},
		{name: "GESN new media, then no change", s: setup{cd: true, size: 4096, event: evNewMedia, ua: true}, cdb: []byte{0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0}, hostLen: 8, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if r.data[2] != 4 || r.data[4] != evNewMedia || r.data[5] != 2 {
					t.Errorf("event %x", r.data)
				}
				r2 := do(t, l, []byte{0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0}, 8, true, nil)
				if r2.data[4] != evNone {
					t.Errorf("second event %x", r2.data)
				}
				if !l.ua {
					t.Error("the event poll cleared the unit attention")
				}
			}},
		{name: "GESN removal", s: setup{cd: true, event: evMediaRemove}, cdb: []byte{0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0}, hostLen: 8, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if r.data[4] != evMediaRemove || r.data[5] != 0 {
					t.Errorf("event %x", r.data)
				}
			}},
		{name: "GESN class not supported", s: cd, cdb: []byte{0x4a, 1, 0, 0, 0x02, 0, 0, 0, 8, 0}, hostLen: 8, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if r.data[2] != 0x80 || r.data[3] != 0x10 {
					t.Errorf("event %x", r.data)
				}
			}},
		{name: "GESN asynchronous", s: cd, cdb: []byte{0x4a, 0, 0, 0, 0x10, 0, 0, 0, 8, 0}, hostLen: 8, in: true, status: 1, sense: InvalidField},
		{name: "READ DISC INFORMATION", s: cd, cdb: alloc(0x51, 7, 34, 10), hostLen: 34, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if be16(r.data) != 32 || r.data[2] != 0x0e {
					t.Errorf("disc info %x", r.data)
				}
			}},
		{name: "READ DISC INFORMATION other type", s: cd, cdb: []byte{0x51, 1, 0, 0, 0, 0, 0, 0, 34, 0}, hostLen: 34, in: true, status: 1, sense: InvalidField},
		{name: "READ TRACK INFORMATION track 1", s: cd, cdb: []byte{0x52, 1, 0, 0, 0, 1, 0, 0, 36, 0}, hostLen: 36, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if r.data[2] != 1 || be32(r.data[24:]) != 32 {
					t.Errorf("track info %x", r.data)
				}
			}},
		{name: "READ TRACK INFORMATION track 2", s: cd, cdb: []byte{0x52, 1, 0, 0, 0, 2, 0, 0, 36, 0}, hostLen: 36, in: true, status: 1, sense: InvalidField},
		{name: "READ TRACK INFORMATION LBA past the end", s: cd, cdb: []byte{0x52, 0, 0, 0, 0, 40, 0, 0, 36, 0}, hostLen: 36, in: true, status: 1, sense: LBAOutOfRange},
		{name: "READ DVD STRUCTURE physical", s: dvd, cdb: alloc(0xad, 8, 21, 12), hostLen: 21, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if r.data[4] != 1 || be32(r.data[12:]) != 0x030000+CDMaxBlocks+99 {
					t.Errorf("physical %x", r.data)
				}
			}},
		{name: "READ DVD STRUCTURE copyright", s: dvd, cdb: []byte{0xad, 0, 0, 0, 0, 0, 0, 1, 0, 8, 0, 0}, hostLen: 8, in: true},
		{name: "READ DVD STRUCTURE on a CD", s: cd, cdb: alloc(0xad, 8, 21, 12), hostLen: 21, in: true, status: 1, sense: IncompatibleMedium},
		{name: "READ DVD STRUCTURE layer 1", s: dvd, cdb: []byte{0xad, 0, 0, 0, 0, 0, 1, 0, 0, 21, 0, 0}, hostLen: 21, in: true, status: 1, sense: InvalidField},
		{name: "READ DVD STRUCTURE unknown format", s: dvd, cdb: []byte{0xad, 0, 0, 0, 0, 0, 0, 0x30, 0, 21, 0, 0}, hostLen: 21, in: true, status: 1, sense: InvalidField},
		{name: "MECHANISM STATUS", s: setup{cd: true}, cdb: alloc(0xbd, 8, 8, 12), hostLen: 8, in: true,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if len(r.data) != 8 {
					t.Errorf("mechanism %x", r.data)
				}
			}},
		// BOT phase cases.
		{name: "phase: host no data, device in (case 2)", s: disk, cdb: cdb10(0x28, 0, 1), status: 2},
		{name: "phase: host in, device out (case 8)", s: disk, cdb: cdb10(0x2a, 0, 1), hostLen: 512, in: true, status: 2,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if r.p.haltIn != 1 {
					t.Error("IN not stalled")
				}
			}},
		{name: "phase: host in less than device (case 7)", s: disk, cdb: cdb10(0x28, 0, 2), hostLen: 512, in: true, status: 2},
		{name: "phase: host out, device in (case 10)", s: disk, cdb: cdb10(0x28, 0, 1), hostLen: 512, out: make([]byte, 512), status: 2,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if r.p.haltOut != 1 {
					t.Error("OUT not stalled")
				}
			}},
		{name: "host out, device none (case 9)", s: disk, cdb: []byte{0, 0, 0, 0, 0, 0}, hostLen: 512, out: make([]byte, 512),
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if r.p.haltOut != 1 || r.residue != 512 {
					t.Errorf("halt %d residue %d", r.p.haltOut, r.residue)
				}
			}},
		{name: "host out more than device (case 11)", s: disk, cdb: cdb10(0x2a, 0, 1), hostLen: 1024, out: make([]byte, 1024),
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if r.p.haltOut != 1 || r.residue != 512 {
					t.Errorf("halt %d residue %d", r.p.haltOut, r.residue)
				}
			}},
		{name: "medium error mid-read", s: disk, cdb: cdb10(0x28, 0, 64), hostLen: 64 * 512, in: true, status: 1, sense: MediumError,
			check: func(t *testing.T, r result, l *LUN, m *mem) {
				if r.residue != 64*512 || r.p.haltIn != 1 {
					t.Errorf("residue %d halt %d", r.residue, r.p.haltIn)
				}
			}},
	}
	// Every command over plain pipes and over pipes that queue bulk IN.
	defer func() { queueIn = false }()
	for _, tc := range tests {
		for _, queued := range []bool{false, true} {
			name := tc.name
			if queued {
				name = "queued/" + name
			}
			t.Run(name, func(t *testing.T) {
				queueIn = queued
				l := NewLUN(tc.s.cd, Inquiry{}, "SER1")
				var m *mem
				if tc.s.size > 0 {
					m = newMem(tc.s.size)
					if tc.name == "medium error mid-read" {
						m.failAt = 1
					}
					l.Insert(m, tc.s.ro)
				}
				l.ua, l.event, l.prevent = tc.s.ua, tc.s.event, tc.s.prev
				r := do(t, l, tc.cdb, tc.hostLen, tc.in, tc.out)
				if r.status != tc.status || r.sense != tc.sense {
					t.Fatalf("status %d sense %02x/%02x/%02x, want %d %02x/%02x/%02x",
						r.status, r.sense.Key, r.sense.ASC, r.sense.ASCQ, tc.status, tc.sense.Key, tc.sense.ASC, tc.sense.ASCQ)
				}
				if tc.check != nil {
					tc.check(t, r, l, m)
				}
			})
		}
	}
}

// A disc swapped without reconnect: the host is told once (unit attention
// and a new-media event) and then reads the new disc's size.
func TestSwapWithoutReconnect(t *testing.T) {
	l, _ := ready(true, 10*CDBlock, true)
	if _, err := l.Eject(false); err != nil {
		t.Fatal(err)
	}
	l.Insert(newMem(20*CDBlock), true)
	if r := do(t, l, []byte{0, 0, 0, 0, 0, 0}, 0, false, nil); r.sense != MediumMayHaveChange {
		t.Fatalf("TUR after swap: sense %v, want unit attention", r.sense)
	}
	r := do(t, l, cdb10(0x25, 0, 0), 8, true, nil)
	if r.status != 0 || be32(r.data) != 19 {
		t.Fatalf("capacity after swap: status %d %x", r.status, r.data)
	}
}

// A change of device type needs a reconnect only once the host has read
// the type (INQUIRY): msdav restoring a DVD as it starts, before the host
// asked, must not show the host the device twice.
func TestSetCDReconnectsOnlyWhenTheHostReadTheType(t *testing.T) {
	l := NewLUN(false, Inquiry{}, "S")
	inquiry := func() byte {
		t.Helper()
		r := do(t, l, alloc(0x12, 3, 36, 6), 36, true, nil)
		if r.status != 0 {
			t.Fatalf("INQUIRY status %d", r.status)
		}
		return r.data[0]
	}
	steps := []struct {
		name string
		run  func() bool // the reconnect SetCD or nothing asks for
		want bool
	}{
		{"a CD before the host asked", func() bool { return l.SetCD(true) }, false},
		{"the host reads a CD drive", func() bool {
			if got := inquiry(); got != 5 {
				t.Errorf("device type %d, want 5 (CD/DVD)", got)
			}
			return false
		}, false},
		{"same type again", func() bool { return l.SetCD(true) }, false},
		{"a disk after the host read CD", func() bool { return l.SetCD(false) }, true},
		{"unplugged", func() bool { l.Unplugged(); return false }, false},
		{"a CD while unplugged", func() bool { return l.SetCD(true) }, false},
		{"plugged in: the host reads a CD drive", func() bool {
			if got := inquiry(); got != 5 {
				t.Errorf("device type %d after the reconnect, want 5", got)
			}
			return l.SetCD(false)
		}, true},
	}
	for _, s := range steps {
		if got := s.run(); got != s.want {
			t.Errorf("%s: reconnect %v, want %v", s.name, got, s.want)
		}
	}
}

func TestHostEjectTellsOwner(t *testing.T) {
	l, m := ready(true, 4*CDBlock, true)
	got := make(chan Medium, 1)
	l.OnHostEject(func(x Medium) { got <- x })
	if r := do(t, l, []byte{0x1b, 0, 0, 0, 0x02, 0}, 0, false, nil); r.status != 0 {
		t.Fatalf("eject status %d", r.status)
	}
	if x := <-got; x != m {
		t.Fatalf("owner told of %v", x)
	}
}

func TestParseCBW(t *testing.T) {
	good := CBW{Tag: 1, Length: 512, In: true, CDB: cdb10(0x28, 0, 1)}.Bytes()
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"good", good, true},
		{"short", good[:30], false},
		{"long", append(append([]byte(nil), good...), 0), false},
		{"signature", mut(func(b []byte) []byte { b[0] = 'X'; return b }), false},
		{"reserved flags", mut(func(b []byte) []byte { b[12] |= 0x01; return b }), false},
		{"lun high bits", mut(func(b []byte) []byte { b[13] = 0x10; return b }), false},
		{"cdb length 0", mut(func(b []byte) []byte { b[14] = 0; return b }), false},
		{"cdb length 17", mut(func(b []byte) []byte { b[14] = 17; return b }), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCBW(tc.b)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && (c.Tag != 1 || c.Length != 512 || !c.In || len(c.CDB) != 10) {
				t.Fatalf("parsed %+v", c)
			}
		})
	}
}

func FuzzCBW(f *testing.F) {
	f.Add(CBW{Tag: 1, Length: 512, In: true, CDB: cdb10(0x28, 0, 1)}.Bytes())
	f.Add(CBW{Tag: 2, Length: 36, In: true, CDB: alloc(0x12, 3, 36, 6)}.Bytes())
	f.Add(CBW{Tag: 3, Length: 0, CDB: []byte{0x1b, 0, 0, 0, 2, 0}}.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCBW(b)
		if err != nil {
			return
		}
		// Bytes past the CDB's length are not part of the command.
		if n := 15 + len(c.CDB); !bytes.Equal(c.Bytes()[:n], b[:n]) {
			t.Fatalf("round trip: %x -> %x", b, c.Bytes())
		}
		// Whatever a valid CBW asks, the target answers with one CSW
		// and never moves more than the host allowed.
		for _, v := range []struct{ cd, empty bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
			l, _ := ready(v.cd, 64*CDBlock, false)
			if v.empty {
				l.Eject(true)
			}
			p := &pipes{out: [][]byte{make([]byte, min(int(c.Length), 1<<16))}}
			tg := &Target{LUN: l, Pipes: p}
			if c.Length > 1<<16 {
				return
			}
			if err := tg.Handle(c); err != nil {
				continue // the scripted host ran out of data to send
			}
			var moved int
			for _, b := range p.in {
				moved += len(b)
			}
			moved -= CSWSize
			csw := p.in[len(p.in)-1]
			csw = csw[len(csw)-CSWSize:]
			if moved > int(c.Length) || binary.LittleEndian.Uint32(csw) != cswSig {
				t.Fatalf("moved %d of %d, CSW %x", moved, c.Length, csw)
			}
		}
	})
}

// Serve stalls both pipes on an invalid CBW and waits for the reset.
func TestServeInvalidCBW(t *testing.T) {
	l, _ := ready(false, 4096, false)
	p := &pipes{out: [][]byte{[]byte("garbage"), CBW{Tag: 9, CDB: []byte{0, 0, 0, 0, 0, 0}}.Bytes()}}
	reset := make(chan struct{}, 1)
	reset <- struct{}{}
	tg := &Target{LUN: l, Pipes: p, Reset: reset}
	err := tg.Serve(t.Context())
	if err == nil {
		t.Fatal("serve ended without error")
	}
	if p.haltIn != 1 || p.haltOut != 1 {
		t.Fatalf("halts in %d out %d", p.haltIn, p.haltOut)
	}
	if len(p.in) != 1 || binary.LittleEndian.Uint32(p.in[0][4:]) != 9 {
		t.Fatalf("after reset: %x", p.in)
	}
}

// Serve reads the next CBW only once the host's data is in: a WRITE's
// data is not taken for a CBW.
func TestServeWriteThenCommand(t *testing.T) {
	l, m := ready(false, 4096, false)
	data := bytes.Repeat([]byte{0x5a}, 512)
	p := &pipes{out: [][]byte{
		CBW{Tag: 1, Length: 512, CDB: cdb10(0x2a, 2, 1)}.Bytes(),
		data,
		CBW{Tag: 2, Length: 512, In: true, CDB: cdb10(0x28, 2, 1)}.Bytes(),
	}}
	tg := &Target{LUN: l, Pipes: p}
	if err := tg.Serve(t.Context()); err == nil {
		t.Fatal("serve ended without error")
	}
	if !bytes.Equal(m.b[1024:1536], data) {
		t.Fatal("the WRITE's data is not in the medium")
	}
	if len(p.in) != 3 || !bytes.Equal(p.in[1], data) {
		t.Fatalf("host got %d transfers", len(p.in))
	}
	for i, want := range []uint32{1, 2} {
		csw := p.in[[]int{0, 2}[i]]
		if binary.LittleEndian.Uint32(csw[4:]) != want || csw[12] != StatusGood {
			t.Errorf("CSW %d: %x", i, csw)
		}
	}
}

// With queued IN, a command's data and CSW stay queued while Serve reads the
// next CBW (the read waits in the controller when the host sends it), and
// are waited for once that CBW is in. A failure among them is the last
// command's: the host has moved on, and its next command is answered.
func TestServeQueuesTheNextCBWReadBehindTheCSW(t *testing.T) {
	l, _ := ready(false, 64*DiskBlock, false)
	p := &pipes{out: [][]byte{
		CBW{Tag: 1, Length: 8 * 512, In: true, CDB: cdb10(0x28, 0, 8)}.Bytes(),
		CBW{Tag: 2, CDB: []byte{0, 0, 0, 0, 0, 0}}.Bytes(),
		CBW{Tag: 3, CDB: []byte{0, 0, 0, 0, 0, 0}}.Bytes(),
	}}
	q := &queuedPipes{pipes: p}
	tg := &Target{LUN: l, Pipes: q}
	// The first READ's transfers fail (an io_cancel, say) before the host
	// sends tag 2.
	q.failWait = errors.New("canceled")
	err := tg.Serve(t.Context())
	if err == nil || !strings.Contains(err.Error(), "host sends nothing more") {
		t.Fatalf("serve: %v (want it to go on until the host is done)", err)
	}
	if q.readsQueued != 3 {
		t.Errorf("%d of 3 CBW reads began with the last command's transfers queued, want 3 (the first is the READ's data and CSW, then two CSWs)", q.readsQueued)
	}
	if len(q.queued) > 0 || len(q.misuses) > 0 {
		t.Fatalf("%d transfers left queued; misuses %v", len(q.queued), q.misuses)
	}
	var tags []uint32
	for _, b := range p.in {
		if len(b) == CSWSize {
			tags = append(tags, binary.LittleEndian.Uint32(b[4:]))
		}
	}
	if fmt.Sprint(tags) != "[2 3]" {
		t.Fatalf("CSWs the host got: tags %v, want [2 3] (tag 1's were lost to the failure)", tags)
	}
}

// A reset that arrives while a READ waits on its medium ends the command
// silently: neither its data nor its CSW reach the host after the reset,
// and the next command is answered as usual.
func TestBulkResetAbandonsTheCommand(t *testing.T) {
	for _, queued := range []bool{false, true} {
		t.Run(fmt.Sprintf("queued=%v", queued), func(t *testing.T) {
			l, m := ready(false, 64*DiskBlock, false)
			p := &pipes{out: [][]byte{
				CBW{Tag: 1, Length: 8 * 512, In: true, CDB: cdb10(0x28, 0, 8)}.Bytes(),
				CBW{Tag: 2, CDB: []byte{0, 0, 0, 0, 0, 0}}.Bytes(),
			}}
			tg := &Target{LUN: l, Pipes: p}
			var q *queuedPipes
			if queued {
				q = &queuedPipes{pipes: p}
				tg.Pipes = q
			}
			// The first read of the medium is where the host gives up.
			m.beforeRead = func() { m.beforeRead = nil; tg.BulkReset() }
			err := tg.Serve(t.Context())
			if err == nil || !strings.Contains(err.Error(), "host sends nothing more") {
				t.Fatalf("serve: %v (want it to go on until the host is done)", err)
			}
			if q != nil {
				if len(q.misuses) > 0 || len(q.queued) > 0 {
					t.Fatalf("misuses %v, %d left queued", q.misuses, len(q.queued))
				}
				if q.cancels != 1 {
					t.Fatalf("%d cancels of queued transfers, want 1", q.cancels)
				}
			}
			if len(p.in) != 1 || len(p.in[0]) != CSWSize || binary.LittleEndian.Uint32(p.in[0][4:]) != 2 || p.in[0][12] != StatusGood {
				var sizes []int
				for _, b := range p.in {
					sizes = append(sizes, len(b))
				}
				t.Fatalf("the host received transfers of %v bytes; want only the TEST UNIT READY's CSW", sizes)
			}
		})
	}
}

// soonPipes records which read brought each CBW in.
type soonPipes struct {
	*pipes
	reads []string
}

func (s *soonPipes) Read(b []byte) (int, error) {
	s.reads = append(s.reads, "Read")
	return s.pipes.Read(b)
}

func (s *soonPipes) ReadSoon(b []byte) (int, error) {
	s.reads = append(s.reads, "ReadSoon")
	return s.pipes.Read(b)
}

// The host sends the next CBW within milliseconds while it streams READs
// and WRITEs, and may go quiet after anything else: Serve waits with
// ReadSoon only after a READ or a WRITE (a wait that keeps its P must
// not follow a TEST UNIT READY that a host repeats every two seconds).
func TestServeReadsSoonOnlyWhileStreaming(t *testing.T) {
	l, _ := ready(false, 64*DiskBlock, false)
	tur := CBW{Tag: 9, CDB: []byte{0, 0, 0, 0, 0, 0}}.Bytes()
	p := &soonPipes{pipes: &pipes{out: [][]byte{
		tur,
		CBW{Tag: 1, Length: 512, In: true, CDB: cdb10(0x28, 0, 1)}.Bytes(),
		CBW{Tag: 2, Length: 512, CDB: cdb10(0x2a, 1, 1)}.Bytes(),
		bytes.Repeat([]byte{1}, 512),
		tur,
		[]byte("not a CBW"),
	}}}
	tg := &Target{LUN: l, Pipes: p}
	// The invalid CBW stalls and waits for a reset: give it one at once.
	tg.Reset = make(chan struct{}, 1)
	tg.Reset <- struct{}{}
	if err := tg.Serve(t.Context()); err == nil || !strings.Contains(err.Error(), "host sends nothing more") {
		t.Fatalf("serve: %v", err)
	}
	// CBWs: TUR, READ, WRITE (then its data, read with Read by Recv), TUR,
	// garbage, and the read that finds the host gone.
	want := "[Read Read ReadSoon Read ReadSoon Read Read]"
	if got := fmt.Sprint(p.reads); got != want {
		t.Fatalf("reads %s, want %s", got, want)
	}
}

func TestUnknownOpcodeLoggedOncePerOpcode(t *testing.T) {
	var logged bytes.Buffer
	l, _ := ready(false, 64*DiskBlock, false)
	tg := &Target{LUN: l, Pipes: &pipes{}, Log: slog.New(slog.NewTextHandler(&logged, nil))}
	for _, cdb := range [][]byte{
		{0x02, 0, 0, 0, 0, 0},             // nobody has it
		{0x00, 0, 0, 0, 0, 0},             // TEST UNIT READY: known
		{0x02, 0, 0, 0, 0, 0},             // the same again
		{0x43, 0, 0, 0, 0, 0, 0, 0, 0, 0}, // READ TOC: a CD's, not a disk's
	} {
		if err := tg.Handle(CBW{Tag: 1, CDB: cdb}); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSpace(logged.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "cdb=020000000000") || !strings.Contains(lines[1], "cdb=43000000000000000000") {
		t.Errorf("log:\n%s\nwant one line for opcode 02 and one for 43", logged.String())
	}
}
