package unpack

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"
)

func TestSniffAndTrim(t *testing.T) {
	for _, tc := range []struct {
		head []byte
		name string
		f    Format
		want string
	}{
		{[]byte{0xFD, '7', 'z', 'X', 'Z', 0}, "os.img.xz", XZ, "os.img"},
		{[]byte{0xFD, '7', 'z', 'X', 'Z', 0}, "OS.IMG.XZ", XZ, "OS.IMG"},
		{[]byte{0x1F, 0x8B, 8}, "os.img.gz", Gzip, "os.img"},
		{[]byte{0x28, 0xB5, 0x2F, 0xFD, 0}, "haos.img.zst", Zstd, "haos.img"},
		{[]byte("BZh91AY"), "a.iso.bz2", Bzip2, "a.iso"},
		{[]byte("BZh91AY"), "no-suffix", Bzip2, "no-suffix"},
		{[]byte("CD001"), "plain.iso.xz", None, "plain.iso.xz"}, // named .xz, not xz: kept as named
		{[]byte{0x1F, 0x8B}, ".gz", Gzip, ".gz"},
		{[]byte{0x1F}, "short", None, "short"},
	} {
		if f := Sniff(tc.head); f != tc.f {
			t.Errorf("Sniff(% x) = %q, want %q", tc.head, f, tc.f)
		}
		if got := Trim(tc.name, tc.f); got != tc.want {
			t.Errorf("Trim(%q, %q) = %q, want %q", tc.name, tc.f, got, tc.want)
		}
	}
}

// Peek leaves every byte to be read, also of a stream shorter than a magic.
func TestPeek(t *testing.T) {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write([]byte("the image"))
	w.Close()
	for _, tc := range []struct {
		in   []byte
		f    Format
		want string
	}{
		{buf.Bytes(), Gzip, "the image"},
		{[]byte("abc"), None, "abc"},
		{nil, None, ""},
	} {
		br, f, err := Peek(bytes.NewReader(tc.in))
		if err != nil || f != tc.f {
			t.Fatalf("Peek: %q %v, want %q", f, err, tc.f)
		}
		r, err := Reader(br, f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || string(got) != tc.want {
			t.Errorf("read %q %v, want %q", got, err, tc.want)
		}
	}
}
