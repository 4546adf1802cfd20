package fs

import (
	"os"
	"path"
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
