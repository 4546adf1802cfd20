package redfish

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msdav/msdav/conf"
	"github.com/msdav/msdav/fs"
)

// users is a Checker whose users and passwords a test changes, as an
// htpasswd file is edited.
type users struct {
	mu sync.Mutex
	pw map[string]string
}

func (u *users) Check(user, password string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	p, ok := u.pw[user]
	return ok && p == password
}

func (u *users) Stamp(user string) (string, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	p, ok := u.pw[user]
	return "v-" + p, ok
}

func (u *users) set(user, password string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if password == "" {
		delete(u.pw, user)
	} else {
		u.pw[user] = password
	}
}

func authService(t *testing.T, u *users) *httptest.Server {
	store, err := fs.Open(fs.Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httptest.NewServer(New(store, nil, nil, Options{Log: log, Auth: u, Conf: conf.Redfish{Enabled: true}}))
	t.Cleanup(srv.Close)
	return srv
}

func login(t *testing.T, base, user, password string) string {
	t.Helper()
	resp, err := http.Post(base+sessions, "application/json", strings.NewReader(`{"UserName":"`+user+`","Password":"`+password+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("login %s: %d", user, resp.StatusCode)
	}
	return resp.Header.Get("X-Auth-Token")
}

func withToken(t *testing.T, base, tok string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", base+sessions, nil)
	req.Header.Set("X-Auth-Token", tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Issue 31.6: a session ends with its credential, has an absolute
// lifetime besides the idle timeout, and their number is capped.
func TestSessionsFollowTheCredential(t *testing.T) {
	u := &users{pw: map[string]string{"alice": "a1", "bob": "b1"}}
	srv := authService(t, u)
	a, b := login(t, srv.URL, "alice", "a1"), login(t, srv.URL, "bob", "b1")
	if withToken(t, srv.URL, a) != 200 || withToken(t, srv.URL, b) != 200 {
		t.Fatal("fresh tokens refused")
	}
	u.set("alice", "")
	if code := withToken(t, srv.URL, a); code != 401 {
		t.Errorf("a removed user's token: %d", code)
	}
	u.set("bob", "b2")
	if code := withToken(t, srv.URL, b); code != 401 {
		t.Errorf("the token of a user whose password changed: %d", code)
	}
	if code := withToken(t, srv.URL, login(t, srv.URL, "bob", "b2")); code != 200 {
		t.Errorf("a token with the new password: %d", code)
	}

	t.Run("absolute lifetime", func(t *testing.T) {
		old := sessionLifetime
		sessionLifetime = 300 * time.Millisecond
		defer func() { sessionLifetime = old }()
		tok := login(t, srv.URL, "bob", "b2")
		for i := 0; i < 4; i++ { // kept busy: the idle timeout never runs out
			time.Sleep(100 * time.Millisecond)
			withToken(t, srv.URL, tok)
		}
		if code := withToken(t, srv.URL, tok); code != 401 {
			t.Errorf("a token past its lifetime: %d", code)
		}
	})
	t.Run("cap", func(t *testing.T) {
		first := login(t, srv.URL, "bob", "b2")
		for i := 0; i < maxSessions; i++ {
			login(t, srv.URL, "bob", "b2")
		}
		if code := withToken(t, srv.URL, first); code != 401 {
			t.Errorf("the least recently used of %d sessions still works: %d", maxSessions+1, code)
		}
		resp, _ := http.Get(srv.URL + sessions)
		resp.Body.Close()
		req, _ := http.NewRequest("GET", srv.URL+sessions, nil)
		req.SetBasicAuth("bob", "b2")
		r2, _ := http.DefaultClient.Do(req)
		var n int
		if r2 != nil {
			b, _ := io.ReadAll(r2.Body)
			r2.Body.Close()
			n = strings.Count(string(b), sessions+"/")
		}
		if n > maxSessions {
			t.Errorf("%d sessions listed; the cap is %d", n, maxSessions)
		}
	})
}
