package dav

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/msdav/msdav/fs"
	"golang.org/x/net/webdav"
)

// propfind answers PROPFIND with Depth 0 or 1 from one read of the folder,
// the way x/net/webdav's handler does it but without opening every child
// and probing for a property sidecar per entry: the listing already says
// which sidecars exist. It measured 10x slower than nginx on a 10,000-entry
// folder before (make bench). It reports false, having written nothing,
// for what it does not serve (propname, include, errors), which x/net/webdav
// then answers.
func (h *Handler) propfind(w http.ResponseWriter, r *http.Request, name string) bool {
	depth := r.Header.Get("Depth")
	if depth != "0" && depth != "1" {
		return false
	}
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		if err != nil {
			return false
		}
		body = b
	}
	names, all, ok := parsePropfind(body)
	if !ok {
		return false
	}
	rl, err := rel(name)
	if err != nil {
		return false
	}
	self, err := h.store.Root().Stat(rl)
	if err != nil {
		return false
	}
	type entry struct {
		rel      string
		fi       os.FileInfo
		sidecars bool // a property sidecar exists
	}
	_, scErr := h.store.Root().Lstat(sidecar(rl))
	entries := []entry{{rel: rl, fi: self, sidecars: scErr == nil}}
	if self.IsDir() && depth == "1" {
		// The folder as a root of its own: each child is one fstatat on
		// its descriptor, not a walk from the store root.
		dir, err := h.store.Root().OpenRoot(rl)
		if err != nil {
			return false
		}
		defer dir.Close()
		d, err := dir.Open(".")
		if err != nil {
			return false
		}
		list, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			return false
		}
		sort.Strings(list)
		have := map[string]bool{}
		for _, n := range list {
			if s, ok := strings.CutPrefix(n, sidecarPrefix); ok {
				have[s] = true
			}
		}
		for _, n := range list {
			if fs.Internal(n) {
				continue
			}
			p := path.Join(rl, n)
			fi, err := dir.Stat(n)
			if err != nil {
				continue // dangling symlink, or one leaving the folder: not listed
			}
			entries = append(entries, entry{rel: p, fi: fi, sidecars: have[n]})
		}
	}

	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusMultiStatus)
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString(`<?xml version="1.0" encoding="UTF-8"?><D:multistatus xmlns:D="DAV:">`)
	for _, e := range entries {
		dead := map[xml.Name]webdav.Property{}
		if e.sidecars || e.fi.IsDir() {
			if m, err := h.fsys.props.deadProps(e.rel, e.fi.IsDir()); err == nil {
				dead = m
			}
		}
		want := names
		if all {
			want = allpropNames(e.fi.IsDir(), dead)
		}
		href := h.prefix + "/"
		if e.rel != "." {
			href += e.rel
		}
		if e.fi.IsDir() && !strings.HasSuffix(href, "/") {
			href += "/"
		}
		bw.WriteString("<D:response><D:href>")
		xml.EscapeText(bw, []byte((&url.URL{Path: href}).EscapedPath()))
		bw.WriteString("</D:href>")
		var missing []xml.Name
		okStarted := false
		for _, pn := range want {
			v, found := h.propValue(e.rel, e.fi, pn, dead)
			if !found {
				missing = append(missing, pn)
				continue
			}
			if !okStarted {
				bw.WriteString("<D:propstat><D:prop>")
				okStarted = true
			}
			writeProp(bw, v)
		}
		if okStarted {
			bw.WriteString("</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>")
		}
		if len(missing) > 0 {
			bw.WriteString("<D:propstat><D:prop>")
			for _, pn := range missing {
				writeProp(bw, webdav.Property{XMLName: pn})
			}
			bw.WriteString("</D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>")
		}
		bw.WriteString("</D:response>")
	}
	bw.WriteString("</D:multistatus>")
	bw.Flush()
	return true
}

