package fs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClean(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "."}, {"/", "."}, {".", "."}, {"a", "a"}, {"/a/b.iso", "a/b.iso"},
		{"a//b/", "a/b"}, {`a\b`, "a/b"}, {"./a/./b", "a/b"}, {"a..b", "a..b"}, {"...", "..."},
	} {
		got, err := Clean(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Clean(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"..", "../x", "a/../../x", `a\..\..\x`, "/..", "a/..", "x\x00y", `..\`} {
		if got, err := Clean(in); !errors.Is(err, ErrOutside) {
			t.Errorf("Clean(%q) = %q, %v; want ErrOutside", in, got, err)
		}
	}
}

// A symlink pointing out of the store is never followed by Abs or the root.
func TestSymlinkEscape(t *testing.T) {
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("x"), 0o644)
	s, err := Open(Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	os.Symlink(outside, filepath.Join(s.Dir(), "out"))
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(s.Dir(), "s.iso"))
	for _, p := range []string{"out/secret", "s.iso", "out"} {
		if abs, err := s.Abs(p); err == nil {
			t.Errorf("Abs(%q) = %q: escaped", p, abs)
		}
		if _, err := s.Root().Open(p); err == nil {
			t.Errorf("root.Open(%q) escaped", p)
		}
	}
}

func FuzzClean(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "%2e%2e/x", `..\x`, "a/./../..", "\x00", "//a//", "a/.../b"} {
		f.Add(s)
	}
	root := f.TempDir()
	os.MkdirAll(filepath.Join(root, "a", "b"), 0o755)
	r, err := os.OpenRoot(root)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := Clean(in)
		if err != nil {
			return
		}
		if strings.HasPrefix(got, "/") || got == ".." || strings.HasPrefix(got, "../") || strings.Contains(got, "/../") || strings.HasSuffix(got, "/..") || strings.ContainsRune(got, 0) {
			t.Fatalf("Clean(%q) = %q leaves the root", in, got)
		}
		if j := filepath.Join(root, got); j != root && !strings.HasPrefix(j, root+"/") {
			t.Fatalf("Clean(%q) = %q joins outside: %q", in, got, j)
		}
		if f, err := r.Open(got); err == nil {
			f.Close()
		}
	})
}
