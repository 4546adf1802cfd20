package auth

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func writeHtpasswd(t testing.TB, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
	return p
}

func hash(t testing.TB, pw string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, err string
	}{
		{"alice:" + hash(t, "x"), ""},
		{"# comment\n\nalice:" + hash(t, "x"), ""},
		{"alice:$apr1$abc$def", "htpasswd -B"},
		{"alice:{SHA}abc=", "htpasswd -B"},
		{"alice", "want user:hash"},
		{":" + hash(t, "x"), "want user:hash"},
		{"a:" + hash(t, "x") + "\na:" + hash(t, "y"), "twice"},
	} {
		_, err := Parse(strings.NewReader(tc.in))
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Parse(%q) = %v, want %q", tc.in, err, tc.err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("alice:$2y$05$abcdefghijklmnopqrstuu5dE0kZ1ZJ8cSGp8Yy1Jq0gK2k1l9G3e")
	f.Add("a:b\n#c\n")
	f.Fuzz(func(t *testing.T, s string) {
		users, err := Parse(strings.NewReader(s))
		if err == nil {
			for u := range users {
				if u == "" || strings.Contains(u, ":") {
					t.Fatalf("bad user %q accepted", u)
				}
			}
		}
	})
}

func TestWrap(t *testing.T) {
	p := writeHtpasswd(t, "alice:"+hash(t, "secret"))
	g, err := New(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) }))
	for _, tc := range []struct {
		method, user, pass string
		basic              bool
		want               int
	}{
		{"GET", "", "", false, 401},
		{"GET", "alice", "wrong", true, 401},
		{"GET", "bob", "secret", true, 401},
		{"PUT", "alice", "secret", true, 299},
		{"PROPFIND", "alice", "secret", true, 299},
		{"OPTIONS", "", "", false, 200}, // the fixed discovery answer, not the handler's
		{"OPTIONS", "alice", "secret", true, 299},
		{"OPTIONS", "alice", "wrong", true, 401},
	} {
		r := httptest.NewRequest(tc.method, "/dav/", nil)
		if tc.basic {
			r.SetBasicAuth(tc.user, tc.pass)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s %s/%s: %d, want %d", tc.method, tc.user, tc.pass, w.Code, tc.want)
		}
		if w.Code == 401 && !strings.Contains(w.Header().Get("WWW-Authenticate"), "Basic") {
			t.Error("401 without a Basic challenge")
		}
	}
	// A user added to the file works without a restart.
	time.Sleep(10 * time.Millisecond)
	os.WriteFile(p, []byte("alice:"+hash(t, "secret")+"\nbob:"+hash(t, "pw")+"\n"), 0o600)
	if !g.Check("bob", "pw") {
		t.Error("new user not picked up")
	}
	if _, err := New(filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Error("missing htpasswd accepted")
	}
	bad := writeHtpasswd(t, "alice:plaintext")
	if _, err := New(bad, nil); err == nil || !strings.Contains(err.Error(), "htpasswd -B") {
		t.Errorf("plaintext htpasswd: %v", err)
	}
}

// The time to refuse an unknown user and a wrong password is logged, not
// asserted (a timing assertion would be flaky on a shared machine); both
// run one bcrypt comparison.
func TestUnknownUserCostsLikeWrongPassword(t *testing.T) {
	h, _ := bcrypt.GenerateFromPassword([]byte("secret"), 10)
	p := writeHtpasswd(t, "alice:"+string(h))
	g, err := New(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	measure := func(user string) time.Duration {
		start := time.Now()
		for i := 0; i < 5; i++ {
			if g.Check(user, "wrong") {
				t.Fatal("accepted")
			}
		}
		return time.Since(start) / 5
	}
	wrong, unknown := measure("alice"), measure("mallory")
	t.Logf("wrong password: %s, unknown user: %s", wrong, unknown)
	if c, _ := bcrypt.Cost(g.dummy); c != 10 {
		t.Errorf("dummy hash cost %d, want the file's cost 10", c)
	}
}

func TestKVMDHeadersAreCredentials(t *testing.T) {
	dir := t.TempDir()
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	p := filepath.Join(dir, "htpasswd")
	os.WriteFile(p, []byte("admin:"+string(h)+"\n"), 0o600)
	g, err := New(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	ok := g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	for _, tc := range []struct {
		hdr  map[string]string
		want int
	}{
		{map[string]string{"X-KVMD-User": "admin", "X-KVMD-Passwd": "pw"}, 204},
		{map[string]string{"X-KVMD-User": "admin", "X-KVMD-Passwd": "nope"}, 401},
		{map[string]string{"X-KVMD-User": "admin"}, 401},
		{map[string]string{}, 401},
	} {
		req := httptest.NewRequest("GET", "/api/msd", nil)
		for k, v := range tc.hdr {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		ok.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%v: %d, want %d", tc.hdr, rec.Code, tc.want)
		}
	}
}
