package fs

import (
	"context"
	"fmt"
	"os"
	"path"
	"sort"
	"syscall"
)

// Images lists every image in the store, live: nothing is cached, so files
// copied in from outside (NFS, scp) show up at once. A part that does not
// answer within the part timeout is left out; Parts says which.
func (s *Store) Images(ctx context.Context) ([]Image, error) {
	return s.catalog(ctx, func(rel string, isPart map[string]bool) func() []Image {
		return func() []Image { return s.walkPart(rel, isPart) }
	}, nil)
}

// catalog is Images with the walk of each part given: lookPart returns the
// walk of part rel, run under the part timeout; lost hears of a part whose
// walk did not finish in time (it may still be running).
func (s *Store) catalog(ctx context.Context, lookPart func(rel string, isPart map[string]bool) func() []Image, lost func(rel string)) ([]Image, error) {
	pms, err := s.partMounts()
	if err != nil {
		return nil, err
	}
	isPart := map[string]bool{}
	for _, pm := range pms {
		isPart[pm.rel] = true
	}
	// Uploads are read before the walk: one that commits meanwhile is then
	// listed twice (temp and final, the final kept first) rather than not at
	// all, so a watcher never sees an image vanish for a moment.
	var out []Image
	s.mu.Lock()
	for rel, u := range s.uploads {
		out = append(out, u.entry(partOf(rel, isPart)))
	}
	s.mu.Unlock()
	for _, pm := range pms {
		var found []Image
		look := lookPart(pm.rel, isPart)
		err := s.probe.run(ctx, "walk:"+pm.rel, func() { found = look() })
		if err != nil {
			s.log.Warn("part left out of the catalog", "part", pm.rel, "err", err)
			if lost != nil {
				lost(pm.rel)
			}
			continue
		}
		out = append(out, found...)
	}
	att, err := s.attachedNow()
	if err != nil {
		s.log.Warn("catalog shows no drives", "err", err)
	}
	for i := range out {
		if d := att[out[i].Path]; len(d) > 0 && out[i].Complete {
			out[i].Attached = d
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Complete && !out[j].Complete
	})
	return out, nil
}

// entry is the catalog entry of an upload in progress.
func (u *Upload) entry(part string) Image {
	n := u.Received()
	return Image{Path: u.rel, Size: n, Received: n, Expected: u.Expected, Attached: []int{}, Part: part}
}

// walkPart lists the images of one part, stopping at the mount points of
// other parts (they are walked on their own, with their own deadline).
func (s *Store) walkPart(rel string, isPart map[string]bool) []Image {
	var out []Image
	s.walk(rel, isPart, func(p string, fi os.FileInfo) {
		if im, ok := s.catalogEntry(p, rel, fi); ok {
			out = append(out, im)
		}
	})
	return out
}

// catalogEntry is the entry of the file p of part, if it is an image.
func (s *Store) catalogEntry(p, part string, fi os.FileInfo) (Image, bool) {
	if Classify(p) != Visible || !fi.Mode().IsRegular() {
		return Image{}, false
	}
	im := Image{Path: p, Size: fi.Size(), ModTime: fi.ModTime(), Complete: true, Attached: []int{}, Part: part}
	s.describeImage(&im, fi)
	return im, true
}

// walk calls fn for every non-directory below start on start's own
// filesystem. It reads names before it stats anything, so the mount point of
// another part, maybe a dead NFS server, is never touched; junk folders
// (.Trashes, .msdav-*) are not entered.
func (s *Store) walk(start string, isPart map[string]bool, fn func(rel string, fi os.FileInfo)) {
	var dirs []string
	if s.readFolder(start, isPart, fn, func(p string) { dirs = append(dirs, p) }) != nil {
		return
	}
	for _, d := range dirs {
		s.walk(d, isPart, fn)
	}
}

// readFolder reads the folder rel once and stats its children relative to
// it (one open per folder, not one per child: on NFS each open of a folder
// is a round trip to the server). file gets the non-folders, folder the
// subfolders worth entering; mount points of other parts are not stat'ed.
// Symlinks are reported as such, never followed.
func (s *Store) readFolder(rel string, isPart map[string]bool, file func(rel string, fi os.FileInfo), folder func(rel string)) error {
	d, err := s.root.Open(rel)
	if err != nil {
		return err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil && len(names) == 0 {
		return fmt.Errorf("read folder %s: %w", rel, err)
	}
	sort.Strings(names)
	keep := names[:0]
	for _, n := range names {
		if !isPart[path.Join(rel, n)] {
			keep = append(keep, n)
		}
	}
	return statChildren(d, keep, func(_ int, e Entry, err error) {
		if err != nil {
			return // vanished since the listing
		}
		p := path.Join(rel, e.name)
		if e.IsDir() {
			if Classify(e.name) == Visible {
				folder(p)
			}
			return
		}
		file(p, &catalogInfo{e})
	})
}

// catalogInfo is a child as readFolder saw it; its Sys carries the inode,
// which the checksum cache keys on.
type catalogInfo struct{ Entry }

func (c *catalogInfo) Sys() any { return &syscall.Stat_t{Ino: c.ino} }

// partOf names the innermost part holding rel.
func partOf(rel string, isPart map[string]bool) string {
	for d := path.Dir(rel); d != "."; d = path.Dir(d) {
		if isPart[d] {
			return d
		}
	}
	return "."
}
