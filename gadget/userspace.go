package gadget

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/msdav/msdav/conf"
	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/gadget/ffs"
	"github.com/msdav/msdav/gadget/scsi"
)

// userspace is the backend of gadget.backend = "userspace": one FunctionFS
// function per drive, each a Bulk-Only target msdav serves itself. The
// drives' state lives in this process; configfs only holds the plumbing.
type userspace struct {
	g      *Gadget
	drives []*usDrive

	detached bool // no USB behind it (OpenDetached)

	stateMu   sync.Mutex   // serialises writes of the state file
	statePath string       // where saveState writes, "" for nowhere (Persist)
	pending   map[int]bool // drives Persist found a medium for
}

type usDrive struct {
	lun *scsi.LUN
	fn  *ffs.Function
}

// fileMedium is an image file in a drive.
type fileMedium struct {
	*os.File
	path  string
	size  int64
	inode uint64
	rw    bool
}

func (m *fileMedium) Size() int64 { return m.size }

func (m *fileMedium) Sync() error {
	if !m.rw {
		return nil
	}
	return m.File.Sync()
}

// release flushes what the host wrote and closes the image.
func (m *fileMedium) release() error {
	err := m.Sync()
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	return err
}

// parseInquiry splits gadget.inquiry into vendor (8) and product (16).
func parseInquiry(s string) scsi.Inquiry {
	if s == "" {
		return scsi.Inquiry{}
	}
	v, p := s, ""
	if len(s) > 8 {
		v, p = s[:8], s[8:]
	}
	return scsi.Inquiry{Vendor: strings.TrimSpace(v), Product: strings.TrimSpace(p)}
}

// openUserspace builds msdav's own gadget with one FunctionFS function per
// drive, describes each on its ep0, binds the UDC and starts serving.
func (g *Gadget) openUserspace(cfg conf.Gadget) error {
	if _, err := os.Stat(g.dir); err == nil && !g.ours() {
		return fmt.Errorf("gadget %s exists and was not made by msdav; the userspace backend needs a gadget of its own: set gadget.name to another name", g.dir)
	}
	g.owned, g.dvd = true, true
	if err := g.unbind(); err != nil {
		return err
	}
	// A kernel-backend run left f_mass_storage functions in the
	// configuration; they would show the host a second set of drives.
	links, _ := filepath.Glob(filepath.Join(g.dir, "configs", "c.1", "mass_storage.*"))
	for _, l := range links {
		if err := os.Remove(l); err != nil {
			return fmt.Errorf("take the kernel backend's drive %s out of the gadget: %w", filepath.Base(l), err)
		}
		os.Remove(filepath.Join(g.dir, "functions", filepath.Base(l)))
	}
	if err := g.describeDevice(cfg); err != nil {
		return err
	}
	u := &userspace{g: g}
	for i := 0; i < cfg.Drives; i++ {
		inst := fmt.Sprintf("%s%d", cfg.Name, i)
		fn := filepath.Join(g.dir, "functions", "ffs."+inst)
		if err := os.MkdirAll(fn, 0o755); err != nil {
			return fmt.Errorf("create drive %d (is usb_f_fs loaded? modprobe usb_f_fs): %w", i, err)
		}
		// Under the runtime dir, not /dev: a systemd unit's private /dev
		// (PrivateDevices=yes) is read-only from systemd 255 on.
		mnt := filepath.Join(cfg.FFSMounts, inst)
		if err := ffs.Mount(inst, mnt); err != nil {
			return fmt.Errorf("drive %d: %w", i, err)
		}
		f, err := ffs.Open(inst, mnt, fmt.Sprintf("%s drive %d", cfg.Product, i), g.log)
		if err != nil {
			return fmt.Errorf("drive %d: %w", i, err)
		}
		link := filepath.Join(g.dir, "configs", "c.1", "ffs."+inst)
		if _, err := os.Lstat(link); err != nil {
			if err := os.Symlink(fn, link); err != nil {
				return fmt.Errorf("link drive %d into the configuration: %w", i, err)
			}
		}
		lun := scsi.NewLUN(false, parseInquiry(cfg.Inquiry), fmt.Sprintf("%s-%d", cfg.Serial, i))
		d := &usDrive{lun: lun, fn: f}
		lun.OnHostEject(func(m scsi.Medium) { u.hostEjected(i, m) })
		u.drives = append(u.drives, d)
		g.luns = append(g.luns, fn)
	}
	g.be = u
	if err := g.bind(); err != nil {
		return err
	}
	for i, d := range u.drives {
		go u.serve(i, d)
	}
	g.log.Info("userspace drives ready", "gadget", g.dir, "drives", len(u.drives), "udc", g.udcName)
	return nil
}

