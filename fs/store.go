// Package fs is the image store: safe client paths under one root, atomic
// uploads, the catalog of images and mounted parts, and the remount guard.
package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msdav/msdav/conf"
	"github.com/msdav/msdav/problem"
)

// Options configure a Store.
type Options struct {
	Root        string        // directory holding the images; created if missing
	Remount     bool          // keep the root's filesystem ro except while writing
	Grace       time.Duration // rw is kept this long after the last writer
	PartTimeout time.Duration // bound on stat/readdir of one mounted part
	Log         *slog.Logger
	// Publish, if set, is told of every change the store makes: kind
	// "image" with an Image (uploads as they grow) or a Removed.
	Publish func(kind string, v any)
	// Shared folders (store-relative) other boxes serve too; NFS and CIFS
	// parts are shared without being named. Box names this box in the
	// leases it writes there, which live LeaseTTL unless renewed.
	Shared   []string
	Box      string
	LeaseTTL time.Duration
	// ID tells this box's leases from other boxes' (Box is only their
	// label); empty: Box when given, else derived (boxIdentity).
	ID string

	instance string // this Open's nonce, in every lease it writes
	started  time.Time
}

// Attachments tells the store which drives hold an image, so attached images
// are never changed underneath the host. The drive manager implements it.
type Attachments interface {
	// Attached maps every attached image (store-relative) to the drives
	// holding it. An error means nobody knows: the store then refuses every
	// change to images (fails closed) rather than guess "none".
	Attached() (map[string][]int, error)
}

// ErrAttachUnknown refuses a change while the drive state cannot be read.
var ErrAttachUnknown = problem.New(503, "cannot tell which images are attached, so no image is changed")

// ErrBadName refuses a path no client may create or name: the store's own
// files anywhere in it, or (for images) a hidden or junk name.
var ErrBadName = problem.New(400, "not a usable name")

// LockedError says an operation would change an image a drive holds.
type LockedError struct {
	Path  string // the attached image, store-relative
	Drive int
	Box   string // another box sharing the folder; "" for this one
}

// HTTPStatus: 423 Locked, as WebDAV names it.
func (e *LockedError) HTTPStatus() int { return 423 }

func (e *LockedError) Error() string {
	if e.Box != "" {
		return fmt.Sprintf("%s is attached to drive %d of box %s, which shares this folder; eject it there first", e.Path, e.Drive, e.Box)
	}
	return fmt.Sprintf("%s is attached to drive %d; eject it first", e.Path, e.Drive)
}

// ErrOutside is returned for a client path that would leave the store root.
var ErrOutside = problem.New(403, "path leaves the store")

// Store is the image store rooted at one directory.
type Store struct {
	dir   string // absolute root as configured
	real  string // the same with symlinks resolved, as the mount table names it
	root  *os.Root
	opt   Options
	log   *slog.Logger
	probe *prober
	guard *guard // nil unless Options.Remount

	mu       sync.Mutex // guards the fields below
	attached Attachments
	uploads  map[string]*Upload // by store-relative final path
	pin      func()             // a person's rw hold (msdav remount rw)
	sums     sumCache
}

