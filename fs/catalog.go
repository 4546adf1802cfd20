package fs

import (
	"context"
	"os"
	"path"
	"sort"
)

// Images lists every image in the store, live: nothing is cached, so files
// copied in from outside (NFS, scp) show up at once. A part that does not
// answer within the part timeout is left out; Parts says which.
func (s *Store) Images(ctx context.Context) ([]Image, error) {
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
		err := s.probe.run(ctx, "walk:"+pm.rel, func() { found = s.walkPart(pm.rel, isPart) })
		if err != nil {
			s.log.Warn("part left out of the catalog", "part", pm.rel, "err", err)
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
		if Classify(p) == Visible && fi.Mode().IsRegular() {
			im := Image{Path: p, Size: fi.Size(), ModTime: fi.ModTime(), Complete: true, Attached: []int{}, Part: rel}
			s.describeImage(&im, fi)
			out = append(out, im)
		}
	})
	return out
}

// walk calls fn for every non-directory below start on start's own
// filesystem. It reads names before it stats anything, so the mount point of
// another part, maybe a dead NFS server, is never touched; junk folders
// (.Trashes, .msdav-*) are not entered.
func (s *Store) walk(start string, isPart map[string]bool, fn func(rel string, fi os.FileInfo)) {
	d, err := s.root.Open(start)
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	sort.Strings(names)
	for _, name := range names {
		p := path.Join(start, name)
		if isPart[p] {
			continue
		}
		fi, err := s.root.Lstat(p)
		if err != nil {
			continue
		}
		if fi.IsDir() {
			if Classify(name) == Visible {
				s.walk(p, isPart, fn)
			}
			continue
		}
		fn(p, fi)
	}
}

// partOf names the innermost part holding rel.
func partOf(rel string, isPart map[string]bool) string {
	for d := path.Dir(rel); d != "."; d = path.Dir(d) {
		if isPart[d] {
			return d
		}
	}
	return "."
}
