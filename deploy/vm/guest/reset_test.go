//go:build vmguest

package guest

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hostGivesUpDuringSlowRead serves image by URL from a server that holds
// one Range request for longer than the host's SCSI timeout (set to 3 s):
// the host aborts the READ and resets the device while msdav still waits
// on the medium. When the medium answers, that READ's data must not go
// out as the answer to the host's next command: the host's reads after the
// reset return the image's bytes, and the drive stays usable.
func hostGivesUpDuringSlowRead(t *testing.T, image string, size int64) {
	var holdNext atomic.Bool
	files := http.FileServer(http.Dir("/tmp/store"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" && holdNext.CompareAndSwap(true, false) {
			time.Sleep(7 * time.Second) // under the drive's 10 s limit
		}
		files.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	call(t, "DELETE", "/api/drives/0?force=1", "")
	url := "http://" + ln.Addr().String() + "/" + strings.TrimPrefix(image, "/tmp/store/")
	if code, m := call(t, "PUT", "/api/drives/0", `{"url":"`+url+`","cdrom":false}`); code != 200 {
		t.Fatalf("attach URL: %d %v", code, m)
	}
	defer call(t, "DELETE", "/api/drives/0?force=1", "")
	var dev string
	waitFor(t, "the URL image as /dev/sd?", 30*time.Second, func() bool {
		for _, d := range []string{"/dev/sda", "/dev/sdb", "/dev/sdc"} {
			if deviceSize(d) == size {
				dev = d
				return true
			}
		}
		return false
	})
	timeout := "/sys/block/" + strings.TrimPrefix(dev, "/dev/") + "/device/timeout"
	if err := os.WriteFile(timeout, []byte("3"), 0o644); err != nil {
		t.Fatal(err)
	}
	want, err := os.Open(image)
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	buf, _ := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	defer unix.Munmap(buf)
	check := func(off int64, n int) {
		t.Helper()
		if _, err := unix.Pread(fd, buf[:n], off); err != nil {
			t.Fatalf("read %d bytes at %d of %s: %v", n, off, dev, err)
		}
		ref := make([]byte, n)
		want.ReadAt(ref, off)
		if !bytes.Equal(buf[:n], ref) {
			t.Fatalf("the %d bytes at %d of %s differ from the image", n, off, dev)
		}
	}
	resets := func() int {
		out, _ := exec.Command("dmesg").Output()
		return strings.Count(string(out), "reset high-speed USB device")
	}
	before := resets()
	holdNext.Store(true)
	start := time.Now()
	off := size - 512<<20 // not read before, so not in the drive's cache
	check(off, 64<<10)
	took := time.Since(start)
	if holdNext.Load() {
		t.Fatal("the server never held a request: the test proved nothing")
	}
	// Then a stretch of reads in both directions of the image: any
	// answer shifted by one command shows as wrong bytes.
	for i := range 16 {
		check(off-int64(i+1)<<20, 1<<20)
		check(int64(i)<<20, 4096)
	}
	n := resets() - before
	t.Logf("a READ held 7 s by the image's server, the host's timeout 3 s: it returned the right bytes after %s and %d USB resets, and 32 reads after it were right",
		took.Round(time.Millisecond), n)
	if took < 3*time.Second || n == 0 {
		t.Errorf("the held READ took %s and %d resets: the host never timed out", took, n)
	}
	// One reset is the host's answer to its timeout. Measured with the
	// abandoned READ's answer sent anyway: it answered the host's TEST
	// UNIT READY after the reset, a second reset followed, 14.6 s in all.
	if n > 1 {
		t.Errorf("the host reset the drive %d times: an answer went to the wrong command", n)
	}
}
