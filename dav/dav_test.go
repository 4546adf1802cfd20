package dav

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/msdav/msdav/fs"
)

// needTool finds a Debian tool; CI installs them all, so there a missing
// tool is a failure, elsewhere a skip.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed (CI must install it in .ci/run)", name)
		}
		t.Skipf("needs %s (Debian package); skipping", name)
	}
	return p
}

func needRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: " + why)
	}
}

type testServer struct {
	*httptest.Server
	store *fs.Store
	url   string // the share's root, with a trailing slash
}

func newServer(t testing.TB, root string) *testServer {
	t.Helper()
	if root == "" {
		root = t.TempDir()
	}
	s, err := fs.Open(fs.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	h := New(s, Options{Prefix: "/dav"})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testServer{Server: srv, store: s, url: srv.URL + "/dav/"}
}

func (ts *testServer) do(t *testing.T, method, path string, body io.Reader, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readAll(r *http.Response) string {
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

func TestLitmus(t *testing.T) {
	litmus := needTool(t, "litmus")
	ts := newServer(t, "")
	cmd := exec.Command(litmus, ts.url)
	cmd.Dir = t.TempDir() // litmus writes debug.log here
	out, err := cmd.CombinedOutput()
	groups := 0
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "<- summary for") {
			groups++
			t.Log(strings.TrimSpace(line))
		}
		if strings.Contains(line, "FAIL") || strings.Contains(line, "WARNING") {
			t.Errorf("litmus: %s", strings.TrimSpace(line))
		}
	}
	if err != nil || groups != 5 {
		t.Fatalf("litmus ran %d of 5 groups, err %v\n%s", groups, err, out)
	}
}

// writeRandom writes n pseudo-random bytes to p.
func writeRandom(t *testing.T, p string, n int64, seed int64) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.CopyN(f, rand.New(rand.NewSource(seed)), n); err != nil {
		t.Fatal(err)
	}
}

func TestRclone(t *testing.T) {
	rclone := needTool(t, "rclone")
	ts := newServer(t, "")
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "folder with spaces", "ünï cødé €"), 0o755)
	writeRandom(t, filepath.Join(src, "folder with spaces", "ünï cødé €", "Win 11 (x64).iso"), 3<<20, 1)
	os.WriteFile(filepath.Join(src, "empty.img"), nil, 0o644)
	writeRandom(t, filepath.Join(src, "big.iso"), 300<<20, 2)
	env := append(os.Environ(),
		"RCLONE_CONFIG_MSDAV_TYPE=webdav",
		"RCLONE_CONFIG_MSDAV_URL="+ts.url,
		"RCLONE_CONFIG_MSDAV_VENDOR=other",
		"RCLONE_CONFIG="+filepath.Join(t.TempDir(), "none.conf"),
	)
	rc := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(rclone, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("rclone %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	start := time.Now()
	rc("copy", src, "msdav:tree")
	t.Logf("rclone copy of 303 MiB took %s", time.Since(start))
	rc("check", "--download", src, "msdav:tree")
	about := rc("about", "msdav:")
	if !strings.Contains(about, "Free:") {
		t.Errorf("rclone about shows no free space:\n%s", about)
	}
	t.Logf("rclone about:\n%s", about)
	if fi, err := os.Stat(filepath.Join(ts.store.Dir(), "tree", "empty.img")); err != nil || fi.Size() != 0 {
		t.Errorf("empty file: %v", err)
	}
}

func TestCadaver(t *testing.T) {
	cadaver := needTool(t, "cadaver")
	ts := newServer(t, "")
	work := t.TempDir()
	writeRandom(t, filepath.Join(work, "a.iso"), 1<<20, 3)
	script := "mkcol isos\nput a.iso isos/a.iso\nget isos/a.iso back.iso\nmove isos/a.iso isos/b.iso\nls isos\nquit\n"
	cmd := exec.Command(cadaver, ts.url)
	cmd.Dir = work
	cmd.Stdin = strings.NewReader(script)
	cmd.Env = append(os.Environ(), "HOME="+work) // no ~/.netrc, no ~/.cadaverrc
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cadaver: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "b.iso") {
		t.Errorf("cadaver ls does not show the moved file:\n%s", out)
	}
	a, _ := os.ReadFile(filepath.Join(work, "a.iso"))
	back, _ := os.ReadFile(filepath.Join(work, "back.iso"))
	stored, _ := os.ReadFile(filepath.Join(ts.store.Dir(), "isos", "b.iso"))
	if !bytes.Equal(a, back) || !bytes.Equal(a, stored) {
		t.Errorf("cadaver round trip changed the bytes (%d, %d, %d)", len(a), len(back), len(stored))
	}
	if _, err := os.Stat(filepath.Join(ts.store.Dir(), "isos", "a.iso")); !os.IsNotExist(err) {
		t.Error("moved file still at its old name")
	}
}

