package drives

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/gadget"
	"github.com/msdav/msdav/gadget/scsi"
)

// urlMedium is an image read from a URL, as gadget/remote serves one.
type urlMedium struct {
	url    string
	size   int64
	closed bool
}

func (u *urlMedium) ReadAt(p []byte, _ int64) (int, error) { clear(p); return len(p), nil }
func (u *urlMedium) WriteAt([]byte, int64) (int, error)    { return 0, errors.New("read-only") }
func (u *urlMedium) Size() int64                           { return u.size }
func (u *urlMedium) Sync() error                           { return nil }
func (u *urlMedium) URL() string                           { return u.url }
func (u *urlMedium) Close() error                          { u.closed = true; return nil }
func (u *urlMedium) Err() error                            { return nil }

// restartable is one box's store folder ("lib" shared with other boxes)
// and the path of its drives' state file; run starts msdav over them as
// serve does: a new store, a fresh userspace gadget, Persist, New, Restore.
// As root the store is a tmpfs remounted ro while nothing writes, so the
// rw drive's hold shows.
type restartable struct {
	t     *testing.T
	o     fs.Options
	store *fs.Store // the last run's
	last  *Manager  // the last run, killed by the next
	state string
}

func newRestartable(t *testing.T) *restartable {
	t.Helper()
	o := fs.Options{Root: t.TempDir(), Shared: []string{"lib"}, Box: "here", LeaseTTL: 3 * time.Second}
	if os.Geteuid() == 0 {
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", o.Root).CombinedOutput(); err != nil {
			t.Fatalf("mount: %v %s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", "-l", o.Root).Run() })
		o.Remount, o.Grace = true, 20*time.Millisecond
	}
	if err := os.MkdirAll(filepath.Join(o.Root, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &restartable{t: t, o: o, state: filepath.Join(t.TempDir(), "drives.json")}
}

func (r *restartable) run(open OpenURL) (*Manager, *recorder) {
	r.t.Helper()
	m, saved, rec := r.start()
	m.Restore(context.Background(), saved, open)
	return m, rec
}

// start is a new run up to the restore: the store, the gadget, the
// manager, and what the state file says the drives held.
func (r *restartable) start() (*Manager, []gadget.Saved, *recorder) {
	r.t.Helper()
	if r.last != nil {
		r.kill(r.last)
	}
	s, err := fs.Open(r.o)
	if err != nil {
		r.t.Fatal(err)
	}
	r.store = s
	g := gadget.OpenDetached(3, nil)
	saved, err := g.Persist(r.state)
	if err != nil {
		r.t.Fatalf("persist: %v", err)
	}
	rec := &recorder{}
	m := New(s, g, nil, rec.publish, nil)
	r.last = m
	r.t.Cleanup(func() { r.kill(m) })
	return m, saved, rec
}

// kill ends m's run as a kill -9 would: what the process had open closes
// (its images, its hold on the store), nothing is ejected or released on
// purpose, and the state file stays as it was.
func (r *restartable) kill(m *Manager) {
	if m.store == nil {
		return
	}
	state, _ := os.ReadFile(r.state)
	for i := 0; i < m.g.Count(); i++ {
		m.g.Eject(i, true) // closes the file; a dead process's fds close
	}
	for _, h := range m.holds {
		h.release()
	}
	m.holds = map[int]hold{}
	os.WriteFile(r.state, state, 0o600)
	m.store.Close()
	m.store = nil
}

// file writes a file of size zero bytes into the store (before a run's
// store makes it read-only, or through a run's store's write hold).
func (r *restartable) file(rel string, size int) string {
	r.t.Helper()
	if r.store != nil {
		done, err := r.store.Write(context.Background(), "test")
		if err != nil {
			r.t.Fatal(err)
		}
		defer done()
	}
	p := filepath.Join(r.o.Root, rel)
	if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
		r.t.Fatal(err)
	}
	return p
}

