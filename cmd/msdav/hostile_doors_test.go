package main

// Whole-server tests of issue 31's doors: what a hostile client, or a web
// page in a browser, can make msdav do.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msdav/msdav/gadget/gadgettest"
	"golang.org/x/crypto/bcrypt"
)

// toolOutput runs a compressor CLI over n zero bytes.
func toolOutput(t *testing.T, n int64, tool string, args ...string) []byte {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed (CI must install it in .ci/run)", tool)
		}
		t.Skipf("needs %s (Debian package); skipping", tool)
	}
	cmd := exec.Command(p, args...)
	cmd.Stdin = io.LimitReader(bytes.NewReader(make([]byte, n)), n)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v", tool, args, err)
	}
	return out
}

func call(t *testing.T, method, url string, body []byte, hdr map[string]string) (int, string) {
	t.Helper()
	// Bounded: an event stream that should have been refused never ends.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A zstd bomb (--long=31: a 2 GiB window) is refused with 422 naming the
// limit and how to recompress, by upload and by fetch; nothing is stored.
func TestDecompressionBombRefused(t *testing.T) {
	bomb := toolOutput(t, 4<<20, "zstd", "-q", "--long=31", "-c")
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(bomb) }))
	defer src.Close()
	cfg := testConfig(t)
	cfg.Fetch.AllowPrivate = true
	base, _ := startServe(t, cfg)
	code, msg := call(t, "PUT", base+"/api/images/upload/up.img.zst", bomb, nil)
	if code != 422 || !strings.Contains(msg, "128 MiB") || !strings.Contains(msg, "--long=27") {
		t.Errorf("upload: %d %s; want 422 naming the limit and how to recompress", code, msg)
	}
	code, msg = call(t, "POST", base+"/api/images/fetch", []byte(`{"url":"`+src.URL+`/f.img.zst"}`), nil)
	if code != 422 || !strings.Contains(msg, "128 MiB") || !strings.Contains(msg, "--long=27") {
		t.Errorf("fetch: %d %s; want 422 naming the limit and how to recompress", code, msg)
	}
	left, _ := filepath.Glob(filepath.Join(cfg.Storage.Root, "*"))
	if len(left) != 0 {
		t.Errorf("the store holds %v", left)
	}
}

// DNS rebinding: a request naming another site in Host is refused with 421
// saying what to do; the box's addresses, its names and server.hosts pass.
func TestHostCheck(t *testing.T) {
	cfg := testConfig(t)
	cfg.Server.Hosts = []string{"pikvm.example.net", "203.0.113.7"}
	os.WriteFile(filepath.Join(cfg.Storage.Root, "a.iso"), []byte("a"), 0o644)
	base, _ := startServe(t, cfg)
	addr := strings.TrimPrefix(base, "http://")
	hn, _ := os.Hostname()
	for _, tc := range []struct {
		host string
		want int
	}{
		{"evil.example", 421},
		{"evil.example:80", 421},
		{"pikvm.example.net.evil.example", 421},
		{"2130706433", 421},
		{"198.51.100.1", 421},
		{addr, 200},
		{"127.0.0.1", 200},
		{"localhost:" + strings.Split(addr, ":")[1], 200},
		{"[::1]:8080", 200},
		{"pikvm.example.net", 200},
		{"PIKVM.example.net.:443", 200},
		{"203.0.113.7:8080", 200},
		{hn, 200},
		{hn + ".local", 200},
	} {
		for _, path := range []string{"/dav/a.iso", "/api/images", "/metrics"} {
			code, msg := call(t, "GET", base+path, nil, map[string]string{"Host": tc.host})
			if code != tc.want {
				t.Errorf("GET %s Host: %s: %d %s, want %d", path, tc.host, code, msg, tc.want)
			}
			if code == 421 && !strings.Contains(msg, "server] hosts") {
				t.Errorf("421 says %q, not how to add the name", msg)
			}
		}
	}
	if code, _ := call(t, "GET", base+"/healthz", nil, map[string]string{"Host": "evil.example"}); code != 200 {
		t.Errorf("healthz with another name: %d", code)
	}
}

// Without credentials OPTIONS gets one fixed answer whatever the path: no
// metrics, and nothing that tells a file from a folder or a missing name.
// With credentials it reaches the handler as before; all else is 401.
func TestOptionsWithoutCredentials(t *testing.T) {
	cfg := testConfig(t)
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	cfg.Auth.Htpasswd = filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(cfg.Auth.Htpasswd, []byte("admin:"+string(h)+"\n"), 0o600)
	os.WriteFile(filepath.Join(cfg.Storage.Root, "a.iso"), []byte("a"), 0o644)
	os.Mkdir(filepath.Join(cfg.Storage.Root, "dir"), 0o755)
	base, _ := startServe(t, cfg)
	type answer struct {
		code                int
		allow, dav, msav, b string
	}
	opts := func(path string, creds bool) answer {
		req, _ := http.NewRequest("OPTIONS", base+path, nil)
		if creds {
			req.SetBasicAuth("admin", "pw")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, resp.Header.Get("Allow"), resp.Header.Get("DAV"), resp.Header.Get("MS-Author-Via"), string(b)}
	}
	first := opts("/dav/a.iso", false)
	if first.code != 200 || !strings.Contains(first.dav, "2") || first.msav != "DAV" || !strings.Contains(first.allow, "PROPFIND") {
		t.Errorf("OPTIONS without credentials: %+v; want Windows' discovery answer", first)
	}
	for _, p := range []string{"/dav/", "/dav/dir/", "/dav/dir", "/dav/missing", "/", "/metrics", "/api/images", "/api/msd", "/ui/app.js"} {
		if got := opts(p, false); got != first {
			t.Errorf("OPTIONS %s without credentials: %+v, differs from %+v", p, got, first)
		}
	}
	if got := opts("/dav/dir/", true); got.code != 200 || got.dav == "" {
		t.Errorf("OPTIONS with credentials: %+v", got)
	}
	req, _ := http.NewRequest("OPTIONS", base+"/metrics", nil)
	req.SetBasicAuth("admin", "wrong")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("OPTIONS with a wrong password: %v %v", resp, err)
	}
	if code, _ := call(t, "GET", base+"/metrics", nil, nil); code != 401 {
		t.Errorf("GET /metrics without credentials: %d", code)
	}
}

