package fs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func openGuarded(t testing.TB, dir string, grace time.Duration) *Store {
	t.Helper()
	s, err := Open(Options{Root: dir, Remount: true, Grace: grace})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestGuardROAtIdleRWWhileWriting(t *testing.T) {
	needRoot(t)
	for _, kind := range []string{"tmpfs", "ext4"} {
		t.Run(kind, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "store")
			if kind == "tmpfs" {
				mountTmpfs(t, dir, 64)
			} else {
				mountExt4(t, dir, 64)
			}
			s := openGuarded(t, dir, 300*time.Millisecond)
			if !isRO(t, dir) {
				t.Fatal("store is rw at idle right after Open")
			}
			ctx := context.Background()
			// Two concurrent writers share one rw period.
			done1, err := s.Write(ctx, "a")
			if err != nil {
				t.Fatal(err)
			}
			done2, err := s.Write(ctx, "b")
			if err != nil {
				t.Fatal(err)
			}
			if isRO(t, dir) {
				t.Fatal("store ro while writers hold it")
			}
			done1()
			time.Sleep(500 * time.Millisecond) // longer than the grace: writer b still holds it
			if isRO(t, dir) {
				t.Fatal("store went ro while a writer still held it")
			}
			done2()
			done2() // idempotent
			waitRO(t, dir, 5*time.Second)
			if c := s.RemountCycles(); c != 1 {
				t.Errorf("two overlapping writers cost %d cycles, want 1", c)
			}
			// A real upload goes through the same guard.
			u, err := s.Create(ctx, "x.iso", 3)
			if err != nil {
				t.Fatal(err)
			}
			u.Write([]byte("abc"))
			if err := u.Commit(); err != nil {
				t.Fatal(err)
			}
			waitRO(t, dir, 5*time.Second)
			if b, _ := os.ReadFile(filepath.Join(dir, "x.iso")); string(b) != "abc" {
				t.Errorf("upload content %q", b)
			}
			if err := os.WriteFile(filepath.Join(dir, "y"), nil, 0o644); err == nil {
				t.Error("plain write succeeded on the idle store")
			}
		})
	}
}

// A file held open for writing outside the guard makes the kernel refuse the
// ro remount with EBUSY: the guard keeps retrying and gets there once it closes.
func TestGuardRetriesEBUSY(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "store")
	mountExt4(t, dir, 64)
	s := openGuarded(t, dir, 50*time.Millisecond)
	done, err := s.Write(context.Background(), "scp")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "held-open"))
	if err != nil {
		t.Fatal(err)
	}
	done()
	deadline := time.Now().Add(5 * time.Second)
	for s.guard.busy.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no EBUSY retry seen")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if isRO(t, dir) {
		t.Fatal("ro although a file is open for writing")
	}
	f.Close()
	waitRO(t, dir, 10*time.Second)
	t.Logf("EBUSY answers before ro: %d", s.guard.busy.Load())
}

// A crash leaves the filesystem rw and maybe an upload temp: the next Open repairs both.
func TestCrashLeftoverRepaired(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "store")
	mountTmpfs(t, dir, 16)
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	stale := filepath.Join(dir, "sub", uploadPrefix+"123-win.iso")
	os.WriteFile(stale, []byte("partial"), 0o644)
	os.WriteFile(filepath.Join(dir, "keep.iso"), []byte("whole"), 0o644)
	if isRO(t, dir) {
		t.Fatal("setup: store should start rw, as after a crash")
	}
	s := openGuarded(t, dir, time.Second)
	if !isRO(t, dir) {
		t.Error("Open left the crashed store rw")
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale upload temp survived Open: %v", err)
	}
	imgs, _ := s.Images(context.Background())
	if len(imgs) != 1 || imgs[0].Path != "keep.iso" {
		t.Errorf("catalog after repair: %+v", imgs)
	}
	// Close puts it back to ro even when a writer just finished.
	done, _ := s.Write(context.Background(), "x")
	done()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !isRO(t, dir) {
		t.Error("Close left the store rw")
	}
}

// 1000 small uploads in a burst cost one rw/ro cycle, not 1000.
func TestGuardBurstCostsOneCycle(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "store")
	mountExt4(t, dir, 128)
	s := openGuarded(t, dir, 2*time.Second)
	ctx := context.Background()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 250; i++ {
				u, err := s.Create(ctx, fmt.Sprintf("f%d-%d.txt", w, i), 100)
				if err != nil {
					errs <- err
					return
				}
				u.Write(make([]byte, 100))
				if err := u.Commit(); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	took := time.Since(start)
	waitRO(t, dir, 10*time.Second)
	c := s.RemountCycles()
	t.Logf("1000 small writes (4 writers) took %s and cost %d remount cycle(s)", took, c)
	if c > 3 {
		t.Errorf("1000 small writes cost %d cycles; the grace should coalesce them", c)
	}
}

