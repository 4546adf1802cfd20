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
	"strings"
	"sync"
	"time"
)

// Options configure a Store.
type Options struct {
	Root        string        // directory holding the images; created if missing
	Remount     bool          // keep the root's filesystem ro except while writing
	Grace       time.Duration // rw is kept this long after the last writer
	PartTimeout time.Duration // bound on stat/readdir of one mounted part
	Log         *slog.Logger
}

// Attachments tells the store which drives hold an image, so attached images
// are never changed underneath the host. The gadget side implements it.
type Attachments interface {
	// AttachedTo returns the drive indexes that hold the store-relative path rel.
	AttachedTo(rel string) []int
}

// LockedError says an operation would change an image a drive holds.
type LockedError struct {
	Path  string // the attached image, store-relative
	Drive int
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%s is attached to drive %d; eject it first", e.Path, e.Drive)
}

// ErrOutside is returned for a client path that would leave the store root.
var ErrOutside = errors.New("path leaves the store")

// Store is the image store rooted at one directory.
type Store struct {
	dir  string
	root *os.Root
	opt  Options
	log  *slog.Logger

	mu       sync.Mutex
	attached Attachments
	uploads  map[string]*Upload // by store-relative final path
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
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	return &Store{dir: dir, root: r, opt: o, log: o.Log, uploads: map[string]*Upload{}}, nil
}

// Close releases the store.
func (s *Store) Close() error { return s.root.Close() }

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

// Mutable reports a *LockedError if rel, or any image below it, is attached.
func (s *Store) Mutable(rel string) error {
	s.mu.Lock()
	a := s.attached
	s.mu.Unlock()
	if a == nil {
		return nil
	}
	rel, err := Clean(rel)
	if err != nil {
		return err
	}
	if d := a.AttachedTo(rel); len(d) > 0 {
		return &LockedError{Path: rel, Drive: d[0]}
	}
	// A folder is locked by what it holds.
	var lerr error
	_ = iofs.WalkDir(s.root.FS(), rel, func(p string, de iofs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return nil
		}
		if d := a.AttachedTo(p); len(d) > 0 {
			lerr = &LockedError{Path: p, Drive: d[0]}
			return iofs.SkipAll
		}
		return nil
	})
	return lerr
}

// Write marks the start of a change to the store: with remount on, the first
// writer makes the filesystem rw. Call done when the change is on disk.
func (s *Store) Write(ctx context.Context, why string) (done func(), err error) {
	// TODO(fs): remount guard.
	return func() {}, nil
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
	return s.root.RemoveAll(rel)
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
	return s.root.Rename(oldRel, newRel)
}

// Upload is a file being written atomically: it appears under its final name
// only at Commit, when every byte is on disk.
type Upload struct {
	s        *Store
	rel, tmp string
	f        *os.File
	done     func()
	Expected int64 // -1 when unknown
	mu       sync.Mutex
	received int64
}

// Create starts an atomic write of rel. expected is the announced size, -1 if unknown.
func (s *Store) Create(ctx context.Context, rel string, expected int64) (*Upload, error) {
	rel, err := Clean(rel)
	if err != nil {
		return nil, err
	}
	if err := s.Mutable(rel); err != nil {
		return nil, err
	}
	done, err := s.Write(ctx, "upload "+rel)
	if err != nil {
		return nil, err
	}
	dir, base := path.Split(rel)
	tmp := path.Join(dir, fmt.Sprintf(".msdav-upload-%d-%s", time.Now().UnixNano(), base))
	f, err := s.root.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		done()
		return nil, err
	}
	u := &Upload{s: s, rel: rel, tmp: tmp, f: f, done: done, Expected: expected}
	s.mu.Lock()
	s.uploads[rel] = u
	s.mu.Unlock()
	return u, nil
}

// Write appends to the temp file.
func (u *Upload) Write(p []byte) (int, error) {
	n, err := u.f.Write(p)
	u.mu.Lock()
	u.received += int64(n)
	u.mu.Unlock()
	return n, err
}

// ReadFrom copies r into the temp file, keeping the kernel's fast paths.
func (u *Upload) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{u}, r)
}

// Received is how many bytes arrived so far.
func (u *Upload) Received() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.received
}

// File is the temp file, for callers that need *os.File (seek, stat).
func (u *Upload) File() *os.File { return u.f }

// Commit makes the upload durable and visible under its final name.
func (u *Upload) Commit() error {
	defer u.finish()
	if err := u.f.Sync(); err != nil {
		u.f.Close()
		u.s.root.Remove(u.tmp)
		return fmt.Errorf("upload %s: sync: %w", u.rel, err)
	}
	if err := u.f.Close(); err != nil {
		u.s.root.Remove(u.tmp)
		return fmt.Errorf("upload %s: close: %w", u.rel, err)
	}
	if err := u.s.Mutable(u.rel); err != nil {
		u.s.root.Remove(u.tmp)
		return err
	}
	if err := u.s.root.Rename(u.tmp, u.rel); err != nil {
		u.s.root.Remove(u.tmp)
		return fmt.Errorf("upload %s: rename: %w", u.rel, err)
	}
	return u.s.syncDir(path.Dir(u.rel))
}

// Abort drops the upload and its temp file.
func (u *Upload) Abort() error {
	defer u.finish()
	u.f.Close()
	return u.s.root.Remove(u.tmp)
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
