package fs

import (
	"context"
	iofs "io/fs"
	"sort"
	"strings"
)

// Images lists every image in the store, live: nothing is cached, so files
// copied in from outside (NFS, scp) show up at once.
// TODO(fs): part timeouts, parts, junk filter shared with dav.
func (s *Store) Images(ctx context.Context) ([]Image, error) {
	var out []Image
	err := iofs.WalkDir(s.root.FS(), ".", func(p string, de iofs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if strings.HasPrefix(de.Name(), ".") && p != "." {
			if de.IsDir() {
				return iofs.SkipDir
			}
			return nil
		}
		if de.IsDir() || !de.Type().IsRegular() {
			return nil
		}
		fi, err := de.Info()
		if err != nil {
			return nil
		}
		out = append(out, Image{Path: p, Size: fi.Size(), ModTime: fi.ModTime(), Complete: true, Attached: []int{}, Part: "."})
		return nil
	})
	s.mu.Lock()
	for rel, u := range s.uploads {
		out = append(out, Image{Path: rel, Size: u.Received(), Received: u.Received(), Expected: u.Expected, Attached: []int{}, Part: "."})
	}
	a := s.attached
	s.mu.Unlock()
	if a != nil {
		for i := range out {
			if d := a.AttachedTo(out[i].Path); d != nil {
				out[i].Attached = d
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, err
}

// Parts lists the root's filesystem and every filesystem mounted below it.
// TODO(fs): mountinfo.
func (s *Store) Parts(ctx context.Context) ([]Part, error) {
	return nil, nil
}
