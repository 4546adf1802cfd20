package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/msdav/msdav/conf"
	"github.com/msdav/msdav/gadget/gadgettest"
	"golang.org/x/crypto/bcrypt"
)

// throttledFiles serves files from memory at a fixed rate, with an ETag
// and Last-Modified, as a slow image server does (http.ServeContent
// answers conditional GETs with 304).
func throttledFiles(t *testing.T, files map[string][]byte, bytesPerSec int) *httptest.Server {
	mod := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("ETag", `"`+strconv.Itoa(len(data))+`"`)
		http.ServeContent(slowWriter{w, bytesPerSec}, r, r.URL.Path, mod, bytes.NewReader(data))
	}))
	t.Cleanup(srv.Close)
	return srv
}

type slowWriter struct {
	http.ResponseWriter
	rate int
}

func (w slowWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := min(len(p), 32<<10)
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

// Issue 32 §1, with a real client: sushy with a 10 s timeout inserts a
// 64 MiB image served at 2 MB/s (its timed-out requests retried, as
// Ironic does, join the running download); the same unchanged URL again
// takes under a second; the polling way (202, sushy's TaskMonitor) works.
func TestRedfishSlowInsertWithSushy(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import sushy").Run(); err != nil {
		t.Skip("needs Debian's python3-sushy (.ci/run installs it)")
	}
	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = byte(i*31 + i>>16)
	}
	small := big[:4<<20]
	up := throttledFiles(t, map[string][]byte{"/deploy.iso": big, "/other.iso": small}, 2_000_000)

	gcfg := gadgettest.Bound(t, 2)
	cfg := conf.Default()
	cfg.Storage.Root = t.TempDir()
	cfg.Gadget = gcfg
	cfg.Server.RuntimeDir = t.TempDir()
	cfg.Fetch.AllowPrivate = true
	hash, _ := bcrypt.GenerateFromPassword([]byte("admin"), bcrypt.MinCost)
	cfg.Auth.Htpasswd = filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(cfg.Auth.Htpasswd, []byte("admin:"+string(hash)+"\n"), 0o600)
	base, _ := startServe(t, cfg)

	var stdout, stderr bytes.Buffer
	cmd := exec.Command(py, filepath.Join("..", "..", "redfish", "testdata", "slowinsert.py"), base, up.URL+"/deploy.iso", up.URL+"/other.iso", "admin", "admin")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := stdout.String()
	t.Logf("sushy:\n%s", out)
	if err != nil {
		t.Fatalf("sushy script: %v\n%s", err, stderr.String())
	}
	if !regexp.MustCompile(`TIMEOUT 1 `).MatchString(out) {
		t.Error("the first InsertMedia did not time out: the test proves nothing about timeouts")
	}
	if !strings.Contains(out, "INSERTED True "+up.URL+"/deploy.iso") {
		t.Error("the slow image was not inserted")
	}
	if m := regexp.MustCompile(`AGAIN seconds ([0-9.]+)`).FindStringSubmatch(out); m == nil {
		t.Error("no second insert")
	} else if s, _ := strconv.ParseFloat(m[1], 64); s >= 1 {
		t.Errorf("the unchanged URL took %.2f s; want under 1", s)
	}
	if !strings.Contains(out, "POLLED 200 True "+up.URL+"/other.iso") {
		t.Error("the polling insert did not end inserted")
	}
	got, _ := os.ReadFile(filepath.Join(cfg.Storage.Root, "redfish", "deploy.iso"))
	if !bytes.Equal(got, big) {
		t.Error("the stored deploy.iso differs from the served one")
	}
	if f, _ := os.ReadFile(filepath.Join(gadgettest.LUN(gcfg, 0), "file")); !strings.HasSuffix(strings.TrimSpace(string(f)), "redfish/other.iso") {
		t.Errorf("drive 0 holds %q", f)
	}
}

