package dav

// Fuzz targets for what the share parses from a request (issue 31.9): the
// Destination, Depth, Timeout and Range headers and the PROPPATCH and LOCK
// bodies, each through the whole handler. A parser may refuse anything;
// it may not panic, and header parsing may not end in a 500.

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msdav/msdav/fs"
)

// fuzzShare is a share over a fresh store holding a.iso and dir/.
func fuzzShare(f *testing.F) http.Handler {
	root := f.TempDir()
	os.WriteFile(filepath.Join(root, "a.iso"), []byte(strings.Repeat("0123456789", 100)), 0o644)
	os.Mkdir(filepath.Join(root, "dir"), 0o755)
	s, err := fs.Open(fs.Options{Root: root})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	return New(s, Options{Prefix: "/dav", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

func fuzzDo(t *testing.T, h http.Handler, method, path, body string, hdr ...string) int {
	r := httptest.NewRequest(method, "http://box"+path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	io.Copy(io.Discard, w.Result().Body)
	return w.Code
}

func FuzzDestination(f *testing.F) {
	for _, s := range []string{"http://box/dav/b.iso", "/dav/dir/a.iso", "http://box/dav/../etc/passwd", "http://other/dav/x", "%zz", "http://box/dav/%2e%2e/x", "", "http://box/dav/dir/"} {
		f.Add(s)
	}
	h := fuzzShare(f)
	f.Fuzz(func(t *testing.T, dest string) {
		// COPY, not MOVE: the store stays as it was for the next input.
		if code := fuzzDo(t, h, "COPY", "/dav/a.iso", "", "Destination", dest, "Overwrite", "F"); code == 500 {
			t.Errorf("COPY to %q: 500", dest)
		}
	})
}

func FuzzDepth(f *testing.F) {
	for _, s := range []string{"0", "1", "infinity", "Infinity", " 1 ", "2", "-1", "", "1,0"} {
		f.Add(s)
	}
	h := fuzzShare(f)
	f.Fuzz(func(t *testing.T, depth string) {
		if code := fuzzDo(t, h, "PROPFIND", "/dav/", "", "Depth", depth); code == 500 {
			t.Errorf("Depth %q: 500", depth)
		}
	})
}

func FuzzTimeout(f *testing.F) {
	for _, s := range []string{"Second-60", "Infinite", "Infinite, Second-4100000000", "Second-99999999999999999999", "second-1", "Second--5", "", "Extend-3"} {
		f.Add(s)
	}
	h := fuzzShare(f)
	body := `<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>fuzz</D:owner></D:lockinfo>`
	f.Fuzz(func(t *testing.T, timeout string) {
		if code := fuzzDo(t, h, "LOCK", "/dav/dir/", body, "Timeout", timeout, "Depth", "0"); code == 500 {
			t.Errorf("Timeout %q: 500", timeout)
		}
	})
}

func FuzzRange(f *testing.F) {
	for _, s := range []string{"bytes=0-9", "bytes=-5", "bytes=990-", "bytes=0-0,5-9,-1", "bytes=1000-", "bytes=9-0", "bytes=", "items=0-1", "bytes=0-99999999999999999999"} {
		f.Add(s)
	}
	h := fuzzShare(f)
	f.Fuzz(func(t *testing.T, rng string) {
		if code := fuzzDo(t, h, "GET", "/dav/a.iso", "", "Range", rng); code == 500 {
			t.Errorf("Range %q: 500", rng)
		}
	})
}

func FuzzProppatchBody(f *testing.F) {
	f.Add(`<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:a>x</Z:a></D:prop></D:set><D:remove><D:prop><Z:b/></D:prop></D:remove></D:propertyupdate>`)
	f.Add(`<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:getcontentlength>5</D:getcontentlength></D:prop></D:set></D:propertyupdate>`)
	f.Add(`<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>`)
	f.Add(``)
	h := fuzzShare(f)
	f.Fuzz(func(t *testing.T, body string) {
		fuzzDo(t, h, "PROPPATCH", "/dav/a.iso", body, "Content-Type", "application/xml")
	})
}

func FuzzLockBody(f *testing.F) {
	f.Add(`<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>me</D:href></D:owner></D:lockinfo>`)
	f.Add(`<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:shared/></D:lockscope></D:lockinfo>`)
	f.Add(`<x/>`)
	f.Add(``)
	h := fuzzShare(f)
	f.Fuzz(func(t *testing.T, body string) {
		fuzzDo(t, h, "LOCK", "/dav/dir/", body, "Content-Type", "application/xml", "Timeout", "Second-1", "Depth", "0")
	})
}
