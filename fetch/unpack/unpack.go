// Package unpack recognises xz, gzip, zstd and bzip2 streams by their magic
// bytes and decompresses them on the way into the store.
package unpack

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz/lzma"
)

// Format is a compression format, or None for data stored as it comes.
type Format string

// The formats auto recognises.
const (
	None  Format = ""
	XZ    Format = "xz"
	Gzip  Format = "gzip"
	Zstd  Format = "zstd"
	Bzip2 Format = "bzip2"
)

var magics = []struct {
	f     Format
	magic []byte
	suf   []string
}{
	{XZ, []byte{0xFD, '7', 'z', 'X', 'Z', 0x00}, []string{".xz"}},
	{Gzip, []byte{0x1F, 0x8B}, []string{".gz", ".gzip"}},
	{Zstd, []byte{0x28, 0xB5, 0x2F, 0xFD}, []string{".zst", ".zstd"}},
	{Bzip2, []byte{'B', 'Z', 'h'}, []string{".bz2"}},
}

// MagicLen is how many leading bytes Sniff needs.
const MagicLen = 6

// Sniff names the format whose magic begins head, or None.
func Sniff(head []byte) Format {
	for _, m := range magics {
		if bytes.HasPrefix(head, m.magic) {
			return m.f
		}
	}
	return None
}

// Trim drops the suffix of format f from name ("os.img.xz" -> "os.img"),
// and names the result after the format when nothing would be left.
func Trim(name string, f Format) string {
	for _, m := range magics {
		if m.f != f {
			continue
		}
		for _, s := range m.suf {
			if len(name) > len(s) && strings.HasSuffix(strings.ToLower(name), s) {
				return name[:len(name)-len(s)]
			}
		}
	}
	return name
}

// Peek returns the buffered reader to read r through and the format its
// first bytes show. A stream shorter than the magic is None.
func Peek(r io.Reader) (*bufio.Reader, Format, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	head, err := br.Peek(MagicLen)
	if err != nil && !errors.Is(err, io.EOF) {
		return br, None, err
	}
	return br, Sniff(head), nil
}

// The decoders' memory limits. A bomb of a few hundred kilobytes that asks
// for a 2 GiB zstd window or a 1.5 GiB xz dictionary would take that much
// RAM on a 1 GB board once its output passes the window.
const (
	// MaxZstdWindow is zstd's own CLI default limit (--memory=128MB):
	// what zstd -19 and zstd --long (window log 27) produce decodes.
	MaxZstdWindow = 128 << 20
	// MaxXZDict covers xz -9 and -9e (64 MiB dictionaries); the default
	// xz -6 uses 8 MiB.
	MaxXZDict = 64 << 20
	// freeAfter: a decoder whose window was bigger hands its memory back
	// to the system when it closes, instead of leaving it to the scavenger.
	freeAfter = 8 << 20
)

// LimitError is a stream whose decoder would need more memory than msdav
// allows; no memory was taken for it.
type LimitError struct {
	Format Format
	Need   int64 // bytes the stream's header asks for
	Limit  int64
}

func (e *LimitError) Error() string {
	how := "zstd -19 --long=27 (or without --long)"
	what := "window"
	if e.Format == XZ {
		how, what = "xz -6 (or up to xz -9)", "dictionary"
	}
	return fmt.Sprintf("the %s stream needs a %s %s, over msdav's limit of %s; recompress it with %s",
		e.Format, mib(e.Need), what, mib(e.Limit), how)
}

// HTTPStatus: the request is well formed, but msdav will not decode it.
func (e *LimitError) HTTPStatus() int { return 422 }

func mib(n int64) string {
	if n >= 1<<30 && n%(1<<30) == 0 {
		return fmt.Sprintf("%d GiB", n>>30)
	}
	return fmt.Sprintf("%d MiB", (n+(1<<20)-1)>>20)
}

// Check refuses, from the first bytes of a stream, one whose first frame
// or block asks for more memory than its decoder is allowed. The decoder
// checks every later frame or block again.
func Check(head []byte, f Format) error {
	var need, limit int64
	switch f {
	case Zstd:
		need, limit = zstdWindow(head), MaxZstdWindow
	case XZ:
		need, limit = xzDict(head), MaxXZDict
	}
	if need > limit {
		return &LimitError{Format: f, Need: need, Limit: limit}
	}
	return nil
}

