package drives

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/msdav/msdav/gadget"
	"github.com/msdav/msdav/gadget/scsi"
)

// OpenURL opens an image read from a URL, through the same guard as any
// other URL a person gives msdav (fetch.Manager.Guarded, then remote.Open).
type OpenURL func(ctx context.Context, url string) (scsi.Medium, error)

// restoreURLWait bounds how long one URL may take to open at start: a
// server that does not answer leaves that drive empty, not msdav unstarted.
const restoreURLWait = 15 * time.Second

// Restore puts back what the userspace drives held when msdav last ran
// (gadget.Persist), each through the same path as a person's attach: the
// store's checks, this box's lease in a shared folder (so a restart
// reclaims it, and another box's rw lease taken meanwhile refuses it), the
// rw hold. A drive whose image is gone or was replaced, or whose URL does
// not open, stays empty; it is logged, and the drive's state says why
// (restore_error) until the drive is next attached or ejected. Restore
// never fails: msdav starts in any case.
func (m *Manager) Restore(ctx context.Context, saved []Saved, open OpenURL) {
	if m.g == nil || len(saved) == 0 {
		return
	}
	for _, s := range saved {
		st, err := m.restoreOne(ctx, s, open)
		if err != nil {
			why := fmt.Sprintf("%s was in this drive before msdav restarted and could not go back: %v", s.Name(), err)
			m.log.Error("a drive stays empty after the restart", "drive", s.Drive, "medium", s.Name(), "err", err)
			m.lostMu.Lock()
			m.lost[s.Drive] = why
			m.lostMu.Unlock()
			// The last run's lease on what it held, kept until now
			// (tried again every poll if the library does not answer).
			m.mu.Lock()
			m.dropLeaseLocked(s.Drive)
			m.mu.Unlock()
			continue
		}
		m.log.Info("put back what the drive held before the restart", "drive", s.Drive, "medium", s.Name(), "cdrom", st.CDROM, "rw", st.RW, "media", st.Media)
	}
	// Drives that stayed empty are empty in the file too: the next restart
	// does not bring back what a person saw gone. Unless msdav is being
	// stopped while it starts: then the failures say nothing about the
	// media, and the next start tries them all again.
	if ctx.Err() == nil {
		m.g.SaveState()
	}
	m.mu.Lock()
	m.syncLocked()
	m.mu.Unlock()
}

// Saved is one drive's medium from the last run (gadget.Saved).
type Saved = gadget.Saved

func (m *Manager) restoreOne(ctx context.Context, s Saved, open OpenURL) (State, error) {
	if s.URL != "" {
		if open == nil {
			return State{}, fmt.Errorf("images from a URL are not set up in this server")
		}
		octx, cancel := context.WithTimeout(ctx, restoreURLWait)
		med, err := open(octx, s.URL)
		cancel()
		if err != nil {
			return State{}, err
		}
		st, err := m.Attach(ctx, Request{Drive: s.Drive, URL: s.URL, Medium: med, CDROM: s.CDROM})
		if err != nil {
			if c, ok := med.(io.Closer); ok {
				c.Close()
			}
		}
		return st, err
	}
	if err := s.Check(); err != nil {
		return State{}, err
	}
	return m.Attach(ctx, Request{Drive: s.Drive, File: s.File, CDROM: s.CDROM, RW: s.RW})
}

// restoreError is why drive i came back empty after a restart, "" if it
// did not (or has changed since).
func (m *Manager) restoreError(i int) string {
	m.lostMu.Lock()
	defer m.lostMu.Unlock()
	return m.lost[i]
}

// forgetRestore clears drive i's restore error: a person changed it.
func (m *Manager) forgetRestore(i int) {
	m.lostMu.Lock()
	delete(m.lost, i)
	m.lostMu.Unlock()
}
