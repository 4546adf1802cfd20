package fs

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// wantHeld checks that every way of changing rel is refused with a
// *LockedError naming drive (-1: any), and that nothing on disk changed.
func wantHeld(t *testing.T, s *Store, rel string, drive int) {
	t.Helper()
	ctx := context.Background()
	var le *LockedError
	if err := s.Mutable(rel); !errors.As(err, &le) || drive >= 0 && le.Drive != drive {
		t.Errorf("Mutable(%s): %v, want locked by drive %d", rel, err, drive)
	}
	before, _ := s.Root().Lstat(rel)
	if err := s.RemoveAll(ctx, rel); !errors.As(err, &le) {
		t.Errorf("RemoveAll(%s): %v, want locked", rel, err)
	}
	if err := s.Rename(ctx, rel, "moved-away"); !errors.As(err, &le) {
		t.Errorf("Rename(%s): %v, want locked", rel, err)
	}
	if err := s.Rename(ctx, "spare.bin", rel); !errors.As(err, &le) {
		t.Errorf("Rename onto %s: %v, want locked", rel, err)
	}
	if before != nil && !before.IsDir() {
		if u, err := s.Create(ctx, rel, -1); !errors.As(err, &le) {
			t.Errorf("Create(%s): %v, want locked", rel, err)
			if err == nil {
				u.Abort()
			}
		}
	}
	after, err := s.Root().Lstat(rel)
	if before != nil && (err != nil || !os.SameFile(before, after)) {
		t.Errorf("%s changed although refused: %v", rel, err)
	}
}

func wantFree(t *testing.T, s *Store, rel string) {
	t.Helper()
	if err := s.Mutable(rel); err != nil {
		t.Errorf("Mutable(%s): %v, want nil (not held)", rel, err)
	}
}

// Symlink and hard-link aliases of an attached image, and folders holding
// them, are as locked as the image's own name; the drive may also name
// the image through a symlink.
func TestHeldByIdentity(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := func(rel string) {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, rel)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, rel), []byte("image "+rel), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w("isos/a.iso")
	w("isos/c.iso")
	w("other.iso")
	w("spare.bin")
	os.MkdirAll(filepath.Join(dir, "links", "deep"), 0o755)
	must(t, os.Link(filepath.Join(dir, "isos/a.iso"), filepath.Join(dir, "hard.iso")))
	must(t, os.Link(filepath.Join(dir, "isos/a.iso"), filepath.Join(dir, "links/deep/h.iso")))
	must(t, os.Symlink("isos/a.iso", filepath.Join(dir, "sym.iso")))
	must(t, os.Symlink("../isos/c.iso", filepath.Join(dir, "links/c-link.iso")))
	s.SetAttachments(fakeAttachments{"isos/a.iso": {0}, "links/c-link.iso": {1}})

	for _, rel := range []string{"isos/a.iso", "hard.iso", "sym.iso", "links/deep", "links/deep/h.iso"} {
		wantHeld(t, s, rel, 0)
	}
	wantHeld(t, s, "links", -1) // holds a link to each
	wantHeld(t, s, "isos", -1)
	wantHeld(t, s, "isos/c.iso", 1) // the target of the name the drive has
	wantFree(t, s, "other.iso")
	wantFree(t, s, "spare.bin")
	if err := s.RemoveAll(context.Background(), "other.iso"); err != nil {
		t.Errorf("removing an unrelated image: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// mountFolding mounts a fresh filesystem that folds case at dir: exFAT
// through exfat-fuse on a loop device, or FAT through fusefat. The
// machine's kernel may lack vfat and exfat, so both are FUSE here; a
// kernel driver folds case alike.
func mountFolding(t *testing.T, kind, dir string) {
	t.Helper()
	needRoot(t)
	img := filepath.Join(t.TempDir(), kind+".img")
	run(t, "truncate", "-s", "32M", img)
	os.MkdirAll(dir, 0o755)
	switch kind {
	case "exfat":
		for _, tool := range []string{"mkfs.exfat", "mount.exfat-fuse", "losetup"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("needs %s (Debian exfatprogs, exfat-fuse, mount)", tool)
			}
		}
		run(t, "mkfs.exfat", img)
		out, err := exec.Command("losetup", "-f", "--show", img).Output()
		if err != nil {
			t.Skipf("no loop device: %v", err)
		}
		loop := strings.TrimSpace(string(out))
		t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })
		run(t, "mount.exfat-fuse", loop, dir)
	case "vfat":
		for _, tool := range []string{"mkfs.vfat", "fusefat"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("needs %s (Debian dosfstools, fusefat)", tool)
			}
		}
		run(t, "mkfs.vfat", img)
		if exec.Command("mount", "-o", "loop", img, dir).Run() != nil {
			run(t, "fusefat", "-o", "rw+", img, dir)
		}
	}
	unmountLater(t, dir)
}

