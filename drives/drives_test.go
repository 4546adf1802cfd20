package drives

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/gadget"
	"github.com/msdav/msdav/gadget/gadgettest"
)

type recorder struct {
	mu  sync.Mutex
	got []State
}

func (r *recorder) publish(kind string, v any) {
	if s, ok := v.(State); ok && kind == "drive" {
		r.mu.Lock()
		r.got = append(r.got, s)
		r.mu.Unlock()
	}
}

func (r *recorder) last() (State, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) == 0 {
		return State{}, 0
	}
	return r.got[len(r.got)-1], len(r.got)
}

// fakeDrive is a manager over a fake bound gadget with one drive and a
// store whose "lib" folder is shared with other boxes.
func fakeDrive(t *testing.T, o fs.Options) (*Manager, *recorder, string) {
	t.Helper()
	cfg := gadgettest.Bound(t, 1)
	g, err := gadget.Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Root == "" {
		o.Root = t.TempDir()
	}
	o.Shared, o.Box, o.LeaseTTL = []string{"lib"}, "here", 3*time.Second
	os.MkdirAll(filepath.Join(o.Root, "lib"), 0o755)
	s, err := fs.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	rec := &recorder{}
	lun := gadgettest.LUN(cfg, 0)
	return New(s, g, nil, rec.publish, nil), rec, lun
}

