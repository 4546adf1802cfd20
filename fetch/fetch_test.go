package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/msdav/msdav/fs"
)

// image is a test image: random blocks and runs of zeros, as OS images
// are, so each compressor has work to do and something to gain.
func image(size int) []byte {
	b := make([]byte, size)
	r := rand.New(rand.NewSource(int64(size)))
	for off := 0; off < size; off += 64 << 10 {
		if r.Intn(3) > 0 {
			r.Read(b[off:min(off+64<<10, size)])
		}
	}
	return b
}

func hexSum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

type env struct {
	t     *testing.T
	store *fs.Store
	m     *Manager
}

func newEnv(t *testing.T, root string, mod func(*Options)) *env {
	t.Helper()
	if root == "" {
		root = t.TempDir()
	}
	s, err := fs.Open(fs.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{AllowPrivate: true, Backoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Stall: 400 * time.Millisecond, Retries: 4, ProgressEvery: 20 * time.Millisecond}
	if mod != nil {
		mod(&o)
	}
	m := New(s, o)
	t.Cleanup(func() { m.Close(); s.Close() })
	return &env{t: t, store: s, m: m}
}

// wait returns the job once it left "running".
func (e *env) wait(j Job) Job {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		cur, ok := e.m.Get(j.ID)
		if !ok {
			e.t.Fatalf("job %s vanished", j.ID)
		}
		if cur.State != Running {
			return cur
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatalf("job %s still running", j.ID)
	return Job{}
}

// holds asserts the store holds exactly the named files with these bytes
// (nil: nothing at all), and no temp file.
func (e *env) holds(want map[string][]byte) {
	e.t.Helper()
	got := map[string][]byte{}
	filepath.Walk(e.store.Dir(), func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(e.store.Dir(), p)
		if strings.HasPrefix(fi.Name(), ".msdav-sum-") {
			return nil
		}
		b, _ := os.ReadFile(p)
		got[rel] = b
		return nil
	})
	for name, b := range got {
		w, ok := want[name]
		switch {
		case !ok:
			e.t.Errorf("store holds %s (%d bytes), which it should not", name, len(b))
		case !bytes.Equal(b, w):
			e.t.Errorf("%s: %d bytes, not the %d expected (or not the same)", name, len(b), len(w))
		}
	}
	for name := range want {
		if _, ok := got[name]; !ok {
			e.t.Errorf("store lacks %s", name)
		}
	}
}

// serveFile serves b like a static file server: ETag, Range, If-Range.
func serveFile(b []byte) http.HandlerFunc {
	mod := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "", mod, bytes.NewReader(b))
	}
}

// dropping serves b honouring Range, but hangs up after `after` bytes of
// every response.
func dropping(b []byte, after int, requests *atomic.Int32) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		start := 0
		if rg := r.Header.Get("Range"); rg != "" && r.Header.Get("If-Range") == `"v1"` {
			start, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(b)-1, len(b)))
			w.Header().Set("Content-Length", strconv.Itoa(len(b)-start))
			w.Header().Set("ETag", `"v1"`)
			w.WriteHeader(http.StatusPartialContent)
		} else {
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.Header().Set("ETag", `"v1"`)
			w.Header().Set("Accept-Ranges", "bytes")
			w.WriteHeader(http.StatusOK)
		}
		end := min(start+after, len(b))
		w.Write(b[start:end])
		if end < len(b) {
			hangUp(w)
		}
	}
}

func hangUp(w http.ResponseWriter) {
	w.(http.Flusher).Flush()
	c, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		c.Close()
	}
}

func start(t *testing.T, m *Manager, req Request) Job {
	t.Helper()
	j, err := m.Start(req)
	if err != nil {
		t.Fatalf("Start(%+v): %v", req, err)
	}
	return j
}