// parsePropfind reads a PROPFIND body: the property names asked for, or
// allprop (also for an empty body). ok is false for propname, include, or
// a body x/net/webdav should judge.
func parsePropfind(body []byte) (names []xml.Name, all, ok bool) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, true, true
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	depth := 0
	inProp := false
	sawRoot := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return names, all, sawRoot && (all || names != nil)
		}
		if err != nil {
			return nil, false, false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 1:
				if t.Name != (xml.Name{Space: "DAV:", Local: "propfind"}) {
					return nil, false, false
				}
				sawRoot = true
			case depth == 2 && t.Name.Space == "DAV:" && t.Name.Local == "allprop":
				all = true
			case depth == 2 && t.Name.Space == "DAV:" && t.Name.Local == "prop":
				inProp = true
				if names == nil {
					names = []xml.Name{}
				}
			case depth == 2:
				return nil, false, false // propname, include, or something unknown
			case depth == 3 && inProp:
				names = append(names, t.Name)
			}
		case xml.EndElement:
			if depth == 2 {
				inProp = false
			}
			depth--
		}
	}
}

var (
	davName = func(local string) xml.Name { return xml.Name{Space: "DAV:", Local: local} }
	// liveFile and liveDir are what allprop lists, as x/net/webdav does.
	liveFile = []string{"resourcetype", "displayname", "getcontentlength", "getlastmodified", "getcontenttype", "getetag", "supportedlock"}
	liveDir  = []string{"resourcetype", "displayname", "getlastmodified", "supportedlock"}
)

func allpropNames(isDir bool, dead map[xml.Name]webdav.Property) []xml.Name {
	live := liveFile
	if isDir {
		live = liveDir
	}
	out := make([]xml.Name, 0, len(live)+len(dead))
	for _, l := range live {
		out = append(out, davName(l))
	}
	deadNames := make([]xml.Name, 0, len(dead))
	for n := range dead {
		deadNames = append(deadNames, n)
	}
	sort.Slice(deadNames, func(i, j int) bool {
		if deadNames[i].Space != deadNames[j].Space {
			return deadNames[i].Space < deadNames[j].Space
		}
		return deadNames[i].Local < deadNames[j].Local
	})
	return append(out, deadNames...)
}

const supportedLock = `<D:lockentry xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>` +
	`<D:lockentry xmlns:D="DAV:"><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>`

// propValue is one property of one resource: dead ones first, then live.
func (h *Handler) propValue(rel string, fi os.FileInfo, pn xml.Name, dead map[xml.Name]webdav.Property) (webdav.Property, bool) {
	if p, ok := dead[pn]; ok {
		return p, true
	}
	if pn.Space != "DAV:" {
		return webdav.Property{}, false
	}
	isDir := fi.IsDir()
	var v string
	switch pn.Local {
	case "resourcetype":
		if isDir {
			v = `<D:collection xmlns:D="DAV:"/>`
		}
	case "displayname":
		if rel != "." {
			v = xmlText(path.Base(rel))
		}
	case "getlastmodified":
		v = fi.ModTime().UTC().Format(http.TimeFormat)
	case "supportedlock":
		v = supportedLock
	case "getcontentlength":
		if isDir {
			return webdav.Property{}, false
		}
		v = strconv.FormatInt(fi.Size(), 10)
	case "getcontenttype":
		if isDir {
			return webdav.Property{}, false
		}
		v = xmlText(contentType(rel))
	case "getetag":
		if isDir {
			return webdav.Property{}, false
		}
		v = xmlText(etag(fi))
	default:
		return webdav.Property{}, false
	}
	return webdav.Property{XMLName: pn, InnerXML: []byte(v)}, true
}

func xmlText(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// writeProp writes <local xmlns="space" xml:lang="..">inner</local>, the
// shape x/net/webdav gives a property.
func writeProp(w *bufio.Writer, p webdav.Property) {
	w.WriteByte('<')
	w.WriteString(p.XMLName.Local)
	w.WriteString(` xmlns="`)
	xml.EscapeText(w, []byte(p.XMLName.Space))
	w.WriteByte('"')
	if p.Lang != "" {
		w.WriteString(` xml:lang="`)
		xml.EscapeText(w, []byte(p.Lang))
		w.WriteByte('"')
	}
	if len(p.InnerXML) == 0 {
		w.WriteString("/>")
		return
	}
	w.WriteByte('>')
	w.Write(p.InnerXML)
	w.WriteString("</")
	w.WriteString(p.XMLName.Local)
	w.WriteByte('>')
}
