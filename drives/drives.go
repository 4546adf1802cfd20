// Package drives owns the USB drives: attach and eject, the store's rw hold
// for every writable drive, flushes, and noticing what the host does itself.
// The API, the CLI and every facade change drives only through a Manager.
package drives

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/msdav/msdav/fetch"
	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/gadget"
	"github.com/msdav/msdav/problem"
)

// Errors with a meaning for the caller (problem maps them to statuses).
var (
	// ErrUnavailable: there are no drives (no gadget); the reason follows.
	ErrUnavailable = problem.New(503, "no USB drives")
	// ErrConflict: the request clashes with what is attached or uploading.
	ErrConflict = problem.New(409, "conflict")
	// ErrRefused: a combination the drive cannot honour.
	ErrRefused = problem.New(422, "refused")
)

// State is a drive as msdav shows it, in the API and in events.
type State struct {
	Index int     `json:"index"`
	Image *string `json:"image"` // store-relative, nil when empty or outside the store
	CDROM bool    `json:"cdrom"`
	RW    bool    `json:"rw"`
	Media string  `json:"media"`          // cd, dvd, flash or none
	File  string  `json:"file,omitempty"` // absolute, only for a file outside the store (msdav drive)
	URL   string  `json:"url,omitempty"`  // an image served from a URL (userspace backend)
	// MediumError says why the host's reads fail now (the URL's server is
	// gone); it clears when reads work again.
	MediumError string `json:"medium_error,omitempty"`
	// RestoreError says why an empty drive did not get back, after msdav
	// restarted, what it held before (userspace backend: the image is
	// gone, or its URL fails); it clears when the drive next changes.
	RestoreError string `json:"restore_error,omitempty"`
}

// hold keeps the store rw for one drive attached rw.
type hold struct {
	release func()
	file    string // absolute, to flush what the host wrote when it ejects
}

// Manager owns the drives of one gadget over one store.
type Manager struct {
	store   *fs.Store
	g       *gadget.Gadget // nil: no drives, gerr says why
	gerr    error
	publish func(kind string, v any)
	log     *slog.Logger

	mu    sync.Mutex   // serialises every change; guards the fields below
	holds map[int]hold // the store's rw hold of each drive attached rw
	seen  []State      // what subscribers were last told, nil before the first sync
	bad   error        // the last error reading configfs, to log it once

	renewed  map[int]time.Time // when each drive's lease was last written
	renewErr map[int]error     // why a drive's lease cannot be renewed, logged once
	dropping map[int]bool      // drives whose lease could not be removed yet

	selMu sync.Mutex        // guards sel
	sel   map[int]Selection // what each drive is to hold next

	lostMu sync.Mutex     // guards lost
	lost   map[int]string // why a drive is empty after a restart (Restore)
}

// New returns the manager and makes it the store's source of attached
// images. g may be nil, with gerr saying why there are no drives. publish
// (may be nil) is told "drive" with a State on every change.
func New(store *fs.Store, g *gadget.Gadget, gerr error, publish func(kind string, v any), log *slog.Logger) *Manager {
	if log == nil {
		log = slog.Default()
	}
	if publish == nil {
		publish = func(string, any) {}
	}
	m := &Manager{store: store, g: g, gerr: gerr, publish: publish, log: log, holds: map[int]hold{}, renewed: map[int]time.Time{}, renewErr: map[int]error{}, dropping: map[int]bool{}, lost: map[int]string{}}
	store.SetAttachments(m)
	m.mu.Lock()
	m.syncLocked()
	m.mu.Unlock()
	return m
}

// Available is nil when there are drives, else why not.
func (m *Manager) Available() error {
	if m.g != nil {
		return nil
	}
	if m.gerr != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, m.gerr)
	}
	return ErrUnavailable
}

// Count is the number of drives (0 without a gadget).
func (m *Manager) Count() int {
	if m.g == nil {
		return 0
	}
	return m.g.Count()
}

// Attached maps attached images (store-relative) to drives, read from
// configfs, so it stays true across restarts and host-side ejects. An error
// (configfs unreadable) makes the store refuse changes: it fails closed.
func (m *Manager) Attached() (map[string][]int, error) {
	if m.g == nil {
		return nil, nil
	}
	ds, err := m.g.Drives()
	if err != nil {
		return nil, err
	}
	out := map[string][]int{}
	for _, d := range ds {
		if d.File == "" {
			continue
		}
		if rel, ok := m.store.Rel(d.File); ok {
			out[rel] = append(out[rel], d.Index)
		}
	}
	return out, nil
}

