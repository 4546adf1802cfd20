//go:build vmguest

// Package guest runs inside the qemu VM: it drives msdav through its HTTP
// API and checks what the USB host side of dummy_hcd sees.
package guest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const base = "http://127.0.0.1:8080"

var server *exec.Cmd

// serverLog is what the latest startMsdav's server has logged so far.
var serverLog lockedBuffer

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedBuffer) Reset() {
	l.mu.Lock()
	l.b.Reset()
	l.mu.Unlock()
}

func startMsdav(t *testing.T) {
	t.Helper()
	server = exec.Command("/msdav", "serve", "-config", "/tmp/msdav.toml")
	serverLog.Reset()
	server.Stdout = io.MultiWriter(os.Stdout, &serverLog)
	server.Stderr = server.Stdout
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ { // 15 s: TCG on a loaded CI machine is slow
		if r, err := http.Get(base + "/healthz"); err == nil {
			r.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("msdav did not come up")
}

func call(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func waitFor(t *testing.T, what string, within time.Duration, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// deviceSize is the size the host sees, 0 while there is no medium.
func deviceSize(dev string) int64 {
	f, err := os.Open(dev)
	if err != nil {
		return 0
	}
	defer f.Close()
	n, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0
	}
	return n
}

func sum(t *testing.T, path string, n int64) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, f, n); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v %s", name, args, err, out)
	}
}

func put(t *testing.T, path, file string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	req, _ := http.NewRequest("PUT", base+path, f)
	req.ContentLength = fi.Size()
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("PUT %s: %v %v", path, err, resp)
	}
	resp.Body.Close()
}

