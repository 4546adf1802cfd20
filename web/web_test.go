package web

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSameOrigin(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "passed") })
	h := SameOrigin(ok)
	tests := []struct {
		name    string
		method  string
		path    string
		host    string
		tls     bool
		headers map[string]string
		want    int
	}{
		{"curl, no headers", "POST", "/api/usb/reconnect", "box:8080", false, nil, 200},
		{"same origin", "PUT", "/api/drives/0", "box:8080", false, map[string]string{"Origin": "http://box:8080"}, 200},
		{"same origin, case and default port", "DELETE", "/api/drives/0", "BOX", false, map[string]string{"Origin": "http://box:80"}, 200},
		{"same origin over TLS", "POST", "/api/images", "box", true, map[string]string{"Origin": "https://box"}, 200},
		{"TLS proxy in front", "POST", "/api/images", "box", false, map[string]string{"Origin": "https://box", "X-Forwarded-Proto": "https"}, 200},
		{"same-origin fetch metadata", "POST", "/api/images", "box", false, map[string]string{"Origin": "http://box", "Sec-Fetch-Site": "same-origin"}, 200},
		{"other host", "POST", "/api/usb/reconnect", "box:8080", false, map[string]string{"Origin": "http://evil.example"}, 403},
		{"other port", "DELETE", "/api/drives/0", "box:8080", false, map[string]string{"Origin": "http://box:9090"}, 403},
		{"other scheme", "DELETE", "/api/drives/0", "box", false, map[string]string{"Origin": "https://box"}, 403},
		{"https page vs plain server", "PUT", "/api/drives/0", "box:443", false, map[string]string{"Origin": "https://box"}, 403},
		{"opaque origin", "POST", "/api/images", "box", false, map[string]string{"Origin": "null"}, 403},
		{"cross-site fetch metadata alone", "POST", "/api/images", "box", false, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"cross-site metadata, spoofed origin", "POST", "/api/images", "box", false, map[string]string{"Origin": "http://box", "Sec-Fetch-Site": "cross-site"}, 403},
		{"redfish", "POST", "/redfish/v1/Managers/1/VirtualMedia/0/Actions/VirtualMedia.InsertMedia", "box", false, map[string]string{"Origin": "http://evil.example"}, 403},
		{"GET is reading", "GET", "/api/drives", "box", false, map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, 200},
		{"HEAD is reading", "HEAD", "/api/drives", "box", false, map[string]string{"Sec-Fetch-Site": "cross-site"}, 200},
		{"OPTIONS passes", "OPTIONS", "/api/drives", "box", false, map[string]string{"Origin": "http://evil.example"}, 200},
		{"PROPFIND passes", "PROPFIND", "/api/", "box", false, map[string]string{"Origin": "http://evil.example"}, 200},
		{"share is not guarded here", "PUT", "/dav/a.iso", "box", false, map[string]string{"Origin": "http://evil.example"}, 200},
		{"lookalike prefix", "POST", "/apix", "box", false, map[string]string{"Origin": "http://evil.example"}, 200},
		{"origin with a path", "POST", "/api/images", "box", false, map[string]string{"Origin": "http://box/x"}, 403},
		{"same-site is not cross-site", "POST", "/api/images", "box", false, map[string]string{"Sec-Fetch-Site": "same-site"}, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, nil)
			r.Host = tc.host
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Fatalf("%s %s: %d %q, want %d", tc.method, tc.path, w.Code, w.Body, tc.want)
			}
			if tc.want == 403 {
				var e struct{ Error string }
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || !strings.Contains(e.Error, "refused") {
					t.Errorf("403 body %q is not {\"error\": ...}: %v", w.Body, err)
				}
			}
		})
	}
}

func TestConsoleHeaders(t *testing.T) {
	c := New()
	tests := []struct {
		method, path string
		want         int
		ctype        string
	}{
		{"GET", "/", 200, "text/html"},
		{"HEAD", "/", 200, "text/html"},
		{"GET", "/ui/app.js", 200, "text/javascript"},
		{"GET", "/ui/style.css", 200, "text/css"},
		{"GET", "/ui/index.html", 404, ""},
		{"GET", "/ui/nope.js", 404, ""},
		{"GET", "/ui/../web.go", 404, ""},
		{"POST", "/", 405, ""},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(tc.method, "/", nil)
		r.URL.Path = tc.path
		w := httptest.NewRecorder()
		c.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, w.Code, tc.want)
			continue
		}
		if tc.want != 200 {
			continue
		}
		h := w.Header()
		if !strings.HasPrefix(h.Get("Content-Type"), tc.ctype) {
			t.Errorf("%s: Content-Type %q", tc.path, h.Get("Content-Type"))
		}
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", tc.path, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", tc.path)
		}
	}
	// A revalidation with the ETag costs no body.
	w := httptest.NewRecorder()
	c.ServeHTTP(w, httptest.NewRequest("GET", "/ui/app.js", nil))
	r := httptest.NewRequest("GET", "/ui/app.js", nil)
	r.Header.Set("If-None-Match", w.Header().Get("ETag"))
	w2 := httptest.NewRecorder()
	c.ServeHTTP(w2, r)
	if w2.Code != http.StatusNotModified {
		t.Errorf("revalidation: %d", w2.Code)
	}
}

// The page stays light and never names another host or runs inline code.
func TestConsoleSelfContained(t *testing.T) {
	c := New()
	if n := c.Size(); n > 100<<10 {
		t.Errorf("console weighs %d bytes, over 100 KiB", n)
	}
	idx := string(c.assets["index.html"].body)
	for _, bad := range []string{"<script>", " onclick=", " onload=", " style=", "javascript:"} {
		if strings.Contains(idx, bad) {
			t.Errorf("index.html has inline %q, which the CSP blocks", bad)
		}
	}
	for name, a := range c.assets {
		for _, bad := range []string{`src="http`, `href="http`, `src="//`, `href="//`, `from "http`, `from 'http`, `url(http`, `url("http`, `url(//`, `import("http`} {
			if strings.Contains(string(a.body), bad) {
				t.Errorf("%s names another host (%q)", name, bad)
			}
		}
	}
}