// Open opens (creating if missing) the store at o.Root.
func Open(o Options) (*Store, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	dir, err := filepath.Abs(o.Root)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", o.Root, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create store %s: %w", dir, err)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	// A caller without a config (tests, tools) gets the config's defaults.
	if o.PartTimeout <= 0 {
		o.PartTimeout = conf.Default().Storage.PartTimeout.Duration
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = conf.Default().Storage.LeaseTTL.Duration
	}
	o.ID, o.instance, o.started = boxIdentity(o.ID, o.Box, dir), newInstance(), time.Now()
	if o.Box == "" {
		o.Box, _ = os.Hostname()
	}
	o.Shared = slices.Clone(o.Shared)
	for i, sh := range o.Shared {
		c, err := Clean(sh)
		if err != nil || c == "." {
			return nil, fmt.Errorf("storage.shared %q: name a folder inside the store", sh)
		}
		o.Shared[i] = c
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s := &Store{dir: dir, real: real, root: r, opt: o, log: o.Log, uploads: map[string]*Upload{},
		probe: &prober{timeout: o.PartTimeout}}
	if o.Remount {
		mounts, err := ReadMounts()
		if err != nil {
			r.Close()
			return nil, err
		}
		m, _ := mountOf(mounts, real)
		if s.guard, err = newGuard(m.Point, o.Grace, o.Log); err != nil {
			r.Close()
			return nil, err
		}
		if rw, _ := s.guard.state(); rw {
			o.Log.Warn("store filesystem was left rw (crash or manual remount); repairing", "mount", m.Point)
		}
	}
	if err := s.sweep(); err != nil {
		s.log.Warn("could not remove stale upload temps", "err", err)
	}
	if s.guard != nil {
		err := s.guard.settleNow(time.Second)
		switch {
		case isBusy(err):
			// A file is open for writing: after a crash, most likely a drive
			// still attached rw, which the kernel keeps open. Serve anyway;
			// the guard goes ro once nothing writes.
			o.Log.Warn("store busy, staying rw until nothing writes (a drive attached rw?)", "mount", s.guard.mnt)
			s.guard.mu.Lock()
			s.guard.retry = 100 * time.Millisecond
			s.guard.schedule(s.guard.grace)
			s.guard.mu.Unlock()
		case err != nil:
			r.Close()
			return nil, fmt.Errorf("put store back to ro: %w", err)
		}
	}
	return s, nil
}

// sweep removes upload and move temps left by a crash or power loss: they
// were never complete, so nobody may see them. Every part is swept, each
// under the part timeout, so a dead NFS server delays Open by that much at
// most and keeps its temps until a later start.
func (s *Store) sweep() error {
	pms, err := s.partMounts()
	if err != nil {
		return err
	}
	isPart := map[string]bool{}
	for _, pm := range pms {
		isPart[pm.rel] = true
	}
	leftovers := map[string][]string{} // by part
	var errs []error
	for _, pm := range pms {
		// found is only read when the walk finished: one that timed out
		// may still be appending to it.
		var found []string
		err := s.probe.run(context.Background(), "sweep:"+pm.rel, func() {
			s.walk(pm.rel, isPart, func(p string, fi os.FileInfo) {
				if !stale(fi.Name()) {
					return
				}
				// In a folder other boxes share, a young temp may be
				// another box's upload in progress, not our leftover.
				if _, shared := s.sharedRoot(p); shared && time.Since(fi.ModTime()) < sharedTempAge {
					return
				}
				found = append(found, p)
			})
		})
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("sweep part %s: %w", pm.rel, err))
		case len(found) > 0:
			leftovers[pm.rel] = found
		}
	}
	if len(leftovers) == 0 {
		return errors.Join(errs...)
	}
	done, err := s.Write(context.Background(), "sweep stale uploads")
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	defer done()
	for part, ps := range leftovers {
		var failed []error
		err := s.probe.run(context.Background(), "sweep:"+part, func() {
			for _, p := range ps {
				s.log.Info("removing stale upload temp", "path", p)
				if err := s.root.Remove(p); err != nil {
					failed = append(failed, err)
				}
			}
		})
		if err != nil { // failed may still grow: not read
			errs = append(errs, fmt.Errorf("sweep part %s: %w", part, err))
			continue
		}
		errs = append(errs, failed...)
	}
	return errors.Join(errs...)
}

// sharedTempAge is how old an upload temp in a shared folder must be to be
// swept as a leftover: an upload in progress writes to it every second.
const sharedTempAge = 10 * time.Minute

// Close puts the store back to read-only (with remount on) and releases it.
// Call it after the server stopped taking writes.
func (s *Store) Close() error {
	var err error
	if s.guard != nil {
		err = s.guard.close(10 * time.Second)
	}
	return errors.Join(err, s.root.Close())
}

// RemountCycles counts rw remounts since Open (0 without remount).
func (s *Store) RemountCycles() int64 {
	if s.guard == nil {
		return 0
	}
	return s.guard.cycles.Load()
}

