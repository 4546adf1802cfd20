package fs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// List answers what os.Lstat/os.Stat answer for each child, sorted, with
// the store's own files only named, links followed inside the store and
// left out when they dangle or leave it; on a folder big enough to be
// split between goroutines, every entry is there once.
func TestList(t *testing.T) {
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret.iso"), []byte("secret"), 0o644)
	s, err := Open(Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := filepath.Join(s.Dir(), "d")
	os.MkdirAll(filepath.Join(d, "sub"), 0o755)
	const many = 3*listChunk + 7
	for i := 0; i < many; i++ {
		os.WriteFile(filepath.Join(d, fmt.Sprintf("f%05d.iso", i)), make([]byte, i), 0o644)
	}
	os.WriteFile(filepath.Join(s.Dir(), "top.img"), []byte("top"), 0o644)
	os.WriteFile(filepath.Join(d, tempPrefix+"props-f00001.iso"), []byte("{}"), 0o644)
	os.Symlink("../top.img", filepath.Join(d, "link-in.img"))
	os.Symlink(filepath.Join(outside, "secret.iso"), filepath.Join(d, "link-out.iso"))
	os.Symlink("nowhere", filepath.Join(d, "link-dangling.iso"))
	if err := syscall.Mkfifo(filepath.Join(d, "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}

	entries, hidden, err := s.List("/d/")
	if err != nil {
		t.Fatal(err)
	}
	if len(hidden) != 1 || hidden[0] != tempPrefix+"props-f00001.iso" {
		t.Errorf("hidden = %q", hidden)
	}
	if want := many + 3; len(entries) != want { // files, sub, link-in, pipe
		t.Fatalf("%d entries, want %d", len(entries), want)
	}
	seen := map[string]bool{}
	for i, e := range entries {
		if i > 0 && entries[i-1].Name() >= e.Name() {
			t.Errorf("not sorted: %q before %q", entries[i-1].Name(), e.Name())
		}
		if seen[e.Name()] {
			t.Errorf("%q twice", e.Name())
		}
		seen[e.Name()] = true
		want, err := os.Stat(filepath.Join(d, e.Name()))
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		wantType := want.Mode().Type()
		if wantType&os.ModeNamedPipe != 0 {
			wantType = os.ModeIrregular // List does not tell fifos, sockets and devices apart
		}
		if e.Size() != want.Size() || !e.ModTime().Equal(want.ModTime()) || e.IsDir() != want.IsDir() || e.Mode().Type() != wantType {
			t.Errorf("%s: got %v %d %v %v, os.Stat says %v %d %v %v", e.Name(), e.Mode(), e.Size(), e.ModTime(), e.IsDir(), want.Mode(), want.Size(), want.ModTime(), want.IsDir())
		}
	}
	for _, n := range []string{"link-out.iso", "link-dangling.iso"} {
		if seen[n] {
			t.Errorf("%s listed", n)
		}
	}
	if !seen["link-in.img"] || !seen["sub"] || !seen["pipe"] {
		t.Errorf("missing link-in.img, sub or pipe: %v", seen["link-in.img"])
	}

	for _, tc := range []struct {
		rel  string
		want error
	}{
		{"../x", ErrOutside},
		{"nope", os.ErrNotExist},
		{"top.img", syscall.ENOTDIR},
	} {
		if _, _, err := s.List(tc.rel); !errors.Is(err, tc.want) {
			t.Errorf("List(%q) = %v, want %v", tc.rel, err, tc.want)
		}
	}
}

// A name that vanished between the listing and its stat is reported to
// the caller as not there, not as a failure of the whole listing.
func TestStatChildrenVanished(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "here"), []byte("x"), 0o644)
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []string
	err = statChildren(f, []string{"here", "gone"}, func(i int, e Entry, err error) {
		got = append(got, fmt.Sprintf("%d %s %v", i, e.Name(), errors.Is(err, os.ErrNotExist)))
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[0 here false 1  true]" {
		t.Errorf("got %q", got)
	}
}
