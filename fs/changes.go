package fs

import (
	"context"
	"os"
	"path"
	"slices"
	"syscall"
	"time"
)

// Removed is the event of an image that went away.
type Removed struct {
	Path    string `json:"path"`
	Removed bool   `json:"removed"`
}

// progressEvery spaces an upload's progress events: a browser redraws a
// bar at that pace, and a 1 GiB upload at 1 GB/s still sends only two.
const progressEvery = 500 * time.Millisecond

func (s *Store) publish(kind string, v any) {
	if s.opt.Publish != nil {
		s.opt.Publish(kind, v)
	}
}

// imageEntry is the catalog entry of the file at rel, if it is an image.
func (s *Store) imageEntry(rel string) (Image, bool) {
	if Classify(rel) != Visible {
		return Image{}, false
	}
	fi, err := s.root.Lstat(rel)
	if err != nil || !fi.Mode().IsRegular() {
		return Image{}, false
	}
	im := Image{Path: rel, Size: fi.Size(), ModTime: fi.ModTime(), Complete: true, Attached: []int{}, Part: s.partOfRel(rel)}
	s.describeImage(&im, fi)
	if att, err := s.attachedNow(); err == nil && len(att[rel]) > 0 {
		im.Attached = att[rel]
	}
	return im, true
}

// imagesBelow lists the images at or under rel (a file or a folder), for
// the events of a delete or a move, which the kernel reports as one call.
func (s *Store) imagesBelow(rel string) []string {
	if s.opt.Publish == nil {
		return nil
	}
	fi, err := s.root.Lstat(rel)
	if err != nil {
		return nil
	}
	if !fi.IsDir() {
		if Classify(rel) == Visible && fi.Mode().IsRegular() {
			return []string{rel}
		}
		return nil
	}
	var out []string
	s.walk(rel, s.partSet(), func(p string, fi os.FileInfo) {
		if Classify(p) == Visible && fi.Mode().IsRegular() {
			out = append(out, p)
		}
	})
	return out
}

func (s *Store) publishRemoved(rels []string) {
	for _, r := range rels {
		s.publish("image", Removed{Path: r, Removed: true})
	}
}

// publishMoved announces the images of a move: gone under the old names,
// present under the new ones.
func (s *Store) publishMoved(oldRels []string, oldRel, newRel string) {
	s.publishRemoved(oldRels)
	for _, r := range oldRels {
		n := path.Join(newRel, r[len(oldRel):])
		if im, ok := s.imageEntry(n); ok {
			s.publish("image", im)
		}
	}
}

// progress publishes the upload's entry at most every progressEvery.
func (u *Upload) progress() {
	if u.s.opt.Publish == nil {
		return
	}
	now := time.Now().UnixNano()
	last := u.lastEvent.Load()
	if now-last < int64(progressEvery) || !u.lastEvent.CompareAndSwap(last, now) {
		return
	}
	u.s.publish("image", u.entry(u.part))
}

// partSet is the store-relative mount points of every part.
func (s *Store) partSet() map[string]bool {
	isPart := map[string]bool{}
	if pms, err := s.partMounts(); err == nil {
		for _, pm := range pms {
			isPart[pm.rel] = true
		}
	}
	return isPart
}

// partOfRel names the part holding rel.
func (s *Store) partOfRel(rel string) string { return partOf(rel, s.partSet()) }

// Watch tells subscribers of what changes without the store doing it:
// files copied in over NFS or scp, a part that stops answering or fills
// up. It looks every interval while active says someone listens (one look
// for all of them, none while nobody does), and publishes "image" and
// "part" events for what differs from the last look. A look that finds
// no image changed doubles the wait, up to quietMax times every.
//
// A look costs one stat per folder: a folder is read again only when its
// mtime or ctime moved (a file added, removed or renamed in it, by this
// box or another one on a shared NFS library), and the files changed in
// the last hotFor are stat'ed again, since a copy in progress grows a file
// without touching its folder. Every fullEvery everything is read again,
// for what leaves no trace in a folder (an image overwritten in place).
// On NFS a folder's attributes come from the client's cache, so another
// box's change shows within the mount's acdirmax (actimeo), as in ls -l.
func (s *Store) Watch(ctx context.Context, every time.Duration, active func() bool) {
	if s.opt.Publish == nil {
		return
	}
	t := time.NewTimer(every)
	defer t.Stop()
	wait := every
	var images map[string]Image
	var parts map[string]Part
	looks := map[string]*catalogLook{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !active() {
			images, parts, looks = nil, nil, map[string]*catalogLook{} // start again from a fresh look
			wait = every
			t.Reset(wait)
			continue
		}
		changed := false
		ps, err := s.Parts(ctx)
		if err != nil {
			t.Reset(wait)
			continue
		}
		nextParts := make(map[string]Part, len(ps))
		for _, p := range ps {
			nextParts[p.Path] = p
			if old, ok := parts[p.Path]; parts != nil && (!ok || old != p) {
				s.publish("part", p) // free space moves on a busy disk: no reason to look harder
			}
		}
		parts = nextParts
		now := time.Now()
		imgs, err := s.catalog(ctx, func(rel string, isPart map[string]bool) func() []Image {
			l := looks[rel]
			if l == nil {
				l = &catalogLook{s: s, folders: map[string]*folderLook{}}
				looks[rel] = l
			}
			return func() []Image { return l.part(rel, isPart, now) }
		}, func(rel string) {
			delete(looks, rel) // its look may still run: the next one starts afresh
		})
		if err != nil {
			t.Reset(wait)
			continue
		}
		next := make(map[string]Image, len(imgs))
		for _, im := range imgs {
			if _, dup := next[im.Path]; dup {
				continue // an upload that committed during the look: the complete one came first
			}
			next[im.Path] = im
		}
		if images != nil {
			for p, im := range next {
				if old, ok := images[p]; !ok || !sameImage(old, im) {
					s.publish("image", im)
					changed = true
				}
			}
			for p := range images {
				if _, ok := next[p]; !ok && !s.partGone(p, ps) {
					s.publishRemoved([]string{p})
					changed = true
				}
			}
		}
		images = next
		if changed {
			wait = every
		} else {
			wait = min(2*wait, quietMax*every)
		}
		t.Reset(wait)
	}
}