func (m *Manager) state(d gadget.Drive) State {
	s := State{Index: d.Index, CDROM: d.CDROM, RW: d.RW, Media: d.Media}
	if d.File == "" {
		s.RestoreError = m.restoreError(d.Index)
	}
	if d.URL != "" {
		s.URL, s.MediumError = fetch.Redact(d.URL), fetch.Redact(d.MediumError) // what everyone shows; the state file keeps the password
		return s
	}
	if d.File != "" {
		if rel, ok := m.store.Rel(d.File); ok {
			s.Image = &rel
		} else {
			s.File = d.File
		}
	}
	return s
}

// Drives reads every drive from configfs.
func (m *Manager) Drives() ([]State, error) {
	if err := m.Available(); err != nil {
		return nil, err
	}
	ds, err := m.g.Drives()
	if err != nil {
		return nil, err
	}
	out := make([]State, len(ds))
	for i, d := range ds {
		out[i] = m.state(d)
	}
	return out, nil
}

// Drive reads drive i from configfs.
func (m *Manager) Drive(i int) (State, error) {
	if err := m.Available(); err != nil {
		return State{}, err
	}
	d, err := m.g.Drive(i)
	if err != nil {
		return State{}, err
	}
	return m.state(d), nil
}

// Attach puts what req names into its drive, after validating req (Check):
// a store image (every protection the store gives), a file anywhere (the
// local CLI, as kvmd-otgmsd allows; a file inside the store is taken as
// its store image), or a URL's medium (userspace backend, read-only). A
// different image in the drive goes out first; the same request again
// changes nothing.
func (m *Manager) Attach(ctx context.Context, req Request) (State, error) {
	if req.File != "" {
		if rel, ok := m.store.Rel(req.File); ok {
			req.Image, req.File = rel, ""
		}
	}
	req, err := m.check(req)
	if err != nil {
		return State{}, err
	}
	if req.URL != "" && req.Medium == nil {
		return State{}, fmt.Errorf("attach %s: no medium reads it", req.URL)
	}
	switch {
	case req.URL != "":
		return m.attachURL(req)
	case req.Image != "":
		abs, err := m.store.Abs(req.Image)
		if err != nil {
			return State{}, err
		}
		d, err := m.attach(ctx, req, abs)
		return d, m.advise(req.Image, err)
	default:
		return m.attach(ctx, req, req.File)
	}
}

// prepare is every attach's preamble, under mu: drive i as configfs says
// now, emptied unless keep says what it holds may stay.
func (m *Manager) prepare(i int, keep func(cur gadget.Drive, ds []gadget.Drive) (bool, error)) (gadget.Drive, bool, error) {
	ds, err := m.g.Drives()
	if err != nil {
		return gadget.Drive{}, false, err
	}
	cur := ds[i] // Check bounded i by Count, which configfs does not change
	if keep != nil {
		kept, err := keep(cur, ds)
		if err != nil || kept {
			return cur, kept, err
		}
	}
	if cur.File != "" {
		if _, err := m.ejectLocked(i, cur, false); err != nil {
			return cur, false, err
		}
	}
	return cur, false, nil
}

func (m *Manager) attach(ctx context.Context, req Request, abs string) (State, error) {
	i, cdrom, rw := req.Drive, req.CDROM, req.RW
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, same, err := m.prepare(i, func(cur gadget.Drive, ds []gadget.Drive) (bool, error) {
		for _, d := range ds {
			if d.Index != i && d.File != "" && (d.RW || rw) && m.store.SameFile(d.File, abs) {
				what := ""
				if d.RW {
					what = " read-write"
				}
				return false, refuse(http.StatusConflict, ErrConflict, "%s is attached to drive %d%s; one image can be shared only read-only", m.name(abs), d.Index, what)
			}
		}
		return cur.File == abs && cur.CDROM == cdrom && cur.RW == rw, nil
	})
	if err != nil {
		return State{}, err
	}
	if same {
		return m.state(cur), nil
	}
	// In a folder other boxes share, this box's lease comes before the
	// kernel opens the image: another box's live rw lease refuses it.
	rel, inStore := m.store.Rel(abs)
	if inStore {
		if err := m.store.PutLease(i, rel, rw); err != nil {
			return State{}, err
		}
	}
	// The hold comes first: the kernel opens the file rw when "file" is
	// written, and on a ro filesystem it silently falls back to ro.
	var release func()
	if rw && inStore {
		if release, err = m.store.Write(ctx, fmt.Sprintf("drive %d attached rw", i)); err != nil {
			return State{}, err
		}
	}
	d, err := m.g.Attach(i, abs, cdrom, rw)
	if err != nil {
		if release != nil {
			release()
		}
		if inStore {
			m.dropLeaseLocked(i)
		}
		m.syncLocked()
		return State{}, err
	}
	m.renewed[i] = time.Now()
	delete(m.renewErr, i)
	delete(m.dropping, i) // the new lease took the old one's name
	m.forgetRestore(i)
	if release != nil {
		if old, ok := m.holds[i]; ok {
			old.release()
		}
		m.holds[i] = hold{release: release, file: abs}
	}
	m.syncLocked()
	return m.state(d), nil
}

