//go:build vmguest

package guest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func storeRO(t *testing.T, dir string) bool {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Flags&unix.ST_RDONLY != 0
}

func waitRO(t *testing.T, dir, when string) {
	t.Helper()
	took := waitFor(t, "store ro "+when, 5*time.Second, func() bool { return storeRO(t, dir) })
	t.Logf("store ro %s after %s", when, took.Round(time.Millisecond))
}

// A store ro at rest (storage.remount = true) with the server running and
// the CLI used beside it, as issue 11 found broken: a flash image made with
// msdav mkimage is attached rw, written by the host, ejected and downloaded
// with the host's file in it, and the store is ro at every idle moment.
func TestGuardedStoreWithCLI(t *testing.T) {
	const dir = "/tmp/gstore"
	os.MkdirAll(dir, 0o755)
	run(t, "mount", "-t", "tmpfs", "-o", "size=160m,ro", "tmpfs", dir)
	os.WriteFile("/tmp/msdav.toml", []byte(`[storage]
root = "/tmp/gstore"
remount = true
remount_grace = "200ms"
[gadget]
mode = "configfs"
drives = 1
`), 0o644)
	startMsdav(t)
	defer func() { server.Process.Signal(syscall.SIGTERM); server.Wait() }()
	waitRO(t, dir, "after start")
	cli := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("/msdav", append(args[:1:1], append([]string{"-config", "/tmp/msdav.toml"}, args[1:]...)...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("msdav %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// A failing CLI command must not flip the store behind the server.
	if out, err := exec.Command("/msdav", "mkimage", "-config", "/tmp/msdav.toml", "-size", "16M", "small.img").CombinedOutput(); err == nil {
		t.Fatalf("a 16M FAT32 image was made: %s", out)
	}
	put(t, "/dav/first.bin", "/fixtures/test.iso")
	cli("mkimage", "-size", "64M", "-label", "CLI", "flash.img")
	waitRO(t, dir, "after mkimage through the server")

	start := time.Now()
	code, m := call(t, "PUT", "/api/drives/0", `{"image":"flash.img","cdrom":false,"rw":true}`)
	if code != 200 || m["rw"] != true {
		t.Fatalf("attach the CLI-made image rw: %d %v", code, m)
	}
	waitFor(t, "/dev/sda", 20*time.Second, func() bool { return deviceSize("/dev/sda") == 64<<20 })
	t.Logf("rw flash visible after %s", time.Since(start).Round(time.Millisecond))
	if storeRO(t, dir) {
		t.Fatal("store ro under a drive attached rw")
	}
	waitFor(t, "/dev/sda1", 10*time.Second, func() bool { _, err := os.Stat("/dev/sda1"); return err == nil })
	os.MkdirAll("/mnt/g", 0o755)
	run(t, "mount", "-t", "vfat", "/dev/sda1", "/mnt/g")
	marker := fmt.Sprintf("guarded store, host write %d", time.Now().UnixNano())
	if err := os.WriteFile("/mnt/g/HOST.TXT", []byte(marker), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "umount", "/mnt/g")
	// Eject through the CLI, which goes through the server and flushes.
	if out := cli("drive", "-eject"); !strings.HasPrefix(out, "Image file:  \n") {
		t.Fatalf("msdav drive -eject: %q", out)
	}
	waitRO(t, dir, "after the rw drive was ejected")
	resp, err := http.Get(base + "/dav/flash.img")
	if err != nil {
		t.Fatal(err)
	}
	img, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(img, []byte(marker)) {
		t.Fatal("the downloaded image lacks the host's file")
	}
	// msdav remount rw holds the store rw through the server until ro.
	if out := cli("remount", "rw"); !strings.Contains(out, "is now rw") {
		t.Fatalf("remount rw: %q", out)
	}
	time.Sleep(time.Second) // past the grace
	if storeRO(t, dir) {
		t.Fatal("store went ro while msdav remount rw held it")
	}
	if err := os.WriteFile(dir+"/by-scp.img", []byte("scp"), 0o644); err != nil {
		t.Fatalf("write while held rw: %v", err)
	}
	if out := cli("remount", "ro"); !strings.Contains(out, "is now ro") {
		t.Fatalf("remount ro: %q", out)
	}
	if !storeRO(t, dir) {
		t.Fatal("store rw after msdav remount ro")
	}
	if code, m := call(t, "GET", "/api/images", ""); code != 200 || !strings.Contains(fmt.Sprint(m["images"]), "by-scp.img") {
		t.Errorf("catalog after scp: %d %v", code, m)
	}
}
