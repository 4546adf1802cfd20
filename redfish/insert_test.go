package redfish

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msdav/msdav/fetch"
	"github.com/msdav/msdav/gadget"
	"github.com/msdav/msdav/gadget/gadgettest"
)

func kernel(t *testing.T) *gadget.Gadget {
	t.Helper()
	g, err := gadget.Open(gadgettest.Bound(t, 2), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// A new InsertMedia that cannot be had (refused by the address guard, a
// dead server, a missing file, a mistyped URL) leaves the old medium in
// the drive and its image in the store, byte for byte.
func TestInsertKeepsOldMediumUntilNewIsWhole(t *testing.T) {
	up := newUpstream(t, false)
	want, _ := os.ReadFile(filepath.Join(up.dir, "boot.iso"))
	intact := func(t *testing.T, store interface{ Dir() string }, d func() (string, bool)) {
		t.Helper()
		img, ok := d()
		if !ok || img != "redfish/boot.iso" {
			t.Errorf("drive 0 holds %q (attached %v), want the old redfish/boot.iso", img, ok)
		}
		got, err := os.ReadFile(filepath.Join(store.Dir(), "redfish", "boot.iso"))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("the old image is not intact: %v", err)
		}
	}
	for _, c := range []struct {
		name, url string
		private   bool // allow_private
		status    int
	}{
		{"a dead server", "http://127.0.0.1:1/boot.iso", true, 400},
		{"a missing file of the same name", up.URL + "/missing/boot.iso", true, 400},
		{"a URL the guard refuses", up.URL + "/boot.iso", false, 422},
		{"a mistyped URL", "htp:/boot.iso", true, 404},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, store, dm := serviceWith(t, kernel(t), fetch.Options{AllowPrivate: c.private})
			os.MkdirAll(filepath.Join(store.Dir(), "redfish"), 0o755)
			os.WriteFile(filepath.Join(store.Dir(), "redfish", "boot.iso"), want, 0o644)
			if code, m := do(t, "POST", srv.URL+media0+"/Actions/VirtualMedia.InsertMedia", `{"Image":"redfish/boot.iso"}`); code != 204 {
				t.Fatalf("insert of the store path: %d %v", code, m)
			}
			code, m := do(t, "POST", srv.URL+media0+"/Actions/VirtualMedia.InsertMedia", `{"Image":"`+c.url+`"}`)
			if code != c.status {
				t.Errorf("insert of %s: %d %v, want %d", c.url, code, m, c.status)
			}
			intact(t, store, func() (string, bool) {
				d, err := dm.Drive(0)
				if err != nil || d.Image == nil {
					return "", false
				}
				return *d.Image, true
			})
		})
	}
}

// slowServer serves one image from memory at a given rate, with an ETag
// and Last-Modified (http.ServeContent answers conditional GETs with 304),
// and counts the GETs that asked for the whole body.
type slowServer struct {
	*httptest.Server
	mu     sync.Mutex
	data   []byte
	etag   string
	whole  int // GETs without Range
	notMod int // 304s
}

func newSlowServer(t *testing.T, data []byte, bytesPerSec int) *slowServer {
	s := &slowServer{data: data, etag: `"v1"`}
	mod := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		data, etag := s.data, s.etag
		if r.Header.Get("Range") == "" {
			s.whole++
		}
		s.mu.Unlock()
		w.Header().Set("ETag", etag)
		tw := &throttled{ResponseWriter: w, rate: bytesPerSec}
		http.ServeContent(tw, r, "image.iso", mod, bytes.NewReader(data))
		if tw.status == http.StatusNotModified {
			s.mu.Lock()
			s.notMod++
			s.mu.Unlock()
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *slowServer) set(data []byte, etag string) {
	s.mu.Lock()
	s.data, s.etag = data, etag
	s.mu.Unlock()
}

func (s *slowServer) counts() (whole, notMod int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.whole, s.notMod
}

type throttled struct {
	http.ResponseWriter
	rate   int
	status int
}

func (w *throttled) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }

func (w *throttled) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := min(len(p), 16<<10)
		m, err := w.ResponseWriter.Write(p[:c])
		n += m
		if err != nil {
			return n, err
		}
		p = p[c:]
		time.Sleep(time.Duration(c) * time.Second / time.Duration(w.rate))
	}
	return n, nil
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

// post sends an InsertMedia with a client timeout and extra headers.
func post(t *testing.T, url, body string, timeout time.Duration, hdr ...string) (*http.Response, map[string]any, error) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(b, &m)
	return resp, m, nil
}