// attachURL puts req's medium into its drive, read-only.
func (m *Manager) attachURL(req Request) (State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, _, err := m.prepare(req.Drive, nil); err != nil {
		return State{}, err
	}
	d, err := m.g.AttachURL(req.Drive, req.URL, req.Medium, req.CDROM)
	if err == nil {
		m.forgetRestore(req.Drive)
	}
	m.syncLocked()
	if err != nil {
		return State{}, err
	}
	return m.state(d), nil
}

func (m *Manager) name(abs string) string {
	if rel, ok := m.store.Rel(abs); ok {
		return rel
	}
	return abs
}

// Eject empties drive i, flushing a rw image first. A medium the host has
// locked stays unless force (kernel forced_eject).
func (m *Manager) Eject(ctx context.Context, i int, force bool) (State, error) {
	if err := m.Available(); err != nil {
		return State{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, err := m.g.Drive(i)
	if err != nil {
		return State{}, err
	}
	s, err := m.ejectLocked(i, cur, force)
	if err == nil {
		m.forgetRestore(i)
		s.RestoreError = ""
	}
	m.syncLocked()
	return s, err
}

// ejectLocked ejects, flushes what the kernel wrote and gives the store's
// hold back. Caller holds mu.
func (m *Manager) ejectLocked(i int, before gadget.Drive, force bool) (State, error) {
	d, err := m.g.Eject(i, force)
	if err != nil {
		return State{}, err
	}
	if before.RW && before.File != "" {
		// The kernel closes the file without syncing it.
		m.flushLocked(i, before.File)
	}
	if h, ok := m.holds[i]; ok && d.File == "" {
		h.release()
		delete(m.holds, i)
	}
	if d.File == "" {
		m.dropLeaseLocked(i)
	}
	return m.state(d), nil
}

// flushLocked makes what the kernel wrote into an image durable. A drive
// attached rw writes through the page cache, and most USB hosts never send
// SYNCHRONIZE CACHE (usb-storage assumes a write-through cache), so without
// this a power cut loses what the target host believes it saved. By path,
// not through the store's root: msdav drive may attach a file outside it.
func (m *Manager) flushLocked(i int, abs string) {
	f, err := os.Open(abs)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err != nil {
		m.log.Warn("cannot flush a rw drive's image", "drive", i, "image", abs, "err", err)
	}
}

// Reconnect unbinds and rebinds the UDC: the host re-enumerates.
func (m *Manager) Reconnect() error {
	if err := m.Available(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.g.Reconnect()
}

// Run watches configfs until ctx ends: what the host did on its own (an
// eject from its side empties the LUN's file without telling anyone) is
// published and releases the hold a rw drive had, every poll; images
// attached rw are flushed every flushEvery.
func (m *Manager) Run(ctx context.Context, poll, flushEvery time.Duration) {
	if m.g == nil {
		return
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			m.mu.Lock()
			m.syncLocked()
			if now.Sub(last) >= flushEvery {
				last = now
				m.flushAllLocked()
			}
			m.mu.Unlock()
		}
	}
}

// FlushEvery is how often Run syncs images attached rw: at most about this
// much of what the target host wrote can be lost to a power cut. Most USB
// hosts never send SYNCHRONIZE CACHE (usb-storage assumes write-through).
const FlushEvery = time.Second

func (m *Manager) flushAllLocked() {
	ds, err := m.g.Drives()
	if err != nil {
		return
	}
	for _, d := range ds {
		if d.File != "" && d.RW {
			m.flushLocked(d.Index, d.File)
		}
	}
}

// syncLocked makes the holds match configfs (held while attached rw, also
// after a restart) and publishes every drive that changed since the last
// look. Caller holds mu.
func (m *Manager) syncLocked() {
	if m.g == nil {
		return
	}
	ds, err := m.g.Drives()
	if err != nil {
		if m.bad == nil || m.bad.Error() != err.Error() {
			m.log.Error("cannot read the drives; images cannot change until they can be read", "err", err)
		}
		m.bad = err
		return
	}
	if m.bad != nil {
		m.log.Info("drives readable again")
		m.bad = nil
	}
	for _, d := range ds {
		h, held := m.holds[d.Index]
		_, inStore := m.store.Rel(d.File)
		switch {
		case d.File != "" && d.RW && inStore && !held:
			done, err := m.store.Write(context.Background(), fmt.Sprintf("drive %d attached rw", d.Index))
			if err != nil {
				m.log.Error("cannot keep the store rw for a rw drive", "drive", d.Index, "err", err)
				continue
			}
			m.holds[d.Index] = hold{release: done, file: d.File}
		case (d.File == "" || !d.RW || d.File != h.file) && held:
			if d.File == "" {
				m.log.Info("drive emptied by the host", "drive", d.Index)
			}
			// What the host wrote before the kernel closed the file.
			m.flushLocked(d.Index, h.file)
			h.release()
			delete(m.holds, d.Index)
		}
	}
	m.leasesLocked(ds)
	states := make([]State, len(ds))
	for i, d := range ds {
		states[i] = m.state(d)
	}
	for i, s := range states {
		if i >= len(m.seen) || !reflect.DeepEqual(m.seen[i], s) {
			m.publish("drive", s)
		}
	}
	m.seen = states
}

// Selection is what a drive is to hold next, chosen before it is attached
// (kvmd's set_params, Redfish's PATCH of Image): the one piece of state
// those protocols keep beside the drive itself. It lives here, not in each
// facade, so every way in sees the same choice.
type Selection struct {
	Image string // store-relative; "" for none
	CDROM bool
	RW    bool
}

// Selected is drive i's selection (zero when none was made).
func (m *Manager) Selected(i int) Selection {
	m.selMu.Lock()
	defer m.selMu.Unlock()
	return m.sel[i]
}

// Select records drive i's selection.
func (m *Manager) Select(i int, s Selection) {
	m.selMu.Lock()
	defer m.selMu.Unlock()
	if m.sel == nil {
		m.sel = map[int]Selection{}
	}
	m.sel[i] = s
}

// ServesURLs reports whether the drives can serve an image straight from
// a URL (a Request with URL): the userspace backend's can.
func (m *Manager) ServesURLs() bool { return m.g != nil && m.g.ServesURLs() }

// DVD reports whether the kernel serves CD images over the CD limit as DVDs.
func (m *Manager) DVD() bool { return m.g != nil && m.g.DVD() }

// leasesLocked keeps this box's leases in step with the drives: renewed
// every third of their life while attached (a restart reclaims its own at
// the first sync), dropped when a drive is empty (the host ejected it).
// Caller holds mu.
func (m *Manager) leasesLocked(ds []gadget.Drive) {
	every := m.store.LeaseTTL() / 3
	for _, d := range ds {
		rel, inStore := m.store.Rel(d.File)
		switch {
		case d.File == "" || !inStore:
			// At the first sync a userspace drive is empty until Restore
			// puts its medium back: its lease stays, as a kernel drive's does.
			if _, had := m.renewed[d.Index]; had || m.dropping[d.Index] || m.seen == nil && !m.g.Pending(d.Index) {
				m.dropLeaseLocked(d.Index)
			}
		case time.Since(m.renewed[d.Index]) >= every:
			// A library whose server is down fails every poll until it
			// returns: that is one error in the log, not two a second for
			// the whole outage, and a line when the lease holds again.
			if err := m.store.PutLease(d.Index, rel, d.RW); err != nil {
				if _, logged := m.renewErr[d.Index]; !logged {
					m.log.Error("cannot renew the lease on a shared image; retrying every poll", "drive", d.Index, "image", rel, "err", err)
				}
				m.renewErr[d.Index] = err
				continue
			}
			if err, failed := m.renewErr[d.Index]; failed {
				m.log.Info("lease on a shared image renewed again", "drive", d.Index, "image", rel, "last_err", err)
				delete(m.renewErr, d.Index)
			}
			m.renewed[d.Index] = time.Now()
		}
	}
}

// dropLeaseLocked removes drive i's lease. One that cannot be removed now
// (the library's server is down) is tried again every poll until it can
// be: left alone it would refuse the other boxes the image for the rest
// of its life (lease_ttl) after the server returns. Caller holds mu.
func (m *Manager) dropLeaseLocked(i int) {
	delete(m.renewed, i)
	delete(m.renewErr, i)
	if err := m.store.DropLease(i); err != nil {
		if !m.dropping[i] {
			m.log.Warn("cannot drop a lease; retrying every poll (it also expires by itself)", "drive", i, "err", err)
		}
		m.dropping[i] = true
		return
	}
	if m.dropping[i] {
		m.log.Info("lease dropped", "drive", i)
		delete(m.dropping, i)
	}
}
