package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msdav/msdav/conf"
	"github.com/msdav/msdav/gadget/gadgettest"
)

// Two boxes serving one library (a folder bind-mounted into both stores,
// as two boxes mount one NFS export): what one attaches, the other cannot
// change, naming the box and the drive, until it ejects or its lease
// expires because it stopped renewing it.
func TestFleetLeases(t *testing.T) {
	needRootT(t, "bind-mounts one library into two stores")
	lib := filepath.Join(t.TempDir(), "lib")
	os.Mkdir(lib, 0o755)
	mountT(t, "-t", "tmpfs", "-o", "size=32m", "tmpfs", lib)
	box := func(name string) (conf.Config, string) {
		cfg := conf.Default()
		cfg.Storage.Root = t.TempDir()
		cfg.Storage.Shared = []string{"shared"}
		cfg.Storage.BoxName = name
		cfg.Storage.LeaseTTL = conf.Duration{Duration: 3 * time.Second}
		cfg.Server.RuntimeDir = t.TempDir()
		cfg.Gadget = gadgettest.Bound(t, 1)
		shared := filepath.Join(cfg.Storage.Root, "shared")
		os.Mkdir(shared, 0o755)
		mountT(t, "--bind", lib, shared)
		return cfg, shared
	}
	cfgA, _ := box("A")
	a, stopA := startServe(t, cfgA)
	cfgB, _ := box("B")
	b, _ := startServe(t, cfgB)

	do := func(base, method, path, body string, hdr ...string) (int, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	if code, _ := do(a, "PUT", "/dav/shared/win.iso", strings.Repeat("w", 4096)); code != 201 {
		t.Fatalf("upload on A: %d", code)
	}
	if code, out := do(b, "GET", "/api/images", ""); code != 200 || !strings.Contains(out, `"path":"shared/win.iso"`) {
		t.Fatalf("B's catalog lacks A's upload: %d %s", code, out)
	}
	// The sha256 A computed while the upload streamed is B's too: it lives
	// in a sidecar beside the image, not in A's memory.
	sum := sha256.Sum256([]byte(strings.Repeat("w", 4096)))
	if _, out := do(b, "GET", "/api/images", ""); !strings.Contains(out, `"sha256":"`+hex.EncodeToString(sum[:])+`"`) {
		t.Errorf("B's catalog lacks the sha256 A computed: %s", out)
	}
	if code, out := do(a, "PUT", "/api/drives/0", `{"image":"shared/win.iso","cdrom":true}`); code != 200 {
		t.Fatalf("attach on A: %d %s", code, out)
	}
	refusals := func(when string) {
		t.Helper()
		for _, rq := range [][3]string{
			{"PUT", "/dav/shared/win.iso", "new"},
			{"DELETE", "/dav/shared/win.iso", ""},
			{"MOVE", "/dav/shared/win.iso", ""},
			{"DELETE", "/dav/shared", ""},
			{"PUT", "/api/drives/0", `{"image":"shared/win.iso","rw":true}`},
		} {
			code, out := do(b, rq[0], rq[1], rq[2], "Destination", b+"/dav/moved.iso")
			if code != 423 || !strings.Contains(out, "box A") || !strings.Contains(out, "drive 0") {
				t.Errorf("%s: B's %s %s: %d %q, want 423 naming box A and drive 0", when, rq[0], rq[1], code, out)
			}
		}
	}
	refusals("A attached")
	// Read-only on both boxes is fine: both only read.
	if code, out := do(b, "PUT", "/api/drives/0", `{"image":"shared/win.iso","cdrom":true}`); code != 200 {
		t.Errorf("ro attach on B beside A's ro attach: %d %s", code, out)
	}
	do(b, "DELETE", "/api/drives/0", "")
	// Past a renewal: the lease is kept alive while A runs.
	time.Sleep(4 * time.Second)
	refusals("after A renewed")
	if code, _ := do(a, "DELETE", "/api/drives/0", ""); code != 200 {
		t.Fatalf("eject on A: %d", code)
	}
	if code, out := do(b, "PUT", "/dav/shared/win.iso", "replaced by B"); code != 204 {
		t.Fatalf("B replaces after A's eject: %d %s", code, out)
	}
	// A attaches again and dies without ejecting: its lease ends when no
	// one renews it.
	if code, out := do(a, "PUT", "/api/drives/0", `{"image":"shared/win.iso","cdrom":true}`); code != 200 {
		t.Fatalf("attach on A: %d %s", code, out)
	}
	if code, _ := do(b, "DELETE", "/dav/shared/win.iso", ""); code != 423 {
		t.Fatalf("B's DELETE while A holds it: %d", code)
	}
	stopA()
	start := time.Now()
	for {
		code, _ := do(b, "DELETE", "/dav/shared/win.iso", "")
		if code == 204 {
			break
		}
		if time.Since(start) > 6*time.Second {
			t.Fatalf("B's 423 outlived A's lease by %s", time.Since(start))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("A's lease expired %s after A stopped (ttl 3s)", time.Since(start).Round(100*time.Millisecond))
	// Leases and temps never show as images.
	if _, out := do(b, "GET", "/api/images", ""); strings.Contains(out, ".msdav-") {
		t.Errorf("catalog shows internal files: %s", out)
	}
}