func TestFetchPlain(t *testing.T) {
	img := image(3<<20 + 100)
	srv := httptest.NewServer(serveFile(img))
	defer srv.Close()
	var events atomic.Int32
	e := newEnv(t, "", func(o *Options) {
		o.Publish = func(kind string, v any) {
			if _, ok := v.(Job); kind == "job" && ok {
				events.Add(1)
			}
		}
	})
	j := e.wait(start(t, e.m, Request{URL: srv.URL + "/isos/debian-13.iso?x=1"}))
	if j.State != Done || j.Path != "debian-13.iso" || j.SHA256 != hexSum(img) || j.Written != int64(len(img)) ||
		j.Received != int64(len(img)) || j.Expected == nil || *j.Expected != int64(len(img)) || j.Kind != "fetch" {
		t.Errorf("job %+v", j)
	}
	e.holds(map[string][]byte{"debian-13.iso": img})
	if sum, _, _ := e.store.Checksum("debian-13.iso"); sum != hexSum(img) {
		t.Errorf("catalog sha256 %q", sum)
	}
	if events.Load() < 2 {
		t.Errorf("%d job events, want at least running and done", events.Load())
	}
	// A second fetch to the same name is refused; the image stays.
	if _, err := e.m.Start(Request{URL: srv.URL + "/debian-13.iso"}); !errors.Is(err, ErrExists) {
		t.Errorf("fetch over an existing image: %v", err)
	}
	e.holds(map[string][]byte{"debian-13.iso": img})
}

// A real ISO made by xorriso arrives byte-identical and the catalog knows
// it for one.
func TestFetchRealISO(t *testing.T) {
	if _, err := exec.LookPath("xorriso"); err != nil {
		t.Skip("xorriso not installed (Debian: xorriso)")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "readme.txt"), image(200<<10), 0o644)
	iso := filepath.Join(dir, "rescue.iso")
	if out, err := exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-o", iso, "-V", "RESCUE", dir).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v %s", err, out)
	}
	b, _ := os.ReadFile(iso)
	srv := httptest.NewServer(serveFile(b))
	defer srv.Close()
	e := newEnv(t, "", nil)
	j := e.wait(start(t, e.m, Request{URL: srv.URL + "/rescue.iso", SHA256: hexSum(b)}))
	if j.State != Done || j.SHA256 != hexSum(b) {
		t.Errorf("job %+v", j)
	}
	e.holds(map[string][]byte{"rescue.iso": b})
	if sum, kind, _ := e.store.Checksum("rescue.iso"); sum != hexSum(b) || kind != "iso9660" {
		t.Errorf("catalog: sha256 %q kind %q", sum, kind)
	}
}

// Each compressed form, made by the real tool, is stored as the image
// under the name without its suffix; "none" stores it as it comes.
func TestFetchDecompress(t *testing.T) {
	img := image(2<<20 + 4321)
	e := newEnv(t, "", nil)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	want := map[string][]byte{}
	for _, tc := range []struct {
		tool string
		args []string
		ext  string
	}{
		{"xz", []string{"-c", "-T2"}, ".xz"},
		{"gzip", []string{"-c"}, ".gz"},
		{"zstd", []string{"-c", "-q"}, ".zst"},
		{"bzip2", []string{"-c"}, ".bz2"},
	} {
		if _, err := exec.LookPath(tc.tool); err != nil {
			t.Logf("%s not installed: skipping its case", tc.tool)
			continue
		}
		cmd := exec.Command(tc.tool, tc.args...)
		cmd.Stdin = bytes.NewReader(img)
		packed, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", tc.tool, err)
		}
		name := "os-" + tc.tool + ".img" + tc.ext
		mux.Handle("/"+name, serveFile(packed))
		j := e.wait(start(t, e.m, Request{URL: srv.URL + "/" + name, SHA256: hexSum(packed)}))
		if j.State != Done || j.Path != "os-"+tc.tool+".img" || j.Compression == "" || j.SHA256 != hexSum(img) ||
			j.Received != int64(len(packed)) || j.Written != int64(len(img)) {
			t.Errorf("%s: job %+v", tc.tool, j)
		}
		want["os-"+tc.tool+".img"] = img
		// As it comes, checked against the image's own sum.
		j = e.wait(start(t, e.m, Request{URL: srv.URL + "/" + name, Decompress: "none", Path: "raw" + tc.ext}))
		if j.State != Done || j.SHA256 != hexSum(packed) {
			t.Errorf("%s with decompress none: %+v", tc.tool, j)
		}
		want["raw"+tc.ext] = packed
	}
	e.holds(want)
}

