package scsi

import (
	"encoding/binary"
	"testing"
)

// sparse is a medium of any size that keeps nothing: it records where it
// was read and written, so offsets past 2 and 4 GiB can be checked on
// 32-bit boards without the bytes.
type sparse struct {
	size         int64
	reads, write []int64
}

func (s *sparse) ReadAt(p []byte, off int64) (int, error) {
	s.reads = append(s.reads, off)
	clear(p)
	return len(p), nil
}

func (s *sparse) WriteAt(p []byte, off int64) (int, error) {
	s.write = append(s.write, off)
	return len(p), nil
}
func (s *sparse) Size() int64 { return s.size }
func (s *sparse) Sync() error { return nil }

// LBA math for images past 2 GiB (int32) and 4 GiB (uint32 bytes) and past
// 2^32 blocks (READ CAPACITY(10)'s field): what int would wrap on 32-bit
// ARM, PiKVM OS's build. Runs under qemu-arm in make crosstest.
func TestLBAPast2And4GiB(t *testing.T) {
	const GiB = int64(1) << 30
	read10 := func(lba uint32, n uint16) []byte { return cdb10(0x28, lba, n) }
	write10 := func(lba uint32, n uint16) []byte { return cdb10(0x2a, lba, n) }
	for _, c := range []struct {
		name    string
		cd      bool
		size    int64
		cdb     []byte
		hostLen uint32
		in      bool
		read    int64 // the medium's offset read; -1: none
		write   int64 // the medium's offset written; -1: none
		sense   Sense
		check   func(t *testing.T, data []byte)
	}{
		{name: "READ(10) disk at 2 GiB + 512", size: 3 * GiB, cdb: read10(1<<22+1, 1), hostLen: 512, in: true, read: 2*GiB + 512, write: -1},
		{name: "READ(10) disk past 4 GiB", size: 5 * GiB, cdb: read10(9_000_000, 1), hostLen: 512, in: true, read: 9_000_000 * 512, write: -1},
		{name: "READ(10) DVD past 4 GiB", cd: true, size: 8 * GiB, cdb: read10(3_000_000, 2), hostLen: 4096, in: true, read: 3_000_000 * 2048, write: -1},
		{name: "READ(12) DVD last block of 8 GiB", cd: true, size: 8 * GiB, cdb: cdb12(0xa8, uint32(8*GiB/2048-1), 1), hostLen: 2048, in: true, read: 8*GiB - 2048, write: -1},
		{name: "READ(16) disk past 2^32 blocks", size: 3 << 40, cdb: cdb16(0x88, 1<<32+5, 1), hostLen: 512, in: true, read: (1<<32 + 5) * 512, write: -1},
		{name: "WRITE(10) disk past 4 GiB", size: 5 * GiB, cdb: write10(9_000_001, 1), hostLen: 512, read: -1, write: 9_000_001 * 512},
		{name: "WRITE(16) disk past 2^32 blocks", size: 3 << 40, cdb: cdb16(0x8a, 1<<32+7, 1), hostLen: 512, read: -1, write: (1<<32 + 7) * 512},
		{name: "READ(10) one past the end of 5 GiB", size: 5 * GiB, cdb: read10(uint32(5*GiB/512), 1), hostLen: 512, in: true, read: -1, write: -1, sense: LBAOutOfRange},
		{name: "READ(16) wraps to negative", size: 5 * GiB, cdb: cdb16(0x88, 1<<63, 1), hostLen: 512, in: true, read: -1, write: -1, sense: LBAOutOfRange},
		{name: "READ CAPACITY(10) 5 GiB disk", size: 5 * GiB, cdb: cdb10(0x25, 0, 0), hostLen: 8, in: true, read: -1, write: -1,
			check: func(t *testing.T, d []byte) {
				if last := binary.BigEndian.Uint32(d); int64(last) != 5*GiB/512-1 {
					t.Errorf("last block %d, want %d", last, 5*GiB/512-1)
				}
			}},
		{name: "READ CAPACITY(10) 3 TiB disk says ask (16)", size: 3 << 40, cdb: cdb10(0x25, 0, 0), hostLen: 8, in: true, read: -1, write: -1,
			check: func(t *testing.T, d []byte) {
				if last := binary.BigEndian.Uint32(d); last != 0xffffffff {
					t.Errorf("last block %#x, want 0xffffffff", last)
				}
			}},
		{name: "READ CAPACITY(16) 3 TiB disk", size: 3 << 40, cdb: []byte{0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0}, hostLen: 32, in: true, read: -1, write: -1,
			check: func(t *testing.T, d []byte) {
				if last := binary.BigEndian.Uint64(d); int64(last) != 3<<40/512-1 {
					t.Errorf("last block %d, want %d", last, int64(3<<40/512-1))
				}
			}},
		{name: "READ FORMAT CAPACITIES 3 TiB disk", size: 3 << 40, cdb: alloc(0x23, 7, 12, 10), hostLen: 12, in: true, read: -1, write: -1,
			check: func(t *testing.T, d []byte) {
				if n := binary.BigEndian.Uint32(d[4:]); n != 0xffffffff {
					t.Errorf("blocks %#x, want 0xffffffff", n)
				}
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := NewLUN(c.cd, Inquiry{}, "SER1")
			m := &sparse{size: c.size}
			l.Insert(m, false)
			l.ua = false
			l.event = evNone
			var out []byte
			if !c.in {
				out = make([]byte, c.hostLen)
			}
			r := do(t, l, c.cdb, c.hostLen, c.in, out)
			if r.sense != c.sense {
				t.Fatalf("sense %v, want %v", r.sense, c.sense)
			}
			if c.read >= 0 && (len(m.reads) == 0 || m.reads[0] != c.read) {
				t.Errorf("read at %v, want %d", m.reads, c.read)
			}
			if c.read < 0 && len(m.reads) > 0 {
				t.Errorf("read at %v, want none", m.reads)
			}
			if c.write >= 0 && (len(m.write) == 0 || m.write[0] != c.write) {
				t.Errorf("written at %v, want %d", m.write, c.write)
			}
			if c.write < 0 && len(m.write) > 0 {
				t.Errorf("written at %v, want none", m.write)
			}
			if c.check != nil {
				c.check(t, r.data)
			}
		})
	}
}
