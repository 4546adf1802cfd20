package main

// Hostile-input tests that run the whole server: each one reproduces an
// attack or a data-loss hole from issues 30, 31 and 34 against the real
// handler stack (auth, same-origin guard, router, share, store).

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"
)

// hostileReq sends one request and returns the answer with its body read.
func hostileReq(t *testing.T, method, url string, hdr map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, url, err)
	}
	return resp, string(b)
}

// A page or drawing uploaded to the share must not run as the admin: its
// script tries to create an image through the API with the credentials
// the browser sends for the console's origin, and nothing may be created.
// On main x.html was served as text/html on the console's origin and its
// fetch() made the image.
func TestHostileShareCannotScriptTheConsole(t *testing.T) {
	ctx := browser(t)
	cfg := testConfig(t)
	h, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	cfg.Auth.Htpasswd = filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(cfg.Auth.Htpasswd, []byte("admin:"+string(h)+"\n"), 0o600)
	base, _ := startServe(t, cfg)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:s3cret"))
	attack := func(img string) string {
		return `fetch('/api/images/upload/` + img + `', {method: 'PUT', body: 'taken over'})` +
			`.then(r => { document.title = 'sent ' + r.status })`
	}
	pages := map[string]string{
		"x.html":  `<!doctype html><title>x</title><script>` + attack("pwned-html.img") + `</script>`,
		"x.htm":   `<!doctype html><title>x</title><script>` + attack("pwned-htm.img") + `</script>`,
		"x.svg":   `<svg xmlns="http://www.w3.org/2000/svg"><script>` + attack("pwned-svg.img") + `</script></svg>`,
		"x.xhtml": `<html xmlns="http://www.w3.org/1999/xhtml"><head><title>x</title></head><body><script>` + attack("pwned-xhtml.img") + `</script></body></html>`,
		// No extension a browser knows: sniffing would make it a page.
		"x.bin": `<!doctype html><title>x</title><script>` + attack("pwned-bin.img") + `</script>`,
	}
	for name, body := range pages {
		resp, _ := hostileReq(t, "PUT", base+"/dav/"+name, map[string]string{"Authorization": basic}, body)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT %s: %s", name, resp.Status)
		}
	}
	// The browser holds the admin's credentials for the origin, as after
	// a login: every request it makes carries them.
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": basic}}); err != nil {
		t.Fatal(err)
	}
	for name := range pages {
		// A download aborts the navigation; that is one of the right outcomes.
		chromedp.Run(ctx, chromedp.Navigate(base+"/dav/"+name))
		time.Sleep(500 * time.Millisecond)
		title, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.title + ' ' + location.href`))
		t.Logf("%s: %q %v", name, title, err)
	}
	// Give any script that did run the time to finish its fetch.
	time.Sleep(1500 * time.Millisecond)
	entries, _ := os.ReadDir(cfg.Storage.Root)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "pwned") {
			t.Errorf("a script from the share created %s with the admin's credentials", e.Name())
		}
	}
}

// Every answer under /dav/ forbids script and sniffing, and active types
// are downloads with a type no browser renders. On main GET x.html was
// text/html with neither header.
func TestHostileShareHeaders(t *testing.T) {
	cfg := testConfig(t)
	os.WriteFile(filepath.Join(cfg.Storage.Root, "x.html"), []byte("<script>alert(1)</script>"), 0o644)
	os.WriteFile(filepath.Join(cfg.Storage.Root, "ü \"x\".svg"), []byte("<svg/>"), 0o644)
	os.WriteFile(filepath.Join(cfg.Storage.Root, "a.iso"), make([]byte, 4096), 0o644)
	os.Mkdir(filepath.Join(cfg.Storage.Root, "d"), 0o755)
	base, _ := startServe(t, cfg)
	propfind := `<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>`
	for _, c := range []struct {
		method, path string
		hdr          map[string]string
		body         string
		status       int
		attachment   string // the Content-Disposition wanted, "" for none
	}{
		{"GET", "/dav/x.html", nil, "", 200, `attachment; filename="x.html"; filename*=UTF-8''x.html`},
		{"HEAD", "/dav/x.html", nil, "", 200, `attachment; filename="x.html"; filename*=UTF-8''x.html`},
		{"GET", "/dav/x.html", map[string]string{"Range": "bytes=0-3"}, "", 206, `attachment; filename="x.html"; filename*=UTF-8''x.html`},
		{"GET", "/dav/%C3%BC%20%22x%22.svg", nil, "", 200, `attachment; filename="_ _x_.svg"; filename*=UTF-8''%C3%BC%20%22x%22.svg`},
		{"GET", "/dav/a.iso", nil, "", 200, ""},
		{"GET", "/dav/", nil, "", 200, ""},
		{"GET", "/dav", nil, "", 200, ""},
		{"HEAD", "/dav/d/", nil, "", 200, ""},
		{"GET", "/dav/missing.html", nil, "", 404, ""},
		{"PROPFIND", "/dav/", map[string]string{"Depth": "1"}, propfind, 207, ""},
		{"PROPFIND", "/dav/", map[string]string{"Depth": "infinity"}, propfind, 403, ""},
		{"OPTIONS", "/dav/x.html", nil, "", 200, ""},
		{"MKCOL", "/dav/d", nil, "", 405, ""},
		{"DELETE", "/dav/nothing", nil, "", 404, ""},
	} {
		resp, body := hostileReq(t, c.method, base+c.path, c.hdr, c.body)
		what := c.method + " " + c.path
		if resp.StatusCode != c.status {
			t.Errorf("%s: %s, want %d", what, resp.Status, c.status)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "sandbox") || strings.Contains(csp, "allow-") {
			t.Errorf("%s: Content-Security-Policy %q, want sandbox without allow-*", what, csp)
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", what, got)
		}
		if got := resp.Header.Get("Content-Disposition"); got != c.attachment {
			t.Errorf("%s: Content-Disposition %q, want %q", what, got, c.attachment)
		}
		if c.attachment != "" {
			ct := strings.ToLower(resp.Header.Get("Content-Type"))
			for _, active := range []string{"html", "xml", "svg", "script"} {
				if strings.Contains(ct, active) {
					t.Errorf("%s: Content-Type %q is one a browser runs", what, ct)
				}
			}
		}
		if c.method == "GET" && c.status == 200 && c.path == "/dav/x.html" && body != "<script>alert(1)</script>" {
			t.Errorf("%s: body %q, want the file as stored", what, body)
		}
	}
}

// The refusal of a request without credentials is an answer under /dav/ too.
func TestHostileShareHeadersWithoutCredentials(t *testing.T) {
	cfg := testConfig(t)
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	cfg.Auth.Htpasswd = filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(cfg.Auth.Htpasswd, []byte("admin:"+string(h)+"\n"), 0o600)
	base, _ := startServe(t, cfg)
	resp, _ := hostileReq(t, "GET", base+"/dav/x.html", nil, "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET without credentials: %s", resp.Status)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("401 from the share: Content-Security-Policy %q, X-Content-Type-Options %q", csp, resp.Header.Get("X-Content-Type-Options"))
	}
}

// snapshot reads every regular file under root, by slash path.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".msdav-") {
			return nil
		}
		b, _ := os.ReadFile(p)
		r, _ := filepath.Rel(root, p)
		m[filepath.ToSlash(r)] = string(b)
		return nil
	})
	return m
}

// overlapCase is one MOVE or COPY whose source and destination overlap.
type overlapCase struct{ method, src, dst, overwrite string }

// checkOverlapsRefused sends each case against a tree built by setup and
// wants 403 with the tree exactly as it was.
func checkOverlapsRefused(t *testing.T, base, root string, setup func(), cases []overlapCase) {
	t.Helper()
	for _, c := range cases {
		setup()
		before := snapshot(t, root)
		if len(before) == 0 {
			t.Fatal("setup made nothing")
		}
		hdr := map[string]string{"Destination": base + c.dst}
		if c.overwrite != "" {
			hdr["Overwrite"] = c.overwrite
		}
		start := time.Now()
		resp, body := hostileReq(t, c.method, base+c.src, hdr, "")
		what := fmt.Sprintf("%s %s -> %s (Overwrite %q)", c.method, c.src, c.dst, c.overwrite)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %s %q, want 403", what, resp.Status, body)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: took %s to answer", what, d)
		}
		after := snapshot(t, root)
		if fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("%s changed the store:\nbefore %v\nafter  %v", what, before, after)
		}
		if _, err := os.Stat(filepath.Join(root, "r", "sub")); err == nil {
			t.Errorf("%s created r/sub", what)
		}
	}
}

// MOVE and COPY whose source and destination are the same resource, or
// one inside the other, are refused before anything is touched. On main
// MOVE /dav/p/child.img onto /dav/p removed folder p with every image in
// it, and COPY /dav/r into /dav/r/sub recursed for 11 s.
func TestHostileShareOverlappingMoveCopy(t *testing.T) {
	cfg := testConfig(t)
	root := cfg.Storage.Root
	base, _ := startServe(t, cfg)
	setup := func() {
		os.RemoveAll(filepath.Join(root, "r", "sub"))
		os.MkdirAll(filepath.Join(root, "p"), 0o755)
		os.MkdirAll(filepath.Join(root, "r", "in"), 0o755)
		os.WriteFile(filepath.Join(root, "p", "child.img"), []byte("child"), 0o644)
		os.WriteFile(filepath.Join(root, "p", "other.img"), []byte("other"), 0o644)
		os.WriteFile(filepath.Join(root, "r", "a.img"), []byte("a"), 0o644)
		os.WriteFile(filepath.Join(root, "r", "in", "b.img"), []byte("b"), 0o644)
	}
	var cases []overlapCase
	for _, ow := range []string{"", "T", "F"} {
		cases = append(cases,
			// destination is the source's parent
			overlapCase{"MOVE", "/dav/p/child.img", "/dav/p", ow},
			overlapCase{"MOVE", "/dav/p/child.img", "/dav/p/", ow},
			overlapCase{"MOVE", "/dav/p/child.img", "/dav/%70", ow},
			overlapCase{"MOVE", "/dav/p/child.img", "/dav/./p/", ow},
			overlapCase{"COPY", "/dav/p/child.img", "/dav/p", ow},
			overlapCase{"MOVE", "/dav/r/in/b.img", "/dav/r", ow},
			overlapCase{"MOVE", "/dav/p", "/dav/", ow},
			// the same resource
			overlapCase{"MOVE", "/dav/p/child.img", "/dav/p/child.img", ow},
			overlapCase{"MOVE", "/dav/p/child.img", "/dav/p//child%2Eimg", ow},
			overlapCase{"COPY", "/dav/p", "/dav/p/", ow},
			overlapCase{"MOVE", "/dav/r/", "/dav/r", ow},
			// destination inside the source
			overlapCase{"COPY", "/dav/r", "/dav/r/sub", ow},
			overlapCase{"COPY", "/dav/r/", "/dav/r/sub/deeper", ow},
			overlapCase{"MOVE", "/dav/r", "/dav/r/sub", ow},
			overlapCase{"COPY", "/dav/r", "/dav/%72/in", ow},
		)
	}
	checkOverlapsRefused(t, base, root, setup, cases)
	// Neighbours whose names share a prefix are not inside each other.
	setup()
	resp, body := hostileReq(t, "COPY", base+"/dav/r", map[string]string{"Destination": base + "/dav/r2"}, "")
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("COPY /dav/r -> /dav/r2: %s %q", resp.Status, body)
	}
	resp, body = hostileReq(t, "MOVE", base+"/dav/p/child.img", map[string]string{"Destination": base + "/dav/p/child.img2"}, "")
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("MOVE child.img -> child.img2: %s %q", resp.Status, body)
	}
}

// On a case-insensitive part (a real vfat loop mount inside the store) a
// case alias of the source, its parent or the destination's parent is
// the same file: refused too, nothing lost.
func TestHostileShareOverlapCaseAlias(t *testing.T) {
	needRootT(t, "loop-mounts a vfat or exFAT part inside the store")
	cfg := testConfig(t)
	usb := filepath.Join(cfg.Storage.Root, "usb")
	os.Mkdir(usb, 0o755)
	mountCaseInsensitive(t, usb)
	base, _ := startServe(t, cfg)
	setup := func() {
		os.RemoveAll(filepath.Join(usb, "R", "sub"))
		os.MkdirAll(filepath.Join(usb, "P"), 0o755)
		os.MkdirAll(filepath.Join(usb, "R"), 0o755)
		os.WriteFile(filepath.Join(usb, "P", "CHILD.IMG"), []byte("child"), 0o644)
		os.WriteFile(filepath.Join(usb, "P", "OTHER.IMG"), []byte("other"), 0o644)
		os.WriteFile(filepath.Join(usb, "R", "A.IMG"), []byte("a"), 0o644)
		os.WriteFile(filepath.Join(usb, "WIN.ISO"), []byte("win"), 0o644)
	}
	var cases []overlapCase
	for _, ow := range []string{"", "T"} {
		cases = append(cases,
			overlapCase{"MOVE", "/dav/usb/P/CHILD.IMG", "/dav/usb/p", ow},
			overlapCase{"MOVE", "/dav/usb/P/CHILD.IMG", "/dav/usb/p/child.img", ow},
			overlapCase{"MOVE", "/dav/usb/WIN.ISO", "/dav/usb/win.iso", ow},
			overlapCase{"COPY", "/dav/usb/WIN.ISO", "/dav/usb/Win.Iso", ow},
			overlapCase{"COPY", "/dav/usb/R", "/dav/usb/r/sub", ow},
			overlapCase{"MOVE", "/dav/usb/R", "/dav/usb/r/sub", ow},
		)
	}
	checkOverlapsRefused(t, base, cfg.Storage.Root, setup, cases)
}

// mountCaseInsensitive mounts a fresh case-insensitive filesystem on dir:
// the kernel's vfat from a loop device where the kernel has it, else
// exFAT through FUSE (exfat-fuse), which folds case the same way but gives
// each spelling an inode number of its own.
func mountCaseInsensitive(t *testing.T, dir string) {
	t.Helper()
	img := filepath.Join(t.TempDir(), "part.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Truncate(img, 32<<20)
	if _, err := exec.LookPath("mkfs.vfat"); err == nil {
		if out, err := exec.Command("mkfs.vfat", img).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.vfat: %v %s", err, out)
		}
		if exec.Command("mount", "-t", "vfat", "-o", "loop", img, dir).Run() == nil {
			t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
			t.Log("kernel vfat on a loop device")
			return
		}
	}
	for _, tool := range []string{"mkfs.exfat", "mount.exfat-fuse", "losetup"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("no kernel vfat and no %s (exfatprogs, exfat-fuse)", tool)
			}
			t.Skipf("needs kernel vfat or %s (exfatprogs, exfat-fuse) for a case-insensitive part", tool)
		}
	}
	if out, err := exec.Command("mkfs.exfat", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.exfat: %v %s", err, out)
	}
	out, err := exec.Command("losetup", "-f", "--show", img).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	loop := strings.TrimSpace(string(out))
	if out, err := exec.Command("mount.exfat-fuse", loop, dir).CombinedOutput(); err != nil {
		exec.Command("losetup", "-d", loop).Run()
		t.Fatalf("mount.exfat-fuse: %v %s", err, out)
	}
	t.Cleanup(func() {
		exec.Command("umount", dir).Run()
		exec.Command("losetup", "-d", loop).Run()
	})
	t.Log("exFAT through FUSE on " + loop)
}
