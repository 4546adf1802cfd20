package unpack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed (CI must install it in .ci/run)", name)
		}
		t.Skipf("needs %s (Debian package); skipping", name)
	}
	return p
}

// compress runs a compressor CLI over n zero bytes.
func compress(t *testing.T, n int, tool string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(needTool(t, tool), args...)
	cmd.Stdin = io.LimitReader(zeros{}, int64(n))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v", tool, args, err)
	}
	return out
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// withDict rewrites the dictionary size of an xz stream's first block
// header (its LZMA2 data stays valid: a bigger dictionary decodes it too).
func withDict(t *testing.T, x []byte, code byte) []byte {
	t.Helper()
	b := bytes.Clone(x)
	size := (int(b[12]) + 1) * 4
	hdr := b[12 : 12+size]
	i := bytes.Index(hdr[2:], []byte{0x21, 0x01})
	if i < 0 {
		t.Fatal("no LZMA2 filter in the block header")
	}
	hdr[2+i+2] = code
	binary.LittleEndian.PutUint32(hdr[size-4:], crc32.ChecksumIEEE(hdr[:size-4]))
	return b
}

// Bombs: streams that ask for a window or dictionary far beyond what their
// data needs. Each is refused before its decoder takes the memory.
func bombs(t *testing.T) []struct {
	name string
	f    Format
	data []byte
	how  string
} {
	xz6 := compress(t, 4<<20, "xz", "-6", "-T1", "-c")
	return []struct {
		name string
		f    Format
		data []byte
		how  string
	}{
		{"zstd --long=31", Zstd, compress(t, 4<<20, "zstd", "-q", "--long=31", "-c"), "zstd -19 --long=27"},
		{"xz 1.5 GiB dictionary", XZ, withDict(t, xz6, 37), "xz -6"},
		{"xz 4 GiB dictionary", XZ, withDict(t, xz6, 40), "xz -6"},
		// The limit is per block: a second stream's block is checked too.
		{"xz second stream", XZ, append(bytes.Clone(xz6), withDict(t, xz6, 37)...), "xz -6"},
	}
}

func TestBombsRefusedBeforeAllocating(t *testing.T) {
	for _, b := range bombs(t) {
		t.Run(b.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			r, err := Reader(bytes.NewReader(b.data), b.f)
			if err == nil {
				_, err = io.Copy(io.Discard, r)
				r.Close()
			}
			runtime.ReadMemStats(&after)
			grew := int64(after.TotalAlloc - before.TotalAlloc)
			var le *LimitError
			if !errors.As(err, &le) {
				t.Fatalf("decoding gave %v after allocating %d MiB; want a LimitError", err, grew>>20)
			}
			if grew > 32<<20 {
				t.Errorf("refused, but only after allocating %d MiB", grew>>20)
			}
			if msg := err.Error(); !strings.Contains(msg, "MiB") || !strings.Contains(msg, b.how) {
				t.Errorf("message %q: want the limit and %q", msg, b.how)
			}
		})
	}
}

