package fs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// dirEvents watches dir with inotify and returns a function that reports
// what happened there since, as "op name" strings in order.
func dirEvents(t *testing.T, dir string) func() []string {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MOVED_FROM|unix.IN_MOVED_TO|unix.IN_DELETE); err != nil {
		t.Fatal(err)
	}
	return func() []string {
		var out []string
		buf := make([]byte, 64<<10)
		n, err := unix.Read(fd, buf)
		if err != nil && err != unix.EAGAIN {
			t.Fatal(err)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			var ev unix.InotifyEvent
			binary.Read(bytes.NewReader(buf[off:off+unix.SizeofInotifyEvent]), binary.NativeEndian, &ev)
			name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)], "\x00"))
			op := map[uint32]string{unix.IN_MOVED_FROM: "from", unix.IN_MOVED_TO: "to", unix.IN_DELETE: "delete"}[ev.Mask&^unix.IN_ISDIR]
			out = append(out, op+" "+name)
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
		return out
	}
}

// A file is renamed to a hidden name before it is unlinked, so a share
// that keeps an open file's name until its last close (CIFS: delete
// pending) shows it gone at once; folders go as before.
func TestRemoveHidesTheNameFirst(t *testing.T) {
	s, err := Open(Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dir := filepath.Join(s.Dir(), "isos")
	os.MkdirAll(filepath.Join(dir, "old"), 0o755)
	os.WriteFile(filepath.Join(dir, "win.iso"), []byte("image"), 0o644)
	os.WriteFile(filepath.Join(dir, "old", "x.iso"), []byte("image"), 0o644)
	events := dirEvents(t, dir)
	ctx := context.Background()

	if err := s.RemoveAll(ctx, "isos/win.iso"); err != nil {
		t.Fatal(err)
	}
	got := events()
	if len(got) != 3 || got[0] != "from win.iso" || !strings.HasPrefix(got[1], "to "+gonePrefix) ||
		got[2] != "delete "+strings.TrimPrefix(got[1], "to ") {
		t.Errorf("removing a file: %q, want it renamed to %s<hex> and that deleted", got, gonePrefix)
	}
	if err := s.RemoveAll(ctx, "isos/old"); err != nil {
		t.Fatal(err)
	}
	if got := events(); len(got) != 1 || got[0] != "delete old" {
		t.Errorf("removing a folder: %q, want it deleted in place", got)
	}
	if err := s.RemoveAll(ctx, "isos/never.iso"); err != nil {
		t.Errorf("removing what is not there: %v, want nil as before", err)
	}
	assertNoTemps(t, s.Dir())
}

// A name too long for the hidden prefix is unlinked in place; an unlink
// that fails puts the name back and says so, with the path.
func TestRemoveHiddenErrors(t *testing.T) {
	s, err := Open(Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	long := strings.Repeat("l", 240) + ".iso" // 244 bytes: the prefix makes it over 255
	os.WriteFile(filepath.Join(s.Dir(), long), []byte("image"), 0o644)
	if err := s.RemoveAll(ctx, long); err != nil {
		t.Errorf("a 244-byte name: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), long)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a 244-byte name is still there: %v", err)
	}

	os.WriteFile(filepath.Join(s.Dir(), "busy.iso"), []byte("image"), 0o644)
	removeFile = func(*os.Root, string) error { return syscall.EBUSY }
	defer func() { removeFile = (*os.Root).Remove }()
	err = s.RemoveAll(ctx, "busy.iso")
	if !errors.Is(err, syscall.EBUSY) || !strings.Contains(err.Error(), "remove busy.iso") {
		t.Errorf("failed unlink: %v, want EBUSY naming busy.iso", err)
	}
	if b, err := os.ReadFile(filepath.Join(s.Dir(), "busy.iso")); err != nil || string(b) != "image" {
		t.Errorf("after a failed unlink the file is not back under its name: %q %v", b, err)
	}

	// And when the name cannot be given back (a folder took it), the
	// error says where the file is.
	os.WriteFile(filepath.Join(s.Dir(), "taken.iso"), []byte("image"), 0o644)
	removeFile = func(*os.Root, string) error {
		os.MkdirAll(filepath.Join(s.Dir(), "taken.iso", "sub"), 0o755)
		return syscall.EBUSY
	}
	err = s.RemoveAll(ctx, "taken.iso")
	if !errors.Is(err, syscall.EBUSY) || !strings.Contains(err.Error(), "left hidden as "+gonePrefix) {
		t.Errorf("failed unlink, name taken: %v, want EBUSY and where the file is", err)
	}
}

// A lease is dropped the same way: other boxes read the folder's names,
// and on CIFS a plain unlink of a file the client has not really closed
// yet (deferred close) leaves the name, and the 423, behind.
func TestDropLeaseHidesTheNameFirst(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "lib"), 0o755)
	os.WriteFile(filepath.Join(dir, "lib", "win.iso"), []byte("image"), 0o644)
	s, err := Open(Options{Root: dir, Shared: []string{"lib"}, Box: "A"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.PutLease(0, "lib/win.iso", false); err != nil {
		t.Fatal(err)
	}
	lease := leaseName("A", 0)
	if _, err := os.Stat(filepath.Join(dir, "lib", lease)); err != nil {
		t.Fatalf("no lease written: %v", err)
	}
	events := dirEvents(t, filepath.Join(dir, "lib"))
	s.DropLease(0)
	got := events()
	if len(got) != 3 || got[0] != "from "+lease || !strings.HasPrefix(got[1], "to "+gonePrefix) ||
		got[2] != "delete "+strings.TrimPrefix(got[1], "to ") {
		t.Errorf("dropping a lease: %q, want it renamed to %s<n>-%s and that deleted", got, gonePrefix, lease)
	}
	assertNoTemps(t, dir)
}
