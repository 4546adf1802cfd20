package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msdav/msdav/gadget/gadgettest"
)

// aliasServer runs the whole server on store with a fake gadget of two drives.
func aliasServer(t *testing.T, store string) (func(method, path string, body []byte, hdr ...string) (int, string), string) {
	t.Helper()
	cfg := testConfig(t)
	cfg.Storage.Root = store
	cfg.Gadget = gadgettest.Bound(t, 2)
	cfg.Server.RuntimeDir = t.TempDir()
	base, _ := startServe(t, cfg)
	return func(method, path string, body []byte, hdr ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}, base
}

// refusedAll checks that DELETE, PUT and MOVE of a name answer 423 and
// leave the file as it was.
func refusedAll(t *testing.T, do func(string, string, []byte, ...string) (int, string), store, name string, isDir bool) {
	t.Helper()
	var before []byte
	if !isDir {
		before, _ = os.ReadFile(filepath.Join(store, name))
	}
	if code, body := do("DELETE", "/dav/"+name, nil); code != 423 {
		t.Errorf("DELETE %s: %d %s, want 423", name, code, body)
	}
	if !isDir {
		if code, body := do("PUT", "/dav/"+name, []byte("overwritten")); code != 423 {
			t.Errorf("PUT %s: %d %s, want 423", name, code, body)
		}
	}
	if code, body := do("MOVE", "/dav/"+name, nil, "Destination", "/dav/elsewhere"); code != 423 {
		t.Errorf("MOVE %s: %d %s, want 423", name, code, body)
	}
	if code, body := do("MOVE", "/dav/spare.bin", nil, "Destination", "/dav/"+name, "Overwrite", "T"); code != 423 {
		t.Errorf("MOVE onto %s: %d %s, want 423", name, code, body)
	}
	if isDir {
		if fi, err := os.Stat(filepath.Join(store, name)); err != nil || !fi.IsDir() {
			t.Errorf("folder %s gone although refused: %v", name, err)
		}
	} else if after, err := os.ReadFile(filepath.Join(store, name)); err != nil || !bytes.Equal(before, after) {
		t.Errorf("%s changed although refused: %v", name, err)
	}
}

// An attached image is the file, not a spelling: symlinks and hard links
// in the store, and folders holding them, are 423 over WebDAV as its own
// name is (issue 30 finding 3).
func TestHostileLinkAliases(t *testing.T) {
	store := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(store, "isos"), 0o755)
	os.MkdirAll(filepath.Join(store, "links"), 0o755)
	must(os.WriteFile(filepath.Join(store, "isos/a.iso"), make([]byte, 1<<20), 0o644))
	must(os.WriteFile(filepath.Join(store, "spare.bin"), []byte("spare"), 0o644))
	must(os.Link(filepath.Join(store, "isos/a.iso"), filepath.Join(store, "links/hard.iso")))
	must(os.Symlink("../isos/a.iso", filepath.Join(store, "links/sym.iso")))
	must(os.Link(filepath.Join(store, "isos/a.iso"), filepath.Join(store, "top-hard.iso")))
	do, _ := aliasServer(t, store)
	if code, body := do("PUT", "/api/drives/0", []byte(`{"image":"isos/a.iso","cdrom":false,"rw":false}`)); code != 200 {
		t.Fatalf("attach: %d %s", code, body)
	}
	for _, n := range []string{"isos/a.iso", "links/hard.iso", "links/sym.iso", "top-hard.iso"} {
		refusedAll(t, do, store, n, false)
	}
	refusedAll(t, do, store, "links", true)
	if code, body := do("DELETE", "/api/drives/0", nil); code != 200 {
		t.Fatalf("eject: %d %s", code, body)
	}
	// One file in two drives, one writable, is refused by any name.
	if code, body := do("PUT", "/api/drives/0", []byte(`{"image":"isos/a.iso","cdrom":false,"rw":true}`)); code != 200 {
		t.Fatalf("attach rw: %d %s", code, body)
	}
	for _, n := range []string{"top-hard.iso", "links/sym.iso", "links/hard.iso"} {
		if code, body := do("PUT", "/api/drives/1", []byte(`{"image":"`+n+`","cdrom":false,"rw":false}`)); code != 409 {
			t.Errorf("attach %s while its file is rw in drive 0: %d %s, want 409", n, code, body)
		}
	}
	if code, body := do("DELETE", "/api/drives/0", nil); code != 200 {
		t.Fatalf("eject: %d %s", code, body)
	}
	if code, body := do("DELETE", "/dav/links", nil); code != 204 {
		t.Errorf("DELETE of the folder after the eject: %d %s", code, body)
	}
}

