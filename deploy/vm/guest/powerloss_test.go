//go:build vmguest

package guest

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The store for the power-loss tests is an ext4 filesystem on the VM's
// virtio disk, ro at rest (storage.remount = true), as on a real box.
func startOnDisk(t *testing.T) {
	t.Helper()
	os.MkdirAll("/tmp/store", 0o755)
	run(t, "mount", "-t", "ext4", "-o", "ro", "/dev/vda", "/tmp/store")
	os.WriteFile("/tmp/msdav.toml", []byte(`[storage]
root = "/tmp/store"
remount = true
remount_grace = "200ms"
[gadget]
mode = "configfs"
drives = 1
`), 0o644)
	startMsdav(t)
}

// fileSum is the hex sha256 of a whole file.
func fileSum(t *testing.T, p string) string {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sum(t, p, fi.Size())
	return hex.EncodeToString(s[:])
}

// TestPowerLossBefore stores a complete image, lets the host write into a
// flash image attached rw, starts an upload, and cuts the power in the
// middle of it: sysrq b reboots without syncing anything.
func TestPowerLossBefore(t *testing.T) {
	startOnDisk(t)
	put(t, "/dav/keep.iso", "/fixtures/test.iso")
	put(t, "/dav/rw.img", "/fixtures/flash.img")
	fmt.Printf("KEEP-SHA256 %s\n", fileSum(t, "/fixtures/test.iso"))
	if code, m := call(t, "PUT", "/api/drives/0", `{"image":"rw.img","rw":true}`); code != 200 {
		t.Fatalf("attach rw: %d %v", code, m)
	}
	waitFor(t, "the flash drive", 20*time.Second, func() bool { return deviceSize("/dev/sda") == 64<<20 })
	// A crash of msdav with a drive attached rw: the restart must come up
	// (the kernel still holds the image open for writing, so the store
	// cannot go ro) and report the drive as it is.
	server.Process.Kill()
	server.Wait()
	startMsdav(t)
	if code, m := call(t, "GET", "/api/drives/0", ""); code != 200 || m["image"] != "rw.img" || m["rw"] != true {
		t.Fatalf("after kill -9 with a rw drive: %d %v", code, m)
	}
	os.MkdirAll("/mnt/f", 0o755)
	run(t, "mount", "-t", "vfat", "/dev/sda", "/mnt/f")
	os.WriteFile("/mnt/f/SAVED.TXT", []byte("written and synced by the host before the power cut"), 0o644)
	// The host syncs, but usb-storage sends no SYNCHRONIZE CACHE (it assumes
	// a write-through cache): the data sits in the box's page cache until
	// msdav's periodic flush of rw images (every second) makes it durable.
	run(t, "sync")
	time.Sleep(2500 * time.Millisecond)
	// An upload that will never finish.
	pr, pw := io.Pipe()
	go func() {
		req, _ := http.NewRequest("PUT", base+"/dav/partial.iso", pr)
		req.ContentLength = 32 << 20
		http.DefaultClient.Do(req)
	}()
	pw.Write(make([]byte, 8<<20))
	time.Sleep(500 * time.Millisecond)
	fmt.Println("POWER-CUT now")
	time.Sleep(300 * time.Millisecond) // let the console drain; nothing is synced meanwhile
	os.WriteFile("/proc/sys/kernel/sysrq", []byte("1"), 0o644)
	os.WriteFile("/proc/sysrq-trigger", []byte("b"), 0o200)
	time.Sleep(10 * time.Second)
	t.Fatal("still running after sysrq b")
}

// TestPowerLossAfter boots on the same disk: no partial image is listed,
// the complete one has its bytes, the host's synced write is in the flash
// image, and the store is ro again once msdav has started.
func TestPowerLossAfter(t *testing.T) {
	startOnDisk(t)
	code, m := call(t, "GET", "/api/images", "")
	if code != 200 {
		t.Fatalf("images: %d %v", code, m)
	}
	var paths []string
	for _, im := range m["images"].([]any) {
		paths = append(paths, im.(map[string]any)["path"].(string))
	}
	if strings.Join(paths, ",") != "keep.iso,rw.img" {
		t.Errorf("images after the power cut: %v, want keep.iso and rw.img only", paths)
	}
	if ents, _ := os.ReadDir("/tmp/store"); true {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".msdav-upload") {
				t.Errorf("upload temp survived the restart: %s", e.Name())
			}
		}
	}
	fmt.Printf("KEEP-SHA256-AFTER %s\n", fileSum(t, "/tmp/store/keep.iso"))
	img, _ := os.ReadFile("/tmp/store/rw.img")
	if !strings.Contains(string(img), "written and synced by the host before the power cut") {
		t.Error("the host's synced write is not in the flash image after the power cut")
	}
	out, _ := exec.Command("grep", " /tmp/store ", "/proc/mounts").Output()
	if !strings.Contains(string(out), " ro,") {
		t.Errorf("store not ro after start: %s", out)
	}
	server.Process.Signal(os.Interrupt)
	server.Wait()
	run(t, "umount", "/tmp/store")
}
