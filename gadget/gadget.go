// Package gadget drives Linux USB gadget mass-storage LUNs through configfs:
// it creates or adopts a gadget, attaches and ejects images, and reads state back.
package gadget

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/msdav/msdav/conf"
	"github.com/msdav/msdav/gadget/scsi"
	"github.com/msdav/msdav/problem"
)

// CDMaxBytes is the largest image upstream f_mass_storage serves whole as a
// CD: it caps the capacity at 1,151,999 blocks of 2048 bytes and silently
// truncates anything bigger.
const CDMaxBytes = 1151999 * 2048

// Errors with a meaning for the caller.
var (
	// ErrMediumLocked: the host sent PREVENT ALLOW MEDIUM REMOVAL; the kernel
	// answers EBUSY on the LUN's file.
	ErrMediumLocked error = &problem.Error{Status: 409, Msg: "the host has locked the medium (it is mounted or in use there)", Hint: "eject it on the host, or eject with force to break the lock"}
	// ErrBusy: the drive holds another image; eject it first.
	ErrBusy = problem.New(409, "the drive holds an image; eject it first")
	// ErrNeedsUserspace: only msdav's own drives can serve a URL.
	ErrNeedsUserspace = problem.New(422, `images from a URL need gadget.backend = "userspace"`)
	// ErrTooSmall: the image is smaller than one block of the drive.
	ErrTooSmall = problem.New(422, "the image is too small for a drive")
	// ErrNoDrive: there is no drive with that index.
	ErrNoDrive = problem.New(404, "no such drive")
)

// Drive is what configfs says about one LUN.
type Drive struct {
	Index int
	File  string // absolute path of the image, "" when empty
	CDROM bool
	RW    bool
	Media string // cd, dvd, flash or none
	// URL is set for an image served from a URL (File holds it too, so a
	// drive with one is never mistaken for an empty one).
	URL string
	// MediumError is why the medium cannot be read now (a URL's server
	// gone), "" when it can.
	MediumError string
}

// Gadget owns the mass-storage drives of one USB gadget.
type Gadget struct {
	dir     string   // configfs gadget directory
	luns    []string // one LUN directory per drive, drive 0 first
	owned   bool     // created by msdav (false: adopted from another service)
	udcName string
	dvd     bool // kernel has the DVD patch (inquiry_string_cdrom)
	log     *slog.Logger
	attr    attrIO

	// be serves the drives: f_mass_storage through configfs, or msdav's
	// own target over FunctionFS (gadget.backend).
	be backend

	mu sync.Mutex // serialises changes to the drives
	// seenAsCD is what the host was shown at the last (re)connect: it reads
	// the device type (INQUIRY) once, at enumeration.
	seenAsCD []bool
}

// marker identifies a gadget msdav made, in the configuration's name.
const marker = "msdav"

// Open finds or creates the gadget cfg describes. The error explains, for a
// person, why there are no drives (the share keeps working without them).
func Open(cfg conf.Gadget, log *slog.Logger) (*Gadget, error) {
	if log == nil {
		log = slog.Default()
	}
	if cfg.Mode == conf.ModeDisabled {
		return nil, errors.New("mass storage is disabled (gadget.mode = \"disabled\")")
	}
	base := filepath.Join(cfg.Configfs, "usb_gadget")
	if _, err := os.Stat(base); err != nil {
		return nil, fmt.Errorf("no USB gadget configfs at %s: load libcomposite (modprobe libcomposite) and mount configfs (mount -t configfs none %s): %w", base, cfg.Configfs, err)
	}
	udc, err := findUDC(filepath.Join(cfg.Sysfs, "class", "udc"), cfg.UDC)
	if err != nil {
		return nil, err
	}
	g := &Gadget{dir: filepath.Join(base, cfg.Name), udcName: udc, log: log, attr: newAttr()}
	g.be = kernel{g}
	if cfg.Backend == conf.BackendUserspace {
		if err := g.openUserspace(cfg); err != nil {
			return nil, err
		}
		return g, nil
	}
	if _, err := os.Stat(g.dir); err == nil && !g.ours() {
		if err := g.adopt(); err != nil {
			return nil, err
		}
		log.Info("adopted the mass-storage functions of an existing gadget", "gadget", g.dir, "drives", len(g.luns))
	} else {
		if err := g.create(cfg); err != nil {
			return nil, err
		}
	}
	_, err = os.Stat(filepath.Join(g.luns[0], "inquiry_string_cdrom"))
	g.dvd = err == nil
	g.noteEnumerated()
	return g, nil
}

