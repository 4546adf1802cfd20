package dav

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHostRoot(t *testing.T) {
	ts := newServer(t, "")
	root := httptest.NewServer(New(ts.store, Options{Prefix: "/dav"}).HostRoot())
	t.Cleanup(root.Close)
	for _, tc := range []struct {
		name, method, depth, body string
		status                    int
		has, lacks                []string // in the body
		hdr                       map[string]string
	}{
		{name: "options", method: "OPTIONS", status: 200, hdr: map[string]string{"DAV": "1, 2", "MS-Author-Via": "DAV"}},
		{name: "depth 0", method: "PROPFIND", depth: "0", status: 207, has: []string{"<D:href>/</D:href>", "<D:collection"}, lacks: []string{"/dav/"}},
		{name: "depth 1", method: "PROPFIND", depth: "1", status: 207, has: []string{"<D:href>/</D:href>", "<D:href>/dav/</D:href>", "quota-available-bytes"}},
		{name: "no depth is 1", method: "PROPFIND", status: 207, has: []string{"<D:href>/dav/</D:href>"}},
		{name: "named props", method: "PROPFIND", depth: "1", status: 207,
			body: `<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/></D:prop></D:propfind>`,
			has:  []string{"<D:collection", "404 Not Found"}, lacks: []string{"getlastmodified"}},
		{name: "depth infinity", method: "PROPFIND", depth: "infinity", status: 403, has: []string{"propfind-finite-depth"}},
		{name: "bad depth", method: "PROPFIND", depth: "2", status: 400},
		{name: "propname", method: "PROPFIND", depth: "0", body: `<D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>`, status: 400},
		{name: "other methods", method: "DELETE", status: 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, root.URL+"/", strings.NewReader(tc.body))
			if tc.depth != "" {
				req.Header.Set("Depth", tc.depth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b := readAll(resp)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			for _, s := range tc.has {
				if !strings.Contains(b, s) {
					t.Errorf("answer lacks %q: %s", s, b)
				}
			}
			for _, s := range tc.lacks {
				if strings.Contains(b, s) {
					t.Errorf("answer has %q: %s", s, b)
				}
			}
			for k, v := range tc.hdr {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestAnnounced(t *testing.T) {
	for _, tc := range []struct {
		cl       int64
		expected string
		want     int64
	}{
		{cl: 10, want: 10},
		{cl: 0, expected: "99", want: 0}, // Content-Length wins
		{cl: -1, want: -1},
		{cl: -1, expected: "6442450944", want: 6442450944},
		{cl: -1, expected: " 42 ", want: 42},
		{cl: -1, expected: "-5", want: -1},
		{cl: -1, expected: "lots", want: -1},
	} {
		r, _ := http.NewRequest("PUT", "/dav/x.iso", nil)
		r.ContentLength = tc.cl
		if tc.expected != "" {
			r.Header.Set("X-Expected-Entity-Length", tc.expected)
		}
		if got := announced(r); got != tc.want {
			t.Errorf("Content-Length %d, X-Expected-Entity-Length %q: %d, want %d", tc.cl, tc.expected, got, tc.want)
		}
	}
}
