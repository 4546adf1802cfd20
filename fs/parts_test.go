package fs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/msdav/msdav/internal/fusetest"
)

func partByPath(ps []Part, p string) (Part, bool) {
	for _, x := range ps {
		if x.Path == p {
			return x, true
		}
	}
	return Part{}, false
}

// The store on ext4 with a tmpfs subtree ("usb stick", a space in the name
// exercises mountinfo's octal escapes) and a read-only tmpfs subtree.
func TestPartsAndCatalog(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "store")
	mountExt4(t, dir, 64)
	mountTmpfs(t, filepath.Join(dir, "usb stick"), 32)
	os.WriteFile(filepath.Join(dir, "usb stick", "tools.img"), make([]byte, 4096), 0o644)
	mountTmpfs(t, filepath.Join(dir, "ro"), 8)
	os.WriteFile(filepath.Join(dir, "ro", "old.iso"), make([]byte, 10), 0o644)
	run(t, "mount", "-o", "remount,ro", filepath.Join(dir, "ro"))
	os.WriteFile(filepath.Join(dir, "win.iso"), make([]byte, 2048), 0o644)
	for _, junk := range []string{"._win.iso", ".DS_Store", uploadPrefix + "1-x.iso", "Thumbs.db"} {
		os.WriteFile(filepath.Join(dir, junk), nil, 0o644)
	}
	s, err := Open(Options{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()

	parts, err := s.Parts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{".": "ext4", "usb stick": "tmpfs", "ro": "tmpfs"}
	if len(parts) != len(want) {
		t.Fatalf("parts = %+v", parts)
	}
	for p, fstype := range want {
		got, ok := partByPath(parts, p)
		if !ok || got.FSType != fstype || !got.Available || got.Size == 0 {
			t.Errorf("part %q = %+v, want fstype %s, available, sized", p, got, fstype)
		}
	}
	if p, _ := partByPath(parts, "ro"); p.Writable || p.Reason != "mounted read-only" {
		t.Errorf("ro part = %+v", p)
	}
	if p, _ := partByPath(parts, "usb stick"); !p.Writable || p.Free == 0 {
		t.Errorf("usb part = %+v", p)
	}

	// An upload in progress is listed, incomplete, with progress.
	u, err := s.Create(ctx, "usb stick/new.iso", 1000)
	if err != nil {
		t.Fatal(err)
	}
	u.Write(make([]byte, 400))
	// An image copied in from outside shows up without any reset.
	os.WriteFile(filepath.Join(dir, "usb stick", "outside.iso"), []byte("x"), 0o644)

	imgs, err := s.Images(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Image{}
	for _, im := range imgs {
		got[im.Path] = im
	}
	for path, part := range map[string]string{"win.iso": ".", "usb stick/tools.img": "usb stick", "ro/old.iso": "ro", "usb stick/outside.iso": "usb stick"} {
		if im, ok := got[path]; !ok || im.Part != part || !im.Complete {
			t.Errorf("image %q = %+v (want part %q, complete)", path, im, part)
		}
	}
	if im := got["usb stick/new.iso"]; im.Complete || im.Received != 400 || im.Expected != 1000 {
		t.Errorf("upload in progress = %+v", im)
	}
	for p := range got {
		if strings.Contains(p, "._") || strings.Contains(p, "DS_Store") || strings.Contains(p, ".msdav") || strings.Contains(p, "Thumbs") {
			t.Errorf("junk listed: %q", p)
		}
	}
	u.Abort()

	use, err := s.Usage(ctx, "usb stick/tools.img")
	if err != nil || use.Path != "usb stick" || use.FSType != "tmpfs" {
		t.Errorf("Usage = %+v, %v", use, err)
	}

	// MOVE across parts falls back to copy-then-delete and replaces the destination.
	os.WriteFile(filepath.Join(dir, "usb stick", "dst.iso"), []byte("old"), 0o644)
	os.WriteFile(filepath.Join(dir, "src.iso"), []byte("new content"), 0o644)
	if err := s.Rename(ctx, "src.iso", "usb stick/dst.iso"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "usb stick", "dst.iso")); string(b) != "new content" {
		t.Errorf("moved content %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "src.iso")); !os.IsNotExist(err) {
		t.Error("source survived a cross-part move")
	}
	os.MkdirAll(filepath.Join(dir, "tree", "a"), 0o755)
	os.WriteFile(filepath.Join(dir, "tree", "a", "f"), []byte("f"), 0o644)
	if err := s.Rename(ctx, "tree", "usb stick/tree"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "usb stick", "tree", "a", "f")); string(b) != "f" {
		t.Errorf("moved tree content %q", b)
	}
	// A move into the read-only part fails and loses nothing.
	if err := s.Rename(ctx, "win.iso", "ro/win.iso"); err == nil {
		t.Error("move into a read-only part succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "win.iso")); err != nil {
		t.Error("failed move lost the source")
	}
}

type fakeAttachments map[string][]int

func (f fakeAttachments) Attached() (map[string][]int, error) { return f, nil }

func TestAttachedImagesAreLocked(t *testing.T) {
	s, err := Open(Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	os.MkdirAll(filepath.Join(s.Dir(), "isos"), 0o755)
	os.WriteFile(filepath.Join(s.Dir(), "isos", "a.iso"), []byte("a"), 0o644)
	s.SetAttachments(fakeAttachments{"isos/a.iso": {1}})
	ctx := context.Background()
	var le *LockedError
	for name, err := range map[string]error{
		"remove file":    s.RemoveAll(ctx, "isos/a.iso"),
		"remove parent":  s.RemoveAll(ctx, "isos"),
		"rename file":    s.Rename(ctx, "isos/a.iso", "b.iso"),
		"rename parent":  s.Rename(ctx, "isos", "other"),
		"rename onto it": s.Rename(ctx, "x", "isos/a.iso"),
		"mutable":        s.Mutable("/isos/a.iso"),
	} {
		if !errors.As(err, &le) || le.Drive != 1 || le.Path != "isos/a.iso" {
			t.Errorf("%s: err = %v, want LockedError naming drive 1", name, err)
		}
	}
	if _, err := s.Create(ctx, "isos/a.iso", 1); !errors.As(err, &le) {
		t.Errorf("overwrite: err = %v", err)
	}
	if !strings.Contains(le.Error(), "drive 1") {
		t.Errorf("message %q does not name the drive", le.Error())
	}
	if b, _ := os.ReadFile(filepath.Join(s.Dir(), "isos", "a.iso")); string(b) != "a" {
		t.Error("attached image changed")
	}
	// An upload that started before the attach cannot replace it at commit.
	s.SetAttachments(fakeAttachments{})
	u, err := s.Create(ctx, "isos/a.iso", 1)
	if err != nil {
		t.Fatal(err)
	}
	u.Write([]byte("b"))
	s.SetAttachments(fakeAttachments{"isos/a.iso": {0}})
	if err := u.Commit(); !errors.As(err, &le) {
		t.Errorf("commit over attached image: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(s.Dir(), "isos", "a.iso")); string(b) != "a" {
		t.Error("attached image replaced at commit")
	}
	assertNoTemps(t, s.Dir())
}

func assertNoTemps(t *testing.T, dir string) {
	t.Helper()
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasPrefix(fi.Name(), tempPrefix) && !strings.HasPrefix(fi.Name(), sumPrefix) {
			t.Errorf("temp file left behind: %s", p)
		}
		return nil
	})
}

func TestUploadAbortAndFullDisk(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "store")
	mountTmpfs(t, dir, 4)
	s, err := Open(Options{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	u, _ := s.Create(ctx, "a.iso", 10)
	u.Write([]byte("12345"))
	if err := u.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.iso")); !os.IsNotExist(err) {
		t.Error("aborted upload visible")
	}
	u, _ = s.Create(ctx, "big.iso", 8<<20)
	_, err = u.ReadFrom(strings.NewReader(strings.Repeat("x", 8<<20)))
	if !IsNoSpace(err) {
		t.Fatalf("write past a full tmpfs: %v, want ENOSPC", err)
	}
	u.Abort()
	assertNoTemps(t, dir)
	p, _ := s.Usage(ctx, ".")
	if p.Free < 3<<20 {
		t.Errorf("space not freed after the aborted upload: %d free", p.Free)
	}
}

func TestDeadPartDoesNotHang(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "store")
	mountTmpfs(t, dir, 16)
	os.WriteFile(filepath.Join(dir, "alive.iso"), []byte("x"), 0o644)
	nfs := filepath.Join(dir, "nfs")
	os.Mkdir(nfs, 0o755)
	revive := fusetest.Dead(t, "deadnfs", nfs)
	opened := time.Now()
	s, err := Open(Options{Root: dir, PartTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Open sweeps every part for crash leftovers; the dead one costs it
	// the part timeout.
	if took := time.Since(opened); took > 3*time.Second {
		t.Errorf("Open with a dead part took %s", took)
	}
	ctx := context.Background()
	before := runtime.NumGoroutine()
	for i := 0; i < 5; i++ {
		start := time.Now()
		parts, err := s.Parts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		imgs, err := s.Images(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("listing with a dead part took %s", took)
		}
		dead, _ := partByPath(parts, "nfs")
		if dead.Available || !strings.Contains(dead.Reason, "did not answer") {
			t.Errorf("dead part = %+v", dead)
		}
		if root, _ := partByPath(parts, "."); !root.Available {
			t.Errorf("root part unavailable: %+v", root)
		}
		if len(imgs) != 1 || imgs[0].Path != "alive.iso" {
			t.Errorf("images with a dead part = %+v", imgs)
		}
		// Uploads elsewhere keep working.
		u, err := s.Create(ctx, "up.iso", 1)
		if err != nil {
			t.Fatal(err)
		}
		u.Write([]byte("1"))
		if err := u.Commit(); err != nil {
			t.Fatal(err)
		}
		s.RemoveAll(ctx, "up.iso")
	}
	// With an image attached, changing the dead part cannot be vouched
	// for: refused at once (fails closed), and the rest of the store is free.
	s.SetAttachments(fakeAttachments{"alive.iso": {0}})
	start := time.Now()
	if err := s.Mutable("nfs"); !errors.Is(err, ErrAttachUnknown) {
		t.Errorf("Mutable of the dead part: %v, want ErrAttachUnknown", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Mutable of the dead part took %s", took)
	}
	if err := s.Mutable("elsewhere.iso"); err != nil {
		t.Errorf("Mutable elsewhere with a dead part: %v", err)
	}
	s.SetAttachments(nil)
	// One stuck probe per part at most, not one per call. Goroutines that
	// are ending (a finished probe, on a loaded machine) get a moment.
	grown := runtime.NumGoroutine() - before
	for deadline := time.Now().Add(2 * time.Second); grown > 4 && time.Now().Before(deadline); grown = runtime.NumGoroutine() - before {
		time.Sleep(20 * time.Millisecond)
	}
	if grown > 4 {
		t.Errorf("goroutines grew by %d over 5 listings of a dead part", grown)
	}
	revive()
	deadline := time.Now().Add(5 * time.Second)
	for {
		parts, _ := s.Parts(ctx)
		if p, _ := partByPath(parts, "nfs"); p.Available {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("part did not come back after the server answered again")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