// BenchmarkRemountCycle measures one rw+ro cycle (with syncfs) on ext4 on loop.
func BenchmarkRemountCycle(b *testing.B) {
	needRoot(b)
	dir := filepath.Join(b.TempDir(), "store")
	mountExt4(b, dir, 64)
	s := openGuarded(b, dir, 0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		done, err := s.Write(context.Background(), "bench")
		if err != nil {
			b.Fatal(err)
		}
		done()
		if err := s.guard.settleNow(5 * time.Second); err != nil {
			b.Fatal(err)
		}
	}
}

// Open on a store that cannot go ro (a file held open for writing, as the
// kernel holds an image attached rw across a crash) serves anyway and goes
// ro once the file is closed.
func TestOpenWhileBusy(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "store")
	mountExt4(t, dir, 64)
	f, err := os.Create(filepath.Join(dir, "rw.img"))
	if err != nil {
		t.Fatal(err)
	}
	s := openGuarded(t, dir, 50*time.Millisecond)
	if isRO(t, dir) {
		t.Fatal("ro although a file is open for writing")
	}
	imgs, err := s.Images(context.Background())
	if err != nil || len(imgs) != 1 {
		t.Fatalf("store not serving: %v %v", imgs, err)
	}
	f.Close()
	waitRO(t, dir, 10*time.Second)
}

// Temps a crash left on mounted parts are swept at Open too (a dead part:
// TestDeadPartDoesNotHang).
func TestSweepParts(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "store")
	os.MkdirAll(dir, 0o755)
	usb := filepath.Join(dir, "usb")
	mountTmpfs(t, usb, 16)
	os.MkdirAll(filepath.Join(usb, "isos"), 0o755)
	leftovers := []string{
		filepath.Join(usb, uploadPrefix+"1-a.iso"),
		filepath.Join(usb, "isos", tempPrefix+"move-2-b.iso"),
		filepath.Join(dir, uploadPrefix+"3-c.iso"),
		filepath.Join(usb, "isos", gonePrefix+"4-d.iso"), // a remove cut short
	}
	for _, p := range leftovers {
		os.WriteFile(p, []byte("partial"), 0o644)
	}
	os.WriteFile(filepath.Join(usb, "isos", "keep.iso"), []byte("whole"), 0o644)
	s, err := Open(Options{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range leftovers {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s survived Open: %v", p, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(usb, "isos", "keep.iso")); err != nil || string(b) != "whole" {
		t.Errorf("keep.iso: %q %v", b, err)
	}
}

// A remount that fails with EBUSY (files open for writing while going rw
// cannot happen, but an NFS-backed root or a racing admin can answer it)
// must give the writer's slot back: a leaked count keeps the store rw for
// good. Both directions go through the remount seam, no root needed.
func TestGuardRemountFailureReleasesWriter(t *testing.T) {
	dir := t.TempDir()
	var fail atomic.Bool
	var calls atomic.Int64
	g := &guard{mnt: dir, grace: 10 * time.Millisecond, log: slog.New(slog.DiscardHandler),
		remount: func(mnt string, rw bool) error {
			calls.Add(1)
			if fail.Load() {
				return fmt.Errorf("remount %s: %w", mnt, unix.EBUSY)
			}
			return nil
		}}
	fail.Store(true)
	if _, err := g.acquire(context.Background(), "upload a.iso"); !isBusy(err) {
		t.Fatalf("acquire with remount EBUSY: err %v, want EBUSY", err)
	}
	if rw, n := g.state(); rw || n != 0 {
		t.Fatalf("after a failed rw remount: rw %v, writers %d; want false, 0", rw, n)
	}
	if h := g.holders(); len(h) != 0 {
		t.Fatalf("failed writer still listed as holder: %v", h)
	}
	// The next writer gets the filesystem; after it the guard settles ro,
	// retrying an injected EBUSY on the way down.
	fail.Store(false)
	done, err := g.acquire(context.Background(), "upload b.iso")
	if err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	done()
	deadline := time.Now().Add(5 * time.Second)
	for g.busy.Load() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no EBUSY retry seen going ro")
		}
		time.Sleep(5 * time.Millisecond)
	}
	fail.Store(false)
	for {
		if rw, n := g.state(); !rw && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			rw, n := g.state()
			t.Fatalf("guard did not settle ro: rw %v, writers %d", rw, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	g.close(time.Second)
}
