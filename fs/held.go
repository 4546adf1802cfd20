package fs

import (
	"context"
	"fmt"
	iofs "io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
)

// An attached or leased image is the file itself, not one spelling of it:
// the same file is reached through a case alias on a part that folds case
// (vfat, exFAT, CIFS), a symlink or a hard link. Every route asks Mutable,
// which matches what a request names against the held files by identity
// (device and inode) and by name as the folder listings spell it.

// heldFile is one file a drive of this box or another box's lease holds.
type heldFile struct {
	names []string // store-relative: as the drive or lease names it, and resolved
	id    fileID   // zero when it cannot be stat'ed in time
	lock  *LockedError
}

// heldFiles lists what drives and other boxes' leases hold, for a change
// to rel. An error means the store cannot tell (it fails closed).
func (s *Store) heldFiles(rel string) ([]heldFile, error) {
	att, err := s.attachedNow()
	if err != nil {
		return nil, err
	}
	pms, _ := s.partMounts() // read once: the mount table is most of the cost
	leased, err := s.leasedBy(rel, pms)
	if err != nil {
		return nil, err
	}
	if len(att) == 0 && len(leased) == 0 {
		return nil, nil
	}
	isPart := map[string]bool{}
	for _, pm := range pms {
		isPart[pm.rel] = true
	}
	var out []heldFile
	for _, img := range slices.Sorted(maps.Keys(att)) { // the same drive named every time
		if drives := att[img]; len(drives) > 0 {
			out = append(out, s.heldFile(img, partOf(img, isPart), &LockedError{Path: img, Drive: drives[0]}))
		}
	}
	for _, l := range leased {
		out = append(out, s.heldFile(l.Path, partOf(l.Path, isPart), l))
	}
	return out, nil
}

// heldFile stats img, bounded by the part timeout: a held image on a dead
// library is matched by its names only.
func (s *Store) heldFile(img, part string, lock *LockedError) heldFile {
	h := heldFile{names: []string{img}, lock: lock}
	var id fileID
	var resolved string
	// id and resolved are only read when the call finished in time.
	err := s.probe.run(context.Background(), "held:"+part, func() {
		if fi, err := s.root.Stat(img); err == nil {
			id = idOf(fi)
		}
		if real, err := filepath.EvalSymlinks(filepath.Join(s.dir, filepath.FromSlash(img))); err == nil {
			if r, ok := s.relReal(real); ok && r != img {
				resolved = r
			}
		}
	})
	if err == nil {
		h.id = id
		if resolved != "" {
			h.names = append(h.names, resolved)
		}
	}
	return h
}

// relReal maps a host path with symlinks resolved back into the store.
func (s *Store) relReal(abs string) (string, bool) {
	r, err := filepath.Rel(s.real, abs)
	if err != nil || r == ".." || strings.HasPrefix(r, "../") {
		return "", false
	}
	return filepath.ToSlash(r), true
}

// heldBy reports the lock on a held file that rel is, reaches, or holds
// below it; nil when none. An error says it cannot tell.
func (s *Store) heldBy(rel string, held []heldFile) (*LockedError, error) {
	if len(held) == 0 {
		return nil, nil
	}
	if rel == "." {
		return held[0].lock, nil
	}
	for _, h := range held {
		for _, n := range h.names {
			if s.sameOrBelow(n, rel) {
				return h.lock, nil
			}
		}
	}
	ids := map[fileID]*LockedError{}
	for _, h := range held {
		if h.id != (fileID{}) {
			ids[h.id] = h.lock
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	// Bounded like every look into a part: a folder that reaches a dead
	// NFS server cannot be vouched for, so it is refused (fails closed).
	var found *LockedError
	var stop atomic.Bool
	// Keyed by rel itself: a hung walk marks that folder (or the part
	// mounted there), not the part holding it, as not answering.
	err := s.probe.run(context.Background(), "held:"+rel, func() {
		s.reach(rel, func(id fileID) bool {
			if l := ids[id]; l != nil {
				found = l
			}
			return found != nil || stop.Load()
		})
	})
	if err != nil {
		stop.Store(true)
		return nil, fmt.Errorf("%w: %s did not answer in time to check it holds no attached image: %v", ErrAttachUnknown, rel, err)
	}
	return found, nil
}

// sameOrBelow reports whether the path p is dir or below it, also when
// the two are spelled in different case on a part that folds case.
func (s *Store) sameOrBelow(p, dir string) bool {
	if under("/"+p, "/"+dir) {
		return true
	}
	lp, ld := strings.ToLower(p), strings.ToLower(dir)
	if !under("/"+lp, "/"+ld) {
		return false
	}
	// Same letters, other case: one entry only if the listings say so.
	n := strings.Count(dir, "/") + 1
	head := strings.Join(strings.SplitN(p, "/", n+1)[:n], "/")
	return s.spelled(head) == s.spelled(dir)
}

// spelled is rel as the folder listings spell it: on a part that folds
// case, "usb/win.iso" opens the entry listed as "USB/WIN.ISO". A name
// that does not exist stays as it is.
func (s *Store) spelled(rel string) string {
	out := "."
	for _, el := range strings.Split(rel, "/") {
		next := path.Join(out, el)
		if _, err := s.root.Lstat(next); err != nil {
			return rel
		}
		d, err := s.root.Open(out)
		if err != nil {
			return rel
		}
		names, _ := d.Readdirnames(-1)
		d.Close()
		match := ""
		for _, n := range names {
			if n == el {
				match = n
				break
			}
			if match == "" && strings.EqualFold(n, el) {
				match = n
			}
		}
		if match == "" {
			return rel
		}
		out = path.Join(out, match)
	}
	return out
}

// reach calls fn with the identity of every file rel names: rel itself,
// the target of a symlink, and everything below a folder (symlinks there
// too, folders behind them not entered). It stops when fn says so.
func (s *Store) reach(rel string, fn func(fileID) bool) {
	visit := func(p string, lfi os.FileInfo) bool {
		if fn(idOf(lfi)) {
			return true
		}
		if lfi.Mode()&os.ModeSymlink != 0 {
			if fi, err := s.root.Stat(p); err == nil && !fi.IsDir() {
				return fn(idOf(fi))
			}
		}
		return false
	}
	lfi, err := s.root.Lstat(rel)
	if err != nil {
		return
	}
	if !lfi.IsDir() {
		visit(rel, lfi)
		return
	}
	stop := iofs.SkipAll
	iofs.WalkDir(s.root.FS(), rel, func(p string, d iofs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if visit(p, fi) {
			return stop
		}
		return nil
	})
}

// SameFile reports whether two host paths in the store name one file: the
// same spelling, the same device and inode, or (on a part that folds case)
// one entry spelled two ways. The drives use it so one image is never in
// two drives with one of them writable, whatever names reached it.
func (s *Store) SameFile(a, b string) bool {
	if a == b {
		return true
	}
	fa, erra := os.Stat(a)
	fb, errb := os.Stat(b)
	if erra == nil && errb == nil && os.SameFile(fa, fb) {
		return true
	}
	ra, oka := s.Rel(a)
	rb, okb := s.Rel(b)
	return oka && okb && strings.EqualFold(ra, rb) && s.spelled(ra) == s.spelled(rb)
}
