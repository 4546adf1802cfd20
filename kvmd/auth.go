package kvmd

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/msdav/msdav/auth"
)

// Checker says whether a user and password are valid (auth.Guard).
type Checker interface {
	Check(user, password string) bool
}

// stamper is a Checker that also names a user's current credential
// (auth.Guard.Stamp): a session ends when its user goes or changes password.
type stamper interface {
	Stamp(user string) (string, bool)
}

// maxSessions caps the auth_token sessions; a login past it ends the
// least recently used.
const maxSessions = 64

// sessions are kvmd's auth_token cookies.
type sessions struct {
	mu     sync.Mutex
	tokens map[string]kvmdSession
}

type kvmdSession struct {
	user, stamp string
	expires     time.Time // zero: until logout or a credential change
	seen        time.Time
}

// SetAuth makes the handler check credentials as kvmd does, with c; nil
// (auth off) lets everyone in. It also serves /api/auth/login, check and
// logout.
func (h *Handler) SetAuth(c Checker) *Handler {
	h.auth = c
	return h
}

// authorize answers nil for a request kvmd would let in, else its error:
// 401 UnauthorizedError without credentials, 403 ForbiddenError with bad
// ones. kvmd's order: X-KVMD-User/-Passwd, the auth_token cookie, Basic.
func (h *Handler) authorize(r *http.Request) *Error {
	if h.auth == nil {
		return nil
	}
	forbidden := &Error{Name: "ForbiddenError", Status: 403, Msg: "Forbidden"}
	if r.Header.Get("X-KVMD-User") != "" {
		user := r.Header.Get("X-KVMD-User")
		if h.auth.Check(user, r.Header.Get("X-KVMD-Passwd")) {
			return nil
		}
		return forbidden
	}
	if ck, err := r.Cookie("auth_token"); err == nil && ck.Value != "" {
		if h.session(ck.Value) {
			return nil
		}
		return forbidden
	}
	if user, pass, ok := auth.Credentials(r); ok {
		if h.auth.Check(user, pass) {
			return nil
		}
		return forbidden
	}
	return &Error{Name: "UnauthorizedError", Status: 401, Msg: "Unauthorized"}
}

// session reports whether tok is a live session, and touches it.
func (h *Handler) session(tok string) bool {
	h.sess.mu.Lock()
	defer h.sess.mu.Unlock()
	s, ok := h.sess.tokens[tok]
	if ok && h.live(s, time.Now()) {
		s.seen = time.Now()
		h.sess.tokens[tok] = s
		return true
	}
	delete(h.sess.tokens, tok)
	return false
}

func (h *Handler) live(s kvmdSession, now time.Time) bool {
	if !s.expires.IsZero() && now.After(s.expires) {
		return false
	}
	if st, ok := h.auth.(stamper); ok {
		cur, exists := st.Stamp(s.user)
		return exists && cur == s.stamp
	}
	return true
}

// login is POST /api/auth/login with form fields user and passwd (and
// expire, seconds): it sets the auth_token cookie.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) (any, error) {
	if err := r.ParseForm(); err != nil {
		return nil, kerr("ValidatorError", "the login form cannot be read: %v", err)
	}
	user, pass := r.PostForm.Get("user"), r.PostForm.Get("passwd")
	var expire time.Duration
	if e := r.PostForm.Get("expire"); e != "" {
		n, err := strconv.Atoi(e)
		if err != nil || n < 0 {
			return nil, kerr("ValidatorError", "expire=%q: want a number of seconds (0: no expiry)", e)
		}
		expire = time.Duration(n) * time.Second
	}
	if h.auth != nil && !h.auth.Check(user, pass) {
		return nil, &Error{Name: "ForbiddenError", Status: 403, Msg: "Forbidden"}
	}
	b := make([]byte, 32)
	rand.Read(b)
	tok := hex.EncodeToString(b)
	now := time.Now()
	s := kvmdSession{user: user, seen: now}
	if expire > 0 {
		s.expires = now.Add(expire)
	}
	if st, ok := h.auth.(stamper); ok {
		s.stamp, _ = st.Stamp(user)
	}
	h.sess.mu.Lock()
	for t, old := range h.sess.tokens {
		if !h.live(old, now) {
			delete(h.sess.tokens, t)
		}
	}
	for len(h.sess.tokens) >= maxSessions {
		var lru string
		for t, old := range h.sess.tokens {
			if lru == "" || old.seen.Before(h.sess.tokens[lru].seen) {
				lru = t
			}
		}
		delete(h.sess.tokens, lru)
	}
	h.sess.tokens[tok] = s
	h.sess.mu.Unlock()
	// Strict: a page on another site cannot send it, so the cookie opens
	// no door for cross-site requests.
	http.SetCookie(w, &http.Cookie{Name: "auth_token", Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	return nil, nil
}

// check is GET /api/auth/check: 200 when the request's credentials hold.
func (h *Handler) check(w http.ResponseWriter, r *http.Request) (any, error) { return nil, nil }

// logout is POST /api/auth/logout: ends the cookie's session.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) (any, error) {
	if ck, err := r.Cookie("auth_token"); err == nil {
		h.sess.mu.Lock()
		delete(h.sess.tokens, ck.Value)
		h.sess.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: "auth_token", Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	return nil, nil
}