// Writable reports whether the store's filesystem is rw right now and how
// many writers hold it; without remount it is always (true, 0).
func (s *Store) Writable() (rw bool, writers int) {
	if s.guard == nil {
		return true, 0
	}
	return s.guard.state()
}

// Dir is the absolute path of the store root.
func (s *Store) Dir() string { return s.dir }

// Root is the os.Root every client path must go through.
func (s *Store) Root() *os.Root { return s.root }

// Clean turns a client path ("/a/b.iso", "a//b/", "a\\b") into a store-relative
// slash path ("a/b.iso"; "." for the root), refusing anything that would climb
// out or that no filesystem could hold.
func Clean(name string) (string, error) {
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%q: %w (NUL byte)", name, ErrOutside)
	}
	name = strings.ReplaceAll(name, "\\", "/")
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", fmt.Errorf("%q: %w", name, ErrOutside)
		}
	}
	c := path.Clean("/" + name)
	if c == "/" {
		return ".", nil
	}
	return c[1:], nil
}

// ImageName is the store path of a name given for an image: Clean's rules,
// not the root, and no part hidden, internal or junk. The one rule every
// front end (API, kvmd, Redfish, fetch, drives) asks.
func ImageName(name string) (string, error) {
	rel, err := Clean(name)
	if err != nil {
		return "", err
	}
	if rel == "." || Classify(rel) != Visible {
		return "", fmt.Errorf("%q: %w (an image is a file in the store; no part of its path may start with a dot)", name, ErrBadName)
	}
	return rel, nil
}

// Abs is the absolute host path of a store-relative path, for the kernel
// (configfs wants absolute paths). It refuses paths that leave the root,
// also through symlinks.
func (s *Store) Abs(rel string) (string, error) {
	rel, err := Clean(rel)
	if err != nil {
		return "", err
	}
	// Stat through the root proves every symlink on the way stays inside.
	if _, err := s.root.Stat(rel); err != nil {
		return "", err
	}
	return filepath.Join(s.dir, filepath.FromSlash(rel)), nil
}

// Rel maps an absolute host path back to a store-relative one.
func (s *Store) Rel(abs string) (string, bool) {
	r, err := filepath.Rel(s.dir, abs)
	if err != nil || r == ".." || strings.HasPrefix(r, "../") {
		return "", false
	}
	return filepath.ToSlash(r), true
}

// SetAttachments installs the source of truth for attached images.
func (s *Store) SetAttachments(a Attachments) {
	s.mu.Lock()
	s.attached = a
	s.mu.Unlock()
}

// Mutable reports a *LockedError if rel is, reaches or holds below it an
// image a drive or another box's lease holds, by whatever name (held.go).
func (s *Store) Mutable(rel string) error {
	rel, err := Clean(rel)
	if err != nil {
		return err
	}
	held, err := s.heldFiles(rel)
	if err != nil {
		return err
	}
	l, err := s.heldBy(rel, held)
	if l != nil {
		return l
	}
	return err
}

func (s *Store) attachedNow() (map[string][]int, error) {
	s.mu.Lock()
	a := s.attached
	s.mu.Unlock()
	if a == nil {
		return nil, nil
	}
	m, err := a.Attached()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAttachUnknown, err)
	}
	return m, nil
}

// Write marks the start of a change to the store: with remount on, the first
// writer makes the filesystem rw. Call done when the change is on disk.
// Subtrees mounted inside the store are written as they are.
func (s *Store) Write(ctx context.Context, why string) (done func(), err error) {
	if s.guard == nil {
		return func() {}, nil
	}
	return s.guard.acquire(ctx, why)
}

// MkdirAll creates the folder rel and any missing parents, as mkdir -p.
func (s *Store) MkdirAll(ctx context.Context, rel string) error {
	rel, err := Clean(rel)
	if err != nil {
		return err
	}
	if Classify(rel) == Internal {
		return fmt.Errorf("%s: %w", rel, ErrBadName)
	}
	if fi, err := s.root.Stat(rel); err == nil && fi.IsDir() {
		return nil
	}
	done, err := s.Write(ctx, "mkdir "+rel)
	if err != nil {
		return err
	}
	defer done()
	return s.root.MkdirAll(rel, 0o755)
}

