package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/go-git/go-billy/v5/osfs"
	nfs "github.com/willscott/go-nfs"
	"github.com/willscott/go-nfs/helpers"
)

func newServer(dir string) *stableHandles {
	fs := osfs.New(dir)
	return newStableHandles(helpers.NewNullAuthHandler(fs), fs)
}

func isStale(err error) bool {
	var se *nfs.NFSStatusError
	return errors.As(err, &se) && se.NFSStatus == nfs.NFSStatusStale
}

// A handle given out by one server process resolves in the next one on
// the same export, follows its file through renames, and is stale once
// the file is gone.
func TestHandlesOutliveTheServer(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "isos", "old"), 0o755)
	for _, f := range []string{"a.iso", "isos/b.iso", "isos/old/c.iso", "gone.iso", "replaced.iso", "over.iso"} {
		os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644)
	}
	first := newServer(dir)
	handles := map[string][]byte{}
	for _, p := range [][]string{{}, {"a.iso"}, {"isos"}, {"isos", "b.iso"}, {"isos", "old", "c.iso"}, {"gone.iso"}, {"replaced.iso"}, {"over.iso"}} {
		handles[filepath.Join(p...)] = first.ToHandle(first.fs, p)
	}
	// Changes made while no server runs, as on a NAS's own disk.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Rename(filepath.Join(dir, "isos", "old"), filepath.Join(dir, "moved")))
	must(os.Remove(filepath.Join(dir, "gone.iso")))
	must(os.Rename(filepath.Join(dir, "over.iso"), filepath.Join(dir, "replaced.iso")))

	again := newServer(dir) // a restart: nothing cached
	for _, tc := range []struct {
		name   string
		handle []byte
		want   []string // nil: stale
	}{
		{"the mount's root", handles[""], []string{}},
		{"a file", handles["a.iso"], []string{"a.iso"}},
		{"a folder", handles["isos"], []string{"isos"}},
		{"a file in a folder", handles["isos/b.iso"], []string{"isos", "b.iso"}},
		{"a file whose folder was renamed", handles["isos/old/c.iso"], []string{"moved", "c.iso"}},
		{"a file renamed over another", handles["over.iso"], []string{"replaced.iso"}},
		{"the file it replaced", handles["replaced.iso"], nil},
		{"a removed file", handles["gone.iso"], nil},
		{"a name that did not exist", first.ToHandle(first.fs, []string{"never"}), nil},
		{"another server's handle", []byte("0123456789abcdef"), nil},
		{"a live inode under another tag", append([]byte("xyz1"), handles["a.iso"][len(handleTag):]...), nil},
		{"a short handle", handleTag, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, srv := range []*stableHandles{again, first} {
				fs, p, err := srv.FromHandle(tc.handle)
				switch {
				case tc.want == nil && !isStale(err):
					t.Errorf("got %v %v, want ESTALE", p, err)
				case tc.want != nil && (err != nil || !slices.Equal(p, tc.want) || fs != srv.fs):
					t.Errorf("got %v %v, want %v", p, err, tc.want)
				}
			}
		})
	}
}

// A rename through the server drops the old name's cache entry, and the
// handle the client holds still finds the file.
func TestRenameKeepsTheHandle(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ".tmp-upload"), []byte("x"), 0o644)
	srv := newServer(dir)
	fh := srv.ToHandle(srv.fs, []string{".tmp-upload"})
	if err := srv.fs.Rename(".tmp-upload", "final.iso"); err != nil {
		t.Fatal(err)
	}
	srv.InvalidateHandle(srv.fs, fh)
	if _, p, err := srv.FromHandle(fh); err != nil || !slices.Equal(p, []string{"final.iso"}) {
		t.Fatalf("renamed file: %v %v", p, err)
	}
}
