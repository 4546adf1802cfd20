package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// A stand-in for the console: a page, and an api.js whose upload does what
// the console's does (XHR PUT into /dav/, rejecting on an error status).
const fakeAPI = `export function upload(path, file, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('PUT', '/dav/' + path);
    x.onload = () => x.status < 300 ? resolve() : reject({status: x.status, message: x.responseText});
    x.onerror = () => reject({status: 0, message: 'network'});
    x.send(file);
  });
}`

// The browser row counts an upload only when the console's upload
// resolved and the file on disk is whole.
func TestPageUpload(t *testing.T) {
	ctx, cancel, err := startBrowser(t.TempDir())
	if err == errNoChromium {
		t.Skip("needs chromium (Debian package) for the browser row; skipping")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	src := filepath.Join(t.TempDir(), "src.img")
	os.WriteFile(src, bytes.Repeat([]byte("img!"), 1<<18), 0o644)
	for _, tc := range []struct {
		name   string
		status int
		store  bool
		want   string
	}{
		{"stored", 201, true, ""},
		{"refused", 507, false, "failed: 507 no space"},
		{"answered but not stored", 201, false, "open what was written"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.URL.Path == "/":
					io.WriteString(w, "<!doctype html><title>console</title><p>console</p>")
				case r.URL.Path == "/ui/api.js":
					w.Header().Set("Content-Type", "text/javascript")
					io.WriteString(w, fakeAPI)
				case r.Method == "PUT":
					b, _ := io.ReadAll(r.Body)
					if tc.store {
						os.WriteFile(filepath.Join(root, filepath.Base(r.URL.Path)), b, 0o644)
					}
					w.WriteHeader(tc.status)
					if tc.status >= 300 {
						io.WriteString(w, "no space")
					}
				case r.Method == "DELETE":
					w.WriteHeader(404)
				}
			}))
			defer ts.Close()
			s := &server{name: "msdav", url: ts.URL + "/dav/", base: ts.URL, root: root, client: ts.Client()}
			sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
			defer scancel()
			if err := chromedp.Do(sctx, chromedp.Navigate(ts.URL+"/")); err != nil {
				t.Fatal(err)
			}
			if err := pickFile(ctx, src); err != nil {
				t.Fatal(err)
			}
			_, _, err := pageUpload(ctx, s, "up.img", 1<<20)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("pageUpload: %v, want %q", err, tc.want)
			}
		})
	}
}