// mountExFAT mounts a fresh exFAT filesystem at dir: the kernel's driver
// when it has one, else exfat-fuse on a loop device.
func mountExFAT(t *testing.T, dir string) {
	t.Helper()
	needRootT(t, "mounts an exFAT filesystem inside the store")
	for _, tool := range []string{"mkfs.exfat", "losetup"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (Debian exfatprogs, mount)", tool)
		}
	}
	img := filepath.Join(t.TempDir(), "usb.img")
	if out, err := exec.Command("truncate", "-s", "32M", img).CombinedOutput(); err != nil {
		t.Fatalf("truncate: %v %s", err, out)
	}
	if out, err := exec.Command("mkfs.exfat", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.exfat: %v %s", err, out)
	}
	os.MkdirAll(dir, 0o755)
	if exec.Command("mount", "-t", "exfat", "-o", "loop", img, dir).Run() == nil {
		t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
		return
	}
	if _, err := exec.LookPath("mount.exfat-fuse"); err != nil {
		t.Skip("the kernel has no exfat and mount.exfat-fuse is missing (Debian exfat-fuse)")
	}
	out, err := exec.Command("losetup", "-f", "--show", img).Output()
	if err != nil {
		t.Skipf("no loop device: %v", err)
	}
	loop := strings.TrimSpace(string(out))
	if out, err := exec.Command("mount.exfat-fuse", loop, dir).CombinedOutput(); err != nil {
		exec.Command("losetup", "-d", loop).Run()
		t.Fatalf("mount.exfat-fuse: %v %s", err, out)
	}
	t.Cleanup(func() {
		exec.Command("umount", "-l", dir).Run()
		exec.Command("losetup", "-d", loop).Run()
	})
}

// On a part that folds case, attach usb/WIN.ISO: every spelling of it is
// 423, and the checksum sidecar is out of reach in every spelling.
func TestHostileCaseAliases(t *testing.T) {
	store := t.TempDir()
	mountExFAT(t, filepath.Join(store, "usb"))
	os.WriteFile(filepath.Join(store, "spare.bin"), []byte("spare"), 0o644)
	do, _ := aliasServer(t, store)
	if code, body := do("PUT", "/dav/usb/WIN.ISO", make([]byte, 1<<20)); code != 201 {
		t.Fatalf("upload: %d %s", code, body)
	}
	sidecar := filepath.Join(store, "usb", ".msdav-sum-WIN.ISO")
	want, err := os.ReadFile(sidecar)
	if err != nil {
		t.Fatalf("the upload left no checksum sidecar: %v", err)
	}
	for _, n := range []string{".MSDAV-SUM-WIN.ISO", ".Msdav-Sum-win.iso", ".msdav-sum-WIN.ISO"} {
		if code, body := do("GET", "/dav/usb/"+n, nil); code != 404 {
			t.Errorf("GET %s: %d %q, want 404", n, code, body)
		}
		if code, _ := do("PUT", "/dav/usb/"+n, []byte(`{"sha256":"forged"}`)); code < 400 {
			t.Errorf("PUT %s: %d, want a refusal", n, code)
		}
	}
	if got, _ := os.ReadFile(sidecar); !bytes.Equal(got, want) {
		t.Errorf("the sidecar was overwritten: %s", got)
	}
	if code, body := do("PUT", "/api/drives/1", []byte(`{"image":"usb/WIN.ISO","cdrom":false,"rw":false}`)); code != 200 {
		t.Fatalf("attach: %d %s", code, body)
	}
	for _, n := range []string{"usb/win.iso", "usb/Win.Iso", "usb/WIN.ISO"} {
		refusedAll(t, do, store, n, false)
	}
	if code, body := do("PUT", "/api/drives/0", []byte(`{"image":"usb/win.iso","cdrom":false,"rw":true}`)); code != 409 {
		t.Errorf("attach a case alias rw while drive 1 holds the file: %d %s, want 409", code, body)
	}
	if code, body := do("GET", "/api/images", nil); code != 200 || !strings.Contains(body, `"usb/WIN.ISO"`) {
		t.Errorf("catalog after the refusals: %d %s", code, body)
	}
}