// findUDC picks the configured controller or the first one the kernel
// lists in class (/sys/class/udc).
func findUDC(class, want string) (string, error) {
	ents, err := os.ReadDir(class)
	if err != nil || len(ents) == 0 {
		return "", fmt.Errorf("no USB device controller in %s: the board's OTG port needs its driver (dwc2 on a Raspberry Pi, dummy_hcd for tests)", class)
	}
	if want == "" {
		return ents[0].Name(), nil
	}
	for _, e := range ents {
		if e.Name() == want {
			return want, nil
		}
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return "", fmt.Errorf("gadget.udc = %q is not in %s (there: %s)", want, class, strings.Join(names, ", "))
}

func (g *Gadget) ours() bool {
	b, err := os.ReadFile(filepath.Join(g.dir, "configs", "c.1", "strings", "0x409", "configuration"))
	return err == nil && strings.TrimSpace(string(b)) == marker
}

// adopt uses the mass_storage functions of a gadget another service owns
// (kvmd keeps HID and MSD in one gadget), touching nothing else.
func (g *Gadget) adopt() error {
	fns, _ := filepath.Glob(filepath.Join(g.dir, "functions", "mass_storage.*"))
	sort.Strings(fns)
	for _, fn := range fns {
		luns, _ := filepath.Glob(filepath.Join(fn, "lun.*"))
		sort.Strings(luns)
		g.luns = append(g.luns, luns...)
	}
	if len(g.luns) == 0 {
		return fmt.Errorf("gadget %s exists, was not made by msdav, and has no mass_storage function to adopt; set gadget.name to another name", g.dir)
	}
	if b, err := os.ReadFile(filepath.Join(g.dir, "UDC")); err == nil && strings.TrimSpace(string(b)) != "" {
		g.udcName = strings.TrimSpace(string(b))
	}
	return nil
}

// create builds (or completes) msdav's own gadget: one mass_storage
// function per drive, so each drive is its own removable USB disk a BIOS
// can boot from; then binds it to the UDC.
func (g *Gadget) create(cfg conf.Gadget) error {
	g.owned = true
	bound := g.boundTo() != ""
	want := make([]string, cfg.Drives)
	missing := false
	for i := range want {
		want[i] = filepath.Join(g.dir, "functions", fmt.Sprintf("mass_storage.usb%d", i), "lun.0")
		if _, err := os.Stat(want[i]); err != nil {
			missing = true
		}
	}
	g.luns = want
	if !missing && bound {
		return nil // a restart: keep what is attached
	}
	if bound {
		// Functions cannot be added to a bound gadget.
		if err := g.unbind(); err != nil {
			return err
		}
	}
	// A userspace-backend run left FunctionFS functions in the
	// configuration; with no process behind them the gadget cannot bind.
	stale, _ := filepath.Glob(filepath.Join(g.dir, "configs", "c.1", "ffs.*"))
	for _, l := range stale {
		if err := os.Remove(l); err != nil {
			return fmt.Errorf("take the userspace backend's drive %s out of the gadget: %w", filepath.Base(l), err)
		}
	}
	if err := g.describeDevice(cfg); err != nil {
		return err
	}
	for i, lun := range want {
		fn := filepath.Dir(lun)
		if err := os.MkdirAll(fn, 0o755); err != nil {
			return fmt.Errorf("create drive %d: %w", i, err)
		}
		if err := g.attr.write(filepath.Join(lun, "removable"), "1"); err != nil {
			return err
		}
		if cfg.Inquiry != "" {
			if err := g.attr.write(filepath.Join(lun, "inquiry_string"), cfg.Inquiry); err != nil {
				return err
			}
		}
		link := filepath.Join(g.dir, "configs", "c.1", filepath.Base(fn))
		if _, err := os.Lstat(link); err != nil {
			if err := os.Symlink(fn, link); err != nil {
				return fmt.Errorf("link drive %d into the configuration: %w", i, err)
			}
		}
	}
	return g.bind()
}

func (g *Gadget) boundTo() string {
	b, err := os.ReadFile(filepath.Join(g.dir, "UDC"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (g *Gadget) bind() error {
	if err := g.attr.write(filepath.Join(g.dir, "UDC"), g.udcName); err != nil {
		return fmt.Errorf("bind gadget to %s: %w", g.udcName, err)
	}
	g.noteEnumerated()
	return nil
}

// noteEnumerated records the device type each drive shows the host now.
func (g *Gadget) noteEnumerated() {
	g.seenAsCD = make([]bool, len(g.luns))
	for i, lun := range g.luns {
		v, _ := g.attr.read(filepath.Join(lun, "cdrom"))
		g.seenAsCD[i] = v == "1"
	}
}

func (g *Gadget) unbind() error {
	if g.boundTo() == "" {
		return nil
	}
	if err := g.attr.write(filepath.Join(g.dir, "UDC"), "\n"); err != nil {
		return fmt.Errorf("unbind gadget: %w", err)
	}
	return nil
}

// Count is the number of drives.
func (g *Gadget) Count() int { return len(g.luns) }

// DVD reports whether the kernel serves CD images over the CD limit as DVDs.
func (g *Gadget) DVD() bool { return g.dvd }

// Drives reads every drive's state from configfs, the source of truth.
func (g *Gadget) Drives() ([]Drive, error) {
	out := make([]Drive, len(g.luns))
	for i := range g.luns {
		d, err := g.Drive(i)
		if err != nil {
			return nil, err
		}
		out[i] = d
	}
	return out, nil
}

// Drive reads one drive's state.
func (g *Gadget) Drive(i int) (Drive, error) {
	if i < 0 || i >= len(g.luns) {
		return Drive{}, fmt.Errorf("drive %d: %w (there are %d)", i, ErrNoDrive, len(g.luns))
	}
	return g.be.drive(i)
}

// Attach puts the image at abs (an absolute path) into drive i. The
// request was validated by drives.Manager (a CD/DVD is never writable).
func (g *Gadget) Attach(i int, abs string, cdrom, rw bool) (Drive, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if cur, err := g.empty(i); err != nil {
		return cur, err
	}
	if !filepath.IsAbs(abs) {
		return Drive{Index: i, Media: "none"}, fmt.Errorf("attach %s: the drive needs an absolute path", abs)
	}
	return g.be.attach(i, abs, cdrom, rw)
}

// AttachURL puts m, an image read from url, into drive i, read-only. Only
// the userspace backend can: f_mass_storage reads files.
func (g *Gadget) AttachURL(i int, url string, m scsi.Medium, cdrom bool) (Drive, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if cur, err := g.empty(i); err != nil {
		return cur, err
	}
	u, ok := g.be.(*userspace)
	if !ok {
		return Drive{Index: i, Media: "none"}, ErrNeedsUserspace
	}
	return u.attachMedium(i, url, m, cdrom)
}

// empty is every attach's preamble, under mu: drive i must exist and be empty.
func (g *Gadget) empty(i int) (Drive, error) {
	cur, err := g.Drive(i)
	if err != nil {
		return cur, err
	}
	if cur.File != "" {
		return cur, fmt.Errorf("drive %d holds %s: %w", i, cur.File, ErrBusy)
	}
	return cur, nil
}

// Eject empties drive i. If the host locked the medium it is refused with
// ErrMediumLocked, unless force.
func (g *Gadget) Eject(i int, force bool) (Drive, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	cur, err := g.Drive(i)
	if err != nil || cur.File == "" {
		return cur, err
	}
	return g.be.eject(i, cur, force)
}

// Reconnect unbinds and rebinds the UDC: the host sees the device unplugged
// and plugged back, and re-reads what kind of drive it is (CD or flash).
func (g *Gadget) Reconnect() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.be.reconnect()
}

// backend is what serves the drives, behind the Gadget's checks and lock.
type backend interface {
	drive(i int) (Drive, error)
	// attach fills empty drive i; abs is absolute, cdrom and rw not both
	// (drives.Manager refuses that request).
	attach(i int, abs string, cdrom, rw bool) (Drive, error)
	// eject empties drive i, which holds cur.
	eject(i int, cur Drive, force bool) (Drive, error)
	reconnect() error
}

// kernel is the f_mass_storage backend: configfs is the drives' state.
type kernel struct{ *Gadget }

func (g kernel) drive(i int) (Drive, error) {
	lun := g.luns[i]
	file, err := g.attr.read(filepath.Join(lun, "file"))
	if err != nil {
		return Drive{}, err
	}
	ro, _ := g.attr.read(filepath.Join(lun, "ro"))
	cd, _ := g.attr.read(filepath.Join(lun, "cdrom"))
	d := Drive{Index: i, File: file, CDROM: cd == "1", RW: ro == "0" && cd != "1", Media: "none"}
	if file != "" {
		d.Media = "flash"
		if d.CDROM {
			d.Media = "cd"
			// Only a DVD-patched kernel makes "dvd" possible; elsewhere the
			// image is not touched at all: a stat on a dead NFS library took
			// 11 s, and every catalog and drive read comes through here.
			if g.dvd {
				if fi, err := os.Stat(file); err == nil && fi.Size() > CDMaxBytes {
					d.Media = "dvd"
				}
			}
		}
	}
	return d, nil
}

// attach: an image over the CD limit is refused unless the kernel serves
// DVDs, since it would be silently truncated.
func (g kernel) attach(i int, abs string, cdrom, rw bool) (Drive, error) {
	cur := Drive{Index: i, Media: "none"}
	fi, err := os.Stat(abs)
	if err != nil {
		return cur, fmt.Errorf("attach %s: %w", abs, err)
	}
	if cdrom && fi.Size() > CDMaxBytes && !g.dvd {
		return cur, &TooBigError{Size: fi.Size()}
	}
	lun := g.luns[i]
	// ro, cdrom and removable only change while no file is open; file last.
	for _, s := range []struct{ name, value string }{
		{"ro", boolAttr(!rw)},
		{"cdrom", boolAttr(cdrom)},
		{"removable", "1"},
	} {
		if err := g.attr.write(filepath.Join(lun, s.name), s.value); err != nil {
			return cur, fmt.Errorf("drive %d: %w", i, err)
		}
	}
	if err := g.attr.write(filepath.Join(lun, "file"), abs); err != nil {
		return cur, fmt.Errorf("drive %d: %w", i, err)
	}
	d, err := g.drive(i)
	if err != nil {
		return d, err
	}
	if rw && !d.RW {
		// The kernel could not open it rw and fell back to ro without a word.
		g.attr.write(filepath.Join(lun, "file"), "\n")
		return d, fmt.Errorf("drive %d: the kernel could open %s only read-only (permissions?)", i, abs)
	}
	g.log.Info("attached", "drive", i, "image", abs, "cdrom", cdrom, "rw", rw, "media", d.Media)
	if i < len(g.seenAsCD) && g.seenAsCD[i] != cdrom {
		// The host read the device type at enumeration: a CD in a drive it
		// saw as a disk (or the reverse) needs a reconnect to show as such.
		// Only for our own gadget: in an adopted one it would also
		// unplug the other service's keyboard and mouse.
		if !g.owned {
			g.log.Warn("drive type changed; the host sees it after POST /api/usb/reconnect", "drive", i)
			return d, nil
		}
		if err := g.reconnect(); err != nil {
			return d, err
		}
		g.log.Info("reconnected so the host sees the new drive type", "drive", i, "cdrom", cdrom)
	}
	return d, nil
}

// TooBigError refuses a CD image the kernel would truncate.
type TooBigError struct{ Size int64 }

// HTTPStatus: the request is understood, the kernel cannot honour it.
func (e *TooBigError) HTTPStatus() int { return 422 }

func (e *TooBigError) Error() string {
	return fmt.Sprintf("the image has %d bytes, more than a CD holds on this kernel (%d bytes; DVD emulation needs a patched f_mass_storage): attach it as a flash drive instead", e.Size, int64(CDMaxBytes))
}

// eject: force uses forced_eject (kernel >= 6.0).
func (g kernel) eject(i int, cur Drive, force bool) (Drive, error) {
	lun := g.luns[i]
	err := g.attr.write(filepath.Join(lun, "file"), "\n")
	if errors.Is(err, ErrMediumLocked) && force {
		fe := filepath.Join(lun, "forced_eject")
		if _, serr := os.Stat(fe); serr != nil {
			return cur, fmt.Errorf("drive %d: %w, and this kernel has no forced_eject (needs Linux 6.0)", i, ErrMediumLocked)
		}
		err = g.attr.write(fe, "1")
	}
	if err != nil {
		return cur, fmt.Errorf("drive %d: %w", i, err)
	}
	g.log.Info("ejected", "drive", i, "image", cur.File, "forced", force)
	return g.drive(i)
}

func (g kernel) reconnect() error { return g.Gadget.reconnect() }

func (g *Gadget) reconnect() error {
	if err := g.unbind(); err != nil {
		return err
	}
	return g.bind()
}

func boolAttr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// describeDevice creates the gadget's folders and writes what the host
// reads of the device itself (IDs, strings, the one configuration), the
// same for either backend.
func (g *Gadget) describeDevice(cfg conf.Gadget) error {
	for _, d := range []string{"", "strings/0x409", "configs/c.1", "configs/c.1/strings/0x409"} {
		if err := os.MkdirAll(filepath.Join(g.dir, d), 0o755); err != nil {
			return fmt.Errorf("create gadget %s: %w", g.dir, err)
		}
	}
	for _, s := range []struct{ path, value string }{
		{"idVendor", fmt.Sprintf("0x%04x", cfg.VendorID)},
		{"idProduct", fmt.Sprintf("0x%04x", cfg.ProductID)},
		{"bcdDevice", "0x0100"},
		{"bcdUSB", "0x0200"},
		{"strings/0x409/manufacturer", cfg.Manufacturer},
		{"strings/0x409/product", cfg.Product},
		{"strings/0x409/serialnumber", cfg.Serial},
		{"configs/c.1/strings/0x409/configuration", marker},
		{"configs/c.1/MaxPower", "250"},
	} {
		if err := g.attr.write(filepath.Join(g.dir, s.path), s.value); err != nil {
			return err
		}
	}
	return nil
}
