package unpack

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"
)

// zstdFrame is one zstd frame holding data as a raw block, declaring a
// window of 1<<windowLog, as zstd --long=windowLog writes from a pipe.
func zstdFrame(windowLog int, data []byte) []byte {
	f := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, byte(windowLog-10) << 3}
	var h [4]byte
	binary.LittleEndian.PutUint32(h[:], uint32(len(data))<<3|1) // raw, last
	return append(append(f, h[:3]...), data...)
}

// A window past msdav's limit is refused naming the limit and how to
// recompress, never a crash or the decoder's bare "window size exceeded",
// on every build: on 32-bit ARM the decoder compares the window as an int,
// where 2 GiB (--long=31) wraps.
func TestZstdWindowLimit(t *testing.T) {
	data := []byte("an image made with zstd --long")
	for _, c := range []struct {
		log int
		ok  bool
	}{
		{27, MaxZstdWindow >= 1<<27},
		{30, MaxZstdWindow >= 1<<30},
		{31, false},
		{32, false},
	} {
		zr, err := Reader(bytes.NewReader(zstdFrame(c.log, data)), Zstd)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		zr.Close()
		switch {
		case c.ok && (err != nil || !bytes.Equal(got, data)):
			t.Errorf("window 1<<%d: %q, %v", c.log, got, err)
		case !c.ok && (err == nil || !strings.Contains(err.Error(), "--long=") || !strings.Contains(err.Error(), "limit")):
			t.Errorf("window 1<<%d: error %v, want one naming the limit", c.log, err)
		}
	}
}
