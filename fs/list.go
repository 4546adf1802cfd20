package fs

import (
	"fmt"
	"os"
	"path"
	"runtime"
	"sort"
	"sync"
	"time"
)

// Entry is one child of a folder, as List saw it. It is an os.FileInfo.
type Entry struct {
	name  string
	size  int64
	mode  os.FileMode
	mtime time.Time
	ino   uint64 // for the catalog's checksum cache, which keys on it
}

func (e *Entry) Name() string       { return e.name }
func (e *Entry) Size() int64        { return e.size }
func (e *Entry) Mode() os.FileMode  { return e.mode }
func (e *Entry) ModTime() time.Time { return e.mtime }
func (e *Entry) IsDir() bool        { return e.mode.IsDir() }
func (e *Entry) Sys() any           { return nil }

// listChunk is how many names one goroutine stats: below it, starting
// another costs more than the syscalls it would take over.
const listChunk = 512

// List reads the folder rel once and stats its children, sorted by name.
// The store's own files (Internal) are not stat'ed but returned by name in
// hidden, for callers that keep state in them. A symlink is followed inside
// the store; one that dangles or leaves the store is left out, as is a
// name that vanished during the listing.
//
// The stats run on up to GOMAXPROCS goroutines: a 10,000-entry folder is
// 10,000 fstatat calls, which is most of a PROPFIND's time (make bench).
func (s *Store) List(rel string) (entries []Entry, hidden []string, err error) {
	rel, err = Clean(rel)
	if err != nil {
		return nil, nil, err
	}
	dir, err := s.root.Open(rel)
	if err != nil {
		return nil, nil, err
	}
	defer dir.Close()
	all, err := dir.Readdirnames(-1)
	if err != nil {
		return nil, nil, fmt.Errorf("list %s: %w", rel, err)
	}
	names := all[:0]
	for _, n := range all {
		if Classify(n) == Internal {
			hidden = append(hidden, n)
		} else {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	sort.Strings(hidden)

	entries = make([]Entry, len(names))
	ok := make([]bool, len(names))
	workers := min(runtime.GOMAXPROCS(0), (len(names)+listChunk-1)/listChunk)
	per := (len(names) + max(workers, 1) - 1) / max(workers, 1)
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := 0; w < workers; w++ {
		lo, hi := w*per, min((w+1)*per, len(names))
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = statChildren(dir, names[lo:hi], func(i int, e Entry, err error) {
				if err != nil {
					return // vanished since the listing
				}
				if e.mode&os.ModeSymlink != 0 {
					fi, err := s.root.Stat(path.Join(rel, e.name))
					if err != nil {
						return // dangling, or leaving the store
					}
					e = Entry{name: e.name, size: fi.Size(), mode: fi.Mode(), mtime: fi.ModTime()}
				}
				entries[lo+i], ok[lo+i] = e, true
			})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	kept := entries[:0]
	for i := range entries {
		if ok[i] {
			kept = append(kept, entries[i])
		}
	}
	return kept, hidden, nil
}