// Issue 31.6 through the real htpasswd file: a Redfish token stops working
// when its user changes password or is removed.
func TestRedfishSessionEndsWithCredential(t *testing.T) {
	cfg := conf.Default()
	cfg.Storage.Root = t.TempDir()
	cfg.Gadget = gadgettest.Bound(t, 1)
	cfg.Server.RuntimeDir = t.TempDir()
	cfg.Auth.Htpasswd = filepath.Join(t.TempDir(), "htpasswd")
	hashes := map[string][]byte{} // an edit keeps the other users' lines
	write := func(lines ...string) {
		var b strings.Builder
		for i := 0; i+1 < len(lines); i += 2 {
			h, ok := hashes[lines[i]+":"+lines[i+1]]
			if !ok {
				h, _ = bcrypt.GenerateFromPassword([]byte(lines[i+1]), bcrypt.MinCost)
				hashes[lines[i]+":"+lines[i+1]] = h
			}
			b.WriteString(lines[i] + ":" + string(h) + "\n")
		}
		tmp := cfg.Auth.Htpasswd + ".tmp"
		os.WriteFile(tmp, []byte(b.String()), 0o600)
		os.Rename(tmp, cfg.Auth.Htpasswd)
	}
	write("admin", "admin", "ops", "ops")
	base, _ := startServe(t, cfg)
	login := func(user, pw string) string {
		resp, err := http.Post(base+"/redfish/v1/SessionService/Sessions", "application/json", strings.NewReader(`{"UserName":"`+user+`","Password":"`+pw+`"}`))
		if err != nil || resp.StatusCode != 201 {
			t.Fatalf("login %s: %v %v", user, resp, err)
		}
		resp.Body.Close()
		return resp.Header.Get("X-Auth-Token")
	}
	get := func(tok string) int {
		req, _ := http.NewRequest("GET", base+"/redfish/v1/Systems/0", nil)
		req.Header.Set("X-Auth-Token", tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	admin, ops := login("admin", "admin"), login("ops", "ops")
	if get(admin) != 200 || get(ops) != 200 {
		t.Fatal("fresh tokens refused")
	}
	time.Sleep(10 * time.Millisecond) // a new mtime for the file
	write("admin", "changed", "ops", "ops")
	if code := get(admin); code != 401 {
		t.Errorf("the token of a user whose password changed: %d", code)
	}
	if code := get(ops); code != 200 {
		t.Errorf("another user's token: %d", code)
	}
	time.Sleep(10 * time.Millisecond)
	write("admin", "changed")
	if code := get(ops); code != 401 {
		t.Errorf("a removed user's token: %d", code)
	}
}

// Issue 32 §3, kvmd's auth as its scripts use it: JSON 401
// UnauthorizedError without credentials, 403 ForbiddenError with bad ones,
// the auth_token cookie from POST /api/auth/login, check and logout.
func TestKVMDAuth(t *testing.T) {
	cfg := conf.Default()
	cfg.Storage.Root = t.TempDir()
	cfg.Gadget = gadgettest.Bound(t, 1)
	cfg.Server.RuntimeDir = t.TempDir()
	hash, _ := bcrypt.GenerateFromPassword([]byte("admin"), bcrypt.MinCost)
	cfg.Auth.Htpasswd = filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(cfg.Auth.Htpasswd, []byte("admin:"+string(hash)+"\n"), 0o600)
	base, _ := startServe(t, cfg)
	type answer struct {
		OK     bool `json:"ok"`
		Result struct {
			Error string `json:"error"`
		} `json:"result"`
	}
	call := func(method, path, body string, hdr ...string) (*http.Response, answer) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a answer
		json.NewDecoder(resp.Body).Decode(&a)
		return resp, a
	}
	for _, c := range []struct {
		name   string
		hdr    []string
		status int
		error  string
	}{
		{"no credentials", nil, 401, "UnauthorizedError"},
		{"a wrong Basic password", []string{"Authorization", "Basic YWRtaW46bm8="}, 403, "ForbiddenError"},
		{"wrong kvmd headers", []string{"X-KVMD-User", "admin", "X-KVMD-Passwd", "no"}, 403, "ForbiddenError"},
		{"an unknown token", []string{"Cookie", "auth_token=nope"}, 403, "ForbiddenError"},
		{"kvmd headers", []string{"X-KVMD-User", "admin", "X-KVMD-Passwd", "admin"}, 200, ""},
	} {
		resp, a := call("GET", "/api/msd", "", c.hdr...)
		if resp.StatusCode != c.status || a.Result.Error != c.error || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s: %d %+v %s", c.name, resp.StatusCode, a, resp.Header.Get("Content-Type"))
		}
	}
	form := "application/x-www-form-urlencoded"
	if resp, a := call("POST", "/api/auth/login", "user=admin&passwd=no", "Content-Type", form); resp.StatusCode != 403 || a.Result.Error != "ForbiddenError" {
		t.Errorf("login with a wrong password: %d %+v", resp.StatusCode, a)
	}
	resp, a := call("POST", "/api/auth/login", "user=admin&passwd=admin", "Content-Type", form)
	var tok string
	for _, ck := range resp.Cookies() {
		if ck.Name == "auth_token" {
			tok = ck.Value
		}
	}
	if resp.StatusCode != 200 || !a.OK || tok == "" {
		t.Fatalf("login: %d %+v %v", resp.StatusCode, a, resp.Cookies())
	}
	cookie := []string{"Cookie", "auth_token=" + tok}
	if resp, _ := call("GET", "/api/auth/check", "", cookie...); resp.StatusCode != 200 {
		t.Errorf("check with the cookie: %d", resp.StatusCode)
	}
	if resp, _ := call("GET", "/api/msd", "", cookie...); resp.StatusCode != 200 {
		t.Errorf("/api/msd with the cookie: %d", resp.StatusCode)
	}
	if resp, _ := call("GET", "/api/auth/check", ""); resp.StatusCode != 401 {
		t.Errorf("check without credentials: %d", resp.StatusCode)
	}
	if resp, _ := call("POST", "/api/auth/logout", "", cookie...); resp.StatusCode != 200 {
		t.Errorf("logout: %d", resp.StatusCode)
	}
	if resp, a := call("GET", "/api/auth/check", "", cookie...); resp.StatusCode != 403 || a.Result.Error != "ForbiddenError" {
		t.Errorf("check after logout: %d %+v", resp.StatusCode, a)
	}
}