func TestGuest(t *testing.T) {
	os.MkdirAll("/tmp/store", 0o755)
	os.WriteFile("/tmp/msdav.toml", []byte(`[storage]
root = "/tmp/store"
[gadget]
mode = "configfs"
drives = 2
[fetch]
allow_private = true
`), 0o644)
	startMsdav(t)
	put(t, "/dav/test.iso", "/fixtures/test.iso")
	put(t, "/dav/flash.img", "/fixtures/flash.img")
	iso, _ := os.Stat("/fixtures/test.iso")

	t.Run("cd shows as sr0 with identical bytes", func(t *testing.T) {
		start := time.Now()
		code, m := call(t, "PUT", "/api/drives/0", `{"image":"test.iso","cdrom":true,"rw":false}`)
		if code != 200 || m["media"] != "cd" {
			t.Fatalf("attach: %d %v", code, m)
		}
		waitFor(t, "/dev/sr0 with the medium", 20*time.Second, func() bool { return deviceSize("/dev/sr0") == iso.Size() })
		t.Logf("attach-to-visible latency (API call to /dev/sr0 readable at full size): %s", time.Since(start).Round(time.Millisecond))
		if sum(t, "/dev/sr0", iso.Size()) != sum(t, "/fixtures/test.iso", iso.Size()) {
			t.Fatal("/dev/sr0 differs from the ISO")
		}
	})
	t.Run("cd mounts as iso9660", func(t *testing.T) {
		os.MkdirAll("/mnt/cd", 0o755)
		run(t, "mount", "-t", "iso9660", "-o", "ro", "/dev/sr0", "/mnt/cd")
		b, err := os.ReadFile("/mnt/cd/hello.txt")
		if err != nil || string(b) != "hello from msdav\n" {
			t.Fatalf("hello.txt: %q %v", b, err)
		}
	})
	t.Run("eject while host has it mounted is 409, forced works", func(t *testing.T) {
		code, m := call(t, "DELETE", "/api/drives/0", "")
		if code != 409 {
			t.Fatalf("eject of a mounted CD: %d %v", code, m)
		}
		code, m = call(t, "DELETE", "/api/drives/0?force=1", "")
		if code != 200 || m["image"] != nil {
			t.Fatalf("forced eject: %d %v", code, m)
		}
		exec.Command("umount", "-l", "/mnt/cd").Run()
	})
	t.Run("attached image is 423 on the share", func(t *testing.T) {
		if code, m := call(t, "PUT", "/api/drives/0", `{"image":"test.iso","cdrom":true}`); code != 200 {
			t.Fatalf("attach: %d %v", code, m)
		}
		req, _ := http.NewRequest("DELETE", base+"/dav/test.iso", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 423 || !strings.Contains(string(b), "drive 0") {
			t.Fatalf("DELETE of an attached image: %d %s", resp.StatusCode, b)
		}
	})
	t.Run("restart reports the same attachment", func(t *testing.T) {
		server.Process.Signal(syscall.SIGKILL)
		server.Wait()
		startMsdav(t)
		code, m := call(t, "GET", "/api/drives/0", "")
		if code != 200 || m["image"] != "test.iso" || m["cdrom"] != true {
			t.Fatalf("after restart: %d %v", code, m)
		}
	})
	t.Run("host-side eject is noticed", func(t *testing.T) {
		waitFor(t, "medium in sr0", 10*time.Second, func() bool { return deviceSize("/dev/sr0") == iso.Size() })
		fd, err := unix.Open("/dev/sr0", unix.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		const cdromEject = 0x5309 // what eject(1) sends: START STOP UNIT with LoEj
		err = unix.IoctlSetInt(fd, cdromEject, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatalf("CDROMEJECT: %v", err)
		}
		took := waitFor(t, "msdav to report drive 0 empty", 10*time.Second, func() bool {
			_, m := call(t, "GET", "/api/drives/0", "")
			return m["image"] == nil
		})
		t.Logf("host eject noticed after %s", took.Round(time.Millisecond))
	})
	t.Run("flash made by POST /api/images shows as sd?, host writes persist in the image", func(t *testing.T) {
		if code, m := call(t, "POST", "/api/images", `{"path":"made.img","size":"64M","label":"MADE"}`); code != 201 || m["complete"] != true {
			t.Fatalf("create image: %d %v", code, m)
		}
		start := time.Now()
		code, m := call(t, "PUT", "/api/drives/1", `{"image":"made.img","cdrom":false,"rw":true}`)
		if code != 200 || m["media"] != "flash" || m["rw"] != true {
			t.Fatalf("attach flash rw: %d %v", code, m)
		}
		var dev string
		waitFor(t, "the flash drive as /dev/sd?", 20*time.Second, func() bool {
			for _, d := range []string{"/dev/sda", "/dev/sdb"} {
				if deviceSize(d) == 64<<20 {
					dev = d
					return true
				}
			}
			return false
		})
		t.Logf("flash image visible as %s; attach-to-visible latency (no reconnect needed): %s", dev, time.Since(start).Round(time.Millisecond))
		os.MkdirAll("/mnt/f", 0o755)
		// The MBR's one FAT32 partition shows as dev1 once the kernel read the table.
		waitFor(t, dev+"1", 10*time.Second, func() bool { _, err := os.Stat(dev + "1"); return err == nil })
		run(t, "mount", "-t", "vfat", dev+"1", "/mnt/f")
		marker := fmt.Sprintf("written by the host at %d", time.Now().UnixNano())
		if err := os.WriteFile("/mnt/f/FROMHOST.TXT", []byte(marker), 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, "umount", "/mnt/f")
		if code, m := call(t, "DELETE", "/api/drives/1", ""); code != 200 {
			t.Fatalf("eject after umount: %d %v", code, m)
		}
		img, err := os.ReadFile("/tmp/store/made.img")
		if err != nil || !bytes.Contains(img, []byte(marker)) {
			t.Fatalf("the host's file is not in the image after eject (%v)", err)
		}
	})
	t.Run("msdav drive acts on configfs directly", func(t *testing.T) {
		out, err := exec.Command("/msdav", "drive", "-config", "/tmp/msdav.toml", "-i", "1", "-set-cdrom=0", "-set-rw=0", "-set-image", "/tmp/store/test.iso").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Image file:  /tmp/store/test.iso\nCD/DVD flag: no\nRW flag:     no") {
			t.Fatalf("msdav drive attach: %v\n%s", err, out)
		}
		if _, m := call(t, "GET", "/api/drives/1", ""); m["image"] != "test.iso" {
			t.Errorf("the server does not see the CLI's attach: %v", m)
		}
		out, err = exec.Command("/msdav", "drive", "-config", "/tmp/msdav.toml", "-i", "1", "-eject").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "Image file:  \n") {
			t.Fatalf("msdav drive eject: %v\n%s", err, out)
		}
	})
	t.Run("refusals", func(t *testing.T) {
		f, _ := os.Create("/tmp/store/huge.iso")
		f.Truncate(2600 << 20) // sparse, over the CD limit
		f.Close()
		for _, tc := range []struct {
			body string
			want int
		}{
			{`{"image":"huge.iso","cdrom":true}`, 422},
			{`{"image":"test.iso","cdrom":true,"rw":true}`, 422}, // one refusal in the drive manager, for every front end
			{`{"image":"missing.iso"}`, 404},
			{`{"image":"../etc/passwd"}`, 403},
			{`not json`, 400},
		} {
			if code, m := call(t, "PUT", "/api/drives/0", tc.body); code != tc.want {
				t.Errorf("%s: %d %v, want %d", tc.body, code, m, tc.want)
			}
		}
		if code, _ := call(t, "GET", "/api/drives/7", ""); code != 404 {
			t.Errorf("drive 7: %d", code)
		}
	})
	t.Run("kvmd API: set_params and set_connected show sr0", func(t *testing.T) {
		call(t, "DELETE", "/api/drives/0?force=1", "")
		waitFor(t, "sr0 empty", 10*time.Second, func() bool { return deviceSize("/dev/sr0") == 0 })
		for _, p := range []string{"/api/msd/set_params?image=test.iso&cdrom=1", "/api/msd/set_connected?connected=1"} {
			if code, m := call(t, "POST", p, ""); code != 200 || m["ok"] != true {
				t.Fatalf("POST %s: %d %v", p, code, m)
			}
		}
		waitFor(t, "/dev/sr0 with test.iso", 20*time.Second, func() bool { return deviceSize("/dev/sr0") == iso.Size() })
		if sum(t, "/dev/sr0", iso.Size()) != sum(t, "/fixtures/test.iso", iso.Size()) {
			t.Fatal("/dev/sr0 differs from test.iso")
		}
		if code, m := call(t, "POST", "/api/msd/set_connected?connected=0", ""); code != 200 {
			t.Fatalf("disconnect: %d %v", code, m)
		}
	})
	t.Run("redfish InsertMedia with a URL shows sr0", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.FileServer(http.Dir("/fixtures"))}
		go srv.Serve(ln)
		defer srv.Close()
		url := "http://" + ln.Addr().String() + "/test.iso"
		code, m := call(t, "POST", "/redfish/v1/Managers/bmc/VirtualMedia/0/Actions/VirtualMedia.InsertMedia", `{"Image":"`+url+`"}`)
		if code != 204 {
			t.Fatalf("InsertMedia: %d %v", code, m)
		}
		waitFor(t, "/dev/sr0 from the URL", 20*time.Second, func() bool { return deviceSize("/dev/sr0") == iso.Size() })
		if sum(t, "/dev/sr0", iso.Size()) != sum(t, "/fixtures/test.iso", iso.Size()) {
			t.Fatal("/dev/sr0 differs from the ISO served by URL")
		}
		if code, m := call(t, "GET", "/redfish/v1/Managers/bmc/VirtualMedia/0", ""); code != 200 || m["Inserted"] != true || m["Image"] != url {
			t.Errorf("VirtualMedia 0: %d %v", code, m)
		}
		if code, m := call(t, "POST", "/redfish/v1/Managers/bmc/VirtualMedia/0/Actions/VirtualMedia.EjectMedia", ""); code != 204 {
			t.Fatalf("EjectMedia: %d %v", code, m)
		}
		waitFor(t, "sr0 empty after EjectMedia", 10*time.Second, func() bool { return deviceSize("/dev/sr0") == 0 })
	})
	t.Run("the console's attach request shows sr0; another site's is refused", func(t *testing.T) {
		// No browser runs in the VM: this is the request the page's
		// attach dialog sends (app.js, api.js), with the headers a browser
		// adds, against the real kernel.
		if code, _ := call(t, "GET", "/", ""); code != 200 {
			t.Fatalf("GET / (the console): %d", code)
		}
		req := func(site string) int {
			r, _ := http.NewRequest("PUT", base+"/api/drives/0", strings.NewReader(`{"image":"test.iso","cdrom":true,"rw":false}`))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Sec-Fetch-Site", site)
			if site == "same-origin" {
				r.Header.Set("Origin", base)
			} else {
				r.Header.Set("Origin", "http://evil.example")
			}
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		call(t, "DELETE", "/api/drives/0?force=1", "")
		waitFor(t, "sr0 empty", 10*time.Second, func() bool { return deviceSize("/dev/sr0") == 0 })
		if code := req("cross-site"); code != 403 {
			t.Errorf("cross-site attach: %d, want 403", code)
		}
		time.Sleep(500 * time.Millisecond)
		if deviceSize("/dev/sr0") != 0 {
			t.Error("a cross-site request attached the image")
		}
		if code := req("same-origin"); code != 200 {
			t.Fatalf("the console's attach: %d", code)
		}
		waitFor(t, "/dev/sr0 after the console's attach", 20*time.Second, func() bool { return deviceSize("/dev/sr0") == iso.Size() })
		call(t, "DELETE", "/api/drives/0", "")
	})
	t.Run("reconnect", func(t *testing.T) {
		if code, m := call(t, "POST", "/api/usb/reconnect", ""); code != 200 {
			t.Fatalf("reconnect: %d %v", code, m)
		}
	})
	server.Process.Signal(syscall.SIGTERM)
	server.Wait()
}
