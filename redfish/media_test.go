package redfish

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/msdav/msdav/conf"
	"github.com/msdav/msdav/drives"
	"github.com/msdav/msdav/fetch"
	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/gadget"
	"github.com/msdav/msdav/gadget/gadgettest"
)

// upstream is an image server that counts what it was asked.
type upstream struct {
	*httptest.Server
	dir string

	mu     sync.Mutex
	ranges int // GETs with a Range header
	whole  int // GETs without
}

func (u *upstream) counts() (ranges, whole int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.ranges, u.whole
}

// newUpstream serves boot.iso (a real ISO, xorriso) and stick.img (a FAT
// image, mkfs.vfat); with noRange it answers every GET whole, as a server
// without Range support does.
func newUpstream(t *testing.T, noRange bool) *upstream {
	t.Helper()
	for _, tool := range []string{"xorriso", "mkfs.vfat"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (.ci/run installs it)", tool)
		}
	}
	dir := t.TempDir()
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "hello.txt"), []byte("hello from the redfish test\n"), 0o644)
	if out, err := exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-o", filepath.Join(dir, "boot.iso"), src).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v %s", err, out)
	}
	if out, err := exec.Command("mkfs.vfat", "-C", filepath.Join(dir, "stick.img"), "2048").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.vfat: %v %s", err, out)
	}
	u := &upstream{dir: dir}
	files := http.FileServer(http.Dir(dir))
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		if r.Header.Get("Range") != "" && !noRange {
			u.ranges++
		} else {
			u.whole++
		}
		u.mu.Unlock()
		if noRange {
			r.Header.Del("Range")
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

// service is the Redfish service over a store and drives on the given
// gadget, with no credentials needed.
func service(t *testing.T, g *gadget.Gadget, allowPrivate bool) (*httptest.Server, *fs.Store, *drives.Manager) {
	t.Helper()
	return serviceWith(t, g, fetch.Options{AllowPrivate: allowPrivate})
}

func serviceWith(t *testing.T, g *gadget.Gadget, fo fetch.Options) (*httptest.Server, *fs.Store, *drives.Manager) {
	t.Helper()
	store, err := fs.Open(fs.Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dm := drives.New(store, g, nil, nil, log)
	fo.Log = log
	jobs := fetch.New(store, fo)
	t.Cleanup(jobs.Close)
	srv := httptest.NewServer(New(store, dm, jobs, Options{Log: log, Conf: conf.Redfish{Enabled: true}}))
	t.Cleanup(srv.Close)
	return srv, store, dm
}

func userspace(t *testing.T) *gadget.Gadget {
	return gadget.OpenDetached(2, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func do(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

const media0 = "/redfish/v1/Managers/bmc/VirtualMedia/0"

// storeHas reports whether the store holds anything under redfish/.
func storeHas(store *fs.Store) bool {
	_, err := os.Stat(filepath.Join(store.Dir(), fetchFolder))
	return err == nil
}

// Ironic's path through sushy with userspace drives: InsertMedia serves
// the URL at once, read with Range requests; nothing is downloaded into
// the store.
func TestInsertStreamsWithSushy(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import sushy").Run(); err != nil {
		t.Skip("needs Debian's python3-sushy (.ci/run installs it)")
	}
	up := newUpstream(t, false)
	srv, store, _ := service(t, userspace(t), true)
	isoURL := up.URL + "/boot.iso"
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(py, filepath.Join("testdata", "ironic.py"), srv.URL, isoURL, "admin", "admin")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := stdout.String()
	t.Logf("sushy:\n%s", out)
	if err != nil {
		t.Fatalf("sushy script: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{
		"INSERTED True " + isoURL + " boot.iso True ['CD', 'DVD', 'USBStick']",
		"BOOT Cd Once",
		"EJECTED False None",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("sushy output lacks %q", want)
		}
	}
	if ranges, whole := up.counts(); ranges == 0 || whole != 0 {
		t.Errorf("the image server saw %d Range GETs and %d whole ones; want Range reads only", ranges, whole)
	}
	if storeHas(store) {
		t.Error("a streamed image was downloaded into the store")
	}
}

// What InsertMedia does with a URL, backend by backend.
func TestInsertURL(t *testing.T) {
	insert := func(t *testing.T, base, body string) (int, map[string]any) {
		t.Helper()
		return do(t, "POST", base+media0+"/Actions/VirtualMedia.InsertMedia", body)
	}
	t.Run("userspace: a CD image is served from its URL as a CD", func(t *testing.T) {
		up := newUpstream(t, false)
		srv, store, dm := service(t, userspace(t), true)
		if code, m := insert(t, srv.URL, `{"Image":"`+up.URL+`/boot.iso"}`); code != 204 {
			t.Fatalf("insert: %d %v", code, m)
		}
		d, _ := dm.Drive(0)
		if d.URL != up.URL+"/boot.iso" || !d.CDROM || d.Media != "cd" {
			t.Errorf("drive 0: %+v", d)
		}
		_, v := do(t, "GET", srv.URL+media0, "")
		if v["Inserted"] != true || v["Image"] != up.URL+"/boot.iso" || v["ImageName"] != "boot.iso" ||
			v["ConnectedVia"] != "URI" || v["TransferMethod"] != "Stream" || v["TransferProtocolType"] != "HTTP" || v["WriteProtected"] != true {
			t.Errorf("VirtualMedia/0: %v", v)
		}
		if storeHas(store) {
			t.Error("a streamed image was downloaded into the store")
		}
		if code, m := do(t, "POST", srv.URL+media0+"/Actions/VirtualMedia.EjectMedia", `{}`); code != 204 {
			t.Fatalf("eject: %d %v", code, m)
		}
		if d, _ := dm.Drive(0); d.URL != "" {
			t.Errorf("drive 0 after eject: %+v", d)
		}
	})
	t.Run("userspace: a FAT image is served as a USB stick", func(t *testing.T) {
		up := newUpstream(t, false)
		srv, _, dm := service(t, userspace(t), true)
		if code, m := insert(t, srv.URL, `{"Image":"`+up.URL+`/stick.img"}`); code != 204 {
			t.Fatalf("insert: %d %v", code, m)
		}
		if d, _ := dm.Drive(0); d.CDROM || d.Media != "flash" || d.RW {
			t.Errorf("drive 0: %+v", d)
		}
		// MediaTypes is the slot's (CD, DVD, USBStick), not the medium's.
		if _, v := do(t, "GET", srv.URL+media0, ""); len(v["MediaTypes"].([]any)) != 3 {
			t.Errorf("VirtualMedia/0: %v", v)
		}
	})
	t.Run("userspace: Inserted false only checks the URL", func(t *testing.T) {
		up := newUpstream(t, false)
		srv, store, dm := service(t, userspace(t), true)
		if code, m := insert(t, srv.URL, `{"Image":"`+up.URL+`/boot.iso","Inserted":false}`); code != 204 {
			t.Fatalf("insert: %d %v", code, m)
		}
		if d, _ := dm.Drive(0); d.URL != "" || d.Image != nil {
			t.Errorf("drive 0: %+v", d)
		}
		if ranges, _ := up.counts(); ranges == 0 || storeHas(store) {
			t.Errorf("Range GETs %d, store has redfish/: %v", ranges, storeHas(store))
		}
		if code, m := insert(t, srv.URL, `{"Image":"`+up.URL+`/missing.iso","Inserted":false}`); code != 400 {
			t.Errorf("a missing image not inserted: %d %v", code, m)
		}
	})
	t.Run("userspace: a writable medium is fetched into the store", func(t *testing.T) {
		up := newUpstream(t, false)
		srv, store, dm := service(t, userspace(t), true)
		if code, m := insert(t, srv.URL, `{"Image":"`+up.URL+`/stick.img","WriteProtected":false}`); code != 204 {
			t.Fatalf("insert: %d %v", code, m)
		}
		if d, _ := dm.Drive(0); d.Image == nil || *d.Image != "redfish/stick.img" || !d.RW || d.URL != "" {
			t.Errorf("drive 0: %+v", d)
		}
		if !storeHas(store) {
			t.Error("not fetched into the store")
		}
	})
	t.Run("userspace: TransferMethod Upload fetches into the store, Stream streams", func(t *testing.T) {
		up := newUpstream(t, false)
		srv, store, dm := service(t, userspace(t), true)
		if code, m := insert(t, srv.URL, `{"Image":"`+up.URL+`/boot.iso","TransferMethod":"Upload"}`); code != 204 {
			t.Fatalf("insert: %d %v", code, m)
		}
		if d, _ := dm.Drive(0); d.Image == nil || *d.Image != "redfish/boot.iso" || d.URL != "" || !storeHas(store) {
			t.Errorf("drive 0 after an Upload insert: %+v", d)
		}
		if code, m := insert(t, srv.URL, `{"Image":"`+up.URL+`/boot.iso","TransferMethod":"Stream"}`); code != 204 {
			t.Fatalf("insert: %d %v", code, m)
		}
		if d, _ := dm.Drive(0); d.URL != up.URL+"/boot.iso" {
			t.Errorf("drive 0 after a Stream insert: %+v", d)
		}
		if code, m := insert(t, srv.URL, `{"Image":"`+up.URL+`/boot.iso","TransferMethod":"Carrier pigeon"}`); code != 400 {
			t.Errorf("an unknown TransferMethod: %d %v", code, m)
		}
		// PATCH, the older clients' way, honours it too.
		code, m := do(t, "PATCH", srv.URL+media0, `{"Image":"`+up.URL+`/stick.img","TransferMethod":"Upload"}`)
		if code != 200 || m["Image"] != up.URL+"/stick.img" || m["TransferMethod"] != "Upload" {
			t.Errorf("PATCH with Upload: %d %v", code, m)
		}
		code, m = do(t, "PATCH", srv.URL+media0, `{"Image":"`+up.URL+`/boot.iso"}`)
		if code != 200 || m["TransferMethod"] != "Stream" {
			t.Errorf("PATCH: %d %v", code, m)
		}
	})
	t.Run("userspace: the SSRF guard refuses a local address", func(t *testing.T) {
		up := newUpstream(t, false)
		srv, _, dm := service(t, userspace(t), false)
		code, m := insert(t, srv.URL, `{"Image":"`+up.URL+`/boot.iso"}`)
		e, _ := m["error"].(map[string]any)
		if code != 422 || !strings.Contains(e["message"].(string), "allow_private") {
			t.Errorf("insert from a loopback address: %d %v", code, m)
		}
		if ranges, whole := up.counts(); ranges+whole != 0 {
			t.Errorf("the guard let %d requests through", ranges+whole)
		}
		if d, _ := dm.Drive(0); d.URL != "" {
			t.Errorf("drive 0: %+v", d)
		}
	})
	t.Run("userspace: a name that resolves to a public address, then to loopback, is refused at connect", func(t *testing.T) {
		up := newUpstream(t, false)
		var mu sync.Mutex
		lookups := 0
		srv, _, dm := serviceWith(t, userspace(t), fetch.Options{LookupIP: func(context.Context, string) ([]netip.Addr, error) {
			mu.Lock()
			defer mu.Unlock()
			lookups++
			if lookups == 1 {
				return []netip.Addr{netip.MustParseAddr("203.0.113.7")}, nil
			}
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}})
		port := up.URL[strings.LastIndex(up.URL, ":"):]
		code, m := insert(t, srv.URL, `{"Image":"http://images.example`+port+`/boot.iso"}`)
		e, _ := m["error"].(map[string]any)
		if code != 400 || !strings.Contains(e["message"].(string), "address not allowed") {
			t.Errorf("insert of a rebinding name: %d %v", code, m)
		}
		if ranges, whole := up.counts(); ranges+whole != 0 {
			t.Errorf("the guard let %d requests through", ranges+whole)
		}
		if d, _ := dm.Drive(0); d.URL != "" {
			t.Errorf("drive 0: %+v", d)
		}
	})
	t.Run("userspace: a server without Range requests is refused with the reason", func(t *testing.T) {
		up := newUpstream(t, true)
		srv, _, dm := service(t, userspace(t), true)
		code, m := insert(t, srv.URL, `{"Image":"`+up.URL+`/boot.iso"}`)
		e, _ := m["error"].(map[string]any)
		if code != 400 || !strings.Contains(e["message"].(string), "Range") {
			t.Errorf("insert from a server without Range: %d %v", code, m)
		}
		if d, _ := dm.Drive(0); d.URL != "" {
			t.Errorf("drive 0: %+v", d)
		}
	})
	t.Run("userspace: an image too small for a drive is refused and closed", func(t *testing.T) {
		up := newUpstream(t, false)
		os.WriteFile(filepath.Join(up.dir, "tiny.iso"), []byte("tiny"), 0o644)
		srv, _, dm := service(t, userspace(t), true)
		if code, m := insert(t, srv.URL, `{"Image":"`+up.URL+`/tiny.iso"}`); code < 400 || code >= 500 {
			t.Errorf("insert of a 4-byte image: %d %v", code, m)
		}
		if d, _ := dm.Drive(0); d.URL != "" {
			t.Errorf("drive 0: %+v", d)
		}
	})
	t.Run("kernel: the URL is fetched into the store, then attached", func(t *testing.T) {
		up := newUpstream(t, false)
		cfg := gadgettest.Bound(t, 2)
		g, err := gadget.Open(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		srv, store, dm := service(t, g, true)
		if code, m := insert(t, srv.URL, `{"Image":"`+up.URL+`/boot.iso"}`); code != 204 {
			t.Fatalf("insert: %d %v", code, m)
		}
		if d, _ := dm.Drive(0); d.Image == nil || *d.Image != "redfish/boot.iso" || d.URL != "" {
			t.Errorf("drive 0: %+v", d)
		}
		want, _ := os.ReadFile(filepath.Join(up.dir, "boot.iso"))
		if got, err := os.ReadFile(filepath.Join(store.Dir(), "redfish", "boot.iso")); err != nil || !bytes.Equal(got, want) {
			t.Errorf("the fetched image differs (%v)", err)
		}
		if _, v := do(t, "GET", srv.URL+media0, ""); v["Image"] != up.URL+"/boot.iso" || v["TransferMethod"] != "Upload" {
			t.Errorf("VirtualMedia/0: %v", v)
		}
	})
}