// serve answers ep0 and the bulk pipes of one drive for the life of the
// process. A disconnect ends a Serve with ESHUTDOWN; the next one waits in
// the kernel until the host configures the device again.
func (u *userspace) serve(i int, d *usDrive) {
	t := &scsi.Target{LUN: d.lun, Pipes: d.fn, Reset: make(chan struct{}, 1), Log: u.g.log.With("drive", i)}
	ctl := func(s ffs.Setup) ([]byte, bool) {
		switch {
		case s.RequestType == 0xa1 && s.Request == 0xfe: // Get Max LUN
			return []byte{0}, true
		case s.RequestType == 0x21 && s.Request == 0xff: // Bulk-Only Mass Storage Reset
			t.BulkReset()
			return nil, true
		}
		return nil, false
	}
	go func() {
		err := d.fn.Events(context.Background(), ctl, func(ev ffs.Event) {
			if ev.Type != ffs.EventSetup {
				u.g.log.Debug("usb function event", "drive", i, "event", ev.Type)
			}
			// A USB reset or disconnect disables the function: the host
			// gave up on the command in progress as with a Bulk-Only
			// reset (usb-storage answers a command timeout with a port
			// reset), and it must not answer the next one.
			if ev.Type == ffs.EventDisable || ev.Type == ffs.EventUnbind {
				t.BulkReset()
			}
		})
		u.g.log.Error("drive stopped answering control requests", "drive", i, "err", err)
	}()
	for {
		err := t.Serve(context.Background())
		u.g.log.Info("bulk-only transport ended; waiting for the host", "drive", i, "err", err)
		time.Sleep(20 * time.Millisecond)
	}
}

// hostEjected lets go of an image the host ejected (START STOP UNIT).
func (u *userspace) hostEjected(i int, m scsi.Medium) {
	u.release(i, m)
	u.saveState()
	u.g.log.Info("the host ejected the medium", "drive", i, "image", mediumName(m))
}

// urlMedium is a medium read from a URL (gadget/remote).
type urlMedium interface {
	scsi.Medium
	URL() string
	Close() error
	Err() error // the last read failure, nil once reads work again
}

func mediumName(m scsi.Medium) string {
	switch m := m.(type) {
	case *fileMedium:
		return m.path
	case urlMedium:
		return m.URL()
	}
	return ""
}

// release flushes and closes a medium taken out of drive i.
func (u *userspace) release(i int, m scsi.Medium) {
	var err error
	switch m := m.(type) {
	case *fileMedium:
		err = m.release()
	case urlMedium:
		err = m.Close()
	}
	if err != nil {
		u.g.log.Warn("cannot flush an ejected image", "drive", i, "image", mediumName(m), "err", err)
	}
}

// oneBlock refuses an image smaller than one block: its capacity would be
// nothing, and READ CAPACITY cannot say so.
func oneBlock(name string, size int64, cdrom bool) error {
	bs := int64(scsi.DiskBlock)
	if cdrom {
		bs = scsi.CDBlock
	}
	if size < bs {
		return fmt.Errorf("attach %s: %d bytes is less than one block of %d; the host would see no medium: %w", name, size, bs, ErrTooSmall)
	}
	return nil
}

func (u *userspace) attachMedium(i int, url string, m scsi.Medium, cdrom bool) (Drive, error) {
	if err := oneBlock(url, m.Size(), cdrom); err != nil {
		return Drive{Index: i, Media: "none"}, err
	}
	return u.insert(i, m, cdrom, true, "url", url)
}

