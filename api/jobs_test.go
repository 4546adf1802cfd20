package api

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/msdav/msdav/fetch"
	"github.com/msdav/msdav/fs"
)

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func withJobs(t *testing.T, e *env, allowPrivate bool) *fetch.Manager {
	t.Helper()
	m := fetch.New(e.store, fetch.Options{AllowPrivate: allowPrivate, Stall: time.Minute})
	t.Cleanup(m.Close)
	e.api.SetJobs(m)
	return m
}

// storeFiles lists what the store holds, its own sidecars aside.
func storeFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && !strings.HasPrefix(fi.Name(), ".msdav-sum-") {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func (e *env) waitJob(t *testing.T, id string) map[string]any {
	t.Helper()
	for range 500 {
		code, m := e.call(t, "GET", "/api/jobs/"+id, "")
		if code != 200 {
			t.Fatalf("GET job %s: %d %v", id, code, m)
		}
		if m["state"] != "running" {
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("job %s still running", id)
	return nil
}

func TestFetchAPI(t *testing.T) {
	img := bytes.Repeat([]byte("an image "), 200000)
	release := make(chan struct{})
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/missing.iso":
			http.NotFound(w, r)
		case "/slow.img": // chunked, and held open until released
			w.Write(img[:1000])
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		default:
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(img))
		}
	}))
	defer src.Close()
	defer close(release)
	e := newEnv(t, nil, errors.New("none"), fs.Options{})

	if code, m := e.call(t, "POST", "/api/images/fetch", `{"url":"`+src.URL+`/a.img"}`); code != 503 {
		t.Errorf("without jobs: %d %v", code, m)
	}
	withJobs(t, e, true)

	code, m := e.call(t, "POST", "/api/images/fetch", `{"url":"`+src.URL+`/dl/a.img"}`)
	if code != 202 || m["kind"] != "fetch" || m["path"] != "a.img" || m["state"] != "running" || m["expected"] != float64(len(img)) {
		t.Fatalf("POST fetch: %d %v", code, m)
	}
	for _, k := range []string{"id", "url", "received", "written"} {
		if _, ok := m[k]; !ok {
			t.Errorf("job JSON lacks %q: %v", k, m)
		}
	}
	done := e.waitJob(t, m["id"].(string))
	if done["state"] != "done" || done["sha256"] != sum(img) || done["written"] != float64(len(img)) {
		t.Errorf("finished job: %v", done)
	}
	_, cat := e.call(t, "GET", "/api/images", "")
	entry := cat["images"].([]any)[0].(map[string]any)
	if entry["path"] != "a.img" || entry["sha256"] != sum(img) || entry["kind"] != "unknown" {
		t.Errorf("catalog entry %v", entry)
	}

	// Unknown length: "expected" is null. DELETE while running: nothing stays.
	code, m = e.call(t, "POST", "/api/images/fetch", `{"url":"`+src.URL+`/slow.img","path":"s.img"}`)
	if v, ok := m["expected"]; code != 202 || !ok || v != nil {
		t.Fatalf("chunked fetch: %d %v", code, m)
	}
	id := m["id"].(string)
	if code, m := e.call(t, "DELETE", "/api/jobs/"+id, ""); code != 200 || m["state"] != "canceled" {
		t.Errorf("DELETE running job: %d %v", code, m)
	}
	if got := storeFiles(t, e.store.Dir()); len(got) != 1 || got[0] != "a.img" {
		t.Errorf("store after cancel: %v", got)
	}
	_, list := e.call(t, "GET", "/api/jobs", "")
	if n := len(list["jobs"].([]any)); n != 2 {
		t.Errorf("%d jobs listed, want 2", n)
	}
	if code, _ := e.call(t, "DELETE", "/api/jobs/"+id, ""); code != 200 {
		t.Errorf("DELETE of a finished job: %d", code)
	}
	if code, _ := e.call(t, "GET", "/api/jobs/"+id, ""); code != 404 {
		t.Errorf("forgotten job: %d", code)
	}

	for _, tc := range []struct {
		body string
		want int
		says string
	}{
		{`{"url":"` + src.URL + `/dl/a.img"}`, 409, "already exists"},
		{`{"url":"` + src.URL + `/missing.iso", "path":"m.iso"}`, 502, "404 Not Found"},
		{`{"url":"ftp://x/y.iso"}`, 400, "only http and https"},
		{`{"url":"` + src.URL + `/b.img","sha":"x"}`, 400, "body must be JSON"},
		{`{"url":"` + src.URL + `/b.img","path":"../b.img"}`, 400, "not a usable image name"},
	} {
		code, m := e.call(t, "POST", "/api/images/fetch", tc.body)
		if code != tc.want || !strings.Contains(m["error"].(string), tc.says) {
			t.Errorf("%s: %d %v, want %d saying %q", tc.body, code, m, tc.want, tc.says)
		}
		if code == 502 && m["job"] == nil {
			t.Errorf("%s: no job in the answer", tc.body)
		}
	}
	if code, _ := e.call(t, "GET", "/api/jobs/nope", ""); code != 404 {
		t.Errorf("unknown job: %d", code)
	}
}