// A server that hangs up after every MiB but honours Range: resumed each
// time, byte-identical at the end.
func TestFetchResumesAfterDrops(t *testing.T) {
	img := image(4<<20 + 7)
	var reqs atomic.Int32
	srv := httptest.NewServer(dropping(img, 1<<20, &reqs))
	defer srv.Close()
	e := newEnv(t, "", nil)
	j := e.wait(start(t, e.m, Request{URL: srv.URL + "/a.img"}))
	if j.State != Done || j.SHA256 != hexSum(img) || j.Resumes != 4 || j.Note != "" {
		t.Errorf("job %+v after %d requests", j, reqs.Load())
	}
	e.holds(map[string][]byte{"a.img": img})
}

// Compressed and dropping: the decoder never notices the resumes.
func TestFetchResumesCompressed(t *testing.T) {
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Skip("zstd not installed")
	}
	img := image(6 << 20)
	cmd := exec.Command("zstd", "-c", "-q", "-1")
	cmd.Stdin = bytes.NewReader(img)
	packed, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var reqs atomic.Int32
	srv := httptest.NewServer(dropping(packed, 1<<20, &reqs))
	defer srv.Close()
	e := newEnv(t, "", nil)
	j := e.wait(start(t, e.m, Request{URL: srv.URL + "/b.img.zst", SHA256: hexSum(img)}))
	if j.State != Done || j.Path != "b.img" || j.Resumes == 0 {
		t.Errorf("job %+v", j)
	}
	e.holds(map[string][]byte{"b.img": img})
}

// A server that ignores Range: the whole file again, from zero, said in
// the job; and one that drops every time runs out of tries and leaves nothing.
func TestFetchServerIgnoringRange(t *testing.T) {
	img := image(3 << 20)
	var reqs atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := reqs.Add(1)
		w.Header().Set("Content-Length", strconv.Itoa(len(img)))
		w.Header().Set("Last-Modified", "Fri, 02 Jan 2026 03:04:05 GMT")
		if r.URL.Path == "/always.img" || n == 1 {
			w.Write(img[:1<<20])
			hangUp(w)
			return
		}
		w.Write(img)
	}))
	defer srv.Close()
	e := newEnv(t, "", nil)
	j := e.wait(start(t, e.m, Request{URL: srv.URL + "/c.img"}))
	if j.State != Done || j.SHA256 != hexSum(img) || !strings.Contains(j.Note, "restarted from zero 1 time(s): the server ignored Range") {
		t.Errorf("job %+v", j)
	}
	j = e.wait(start(t, e.m, Request{URL: srv.URL + "/always.img"}))
	if j.State != Failed || !strings.Contains(j.Error, "gave up after restarting from zero 4 times") {
		t.Errorf("always dropping: %+v", j)
	}
	e.holds(map[string][]byte{"c.img": img})
}

// What the server answers to a resume decides: a passing 503 is retried,
// a 410 ends the job, and without ETag or Last-Modified nothing proves the
// file is the same, so the download starts over.
func TestFetchResumeAnswers(t *testing.T) {
	img := image(2<<20 + 3)
	for _, tc := range []struct {
		name      string
		second    int  // status of the first resume; 0: serve the file
		validator bool // ETag on every response
		state     string
		says      string
	}{
		{"503 then resumed", 503, true, Done, ""},
		{"410 Gone", 410, true, Failed, "resuming at byte 1048576: server answered 410 Gone"},
		{"no validator", 0, false, Done, "no ETag or Last-Modified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reqs atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := reqs.Add(1)
				if tc.validator {
					w.Header().Set("ETag", `"v1"`)
				}
				switch {
				case n == 1:
					w.Header().Set("Content-Length", strconv.Itoa(len(img)))
					w.Write(img[:1<<20])
					hangUp(w)
				case n == 2 && tc.second != 0:
					w.WriteHeader(tc.second)
				default:
					http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(img))
				}
			}))
			defer srv.Close()
			e := newEnv(t, "", nil)
			j := e.wait(start(t, e.m, Request{URL: srv.URL + "/g.img"}))
			got := j.Error + j.Note
			if j.State != tc.state || !strings.Contains(got, tc.says) {
				t.Errorf("job %+v, want %s saying %q", j, tc.state, tc.says)
			}
			if tc.state == Done {
				e.holds(map[string][]byte{"g.img": img})
			} else {
				e.holds(nil)
			}
		})
	}
}