// On a part that folds case, every spelling of an attached image and of
// the folder holding it is locked; internal names are too in any case.
func TestHeldCaseAlias(t *testing.T) {
	for _, kind := range []string{"exfat", "vfat"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			mountFolding(t, kind, filepath.Join(dir, "usb"))
			s, err := Open(Options{Root: dir})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			os.MkdirAll(filepath.Join(dir, "usb", "Isos"), 0o755)
			for _, n := range []string{"usb/WIN.ISO", "usb/Isos/Deb.iso", "usb/other.iso", "spare.bin"} {
				must(t, os.WriteFile(filepath.Join(dir, n), []byte("image"), 0o644))
			}
			if _, err := os.Stat(filepath.Join(dir, "usb/win.iso")); err != nil {
				t.Skipf("%s does not fold case here: %v", kind, err)
			}
			s.SetAttachments(fakeAttachments{"usb/WIN.ISO": {0}, "usb/Isos/Deb.iso": {1}})
			for _, rel := range []string{"usb/win.iso", "usb/Win.Iso", "usb/WIN.ISO"} {
				wantHeld(t, s, rel, 0)
			}
			for _, rel := range []string{"usb/isos", "usb/ISOS/deb.ISO", "usb/isos/deb.iso"} {
				wantHeld(t, s, rel, 1)
			}
			wantFree(t, s, "usb/other.iso")
			wantFree(t, s, "usb/OTHER.iso")
			if err := s.RemoveAll(context.Background(), "usb/OTHER.iso"); err != nil {
				t.Errorf("removing an unrelated image by another case: %v", err)
			}
			// The sidecar of an upload is internal in every spelling.
			u, err := s.Create(context.Background(), "usb/new.iso", -1)
			must(t, err)
			u.Write([]byte("data"))
			must(t, u.Commit())
			for _, n := range []string{"usb/.MSDAV-SUM-new.iso", "usb/.Msdav-sum-new.iso"} {
				if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
					t.Fatalf("setup: the sidecar is not reachable as %s: %v", n, err)
				}
				if Classify(n) != Internal {
					t.Errorf("%s is not internal", n)
				}
				if _, err := s.Create(context.Background(), n, -1); !errors.Is(err, ErrBadName) {
					t.Errorf("Create(%s): %v, want ErrBadName", n, err)
				}
			}
		})
	}
}

// What the held check costs a change while a drive holds an image: a file
// elsewhere, and a folder of 1000 files (walked for links).
func BenchmarkMutableHeld(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(Options{Root: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	os.MkdirAll(filepath.Join(dir, "many"), 0o755)
	for i := range 1000 {
		os.WriteFile(filepath.Join(dir, "many", strconv.Itoa(i)), nil, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "a.iso"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.iso"), []byte("x"), 0o644)
	s.SetAttachments(fakeAttachments{"a.iso": {0}})
	for _, rel := range []string{"b.iso", "many"} {
		b.Run(rel, func(b *testing.B) {
			for b.Loop() {
				if err := s.Mutable(rel); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Another box's lease holds the file too: a hard link or symlink to the
// leased image, or the library's folder in another case, is locked.
func TestLeasedByIdentity(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Root: dir, Shared: []string{"lib"}, Box: "me"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	os.MkdirAll(filepath.Join(dir, "lib", "isos"), 0o755)
	os.MkdirAll(filepath.Join(dir, "mine"), 0o755)
	must(t, os.WriteFile(filepath.Join(dir, "lib/isos/a.iso"), []byte("image"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "spare.bin"), []byte("spare"), 0o644))
	must(t, os.Link(filepath.Join(dir, "lib/isos/a.iso"), filepath.Join(dir, "lib/hard.iso")))
	must(t, os.Symlink("isos/a.iso", filepath.Join(dir, "lib/sym.iso")))
	lease := `{"box":"other","drive":3,"image":"isos/a.iso","rw":false,"expires":"` + time.Now().Add(time.Hour).Format(time.RFC3339) + `"}`
	must(t, os.WriteFile(filepath.Join(dir, "lib", leaseName("other", 3)), []byte(lease), 0o644))
	for _, rel := range []string{"lib/isos/a.iso", "lib/hard.iso", "lib/sym.iso", "lib/isos"} {
		wantHeld(t, s, rel, 3)
		var le *LockedError
		if err := s.Mutable(rel); errors.As(err, &le) && le.Box != "other" {
			t.Errorf("%s: locked by box %q, want other", rel, le.Box)
		}
	}
	wantFree(t, s, "spare.bin")
}