func TestDavfs2(t *testing.T) {
	needRoot(t, "mounts the share with davfs2")
	needTool(t, "mount.davfs")
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("needs /dev/fuse")
	}
	ts := newServer(t, "")
	work := t.TempDir()
	mnt := filepath.Join(work, "mnt")
	os.Mkdir(mnt, 0o755)
	// mount.davfs drops to its own user: its cache must be reachable by it,
	// which t.TempDir's 0700 parents are not.
	cache, err := os.MkdirTemp("", "msdav-davfs-cache-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(cache, 0o777)
	t.Cleanup(func() { os.RemoveAll(cache) })
	conf := filepath.Join(work, "davfs2.conf")
	os.WriteFile(conf, []byte("ask_auth 0\nuse_locks 1\ncache_dir "+cache+"\n"), 0o644)
	cmd := exec.Command("mount", "-t", "davfs", "-o", "conf="+conf, ts.url, mnt)
	cmd.Stdin = strings.NewReader("\n\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mount.davfs: %v\n%s", err, out)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			exec.Command("umount", "-l", mnt).Run()
		}
	})
	img := filepath.Join(work, "flash.img")
	writeRandom(t, img, 8<<20, 4)
	want, _ := os.ReadFile(img)
	if out, err := exec.Command("cp", img, filepath.Join(mnt, "flash.img")).CombinedOutput(); err != nil {
		t.Fatalf("cp into davfs: %v %s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(mnt, "flash.img"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back through davfs: %v (%d bytes)", err, len(got))
	}
	if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil { // davfs2 uploads dirty files at unmount
		t.Fatalf("umount: %v %s", err, out)
	}
	mounted = false
	stored, _ := os.ReadFile(filepath.Join(ts.store.Dir(), "flash.img"))
	if sha256.Sum256(stored) != sha256.Sum256(want) {
		t.Fatalf("image in the store differs after davfs2 unmount (%d bytes)", len(stored))
	}
}

// A client that hangs up mid-body leaves nothing, not even an empty file.
func TestAbortedUploadLeavesNothing(t *testing.T) {
	ts := newServer(t, "")
	for _, chunked := range []bool{false, true} {
		c, err := net.Dial("tcp", ts.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if chunked {
			fmt.Fprintf(c, "PUT /dav/half.iso HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n%s", strings.Repeat("x", 500))
		} else {
			fmt.Fprintf(c, "PUT /dav/half.iso HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n%s", strings.Repeat("x", 5000))
		}
		time.Sleep(200 * time.Millisecond)
		c.Close()
		deadline := time.Now().Add(5 * time.Second)
		for {
			imgs, _ := ts.store.Images(context.Background())
			if len(imgs) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("chunked=%v: upload still listed after hang-up: %+v", chunked, imgs)
			}
			time.Sleep(20 * time.Millisecond)
		}
		ents, _ := os.ReadDir(ts.store.Dir())
		for _, e := range ents {
			t.Errorf("chunked=%v: left behind: %s", chunked, e.Name())
		}
	}
}

