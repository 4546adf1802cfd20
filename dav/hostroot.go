package dav

import (
	"io"
	"net/http"
	"strings"
)

// HostRoot answers OPTIONS and PROPFIND on the host's root, "/". Windows'
// WebDAV redirector walks a URL like an SMB path and gives up on mapping
// http://HOST/dav/ when the root above it does not answer as a WebDAV
// collection; the root shows the share as its one member. Everything else
// at "/" (the console's GET) belongs to someone else.
func (h *Handler) HostRoot() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setShareHeaders(w.Header())
		w.Header().Set("MS-Author-Via", "DAV")
		switch r.Method {
		case http.MethodOptions:
			w.Header().Set("DAV", "1, 2")
			w.Header().Set("Allow", "OPTIONS, GET, HEAD, PROPFIND")
			w.Header().Set("Content-Length", "0")
		case "PROPFIND":
			h.propfindHostRoot(w, r)
		default:
			w.Header().Set("Allow", "OPTIONS, GET, HEAD, PROPFIND")
			http.Error(w, r.Method+" is not allowed on the host's root; the share is "+h.prefix+"/", http.StatusMethodNotAllowed)
		}
	})
}

func (h *Handler) propfindHostRoot(w http.ResponseWriter, r *http.Request) {
	if status, err := checkXMLBody(r); err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	depth := strings.TrimSpace(r.Header.Get("Depth"))
	switch strings.ToLower(depth) {
	case "infinity":
		w.Header().Set("Content-Type", "application/xml; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?>`+"\n"+`<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>`)
		return
	case "", "1":
		depth = "1"
	case "0":
	default:
		http.Error(w, "Depth must be 0 or 1", http.StatusBadRequest)
		return
	}
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
	}
	names, all, ok := parsePropfind(body)
	if !ok {
		http.Error(w, "PROPFIND on the host's root takes <prop> or <allprop>", http.StatusBadRequest)
		return
	}
	// Both the root and the share show the store root's times: the root
	// has none of its own, and a stable answer keeps clients' caches quiet.
	fi, err := h.store.Root().Stat(".")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	b := []byte(`<?xml version="1.0" encoding="UTF-8"?><D:multistatus xmlns:D="DAV:">`)
	want := names
	if all {
		want = allpropNames(true, nil)
	}
	b = append(b, "<D:response><D:href>/</D:href>"...)
	b = appendPropstats(b, want, nil, "", true, fi)
	b = append(b, "</D:response>"...)
	if depth == "1" {
		dead, _ := h.fsys.props.deadProps(".", true, nil)
		if all {
			want = allpropNames(true, dead)
		}
		b = append(b, "<D:response><D:href>"...)
		b = appendHref(b, h.prefix+"/")
		b = append(b, "</D:href>"...)
		b = appendPropstats(b, want, dead, strings.TrimPrefix(h.prefix, "/"), false, fi)
		b = append(b, "</D:response>"...)
	}
	b = append(b, "</D:multistatus>"...)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusMultiStatus)
	w.Write(b)
}