// zstdWindow reads a zstd frame header's window size (RFC 8878 3.1.1.1),
// or 0 when head is too short to say.
func zstdWindow(head []byte) int64 {
	if len(head) < 6 {
		return 0
	}
	fhd := head[4]
	if fhd&(1<<5) == 0 { // a window descriptor follows
		exp, mant := int64(head[5]>>3), int64(head[5]&7)
		base := int64(1) << (10 + exp)
		return base + base/8*mant
	}
	// Single segment: the window is the content size.
	off := 5
	if d := fhd & 3; d > 0 {
		off += []int{0, 1, 2, 4}[d]
	}
	var n int64
	switch fhd >> 6 {
	case 0:
		if len(head) < off+1 {
			return 0
		}
		n = int64(head[off])
	case 1:
		if len(head) < off+2 {
			return 0
		}
		n = int64(binary.LittleEndian.Uint16(head[off:])) + 256
	case 2:
		if len(head) < off+4 {
			return 0
		}
		n = int64(binary.LittleEndian.Uint32(head[off:]))
	case 3:
		if len(head) < off+8 {
			return 0
		}
		u := binary.LittleEndian.Uint64(head[off:])
		n = int64(min(u, 1<<62))
	}
	return n
}

// xzDict reads the LZMA2 dictionary size of an xz stream's first block,
// or 0 when head does not show it.
func xzDict(head []byte) int64 {
	if len(head) < 13 || head[12] == 0 {
		return 0
	}
	size := (int(head[12]) + 1) * 4
	if len(head) < 12+size {
		return 0
	}
	hdr := head[12 : 12+size]
	flags := hdr[1]
	rest := hdr[2 : size-4]
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} {
		if present {
			_, n := binary.Uvarint(rest)
			if n <= 0 {
				return 0
			}
			rest = rest[n:]
		}
	}
	if len(rest) < 3 || rest[0] != 0x21 || rest[1] != 1 {
		return 0
	}
	d, err := lzma.DecodeDictCap(rest[2])
	if err != nil {
		return 0
	}
	return d
}

// CheckLen is how many leading bytes Check reads at most.
const CheckLen = 12 + 1024

// Reader decompresses r as format f. Close releases decoder goroutines
// and, after a large window, the window's memory.
func Reader(r io.Reader, f Format) (io.ReadCloser, error) {
	switch f {
	case None:
		return io.NopCloser(r), nil
	case XZ:
		// ulikunitz/xz is the limit on xz: about 2.2x the time of xz -dc
		// here. therootcompany/xz (a port of xz-embedded) took 1.75x but
		// has had no release since 2020; this one is kept up, security
		// fixes included.
		x := newXZ(r, MaxXZDict)
		return &freeing{Reader: x, big: func() bool { return x.biggest > freeAfter }}, nil
	case Gzip:
		// Bounded by the format: a 32 KiB window.
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, nil
	case Zstd:
		// One decoding goroutine measured fastest for 1 GiB here (1.20 s,
		// against 1.64 s with 2 and 1.41 s with 4; zstd -dc 1.07 s): the
		// hash and the disk already keep the second core busy.
		zr, err := zstd.NewReader(r, zstd.WithDecoderMaxWindow(MaxZstdWindow), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		// The window is not known here: hand the memory back after every
		// zstd stream (a forced GC, a few milliseconds per image).
		return &freeing{Reader: zstdReader{zr}, close: zr.Close, big: func() bool { return true }}, nil
	case Bzip2:
		// Bounded by the format: blocks of at most 900 kB.
		return io.NopCloser(bzip2.NewReader(r)), nil
	}
	return nil, fmt.Errorf("unknown compression %q", f)
}

// zstdReader turns the decoder's window refusal into a LimitError.
type zstdReader struct{ d *zstd.Decoder }

func (z zstdReader) Read(p []byte) (int, error) {
	n, err := z.d.Read(p)
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		// A frame after the first (Check saw that one): its size is not kept.
		return n, &LimitError{Format: Zstd, Need: MaxZstdWindow + 1, Limit: MaxZstdWindow}
	}
	return n, err
}

// freeing returns a large decoder's memory to the system when it closes:
// Go's scavenger would keep it for minutes, and on a 1 GB board the next
// job needs it.
type freeing struct {
	io.Reader
	close func()
	big   func() bool
}

func (f *freeing) Close() error {
	if f.close != nil {
		f.close()
	}
	big := f.big()
	// Nothing here may keep the decoder reachable while the memory is
	// handed back, or its window stays in the heap until the next GC.
	f.Reader, f.close, f.big = eof{}, nil, func() bool { return false }
	if big {
		debug.FreeOSMemory()
	}
	return nil
}

type eof struct{}

func (eof) Read([]byte) (int, error) { return 0, io.EOF }