func TestPutRules(t *testing.T) {
	ts := newServer(t, "")
	if r := ts.do(t, "PUT", "/dav/a.iso", strings.NewReader("one")); r.StatusCode != 201 {
		t.Fatalf("new PUT: %d", r.StatusCode)
	}
	r := ts.do(t, "PUT", "/dav/a.iso", strings.NewReader("two"))
	if r.StatusCode != 204 || r.Header.Get("ETag") == "" {
		t.Fatalf("overwrite: %d etag %q", r.StatusCode, r.Header.Get("ETag"))
	}
	tag := r.Header.Get("ETag")
	for _, tc := range []struct {
		hdr, val string
		want     int
	}{
		{"If-Match", `"nope"`, 412},
		{"If-None-Match", "*", 412},
		{"If-None-Match", tag, 412},
		{"If-Match", tag, 204},
	} {
		if r := ts.do(t, "PUT", "/dav/a.iso", strings.NewReader("three"), tc.hdr, tc.val); r.StatusCode != tc.want {
			t.Errorf("%s: %s -> %d, want %d", tc.hdr, tc.val, r.StatusCode, tc.want)
		}
	}
	if r := ts.do(t, "PUT", "/dav/new.iso", strings.NewReader("x"), "If-Match", "*"); r.StatusCode != 412 {
		t.Errorf("If-Match * on a missing file: %d", r.StatusCode)
	}
	if r := ts.do(t, "PUT", "/dav/no/such/dir/x.iso", strings.NewReader("x")); r.StatusCode != 409 {
		t.Errorf("PUT into a missing folder: %d", r.StatusCode)
	}
	if r := ts.do(t, "GET", "/dav/a.iso", nil); readAll(r) != "three" || r.Header.Get("Content-Type") != "application/x-iso9660-image" {
		t.Errorf("GET after conditional PUTs: %q", r.Header.Get("Content-Type"))
	}
	r = ts.do(t, "GET", "/dav/a.iso", nil, "Range", "bytes=1-2")
	if r.StatusCode != 206 || readAll(r) != "hr" {
		t.Errorf("ranged GET: %d", r.StatusCode)
	}
}

type attached map[string][]int

func (a attached) Attached() (map[string][]int, error) { return a, nil }

