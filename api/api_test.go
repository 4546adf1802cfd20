package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msdav/msdav/drives"
	"github.com/msdav/msdav/events"
	"github.com/msdav/msdav/fetch"
	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/gadget"
	"github.com/msdav/msdav/gadget/gadgettest"
)

func fakeGadget(t *testing.T) *gadget.Gadget {
	t.Helper()
	g, err := gadget.Open(gadgettest.Bound(t, 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

type env struct {
	store  *fs.Store
	srv    *httptest.Server
	api    *Server
	drives *drives.Manager
	hub    *events.Hub
}

func newEnv(t *testing.T, g *gadget.Gadget, gerr error, o fs.Options) *env {
	t.Helper()
	if o.Root == "" {
		o.Root = t.TempDir()
	}
	s, err := fs.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	hub := events.New()
	dm := drives.New(s, g, gerr, hub.Publish, nil)
	a := New(s, dm, hub, Options{})
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	t.Cleanup(hub.Close)
	return &env{store: s, srv: srv, api: a, drives: dm, hub: hub}
}

// tmpfsStore mounts a real tmpfs of sizeMB as a store for the test, or
// skips it, saying why root is needed, when the test does not run as root.
func tmpfsStore(t *testing.T, why string, sizeMB int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: " + why)
	}
	dir := filepath.Join(t.TempDir(), "store")
	os.MkdirAll(dir, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", sizeMB), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

func (e *env) call(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: not JSON: %q", method, path, b)
	}
	if resp.StatusCode >= 400 && m["error"] == nil {
		t.Errorf("%s %s: %d without an error message", method, path, resp.StatusCode)
	}
	return resp.StatusCode, m
}

func TestNoGadget503(t *testing.T) {
	e := newEnv(t, nil, errors.New("mass storage is disabled"), fs.Options{})
	for _, rt := range [][2]string{{"GET", "/api/drives"}, {"GET", "/api/drives/0"}, {"PUT", "/api/drives/0"}, {"DELETE", "/api/drives/0"}, {"POST", "/api/usb/reconnect"}} {
		code, m := e.call(t, rt[0], rt[1], `{"image":"x"}`)
		if code != 503 || !strings.Contains(m["error"].(string), "disabled") {
			t.Errorf("%v: %d %v", rt, code, m)
		}
	}
	if code, m := e.call(t, "GET", "/api/images", ""); code != 200 || m["images"] == nil {
		t.Errorf("images without a gadget: %d %v", code, m)
	}
	if code, _ := e.call(t, "GET", "/api/nope", ""); code != 404 {
		t.Errorf("unknown route: %d", code)
	}
	if code, _ := e.call(t, "PATCH", "/api/images", ""); code != 405 {
		t.Errorf("wrong method: %d", code)
	}
}

func TestAttachRules(t *testing.T) {
	e := newEnv(t, fakeGadget(t), nil, fs.Options{})
	os.MkdirAll(filepath.Join(e.store.Dir(), "isos"), 0o755)
	os.WriteFile(filepath.Join(e.store.Dir(), "isos", "a.iso"), make([]byte, 2048), 0o644)
	os.WriteFile(filepath.Join(e.store.Dir(), "b.img"), make([]byte, 4096), 0o644)
	os.WriteFile(filepath.Join(e.store.Dir(), "._a.iso"), nil, 0o644)
	os.WriteFile(filepath.Join(e.store.Dir(), "isos", "._a.iso"), nil, 0o644)
	os.WriteFile(filepath.Join(e.store.Dir(), "isos", ".msdav-props-a.iso"), []byte("{}"), 0o644)
	u, _ := e.store.Create(context.Background(), "up.iso", 100)
	u.Write(make([]byte, 10))
	defer u.Abort()

	code, m := e.call(t, "PUT", "/api/drives/0", `{"image":"isos/a.iso","cdrom":true}`)
	if code != 200 || m["image"] != "isos/a.iso" || m["media"] != "cd" || m["rw"] != false {
		t.Fatalf("attach: %d %v", code, m)
	}
	for _, tc := range []struct {
		drive, body string
		want        int
		says        string
	}{
		{"9", `{"image":"b.img"}`, 404, "drives are 0 to 1"},
		{"x", `{"image":"b.img"}`, 404, "no such drive"},
		{"1", `{"image":"missing.img"}`, 404, "no image"},
		{"1", `{"image":"._a.iso"}`, 404, "no image"},
		{"1", `{"image":"../../etc/passwd"}`, 403, "leaves the store"},
		{"1", `{"image":"isos/.msdav-props-a.iso"}`, 404, "no image"},
		{"1", `{"image":"isos/._a.iso"}`, 404, "no image"},
		{"1", `{"image":"isos"}`, 404, "is a folder, not an image"},
		{"1", `{"image":"b.img","cdrom":true,"rw":true}`, 422, "never writable"},
		{"1", `{"image":"up.iso"}`, 409, "still uploading"},
		{"1", `{"image":"isos/a.iso","rw":true}`, 409, "attached to drive 0"},
		{"1", `{}`, 400, "image"},
		{"1", `{"image":"b.img","bogus":1}`, 400, "unknown field"},
		{"1", `[`, 400, "JSON"},
	} {
		code, m := e.call(t, "PUT", "/api/drives/"+tc.drive, tc.body)
		if code != tc.want || !strings.Contains(m["error"].(string), tc.says) {
			t.Errorf("PUT drive %s %s: %d %v, want %d %q", tc.drive, tc.body, code, m, tc.want, tc.says)
		}
	}
	// The same image read-only in two drives is fine.
	if code, m := e.call(t, "PUT", "/api/drives/1", `{"image":"isos/a.iso"}`); code != 200 {
		t.Errorf("second ro attach: %d %v", code, m)
	}
	// The store refuses to change what is attached.
	var le *fs.LockedError
	if err := e.store.RemoveAll(context.Background(), "isos"); !errors.As(err, &le) {
		t.Errorf("remove of a folder with an attached image: %v", err)
	}
	code, m = e.call(t, "GET", "/api/drives", "")
	if ds, _ := m["drives"].([]any); code != 200 || len(ds) != 2 {
		t.Fatalf("drives: %d %v", code, m)
	}
	code, m = e.call(t, "GET", "/api/images", "")
	for _, im := range m["images"].([]any) {
		im := im.(map[string]any)
		if im["path"] == "isos/a.iso" && len(im["attached"].([]any)) != 2 {
			t.Errorf("catalog attached = %v", im["attached"])
		}
	}
	// Replacing the image in a drive ejects the old one first.
	if code, m := e.call(t, "PUT", "/api/drives/1", `{"image":"b.img","rw":true}`); code != 200 || m["image"] != "b.img" || m["rw"] != true {
		t.Errorf("replace: %d %v", code, m)
	}
	for _, i := range []string{"0", "1"} {
		if code, m := e.call(t, "DELETE", "/api/drives/"+i, ""); code != 200 || m["image"] != nil || m["media"] != "none" {
			t.Errorf("eject %s: %d %v", i, code, m)
		}
	}
	if err := e.store.RemoveAll(context.Background(), "isos"); err != nil {
		t.Errorf("remove after eject: %v", err)
	}
	if code, m := e.call(t, "POST", "/api/usb/reconnect", ""); code != 200 || m["ok"] != true {
		t.Errorf("reconnect: %d %v", code, m)
	}
}

func TestCreateImage(t *testing.T) {
	e := newEnv(t, nil, errors.New("none"), fs.Options{})
	code, m := e.call(t, "POST", "/api/images", `{"path":"tools.img","size":"40M","label":"TOOLS"}`)
	if code != 201 || m["path"] != "tools.img" || m["complete"] != true || m["size"].(float64) != 40<<20 {
		t.Fatalf("create: %d %v", code, m)
	}
	for _, tc := range []struct {
		body string
		want int
	}{
		{`{"path":"tools.img","size":"40M"}`, 409},
		{`{"path":"t2.img","size":1000}`, 422},
		{`{"path":"t3.img","size":"big"}`, 400},
		{`{"path":"t4.img","size":true}`, 400},
		{`{"size":"40M"}`, 400},
		{`{"path":"../x.img","size":"40M"}`, 403},
		{`{"path":"isos/.msdav-upload-1-x.img","size":"40M"}`, 400},
		{`{"path":".hidden/x.img","size":"40M"}`, 400},
		{`{"path":"t5.img","size":"40M","fs":"ntfs"}`, 422},
		{`{"path":"t6.img","size":"40M","junk":1}`, 400},
	} {
		if code, m := e.call(t, "POST", "/api/images", tc.body); code != tc.want {
			t.Errorf("%s: %d %v, want %d", tc.body, code, m, tc.want)
		}
	}
	ents, _ := os.ReadDir(e.store.Dir())
	n := 0
	for _, ent := range ents {
		if fs.Classify(ent.Name()) != fs.Internal { // the image's checksum sidecar
			n++
		}
	}
	if n != 1 {
		t.Errorf("store holds %d entries after the refusals, want 1", n)
	}
	// Missing folders are made, as mkdir -p would (the README's example).
	code, m = e.call(t, "POST", "/api/images", `{"path":"flash/tools/x.img","size":"40M"}`)
	if code != 201 || m["path"] != "flash/tools/x.img" {
		t.Errorf("create in a new folder: %d %v", code, m)
	}
	if fi, err := os.Stat(filepath.Join(e.store.Dir(), "flash", "tools", "x.img")); err != nil || fi.Size() != 40<<20 {
		t.Errorf("image in a new folder: %v", err)
	}
}

// A drive attached rw keeps the store's filesystem rw (the kernel writes
// into the image) until it is ejected; then the guard puts it back to ro.
func TestRWDriveHoldsRemountGuard(t *testing.T) {
	dir := tmpfsStore(t, "mounts a real tmpfs as the store", 8)
	os.WriteFile(filepath.Join(dir, "rw.img"), make([]byte, 4096), 0o644)
	e := newEnv(t, fakeGadget(t), nil, fs.Options{Root: dir, Remount: true, Grace: 50 * time.Millisecond})
	if ro, _ := fs.IsReadOnly(dir); !ro {
		t.Fatal("store rw at idle")
	}
	if code, m := e.call(t, "PUT", "/api/drives/0", `{"image":"rw.img","rw":true}`); code != 200 {
		t.Fatalf("attach rw: %d %v", code, m)
	}
	time.Sleep(300 * time.Millisecond)
	if ro, _ := fs.IsReadOnly(dir); ro {
		t.Fatal("store went ro under a rw drive")
	}
	if code, m := e.call(t, "DELETE", "/api/drives/0", ""); code != 200 {
		t.Fatalf("eject: %d %v", code, m)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if ro, _ := fs.IsReadOnly(dir); ro {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("store stayed rw after the rw drive was ejected")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// PUT /api/drives/{i} with a URL: bad requests are 4xx on any backend,
// and the kernel backend answers 422 whatever the URL. The address guard
// is fetch's (tested there); the VM test proves a URL drive on the
// userspace backend.
func TestAttachURLRefusals(t *testing.T) {
	e := newEnv(t, fakeGadget(t), nil, fs.Options{})
	for _, tc := range []struct {
		body string
		want int
		says string
	}{
		{`{"url":"http://192.0.2.1/x.iso","rw":true}`, 422, "read-only"},
		{`{"url":"http://192.0.2.1/x.iso","image":"a.iso"}`, 400, "name one image"},
		{`{"url":"ftp://example.com/x.iso"}`, 422, "userspace"},
		{`{"url":"http://192.0.2.1/x.iso","cdrom":true}`, 422, "userspace"},
	} {
		if code, m := e.call(t, "PUT", "/api/drives/0", tc.body); code != tc.want || !strings.Contains(m["error"].(string), tc.says) {
			t.Errorf("%s: %d %v, want %d %q", tc.body, code, m, tc.want, tc.says)
		}
	}
}

func FuzzDecodeAttach(f *testing.F) {
	for _, s := range []string{`{"image":"a.iso","cdrom":true,"rw":false}`, `{"image":""}`, `{"image":"a","cdrom":true,"rw":true}`, `[]`, `{"image":"a","x":1}`} {
		f.Add(s)
	}
	// The body is only translated here (the drive manager validates it):
	// whatever decodes becomes a request that says exactly what it said.
	f.Fuzz(func(t *testing.T, body string) {
		b, err := decodeAttach(strings.NewReader(body))
		if err != nil {
			return
		}
		req := b.request(3)
		str := func(p *string) string {
			if p == nil {
				return ""
			}
			return *p
		}
		if req.Drive != 3 || req.Image != str(b.Image) || req.File != str(b.File) || req.URL != str(b.URL) ||
			req.CDROM != (b.CDROM != nil && *b.CDROM) || req.RW != (b.RW != nil && *b.RW) {
			t.Fatalf("%q became %+v", body, req)
		}
	})
}

// Creating an image bigger than the free space is a clear 507, and leaves nothing.
func TestCreateImageFullDisk(t *testing.T) {
	dir := tmpfsStore(t, "mounts a small tmpfs as the store", 8)
	e := newEnv(t, nil, errors.New("none"), fs.Options{Root: dir})
	code, m := e.call(t, "POST", "/api/images", `{"path":"big.img","size":"64M"}`)
	if code != 507 || !strings.Contains(m["error"].(string), "do not fit") {
		t.Errorf("64M image on an 8M disk: %d %v", code, m)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
	if code, _ := e.call(t, "GET", "/api/images", ""); code != 200 {
		t.Errorf("catalog after the refusal: %d", code)
	}
}

// On the kernel backend a URL drive cannot work: the answer is 422 naming
// gadget.backend, before a single request goes to the URL (issue 30).
func TestAttachURLKernelBackendNoTraffic(t *testing.T) {
	e := newEnv(t, fakeGadget(t), nil, fs.Options{})
	var hits atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write(make([]byte, 4096))
	}))
	defer ts.Close()
	for _, private := range []bool{false, true} {
		e.api.SetJobs(fetch.New(e.store, fetch.Options{AllowPrivate: private}))
		code, m := e.call(t, "PUT", "/api/drives/0", `{"url":"`+ts.URL+`/x.iso","cdrom":true}`)
		if code != 422 || !strings.Contains(fmt.Sprint(m["error"]), "gadget.backend") {
			t.Errorf("allow_private %v: %d %v, want 422 naming gadget.backend", private, code, m)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the URL got %d requests from a drive that cannot serve it", n)
	}
	if code, m := e.call(t, "GET", "/api/drives/0", ""); code != 200 || m["image"] != nil {
		t.Errorf("drive after the refusal: %d %v", code, m)
	}
}
