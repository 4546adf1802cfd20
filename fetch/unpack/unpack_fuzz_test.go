package unpack

import (
	"bytes"
	"io"
	"testing"
)

// FuzzReader feeds any bytes to every decoder, the xz block walker above
// all: errors are fine, a panic or a decoder past its memory limit is not.
func FuzzReader(f *testing.F) {
	f.Add([]byte{0xFD, '7', 'z', 'X', 'Z', 0, 0, 4, 0xE6, 0xD6, 0xB4, 0x46, 2, 0, 0x21, 1, 0x16, 0, 0, 0})
	f.Add([]byte{0x28, 0xB5, 0x2F, 0xFD, 0x04, 0xA8, 0, 0})
	f.Add([]byte{0x1F, 0x8B, 8, 0})
	f.Add([]byte("BZh91AY&SY"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, format, _ := Peek(bytes.NewReader(b))
		_ = Check(b, format)
		for _, f := range []Format{format, XZ} {
			r, err := Reader(bytes.NewReader(b), f)
			if err != nil {
				continue
			}
			io.Copy(io.Discard, io.LimitReader(r, 64<<20))
			r.Close()
		}
	})
}