func TestFetchAPIGuard(t *testing.T) {
	e := newEnv(t, nil, errors.New("none"), fs.Options{})
	withJobs(t, e, false)
	code, m := e.call(t, "POST", "/api/images/fetch", `{"url":"http://127.0.0.1:1/x.iso"}`)
	if code != 422 || !strings.Contains(m["error"].(string), "loopback") {
		t.Errorf("loopback URL: %d %v", code, m)
	}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestUploadDecompress(t *testing.T) {
	e := newEnv(t, nil, errors.New("none"), fs.Options{})
	img := bytes.Repeat([]byte("disk "), 300000)
	packed := gz(img)
	put := func(path string, body []byte) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("PUT", e.srv.URL+path, bytes.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("not JSON: %q", b)
		}
		return resp.StatusCode, m
	}
	code, m := put("/api/images/upload/os.img.gz", packed)
	if code != 201 || m["path"] != "os.img" || m["sha256"] != sum(img) || m["compression"] != "gzip" || m["size"] != float64(len(img)) {
		t.Errorf("upload .gz: %d %v", code, m)
	}
	code, m = put("/api/images/upload/raw.img.gz?decompress=none", packed)
	if code != 201 || m["path"] != "raw.img.gz" || m["sha256"] != sum(packed) {
		t.Errorf("upload with decompress=none: %d %v", code, m)
	}
	code, m = put("/api/images/upload/plain.img?sha256="+sum(img), img)
	if code != 201 || m["path"] != "plain.img" {
		t.Errorf("plain upload: %d %v", code, m)
	}
	for _, tc := range []struct {
		path string
		body []byte
		want int
		says string
	}{
		{"/api/images/upload/bad.img.gz?sha256=" + strings.Repeat("0", 64), packed, 422, "sha256 mismatch"},
		{"/api/images/upload/cut.img.gz", packed[:len(packed)/2], 400, "gzip data is damaged"},
		{"/api/images/upload/x.img?decompress=maybe", img, 400, "want auto or none"},
		{"/api/images/upload/no/dir/x.img", img, 409, "does not exist"},
		{"/api/images/upload/..%2fx.img", img, 400, "not a usable image name"},
	} {
		code, m := put(tc.path, tc.body)
		if code != tc.want || !strings.Contains(m["error"].(string), tc.says) {
			t.Errorf("%s: %d %v, want %d saying %q", tc.path, code, m, tc.want, tc.says)
		}
	}
	got := storeFiles(t, e.store.Dir())
	if strings.Join(got, ",") != "os.img,plain.img,raw.img.gz" {
		t.Errorf("store holds %v", got)
	}
	b, _ := os.ReadFile(filepath.Join(e.store.Dir(), "os.img"))
	if !bytes.Equal(b, img) {
		t.Error("os.img is not the image")
	}
}

// A CD over the kernel's limit: the refusal says whether the image boots
// as flash instead, from its kind.
func TestTooBigAdvice(t *testing.T) {
	e := newEnv(t, fakeGadget(t), nil, fs.Options{})
	iso := make([]byte, 64<<10)
	copy(iso[16*2048+1:], "CD001")
	hybrid := append([]byte(nil), iso...)
	hybrid[510], hybrid[511] = 0x55, 0xAA
	hybrid[446+4], hybrid[446+12] = 0x17, 0x40
	for name, head := range map[string][]byte{"plain.iso": iso, "hybrid.iso": hybrid, "disk.img": make([]byte, 512)} {
		p := filepath.Join(e.store.Dir(), name)
		os.WriteFile(p, head, 0o644)
		os.Truncate(p, 3<<30) // sparse, over the CD limit
	}
	for _, tc := range []struct{ image, says string }{
		{"hybrid.iso", `hybrid ISO (it also carries a partition table), so it boots as a flash drive: attach it with "cdrom": false`},
		{"plain.iso", "plain iso9660 disc image without a partition table, so as a flash drive the target would see it but not boot"},
		{"disk.img", "attach it as a flash drive instead"},
	} {
		code, m := e.call(t, "PUT", "/api/drives/0", `{"image":"`+tc.image+`","cdrom":true}`)
		if code != 422 || !strings.Contains(m["error"].(string), tc.says) {
			t.Errorf("%s: %d %v, want 422 saying %q", tc.image, code, m, tc.says)
		}
	}
}

// An upload announcing more than the part holds is refused before a byte
// is stored; one of unknown length that runs out of space leaves nothing.
func TestUploadTooBig(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	e := newEnv(t, nil, errors.New("none"), fs.Options{Root: dir})
	big := make([]byte, 3<<20)
	req, _ := http.NewRequest("PUT", e.srv.URL+"/api/images/upload/big.img", bytes.NewReader(big))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInsufficientStorage {
		t.Errorf("announced too big: %d, want 507", resp.StatusCode)
	}
	// Compressed: the body fits, the image does not.
	req, _ = http.NewRequest("PUT", e.srv.URL+"/api/images/upload/big.img.gz", bytes.NewReader(gz(big)))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInsufficientStorage || strings.Contains(string(b), ".msdav-") {
		t.Errorf("decompressed too big: %d %s, want 507 naming no temp file", resp.StatusCode, b)
	}
	if got := storeFiles(t, dir); len(got) != 0 {
		t.Errorf("store holds %v", got)
	}
}

// A write the store fails (EFBIG here, EIO on a soft NFS mount that gave
// up) is the store's fault: a 5xx, not "upload incomplete" 400.
func TestUploadStoreWriteError(t *testing.T) {
	e := newEnv(t, nil, errors.New("none"), fs.Options{})
	var old syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 256 << 10, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)
	req, _ := http.NewRequest("PUT", e.srv.URL+"/api/images/upload/big.img", bytes.NewReader(make([]byte, 2<<20)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 500 || !strings.Contains(string(b), "file too large") {
		t.Errorf("a failed write: %d %s, want a 5xx naming it", resp.StatusCode, b)
	}
}