const (
	// quietMax bounds the watcher's backoff: with the console's 2 s, a
	// change shows within 8 s of a quiet spell.
	quietMax = 4
	// hotFor is how long after its last change a file is stat'ed at every
	// look: a copy that stalls longer shows at the next full look.
	hotFor = time.Minute
	// settle is the coarsest mtime in use (FAT: 2 s): a folder read less
	// than this after its mtime may have changed again within the same
	// tick, so it is read again.
	settle = 2 * time.Second
	// fullEvery is how often the watcher reads every folder regardless: an
	// image overwritten in place, unseen by its folder, shows this late.
	fullEvery = 30 * time.Minute
)

// catalogLook is what the watcher saw of one part at its last look, by
// folder. One goroutine uses it at a time.
type catalogLook struct {
	s        *Store
	folders  map[string]*folderLook
	lastFull time.Time
}

// folderLook is one folder as last read.
type folderLook struct {
	stamp folderStamp
	read  time.Time    // when it was read
	files []lookedFile // its images
	dirs  []string     // its subfolders, not parts
}

type lookedFile struct {
	im Image
	fi os.FileInfo
}

// folderStamp is what changes in a folder's attributes when a name in it
// is added, removed or renamed.
type folderStamp struct {
	mtime, ctime int64
	ino          uint64
}

func stampOf(fi os.FileInfo) folderStamp {
	st := folderStamp{mtime: fi.ModTime().UnixNano()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ctime, st.ino = sys.Ctim.Nano(), sys.Ino
	}
	return st
}

// part lists the images of the part at rel, reading only the folders that
// changed since the last look.
func (l *catalogLook) part(rel string, isPart map[string]bool, now time.Time) []Image {
	full := now.Sub(l.lastFull) >= fullEvery
	if full {
		l.lastFull = now
	}
	seen := map[string]bool{}
	var out []Image
	l.folder(rel, rel, isPart, now, full, seen, &out)
	for f := range l.folders {
		if !seen[f] {
			delete(l.folders, f) // gone, or no longer a folder
		}
	}
	return out
}

func (l *catalogLook) folder(rel, part string, isPart map[string]bool, now time.Time, full bool, seen map[string]bool, out *[]Image) {
	s := l.s
	fi, err := s.root.Lstat(rel)
	if err != nil || !fi.IsDir() {
		return
	}
	stamp := stampOf(fi)
	f := l.folders[rel]
	if full || f == nil || f.stamp != stamp || f.read.Sub(fi.ModTime()) < settle {
		f = &folderLook{stamp: stamp, read: now}
		err := s.readFolder(rel, isPart, func(p string, fi os.FileInfo) {
			if im, ok := s.catalogEntry(p, part, fi); ok {
				f.files = append(f.files, lookedFile{im, fi})
			}
		}, func(p string) { f.dirs = append(f.dirs, p) })
		if err != nil {
			return
		}
	} else {
		kept := f.files[:0]
		for _, lf := range f.files {
			if now.Sub(lf.fi.ModTime()) < hotFor {
				nfi, err := s.root.Lstat(lf.im.Path)
				if err != nil {
					continue // gone: the folder's next read says so too
				}
				im, ok := s.catalogEntry(lf.im.Path, part, nfi)
				if !ok {
					continue
				}
				lf = lookedFile{im, nfi}
			} else {
				s.describeImage(&lf.im, lf.fi) // a sum recorded since, from the cache
			}
			kept = append(kept, lf)
		}
		f.files = kept
	}
	seen[rel] = true
	l.folders[rel] = f
	for _, lf := range f.files {
		im := lf.im
		im.Attached = []int{}
		*out = append(*out, im)
	}
	for _, d := range f.dirs {
		l.folder(d, part, isPart, now, full, seen, out)
	}
}

// partGone reports an image whose part did not answer: it is not known to
// be gone, only out of sight, and the part event says so.
func (s *Store) partGone(rel string, ps []Part) bool {
	isPart := map[string]bool{}
	for _, p := range ps {
		isPart[p.Path] = true
	}
	part := partOf(rel, isPart)
	for _, p := range ps {
		if p.Path == part {
			return !p.Available
		}
	}
	return false
}

func sameImage(a, b Image) bool {
	return a.Path == b.Path && a.Size == b.Size && a.ModTime.Equal(b.ModTime) && a.Complete == b.Complete &&
		a.Received == b.Received && a.Part == b.Part && slices.Equal(a.Attached, b.Attached)
}

// Image is the catalog entry of the complete image at rel, with its kind
// and sha256 when known.
func (s *Store) Image(rel string) (Image, bool) {
	rel, err := Clean(rel)
	if err != nil {
		return Image{}, false
	}
	return s.imageEntry(rel)
}
