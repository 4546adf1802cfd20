package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzKnownHosts: any Host and Referer is judged without a panic, and a
// name never configured is never let through.
func FuzzKnownHosts(f *testing.F) {
	for _, s := range []string{"box", "127.0.0.1:8080", "[::1]:80", "evil.example", "[fe80::1%eth0]", "a.localhost", ":", "[", "BOX.:1"} {
		f.Add(s, "http://box/")
	}
	h := KnownHosts([]string{"box"}, SameOrigin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	f.Fuzz(func(t *testing.T, host, ref string) {
		r := httptest.NewRequest("GET", "/api/events", nil)
		r.Host = host
		r.Header.Set("Referer", ref)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code == 200 && host == "evil.example" {
			t.Fatal("evil.example let through")
		}
	})
}
