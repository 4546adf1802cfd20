package unpack

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

// xzReader walks the xz container itself and decodes each block's LZMA2
// data with ulikunitz/xz/lzma. The library's own xz reader takes any
// dictionary a block header asks for (up to 1.5 GiB); walking the blocks
// here sees each one's size before the decoder allocates it.
type xzReader struct {
	r        *bufio.Reader
	max      int64
	check    byte
	started  bool
	block    io.Reader // the LZMA2 data of the current block, nil between blocks
	counted  *counting
	hdrSize  int64
	sum      hash.Hash
	biggest  int64
	finished bool
	err      error
}

var xzMagic = []byte{0xFD, '7', 'z', 'X', 'Z', 0x00}

var crc64Table = crc64.MakeTable(crc64.ECMA)

var errXZ = errors.New("xz")

func xzErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errXZ, fmt.Sprintf(format, args...))
}

func newXZ(r io.Reader, max int64) *xzReader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReader(r)
	}
	return &xzReader{r: br, max: max}
}

func (x *xzReader) Read(p []byte) (int, error) {
	for x.err == nil {
		if x.block == nil {
			x.err = x.next()
			continue
		}
		n, err := x.block.Read(p)
		if n > 0 && x.sum != nil {
			x.sum.Write(p[:n])
		}
		if err == io.EOF {
			x.block, err = nil, x.endBlock()
		}
		if err != nil {
			x.err = err
		}
		if n > 0 {
			return n, nil
		}
	}
	return 0, x.err
}