// A download outlives the request that started it; the same InsertMedia
// again joins it; the same URL once more, unchanged on its server, is
// revalidated (304) and inserted without a download; changed, it is
// fetched again and replaces the old copy.
func TestInsertOutlivesItsRequest(t *testing.T) {
	img := pattern(3<<20, 1)
	up := newSlowServer(t, img, 2<<20) // 1.5 s
	srv, store, dm := service(t, kernel(t), true)
	insert := srv.URL + media0 + "/Actions/VirtualMedia.InsertMedia"
	body := `{"Image":"` + up.URL + `/deploy.iso"}`
	if _, _, err := post(t, insert, body, 300*time.Millisecond); err == nil {
		t.Fatal("the first insert answered within 300 ms; the test needs a slower download")
	}
	var resp *http.Response
	var m map[string]any
	for try := 0; try < 40; try++ {
		var err error
		if resp, m, err = post(t, insert, body, 300*time.Millisecond); err == nil {
			break
		}
	}
	if resp == nil || resp.StatusCode != 204 {
		t.Fatalf("retries never answered 204: %v %v", resp, m)
	}
	if whole, _ := up.counts(); whole != 1 {
		t.Errorf("the image server sent the whole image %d times; want once (retries join)", whole)
	}
	if d, _ := dm.Drive(0); d.Image == nil || *d.Image != "redfish/deploy.iso" {
		t.Fatalf("drive 0: %+v", d)
	}
	got, _ := os.ReadFile(filepath.Join(store.Dir(), "redfish", "deploy.iso"))
	if !bytes.Equal(got, img) {
		t.Fatal("the stored image differs")
	}

	start := time.Now()
	if resp, m, err := post(t, insert, body, 5*time.Second); err != nil || resp.StatusCode != 204 {
		t.Fatalf("the same insert again: %v %v %v", resp, m, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the unchanged URL took %v; want under a second", d)
	}
	if whole, notMod := up.counts(); whole != 1 || notMod != 1 {
		t.Errorf("whole GETs %d, 304s %d; want 1 and 1", whole, notMod)
	}

	// Changed on its server: fetched again, beside the old copy that
	// stays in the drive until the new one is whole.
	img2 := pattern(3<<20, 2)
	up.set(img2, `"v2"`)
	resp, m, err := post(t, insert, body, time.Minute, "Prefer", "respond-async")
	if err != nil || resp.StatusCode != 202 || !strings.HasPrefix(resp.Header.Get("Location"), "/redfish/v1/TaskService/Tasks/") {
		t.Fatalf("async insert: %v %v %v", resp, m, err)
	}
	if m["TaskState"] != "Running" {
		t.Errorf("task: %v", m)
	}
	if d, _ := dm.Drive(0); d.Image == nil || *d.Image != "redfish/deploy.iso" {
		t.Errorf("drive 0 while the new copy downloads: %+v", d)
	}
	monitor := srv.URL + resp.Header.Get("Location")
	var code int
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if code, m = do(t, "GET", monitor, ""); code != 202 {
			break
		}
	}
	if code != 204 {
		t.Fatalf("the monitor after the download: %d %v", code, m)
	}
	code, task := do(t, "GET", srv.URL+"/redfish/v1/TaskService/Tasks/"+path.Base(path.Dir(resp.Header.Get("Location"))), "")
	if code != 200 || task["TaskState"] != "Completed" || task["PercentComplete"] != 100.0 {
		t.Errorf("task: %d %v", code, task)
	}
	got, _ = os.ReadFile(filepath.Join(store.Dir(), "redfish", "deploy.iso"))
	if !bytes.Equal(got, img2) {
		t.Error("the changed image was not fetched again")
	}
	var names []string
	ents, _ := os.ReadDir(filepath.Join(store.Dir(), "redfish"))
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".msdav-") {
			names = append(names, e.Name())
		}
	}
	if len(names) != 1 {
		t.Errorf("redfish/ holds %v; want the one image", names)
	}
}

// A task that fails says why on its monitor, in Redfish's error shape.
func TestInsertTaskFailure(t *testing.T) {
	srv, _, _ := service(t, kernel(t), true)
	resp, m, err := post(t, srv.URL+media0+"/Actions/VirtualMedia.InsertMedia", `{"Image":"http://127.0.0.1:1/x.iso"}`, time.Minute, "Prefer", "respond-async")
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("async insert: %v %v %v", resp, m, err)
	}
	var code int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if code, m = do(t, "GET", srv.URL+resp.Header.Get("Location"), ""); code != 202 {
			break
		}
	}
	e, _ := m["error"].(map[string]any)
	if code != 400 || e == nil || !strings.Contains(e["message"].(string), "127.0.0.1:1") {
		t.Errorf("monitor of a dead URL: %d %v", code, m)
	}
	if code, m := do(t, "GET", srv.URL+"/redfish/v1/TaskService/Tasks/nope", ""); code != 404 {
		t.Errorf("an unknown task: %d %v", code, m)
	}
	if code, m := do(t, "GET", srv.URL+"/redfish/v1/TaskService/Tasks", ""); code != 200 || m["Members@odata.count"] != 1.0 {
		t.Errorf("tasks: %d %v", code, m)
	}
}

// Issue 31.8: the password of an image URL is never shown.
func TestImageURLPasswordHidden(t *testing.T) {
	up := newUpstream(t, false)
	srv, _, _ := service(t, kernel(t), true)
	withPW := strings.Replace(up.URL, "http://", "http://ironic:s3cret@", 1) + "/boot.iso"
	resp, m, err := post(t, srv.URL+media0+"/Actions/VirtualMedia.InsertMedia", `{"Image":"`+withPW+`"}`, time.Minute)
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("insert: %v %v %v", resp, m, err)
	}
	for _, p := range []string{media0, "/redfish/v1/TaskService/Tasks"} {
		_, v := do(t, "GET", srv.URL+p, "")
		b, _ := json.Marshal(v)
		if strings.Contains(string(b), "s3cret") {
			t.Errorf("GET %s shows the password: %s", p, b)
		}
	}
	_, v := do(t, "GET", srv.URL+media0, "")
	if img, _ := v["Image"].(string); !strings.Contains(img, "ironic:xxxxx@") {
		t.Errorf("Image: %v", v["Image"])
	}
}
