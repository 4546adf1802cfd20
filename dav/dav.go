// Package dav serves the image store over WebDAV: x/net/webdav wrapped around
// fs.Store, with atomic uploads, protected attached images and dead properties.
package dav

import (
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/problem"
	"golang.org/x/net/webdav"
)

// Options configure the WebDAV handler.
type Options struct {
	Prefix string // URL prefix the share lives under, "/dav"
	Log    *slog.Logger
}

// Handler is the share. GET/HEAD and PUT are served here (sendfile for
// downloads, atomic uploads that know a short body from a whole one); the
// rest goes to x/net/webdav over the store's FileSystem.
type Handler struct {
	store  *fs.Store
	prefix string
	log    *slog.Logger
	fsys   *storeFS
	locks  *lockSys
	wd     *webdav.Handler
}

// New returns the WebDAV handler for store.
func New(store *fs.Store, o Options) *Handler {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	prefix := strings.TrimSuffix(o.Prefix, "/")
	fsys := &storeFS{s: store, props: &propStore{s: store}}
	h := &Handler{store: store, prefix: prefix, log: o.Log, fsys: fsys, locks: newLockSys()}
	h.wd = &webdav.Handler{
		Prefix:     prefix,
		FileSystem: fsys,
		LockSystem: h.locks,
		Logger: func(r *http.Request, err error) {
			if err != nil && !isNotExist(err) {
				o.Log.Debug("webdav", "method", r.Method, "path", r.URL.Path, "err", err)
			}
		},
	}
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// "/dav" is the share's root too: no redirect, WebDAV clients do not follow them.
	if r.URL.Path == h.prefix {
		r.URL.Path = h.prefix + "/"
	}
	name, ok := strings.CutPrefix(r.URL.Path, h.prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if _, err := fs.Clean(name); err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("MS-Author-Via", "DAV")
	switch r.Method {
	case "PROPFIND", "PROPPATCH", "LOCK":
		if status, err := checkXMLBody(r); err != nil {
			http.Error(w, err.Error(), status)
			return
		}
	}
	switch r.Method {
	case "LOCK":
		// Lock timeouts are capped; say so in the request so the answer
		// tells the client the timeout it really got.
		r.Header.Set("Timeout", fmt.Sprintf("Second-%d", int(lockTimeout(r.Header.Get("Timeout")).Seconds())))
		if h.lockShared(w, r, name) {
			return
		}
	case http.MethodGet, http.MethodHead:
		h.get(w, r, name)
		return
	case http.MethodPut:
		h.put(w, r, name)
		return
	case "PROPFIND":
		switch strings.ToLower(strings.TrimSpace(r.Header.Get("Depth"))) {
		case "infinity":
			w.Header().Set("Content-Type", "application/xml; charset=utf-8")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?>`+"\n"+`<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>`)
			return
		case "":
			// RFC 4918 reads a missing Depth as infinity; we bound it to one level.
			r.Header.Set("Depth", "1")
		}
		if h.propfind(w, r, name) {
			return
		}
	case http.MethodDelete:
		if err := h.mutable(name); err != nil {
			h.fail(w, r, err)
			return
		}
	case "MOVE", "COPY":
		dst, err := h.destination(r)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if dst != "" {
			if err := h.mutable(dst); err != nil {
				h.fail(w, r, err)
				return
			}
		}
		if r.Method == "MOVE" {
			if err := h.mutable(name); err != nil {
				h.fail(w, r, err)
				return
			}
			// x/net/webdav answers a MOVE of nothing with the rename's 403;
			// Finder moves a file's ._ companion whether or not it exists,
			// and a 403 there fails the whole rename.
			if _, err := h.fsys.Stat(r.Context(), name); err != nil {
				h.fail(w, r, err)
				return
			}
			// RFC 4918 10.6: no Overwrite header means T.
			if r.Header.Get("Overwrite") == "" {
				r.Header.Set("Overwrite", "T")
			}
		}
	}
	h.wd.ServeHTTP(w, r)
}

// destination returns the store path named by the Destination header, ""
// when absent (webdav answers that itself).
func (h *Handler) destination(r *http.Request) (string, error) {
	hdr := r.Header.Get("Destination")
	if hdr == "" {
		return "", nil
	}
	u, err := url.Parse(hdr)
	if err != nil {
		return "", nil // webdav answers 400
	}
	p, ok := strings.CutPrefix(u.Path, h.prefix)
	if !ok {
		return "", nil // webdav answers 502 for another server
	}
	return p, nil
}

func (h *Handler) mutable(name string) error {
	r, err := rel(name)
	if err != nil {
		return err
	}
	return h.store.Mutable(r)
}

// fail answers an error with the status it means, from the table the API
// shares.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := problem.Of(err)
	if status >= 500 {
		h.log.Error("webdav", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	http.Error(w, msg, status)
}

// etag is the entity tag of a file version, the same for GET and PROPFIND.
func etag(fi os.FileInfo) string {
	return fmt.Sprintf(`"%x%x"`, fi.ModTime().UnixNano(), fi.Size())
}

// get serves a file straight from its *os.File so net/http can sendfile it,
// or a small HTML index of a folder for browsers.
func (h *Handler) get(w http.ResponseWriter, r *http.Request, name string) {
	rl, err := rel(name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	f, err := h.store.Root().Open(rl)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if fi.IsDir() {
		h.index(w, r, f, name)
		return
	}
	w.Header().Set("ETag", etag(fi))
	w.Header().Set("Content-Type", contentType(rl))
	if r.TLS != nil {
		// No sendfile through TLS: every byte is read, sealed and written
		// by us. net/http would read the file 32 KiB at a time.
		http.ServeContent(tlsCopy{w}, r, fi.Name(), fi.ModTime(), f)
		return
	}
	http.ServeContent(sendfileChunks{w}, r, fi.Name(), fi.ModTime(), f)
}

// tlsReadBuf is how much of a file one read takes for a TLS download: one
// read per 16 TLS records instead of one per two.
const tlsReadBuf = 256 << 10

var tlsBufs = sync.Pool{New: func() any { b := make([]byte, tlsReadBuf); return &b }}

// tlsCopy copies a download through TLS in tlsReadBuf reads.
type tlsCopy struct{ http.ResponseWriter }

func (c tlsCopy) ReadFrom(r io.Reader) (int64, error) {
	bp := tlsBufs.Get().(*[]byte)
	defer tlsBufs.Put(bp)
	return io.CopyBuffer(struct{ io.Writer }{c.ResponseWriter}, struct{ io.Reader }{r}, *bp)
}

// sendfileChunk is how much of a file one sendfile call sends, as nginx's
// sendfile_max_chunk (2m). Go hands the whole body to one call, which
// measured 3-7 % more CPU per GiB on loopback than 2 MiB calls (Go client,
// alternated runs of four 1 GiB GETs).
const sendfileChunk = 2 << 20

// sendfileChunks splits the io.CopyN that http.ServeContent ends with into
// sendfileChunk pieces, each still a sendfile of the file.
type sendfileChunks struct{ http.ResponseWriter }

func (c sendfileChunks) ReadFrom(r io.Reader) (int64, error) {
	rf, ok := c.ResponseWriter.(io.ReaderFrom)
	lr, limited := r.(*io.LimitedReader)
	if !ok || !limited {
		return io.Copy(struct{ io.Writer }{c.ResponseWriter}, r)
	}
	var total int64
	for lr.N > 0 {
		n, err := rf.ReadFrom(&io.LimitedReader{R: lr.R, N: min(lr.N, sendfileChunk)})
		lr.N -= n
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
	return total, nil
}

func (h *Handler) index(w http.ResponseWriter, r *http.Request, d *os.File, name string) {
	fis, err := d.Readdir(-1)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	sort.Slice(fis, func(i, j int) bool { return fis[i].Name() < fis[j].Name() })
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if r.Method == http.MethodHead {
		return
	}
	base := h.prefix + path.Clean("/"+name)
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	fmt.Fprintf(w, "<!doctype html><title>%s</title><h1>%s</h1><ul>\n", html.EscapeString(base), html.EscapeString(base))
	for _, fi := range fis {
		if fs.Classify(fi.Name()) == fs.Internal {
			continue
		}
		n := fi.Name()
		if fi.IsDir() {
			n += "/"
		}
		fmt.Fprintf(w, "<li><a href=\"%s\">%s</a> %d</li>\n", html.EscapeString((&url.URL{Path: base + n}).EscapedPath()), html.EscapeString(n), fi.Size())
	}
	io.WriteString(w, "</ul>\n")
}

// put stores the body atomically: it becomes visible under its name only
// when every announced byte arrived and is on disk.
func (h *Handler) put(w http.ResponseWriter, r *http.Request, name string) {
	rl, err := rel(name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if rl == "." || strings.HasSuffix(name, "/") {
		http.Error(w, "PUT needs a file name, not a folder", http.StatusMethodNotAllowed)
		return
	}
	// Every refusal comes before the body is read, so a client that sent
	// Expect: 100-continue never sends it.
	if err := h.store.Mutable(rl); err != nil {
		h.fail(w, r, err)
		return
	}
	old, statErr := h.store.Root().Stat(rl)
	existed := statErr == nil
	cur := ""
	if existed {
		cur = etag(old)
	}
	release, status, err := h.confirmLocks(r, name, cur)
	if err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	defer release()
	if existed && old.IsDir() {
		http.Error(w, "a folder has that name", http.StatusMethodNotAllowed)
		return
	}
	if parent, err := h.store.Root().Stat(path.Dir(rl)); err != nil || !parent.IsDir() {
		http.Error(w, "the parent folder does not exist", http.StatusConflict)
		return
	}
	if !preconditionsHold(r, old, existed) {
		http.Error(w, "precondition failed", http.StatusPreconditionFailed)
		return
	}
	// The store's one upload pipeline: 507 before the body, the
	// short-body rule, the store's failures told from the client's.
	if _, err := h.store.Receive(r.Context(), rl, r.Body, announced(r), fs.ReceiveOptions{}); err != nil {
		var re *fs.ReceiveError
		if !errors.As(err, &re) {
			h.fail(w, r, err)
			return
		}
		if re.Status >= 500 {
			h.log.Error("webdav", "method", r.Method, "path", r.URL.Path, "status", re.Status, "err", re.Err)
		}
		http.Error(w, re.Msg, re.Status)
		return
	}
	// RFC 4918 9.7.1: a PUT replaces the content, not the dead properties.
	// Windows sets Win32CreationTime before the content arrives and never
	// again; only a sidecar left by a file that is gone is stale.
	if !existed {
		h.fsys.props.remove(r.Context(), rl)
	}
	if fi, err := h.store.Root().Stat(rl); err == nil {
		w.Header().Set("ETag", etag(fi))
	}
	if existed {
		w.WriteHeader(http.StatusNoContent)
	} else {
		w.WriteHeader(http.StatusCreated)
	}
}

// announced is the size a PUT's body will have, -1 when unknown. macOS
// Finder sends its bodies chunked, with the size only in
// X-Expected-Entity-Length; it counts like Content-Length for the early
// 507, the upload's progress, and the rule that a short body stores nothing.
func announced(r *http.Request) int64 {
	return fs.Announced(r.ContentLength, r.Header.Get("X-Expected-Entity-Length"))
}

// preconditionsHold applies If-Match and If-None-Match (RFC 9110 13.1) to a PUT.
func preconditionsHold(r *http.Request, old os.FileInfo, existed bool) bool {
	cur := ""
	if existed {
		cur = etag(old)
	}
	if im := r.Header.Get("If-Match"); im != "" {
		if !existed || !etagListHas(im, cur) {
			return false
		}
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		if existed && etagListHas(inm, cur) {
			return false
		}
	}
	return true
}

func etagListHas(list, cur string) bool {
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == cur {
			return true
		}
	}
	return false
}

// confirmLocks evaluates the If header (RFC 4918 10.4) for a PUT, the way
// x/net/webdav does for the methods it serves, etags included: the header
// holds when one of its lists holds, and a locked resource also needs one of
// its lock tokens in that list.
func (h *Handler) confirmLocks(r *http.Request, name string, cur string) (release func(), status int, err error) {
	now := time.Now()
	tempLock := func() (func(), int, error) {
		// The resource must not be locked by anyone: a temporary zero-depth
		// lock conflicts with any lock held on it or above it.
		tok, err := h.locks.Create(now, webdav.LockDetails{Root: name, Duration: -1, ZeroDepth: true})
		if err != nil {
			return nil, http.StatusLocked, fmt.Errorf("%s is locked: send its lock token in an If header", name)
		}
		return func() { h.locks.Unlock(now, tok) }, 0, nil
	}
	hdr := r.Header.Get("If")
	if hdr == "" {
		return tempLock()
	}
	lists, ok := parseIf(hdr)
	if !ok {
		return nil, http.StatusBadRequest, errors.New("malformed If header")
	}
	for _, l := range lists {
		holds := true
		var token string
		for _, c := range l {
			var v bool
			if c.etag != "" {
				v = c.etag == cur
			} else if rel, err := h.locks.Confirm(now, name, "", webdav.Condition{Token: c.token}); err == nil {
				rel()
				v = true
			}
			if c.not {
				v = !v
			}
			if !v {
				holds = false
				break
			}
			if c.token != "" && !c.not {
				token = c.token
			}
		}
		if !holds {
			continue
		}
		if token == "" {
			return tempLock()
		}
		release, err := h.locks.Confirm(now, name, "", webdav.Condition{Token: token})
		if err != nil {
			return nil, http.StatusLocked, err
		}
		return release, 0, nil
	}
	return nil, http.StatusPreconditionFailed, errors.New("the If header's conditions do not hold")
}

type ifCond struct {
	not         bool
	token, etag string
}

// parseIf reads the lists of an If header; resource tags (tagged lists) are
// accepted and apply to the request URL, which is all a PUT can name.
func parseIf(hdr string) ([][]ifCond, bool) {
	var lists [][]ifCond
	s := strings.TrimSpace(hdr)
	for s != "" {
		switch s[0] {
		case '<': // resource tag
			j := strings.IndexByte(s, '>')
			if j < 0 {
				return nil, false
			}
			s = strings.TrimSpace(s[j+1:])
		case '(':
			j := strings.IndexByte(s, ')')
			if j < 0 {
				return nil, false
			}
			l, ok := parseIfList(s[1:j])
			if !ok {
				return nil, false
			}
			lists = append(lists, l)
			s = strings.TrimSpace(s[j+1:])
		default:
			return nil, false
		}
	}
	return lists, len(lists) > 0
}

func parseIfList(s string) ([]ifCond, bool) {
	var out []ifCond
	s = strings.TrimSpace(s)
	for s != "" {
		var c ifCond
		if len(s) >= 3 && strings.EqualFold(s[:3], "not") {
			c.not = true
			s = strings.TrimSpace(s[3:])
		}
		if s == "" {
			return nil, false
		}
		switch s[0] {
		case '<':
			j := strings.IndexByte(s, '>')
			if j < 0 {
				return nil, false
			}
			c.token = s[1:j]
			s = s[j+1:]
		case '[':
			j := strings.IndexByte(s, ']')
			if j < 0 {
				return nil, false
			}
			c.etag = strings.TrimPrefix(s[1:j], "W/")
			s = s[j+1:]
		default:
			return nil, false
		}
		out = append(out, c)
		s = strings.TrimSpace(s)
	}
	return out, len(out) > 0
}