func (x *xzReader) readFull(b []byte) error {
	if _, err := io.ReadFull(x.r, b); err != nil {
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}

func (x *xzReader) streamHeader() error {
	var h [12]byte
	if err := x.readFull(h[:]); err != nil {
		return err
	}
	if !bytes.Equal(h[:6], xzMagic) {
		return xzErr("not an xz stream")
	}
	if crc32.ChecksumIEEE(h[6:8]) != binary.LittleEndian.Uint32(h[8:]) {
		return xzErr("stream header checksum mismatch")
	}
	if h[6] != 0 || h[7]&0xF0 != 0 {
		return xzErr("unsupported stream flags %#x %#x", h[6], h[7])
	}
	switch x.check = h[7]; x.check {
	case 0x00, 0x01, 0x04, 0x0A:
	default:
		return xzErr("unsupported check type %d", x.check)
	}
	return nil
}

// next reads what follows a block: the next block's header, or the index,
// footer and padding of the stream and the header of a following one;
// io.EOF at the end of the last stream.
func (x *xzReader) next() error {
	if !x.started {
		x.started = true
		return x.streamHeader()
	}
	b, err := x.r.ReadByte()
	if err != nil {
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	if b == 0 {
		if err := x.endStream(); err != nil {
			return err
		}
		for {
			pad, err := x.r.Peek(4)
			if len(pad) == 0 && err == io.EOF {
				return io.EOF
			}
			if len(pad) < 4 {
				return xzErr("%d bytes of garbage after the stream", len(pad))
			}
			if !bytes.Equal(pad, []byte{0, 0, 0, 0}) {
				return x.streamHeader()
			}
			x.r.Discard(4)
		}
	}
	hdr := make([]byte, (int(b)+1)*4)
	hdr[0] = b
	if err := x.readFull(hdr[1:]); err != nil {
		return err
	}
	end := len(hdr) - 4
	if crc32.ChecksumIEEE(hdr[:end]) != binary.LittleEndian.Uint32(hdr[end:]) {
		return xzErr("block header checksum mismatch")
	}
	flags := hdr[1]
	if flags&0x3C != 0 {
		return xzErr("unsupported block flags %#x", flags)
	}
	rest := hdr[2:end]
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} { // compressed, uncompressed size
		if present {
			if _, rest, err = uvarint(rest); err != nil {
				return err
			}
		}
	}
	if flags&3 != 0 {
		return xzErr("filter chains are not supported, only LZMA2 alone")
	}
	id, rest, err := uvarint(rest)
	if err != nil {
		return err
	}
	if id != 0x21 {
		return xzErr("filter %#x is not supported, only LZMA2", id)
	}
	n, rest, err := uvarint(rest)
	if err != nil || n != 1 || len(rest) < 1 {
		return xzErr("bad LZMA2 properties")
	}
	dict, err := lzma.DecodeDictCap(rest[0])
	if err != nil {
		return xzErr("%v", err)
	}
	for _, c := range rest[1:] {
		if c != 0 {
			return xzErr("block header padding is not zero")
		}
	}
	if dict > x.max {
		return &LimitError{Format: XZ, Need: dict, Limit: x.max}
	}
	x.biggest = max(x.biggest, dict)
	x.hdrSize = int64(len(hdr))
	x.counted = &counting{r: x.r}
	lr, err := lzma.Reader2Config{DictCap: int(max(dict, lzma.MinDictCap))}.NewReader2(x.counted)
	if err != nil {
		return xzErr("%v", err)
	}
	x.block = lr
	switch x.check {
	case 0x00:
		x.sum = nil
	case 0x01:
		x.sum = crc32.NewIEEE()
	case 0x04:
		x.sum = crc64.New(crc64Table)
	case 0x0A:
		x.sum = sha256.New()
	}
	return nil
}

// endBlock reads the block's padding and check.
func (x *xzReader) endBlock() error {
	if pad := (4 - (x.hdrSize+x.counted.n)%4) % 4; pad > 0 {
		b := make([]byte, pad)
		if err := x.readFull(b); err != nil {
			return err
		}
		if !bytes.Equal(b, make([]byte, pad)) {
			return xzErr("block padding is not zero")
		}
	}
	if x.sum == nil {
		return nil
	}
	want := make([]byte, x.sum.Size())
	if err := x.readFull(want); err != nil {
		return err
	}
	got := x.sum.Sum(nil)
	if x.check != 0x0A { // CRCs are stored little-endian
		for i, j := 0, len(got)-1; i < j; i, j = i+1, j-1 {
			got[i], got[j] = got[j], got[i]
		}
	}
	if !bytes.Equal(got, want) {
		return xzErr("block check mismatch")
	}
	return nil
}

// endStream skips the index (its indicator byte already read) and the
// footer. Their contents repeat what the blocks said.
func (x *xzReader) endStream() error {
	crc := crc32.NewIEEE()
	crc.Write([]byte{0})
	tr := io.TeeReader(x.r, crc)
	read := int64(1)
	one := func() (byte, error) {
		var b [1]byte
		if _, err := io.ReadFull(tr, b[:]); err != nil {
			return 0, io.ErrUnexpectedEOF
		}
		read++
		return b[0], nil
	}
	varint := func() (uint64, error) {
		var v uint64
		for i := 0; i < 9; i++ {
			b, err := one()
			if err != nil {
				return 0, err
			}
			v |= uint64(b&0x7F) << (7 * i)
			if b&0x80 == 0 {
				return v, nil
			}
		}
		return 0, xzErr("bad index")
	}
	records, err := varint()
	if err != nil {
		return err
	}
	for i := uint64(0); i < 2*records; i++ {
		if _, err := varint(); err != nil {
			return err
		}
	}
	for read%4 != 0 {
		if _, err := one(); err != nil {
			return err
		}
	}
	sum := crc.Sum32()
	var f [4 + 12]byte
	if err := x.readFull(f[:]); err != nil {
		return err
	}
	if binary.LittleEndian.Uint32(f[:4]) != sum {
		return xzErr("index checksum mismatch")
	}
	if !bytes.Equal(f[14:16], []byte{'Y', 'Z'}) {
		return xzErr("bad stream footer")
	}
	return nil
}

func uvarint(b []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, nil, xzErr("bad block header")
	}
	return v, b[n:], nil
}

type counting struct {
	r io.Reader
	n int64
}

func (c *counting) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
