package web

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// guarded are the path prefixes whose state changes other sites may not
// make. The share (/dav/) needs no rule: its writing methods are not
// simple requests, so a browser asks first, and msdav never allows it.
var guarded = []string{"/api/", "/redfish/"}

// SameOrigin answers 403 to a state-changing request under /api/ or
// /redfish/ that a browser says comes from another site: an Origin that is
// not this server's, or Sec-Fetch-Site: cross-site; and so are the GETs
// that start work (workGETs). A request with neither header (curl,
// scripts) passes, as does anything that only reads.
func SameOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if why := crossSite(r); why != "" {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.WriteHeader(http.StatusForbidden)
			json.NewEncoder(w).Encode(map[string]string{"error": why})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// workGETs are the GETs that start work: kvmd's read holds its only
// transfer slot while it streams (and compresses), the event stream starts
// the store's watcher. An <img> or EventSource on any page could start
// them, so they are guarded as writes are, the Referer counted too (a
// plain GET from a page carries no Origin).
var workGETs = []string{"/api/msd/read", "/api/events"}

// crossSite says why r is refused, or "" when it may pass.
func crossSite(r *http.Request) string {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if !slices.Contains(workGETs, r.URL.Path) {
			return ""
		}
		if why := fromElsewhere(r); why != "" {
			return why
		}
		if ref := r.Header.Get("Referer"); ref != "" && r.Header.Get("Origin") == "" {
			if own := requestOrigin(r); !sameOrigin(originOf(ref), own) {
				return "refused: GET " + r.URL.Path + " was asked for by the page " + quoteOrigin(originOf(ref)) + ", not by " + own + "; use msdav's own console or a script"
			}
		}
		return ""
	case http.MethodOptions, "PROPFIND":
		return ""
	}
	g := false
	for _, p := range guarded {
		if strings.HasPrefix(r.URL.Path, p) || r.URL.Path+"/" == p {
			g = true
		}
	}
	if !g {
		return ""
	}
	return fromElsewhere(r)
}

// fromElsewhere says why r came from another site's page, by
// Sec-Fetch-Site or Origin, or "".
func fromElsewhere(r *http.Request) string {
	if strings.EqualFold(r.Header.Get("Sec-Fetch-Site"), "cross-site") {
		return "refused: " + r.Method + " " + r.URL.Path + " came from another site (Sec-Fetch-Site: cross-site); use msdav's own console or a script"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return ""
	}
	if own := requestOrigin(r); !sameOrigin(origin, own) {
		return "refused: " + r.Method + " " + r.URL.Path + " came from the page of " + quoteOrigin(origin) + ", not from " + own + "; use msdav's own console or a script"
	}
	return ""
}

// requestOrigin is this server's origin as the browser sees it. The scheme
// comes from the connection, or from X-Forwarded-Proto set by a TLS proxy in
// front (a page on another site cannot set that header without a CORS
// preflight, which msdav never grants).
func requestOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	} else if p := strings.ToLower(r.Header.Get("X-Forwarded-Proto")); p == "https" || p == "http" {
		scheme = p
	}
	return scheme + "://" + r.Host
}

// sameOrigin compares scheme, host and port, with the scheme's default
// port filled in, so http://box and http://box:80 are one origin.
func sameOrigin(a, b string) bool {
	na, ok1 := normalize(a)
	nb, ok2 := normalize(b)
	return ok1 && ok2 && na == nb
}

func normalize(o string) (string, bool) {
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.User != nil {
		return "", false // "null" (sandboxed pages, file:) and malformed ones never match
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(host), port), true
}

// originOf is the scheme://host[:port] of a Referer.
func originOf(ref string) string {
	u, err := url.Parse(ref)
	if err != nil {
		return ref
	}
	return u.Scheme + "://" + u.Host
}

// quoteOrigin keeps an attacker's Origin header short in the error text.
func quoteOrigin(o string) string {
	if len(o) > 100 {
		o = o[:100] + "…"
	}
	return "\"" + o + "\""
}

// KnownHosts answers 421 Misdirected Request to a request whose Host is
// not a name the box is known by: its addresses (the one the connection
// came to, every interface's, loopback), its host name, <hostname>.local,
// localhost, and the names in extra (server.hosts). It is what keeps DNS
// rebinding out: a page of another site whose name is made to point at
// the box is then "same origin" to the browser, but its requests carry the
// other site's name. The port is not compared; /healthz answers any name.
func KnownHosts(extra []string, next http.Handler) http.Handler {
	k := &known{names: map[string]bool{"localhost": true}}
	if h, err := os.Hostname(); err == nil && h != "" {
		h = strings.ToLower(h)
		k.names[h] = true
		k.names[h+".local"] = true
	}
	for _, h := range extra {
		k.names[hostOnly(h)] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host == "" || r.URL.Path == "/healthz" || k.ok(r) {
			next.ServeHTTP(w, r)
			return
		}
		host := r.Host
		if len(host) > 100 {
			host = host[:100] + "…"
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusMisdirectedRequest)
		fmt.Fprintf(w, "msdav does not answer to the name %q: if that name is this box, add it to [server] hosts in msdav's config (names it does not know are refused to keep DNS rebinding out)\n", host)
	})
}

type known struct {
	names map[string]bool

	mu      sync.Mutex
	addrs   map[netip.Addr]bool
	fetched time.Time
}

// hostOnly is h without port, brackets, zone and trailing dot, lower case.
func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

func (k *known) ok(r *http.Request) bool {
	h := hostOnly(r.Host)
	if k.names[h] || strings.HasSuffix(h, ".localhost") { // RFC 6761: browsers resolve those to loopback themselves
		return true
	}
	a, err := netip.ParseAddr(h)
	if err != nil {
		return false
	}
	a = a.WithZone("").Unmap()
	if a.IsLoopback() || k.names[a.String()] {
		return true
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap, err := netip.ParseAddrPort(la.String()); err == nil && ap.Addr().WithZone("").Unmap() == a {
			return true
		}
	}
	return k.interfaceAddr(a)
}

// interfaceAddr reports whether a is one of the box's addresses, read
// again at most every 10 s (DHCP, a new interface).
func (k *known) interfaceAddr(a netip.Addr) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.addrs == nil || time.Since(k.fetched) > 10*time.Second {
		k.fetched = time.Now()
		k.addrs = map[netip.Addr]bool{}
		if as, err := net.InterfaceAddrs(); err == nil {
			for _, ia := range as {
				if p, err := netip.ParsePrefix(ia.String()); err == nil {
					k.addrs[p.Addr().WithZone("").Unmap()] = true
				}
			}
		}
	}
	return k.addrs[a]
}
