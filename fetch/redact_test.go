package fetch

import (
	"net/url"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"http://user:pw@host/x.iso", "http://user:xxxxx@host/x.iso"},
		{"https://u:p%40ss@host:8443/a?b=c", "https://u:xxxxx@host:8443/a?b=c"},
		{"http://:pw@host/", "http://:xxxxx@host/"},
		{"http://token@host/", "http://token@host/"},
		{"http://host/a:b@c", "http://host/a:b@c"},
		{`fetch http://a:b@h/x failed; retry http://c:d@h/y`, `fetch http://a:xxxxx@h/x failed; retry http://c:xxxxx@h/y`},
		{`{"url":"http://a:s3cret@h/x.iso","n":1}`, `{"url":"http://a:xxxxx@h/x.iso","n":1}`},
		{`{"a":"ftp://","b":"x:y@z"}`, `{"a":"ftp://","b":"x:y@z"}`},
		{"no url here: a:b@c", "no url here: a:b@c"},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzRedact(f *testing.F) {
	f.Add("http://user:pw@host/x.iso")
	f.Add(`{"url":"https://a:b@c/d"}`)
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil || u.User == nil {
			return
		}
		pw, ok := u.User.Password()
		if !ok || len(pw) < 4 || strings.ContainsAny(pw, `"\`) {
			return
		}
		if r := Redact(s); strings.Contains(r, "://"+u.User.Username()+":"+pw+"@") {
			t.Fatalf("Redact(%q) = %q keeps the password", s, r)
		}
	})
}