// chunked hides a body's length from net/http, as macOS Finder's uploads do.
type chunked struct{ r io.Reader }

func (c chunked) Read(p []byte) (int, error) { return c.r.Read(p) }

// The four upload front ends are one pipeline (issue 30, "one upload
// pipeline"): each stores names up to NAME_MAX, honours the announced size
// of a chunked body, creates kvmd's prefix folders and never shows the
// store's temp names.
func TestHostileUploadFrontEnds(t *testing.T) {
	store := t.TempDir()
	do, base := aliasServer(t, store)
	long := func(n int, tag string) string { return tag + strings.Repeat("x", n-len(tag)-4) + ".iso" }
	body := bytes.Repeat([]byte("image "), 1000)

	// Names of 222-255 bytes, which the temp prefix used to push past NAME_MAX.
	for _, n := range []int{222, 240, 255} {
		for i, fe := range []struct{ method, path string }{
			{"PUT", "/api/images/upload/"}, {"POST", "/api/msd/write?image="}, {"PUT", "/dav/"},
		} {
			name := long(n, fmt.Sprint("fe", i, "-", n))
			code, msg := do(fe.method, fe.path+name, body)
			if code >= 300 || strings.Contains(msg, ".msdav-") {
				t.Errorf("%s %d-byte name: %d %s", fe.path, n, code, msg)
				continue
			}
			if got, err := os.ReadFile(filepath.Join(store, name)); err != nil || !bytes.Equal(got, body) {
				t.Errorf("%s %d-byte name not stored whole: %v", fe.path, n, err)
			}
		}
	}

	// kvmd's prefix names folders that do not exist yet: kvmd makes them.
	code, msg := do("POST", "/api/msd/write?prefix=new/deeper&image=p.iso", body)
	if code != 200 || strings.Contains(msg, ".msdav-") {
		t.Errorf("write with a new prefix: %d %s", code, msg)
	}
	if got, err := os.ReadFile(filepath.Join(store, "new/deeper/p.iso")); err != nil || !bytes.Equal(got, body) {
		t.Errorf("write with a new prefix stored nothing: %v", err)
	}

	// A chunked body shorter than X-Expected-Entity-Length stores nothing,
	// whichever front end it comes through.
	for _, p := range []string{"/api/images/upload/short-api.iso", "/dav/short-dav.iso"} {
		req, _ := http.NewRequest("PUT", base+p, chunked{bytes.NewReader(body)})
		req.Header.Set("X-Expected-Entity-Length", fmt.Sprint(len(body)+100))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		code, msg := resp.StatusCode, string(b)
		if code != 400 || strings.Contains(msg, ".msdav-") {
			t.Errorf("PUT %s short chunked body: %d %s, want 400", p, code, msg)
		}
		if _, err := os.Stat(filepath.Join(store, path.Base(p))); err == nil {
			t.Errorf("PUT %s: a short body was stored", p)
		}
	}
	ents, _ := os.ReadDir(store)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".msdav-upload-") {
			t.Errorf("temp left behind: %s", e.Name())
		}
	}
}