// A server that stops sending without hanging up: after Options.Stall the
// connection is given up and the download resumed.
func TestFetchResumesAfterStall(t *testing.T) {
	img := image(3 << 20)
	var reqs atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reqs.Add(1) == 1 {
			w.Header().Set("ETag", `"v1"`)
			w.Header().Set("Content-Length", strconv.Itoa(len(img)))
			w.Write(img[:1<<20])
			w.(http.Flusher).Flush()
			select { // stall until the client gives up
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		}
		serveFile(img)(w, r)
	}))
	defer srv.Close()
	e := newEnv(t, "", nil)
	began := time.Now()
	j := e.wait(start(t, e.m, Request{URL: srv.URL + "/d.img"}))
	if j.State != Done || j.SHA256 != hexSum(img) || j.Resumes != 1 {
		t.Errorf("job %+v", j)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("stall noticed after %s, want about 400ms", d)
	}
	e.holds(map[string][]byte{"d.img": img})
}

// Failures that must leave nothing and say why: 404, a redirect loop, a
// wrong sha256, damaged compressed data.
func TestFetchFailures(t *testing.T) {
	img := image(1<<20 + 5)
	mux := http.NewServeMux()
	mux.Handle("/ok.img", serveFile(img))
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) })
	mux.Handle("/bad.img.xz", serveFile(append([]byte{0xFD, '7', 'z', 'X', 'Z', 0}, img[:1000]...)))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	e := newEnv(t, "", nil)
	for _, tc := range []struct {
		req   Request
		start error // from Start
		want  string
	}{
		{Request{URL: srv.URL + "/missing.iso"}, ErrRemote, "404 Not Found"},
		{Request{URL: srv.URL + "/loop"}, ErrRemote, "stopped after 10 redirects"},
		{Request{URL: srv.URL + "/ok.img", SHA256: strings.Repeat("ab", 32)}, nil, "sha256 mismatch: want abab"},
		{Request{URL: srv.URL + "/bad.img.xz"}, nil, "xz data is damaged"},
		{Request{URL: "ftp://example.com/x.iso"}, ErrInvalid, "only http and https"},
		{Request{URL: srv.URL + "/ok.img", SHA256: "123"}, ErrInvalid, "64 hex digits"},
		{Request{URL: srv.URL + "/ok.img", Path: "../x.img"}, ErrInvalid, "not a usable image name"},
		{Request{URL: srv.URL + "/ok.img", Path: "no/such/dir.img"}, ErrInvalid, "folder no/such does not exist"},
		{Request{URL: srv.URL + "/ok.img", Decompress: "yes"}, ErrInvalid, `want "auto" or "none"`},
	} {
		j, err := e.m.Start(tc.req)
		if tc.start != nil || err != nil {
			if !errors.Is(err, tc.start) || !strings.Contains(fmt.Sprint(err), tc.want) {
				t.Errorf("%+v: Start error %v, want %v saying %q", tc.req, err, tc.start, tc.want)
			}
			if j.ID != "" && (j.State != Failed || !strings.Contains(j.Error, tc.want)) {
				t.Errorf("%+v: job %+v", tc.req, j)
			}
			continue
		}
		j = e.wait(j)
		if j.State != Failed || !strings.Contains(j.Error, tc.want) || j.SHA256 != "" {
			t.Errorf("%+v: job %+v, want failed saying %q", tc.req, j, tc.want)
		}
	}
	e.holds(nil)
}