// What the host does on its own (an eject from its side empties the LUN)
// is published, drops this box's lease, and gives the store's rw hold back.
func TestHostEjectDropsLeaseAndHold(t *testing.T) {
	var o fs.Options
	if os.Geteuid() == 0 {
		dir := filepath.Join(t.TempDir(), "store")
		os.MkdirAll(dir, 0o755)
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", dir).CombinedOutput(); err != nil {
			t.Fatalf("mount: %v %s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
		o = fs.Options{Root: dir, Remount: true, Grace: 20 * time.Millisecond}
	} else {
		t.Log("not root: the remount half is skipped (needs a tmpfs)")
	}
	m, rec, lun := fakeDrive(t, o)
	root := m.store.Dir()
	done, _ := m.store.Write(context.Background(), "test setup")
	os.WriteFile(filepath.Join(root, "lib", "rw.img"), make([]byte, 4096), 0o644)
	done()
	if _, err := m.Attach(context.Background(), Request{Drive: 0, Image: "lib/rw.img", CDROM: false, RW: true}); err != nil {
		t.Fatal(err)
	}
	lease := filepath.Join(root, "lib", ".msdav-lease-here-0.json")
	if _, err := os.Stat(lease); err != nil {
		t.Fatalf("no lease after a rw attach in a shared folder: %v", err)
	}
	if rw, writers := m.store.Writable(); o.Remount && (!rw || writers != 1) {
		t.Fatalf("store rw=%v writers=%d under a rw drive", rw, writers)
	}
	if s, _ := rec.last(); s.Image == nil || *s.Image != "lib/rw.img" || !s.RW {
		t.Errorf("attach not published: %+v", s)
	}
	// The host ejects.
	os.WriteFile(filepath.Join(lun, "file"), []byte("\n"), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx, 20*time.Millisecond, time.Hour)
	deadline := time.Now().Add(3 * time.Second)
	for {
		s, _ := rec.last()
		_, lerr := os.Stat(lease)
		_, writers := m.store.Writable()
		if s.Image == nil && errors.Is(lerr, os.ErrNotExist) && writers == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the host's eject: last event %+v, lease err %v, writers %d", s, lerr, writers)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A file outside the store (msdav drive -set-image /elsewhere) attaches
// without a hold or a lease, and shows as a file, not a store image.
func TestAttachFileOutsideStore(t *testing.T) {
	m, _, _ := fakeDrive(t, fs.Options{})
	out := filepath.Join(t.TempDir(), "outside.img")
	os.WriteFile(out, make([]byte, 4096), 0o644)
	s, err := m.Attach(context.Background(), Request{Drive: 0, File: out, CDROM: false, RW: true})
	if err != nil || s.Image != nil || s.File != out || !s.RW {
		t.Fatalf("attach outside: %+v %v", s, err)
	}
	if _, writers := m.store.Writable(); writers != 0 {
		t.Errorf("a file outside the store took the store's hold")
	}
	if _, err := m.Attach(context.Background(), Request{Drive: 0, File: filepath.Join(t.TempDir(), "missing.img")}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing outside file: %v", err)
	}
	// Inside the store, AttachFile applies the store's rules.
	if _, err := m.Attach(context.Background(), Request{Drive: 0, File: filepath.Join(m.store.Dir(), "lib", ".msdav-x.img")}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an internal name through AttachFile: %v", err)
	}
}

// Without a gadget every drive call says why, the store sees no drive,
// and the selection still round-trips.
func TestUnavailable(t *testing.T) {
	s, err := fs.Open(fs.Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := New(s, nil, errors.New("no configfs here"), nil, nil)
	if err := m.Available(); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no configfs here") {
		t.Errorf("Available: %v", err)
	}
	if _, err := m.Drives(); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Drives: %v", err)
	}
	if _, err := m.Eject(context.Background(), 0, false); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Eject: %v", err)
	}
	if att, err := m.Attached(); att != nil || err != nil {
		t.Errorf("Attached without drives: %v %v", att, err)
	}
	if m.Count() != 0 || m.DVD() {
		t.Error("count or DVD without a gadget")
	}
	m.Select(0, Selection{Image: "a.iso", CDROM: true})
	if got := m.Selected(0); got.Image != "a.iso" || !got.CDROM {
		t.Errorf("selection: %+v", got)
	}
}

// A restart with a drive still attached in a shared folder reclaims this
// box's lease at the first sync.
func TestRestartReclaimsLease(t *testing.T) {
	cfg := gadgettest.Bound(t, 1)
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "lib"), 0o755)
	img := filepath.Join(root, "lib", "boot.iso")
	os.WriteFile(img, make([]byte, 4096), 0o644)
	lun := gadgettest.LUN(cfg, 0)
	os.WriteFile(filepath.Join(lun, "file"), []byte(img+"\n"), 0o644)
	os.WriteFile(filepath.Join(lun, "cdrom"), []byte("1\n"), 0o644)
	g, err := gadget.Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := fs.Open(fs.Options{Root: root, Shared: []string{"lib"}, Box: "here", LeaseTTL: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	New(s, g, nil, nil, nil)
	if _, err := os.Stat(filepath.Join(root, "lib", ".msdav-lease-here-0.json")); err != nil {
		t.Errorf("no lease reclaimed at start: %v", err)
	}
}

// A lease that cannot be renewed (the library's server is down) is
// retried every poll but logged once, and its return is logged too: an
// outage of hours is two lines, not two a second.
func TestLeaseRenewalFailureLoggedOnce(t *testing.T) {
	cfg := gadgettest.Bound(t, 1)
	g, err := gadget.Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "lib"), 0o755)
	os.WriteFile(filepath.Join(root, "lib", "boot.iso"), make([]byte, 4096), 0o644)
	s, err := fs.Open(fs.Options{Root: root, Shared: []string{"lib"}, Box: "here", LeaseTTL: 90 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var logMu sync.Mutex
	var logged strings.Builder
	lines := func(msg string) int {
		logMu.Lock()
		defer logMu.Unlock()
		return strings.Count(logged.String(), msg)
	}
	m := New(s, g, nil, nil, slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logged}, nil)))
	if _, err := m.Attach(context.Background(), Request{Drive: 0, Image: "lib/boot.iso", CDROM: true, RW: false}); err != nil {
		t.Fatal(err)
	}
	// A folder in the lease's place: every renewal's rename fails, as a
	// write to a dead server would. Set up with the poll loop stopped, so
	// no renewal writes the lease between the remove and the mkdir.
	lease := filepath.Join(root, "lib", ".msdav-lease-here-0.json")
	stop := func() {}
	outage := func() {
		t.Helper()
		stop()
		os.Remove(lease)
		if err := os.MkdirAll(filepath.Join(lease, "blocker"), 0o755); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { m.Run(ctx, 10*time.Millisecond, time.Hour); close(done) }()
		stop = func() { cancel(); <-done }
	}
	defer func() { stop() }()
	outage()
	time.Sleep(300 * time.Millisecond) // ten renewals due, thirty polls
	if n := lines("cannot renew the lease"); n != 1 {
		t.Fatalf("a failing renewal logged %d times over 30 polls, want once:\n%s", n, logged.String())
	}
	os.RemoveAll(lease) // the server is back
	deadline := time.Now().Add(3 * time.Second)
	for {
		if fi, err := os.Stat(lease); err == nil && fi.Mode().IsRegular() && lines("renewed again") == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lease was not renewed once it could be:\n%s", logged.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A second outage is logged again.
	outage()
	time.Sleep(200 * time.Millisecond)
	if n := lines("cannot renew the lease"); n != 2 {
		t.Errorf("a second outage: %d lines in all, want 2:\n%s", n, logged.String())
	}
	if n := lines("renewed again"); n != 1 {
		t.Errorf("%d 'renewed again' lines, want 1", n)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// An eject while the library's server is down cannot remove the lease; it
// is removed as soon as it can be, not left to refuse the other boxes the
// image until it expires, and the failure is logged once.
func TestEjectDropsLeaseWhenLibraryReturns(t *testing.T) {
	cfg := gadgettest.Bound(t, 1)
	g, err := gadget.Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "lib"), 0o755)
	os.WriteFile(filepath.Join(root, "lib", "boot.iso"), make([]byte, 4096), 0o644)
	s, err := fs.Open(fs.Options{Root: root, Shared: []string{"lib"}, Box: "here", LeaseTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var logMu sync.Mutex
	var logged strings.Builder
	m := New(s, g, nil, nil, slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logged}, nil)))
	if _, err := m.Attach(context.Background(), Request{Drive: 0, Image: "lib/boot.iso", CDROM: true, RW: false}); err != nil {
		t.Fatal(err)
	}
	// A lease that cannot be removed: a folder with something in it.
	lease := filepath.Join(root, "lib", ".msdav-lease-here-0.json")
	os.Remove(lease)
	os.MkdirAll(filepath.Join(lease, "blocker"), 0o755)
	if _, err := m.Eject(context.Background(), 0, false); err != nil {
		t.Fatal(err)
	}
	if err := s.DropLease(0); err == nil || !strings.Contains(err.Error(), ".msdav-lease-here-0.json") {
		t.Errorf("DropLease of a lease it cannot remove: %v, want an error naming it", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx, 10*time.Millisecond, time.Hour); close(done) }()
	defer func() { cancel(); <-done }()
	time.Sleep(100 * time.Millisecond) // ten polls, the library still down
	// Looked at between two polls: a failed drop hides the lease for a
	// moment (renamed away, then back), and a look in that moment saw no
	// lease (CI, once).
	m.mu.Lock()
	_, err = os.Stat(lease)
	m.mu.Unlock()
	if err != nil {
		t.Fatalf("the blocked lease went away by itself: %v", err)
	}
	os.Remove(filepath.Join(lease, "blocker")) // the library is back
	deadline := time.Now().Add(3 * time.Second)
	for {
		if _, err := os.Stat(lease); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lease of an ejected drive is still there after the library came back:\n%s", logged.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if n := strings.Count(logged.String(), "cannot drop a lease"); n != 1 {
		t.Errorf("the failed drop logged %d times, want once:\n%s", n, logged.String())
	}
	if s.DropLease(0) != nil {
		t.Errorf("DropLease with no lease left: %v", s.DropLease(0))
	}
}
