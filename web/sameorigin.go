package web

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// guarded are the path prefixes whose state changes other sites may not
// make. The share (/dav/) needs no rule: its writing methods are not
// simple requests, so a browser asks first, and msdav never allows it.
var guarded = []string{"/api/", "/redfish/"}

// SameOrigin answers 403 to a state-changing request under /api/ or
// /redfish/ that a browser says comes from another site: an Origin that is
// not this server's, or Sec-Fetch-Site: cross-site. A request with neither
// header (curl, scripts) passes, as does anything that only reads.
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

// crossSite says why r is refused, or "" when it may pass.
func crossSite(r *http.Request) string {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, "PROPFIND":
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

// quoteOrigin keeps an attacker's Origin header short in the error text.
func quoteOrigin(o string) string {
	if len(o) > 100 {
		o = o[:100] + "…"
	}
	return "\"" + o + "\""
}
