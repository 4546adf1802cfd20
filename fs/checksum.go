package fs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	iofs "io/fs"
	"os"
	"path"

	"github.com/msdav/msdav/fs/imagekind"
)

// sumPrefix names the sidecar holding an image's sha256 and kind. It is
// tied to the image by inode, size and mtime: a write through a rw drive
// or a copy over scp changes one of them, and the sidecar no longer counts.
// A plain file (not an xattr) works on every part, vfat and NFS included.
const sumPrefix = tempPrefix + "sum-"

// sumFile is a sidecar as written to disk.
type sumFile struct {
	SHA256 string `json:"sha256,omitempty"`
	Kind   string `json:"kind,omitempty"`
	Size   int64  `json:"size"`
	MTime  int64  `json:"mtime_ns"`
	Inode  uint64 `json:"inode"`
}

func (f sumFile) matches(fi os.FileInfo) bool {
	return f.Size == fi.Size() && f.MTime == fi.ModTime().UnixNano() && f.Inode == Inode(fi)
}

// sumSidecar names the sidecar of rel: the prefix and the image's name, or,
// when that would pass NAME_MAX, the prefix and a digest of the name.
func sumSidecar(rel string) string {
	dir, base := path.Split(rel)
	if len(sumPrefix)+len(base) > nameMax {
		h := sha256.Sum256([]byte(base))
		return path.Join(dir, sumPrefix+"h-"+hex.EncodeToString(h[:16]))
	}
	return path.Join(dir, sumPrefix+base)
}

// nameMax is the longest file name Linux filesystems take, in bytes.
const nameMax = 255

// tracked reports an image whose checksum the store keeps: not its own
// files, and not hidden ones, which the catalog never shows.
func tracked(rel string) bool { return Classify(rel) == Visible }

// hashing is the sha256 of an upload as it streams. It is dropped when a
// write bypasses Write and ReadFrom (File, CopyFrom), since it would then
// not describe the file.
type hashing struct {
	h   hash.Hash
	off bool
}

func newHashing() hashing { return hashing{h: sha256.New()} }

// Sum is the hex sha256 of everything written, or "" when some write
// bypassed the hash.
func (u *Upload) Sum() string {
	if u.hash.off {
		return ""
	}
	return hex.EncodeToString(u.hash.h.Sum(nil))
}

// Reset empties the upload to start over from the first byte (a server
// that ignored a Range request sends the whole file again).
func (u *Upload) Reset() error {
	if err := u.f.Truncate(0); err != nil {
		return fmt.Errorf("upload %s: restart: %w", u.rel, err)
	}
	if _, err := u.f.Seek(0, 0); err != nil {
		return fmt.Errorf("upload %s: restart: %w", u.rel, err)
	}
	u.hash = newHashing()
	u.received.Store(0)
	return nil
}

// detectKind reads the kind from the temp file while it is still open.
func (u *Upload) detectKind(fi os.FileInfo) {
	if tracked(u.rel) {
		u.kind = string(imagekind.Detect(u.f, fi.Size()))
	}
}

// recordSum writes the sidecar of the committed image, which kept the temp
// file's inode and mtime through the rename. It comes after the rename so
// a commit refused at the last moment never touches the sidecar of the
// image it would have replaced; a crash in between costs the checksum only.
func (u *Upload) recordSum(fi os.FileInfo) {
	if !tracked(u.rel) {
		return
	}
	rec := sumFile{SHA256: u.Sum(), Kind: u.kind, Size: fi.Size(), MTime: fi.ModTime().UnixNano(), Inode: Inode(fi)}
	if err := u.s.writeSum(u.rel, rec); err != nil {
		u.s.log.Warn("cannot keep the checksum of an upload", "path", u.rel, "err", err)
		return
	}
	u.s.mu.Lock()
	u.s.sums.put(u.rel, rec)
	u.s.mu.Unlock()
}

// writeSum replaces the sidecar of rel atomically and durably: one lost to
// a power cut would cost the checksum, one half-written could not be read.
func (s *Store) writeSum(rel string, rec sumFile) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.root, sumSidecar(rel), b, 0o644); err != nil {
		return fmt.Errorf("checksum of %s: %w", rel, err)
	}
	return nil
}

// sumCache remembers sidecars already read and kinds already detected, so
// a catalog listing reads image heads once per change.
type sumCache struct {
	m map[string]sumFile // by store-relative path; guarded by Store.mu
}

func (c *sumCache) put(rel string, rec sumFile) {
	if c.m == nil {
		c.m = map[string]sumFile{}
	}
	c.m[rel] = rec
}

// describe fills in the sha256 and kind of a complete image: from the
// cache, else its sidecar when it still matches the file, else the kind
// alone from the image's first sectors.
func (s *Store) describeImage(im *Image, fi os.FileInfo) {
	s.mu.Lock()
	rec, ok := s.sums.m[im.Path]
	s.mu.Unlock()
	if ok && rec.matches(fi) {
		im.SHA256, im.Kind = rec.SHA256, rec.Kind
		return
	}
	rec = sumFile{}
	if b, err := s.root.ReadFile(sumSidecar(im.Path)); err == nil {
		json.Unmarshal(b, &rec)
	}
	if !rec.matches(fi) {
		rec = sumFile{Size: fi.Size(), MTime: fi.ModTime().UnixNano(), Inode: Inode(fi)}
	}
	if rec.Kind == "" {
		rec.Kind = string(imagekind.Unknown)
		if f, err := s.root.Open(im.Path); err == nil {
			rec.Kind = string(imagekind.Detect(f, fi.Size()))
			f.Close()
		}
	}
	s.mu.Lock()
	// A commit may have recorded the sum since the sidecar was read.
	if cur, ok := s.sums.m[im.Path]; ok && cur.matches(fi) && cur.SHA256 != "" {
		rec = cur
	}
	s.sums.put(im.Path, rec)
	s.mu.Unlock()
	im.SHA256, im.Kind = rec.SHA256, rec.Kind
}

// Checksum returns the sha256 and kind of the image rel as the catalog
// shows them; sum is "" when unknown.
func (s *Store) Checksum(rel string) (sum, kind string, err error) {
	rel, err = Clean(rel)
	if err != nil {
		return "", "", err
	}
	fi, err := s.root.Stat(rel)
	if err != nil {
		return "", "", fmt.Errorf("checksum %s: %w", rel, err)
	}
	im := Image{Path: rel}
	s.describeImage(&im, fi)
	return im.SHA256, im.Kind, nil
}

// moveSum carries the sidecar along when an image is renamed on one part
// (the inode stays, so it still matches).
func (s *Store) moveSum(oldRel, newRel string) {
	if !tracked(oldRel) {
		return
	}
	err := s.root.Rename(sumSidecar(oldRel), sumSidecar(newRel))
	if err != nil && !errors.Is(err, iofs.ErrNotExist) {
		s.log.Warn("checksum not moved with its image", "from", oldRel, "to", newRel, "err", err)
	}
	s.mu.Lock()
	delete(s.sums.m, oldRel)
	s.mu.Unlock()
}

// dropSum removes the sidecar of a removed image.
func (s *Store) dropSum(rel string) {
	s.root.Remove(sumSidecar(rel))
	s.mu.Lock()
	delete(s.sums.m, rel)
	s.mu.Unlock()
}
