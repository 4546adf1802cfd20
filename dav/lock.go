package dav

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/webdav"
)

// maxLockTimeout caps every lock: a client that vanishes (a laptop closed
// mid-edit) must not keep an image locked forever.
const maxLockTimeout = time.Hour

// Locks are held in memory for up to maxLockTimeout, so what one client
// can make the server hold is bounded (on main, 3,000 shared LOCKs with
// 100 KB owners held 450 MiB for an hour):
const (
	// maxLockOwner bounds the owner XML a lock keeps and repeats in every
	// lockdiscovery. Clients put a user name or a URL there: Windows,
	// Finder, davfs2 and litmus send under 200 bytes; 4 KiB is 20 times that.
	maxLockOwner = 4 << 10
	// maxLocksPerResource bounds the shared locks on one resource: one per
	// client that has the file open, and a box has a handful of clients.
	maxLocksPerResource = 32
	// maxLocks bounds all locks held at once: a few clients, each locking
	// the files it has open. At most about 4.5 KiB each, under 5 MiB in all.
	maxLocks = 1024
)

// errTooManyLocks is a LOCK past maxLocks or maxLocksPerResource: 507, as
// RFC 4918 answers a request the server cannot store the state of.
var errTooManyLocks = errors.New("too many locks")

// lockSys is a webdav.LockSystem with shared as well as exclusive write
// locks (x/net/webdav's memLS has only exclusive ones, and litmus checks
// shared). x/net/webdav creates the exclusive locks through Create; the
// handler creates shared ones through createShared.
type lockSys struct {
	mu    sync.Mutex
	locks map[string]*lockEntry // by token
}

type lockEntry struct {
	details webdav.LockDetails
	shared  bool
	expires time.Time // zero: never (not used: every lock is capped)
	held    bool
	// temp: a lock taken for the length of one request (x/net/webdav's
	// around a write, confirmLocks'); not counted against the caps, so
	// locks from clients never stop a write without one.
	temp bool
	// unlocked: UNLOCK came while a request held the lock; the first
	// expire after that request ends removes it. A client that cancels an
	// upload hangs up and UNLOCKs at once, before the server has seen the
	// hang-up.
	unlocked bool
}

func newLockSys() *lockSys { return &lockSys{locks: map[string]*lockEntry{}} }

func capTimeout(d time.Duration) time.Duration {
	if d <= 0 || d > maxLockTimeout {
		return maxLockTimeout
	}
	return d
}

// covers reports whether a lock rooted at root (depth infinity unless
// zeroDepth) applies to name.
func covers(root string, zeroDepth bool, name string) bool {
	if name == root {
		return true
	}
	if zeroDepth {
		return false
	}
	return root == "/" || strings.HasPrefix(name, root+"/")
}

func (l *lockSys) expire(now time.Time) {
	for tok, e := range l.locks {
		if !e.held && (e.unlocked || now.After(e.expires)) {
			delete(l.locks, tok)
		}
	}
}

// conflicts reports whether a new lock would clash with a held one: any two
// locks whose scopes overlap, unless both are shared.
func (l *lockSys) conflicts(d webdav.LockDetails, shared bool) bool {
	for _, e := range l.locks {
		if shared && e.shared {
			continue
		}
		if covers(e.details.Root, e.details.ZeroDepth, d.Root) || covers(d.Root, d.ZeroDepth, e.details.Root) {
			return true
		}
	}
	return false
}

func (l *lockSys) create(now time.Time, d webdav.LockDetails, shared bool) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
	d.Root = slashClean(d.Root)
	if l.conflicts(d, shared) {
		return "", webdav.ErrLocked
	}
	temp := d.Duration < 0
	if !temp {
		if err := l.roomLocked(d.Root); err != nil {
			return "", err
		}
	}
	d.Duration = capTimeout(d.Duration)
	b := make([]byte, 16)
	rand.Read(b)
	tok := "urn:uuid:" + hex.EncodeToString(b[:4]) + "-" + hex.EncodeToString(b[4:6]) + "-" + hex.EncodeToString(b[6:8]) + "-" + hex.EncodeToString(b[8:10]) + "-" + hex.EncodeToString(b[10:])
	l.locks[tok] = &lockEntry{details: d, shared: shared, temp: temp, expires: now.Add(d.Duration)}
	return tok, nil
}