// A restart of the userspace backend puts every drive back as it was: a
// CD and a rw flash image in the shared folder (with this box's leases and
// the rw hold), a URL; the state file still says so afterwards.
func TestRestoreAfterRestart(t *testing.T) {
	r := newRestartable(t)
	r.file("lib/boot.iso", 1<<20)
	r.file("lib/rw.img", 1<<20)
	ctx := context.Background()
	opened := map[string]int{}
	open := func(_ context.Context, url string) (scsi.Medium, error) {
		opened[url]++
		return &urlMedium{url: url, size: 4 << 20}, nil
	}
	m, _ := r.run(open)
	if _, err := m.Attach(ctx, Request{Drive: 0, Image: "lib/boot.iso", CDROM: true, RW: false}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach(ctx, Request{Drive: 1, Image: "lib/rw.img", CDROM: false, RW: true}); err != nil {
		t.Fatal(err)
	}
	med, _ := open(ctx, "http://images.example/live.iso")
	if _, err := m.Attach(ctx, Request{Drive: 2, URL: "http://images.example/live.iso", Medium: med, CDROM: true}); err != nil {
		t.Fatal(err)
	}
	before, _ := m.Drives()

	// kill -9: nothing is torn down. A new process finds the drives empty
	// and the state file.
	lib := filepath.Join(r.o.Root, "lib")
	m2, rec := r.run(open)
	after, err := m2.Drives()
	if err != nil {
		t.Fatal(err)
	}
	for i := range before {
		b, _ := json.Marshal(before[i])
		a, _ := json.Marshal(after[i])
		if string(a) != string(b) {
			t.Errorf("drive %d after the restart:\n got %s\nwant %s", i, a, b)
		}
	}
	if opened["http://images.example/live.iso"] != 2 {
		t.Errorf("the URL was opened %d times, want once per run", opened["http://images.example/live.iso"])
	}
	for _, d := range []int{0, 1} {
		if _, err := os.Stat(filepath.Join(lib, ".msdav-lease-here-"+string(rune('0'+d))+".json")); err != nil {
			t.Errorf("drive %d's lease not reclaimed: %v", d, err)
		}
	}
	if _, writers := r.store.Writable(); r.o.Remount && writers != 1 {
		t.Errorf("the rw drive holds %d writers after the restart, want 1", writers)
	}
	if s, n := rec.last(); n == 0 || s.Index != 2 || s.URL == "" {
		t.Errorf("the restored drives were not published: last %+v of %d", s, n)
	}
	if img, err := m2.Attached(); err != nil || len(img["lib/boot.iso"]) != 1 || len(img["lib/rw.img"]) != 1 {
		// What the store asks before it changes an image (423 on the share).
		t.Errorf("attached images after the restart: %v %v", img, err)
	}
	// And again: the file still says the same after a restore.
	m3, _ := r.run(open)
	if d, _ := m3.Drive(1); d.Image == nil || *d.Image != "lib/rw.img" || !d.RW {
		t.Errorf("second restart, drive 1: %+v", d)
	}
}

// A drive whose image is gone, was replaced, or whose URL fails, or which
// another box took rw meanwhile, comes back empty with the reason in its
// state, until it is next changed; the others come back; the file then
// says they are empty, so the next restart does not bring them back.
func TestRestoreFailures(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(r *restartable) // after the first run, before the restart
		why   string
	}{
		{"image gone", func(r *restartable) { os.Remove(filepath.Join(r.o.Root, "lib", "a.iso")) }, "is gone"},
		{"image replaced", func(r *restartable) {
			p := filepath.Join(r.o.Root, "lib", "a.iso")
			os.WriteFile(p+".new", make([]byte, 1<<20), 0o644)
			os.Rename(p+".new", p)
		}, "replaced by another file"},
		{"another box took it rw", func(r *restartable) {
			// This box's lease expired while it was down; the other box's is live.
			lib := filepath.Join(r.o.Root, "lib")
			os.Remove(filepath.Join(lib, ".msdav-lease-here-0.json"))
			b, _ := json.Marshal(fs.Lease{Box: "there", Drive: 0, Image: "a.iso", RW: true, Expires: time.Now().Add(time.Minute)})
			os.WriteFile(filepath.Join(lib, ".msdav-lease-there-0.json"), b, 0o644)
		}, "there"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRestartable(t)
			r.file("lib/a.iso", 1<<20)
			r.file("b.iso", 1<<20)
			m, _ := r.run(nil)
			ctx := context.Background()
			if _, err := m.Attach(ctx, Request{Drive: 0, Image: "lib/a.iso", CDROM: true, RW: false}); err != nil {
				t.Fatal(err)
			}
			if _, err := m.Attach(ctx, Request{Drive: 1, Image: "b.iso", CDROM: true, RW: false}); err != nil {
				t.Fatal(err)
			}
			// What happened while msdav was down, by hand (scp, another box).
			done, err := r.store.Write(ctx, "test")
			if err != nil {
				t.Fatal(err)
			}
			tc.setup(r)
			done()
			m2, _ := r.run(nil)
			d, _ := m2.Drive(0)
			if d.Image != nil || !strings.Contains(d.RestoreError, "lib/a.iso") || !strings.Contains(d.RestoreError, tc.why) {
				t.Errorf("drive 0: %+v, want empty with %q", d, tc.why)
			}
			if d, _ := m2.Drive(1); d.Image == nil || *d.Image != "b.iso" || d.RestoreError != "" {
				t.Errorf("drive 1 did not come back: %+v", d)
			}
			// The next restart does not try again: the file says empty.
			if b, _ := os.ReadFile(r.state); strings.Contains(string(b), "a.iso") || !strings.Contains(string(b), "b.iso") {
				t.Errorf("the state file after the restore:\n%s", b)
			}
			// An eject clears the reason.
			if _, err := m2.Eject(ctx, 0, false); err != nil {
				t.Fatal(err)
			}
			if d, _ := m2.Drive(0); d.RestoreError != "" {
				t.Errorf("the reason stays after an eject: %+v", d)
			}
		})
	}
}

