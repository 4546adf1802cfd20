package dav

import (
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/net/webdav"
)

// multistatus flattens a PROPFIND answer to "href prop status" lines.
func multistatus(t *testing.T, body string, skip map[string]bool) []string {
	t.Helper()
	var ms struct {
		Responses []struct {
			Href      string `xml:"href"`
			Propstats []struct {
				Prop struct {
					Any []struct {
						XMLName xml.Name
						Inner   string `xml:",chardata"`
					} `xml:",any"`
				} `xml:"prop"`
				Status string `xml:"status"`
			} `xml:"propstat"`
		} `xml:"response"`
	}
	if err := xml.Unmarshal([]byte(body), &ms); err != nil {
		t.Fatalf("not a multistatus: %v\n%s", err, body)
	}
	var out []string
	for _, r := range ms.Responses {
		for _, ps := range r.Propstats {
			for _, p := range ps.Prop.Any {
				if skip[p.XMLName.Local] {
					continue
				}
				v := p.Inner
				switch {
				case ps.Status != "HTTP/1.1 200 OK", p.XMLName.Local == "resourcetype", p.XMLName.Local == "supportedlock":
					v = "" // compared by presence: prefixes differ legitimately
				case p.XMLName.Local == "getcontenttype":
					v = "" // msdav names ISO and IMG types itself, by extension
				}
				out = append(out, r.Href+" "+p.XMLName.Space+" "+p.XMLName.Local+" "+ps.Status+" "+v)
			}
		}
	}
	sort.Strings(out)
	return out
}

// The fast PROPFIND answers what x/net/webdav answers, entry for entry and
// property for property, on a folder of files, folders and odd names.
func TestPropfindMatchesXNetWebdav(t *testing.T) {
	ts := newServer(t, "")
	root := ts.store.Dir()
	os.MkdirAll(filepath.Join(root, "d", "sub dir"), 0o755)
	for _, n := range []string{"a.iso", "b c.img", "ünï €.iso", "x&y<z>.txt"} {
		os.WriteFile(filepath.Join(root, "d", n), []byte(n), 0o644)
	}
	plain := httptest.NewServer(&webdav.Handler{Prefix: "/dav", FileSystem: webdav.Dir(root), LockSystem: webdav.NewMemLS()})
	defer plain.Close()
	bodies := []string{
		"",
		`<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>`,
		`<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getcontentlength/><getlastmodified/><resourcetype/><getetag/><displayname/><nope/></prop></propfind>`,
		`<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:X="urn:x"><D:prop><X:custom/><D:getcontenttype/></D:prop></D:propfind>`,
	}
	// quota is msdav's addition; supportedlock differs by design (msdav has shared locks).
	skip := map[string]bool{"quota-available-bytes": true, "quota-used-bytes": true}
	for _, body := range bodies {
		for _, depth := range []string{"0", "1"} {
			for _, p := range []string{"/dav/d/", "/dav/d/a.iso"} {
				get := func(base string) string {
					req, _ := http.NewRequest("PROPFIND", base+p, strings.NewReader(body))
					req.Header.Set("Depth", depth)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					if resp.StatusCode != 207 {
						t.Fatalf("%s %s depth %s: %d", base, p, depth, resp.StatusCode)
					}
					b := new(strings.Builder)
					buf := make([]byte, 32<<10)
					for {
						n, err := resp.Body.Read(buf)
						b.Write(buf[:n])
						if err != nil {
							break
						}
					}
					return b.String()
				}
				mine := get(ts.URL)
				if (body == "" || strings.Contains(body, "allprop")) && !strings.Contains(mine, "<D:shared/>") {
					t.Errorf("%s depth %s: not answered by msdav's PROPFIND (no shared lock advertised)", p, depth)
				}
				got, want := multistatus(t, mine, skip), multistatus(t, get(plain.URL), skip)
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("%s depth %s body %q:\n got %d lines:\n%s\nwant %d lines:\n%s", p, depth, body, len(got), strings.Join(got, "\n"), len(want), strings.Join(want, "\n"))
				}
			}
		}
	}
}

func TestParsePropfind(t *testing.T) {
	for _, tc := range []struct {
		body   string
		all    bool
		n      int
		served bool
	}{
		{"", true, 0, true},
		{`<propfind xmlns="DAV:"><allprop/></propfind>`, true, 0, true},
		{`<propfind xmlns="DAV:"><prop><a/><b xmlns="x"/></prop></propfind>`, false, 2, true},
		{`<propfind xmlns="DAV:"><propname/></propfind>`, false, 0, false},
		{`<propfind xmlns="DAV:"><allprop/><include><x/></include></propfind>`, false, 0, false},
		{`<other xmlns="DAV:"/>`, false, 0, false},
		{`<propfind xmlns="DAV:"><prop>`, false, 0, false},
		{`<propfind xmlns="DAV:"></propfind>`, false, 0, false},
	} {
		names, all, ok := parsePropfind([]byte(tc.body))
		if ok != tc.served || ok && (all != tc.all || len(names) != tc.n) {
			t.Errorf("%q: names %v all %v ok %v", tc.body, names, all, ok)
		}
	}
}

func FuzzParsePropfind(f *testing.F) {
	f.Add(`<propfind xmlns="DAV:"><prop><a/></prop></propfind>`)
	f.Add(`<propfind xmlns="DAV:"><allprop/></propfind>`)
	f.Fuzz(func(t *testing.T, body string) {
		names, all, ok := parsePropfind([]byte(body))
		if ok && !all && names == nil {
			t.Fatalf("%q: served with nothing to answer", body)
		}
	})
}
