// Package auth guards the share and the API with HTTP Basic auth checked
// against an htpasswd file of bcrypt entries.
package auth

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Guard checks credentials; a Guard with no htpasswd file lets everyone in.
type Guard struct {
	path string
	log  *slog.Logger

	mu    sync.Mutex
	users map[string][]byte // user -> bcrypt hash
	mtime time.Time
	size  int64
	dummy []byte // hash checked for unknown users, so they cost as much as known ones
}

// New loads the htpasswd file at path (empty: no auth).
func New(path string, log *slog.Logger) (*Guard, error) {
	if log == nil {
		log = slog.Default()
	}
	g := &Guard{path: path, log: log}
	if path == "" {
		return g, nil
	}
	if err := g.reload(); err != nil {
		return nil, err
	}
	return g, nil
}

// Parse reads htpasswd lines ("user:$2y$..."), accepting only bcrypt: the
// other kinds htpasswd can write (MD5-crypt, SHA1, crypt, plain) are weak.
func Parse(r io.Reader) (map[string][]byte, error) {
	users := map[string][]byte{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("line %d: want user:hash", n)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("line %d (user %q): not a bcrypt hash; create it with htpasswd -B", n, user)
		}
		if _, dup := users[user]; dup {
			return nil, fmt.Errorf("line %d: user %q appears twice", n, user)
		}
		users[user] = []byte(hash)
	}
	return users, sc.Err()
}

// reload reads the file again if it changed, so adding a user needs no restart.
func (g *Guard) reload() error {
	fi, err := os.Stat(g.path)
	if err != nil {
		return fmt.Errorf("htpasswd %s: %w", g.path, err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.users != nil && fi.ModTime().Equal(g.mtime) && fi.Size() == g.size {
		return nil
	}
	b, err := os.ReadFile(g.path)
	if err != nil {
		return fmt.Errorf("htpasswd %s: %w", g.path, err)
	}
	users, err := Parse(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("htpasswd %s: %w", g.path, err)
	}
	cost := bcrypt.DefaultCost
	for _, h := range users {
		if c, err := bcrypt.Cost(h); err == nil {
			cost = c
			break
		}
	}
	if g.dummy == nil {
		g.dummy, _ = bcrypt.GenerateFromPassword([]byte("msdav-dummy"), cost)
	}
	g.users, g.mtime, g.size = users, fi.ModTime(), fi.Size()
	return nil
}

// Check reports whether user/password are valid. Unknown users take as long
// as wrong passwords: a bcrypt comparison happens either way.
func (g *Guard) Check(user, password string) bool {
	if err := g.reload(); err != nil {
		g.log.Error("auth: keeping the previous users", "err", err)
	}
	g.mu.Lock()
	hash, known := g.users[user]
	dummy := g.dummy
	g.mu.Unlock()
	if !known {
		hash = dummy
	}
	ok := bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
	return subtle.ConstantTimeEq(boolInt(ok), 1) == 1 && known
}

func boolInt(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// Credentials reads a request's user and password: kvmd's X-KVMD-User and
// X-KVMD-Passwd headers (PiKVM's scripts send those), else Basic auth.
func Credentials(r *http.Request) (user, password string, ok bool) {
	if u := r.Header.Get("X-KVMD-User"); u != "" {
		return u, r.Header.Get("X-KVMD-Passwd"), true
	}
	return r.BasicAuth()
}

// Enabled reports whether credentials are checked at all.
func (g *Guard) Enabled() bool { return g.path != "" }

// DiscoveryAllow is the Allow of the answer to OPTIONS without
// credentials: the share's methods, the same for every path.
const DiscoveryAllow = "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, MKCOL, COPY, MOVE, LOCK, UNLOCK"

// Discovery answers OPTIONS without credentials. Windows' WebDAV redirector
// and Finder probe with it before they send credentials, and it must not
// depend on the path: a different Allow for a file, a folder and a
// missing name would tell those apart without a password.
func Discovery(w http.ResponseWriter) {
	w.Header().Set("DAV", "1, 2")
	w.Header().Set("MS-Author-Via", "DAV")
	w.Header().Set("Allow", DiscoveryAllow)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// Discover answers every OPTIONS without credentials with Discovery,
// whatever route it names (a missing one, one only GET reaches), so the
// answer is the same for every path; the rest passes to h.
func (g *Guard) Discover(h http.Handler) http.Handler {
	if g.path == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := Credentials(r); !ok && r.Method == http.MethodOptions {
			Discovery(w)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Wrap puts h behind the guard. OPTIONS without credentials gets the fixed
// Discovery answer, whatever the path; with credentials it reaches h.
func (g *Guard) Wrap(h http.Handler) http.Handler {
	if g.path == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := Credentials(r)
		if !ok && r.Method == http.MethodOptions {
			Discovery(w)
			return
		}
		if !ok || !g.Check(user, pass) {
			w.Header().Set("WWW-Authenticate", `Basic realm="msdav", charset="UTF-8"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