// Stopped while it starts (SIGTERM during the restore): what could not go
// back because of it stays in the file for the next start.
func TestRestoreStopped(t *testing.T) {
	r := newRestartable(t)
	open := func(ctx context.Context, url string) (scsi.Medium, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return &urlMedium{url: url, size: 1 << 20}, nil
	}
	m, _ := r.run(open)
	med, _ := open(context.Background(), "http://images.example/a.iso")
	if _, err := m.Attach(context.Background(), Request{Drive: 0, URL: "http://images.example/a.iso", Medium: med, CDROM: true}); err != nil {
		t.Fatal(err)
	}
	m2, saved, _ := r.start()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m2.Restore(ctx, saved, open)
	if d, _ := m2.Drive(0); d.URL != "" {
		t.Fatalf("restored with a cancelled context: %+v", d)
	}
	if b, _ := os.ReadFile(r.state); !strings.Contains(string(b), "images.example/a.iso") {
		t.Errorf("a restore cut short by a stop emptied the state file:\n%s", b)
	}
}

func TestRestoreURLFailures(t *testing.T) {
	r := newRestartable(t)
	r.file("c.iso", 1<<20)
	ok := func(_ context.Context, url string) (scsi.Medium, error) {
		return &urlMedium{url: url, size: 1 << 20}, nil
	}
	m, _ := r.run(ok)
	ctx := context.Background()
	med, _ := ok(ctx, "http://images.example/a.iso")
	if _, err := m.Attach(ctx, Request{Drive: 0, URL: "http://images.example/a.iso", Medium: med, CDROM: true}); err != nil {
		t.Fatal(err)
	}
	med, _ = ok(ctx, "http://images.example/tiny.iso")
	if _, err := m.Attach(ctx, Request{Drive: 1, URL: "http://images.example/tiny.iso", Medium: med, CDROM: true}); err != nil {
		t.Fatal(err)
	}
	var tiny *urlMedium
	m2, _ := r.run(func(ctx context.Context, url string) (scsi.Medium, error) {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("a URL opened at start without a time limit")
		}
		if strings.HasSuffix(url, "tiny.iso") {
			// The server now has a file too small for a drive.
			tiny = &urlMedium{url: url, size: 100}
			return tiny, nil
		}
		return nil, errors.New("connection refused")
	})
	if d, _ := m2.Drive(0); d.URL != "" || !strings.Contains(d.RestoreError, "http://images.example/a.iso") || !strings.Contains(d.RestoreError, "connection refused") {
		t.Errorf("drive 0 with its URL failing: %+v", d)
	}
	if d, _ := m2.Drive(1); d.URL != "" || !strings.Contains(d.RestoreError, "less than one block") {
		t.Errorf("drive 1 with a URL too small: %+v", d)
	}
	if tiny == nil || !tiny.closed {
		t.Error("a medium that could not go in was not closed")
	}
	// Neither comes back at the next restart either.
	if b, _ := os.ReadFile(r.state); strings.Contains(string(b), "images.example") {
		t.Errorf("the state file after a restore where every drive failed:\n%s", b)
	}
	// An attach clears the reason: the host's own eject later shows an
	// empty drive, not the old restart's story.
	if _, err := m2.Attach(ctx, Request{Drive: 0, Image: "c.iso", CDROM: true, RW: false}); err != nil {
		t.Fatal(err)
	}
	m2.g.Eject(0, true) // as the host's eject does, past the manager
	if d, _ := m2.Drive(0); d.Image != nil || d.RestoreError != "" {
		t.Errorf("the reason is back after an attach and the host's eject: %+v", d)
	}
	med, _ = ok(ctx, "http://images.example/b.iso")
	if _, err := m2.Attach(ctx, Request{Drive: 1, URL: "http://images.example/b.iso", Medium: med, CDROM: true}); err != nil {
		t.Fatal(err)
	}
	m2.g.Eject(1, true)
	if d, _ := m2.Drive(1); d.URL != "" || d.RestoreError != "" {
		t.Errorf("the reason is back after a URL attach and the host's eject: %+v", d)
	}
	// Without a way to open URLs (no fetch manager), a URL drive says so.
	r2 := newRestartable(t)
	m4, _ := r2.run(ok)
	med, _ = ok(ctx, "http://images.example/a.iso")
	m4.Attach(ctx, Request{Drive: 2, URL: "http://images.example/a.iso", Medium: med, CDROM: true})
	m5, _ := r2.run(nil)
	if d, _ := m5.Drive(2); !strings.Contains(d.RestoreError, "not set up") {
		t.Errorf("URL without an opener: %+v", d)
	}
}

