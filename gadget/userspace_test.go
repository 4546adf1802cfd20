package gadget

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msdav/msdav/conf"
	"github.com/msdav/msdav/gadget/scsi"
)

// userspaceGadget is a Gadget on the userspace backend without FunctionFS:
// its LUNs are driven here directly, as the USB host would over BOT.
func userspaceGadget(t *testing.T, drives int) (*Gadget, *userspace) {
	t.Helper()
	cfg := fakeConfigfs(t)
	g := &Gadget{dir: filepath.Join(cfg.Configfs, "usb_gadget", cfg.Name), udcName: "dummy_udc.0", log: nil, attr: newAttr(), owned: true, dvd: true}
	g.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	u := &userspace{g: g}
	for i := 0; i < drives; i++ {
		lun := scsi.NewLUN(false, scsi.Inquiry{}, "s")
		lun.OnHostEject(func(m scsi.Medium) { u.hostEjected(i, m) })
		u.drives = append(u.drives, &usDrive{lun: lun})
		g.luns = append(g.luns, filepath.Join(g.dir, "functions", "ffs.msdav"+string(rune('0'+i))))
	}
	g.be = u
	return g, u
}

func image(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	f.Close()
	return p
}

func TestUserspaceAttachEject(t *testing.T) {
	g, u := userspaceGadget(t, 2)
	udc := filepath.Join(g.dir, "UDC")
	dvd := image(t, 3<<30) // no TooBigError on this backend
	// The host has not asked drive 0 its type yet: it reads DVD when it does.
	os.WriteFile(udc, nil, 0o644)
	d, err := g.Attach(0, dvd, true, false)
	if err != nil || d.Media != "dvd" || !d.CDROM || d.RW || d.File != dvd {
		t.Fatalf("attach a 3 GiB DVD: %+v %v", d, err)
	}
	if b, _ := os.ReadFile(udc); len(b) != 0 {
		t.Errorf("reconnected for a type the host had not read: UDC %q", b)
	}
	g.Eject(0, true)
	// Now it has read it (DVD): a flash drive needs the host to see it anew.
	if err := u.drives[0].lun.Exec([]byte{0x12, 0, 0, 0, 36, 0}, discard{}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Attach(0, image(t, 1<<20), false, false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(udc); strings.TrimSpace(string(b)) != "dummy_udc.0" {
		t.Errorf("a drive that changed type was not reconnected: UDC %q", b)
	}
	g.Eject(0, true)
	if d, err = g.Attach(0, dvd, true, false); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Attach(0, dvd, true, false); !errors.Is(err, ErrBusy) {
		t.Errorf("attach into a full drive: %v", err)
	}
	if _, err := g.Attach(1, filepath.Join(t.TempDir(), "missing"), false, false); err == nil {
		t.Error("attached a missing file")
	}
	if _, err := g.Attach(1, image(t, 1000), true, false); !errors.Is(err, ErrTooSmall) || !strings.Contains(err.Error(), "less than one block") {
		t.Errorf("attached a CD image smaller than a block: %v", err)
	}
	if _, err := g.Attach(1, t.TempDir(), false, false); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("attached a directory: %v", err)
	}

	// The host locks the medium (PREVENT ALLOW MEDIUM REMOVAL).
	lock := func(l *scsi.LUN, on bool) {
		t.Helper()
		var b byte
		if on {
			b = 1
		}
		if err := l.Exec([]byte{0x1e, 0, 0, 0, b, 0}, nil); err != nil {
			var ce *scsi.CheckError
			if errors.As(err, &ce) && ce.Sense == scsi.MediumMayHaveChange {
				err = l.Exec([]byte{0x1e, 0, 0, 0, b, 0}, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	lock(u.drives[0].lun, true)
	if _, err := g.Eject(0, false); !errors.Is(err, ErrMediumLocked) {
		t.Fatalf("eject of a locked medium: %v", err)
	}
	if d, _ := g.Drive(0); d.File != dvd {
		t.Fatalf("a refused eject emptied the drive: %+v", d)
	}
	if d, err := g.Eject(0, true); err != nil || d.File != "" || d.Media != "none" {
		t.Fatalf("forced eject: %+v %v", d, err)
	}
	if d, err := g.Eject(0, false); err != nil || d.File != "" {
		t.Fatalf("eject of an empty drive: %+v %v", d, err)
	}

	// Flash rw: what the host writes reaches the file.
	flash := image(t, 1<<20)
	d, err = g.Attach(1, flash, false, true)
	if err != nil || d.Media != "flash" || !d.RW || d.CDROM {
		t.Fatalf("attach flash rw: %+v %v", d, err)
	}
	l := u.drives[1].lun
	l.Exec([]byte{0, 0, 0, 0, 0, 0}, nil) // consumes the unit attention
	w := &hostData{out: []byte(strings.Repeat("Z", 512))}
	if err := l.Exec([]byte{0x2a, 0, 0, 0, 0, 3, 0, 0, 1, 0}, w); err != nil {
		t.Fatalf("WRITE(10): %v", err)
	}
	if _, err := g.Eject(1, false); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(flash)
	if string(b[3*512:4*512]) != strings.Repeat("Z", 512) {
		t.Fatal("the host's write is not in the image after eject")
	}
	if err := u.drives[1].lun.Exec([]byte{0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0}, &hostData{}); err == nil {
		t.Error("a read after eject succeeded")
	}
}

// The host's own eject (START STOP UNIT, LoEj) empties the drive in the
// state the API reads.
func TestUserspaceHostEject(t *testing.T) {
	g, u := userspaceGadget(t, 1)
	if _, err := g.Attach(0, image(t, 1<<20), true, false); err != nil {
		t.Fatal(err)
	}
	l := u.drives[0].lun
	l.Exec([]byte{0, 0, 0, 0, 0, 0}, nil)
	if err := l.Exec([]byte{0x1b, 0, 0, 0, 0x02, 0}, nil); err != nil {
		t.Fatalf("START STOP UNIT eject: %v", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		d, _ := g.Drive(0)
		if d.File == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("drive still holds %s after the host ejected it", d.File)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestOpenUserspaceErrors(t *testing.T) {
	cfg := fakeConfigfs(t)
	cfg.Backend = conf.BackendUserspace
	cfg.FFSMounts = t.TempDir()
	// A fake configfs makes no FunctionFS instance: mounting one fails, and
	// the error says which module to load.
	if _, err := Open(cfg, nil); err == nil || !strings.Contains(err.Error(), "usb_f_fs") {
		t.Errorf("userspace backend without FunctionFS: %v", err)
	}
	cfg.Name = "kvmd"
	os.MkdirAll(filepath.Join(cfg.Configfs, "usb_gadget", "kvmd", "functions", "hid.usb0"), 0o755)
	if _, err := Open(cfg, nil); err == nil || !strings.Contains(err.Error(), "gadget of its own") {
		t.Errorf("userspace backend on a foreign gadget: %v", err)
	}
}

// hostData plays the host's side of one data phase.
type hostData struct{ out, in []byte }

func (h *hostData) Send(p []byte) error { h.in = append(h.in, p...); return nil }
func (h *hostData) Recv(p []byte) error {
	if len(h.out) < len(p) {
		return errors.New("host has no more data")
	}
	copy(p, h.out)
	h.out = h.out[len(p):]
	return nil
}

// fakeURL is a medium read from a URL.
type fakeURL struct {
	size   int64
	err    error
	closed bool
}

func (f *fakeURL) ReadAt(p []byte, off int64) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	clear(p)
	return len(p), nil
}
func (f *fakeURL) WriteAt([]byte, int64) (int, error) { return 0, errors.New("read-only") }
func (f *fakeURL) Size() int64                        { return f.size }
func (f *fakeURL) Sync() error                        { return nil }
func (f *fakeURL) URL() string                        { return "http://example.com/x.iso" }
func (f *fakeURL) Close() error                       { f.closed = true; return nil }
func (f *fakeURL) Err() error                         { return f.err }

func TestUserspaceURL(t *testing.T) {
	g, u := userspaceGadget(t, 1)
	m := &fakeURL{size: 3 << 30}
	d, err := g.AttachURL(0, m.URL(), m, true)
	if err != nil || d.URL != m.URL() || d.File != m.URL() || d.Media != "dvd" || d.RW {
		t.Fatalf("attach URL: %+v %v", d, err)
	}
	if _, err := g.AttachURL(0, m.URL(), m, true); !errors.Is(err, ErrBusy) {
		t.Errorf("URL into a full drive: %v", err)
	}
	m.err = errors.New("server gone")
	l := u.drives[0].lun
	l.Exec([]byte{0, 0, 0, 0, 0, 0}, nil)
	var ce *scsi.CheckError
	if err := l.Exec([]byte{0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0}, &hostData{}); !errors.As(err, &ce) || ce.Sense != scsi.MediumError {
		t.Fatalf("read with the server gone: %v, want MEDIUM ERROR", err)
	}
	if d, _ := g.Drive(0); d.MediumError != "server gone" {
		t.Errorf("the drive does not report the failure: %+v", d)
	}
	if d, err := g.Eject(0, false); err != nil || d.URL != "" || !m.closed {
		t.Fatalf("eject: %+v %v closed=%v", d, err, m.closed)
	}
}

func TestKernelRefusesURL(t *testing.T) {
	g, err := Open(fakeConfigfs(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.AttachURL(0, "http://x/y.iso", &fakeURL{size: 4096}, true); !errors.Is(err, ErrNeedsUserspace) {
		t.Fatalf("URL on the kernel backend: %v", err)
	}
}

// Back to the kernel backend after a userspace run: the FunctionFS
// functions leave the configuration, or the gadget could not bind.
func TestKernelAfterUserspace(t *testing.T) {
	cfg := fakeConfigfs(t)
	dir := filepath.Join(cfg.Configfs, "usb_gadget", cfg.Name)
	os.MkdirAll(filepath.Join(dir, "configs", "c.1", "strings", "0x409"), 0o755)
	os.WriteFile(filepath.Join(dir, "configs", "c.1", "strings", "0x409", "configuration"), []byte("msdav\n"), 0o644)
	fn := filepath.Join(dir, "functions", "ffs.msdav0")
	os.MkdirAll(fn, 0o755)
	link := filepath.Join(dir, "configs", "c.1", "ffs.msdav0")
	if err := os.Symlink(fn, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(cfg, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(link); err == nil {
		t.Fatal("the userspace backend's function is still in the configuration")
	}
	if _, err := os.Lstat(filepath.Join(dir, "configs", "c.1", "mass_storage.usb0")); err != nil {
		t.Fatalf("no kernel drive linked: %v", err)
	}
}

// discard is a data phase that takes whatever the drive sends.
type discard struct{}

func (discard) Send([]byte) error { return nil }
func (discard) Recv([]byte) error { return nil }