// Cancelling mid-way: Cancel returns when nothing is left; the job says
// canceled; a second Cancel forgets it.
func TestFetchCancel(t *testing.T) {
	img := image(2 << 20)
	sent := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(img)))
		w.Write(img[:512<<10])
		w.(http.Flusher).Flush()
		once.Do(func() { close(sent) })
		<-r.Context().Done()
	}))
	defer srv.Close()
	e := newEnv(t, "", func(o *Options) { o.Stall = time.Minute })
	j := start(t, e.m, Request{URL: srv.URL + "/e.img"})
	<-sent
	time.Sleep(50 * time.Millisecond)
	if _, ok := e.store.Uploading("e.img"); !ok {
		t.Error("no upload in progress mid-way")
	}
	if err := e.m.Cancel(j.ID); err != nil {
		t.Fatal(err)
	}
	e.holds(nil)
	j, _ = e.m.Get(j.ID)
	if j.State != Canceled {
		t.Errorf("job %+v", j)
	}
	if err := e.m.Cancel(j.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.m.Get(j.ID); ok {
		t.Error("finished job still listed after DELETE")
	}
	// Two fetches to one name at once: the second is refused, whether the
	// first has its upload yet or not.
	k := start(t, e.m, Request{URL: srv.URL + "/x/e.img"})
	if _, err := e.m.Start(Request{URL: srv.URL + "/y/e.img"}); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), k.ID) {
		t.Errorf("second fetch to e.img: %v", err)
	}
	e.m.Cancel(k.ID)
	if err := e.m.Cancel("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("cancel of an unknown job: %v", err)
	}
}

// https with the system's roots: a server they do not vouch for fails the
// job naming the certificate; with its CA trusted the image arrives, also
// through a redirect, named after where it was redirected to.
func TestFetchHTTPS(t *testing.T) {
	img := image(300 << 10)
	mux := http.NewServeMux()
	mux.Handle("/files/rescue.iso", serveFile(img))
	mux.Handle("/latest", http.RedirectHandler("/files/rescue.iso", http.StatusFound))
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	e := newEnv(t, "", nil)
	j, err := e.m.Start(Request{URL: srv.URL + "/files/rescue.iso"})
	if !errors.Is(err, ErrRemote) || !strings.Contains(j.Error, "certificate") {
		t.Errorf("untrusted certificate: %v, job %+v", err, j)
	}
	e = newEnv(t, "", func(o *Options) { o.TLS = srv.Client().Transport.(*http.Transport).TLSClientConfig })
	j = e.wait(start(t, e.m, Request{URL: srv.URL + "/latest"}))
	if j.State != Done || j.Path != "rescue.iso" {
		t.Errorf("https through a redirect: %+v", j)
	}
	e.holds(map[string][]byte{"rescue.iso": img})
}

// Credentials in the URL are used, and never shown in the job.
func TestFetchURLCredentials(t *testing.T) {
	img := image(10 << 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "me" || p != "s3cret" {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		w.Write(img)
	}))
	defer srv.Close()
	e := newEnv(t, "", nil)
	j := e.wait(start(t, e.m, Request{URL: strings.Replace(srv.URL, "http://", "http://me:s3cret@", 1) + "/p.img"}))
	if j.State != Done || strings.Contains(j.URL, "s3cret") || !strings.Contains(j.URL, "me:xxxxx@") {
		t.Errorf("job %+v", j)
	}
	e.holds(map[string][]byte{"p.img": img})
}

// The name comes from Content-Disposition when the server gives one.
func TestFetchName(t *testing.T) {
	img := image(100 << 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/download" {
			w.Header().Set("Content-Disposition", `attachment; filename="../haos_ova-16.0.img"`)
		}
		w.Write(img)
	}))
	defer srv.Close()
	e := newEnv(t, "", nil)
	j := e.wait(start(t, e.m, Request{URL: srv.URL + "/download"}))
	k := e.wait(start(t, e.m, Request{URL: srv.URL + "/"}))
	if j.Path != "haos_ova-16.0.img" || j.Expected != nil && *j.Expected != int64(len(img)) || k.Path != "download.img" {
		t.Errorf("names %q, %q", j.Path, k.Path)
	}
	e.holds(map[string][]byte{"haos_ova-16.0.img": img, "download.img": img})
}