// This box's lease in a shared folder is kept through a restart, as with
// the kernel backend: not dropped while the drive waits to be restored,
// renewed when it is, dropped when its image cannot go back.
func TestRestoreKeepsLease(t *testing.T) {
	for _, gone := range []bool{false, true} {
		r := newRestartable(t)
		r.file("lib/a.iso", 1<<20)
		m, _ := r.run(nil)
		if _, err := m.Attach(context.Background(), Request{Drive: 0, Image: "lib/a.iso", CDROM: true, RW: false}); err != nil {
			t.Fatal(err)
		}
		lease := filepath.Join(r.o.Root, "lib", ".msdav-lease-here-0.json")
		if gone {
			done, err := r.store.Write(context.Background(), "test")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(r.o.Root, "lib", "a.iso")); err != nil {
				t.Fatal(err)
			}
			done()
		}
		m2, saved, _ := r.start()
		if _, err := os.Stat(lease); err != nil {
			t.Fatalf("the lease went at start, before the restore: %v", err)
		}
		m2.Restore(context.Background(), saved, nil)
		_, err := os.Stat(lease)
		if gone && !os.IsNotExist(err) || !gone && err != nil {
			t.Errorf("image gone %v: lease after the restore: %v", gone, err)
		}
		// Once restored, an empty drive's lease goes at the next sync as
		// before: the host's eject.
		if !gone {
			m2.g.Eject(0, true)
			m2.mu.Lock()
			m2.syncLocked()
			m2.mu.Unlock()
			if _, err := os.Stat(lease); !os.IsNotExist(err) {
				t.Errorf("the lease stays after the host's eject: %v", err)
			}
		}
	}
}