// Mkdir creates the folder rel.
func (s *Store) Mkdir(ctx context.Context, rel string) error {
	rel, err := Clean(rel)
	if err != nil {
		return err
	}
	done, err := s.Write(ctx, "mkdir "+rel)
	if err != nil {
		return err
	}
	defer done()
	return s.root.Mkdir(rel, 0o755)
}

// RemoveAll removes rel and everything below it, unless an image there is attached.
func (s *Store) RemoveAll(ctx context.Context, rel string) error {
	rel, err := Clean(rel)
	if err != nil {
		return err
	}
	if rel == "." {
		return fmt.Errorf("remove the store root: %w", iofs.ErrPermission)
	}
	if err := s.Mutable(rel); err != nil {
		return err
	}
	done, err := s.Write(ctx, "remove "+rel)
	if err != nil {
		return err
	}
	defer done()
	gone := s.imagesBelow(rel)
	if err := s.removeHidden(rel); err != nil {
		return err
	}
	s.dropSum(rel)
	s.publishRemoved(gone)
	return nil
}

// removeFile is os.Root.Remove; tests replace it to make it fail.
var removeFile = (*os.Root).Remove

// removeHidden removes rel, a file by way of unlinkHidden.
func (s *Store) removeHidden(rel string) error {
	fi, err := s.root.Lstat(rel)
	if err != nil || !fi.Mode().IsRegular() {
		return s.root.RemoveAll(rel)
	}
	return s.unlinkHidden(rel)
}

// unlinkHidden unlinks the file rel after renaming it to a hidden name
// beside it. On a CIFS share, unlinking a file a client holds open (an SMB
// reader on a PC, the gadget of a box that died with it attached, the
// cifs client's own deferred close of a file it just wrote) only marks it
// delete-pending: the name stays, listed on every box, until that handle
// closes. Renamed first, the name is gone at once and the bytes go at the
// last close, as on a local disk. A crash between the two steps leaves a
// hidden temp that the sweep removes (stale).
func (s *Store) unlinkHidden(rel string) error {
	hidden := hiddenBeside(rel, gonePrefix)
	if err := s.root.Rename(rel, hidden); err != nil {
		// A name too long for the prefix, say: plain unlink then.
		return s.root.Remove(rel)
	}
	if err := removeFile(s.root, hidden); err != nil {
		if berr := s.root.Rename(hidden, rel); berr != nil {
			return fmt.Errorf("remove %s: %w (and it is left hidden as %s: %v)", rel, err, hidden, berr)
		}
		return fmt.Errorf("remove %s: %w", rel, err)
	}
	return nil
}

// Rename moves oldRel to newRel, unless either holds an attached image.
func (s *Store) Rename(ctx context.Context, oldRel, newRel string) error {
	oldRel, err := Clean(oldRel)
	if err != nil {
		return err
	}
	newRel, err = Clean(newRel)
	if err != nil {
		return err
	}
	if err := s.Mutable(oldRel); err != nil {
		return err
	}
	if err := s.Mutable(newRel); err != nil {
		return err
	}
	done, err := s.Write(ctx, "rename "+oldRel)
	if err != nil {
		return err
	}
	defer done()
	moved := s.imagesBelow(oldRel)
	replaced := s.imagesBelow(newRel)
	err = s.root.Rename(oldRel, newRel)
	if isCrossDevice(err) {
		err = s.moveAcross(oldRel, newRel)
	}
	if err != nil {
		return err
	}
	s.moveSum(oldRel, newRel)
	s.publishRemoved(replaced)
	s.publishMoved(moved, oldRel, newRel)
	return nil
}

// Upload is a file being written atomically: it appears under its final name
// only at Commit, when every byte is on disk.
type Upload struct {
	s        *Store
	rel, tmp string
	f        *os.File
	done     func()
	Expected int64 // -1 when unknown
	received atomic.Int64

	part      string       // for its catalog entry
	lastEvent atomic.Int64 // unix ns of the last progress event
	hash      hashing
	kind      string // of the temp file, read at Commit
}

