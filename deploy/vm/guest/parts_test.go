//go:build vmguest

package guest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// An exFAT stick mounted root-owned (no umask) inside the store of an
// msdav that does not run as root: the part is listed read-only with the
// reason and the fix; remounted with umask=0000 the reason is gone, an
// upload lands on the stick, and attached as a flash drive (by a msdav that
// runs as root, with a gadget) the USB host reads it.
func TestExfatPart(t *testing.T) {
	if _, err := os.Stat("/fixtures/exfat.img"); err != nil {
		t.Skip("no exFAT fixture (the host lacked mkfs.exfat from exfatprogs)")
	}
	const root = "/tmp/nobody"
	os.MkdirAll(root+"/usb", 0o755)
	os.Chown(root, 65534, 65534)
	os.WriteFile("/tmp/nobody.toml", []byte(`[server]
listen = "127.0.0.1:8083"
runtime_dir = "/tmp/nobody-run"
[storage]
root = "/tmp/nobody"
[gadget]
mode = "disabled"
`), 0o644)
	os.MkdirAll("/tmp/nobody-run", 0o700)
	os.Chown("/tmp/nobody-run", 65534, 65534)
	run(t, "mount", "-t", "exfat", "-o", "loop", "/fixtures/exfat.img", root+"/usb")
	srv := exec.Command("/msdav", "serve", "-config", "/tmp/nobody.toml")
	srv.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	srv.Stdout, srv.Stderr = os.Stdout, os.Stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Signal(syscall.SIGTERM); srv.Wait() }()
	const base = "http://127.0.0.1:8083"
	part := func() map[string]any {
		var v struct{ Parts []map[string]any }
		for i := 0; i < 200; i++ {
			if r, err := http.Get(base + "/api/images"); err == nil {
				json.NewDecoder(r.Body).Decode(&v)
				r.Body.Close()
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		for _, p := range v.Parts {
			if p["path"] == "usb" {
				return p
			}
		}
		t.Fatalf("no usb part in %v", v.Parts)
		return nil
	}
	p := part()
	reason, _ := p["reason"].(string)
	if p["fstype"] != "exfat" || p["writable"] != false || !strings.Contains(reason, "umask=0000") {
		t.Errorf("root-owned exFAT: %v", p)
	}
	t.Logf("root-owned exFAT, as uid 65534: %q", reason)
	run(t, "umount", root+"/usb")
	run(t, "mount", "-t", "exfat", "-o", "loop,umask=0000", "/fixtures/exfat.img", root+"/usb")
	if p := part(); p["writable"] != true || p["reason"] != nil {
		t.Errorf("exFAT with umask=0000: %v", p)
	}
	req, _ := http.NewRequest("PUT", base+"/dav/usb/tools.img", strings.NewReader(strings.Repeat("x", 1<<20)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("upload onto the stick: %v %v", err, resp)
	}
	resp.Body.Close()
	if fi, err := os.Stat(root + "/usb/tools.img"); err != nil || fi.Size() != 1<<20 {
		t.Errorf("the upload is not on the stick: %v", err)
	}
	fmt.Println("exFAT part: reason shown, then cleared")

	// The image on the stick attached as a flash drive (a msdav as root,
	// with a gadget): the USB host reads the stick's bytes.
	srv.Process.Signal(syscall.SIGTERM)
	srv.Wait()
	box := startBoxWith(t, "exFAT", "8086", `[server]
listen = "127.0.0.1:8086"
runtime_dir = "/tmp/exfat-run"
[storage]
root = "/tmp/nobody"
[gadget]
mode = "configfs"
name = "msdavA"
udc = "dummy_udc.0"
drives = 1
`)
	defer func() { box.cmd.Process.Signal(syscall.SIGTERM); box.cmd.Wait() }()
	start := time.Now()
	if code, out := box.do(t, "PUT", "/api/drives/0", `{"image":"usb/tools.img","cdrom":false}`); code != 200 {
		t.Fatalf("attach the stick's image: %d %s", code, out)
	}
	dev, _ := waitBlockOnBus(t, "the stick's image on the USB host", "usb1", 1<<20, 20*time.Second)
	got, err := os.ReadFile(dev)
	if err != nil || string(got) != strings.Repeat("x", 1<<20) {
		t.Fatalf("%s does not read as the stick's tools.img (%d bytes, %v)", dev, len(got), err)
	}
	t.Logf("the stick's image attached: %s readable and identical %s after the API call", dev, time.Since(start).Round(time.Millisecond))
	if code, out := box.do(t, "DELETE", "/api/drives/0", ""); code != 200 {
		t.Errorf("eject: %d %s", code, out)
	}
	run(t, "umount", root+"/usb")
}