// The guard, by default: loopback, private (also by name and v4-mapped)
// and link-local refused before any traffic, on redirects, and at connect
// time when a name resolves differently the second time.
func TestGuard(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("secret"))
	}))
	defer srv.Close()
	_, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, "http://"), ":")
	var lookups atomic.Int32
	e := newEnv(t, "", func(o *Options) {
		o.AllowPrivate = false
		o.LookupIP = func(ctx context.Context, host string) ([]netip.Addr, error) {
			switch host {
			case "internal.example":
				return []netip.Addr{netip.MustParseAddr("10.0.0.1")}, nil
			case "rebind.example": // public when checked, loopback when dialled
				if lookups.Add(1) == 1 {
					return []netip.Addr{netip.MustParseAddr("192.0.2.10")}, nil
				}
				return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
			}
			return nil, fmt.Errorf("no such host %s", host)
		}
	})
	for _, tc := range []struct{ url, want string }{
		{"http://127.0.0.1:" + port + "/x.iso", "127.0.0.1 is a loopback address"},
		{"http://internal.example/x.iso", "internal.example (10.0.0.1) is a private address"},
		{"http://[::ffff:10.0.0.1]/x.iso", "a private address"},
		{"http://[::1]:" + port + "/x.iso", "a loopback address"},
		{"http://169.254.169.254/latest/meta-data/", "a link-local address"},
		{"http://0.0.0.0:" + port + "/", "an unspecified address"},
		{"http://[64:ff9b::7f00:1]/", "a loopback address"},
	} {
		_, err := e.m.Start(Request{URL: tc.url})
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "allow_private") {
			t.Errorf("%s: %v, want refused saying %q", tc.url, err, tc.want)
		}
	}
	j, err := e.m.Start(Request{URL: "http://rebind.example:" + port + "/x.iso"})
	if !errors.Is(err, ErrRefused) || j.State != Failed || !strings.Contains(j.Error, "127.0.0.1 is a loopback address") {
		t.Errorf("rebinding: %v, job %+v", err, j)
	}
	// Every redirect is checked the same way.
	req := httptest.NewRequest("GET", "http://10.1.2.3/x", nil)
	if err := e.m.checkRedirect(req, []*http.Request{req}); !errors.Is(err, ErrRefused) {
		t.Errorf("redirect to 10.1.2.3: %v", err)
	}
	if hits.Load() != 0 {
		t.Errorf("the guarded server got %d requests", hits.Load())
	}
	e.holds(nil)
	for _, a := range []string{"8.8.8.8", "2001:4860:4860::8888", "192.0.2.10"} {
		if c := why(netip.MustParseAddr(a)); c != "" {
			t.Errorf("%s refused as %s", a, c)
		}
	}
}

// A Content-Length larger than the free space of a real small tmpfs is
// refused before a byte is stored (the API answers 507).
func TestFetchTooBig(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	img := image(6 << 20)
	srv := httptest.NewServer(serveFile(img))
	defer srv.Close()
	e := newEnv(t, dir, nil)
	j, err := e.m.Start(Request{URL: srv.URL + "/big.img"})
	if !fs.IsNoSpace(err) || j.State != Failed || !strings.Contains(j.Error, "big.img needs 6291456 bytes and the store has") {
		t.Errorf("Start: %v, job %+v", err, j)
	}
	// Two fetches that fit one at a time but not together: the second is
	// refused while the first runs, counting what the first still needs.
	hold := make(chan struct{})
	part := image(2<<20 + 512<<10)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(part)))
		w.Write(part[:1000])
		w.(http.Flusher).Flush()
		select {
		case <-hold:
			w.Write(part[1000:])
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	first := start(t, e.m, Request{URL: slow.URL + "/one.img"})
	j, err = e.m.Start(Request{URL: slow.URL + "/two.img"})
	if !fs.IsNoSpace(err) || !strings.Contains(j.Error, "promised to running fetches") {
		t.Errorf("second fetch: %v, job %+v", err, j)
	}
	close(hold)
	if j := e.wait(first); j.State != Done {
		t.Errorf("first fetch: %+v", j)
	}
	e.holds(map[string][]byte{"one.img": part})
	if err := e.store.RemoveAll(context.Background(), "one.img"); err != nil {
		t.Fatal(err)
	}

	// Unknown length: found out while writing, and cleaned up.
	chunked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush() // no Content-Length: chunked
		w.Write(img)
	}))
	defer chunked.Close()
	j = e.wait(start(t, e.m, Request{URL: chunked.URL + "/big2.img"}))
	if j.State != Failed || !strings.Contains(j.Error, "ran out of space") || strings.Contains(j.Error, ".msdav-") {
		t.Errorf("chunked: %+v", j)
	}
	e.holds(nil)
}