func TestAttachedImageIsLockedOnEveryRoute(t *testing.T) {
	ts := newServer(t, "")
	os.MkdirAll(filepath.Join(ts.store.Dir(), "isos"), 0o755)
	os.WriteFile(filepath.Join(ts.store.Dir(), "isos", "win.iso"), []byte("boot"), 0o644)
	os.WriteFile(filepath.Join(ts.store.Dir(), "other.iso"), []byte("other"), 0o644)
	ts.store.SetAttachments(attached{"isos/win.iso": {2}})
	dest := func(p string) []string { return []string{"Destination", ts.URL + "/dav/" + p} }
	for _, tc := range []struct {
		name, method, path string
		hdr                []string
	}{
		{"overwrite", "PUT", "/dav/isos/win.iso", nil},
		{"delete", "DELETE", "/dav/isos/win.iso", nil},
		{"delete parent", "DELETE", "/dav/isos/", nil},
		{"move away", "MOVE", "/dav/isos/win.iso", dest("x.iso")},
		{"move parent", "MOVE", "/dav/isos", dest("y")},
		{"move onto", "MOVE", "/dav/other.iso", dest("isos/win.iso")},
		{"copy onto", "COPY", "/dav/other.iso", dest("isos/win.iso")},
		{"copy over parent", "COPY", "/dav/other.iso", dest("isos")},
		// onto itself: the fleet tests' probe for another box's lease
		{"copy onto itself", "COPY", "/dav/isos/win.iso", dest("isos/win.iso")},
		{"move onto its parent", "MOVE", "/dav/isos/win.iso", dest("isos")},
	} {
		r := ts.do(t, tc.method, tc.path, strings.NewReader("evil"), tc.hdr...)
		body := readAll(r)
		if r.StatusCode != http.StatusLocked || !strings.Contains(body, "drive 2") {
			t.Errorf("%s: %d %q, want 423 naming drive 2", tc.name, r.StatusCode, body)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(ts.store.Dir(), "isos", "win.iso")); string(b) != "boot" {
		t.Errorf("attached image changed: %q", b)
	}
	if r := ts.do(t, "GET", "/dav/isos/win.iso", nil); r.StatusCode != 200 {
		t.Errorf("reading an attached image: %d", r.StatusCode)
	}
}

func TestFullDisk507(t *testing.T) {
	needRoot(t, "mounts a small tmpfs as the store")
	dir := filepath.Join(t.TempDir(), "store")
	os.MkdirAll(dir, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	ts := newServer(t, dir)
	// Announced too big: refused before the body is read.
	r := ts.do(t, "PUT", "/dav/big.iso", bytes.NewReader(make([]byte, 8<<20)))
	if r.StatusCode != http.StatusInsufficientStorage {
		t.Errorf("announced 8 MiB on a 4 MiB disk: %d", r.StatusCode)
	}
	// Chunked, so the size is unknown until the disk fills.
	req, _ := http.NewRequest("PUT", ts.url+"big2.iso", io.NopCloser(bytes.NewReader(make([]byte, 8<<20))))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInsufficientStorage {
		t.Errorf("chunked 8 MiB on a 4 MiB disk: %d", resp.StatusCode)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		t.Errorf("left behind on a full disk: %s", e.Name())
	}
	if r := ts.do(t, "PUT", "/dav/small.iso", strings.NewReader("fits")); r.StatusCode != 201 {
		t.Errorf("a small upload after the full one: %d (space not freed?)", r.StatusCode)
	}
}

func TestTraversalNeverLeavesTheStore(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "store")
	os.Mkdir(root, 0o755)
	os.WriteFile(filepath.Join(base, "secret"), []byte("SECRET"), 0o644)
	os.Symlink(base, filepath.Join(root, "link"))
	os.Symlink(filepath.Join(base, "secret"), filepath.Join(root, "s.iso"))
	ts := newServer(t, root)
	for _, p := range []string{
		"/dav/../secret", "/dav/%2e%2e/secret", "/dav/%2e%2e%2fsecret", "/dav/..%2fsecret", `/dav/..\secret`,
		"/dav/link/secret", "/dav/s.iso", "/dav/x/../../secret", "/dav/%2E%2E/secret", "/dav/..%5csecret", "/dav/a%00b/../../secret",
	} {
		for _, method := range []string{"GET", "PROPFIND", "DELETE", "PUT"} {
			c, err := net.Dial("tcp", ts.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			// Only PUT carries a body: a PROPFIND with one that is not XML
			// would answer 400 before it ever looked at the path.
			body := ""
			if method == "PUT" {
				body = "EVIL"
			}
			fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: x\r\nDepth: 0\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", method, p, len(body), body)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				c.Close()
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			c.Close()
			// A PUT onto the in-store symlink s.iso replaces the link itself
			// with a file in the store; everything else must fail.
			replacesLink := method == "PUT" && p == "/dav/s.iso"
			// PROPFIND must not answer 207 either: a multistatus would show
			// the outside file's size and date.
			if strings.Contains(string(b), "SECRET") || resp.StatusCode < 400 && !replacesLink {
				t.Errorf("%s %s: %d %q", method, p, resp.StatusCode, b)
			}
		}
	}
	if b, _ := os.ReadFile(filepath.Join(base, "secret")); string(b) != "SECRET" {
		t.Error("the file outside the store changed")
	}
	if _, err := os.Stat(filepath.Join(base, "EVIL")); err == nil {
		t.Error("a file was written outside the store")
	}
}

func TestPropfindAndOptions(t *testing.T) {
	ts := newServer(t, "")
	os.WriteFile(filepath.Join(ts.store.Dir(), "x.iso"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(ts.store.Dir(), ".msdav-props-x.iso"), []byte("[]"), 0o644)
	r := ts.do(t, "OPTIONS", "/dav/", nil)
	if !strings.Contains(r.Header.Get("DAV"), "2") || r.Header.Get("MS-Author-Via") != "DAV" {
		t.Errorf("OPTIONS headers: DAV=%q MS-Author-Via=%q", r.Header.Get("DAV"), r.Header.Get("MS-Author-Via"))
	}
	r = ts.do(t, "PROPFIND", "/dav/", nil, "Depth", "infinity")
	if b := readAll(r); r.StatusCode != 403 || !strings.Contains(b, "propfind-finite-depth") {
		t.Errorf("Depth infinity: %d %s", r.StatusCode, b)
	}
	quotaBody := `<?xml version="1.0"?><propfind xmlns="DAV:"><prop><quota-available-bytes/><quota-used-bytes/><resourcetype/></prop></propfind>`
	for _, p := range []string{"/dav", "/dav/"} {
		r = ts.do(t, "PROPFIND", p, nil, "Depth", "1")
		b := readAll(r)
		// RFC 4331's quota properties are not part of allprop: named only.
		if r.StatusCode != 207 || strings.Contains(b, "quota-available-bytes") || !strings.Contains(b, "x.iso") {
			t.Errorf("PROPFIND %s (allprop): %d %s", p, r.StatusCode, b)
		}
		r = ts.do(t, "PROPFIND", p, strings.NewReader(quotaBody), "Depth", "0")
		if q := readAll(r); r.StatusCode != 207 || !strings.Contains(q, "quota-available-bytes") || !strings.Contains(q, "quota-used-bytes") {
			t.Errorf("PROPFIND %s of the quota properties: %d %s", p, r.StatusCode, q)
		}
		if strings.Contains(b, ".msdav") {
			t.Errorf("PROPFIND %s lists the store's own files", p)
		}
	}
	if r := ts.do(t, "GET", "/dav/.msdav-props-x.iso", nil); r.StatusCode != 404 {
		t.Errorf("internal file reachable: %d", r.StatusCode)
	}
	big := strings.NewReader(`<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>` + strings.Repeat("<D:x/>", maxXMLBody/6) + `</D:prop></D:propfind>`)
	if r := ts.do(t, "PROPFIND", "/dav/", big, "Depth", "0"); r.StatusCode != 413 {
		t.Errorf("huge PROPFIND body: %d", r.StatusCode)
	}
	// MOVE without Overwrite replaces the destination (Overwrite: T).
	os.WriteFile(filepath.Join(ts.store.Dir(), "y.iso"), []byte("y"), 0o644)
	if r := ts.do(t, "MOVE", "/dav/x.iso", nil, "Destination", ts.url+"y.iso"); r.StatusCode != 204 {
		t.Errorf("MOVE without Overwrite over an existing file: %d", r.StatusCode)
	}
}

func TestIfHeaderParse(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
		n  int
	}{
		{"(<urn:uuid:1>)", true, 1},
		{`(<urn:uuid:1> ["e"]) (Not <DAV:no-lock> ["e"])`, true, 2},
		{`<http://h/dav/x> (<urn:uuid:1>)`, true, 1},
		{"(", false, 0}, {"garbage", false, 0}, {"()", false, 0}, {"(Not)", false, 0}, {"(<x)", false, 0},
	} {
		lists, ok := parseIf(tc.in)
		if ok != tc.ok || len(lists) != tc.n {
			t.Errorf("parseIf(%q) = %v, %v", tc.in, lists, ok)
		}
	}
}

func FuzzParseIf(f *testing.F) {
	f.Add("(<urn:uuid:1> [\"e\"]) (Not <DAV:no-lock>)")
	f.Add("<http://x/y> (<a>)")
	f.Fuzz(func(t *testing.T, s string) { parseIf(s) })
}

// XML entity tricks (billion laughs) expand nothing: Go's decoder knows no
// DTD entities, so the body is refused quickly.
func TestXMLEntityTricks(t *testing.T) {
	ts := newServer(t, "")
	var b strings.Builder
	b.WriteString(`<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">`)
	prev := "lol"
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, `<!ENTITY lol%d "%s">`, i, strings.Repeat("&"+prev+";", 10))
		prev = fmt.Sprintf("lol%d", i)
	}
	b.WriteString(`]><D:propfind xmlns:D="DAV:"><D:prop><D:x>&lol9;</D:x></D:prop></D:propfind>`)
	for _, m := range []string{"PROPFIND", "PROPPATCH", "LOCK"} {
		start := time.Now()
		r := ts.do(t, m, "/dav/", strings.NewReader(b.String()), "Depth", "0")
		body := readAll(r)
		if r.StatusCode < 400 || strings.Contains(body, "lollol") {
			t.Errorf("%s with entity expansion: %d %q", m, r.StatusCode, body)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s took %s", m, took)
		}
	}
}