// room reports errTooManyLocks when one more lock on root would pass a cap.
func (l *lockSys) room(now time.Time, root string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
	return l.roomLocked(slashClean(root))
}

func (l *lockSys) roomLocked(root string) error {
	all, here := 0, 0
	for _, e := range l.locks {
		if e.temp {
			continue
		}
		all++
		if e.details.Root == root {
			here++
		}
	}
	if all >= maxLocks {
		return fmt.Errorf("%w: %d locks are held, the most the server keeps", errTooManyLocks, maxLocks)
	}
	if here >= maxLocksPerResource {
		return fmt.Errorf("%w: %s has %d locks, the most one resource may have", errTooManyLocks, root, maxLocksPerResource)
	}
	return nil
}

// checkLock refuses, before anything is made, a LOCK whose owner is too
// large (413: the request is well formed but carries more than the server
// keeps, the status XML bodies over maxXMLBody get too; 400 would call it
// malformed) or that would pass a lock cap (507). A refresh (no body) adds
// nothing and passes.
func (h *Handler) checkLock(r *http.Request, name string) (int, error) {
	if r.ContentLength == 0 || r.Body == nil {
		return 0, nil
	}
	b, err := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil {
		return http.StatusBadRequest, err
	}
	var li lockInfo
	if xml.Unmarshal(b, &li) != nil {
		return 0, nil // x/net/webdav answers the malformed body
	}
	if n := len(li.Owner.InnerXML); n > maxLockOwner {
		return http.StatusRequestEntityTooLarge, fmt.Errorf("lock owner of %d bytes; at most %d", n, maxLockOwner)
	}
	if err := h.locks.room(time.Now(), name); err != nil {
		return http.StatusInsufficientStorage, err
	}
	return 0, nil
}

// Create makes an exclusive lock (x/net/webdav's LOCK and its temporary
// locks around writes).
func (l *lockSys) Create(now time.Time, d webdav.LockDetails) (string, error) {
	return l.create(now, d, false)
}

func (l *lockSys) createShared(now time.Time, d webdav.LockDetails) (string, error) {
	return l.create(now, d, true)
}

func (l *lockSys) Confirm(now time.Time, name0, name1 string, conditions ...webdav.Condition) (func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
	var held []*lockEntry
	for _, name := range []string{name0, name1} {
		if name == "" {
			continue
		}
		name = slashClean(name)
		var found *lockEntry
		for _, c := range conditions {
			e := l.locks[c.Token]
			if e != nil && !e.held && !e.unlocked && covers(e.details.Root, e.details.ZeroDepth, name) {
				found = e
				break
			}
		}
		if found == nil {
			for _, e := range held {
				e.held = false
			}
			return nil, webdav.ErrConfirmationFailed
		}
		found.held = true
		held = append(held, found)
	}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, e := range held {
			e.held = false
		}
	}, nil
}

func (l *lockSys) Refresh(now time.Time, token string, d time.Duration) (webdav.LockDetails, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
	e := l.locks[token]
	if e == nil || e.unlocked {
		return webdav.LockDetails{}, webdav.ErrNoSuchLock
	}
	if e.held {
		return webdav.LockDetails{}, webdav.ErrLocked
	}
	e.details.Duration = capTimeout(d)
	e.expires = now.Add(e.details.Duration)
	return e.details, nil
}

func (l *lockSys) Unlock(now time.Time, token string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
	e := l.locks[token]
	if e == nil || e.unlocked {
		return webdav.ErrNoSuchLock
	}
	if e.held {
		e.unlocked = true
		return nil
	}
	delete(l.locks, token)
	return nil
}

