package fs

import (
	"context"
	"os"
	"path"
	"sort"
	"strings"
)

// tempPrefix starts the name of every file the store writes for itself
// (upload temps, property sidecars): hidden from listings and the catalog,
// and temps are swept at start.
const tempPrefix = ".msdav-"

// uploadPrefix starts the name of an upload's temp file.
const uploadPrefix = tempPrefix + "upload-"

// stale reports a temp file a crash can leave: an upload, or the copy or
// parked old version of a move between parts.
func stale(name string) bool {
	for _, p := range []string{uploadPrefix, tempPrefix + "move-", tempPrefix + "old-"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// Internal reports whether name is a file the store keeps for itself.
func Internal(name string) bool { return strings.HasPrefix(name, tempPrefix) }

// Junk reports names that are never images: the store's own files, hidden
// files, and what macOS and Windows leave on shares (._*, .DS_Store, Thumbs.db).
func Junk(name string) bool {
	if strings.HasPrefix(name, ".") {
		return true
	}
	switch strings.ToLower(name) {
	case "thumbs.db", "desktop.ini", "$recycle.bin", "system volume information", "lost+found":
		return true
	}
	return false
}

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
	var out []Image
	for _, pm := range pms {
		var found []Image
		err := s.probe.run(ctx, "walk:"+pm.rel, func() { found = s.walkPart(pm.rel, isPart) })
		if err != nil {
			s.log.Warn("part left out of the catalog", "part", pm.rel, "err", err)
			continue
		}
		out = append(out, found...)
	}
	s.mu.Lock()
	for rel, u := range s.uploads {
		out = append(out, Image{Path: rel, Size: u.Received(), Received: u.Received(), Expected: u.Expected,
			Attached: []int{}, Part: partOf(rel, isPart)})
	}
	s.mu.Unlock()
	att := s.attachedNow()
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

// walkPart lists the images of one part, stopping at the mount points of
// other parts (they are walked on their own, with their own deadline).
func (s *Store) walkPart(rel string, isPart map[string]bool) []Image {
	var out []Image
	s.walk(rel, isPart, func(p string, fi os.FileInfo) {
		if !Junk(path.Base(p)) && fi.Mode().IsRegular() {
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
			if !Junk(name) {
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
