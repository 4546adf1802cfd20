//go:build vmtest

package vm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// cdLimit is the last byte f_mass_storage serves of a CD: 1,151,999 blocks.
const cdLimit = 1151999 * 2048

// udfPayload is the file the guest reads back from the UDF disc: the same
// bytes the guest test computes (guest.udfPayload).
func udfPayload() []byte {
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte(i*13 + i>>12 + 1)
	}
	return b
}

// udfPack builds a UDF disc image (genisoimage -udf: UDF 1.02 beside
// ISO 9660) bigger than a CD, whose payload file lies past the CD limit,
// behind a sparse filler, and writes it to out as a sparse pack: the
// image's size, then each run of non-zero 2 KiB blocks as offset, length,
// bytes. The image itself is 2.5 GB; the pack is a few hundred KiB, and the
// guest lays it out again as a sparse file. It returns false (and logs
// why) when genisoimage is not installed outside CI.
func udfPack(t *testing.T, out string) bool {
	t.Helper()
	if _, err := exec.LookPath("genisoimage"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs genisoimage to make a UDF disc (.ci/run installs it)")
		}
		t.Log("genisoimage is not installed here; the guest's UDF check skips")
		return false
	}
	src := filepath.Join(t.TempDir(), "udfsrc")
	os.MkdirAll(src, 0o755)
	// genisoimage lays out file data in name order: the filler first.
	filler := filepath.Join(src, "aaa-filler.bin")
	if err := os.WriteFile(filler, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filler, 2500000000); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "hello.txt"), []byte("hello from a UDF disc\n"), 0o644)
	payload := udfPayload()
	os.WriteFile(filepath.Join(src, "zzz-payload.bin"), payload, 0o644)

	cmd := exec.Command("genisoimage", "-quiet", "-udf", "-V", "MSDAVUDF", src)
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pack := createSparsePack(t, out)
	var (
		off, runStart int64 = 0, -1
		run           bytes.Buffer
		at            int64 = -1 // where the payload starts in the image
		block               = make([]byte, 2048)
		zero                = make([]byte, 2048)
	)
	flush := func() {
		if runStart < 0 {
			return
		}
		pack.run(runStart, run.Bytes())
		run.Reset()
		runStart = -1
	}
	r := bufio.NewReaderSize(stdout, 1<<20)
	for {
		n, err := io.ReadFull(r, block)
		if n > 0 {
			b := block[:n]
			if bytes.Equal(b, zero[:n]) {
				flush()
			} else {
				if runStart < 0 {
					runStart = off
				}
				run.Write(b)
				if at < 0 && bytes.HasPrefix(b, payload[:64]) {
					at = off
				}
			}
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	flush()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("genisoimage: %v\n%s", err, stderr.String())
	}
	pack.close(t, off)
	if at <= cdLimit {
		t.Fatalf("the UDF payload starts at byte %d, not past the CD limit (%d): the check would prove nothing", at, int64(cdLimit))
	}
	fi, _ := os.Stat(out)
	t.Logf("UDF disc: %d bytes, payload at byte %d (block %d, past the CD limit of block 1151999); sparse pack %d bytes", off, at, at/2048, fi.Size())
	return true
}

// sparsePack writes the format the guest's unpackSparse lays out again as
// a sparse file: a magic line, each run of bytes as its offset, length and
// bytes, then offset -1 and the image's size.
type sparsePack struct {
	f *os.File
	w *bufio.Writer
}

func createSparsePack(t *testing.T, out string) *sparsePack {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	p := &sparsePack{f: f, w: bufio.NewWriter(f)}
	fmt.Fprintf(p.w, "MSDAVSPARSE1\n")
	return p
}

func (p *sparsePack) run(at int64, b []byte) {
	binary.Write(p.w, binary.BigEndian, at)
	binary.Write(p.w, binary.BigEndian, int64(len(b)))
	p.w.Write(b)
}

// close ends the pack of an image of size bytes.
func (p *sparsePack) close(t *testing.T, size int64) {
	t.Helper()
	binary.Write(p.w, binary.BigEndian, int64(-1))
	binary.Write(p.w, binary.BigEndian, size)
	if err := p.w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := p.f.Close(); err != nil {
		t.Fatal(err)
	}
}