func slashClean(name string) string {
	if name == "" || name[0] != '/' {
		name = "/" + name
	}
	return path.Clean(name)
}

// lockInfo is the body of a LOCK request.
type lockInfo struct {
	XMLName   xml.Name  `xml:"DAV: lockinfo"`
	Exclusive *struct{} `xml:"DAV: lockscope>exclusive"`
	Shared    *struct{} `xml:"DAV: lockscope>shared"`
	Write     *struct{} `xml:"DAV: locktype>write"`
	Owner     struct {
		InnerXML string `xml:",innerxml"`
	} `xml:"DAV: owner"`
}

// lockTimeout reads the Timeout header, capped.
func lockTimeout(hdr string) time.Duration {
	for _, t := range strings.Split(hdr, ",") {
		t = strings.TrimSpace(t)
		if s, ok := strings.CutPrefix(t, "Second-"); ok {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 && n < 1<<31 {
				return capTimeout(time.Duration(n) * time.Second)
			}
		}
	}
	return maxLockTimeout
}

// lockShared serves a LOCK whose body asks for a shared lock; it reports
// false for every other LOCK, which x/net/webdav serves.
func (h *Handler) lockShared(w http.ResponseWriter, r *http.Request, name string) bool {
	if r.ContentLength == 0 || r.Body == nil {
		return false
	}
	b, err := io.ReadAll(r.Body)
	r.Body = io.NopCloser(strings.NewReader(string(b)))
	if err != nil {
		return false
	}
	var li lockInfo
	if xml.Unmarshal(b, &li) != nil || li.Shared == nil || li.Exclusive != nil || li.Write == nil {
		return false
	}
	depth := r.Header.Get("Depth")
	if depth != "" && depth != "0" && !strings.EqualFold(depth, "infinity") {
		http.Error(w, "Depth must be 0 or infinity", http.StatusBadRequest)
		return true
	}
	d := webdav.LockDetails{Root: name, Duration: lockTimeout(r.Header.Get("Timeout")), OwnerXML: li.Owner.InnerXML, ZeroDepth: depth == "0"}
	tok, err := h.locks.createShared(time.Now(), d)
	if errors.Is(err, errTooManyLocks) {
		http.Error(w, err.Error(), http.StatusInsufficientStorage)
		return true
	}
	if err != nil {
		http.Error(w, "locked", http.StatusLocked)
		return true
	}
	created := false
	if _, err := h.fsys.Stat(r.Context(), name); isNotExist(err) {
		f, err := h.fsys.OpenFile(r.Context(), name, 0o1|0o100|0o1000, 0o644) // O_WRONLY|O_CREATE|O_TRUNC
		if err != nil {
			h.locks.Unlock(time.Now(), tok)
			h.fail(w, r, err)
			return true
		}
		if err := f.Close(); err != nil {
			h.locks.Unlock(time.Now(), tok)
			h.fail(w, r, err)
			return true
		}
		created = true
	}
	w.Header().Set("Lock-Token", "<"+tok+">")
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	if created {
		w.WriteHeader(http.StatusCreated)
	}
	depthStr := "infinity"
	if d.ZeroDepth {
		depthStr = "0"
	}
	var owner string
	if d.OwnerXML != "" {
		owner = "<D:owner>" + d.OwnerXML + "</D:owner>"
	}
	fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?>
<D:prop xmlns:D="DAV:"><D:lockdiscovery><D:activelock>
<D:locktype><D:write/></D:locktype><D:lockscope><D:shared/></D:lockscope>
<D:depth>%s</D:depth>%s<D:timeout>Second-%d</D:timeout>
<D:locktoken><D:href>%s</D:href></D:locktoken>
<D:lockroot><D:href>%s</D:href></D:lockroot>
</D:activelock></D:lockdiscovery></D:prop>`, depthStr, owner, int(d.Duration.Seconds()), xmlEscape(tok), xmlEscape(h.prefix+name))
	return true
}

func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
