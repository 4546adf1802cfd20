package gadget

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/msdav/msdav/conf"
)

// fakeConfigfs makes a directory shaped like configfs plus a UDC list. It
// has none of the kernel's behaviour: it is for error paths; the real
// kernel is exercised by make vmtest.
func fakeConfigfs(t *testing.T) conf.Gadget {
	t.Helper()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "configfs", "usb_gadget"), 0o755)
	os.MkdirAll(filepath.Join(root, "sys", "class", "udc", "dummy_udc.0"), 0o755)
	oldAttr := newAttr
	newAttr = func() attrIO { return fakeAttr{} }
	t.Cleanup(func() { newAttr = oldAttr })
	cfg := conf.Default().Gadget
	cfg.Configfs = filepath.Join(root, "configfs")
	cfg.Sysfs = filepath.Join(root, "sys")
	cfg.Drives = 2
	return cfg
}

// fakeAttr creates what configfs would create by itself (lun.0 and its
// attributes appear with the function directory).
type fakeAttr struct{ osAttr }

func (fakeAttr) read(path string) (string, error) {
	v, err := osAttr{}.read(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	return v, err
}

func (fakeAttr) write(path, value string) error {
	os.MkdirAll(filepath.Dir(path), 0o755)
	if value == "\n" {
		value = ""
	}
	return os.WriteFile(path, []byte(value+"\n"), 0o644)
}

// scripted answers writes with errors, like the kernel does.
type scripted struct {
	fakeAttr
	fail map[string]error // by attribute name
}

func (s scripted) write(path, value string) error {
	if err := s.fail[filepath.Base(path)]; err != nil {
		return kernelMeaning(path, err)
	}
	return s.fakeAttr.write(path, value)
}

func TestOpenErrors(t *testing.T) {
	cfg := conf.Default().Gadget
	cfg.Mode = conf.ModeDisabled
	if _, err := Open(cfg, nil); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Errorf("disabled: %v", err)
	}
	cfg = conf.Default().Gadget
	cfg.Configfs = t.TempDir()
	if _, err := Open(cfg, nil); err == nil || !strings.Contains(err.Error(), "modprobe libcomposite") {
		t.Errorf("no configfs: %v", err)
	}
	cfg = fakeConfigfs(t)
	cfg.UDC = "nope"
	if _, err := Open(cfg, nil); err == nil || !strings.Contains(err.Error(), "dummy_udc.0") {
		t.Errorf("unknown UDC: %v", err)
	}
	cfg.UDC = ""
	cfg.Sysfs = t.TempDir()
	if _, err := Open(cfg, nil); err == nil || !strings.Contains(err.Error(), "no USB device controller") {
		t.Errorf("no UDC listed: %v", err)
	}
}

func TestCreateAttachEject(t *testing.T) {
	cfg := fakeConfigfs(t)
	g, err := Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cfg.Configfs, "usb_gadget", cfg.Name)
	if b, _ := os.ReadFile(filepath.Join(dir, "UDC")); strings.TrimSpace(string(b)) != "dummy_udc.0" {
		t.Errorf("not bound: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "idVendor")); strings.TrimSpace(string(b)) != "0x1d6b" {
		t.Errorf("idVendor %q", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, "configs", "c.1", "mass_storage.usb1")); err != nil {
		t.Errorf("drive 1 not linked into the configuration: %v", err)
	}
	img := filepath.Join(t.TempDir(), "x.img")
	os.WriteFile(img, make([]byte, 4096), 0o644)
	d, err := g.Attach(1, img, false, true)
	if err != nil {
		t.Fatal(err)
	}
	if d.File != img || !d.RW || d.Media != "flash" {
		t.Errorf("after attach: %+v", d)
	}
	if _, err := g.Attach(1, img, false, false); !errors.Is(err, ErrBusy) {
		t.Errorf("second attach: %v", err)
	}
	if _, err := g.Attach(0, "rel.img", false, false); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("relative path: %v", err)
	}
	if _, err := g.Attach(5, img, false, false); !errors.Is(err, ErrNoDrive) {
		t.Errorf("drive 5: %v", err)
	}
	if _, err := g.Attach(0, filepath.Join(t.TempDir(), "missing"), false, false); err == nil {
		t.Error("missing image attached")
	}
	big := filepath.Join(t.TempDir(), "big.iso")
	f, _ := os.Create(big)
	f.Truncate(CDMaxBytes + 1)
	f.Close()
	var tb *TooBigError
	if _, err := g.Attach(0, big, true, false); !errors.As(err, &tb) || !strings.Contains(err.Error(), "flash drive") {
		t.Errorf("CD over the limit: %v", err)
	}
	// The host locked the medium: eject is refused, force breaks the lock.
	g.attr = scripted{fail: map[string]error{"file": syscall.EBUSY}}
	if _, err := g.Eject(1, false); !errors.Is(err, ErrMediumLocked) {
		t.Errorf("eject of a locked medium: %v", err)
	}
	if _, err := g.Eject(1, true); err == nil || !strings.Contains(err.Error(), "forced_eject") {
		t.Errorf("forced eject without forced_eject: %v", err)
	}
	lun := filepath.Join(dir, "functions", "mass_storage.usb1", "lun.0")
	os.WriteFile(filepath.Join(lun, "forced_eject"), nil, 0o644)
	if _, err := g.Eject(1, true); err != nil {
		t.Errorf("forced eject: %v", err)
	}
	g.attr = fakeAttr{}
	if _, err := g.Eject(1, false); err != nil {
		t.Fatal(err)
	}
	if d, _ := g.Drive(1); d.File != "" || d.Media != "none" {
		t.Errorf("after eject: %+v", d)
	}
	// The kernel fell back to ro: the attach is refused and undone.
	g.attr = roKernel{}
	if _, err := g.Attach(1, img, false, true); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("silent ro fallback: %v", err)
	}
	g.attr = fakeAttr{}
	if d, _ := g.Drive(1); d.File != "" {
		t.Errorf("ro fallback left the image attached: %+v", d)
	}
}

// roKernel answers like a kernel that could open the file only read-only.
type roKernel struct{ fakeAttr }

func (roKernel) write(path, value string) error {
	if filepath.Base(path) == "ro" {
		value = "1"
	}
	return fakeAttr{}.write(path, value)
}

func TestAdoptForeignGadget(t *testing.T) {
	cfg := fakeConfigfs(t)
	cfg.Name = "kvmd"
	dir := filepath.Join(cfg.Configfs, "usb_gadget", "kvmd")
	os.MkdirAll(filepath.Join(dir, "functions", "hid.usb0"), 0o755)
	lun := filepath.Join(dir, "functions", "mass_storage.usb0", "lun.0")
	os.MkdirAll(lun, 0o755)
	for _, a := range []string{"file", "ro", "cdrom", "removable"} {
		os.WriteFile(filepath.Join(lun, a), nil, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "UDC"), []byte("fe980000.usb\n"), 0o644)
	g, err := Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g.owned || g.Count() != 1 || g.udcName != "fe980000.usb" {
		t.Errorf("adopted: owned=%v count=%d udc=%q", g.owned, g.Count(), g.udcName)
	}
	if _, err := os.Stat(filepath.Join(dir, "idVendor")); err == nil {
		t.Error("adoption wrote the other service's gadget attributes")
	}
	os.RemoveAll(filepath.Join(dir, "functions", "mass_storage.usb0"))
	if _, err := Open(cfg, nil); err == nil || !strings.Contains(err.Error(), "no mass_storage function") {
		t.Errorf("foreign gadget without MSD: %v", err)
	}
}
