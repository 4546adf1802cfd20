package main

// Hostile-input tests that run the whole server: each one reproduces an
// attack or a data-loss hole from issues 30, 31 and 34 against the real
// handler stack (auth, same-origin guard, router, share, store).

import (
	"encoding/base64"
	"io"
	"net/http"
	"os"
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
	resp, err := http.DefaultClient.Do(req)
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