// Close cancels running jobs and leaves nothing.
func TestCloseCancels(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10000000")
		w.Write(make([]byte, 1000))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	e := newEnv(t, "", func(o *Options) { o.Stall = time.Minute })
	j := start(t, e.m, Request{URL: srv.URL + "/f.img"})
	e.m.Close()
	j, _ = e.m.Get(j.ID)
	if j.State != Canceled || !strings.Contains(j.Error, "stopping") {
		t.Errorf("job after Close: %+v", j)
	}
	e.holds(nil)
}

// Store errors reach the job without the temp file's name.
func TestPlainErrors(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("upload x.img: rename: %w", &os.LinkError{Op: "rename", Old: ".msdav-upload-1-x.img", New: "x.img", Err: syscall.EXDEV}),
		&os.PathError{Op: "openat", Path: ".msdav-upload-2-x.img", Err: syscall.ENOSPC},
	} {
		if got := plain(err).Error(); strings.Contains(got, ".msdav-") {
			t.Errorf("plain(%v) = %q", err, got)
		}
	}
}

// With the remount guard, the store is rw only while a fetch writes: the
// image, its checksum and the job's journal all land inside that window,
// and a journal a crash left is cleared through the guard at the next start.
func TestFetchRemountGuard(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs and remount it")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	img := image(2 << 20)
	hold := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(img)))
		w.Write(img[:1<<20])
		w.(http.Flusher).Flush()
		<-hold
		w.Write(img[1<<20:])
	}))
	defer srv.Close()
	open := func() (*fs.Store, *Manager) {
		s, err := fs.Open(fs.Options{Root: dir, Remount: true, Grace: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return s, New(s, Options{AllowPrivate: true, Stall: time.Minute})
	}
	ro := func() bool { r, _ := fs.IsReadOnly(dir); return r }
	waitRO := func() {
		t.Helper()
		for i := 0; !ro(); i++ {
			if i > 200 {
				t.Fatal("store still rw after the fetch")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	s, m := open()
	waitRO()
	j, err := m.Start(Request{URL: srv.URL + "/g.img"})
	if err != nil {
		t.Fatal(err)
	}
	if ro() {
		t.Error("store ro while a fetch writes")
	}
	close(hold)
	for cur, _ := m.Get(j.ID); cur.State == Running; cur, _ = m.Get(j.ID) {
		time.Sleep(10 * time.Millisecond)
	}
	waitRO()
	if got, _ := os.ReadFile(filepath.Join(dir, "g.img")); !bytes.Equal(got, img) {
		t.Error("image not stored whole")
	}
	if sum, _, _ := s.Checksum("g.img"); sum != hexSum(img) {
		t.Errorf("sha256 %q after the fetch", sum)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".msdav-job-*")); len(left) != 0 {
		t.Errorf("journal left: %v", left)
	}
	m.Close()
	s.Close()

	// A journal as a kill -9 leaves it.
	exec.Command("mount", "-o", "remount,rw", dir).Run()
	os.WriteFile(filepath.Join(dir, journalName("0123456789ab")), []byte(`{"id":"0123456789ab","kind":"fetch","url":"http://x/y.img","path":"y.img","state":"running"}`), 0o644)
	s, m = open()
	defer s.Close()
	defer m.Close()
	waitRO()
	jj, ok := m.Get("0123456789ab")
	if !ok || jj.State != Failed || !strings.Contains(jj.Error, "interrupted") {
		t.Errorf("recovered job %+v", jj)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".msdav-job-*")); len(left) != 0 {
		t.Errorf("journal not cleared through the guard: %v", left)
	}
}
