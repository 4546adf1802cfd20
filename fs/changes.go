package fs

import (
	"context"
	"os"
	"path"
	"slices"
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
// up. It polls every interval while active says someone listens, and
// publishes "image" and "part" events for what differs from the last look.
func (s *Store) Watch(ctx context.Context, every time.Duration, active func() bool) {
	if s.opt.Publish == nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var images map[string]Image
	var parts map[string]Part
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !active() {
			images, parts = nil, nil // start again from a fresh look
			continue
		}
		ps, err := s.Parts(ctx)
		if err != nil {
			continue
		}
		nextParts := make(map[string]Part, len(ps))
		for _, p := range ps {
			nextParts[p.Path] = p
			if old, ok := parts[p.Path]; parts != nil && (!ok || old != p) {
				s.publish("part", p)
			}
		}
		parts = nextParts
		imgs, err := s.Images(ctx)
		if err != nil {
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
				}
			}
			for p := range images {
				if _, ok := next[p]; !ok && !s.partGone(p, ps) {
					s.publishRemoved([]string{p})
				}
			}
		}
		images = next
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