// Create starts an atomic write of rel. expected is the announced size, -1 if unknown.
func (s *Store) Create(ctx context.Context, rel string, expected int64) (*Upload, error) {
	return s.create(ctx, rel, expected, false)
}

// CreateInternal is Create for a file a package keeps for itself beside an
// image (a property sidecar): its name must be one of the store's own.
func (s *Store) CreateInternal(ctx context.Context, rel string, expected int64) (*Upload, error) {
	return s.create(ctx, rel, expected, true)
}

func (s *Store) create(ctx context.Context, rel string, expected int64, internal bool) (*Upload, error) {
	rel, err := Clean(rel)
	if err != nil {
		return nil, err
	}
	if rel == "." || (Classify(rel) == Internal) != internal || internal && !strings.HasPrefix(path.Base(rel), tempPrefix) {
		return nil, fmt.Errorf("%s: %w", rel, ErrBadName)
	}
	if err := s.Mutable(rel); err != nil {
		return nil, err
	}
	done, err := s.Write(ctx, "upload "+rel)
	if err != nil {
		return nil, err
	}
	tmp := tempBeside(rel)
	f, err := s.root.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		done()
		// The client's name, not the temp's: os.IsNotExist (x/net/webdav's
		// 409 for a missing folder) still sees the errno.
		return nil, &os.PathError{Op: "upload", Path: rel, Err: plainErr(err)}
	}
	u := &Upload{s: s, rel: rel, tmp: tmp, f: f, done: done, Expected: expected, hash: newHashing()}
	if s.opt.Publish != nil {
		u.part = s.partOfRel(rel)
		u.lastEvent.Store(time.Now().UnixNano()) // the start is an event of its own
	}
	s.mu.Lock()
	s.uploads[rel] = u
	s.mu.Unlock()
	if Classify(rel) == Visible {
		s.publish("image", u.entry(u.part))
	}
	return u, nil
}

// Uploading returns the upload in progress to rel, if any.
func (s *Store) Uploading(rel string) (*Upload, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.uploads[rel]
	return u, ok
}

// Write appends to the temp file.
func (u *Upload) Write(p []byte) (int, error) {
	n, err := u.f.Write(p)
	u.hash.h.Write(p[:n])
	u.received.Add(int64(n))
	u.progress()
	return n, err
}

