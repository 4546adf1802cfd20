package fs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		rel  string
		want Visibility
	}{
		{"win.iso", Visible},
		{"isos/win.iso", Visible},
		{".", Visible},
		{"a..b/c.iso", Visible},
		{".DS_Store", Junk},
		{"isos/._win.iso", Junk},
		{"isos/Thumbs.db", Junk},
		{".hidden/win.iso", Junk},
		{"lost+found/x.img", Junk},
		{".msdav-props-a.iso", Internal},
		{"isos/.msdav-props-a.iso", Internal},
		{"isos/.msdav-upload-1-x.img", Internal},
		{"a/.msdav-move-2-b/c.iso", Internal},
		{".hidden/.msdav-upload-1-x", Internal},
	} {
		if got := Classify(tc.rel); got != tc.want {
			t.Errorf("Classify(%q) = %d, want %d", tc.rel, got, tc.want)
		}
	}
}

// Internal names anywhere in a path are refused for uploads and folders.
func TestCreateRefusesInternalPaths(t *testing.T) {
	s, err := Open(Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for _, p := range []string{"isos/.msdav-upload-1-x.img", ".msdav-props-a.iso", "a/.msdav-x/b.img", "."} {
		if u, err := s.Create(ctx, p, 1); !errors.Is(err, ErrBadName) {
			t.Errorf("Create(%q) = %v, want ErrBadName", p, err)
			if u != nil {
				u.Abort()
			}
		}
		if err := s.MkdirAll(ctx, p+"/sub"); p != "." && !errors.Is(err, ErrBadName) {
			t.Errorf("MkdirAll(%q) = %v, want ErrBadName", p, err)
		}
	}
	assertNoTemps(t, s.Dir())
}

func TestMkdirAll(t *testing.T) {
	s, err := Open(Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.MkdirAll(ctx, "flash/tools/usb"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(s.Dir(), "flash", "tools", "usb")); err != nil || !fi.IsDir() {
		t.Fatalf("folder not made: %v", err)
	}
	if err := s.MkdirAll(ctx, "flash/tools"); err != nil {
		t.Errorf("existing folder: %v", err)
	}
	os.WriteFile(filepath.Join(s.Dir(), "file"), nil, 0o644)
	if err := s.MkdirAll(ctx, "file/sub"); err == nil {
		t.Error("MkdirAll through a file succeeded")
	}
}

type brokenAttachments struct{}

func (brokenAttachments) Attached() (map[string][]int, error) {
	return nil, errors.New("read /sys/kernel/config/usb_gadget/msdav/functions/mass_storage.usb0/lun.0/file: input/output error")
}

// When the drive state cannot be read, nothing that changes an image goes
// through, and nothing is lost.
func TestFailsClosedWhenDrivesUnknown(t *testing.T) {
	s, err := Open(Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	os.MkdirAll(filepath.Join(s.Dir(), "isos"), 0o755)
	os.WriteFile(filepath.Join(s.Dir(), "isos", "a.iso"), []byte("a"), 0o644)
	s.SetAttachments(brokenAttachments{})
	ctx := context.Background()
	u, cerr := s.Create(ctx, "isos/a.iso", 1)
	if u != nil {
		u.Abort()
	}
	for name, err := range map[string]error{
		"remove":    s.RemoveAll(ctx, "isos/a.iso"),
		"remove up": s.RemoveAll(ctx, "isos"),
		"rename":    s.Rename(ctx, "isos/a.iso", "b.iso"),
		"onto":      s.Rename(ctx, "x", "isos/a.iso"),
		"overwrite": cerr,
	} {
		if !errors.Is(err, ErrAttachUnknown) {
			t.Errorf("%s: %v, want ErrAttachUnknown", name, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(s.Dir(), "isos", "a.iso")); err != nil || string(b) != "a" {
		t.Errorf("image lost or changed: %q %v", b, err)
	}
	assertNoTemps(t, s.Dir())
}

// The store tells of uploads as they start, grow and complete, and of
// deletes and moves.
func TestStoreEvents(t *testing.T) {
	var mu sync.Mutex
	var got []any
	s, err := Open(Options{Root: t.TempDir(), Publish: func(kind string, v any) {
		if kind != "image" {
			t.Errorf("kind %q", kind)
		}
		mu.Lock()
		got = append(got, v)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	take := func() []any {
		mu.Lock()
		defer mu.Unlock()
		g := got
		got = nil
		return g
	}
	u, err := s.Create(ctx, "a.iso", 3<<20)
	if err != nil {
		t.Fatal(err)
	}
	u.Write(make([]byte, 1<<20))
	time.Sleep(progressEvery + 50*time.Millisecond)
	u.Write(make([]byte, 1<<20))
	u.Write(make([]byte, 1<<20)) // too soon after the last: no event
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	// Start, progress at most every progressEvery (the third write came
	// too soon after the second), complete. On a loaded machine the first
	// write may come late enough for a progress event of its own.
	ev := take()
	if len(ev) < 3 || len(ev) > 4 {
		t.Fatalf("upload events: %+v, want start, one or two progress, complete", ev)
	}
	start, prog, end := ev[0].(Image), ev[len(ev)-2].(Image), ev[len(ev)-1].(Image)
	if start.Complete || start.Received != 0 || start.Expected != 3<<20 {
		t.Errorf("start: %+v", start)
	}
	if prog.Complete || prog.Received != 2<<20 {
		t.Errorf("progress: %+v", prog)
	}
	if !end.Complete || end.Size != 3<<20 || end.Path != "a.iso" {
		t.Errorf("complete: %+v", end)
	}
	os.MkdirAll(filepath.Join(s.Dir(), "d"), 0o755)
	if err := s.Rename(ctx, "a.iso", "d/b.iso"); err != nil {
		t.Fatal(err)
	}
	ev = take()
	if len(ev) != 2 || ev[0] != (Removed{Path: "a.iso", Removed: true}) || ev[1].(Image).Path != "d/b.iso" {
		t.Errorf("move events: %+v", ev)
	}
	if err := s.RemoveAll(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if ev = take(); len(ev) != 1 || ev[0] != (Removed{Path: "d/b.iso", Removed: true}) {
		t.Errorf("delete events: %+v", ev)
	}
	u, _ = s.Create(ctx, "c.iso", -1)
	u.Abort()
	if ev = take(); len(ev) != 2 || ev[1] != (Removed{Path: "c.iso", Removed: true}) {
		t.Errorf("aborted upload events: %+v", ev)
	}
}

// A remount behind the guard's back (an admin, an old CLI) is noticed at
// the next write instead of failing it with EROFS.
func TestGuardNoticesRemountBehindItsBack(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "store")
	mountTmpfs(t, dir, 16)
	s := openGuarded(t, dir, 5*time.Second)
	done, err := s.Write(context.Background(), "first")
	if err != nil {
		t.Fatal(err)
	}
	done() // rw for the 5 s grace
	if err := Remount(dir, false); err != nil {
		t.Fatal(err)
	}
	u, err := s.Create(context.Background(), "a.bin", 1)
	if err != nil {
		t.Fatalf("upload after a remount behind the guard: %v", err)
	}
	u.Write([]byte("x"))
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if s.guard.drift.Load() != 1 {
		t.Errorf("drift counted %d times, want 1", s.guard.drift.Load())
	}
}

// A quota batch answers what Usage answers, part by part.
func TestQuotaBatchMatchesUsage(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "store")
	mountTmpfs(t, dir, 32)
	mountTmpfs(t, filepath.Join(dir, "usb"), 8)
	os.MkdirAll(filepath.Join(dir, "usb", "isos"), 0o755)
	os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755)
	s, err := Open(Options{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q := s.NewQuota(context.Background())
	for _, rel := range []string{".", "a", "a/b", "usb", "usb/isos"} {
		want, err1 := s.Usage(context.Background(), rel)
		got, err2 := q.Usage(rel)
		if err1 != nil || err2 != nil || got.Path != want.Path || got.Size != want.Size {
			t.Errorf("%s: batch %+v %v, Usage %+v %v", rel, got, err2, want, err1)
		}
	}
	if p, _ := q.Usage("usb/isos"); p.Path != "usb" || p.Size != 8<<20 {
		t.Errorf("usb/isos is on part %q of %d bytes, want usb of 8 MiB", p.Path, p.Size)
	}
	if len(q.parts) != 2 {
		t.Errorf("%d parts described for 5 questions, want 2", len(q.parts))
	}
}

// Two calls of one kind on a part that answers are both served: a lease
// renewal running while a request reads the leases is not a stuck part.
// (It answered "did not answer in time" at once: the fleet VM test's
// DELETE got a 503 and a renewal failed with the library server up.)
func TestProberConcurrentCallsOfOneKind(t *testing.T) {
	p := &prober{timeout: time.Second}
	ctx := context.Background()
	started, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- p.run(ctx, "lease:nfs", func() { close(started); <-release })
	}()
	<-started
	ran := false
	if err := p.run(ctx, "lease:nfs", func() { ran = true }); err != nil || !ran {
		t.Errorf("a second lease call while the first runs (well within its deadline): %v, ran %v", err, ran)
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("the first call: %v", err)
	}
}

// A part with a call stuck past its deadline answers every other kind of
// call at once, leaves other parts alone, and recovers when the call ends.
func TestProberStuckPartFailsFast(t *testing.T) {
	p := &prober{timeout: 100 * time.Millisecond}
	release := make(chan struct{})
	ctx := context.Background()
	if err := p.run(ctx, "walk:nfs", func() { <-release }); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("stuck walk: %v", err)
	}
	start := time.Now()
	if err := p.run(ctx, "statfs:nfs", func() {}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("statfs of a part with a stuck walk: %v", err)
	}
	if took := time.Since(start); took > 50*time.Millisecond {
		t.Errorf("a stuck part cost another call %s", took)
	}
	if err := p.run(ctx, "statfs:usb", func() {}); err != nil {
		t.Errorf("another part: %v", err)
	}
	close(release)
	deadline := time.Now().Add(2 * time.Second)
	for p.run(ctx, "statfs:nfs", func() {}) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the part stayed unavailable after its stuck call ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ImageName is the one rule every front end asks of an image's name.
func TestImageName(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"a.iso", "a.iso"},
		{"/x/./y.img", "x/y.img"},
		{`win\x.iso`, "win/x.iso"},
		{"", ""},
		{"/", ""},
		{".", ""},
		{"../up.iso", ""},
		{"a/../../up.iso", ""},
		{".hidden.iso", ""},
		{"d/.msdav-upload-1/x.iso", ""},
		{"d/x.iso/", "d/x.iso"},
		{"USB/.MSDAV-SUM-WIN.ISO", ""},
		{"nul\x00.iso", ""},
	} {
		got, err := ImageName(c.in)
		if got != c.want || (err == nil) != (c.want != "") {
			t.Errorf("ImageName(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}