// Check refuses a bomb from its first bytes, before anything is stored;
// sizes that cannot fit a 32-bit address space are refused the same way.
func TestCheck(t *testing.T) {
	xz6 := compress(t, 1<<20, "xz", "-6", "-T1", "-c")
	xz9 := compress(t, 1<<20, "xz", "-9", "-T1", "-c")
	zst := compress(t, 1<<20, "zstd", "-q", "-19", "--long=27", "-c")
	single := []byte{0x28, 0xB5, 0x2F, 0xFD, 0xA0, 0, 0, 0, 0xC0} // single segment, 3 GiB content
	for _, tc := range []struct {
		name string
		head []byte
		f    Format
		ok   bool
	}{
		{"xz -6", xz6, XZ, true},
		{"xz -9", xz9, XZ, true},
		{"zstd -19 --long=27", zst, Zstd, true},
		{"zstd window 2 GiB", []byte{0x28, 0xB5, 0x2F, 0xFD, 0x04, 0xA8}, Zstd, false},
		{"zstd window 256 MiB", []byte{0x28, 0xB5, 0x2F, 0xFD, 0x04, 0x90}, Zstd, false},
		{"zstd single segment 3 GiB", single, Zstd, false},
		{"xz 1.5 GiB", withDict(t, xz6, 37), XZ, false},
		{"xz 4 GiB", withDict(t, xz6, 40), XZ, false},
		{"short", []byte{0x28, 0xB5, 0x2F, 0xFD}, Zstd, true},
		{"gzip", []byte{0x1F, 0x8B}, Gzip, true},
	} {
		err := Check(tc.head, tc.f)
		var le *LimitError
		if tc.ok != (err == nil) || (err != nil && !errors.As(err, &le)) {
			t.Errorf("%s: Check = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// The xz walker decodes what xz writes: every check type, several blocks,
// several streams; and it notices damage.
func TestXZStreams(t *testing.T) {
	want := 3<<20 + 17
	for _, args := range [][]string{
		{"-6", "-T1"}, {"-1", "-C", "crc32"}, {"-1", "-C", "crc64"}, {"-1", "-C", "sha256"}, {"-1", "-C", "none"},
		{"-1", "-T2", "--block-size=1MiB"},
	} {
		x := compress(t, want, "xz", append(args, "-c")...)
		for _, data := range [][]byte{x, append(append(bytes.Clone(x), 0, 0, 0, 0), x...)} {
			r, _ := Reader(bytes.NewReader(data), XZ)
			n, err := io.Copy(io.Discard, r)
			if err != nil || n != int64(want)*int64(1+bytes.Count(data[6:], xzMagic)) {
				t.Errorf("xz %v (%d bytes): read %d, %v", args, len(data), n, err)
			}
		}
		bad := bytes.Clone(x)
		bad[len(bad)-40] ^= 1 // the check or the index
		r, _ := Reader(bytes.NewReader(bad), XZ)
		if _, err := io.Copy(io.Discard, r); err == nil && !slices.Contains(args, "none") {
			t.Errorf("xz %v: a damaged stream read without error", args)
		}
		if r, _ := Reader(bytes.NewReader(x[:len(x)/2]), XZ); true {
			if _, err := io.Copy(io.Discard, r); err == nil {
				t.Errorf("xz %v: half a stream read without error", args)
			}
		}
	}
}

// A large window's memory goes back to the system when the decoder
// closes, not minutes later: the next job on a 1 GB board needs it.
func TestMemoryGivenBack(t *testing.T) {
	block := make([]byte, 16<<20)
	for i := range block {
		block[i] = byte(i*7919>>3) ^ byte(i>>13)
	}
	cmd := exec.Command(needTool(t, "zstd"), "-q", "-1", "--long=27", "-c")
	var parts []io.Reader
	for range 10 {
		parts = append(parts, bytes.NewReader(block))
	}
	cmd.Stdin = io.MultiReader(parts...)
	z, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		f    Format
		data []byte
	}{{"zstd --long=27", Zstd, z}} {
		r, err := Reader(bytes.NewReader(tc.data), tc.f)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, r)
		if err != nil || n != 160<<20 {
			t.Fatalf("%s: %d bytes, %v", tc.name, n, err)
		}
		var during runtime.MemStats
		runtime.ReadMemStats(&during)
		r.Close()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		held := int64(after.HeapSys-after.HeapReleased) >> 20
		t.Logf("%s: heap held %d MiB while decoding, %d MiB after Close", tc.name, int64(during.HeapSys-during.HeapReleased)>>20, held)
		if held > 48 {
			t.Errorf("%s: %d MiB of heap still held from the system after Close", tc.name, held)
		}
		runtime.KeepAlive(r) // as a caller's deferred Close keeps it: the window must not be

	}
}