// A symlink swapped in while requests run (a folder replaced by a link to
// outside, over and over) never lets a request out: os.Root resolves every
// component under the store root at the moment of each call.
func TestSymlinkSwappedDuringRequests(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "store")
	out := filepath.Join(base, "outside")
	os.MkdirAll(filepath.Join(root, "d"), 0o755)
	os.MkdirAll(out, 0o755)
	os.WriteFile(filepath.Join(root, "d", "f.iso"), []byte("inside"), 0o644)
	os.WriteFile(filepath.Join(out, "f.iso"), []byte("SECRET"), 0o644)
	ts := newServer(t, root)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			os.Rename(filepath.Join(root, "d"), filepath.Join(root, "d.real"))
			os.Symlink(out, filepath.Join(root, "d"))
			os.Remove(filepath.Join(root, "d"))
			os.Rename(filepath.Join(root, "d.real"), filepath.Join(root, "d"))
		}
	}()
	leaks := 0
	for i := 0; i < 500; i++ {
		r := ts.do(t, "GET", "/dav/d/f.iso", nil)
		if strings.Contains(readAll(r), "SECRET") {
			leaks++
		}
		r = ts.do(t, "PROPFIND", "/dav/d/", nil, "Depth", "1")
		readAll(r)
	}
	close(stop)
	<-done
	if leaks > 0 {
		t.Errorf("%d of 500 GETs read through a swapped-in symlink", leaks)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "f.iso")); string(b) != "SECRET" {
		t.Error("the outside file changed")
	}
}

// limitFileSize makes every write past n bytes into a file fail with EFBIG
// for this process until the test ends: a write error that is not ENOSPC,
// as a soft NFS mount's EIO is, without a server to kill.
func limitFileSize(t *testing.T, n uint64) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: n, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old) })
}

// A write the store fails is the store's fault: a 5xx saying why, not the
// 400 of a body that broke off, and nothing is left under the name.
func TestStoreWriteError5xx(t *testing.T) {
	ts := newServer(t, "")
	limitFileSize(t, 256<<10)
	r := ts.do(t, "PUT", "/dav/big.iso", bytes.NewReader(make([]byte, 2<<20)))
	b, _ := io.ReadAll(r.Body)
	if r.StatusCode < 500 || !strings.Contains(string(b), "upload big.iso: write:") || !strings.Contains(string(b), "file too large") {
		t.Errorf("a failed write: %d %q, want a 5xx naming the write", r.StatusCode, b)
	}
	if _, err := os.Stat(filepath.Join(ts.store.Dir(), "big.iso")); !os.IsNotExist(err) {
		t.Errorf("a failed upload left its name: %v", err)
	}
}
