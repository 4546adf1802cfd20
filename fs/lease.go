package fs

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Fleets: several boxes serve one library (an NFS export, a CIFS share, a
// folder storage.shared names). A box that attaches an image there writes
// a lease beside the library's root, naming itself, the drive and the
// image, with an expiry it keeps pushing forward; every box refuses to
// change an image another box's live lease covers. Leases are plain files
// written with temp-and-rename, which NFS without locking (the manual's
// nolock) and CIFS both do atomically; an expiry, not a lock, frees the
// image of a box that died.

// leasePrefix starts a lease's name, in the shared folder's root.
const leasePrefix = tempPrefix + "lease-"

// Lease is one box's hold on one image, as written to its lease file.
type Lease struct {
	Box      string    `json:"box"` // the label people read (box_name, host name)
	ID       string    `json:"id,omitempty"`
	Instance string    `json:"instance,omitempty"` // the writing process's nonce
	Drive    int       `json:"drive"`
	Image    string    `json:"image"` // relative to the shared folder
	RW       bool      `json:"rw"`
	Written  time.Time `json:"written,omitzero"`
	Expires  time.Time `json:"expires"`
}

// Identity. Host names repeat (PiKVM OS names every box pikvm), so a box
// without storage.box_name is known in leases by an id derived from
// /etc/machine-id and its store's path: unique per box and per store on
// one host, the same after a restart. Two live boxes that still claim one
// id (one box_name given to two, cloned SD cards) see each other's leases
// written by another process since they started, and refuse to write.

// boxIdentity is id if set, else the box_name, else derived.
func boxIdentity(id, boxName, root string) string {
	if id != "" {
		return id
	}
	if boxName != "" {
		return boxName
	}
	host, _ := os.Hostname()
	mid, _ := os.ReadFile("/etc/machine-id")
	sum := sha256.Sum256([]byte(strings.TrimSpace(string(mid)) + "\x00" + root))
	return host + "-" + hex.EncodeToString(sum[:6])
}

func newInstance() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Identity is the id this box's leases carry.
func (s *Store) Identity() string { return s.opt.ID }

// mine reports a lease this box wrote (an older lease without an id is
// known by its label).
func (s *Store) mine(l Lease) bool {
	if l.ID == "" {
		return l.Box == s.opt.Box
	}
	return l.ID == s.opt.ID
}

// ClashError says another live box writes leases under this box's
// identity: neither can trust the other's leases, so shared writes stop.
type ClashError struct {
	Folder string
	Other  Lease
	locked *LockedError
}

func (e *ClashError) Error() string {
	return fmt.Sprintf("another running box also calls itself %q in shared folder %s (its lease for drive %d on %s was written at %s by another msdav process): "+
		"give each box sharing this library its own storage.box_name, or remove box_name from all of them so each derives its own, then restart them",
		e.Other.ID, e.Folder, e.Other.Drive, e.Other.Image, e.Other.Written.Format(time.RFC3339))
}

// Unwrap makes a clash a 423, as the lock it may hide is.
func (e *ClashError) Unwrap() error { return e.locked }

// clash finds a lease under this box's id that another process wrote
// since this one started.
func (s *Store) clash(root string, leases []Lease) error {
	for _, l := range leases {
		if s.mine(l) && l.Instance != "" && l.Instance != s.opt.instance && l.Written.After(s.opt.started) {
			return &ClashError{Folder: root, Other: l, locked: &LockedError{Path: path.Join(root, l.Image), Drive: l.Drive, Box: l.Box}}
		}
	}
	return nil
}

// sharedFSTypes are filesystems other boxes can mount too: a part of one
// of these is shared without being listed in storage.shared.
var sharedFSTypes = []string{"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs"}

// sharedRoot names the shared folder holding rel: the innermost configured
// shared folder or NFS/CIFS part above it; ok is false for a box's own.
func (s *Store) sharedRoot(rel string) (string, bool) {
	best, found := "", false
	for _, root := range s.sharedRoots() {
		if (root == rel || under("/"+rel, "/"+root) || root == ".") && (!found || len(root) > len(best)) {
			best, found = root, true
		}
	}
	return best, found
}

func leaseName(id string, drive int) string {
	return leasePrefix + strings.NewReplacer("/", "_", "\x00", "_").Replace(id) + "-" + strconv.Itoa(drive) + ".json"
}

// PutLease writes (or renews) this box's lease on rel for drive, when rel
// lives in a shared folder; it is a no-op elsewhere. It refuses, with a
// *LockedError naming the other box, a rw lease over another box's live
// lease, or any lease over another box's rw one.
func (s *Store) PutLease(drive int, rel string, rw bool) error {
	root, ok := s.sharedRoot(rel)
	if !ok {
		return nil
	}
	img := strings.TrimPrefix(strings.TrimPrefix(rel, root), "/")
	if root == "." {
		img = rel
	}
	// A library whose server stopped answering must not hold the drive
	// manager: every lease read and write is bounded by the part timeout.
	var err error
	perr := s.probe.run(context.Background(), "lease:"+root, func() {
		leases := s.leasesIn(root)
		if err = s.clash(root, leases); err != nil {
			return
		}
		for _, l := range leases {
			if !s.mine(l) && l.Image == img && (rw || l.RW) {
				err = &LockedError{Path: rel, Drive: l.Drive, Box: l.Box}
				return
			}
		}
		now := time.Now()
		b, _ := json.Marshal(Lease{Box: s.opt.Box, ID: s.opt.ID, Instance: s.opt.instance, Drive: drive, Image: img, RW: rw,
			Written: now, Expires: now.Add(s.opt.LeaseTTL)})
		name := path.Join(root, leaseName(s.opt.ID, drive))
		if werr := s.writeLease(name, b); werr != nil {
			err = fmt.Errorf("lease on %s for drive %d: %w", rel, drive, werr)
		}
	})
	if perr != nil {
		return fmt.Errorf("lease on %s for drive %d: shared folder %s: %w", rel, drive, root, perr)
	}
	return err
}

// DropLease removes this box's lease for drive, wherever it is. An error
// says a lease could not be removed (a library that does not answer): it
// expires by itself, and the caller may try again.
func (s *Store) DropLease(drive int) error {
	var errs []error
	for _, root := range s.sharedRoots() {
		name := path.Join(root, leaseName(s.opt.ID, drive))
		var err error // only read when the call finished in time
		perr := s.probe.run(context.Background(), "lease:"+root, func() {
			if _, lerr := s.root.Lstat(name); errors.Is(lerr, iofs.ErrNotExist) {
				return
			} else if lerr != nil {
				err = lerr
				return
			}
			done, werr := s.Write(context.Background(), "drop lease "+name)
			if werr != nil {
				err = werr
				return
			}
			defer done()
			// Hidden first: a plain unlink on CIFS can leave the name
			// (delete-pending) for other boxes to honour a while longer.
			err = s.unlinkHidden(name)
		})
		switch {
		case perr != nil: // the call may still set err: not read
			errs = append(errs, fmt.Errorf("drop lease %s: %w", name, perr))
		case err != nil:
			errs = append(errs, fmt.Errorf("drop lease %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// sharedRoots lists every shared folder of the store.
func (s *Store) sharedRoots() []string {
	pms, _ := s.partMounts()
	return s.sharedRootsOf(pms)
}

// sharedRootsOf is sharedRoots for parts already read.
func (s *Store) sharedRootsOf(pms []partMount) []string {
	roots := slices.Clone(s.opt.Shared)
	for _, pm := range pms {
		if slices.Contains(sharedFSTypes, pm.FSType) && !slices.Contains(roots, pm.rel) {
			roots = append(roots, pm.rel)
		}
	}
	return roots
}

// leasesIn reads the live leases of one shared folder. Expired ones are
// skipped: their box stopped renewing them.
func (s *Store) leasesIn(root string) []Lease {
	d, err := s.root.Open(root)
	if err != nil {
		return nil
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	var out []Lease
	now := time.Now()
	for _, n := range names {
		if !strings.HasPrefix(n, leasePrefix) || !strings.HasSuffix(n, ".json") {
			continue
		}
		b, err := s.root.ReadFile(path.Join(root, n))
		if err != nil {
			continue
		}
		var l Lease
		if json.Unmarshal(b, &l) != nil || now.After(l.Expires) {
			continue
		}
		out = append(out, l)
	}
	return out
}

// leasedBy lists other boxes' live leases in the shared folders that
// overlap rel (in any case: a part may fold it).
func (s *Store) leasedBy(rel string, pms []partMount) ([]*LockedError, error) {
	var out []*LockedError
	lrel := strings.ToLower(rel)
	for _, root := range s.sharedRootsOf(pms) {
		lroot := strings.ToLower(root)
		if !(root == "." || rel == "." || under("/"+lrel, "/"+lroot) || under("/"+lroot, "/"+lrel)) {
			continue
		}
		var leases []Lease
		if err := s.probe.run(context.Background(), "lease:"+root, func() { leases = s.leasesIn(root) }); err != nil {
			// Fail closed: another box may hold what is under it.
			return nil, fmt.Errorf("%w: the leases of shared folder %s cannot be read: %v", ErrAttachUnknown, root, err)
		}
		if err := s.clash(root, leases); err != nil {
			return nil, err
		}
		for _, l := range leases {
			if !s.mine(l) {
				out = append(out, &LockedError{Path: path.Join(root, l.Image), Drive: l.Drive, Box: l.Box})
			}
		}
	}
	return out, nil
}

// writeLease replaces the lease file name atomically.
func (s *Store) writeLease(name string, b []byte) error {
	done, err := s.Write(context.Background(), "lease "+name)
	if err != nil {
		return err
	}
	defer done()
	return writeFileAtomic(s.root, name, b, 0o644)
}

// LeaseTTL is how long a lease lives unless renewed.
func (s *Store) LeaseTTL() time.Duration { return s.opt.LeaseTTL }
