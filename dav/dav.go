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
	"slices"
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
	setShareHeaders(w.Header())
	// "/dav" is the share's root too: no redirect, WebDAV clients do not follow them.
	if r.URL.Path == h.prefix {
		r.URL.Path = h.prefix + "/"
	}
	name, ok := h.inShare(r.URL)
	if !ok {
		http.NotFound(w, r)
		return
	}
	rl, err := fs.Clean(name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	creates := r.Method == http.MethodPut || r.Method == "MKCOL" || r.Method == "LOCK"
	if status, why := h.reachable(rl, creates, r.Method != http.MethodDelete); status != 0 {
		http.Error(w, why, status)
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
		if status, err := h.checkLock(r, name); err != nil {
			http.Error(w, err.Error(), status)
			return
		}
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
			drl, err := fs.Clean(dst)
			if err != nil {
				h.fail(w, r, err)
				return
			}
			if status, why := h.reachable(drl, true, false); status != 0 {
				if status == http.StatusNotFound {
					// an internal name: one a client cannot make
					status, why = http.StatusForbidden, "the destination is a name the store keeps for itself"
				}
				http.Error(w, "destination: "+why, status)
				return
			}
			// An attached image is 423 whatever else is wrong with the
			// request (a box's COPY of an image onto itself is how a
			// fleet sees another box's lease).
			if err := h.mutable(dst); err != nil {
				h.fail(w, r, err)
				return
			}
			if why := h.overlap(name, dst); why != "" {
				if r.Method == "MOVE" && h.respelling(name, dst) {
					h.respell(w, r, name, dst)
					return
				}
				http.Error(w, r.Method+" refused: "+why, http.StatusForbidden)
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
	if u.Host != "" && u.Host != r.Host {
		return "", nil // webdav answers 502 for another server
	}
	p, ok := h.inShare(u)
	if !ok {
		return "", problem.Errorf(http.StatusForbidden, "the destination %s is not in the share %s/", u.Path, h.prefix)
	}
	return p, nil
}

// inShare returns the share path of u, false when u is not in the share:
// the prefix must end at a "/" or the path's end ("/davX" is not
// "/dav/X"), in the escaped path too ("/dav%2FX").
func (h *Handler) inShare(u *url.URL) (string, bool) {
	esc := u.EscapedPath()
	if esc != h.prefix && !strings.HasPrefix(esc, h.prefix+"/") {
		return "", false
	}
	name, ok := strings.CutPrefix(u.Path, h.prefix)
	if !ok || name != "" && name[0] != '/' {
		return "", false
	}
	return name, true
}

// errEscapes is the error os.Root gives for a path that leaves the root
// (a symlink pointing out of the store); os does not export it.
var errEscapes = func() error {
	root, err := os.OpenRoot("/")
	if err != nil {
		return errors.New("path escapes from parent")
	}
	defer root.Close()
	_, err = root.Lstat("../x")
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return errors.New("path escapes from parent")
}()

// reachable says, as a status and a message, why a cleaned store path
// cannot be served; 0 when it can. The store's own names do not exist for
// clients (every element is classified, "a/.msdav-x/b" too); a symlink
// that leads out of the store is refused by name, without os.Root's text;
// a name longer than the filesystem takes cannot be made (400) and does
// not exist (404). follow says whether a symlink at the end counts (not
// for DELETE, which removes the link itself).
func (h *Handler) reachable(rl string, creates, follow bool) (int, string) {
	if fs.Classify(rl) == fs.Internal {
		return http.StatusNotFound, "not found"
	}
	for _, el := range strings.Split(rl, "/") {
		if len(el) > nameMax {
			if creates {
				return http.StatusBadRequest, fmt.Sprintf("a name is %d bytes long; the store takes at most %d", len(el), nameMax)
			}
			return http.StatusNotFound, "not found"
		}
	}
	stat := h.store.Root().Lstat
	if follow {
		stat = h.store.Root().Stat
	}
	if _, err := stat(rl); errors.Is(err, errEscapes) {
		return http.StatusForbidden, "a symbolic link on the way leads out of the store"
	}
	return 0, ""
}

// overlap says why a MOVE or COPY from src to dst must be refused before
// anything is touched, "" when the two are apart. x/net/webdav removes an
// existing destination first (Overwrite: T) and then copies or renames:
// with the destination the source's own folder that removed the source
// and its neighbours, and a folder copied into itself recursed until the
// names grew too long. RFC 4918 9.8.5 and 9.9.4 give 403 for a source and
// destination that are the same, and Apache mod_dav answers 403 for all
// three overlaps.
//
// The paths are compared as cleaned store paths (trailing slashes, "."
// and percent-encoding are gone by then), then by the files they reach:
// on a case-insensitive part (vfat, exFAT, CIFS) "P" and "p" are one
// folder, and a symlink or hard link is another name of its target; only
// the filesystem knows, so os.SameFile on what exists decides.
func (h *Handler) overlap(src, dst string) string {
	s, err := rel(src)
	if err != nil {
		return ""
	}
	d, err := rel(dst)
	if err != nil {
		return ""
	}
	switch {
	case s == d:
		return "the source and the destination are the same"
	case s == "." || strings.HasPrefix(d, s+"/"):
		return "the destination is inside the source"
	case d == "." || strings.HasPrefix(s, d+"/"):
		return "the destination holds the source"
	}
	if why := h.foldOverlap(s, d); why != "" {
		return why
	}
	root := h.store.Root()
	sfi, err := root.Stat(s)
	if err != nil {
		return "" // nothing to lose; the method answers 404
	}
	for p := d; ; p = path.Dir(p) {
		if fi, err := root.Stat(p); err == nil && os.SameFile(fi, sfi) {
			if p == d {
				return "the destination is another name of the source"
			}
			return "the destination is inside the source (" + p + " is another name of it)"
		}
		if p == "." {
			break
		}
	}
	dfi, err := root.Stat(d)
	if err != nil {
		return ""
	}
	for p := path.Dir(s); ; p = path.Dir(p) {
		if fi, err := root.Stat(p); err == nil && os.SameFile(fi, dfi) {
			return "the destination holds the source (it is another name of " + p + ")"
		}
		if p == "." {
			break
		}
	}
	return ""
}

// respelling reports a MOVE that only changes the case of a name on a
// part that folds case ("win.iso" to "Win.iso" in Explorer): the same
// file, not an overlap to refuse. x/net/webdav would remove the
// destination first, which is the source itself.
func (h *Handler) respelling(src, dst string) bool {
	s, err := rel(src)
	if err != nil {
		return false
	}
	d, err := rel(dst)
	if err != nil || s == d || !strings.EqualFold(s, d) {
		return false
	}
	sfi, err := h.store.Root().Stat(s)
	if err != nil {
		return false
	}
	if dfi, err := h.store.Root().Stat(d); err == nil && os.SameFile(sfi, dfi) {
		return true
	}
	return h.respelled(d)
}

// respell renames src to dst, another spelling of the same name, unless
// the file is attached or locked.
func (h *Handler) respell(w http.ResponseWriter, r *http.Request, src, dst string) {
	if err := h.mutable(src); err != nil {
		h.fail(w, r, err)
		return
	}
	now := time.Now()
	tok, err := h.locks.Create(now, webdav.LockDetails{Root: src, Duration: -1})
	if err != nil {
		http.Error(w, src+" is locked", http.StatusLocked)
		return
	}
	defer h.locks.Unlock(now, tok)
	if err := h.fsys.Rename(r.Context(), src, dst); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

// foldOverlap is overlap for a part that folds case, where the kernel
// may not say two spellings are one file: FUSE's exFAT and vfat give each
// spelling an inode number of its own. The paths overlap when they do
// with case folded and each element spelled differently on the
// destination's side is another spelling of an existing entry: the part
// resolves it, yet its folder lists no entry of that exact name. On a
// case-sensitive part "A.iso" beside "a.iso" is listed, so it is left alone.
func (h *Handler) foldOverlap(s, d string) string {
	se, de := strings.Split(s, "/"), strings.Split(d, "/")
	if s == "." {
		se = nil
	}
	if d == "." {
		de = nil
	}
	n := min(len(se), len(de))
	for i := range n {
		if !strings.EqualFold(se[i], de[i]) {
			return ""
		}
	}
	for i := range n {
		if se[i] != de[i] && !h.respelled(strings.Join(de[:i+1], "/")) {
			return ""
		}
	}
	switch {
	case len(se) == len(de):
		return "the destination is another spelling of the source"
	case len(de) > len(se):
		return "the destination is inside the source (under another spelling)"
	}
	return "the destination holds the source (under another spelling)"
}

// respelled reports whether p reaches an existing entry that its folder
// lists under another name.
func (h *Handler) respelled(p string) bool {
	if _, err := h.store.Root().Lstat(p); err != nil {
		return false
	}
	d, err := h.store.Root().Open(path.Dir(p))
	if err != nil {
		return false
	}
	defer d.Close()
	base := path.Base(p)
	for {
		names, err := d.Readdirnames(1024)
		if slices.Contains(names, base) {
			return false
		}
		if err != nil {
			return true
		}
	}
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
	switch {
	case errors.Is(err, errEscapes):
		status, msg = http.StatusForbidden, "a symbolic link on the way leads out of the store"
	case status == http.StatusNotFound && isNotExist(err):
		// Not the system call and store path ("statat usb/x: no such
		// file or directory"): the client knows which URL it asked for.
		msg = "not found"
	}
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
	ctype, disp := servedType(rl)
	w.Header().Set("Content-Type", ctype)
	if disp != "" {
		w.Header().Set("Content-Disposition", disp)
	}
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
