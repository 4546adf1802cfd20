package dav

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every element of a path is classified: an internal folder hides what is
// inside it, not only a last element that looks internal.
func TestInternalNameInAnyElement(t *testing.T) {
	ts := newServer(t, "")
	root := ts.store.Root().Name()
	os.MkdirAll(filepath.Join(root, "a", ".msdav-x"), 0o755)
	os.WriteFile(filepath.Join(root, "a", ".msdav-x", "b"), []byte("internal"), 0o644)
	for _, p := range []string{"/dav/a/.msdav-x/b", "/dav/a/.msdav-x/", "/dav/.msdav-props-x/b/c"} {
		for _, m := range []string{"GET", "PROPFIND", "DELETE", "LOCK", "PUT", "MKCOL"} {
			if resp := ts.do(t, m, p, strings.NewReader("")); resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s %s: %s, want 404", m, p, resp.Status)
			}
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "a", ".msdav-x", "b")); string(b) != "internal" {
		t.Errorf("the internal file became %q", b)
	}
}

// The HTML folder index a browser gets lists no internal file, in the
// root and below it.
func TestIndexHidesInternalFiles(t *testing.T) {
	ts := newServer(t, "")
	root := ts.store.Root().Name()
	os.MkdirAll(filepath.Join(root, "d"), 0o755)
	for _, n := range []string{"v.img", ".msdav-props-v.img", ".msdav-upload-1-x.img", "d/w.img", "d/.msdav-gone-1-w.img"} {
		os.WriteFile(filepath.Join(root, n), []byte("x"), 0o644)
	}
	for _, c := range []struct{ path, want string }{{"/dav/", "v.img"}, {"/dav/d/", "w.img"}} {
		body := readAll(ts.do(t, "GET", c.path, nil))
		if !strings.Contains(body, c.want) || strings.Contains(body, ".msdav-") {
			t.Errorf("index of %s: %q", c.path, body)
		}
	}
}

func TestServedType(t *testing.T) {
	for _, c := range []struct{ name, ctype, disp string }{
		{"a.iso", "application/x-iso9660-image", ""},
		{"a.img", "application/octet-stream", ""},
		{"notes.txt", "text/plain; charset=utf-8", ""},
		{"x.png", "image/png", ""},
		{"x.html", "application/octet-stream", `attachment; filename="x.html"; filename*=UTF-8''x.html`},
		{"X.HTM", "application/octet-stream", `attachment; filename="X.HTM"; filename*=UTF-8''X.HTM`},
		{"d/x.svg", "application/octet-stream", `attachment; filename="x.svg"; filename*=UTF-8''x.svg`},
		{"x.xhtml", "application/octet-stream", `attachment; filename="x.xhtml"; filename*=UTF-8''x.xhtml`},
		{"x.xml", "application/octet-stream", `attachment; filename="x.xml"; filename*=UTF-8''x.xml`},
		{"x.js", "application/octet-stream", `attachment; filename="x.js"; filename*=UTF-8''x.js`},
		{"x.mjs", "application/octet-stream", `attachment; filename="x.mjs"; filename*=UTF-8''x.mjs`},
		{"x.pdf", "application/octet-stream", `attachment; filename="x.pdf"; filename*=UTF-8''x.pdf`},
		{"é;\"\\.html", "application/octet-stream", `attachment; filename="_;__.html"; filename*=UTF-8''%C3%A9%3B%22%5C.html`},
	} {
		ct, disp := servedType(c.name)
		if ct != c.ctype || disp != c.disp {
			t.Errorf("servedType(%q) = %q, %q; want %q, %q", c.name, ct, disp, c.ctype, c.disp)
		}
	}
}

// Every name up to NAME_MAX has a sidecar whose upload temp fits too.
func TestSidecarNameFits(t *testing.T) {
	seen := map[string]bool{}
	for n := 1; n <= nameMax; n++ {
		base := strings.Repeat("é", n/2) + strings.Repeat("a", n%2)
		sc := sidecarName(base)
		if len(sc)+tempOverhead > nameMax {
			t.Fatalf("sidecar of a %d-byte name is %d bytes", len(base), len(sc))
		}
		if seen[sc] {
			t.Fatalf("two names share the sidecar %s", sc)
		}
		seen[sc] = true
	}
}
