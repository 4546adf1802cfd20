package davtest

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"empty", "# nothing\n", "no requests"},
		{"no answer", "> GET /dav/ HTTP/1.1\n>\n", "without an expected answer"},
		{"bad request line", "> GET /dav/\n< 200\n", "request line"},
		{"answer first", "< 200\n", "answer before any request"},
		{"answer after cut", "> PUT /dav/a HTTP/1.1\n>\n@body 10\n@cut 5\n< 201\n", "after @cut"},
		{"bad status", "> GET /dav/ HTTP/1.1\n< OK\n", "status line"},
		{"bad header check", "> GET /dav/ HTTP/1.1\n< 200\n< nocolon\n", "header check"},
		{"bad regexp", "> GET /dav/ HTTP/1.1\n< 200\n< ETag: (\n", "missing closing"},
		{"prop before answer", "> GET /dav/ HTTP/1.1\n? /dav/ present\n< 200\n", "property check before"},
		{"bad prop name", "> PROPFIND /dav/ HTTP/1.1\n< 207\n? /dav/ getetag ~ x\n", "want {namespace}local"},
		{"bad prop check", "> PROPFIND /dav/ HTTP/1.1\n< 207\n? /dav/ {DAV:}getetag = x\n", "want `~ regexp`"},
		{"unknown directive", "@frobnicate x\n> GET /dav/ HTTP/1.1\n< 200\n", "unknown directive"},
		{"directive words", "@file a.iso\n> GET /dav/ HTTP/1.1\n< 200\n", "@file takes 2"},
		{"bad size", "@file a.iso lots\n> GET /dav/ HTTP/1.1\n< 200\n", "@file a.iso lots"},
		{"body after answer", "> PUT /dav/a HTTP/1.1\n< 201\n@body 5\n", "belongs inside a request"},
		{"check before answer", "> PUT /dav/a HTTP/1.1\n@has a\n< 201\n", "after an answer"},
		{"stray line", "GET /dav/ HTTP/1.1\n", "start it with"},
	} {
		_, err := Parse(tc.name, []byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

func TestParseReads(t *testing.T) {
	src := "# a comment\n@needs root auth\n@file a%20b.iso 2KiB\n" +
		"> PUT /dav/x.iso HTTP/1.1\n> Host: {host}\n> If: (<{lock}>)\n>\n> line one\n> line two\n< 201 204\n< ETag: .\n< !Location\n< body !~ error\n@has x.iso 19\n" +
		"> PUT /dav/y.iso HTTP/1.1\n>\n@body 1MiB\n@midway-expected y.iso 1048576\n@cut 4KiB\n@lacks y.iso\n"
	tr, err := Parse("t.txt", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Needs("root") || !tr.Needs("auth") || tr.Needs("x") || len(tr.steps) != 2 {
		t.Fatalf("needs %v, %d steps", tr.needs, len(tr.steps))
	}
	s := tr.steps[0]
	if s.reqLine != "PUT /dav/x.iso HTTP/1.1" || len(s.headers) != 2 || string(s.body) != "line one\nline two\n" ||
		len(s.status) != 2 || len(s.hdrWant) != 2 || !s.hdrWant[1].absent || len(s.bodyWant) != 1 || !s.bodyWant[0].not ||
		len(s.setup) != 1 || len(s.after) != 1 || s.line != 4 {
		t.Errorf("first step: %+v", s)
	}
	s = tr.steps[1]
	if s.bodyGen != 1<<20 || s.cut != 4<<10 || len(s.midway) != 2 || len(s.after) != 1 || s.status != nil {
		t.Errorf("second step: %+v", s)
	}
}

// Play must report what a server gets wrong: a checker that cannot fail
// proves nothing about msdav.
func TestPlayReportsDifferences(t *testing.T) {
	root := t.TempDir()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case "PROPFIND":
			w.WriteHeader(207)
			w.Write([]byte(`<?xml version="1.0"?><D:multistatus xmlns:D="DAV:"><D:response><D:href>/dav/a%20b/</D:href>` +
				`<D:propstat><D:prop><D:resourcetype/></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>` +
				`<D:propstat><D:prop><D:getetag/></D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat></D:response></D:multistatus>`))
		case "PUT":
			w.Header().Set("Location", "/x")
			w.WriteHeader(500)
			w.Write([]byte("error: disk on fire"))
		}
	}))
	t.Cleanup(srv.Close)
	os.MkdirAll(filepath.Join(root, "a b"), 0o755)
	src := "> PROPFIND /dav/a%20b HTTP/1.1\n> Host: {host}\n> Depth: 0\n>\n< 207\n" +
		"? /dav/a%20b/ {DAV:}resourcetype ~ collection\n? /dav/a%20b/ {DAV:}getetag 404\n? /dav/a%20b/ {DAV:}displayname 200\n? /dav/other present\n? /dav/a%20b/ absent\n" +
		"@has a%20b\n@lacks a%20b\n" +
		"> PUT /dav/x.iso HTTP/1.1\n> Host: {host}\n>\n@body 10\n< 201\n< ETag: .\n< !Location\n< body !~ error\n@has x.iso\n"
	tr, err := Parse("t.txt", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	rec := strings.Join(Play(t, tr, Target{Addr: strings.TrimPrefix(srv.URL, "http://"), Root: root}, false), "\n")
	for _, want := range []string{
		"resourcetype: \"\", want ~ collection",
		"displayname not answered",
		"/dav/other not in the 207",
		"/dav/a%20b/ listed, want it hidden",
		"a b is in the store, want it gone",
		"status 500, want [201]",
		"header ETag missing",
		"header Location: [\"/x\"], want none",
		"body !~ error",
		"x.iso is not in the store",
	} {
		if !strings.Contains(rec, want) {
			t.Errorf("Play did not report %q:\n%s", want, rec)
		}
	}
	if strings.Contains(rec, "getetag") || strings.Contains(rec, "a b is not in the store") {
		t.Errorf("Play reported a check that holds:\n%s", rec)
	}
}