// copyBufs holds the buffers uploads stream through. A socket read returns
// what has arrived, 64-300 KiB on loopback; writing that straight out made
// 3,700 writes per GiB. Filling the buffer first makes 1,024, and on ext4
// each write has a cost of its own: dd of 1 GiB took 0.30-0.49 s with
// 256 KiB writes and 0.25 s with 1 MiB ones.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// ReadFrom copies r into the temp file until r says io.EOF; any other error
// (a client that hung up mid-body) is returned, so the caller aborts. A
// failure to write is a *WriteError: the store's fault, not the client's.
//
// The sha256 is computed on a goroutine of its own, one buffer behind the
// reads and writes, so it costs no time on the upload's path while a
// second core is free.
func (u *Upload) ReadFrom(r io.Reader) (int64, error) {
	const nbuf = 2
	free := make(chan *[]byte, nbuf)
	for range nbuf {
		free <- copyBufs.Get().(*[]byte)
	}
	full := make(chan []byte, nbuf)
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for b := range full {
			u.hash.h.Write(b)
			free <- &b
		}
	}()
	defer func() {
		close(full)
		<-hashed
		for range nbuf {
			b := <-free
			*b = (*b)[:cap(*b)]
			copyBufs.Put(b)
		}
	}()
	var total int64
	for {
		bp := <-free
		buf := (*bp)[:cap(*bp)]
		n, rerr := fill(r, buf)
		if n > 0 {
			w, werr := u.f.Write(buf[:n])
			u.received.Add(int64(w))
			u.progress()
			total += int64(w)
			full <- buf[:w]
			if werr != nil {
				return total, &WriteError{Rel: u.rel, Err: u.s.explainIO(u.rel, werr)}
			}
		} else {
			free <- bp
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// fill reads into buf until it is full or r ends. Unlike io.ReadFull it
// passes r's own errors through untouched: net/http reports a truncated
// body as io.ErrUnexpectedEOF, which must not read as a clean end.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// CopyFrom copies the rest of src into the temp file inside the kernel:
// os.File.ReadFrom uses copy_file_range, a reflink on btrfs and XFS and no
// trip through user space elsewhere, and falls back to read/write.
func (u *Upload) CopyFrom(src *os.File) (int64, error) {
	u.hash.off = true // the bytes never pass through here
	n, err := u.f.ReadFrom(src)
	u.received.Add(n)
	u.progress()
	return n, err
}

// Received is how many bytes arrived so far.
func (u *Upload) Received() int64 { return u.received.Load() }

// File is the temp file, for callers that need *os.File (seek, stat).
// Writes through it are not hashed: the upload then has no checksum.
func (u *Upload) File() *os.File {
	u.hash.off = true
	return u.f
}

// Commit makes the upload durable and visible under its final name.
func (u *Upload) Commit() error {
	defer u.finish()
	if err := u.f.Sync(); err != nil {
		u.f.Close()
		u.s.root.Remove(u.tmp)
		return fmt.Errorf("upload %s: sync: %w", u.rel, u.s.explainIO(u.rel, err))
	}
	fi, statErr := u.f.Stat()
	if statErr == nil {
		u.detectKind(fi)
	}
	if err := u.f.Close(); err != nil {
		u.s.root.Remove(u.tmp)
		return fmt.Errorf("upload %s: close: %w", u.rel, u.s.explainIO(u.rel, err))
	}
	if err := u.s.Mutable(u.rel); err != nil {
		u.s.root.Remove(u.tmp)
		return err
	}
	if err := u.s.root.Rename(u.tmp, u.rel); err != nil {
		u.s.root.Remove(u.tmp)
		return fmt.Errorf("upload %s: rename: %w", u.rel, plainErr(err))
	}
	if statErr == nil {
		u.recordSum(fi)
	}
	if err := u.s.syncDir(path.Dir(u.rel)); err != nil {
		return err
	}
	if im, ok := u.s.imageEntry(u.rel); ok && u.s.opt.Publish != nil {
		u.s.publish("image", im)
	}
	return nil
}

// Abort drops the upload and its temp file.
func (u *Upload) Abort() error {
	defer u.finish()
	u.f.Close()
	err := u.s.root.Remove(u.tmp)
	if u.s.opt.Publish != nil && Classify(u.rel) == Visible {
		// What was there before the upload is still there.
		if im, ok := u.s.imageEntry(u.rel); ok {
			u.s.publish("image", im)
		} else {
			u.s.publishRemoved([]string{u.rel})
		}
	}
	return err
}

func (u *Upload) finish() {
	u.s.mu.Lock()
	if u.s.uploads[u.rel] == u {
		delete(u.s.uploads, u.rel)
	}
	u.s.mu.Unlock()
	u.done()
}

func (s *Store) syncDir(rel string) error {
	d, err := s.root.Open(rel)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", rel, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", rel, err)
	}
	return nil
}

// Image is one entry of the catalog.
type Image struct {
	Path     string    `json:"path"` // store-relative
	Size     int64     `json:"size"`
	ModTime  time.Time `json:"mtime"`
	Complete bool      `json:"complete"`
	SHA256   string    `json:"sha256,omitempty"`   // hex, once known (every upload computes it)
	Kind     string    `json:"kind,omitempty"`     // imagekind: iso9660, udf, hybrid, disk, fat, unknown
	Received int64     `json:"received,omitempty"` // bytes so far, while uploading
	Expected int64     `json:"expected,omitempty"` // announced size, while uploading
	Attached []int     `json:"attached"`
	Part     string    `json:"part"` // mount point of the part it lives on, store-relative
}

// Part is a mounted subtree of the store (or the root's own filesystem, ".").
type Part struct {
	Path      string `json:"path"`
	FSType    string `json:"fstype"`
	Size      uint64 `json:"size"`
	Free      uint64 `json:"free"`
	Writable  bool   `json:"writable"`
	Reason    string `json:"reason,omitempty"` // why not writable
	Available bool   `json:"available"`        // false: did not answer within the part timeout
}