// insert puts m in drive i as a CD/DVD or a disk, records what the drives
// hold, and reconnects the USB device when the host must see a new type.
// what names the medium in the log.
func (u *userspace) insert(i int, m scsi.Medium, cdrom, ro bool, what ...any) (Drive, error) {
	d := u.drives[i]
	retype := d.lun.SetCD(cdrom)
	d.lun.Insert(m, ro)
	u.saveState()
	out, _ := u.drive(i)
	u.g.log.Info("attached", append(append([]any{"drive", i}, what...), "cdrom", cdrom, "media", out.Media)...)
	if retype {
		if err := u.reconnect(); err != nil {
			return out, err
		}
		u.g.log.Info("reconnected so the host sees the new drive type", "drive", i, "cdrom", cdrom)
	}
	return out, nil
}

func (u *userspace) drive(i int) (Drive, error) {
	d := u.drives[i]
	m, ro, _ := d.lun.State()
	cd := d.lun.CD()
	out := Drive{Index: i, CDROM: cd, RW: !ro && !cd && m != nil, Media: "none"}
	if m == nil {
		out.RW = false
		return out, nil
	}
	switch m := m.(type) {
	case *fileMedium:
		out.File = m.path
	case urlMedium:
		out.File, out.URL = m.URL(), m.URL()
		if err := m.Err(); err != nil {
			out.MediumError = err.Error()
		}
	}
	out.Media = "flash"
	if cd {
		out.Media = "cd"
		if m.Size()/scsi.CDBlock > scsi.CDMaxBlocks {
			out.Media = "dvd"
		}
	}
	return out, nil
}

func (u *userspace) attach(i int, abs string, cdrom, rw bool) (Drive, error) {
	flag := os.O_RDONLY
	if rw {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(abs, flag, 0)
	if err != nil {
		return Drive{Index: i, Media: "none"}, fmt.Errorf("attach %s: %w", abs, err)
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return Drive{Index: i, Media: "none"}, fmt.Errorf("attach %s: not a regular file", abs)
	}
	if err := oneBlock(abs, fi.Size(), cdrom); err != nil {
		f.Close()
		return Drive{Index: i, Media: "none"}, err
	}
	return u.insert(i, &fileMedium{File: f, path: abs, size: fi.Size(), inode: fs.Inode(fi), rw: rw}, cdrom, !rw, "image", abs, "rw", rw)
}

func (u *userspace) eject(i int, cur Drive, force bool) (Drive, error) {
	m, err := u.drives[i].lun.Eject(force)
	if errors.Is(err, scsi.ErrLocked) {
		return cur, fmt.Errorf("drive %d: %w", i, ErrMediumLocked)
	}
	if m != nil {
		u.release(i, m)
		u.saveState()
	}
	u.g.log.Info("ejected", "drive", i, "image", cur.File, "forced", force)
	return u.drive(i)
}

func (u *userspace) reconnect() error {
	if u.detached {
		return nil
	}
	if err := u.g.unbind(); err != nil {
		return err
	}
	// Between unbind and bind no host can ask: none has read the type.
	for _, d := range u.drives {
		d.lun.Unplugged()
	}
	return u.g.bind()
}

// OpenDetached builds a userspace-backend gadget of n drives that no USB
// host sees: no configfs, FunctionFS or controller behind it. Its drives
// take, report and persist media as msdav's real ones do. It is for tests
// of the code above the gadget (drives, redfish); make vmtest covers the
// USB side.
func OpenDetached(n int, log *slog.Logger) *Gadget {
	if log == nil {
		log = slog.Default()
	}
	g := &Gadget{log: log, attr: newAttr(), owned: true, dvd: true}
	u := &userspace{g: g, detached: true}
	for i := 0; i < n; i++ {
		lun := scsi.NewLUN(false, scsi.Inquiry{}, fmt.Sprintf("detached-%d", i))
		lun.OnHostEject(func(m scsi.Medium) { u.hostEjected(i, m) })
		u.drives = append(u.drives, &usDrive{lun: lun})
		g.luns = append(g.luns, fmt.Sprintf("detached drive %d", i))
	}
	g.be = u
	return g
}

// ServesURLs reports whether the drives can serve an image straight from a
// URL (AttachURL): only msdav's own target can, f_mass_storage reads files.
func (g *Gadget) ServesURLs() bool {
	_, ok := g.be.(*userspace)
	return ok
}