// msdav's log never carries a URL's password, in a message, an attribute
// or an error, in either format.
func TestLogRedactsPasswords(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		log := newLogger(format, &buf)
		log.Info("attach http://a:s3cret@h/x.iso", "url", "http://b:hunter22@h/y", "err", errors.New("GET http://c:pa55word@h/z: EOF"))
		log.With("src", "http://d:letmein1@h/").Warn("x")
		if out := buf.String(); strings.Contains(out, "s3cret") || strings.Contains(out, "hunter22") || strings.Contains(out, "pa55word") || strings.Contains(out, "letmein1") {
			t.Errorf("%s log: %s", format, out)
		}
	}
}

// kvmd's read?compress=lzma is xz -1 -T1 itself where xz is installed
// (the ulikunitz encoder took 3.2 times as long on a 20 MB image, holding
// kvmd's only transfer slot): its stream is byte for byte what xz -1 -T1
// writes, so it costs what xz costs. No timing here: the machines that run
// the tests are too noisy for a speed figure to be a verdict.
func TestKVMDReadLZMAIsXZ(t *testing.T) {
	toolOutput(t, 0, "xz", "-c") // skips without xz
	cfg := testConfig(t)
	cfg.Gadget = gadgettest.Bound(t, 1)
	cfg.Server.RuntimeDir = t.TempDir()
	base, _ := startServe(t, cfg)
	// Text-like data: compressible, but work for a match finder.
	rng := rand.New(rand.NewPCG(1, 2))
	words := make([]string, 4096)
	for i := range words {
		words[i] = fmt.Sprintf("%x", rng.Uint64()>>uint(rng.IntN(56)))
	}
	var img bytes.Buffer
	for img.Len() < 8<<20 {
		img.WriteString(words[rng.IntN(len(words))])
		img.WriteByte(" \n"[rng.IntN(2)])
	}
	path := filepath.Join(cfg.Storage.Root, "a.img")
	os.WriteFile(path, img.Bytes(), 0o644)

	want, err := exec.Command("xz", "-1", "-T1", "-c", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(base + "/api/msd/read?image=a.img&compress=lzma")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	dec := exec.Command("xz", "-dc")
	dec.Stdin = bytes.NewReader(body)
	if out, err := dec.Output(); err != nil || !bytes.Equal(out, img.Bytes()) {
		t.Fatalf("xz -dc of the stream: %v, %d bytes", err, len(out))
	}
	if !bytes.Equal(body, want) {
		t.Errorf("read?compress=lzma wrote %d bytes that are not xz -1 -T1's %d: another encoder", len(body), len(want))
	}
	// A client that hangs up mid-read: xz ends, and the slot is free again.
	resp, err = http.Get(base + "/api/msd/read?image=a.img&compress=lzma")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(resp.Body, make([]byte, 100))
	resp.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := exec.Command("pgrep", "-P", fmt.Sprint(os.Getpid()), "-x", "xz").Output()
		code, _ := call(t, "GET", base+"/api/msd/read?image=a.img&compress=zstd", nil, nil)
		if len(bytes.TrimSpace(out)) == 0 && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a hang-up: xz children %q, next read %d", out, code)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// GETs that start work (kvmd's read holds its only transfer slot and
// compresses; the event stream starts the store's watcher) are refused
// when a browser says another site's page asked for them.
func TestCrossSiteWorkGETs(t *testing.T) {
	cfg := testConfig(t)
	cfg.Gadget = gadgettest.Bound(t, 1)
	cfg.Server.RuntimeDir = t.TempDir()
	base, _ := startServe(t, cfg)
	os.WriteFile(filepath.Join(cfg.Storage.Root, "a.img"), []byte("image"), 0o644)
	for _, tc := range []struct {
		path string
		hdr  map[string]string
		want int
	}{
		{"/api/msd/read?image=a.img&compress=lzma", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"/api/msd/read?image=a.img&compress=zstd", map[string]string{"Referer": "http://evil.example/page"}, 403},
		{"/api/msd/read?image=a.img", map[string]string{"Origin": "http://evil.example"}, 403},
		{"/api/events", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"/api/msd/read?image=a.img&compress=lzma", map[string]string{"Sec-Fetch-Site": "same-origin", "Referer": base + "/"}, 200},
		{"/api/msd/read?image=a.img&compress=zstd", nil, 200},
		{"/api/images", map[string]string{"Sec-Fetch-Site": "cross-site"}, 200}, // reads only: the browser keeps the answer from the page
	} {
		code, msg := call(t, "GET", base+tc.path, nil, tc.hdr)
		if code != tc.want {
			t.Errorf("GET %s %v: %d %.200s, want %d", tc.path, tc.hdr, code, msg, tc.want)
		}
	}
}