// Issue 32 §4: two boxes with one host name (PiKVM OS names every box
// pikvm) and no storage.box_name share a library: each has an identity of
// its own, so B cannot overwrite what A attached (423). Two boxes that
// are told the same box_name notice each other and refuse, saying how to
// rename one.
func TestFleetDefaultIdentity(t *testing.T) {
	needRootT(t, "bind-mounts one library into two stores")
	for _, c := range []struct {
		name, boxName, want string
	}{
		{"no box_name", "", "attached to drive 0"},
		{"one box_name on two boxes", "pikvm", "box_name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			lib := filepath.Join(t.TempDir(), "lib")
			os.Mkdir(lib, 0o755)
			mountT(t, "-t", "tmpfs", "-o", "size=32m", "tmpfs", lib)
			box := func() conf.Config {
				cfg := conf.Default()
				cfg.Storage.Root = t.TempDir()
				cfg.Storage.Shared = []string{"shared"}
				cfg.Storage.BoxName = c.boxName
				cfg.Server.RuntimeDir = t.TempDir()
				cfg.Gadget = gadgettest.Bound(t, 1)
				shared := filepath.Join(cfg.Storage.Root, "shared")
				os.Mkdir(shared, 0o755)
				mountT(t, "--bind", lib, shared)
				return cfg
			}
			a, _ := startServe(t, box())
			b, _ := startServe(t, box())
			do := func(base, method, path, body string) (int, string) {
				req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			if code, _ := do(a, "PUT", "/dav/shared/win.iso", strings.Repeat("w", 4096)); code != 201 {
				t.Fatalf("upload on A: %d", code)
			}
			if code, out := do(a, "PUT", "/api/drives/0", `{"image":"shared/win.iso","cdrom":true}`); code != 200 {
				t.Fatalf("attach on A: %d %s", code, out)
			}
			code, out := do(b, "PUT", "/dav/shared/win.iso", "overwritten")
			if code != 423 || !strings.Contains(out, c.want) {
				t.Errorf("B's PUT over the image A holds: %d %s", code, out)
			}
			if got, _ := os.ReadFile(filepath.Join(lib, "win.iso")); string(got) != strings.Repeat("w", 4096) {
				t.Error("B overwrote the image A holds")
			}
		})
	}
}
