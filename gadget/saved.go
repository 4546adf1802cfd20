package gadget

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/msdav/msdav/fs"
)

// With the kernel backend configfs keeps what each drive holds while msdav
// restarts. With the userspace backend the process is the device, so it
// writes what each drive holds to a state file on every change, and a new
// process puts it back (drives.Manager.Restore).

// Saved is what one userspace drive held, as its state file records it.
type Saved struct {
	Drive int    `json:"drive"`
	File  string `json:"file,omitempty"` // absolute path of an image file
	URL   string `json:"url,omitempty"`  // or the URL the image is read from
	CDROM bool   `json:"cdrom"`
	RW    bool   `json:"rw,omitempty"`
	Size  int64  `json:"size"`
	// Inode of File when it went in: a file replaced under the same name
	// while msdav was stopped is another medium, not the one to put back.
	Inode uint64 `json:"inode,omitempty"`
}

// savedState is the state file.
type savedState struct {
	Version int     `json:"version"`
	Drives  []Saved `json:"drives"`
}

const savedVersion = 1

// Check reports why a saved file medium cannot go back in as it was: gone,
// not a regular file, or replaced or resized since. A URL is checked by
// opening it.
func (s Saved) Check() error {
	if s.File == "" {
		return nil
	}
	fi, err := os.Stat(s.File)
	if err != nil {
		return fmt.Errorf("%s is gone: %w", s.File, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is no longer a regular file", s.File)
	}
	if ino := fs.Inode(fi); s.Inode != 0 && ino != 0 && ino != s.Inode {
		return fmt.Errorf("%s was replaced by another file while msdav was stopped", s.File)
	}
	if fi.Size() != s.Size {
		return fmt.Errorf("%s changed size while msdav was stopped (%d bytes, was %d)", s.File, fi.Size(), s.Size)
	}
	return nil
}

// Persist makes the userspace backend record what its drives hold in the
// file at path, rewritten atomically on every change, and returns what
// that file said they held when msdav last ran, for the caller to put back.
// A missing file means empty drives. The error describes what of the file
// could not be used (unreadable, another version, a drive this gadget does
// not have); what could be used is returned with it, and the file is
// rewritten at the next change, so it is never a reason not to start.
//
// With the kernel backend configfs keeps the drives: a file a userspace run
// left at path is stale, and goes.
func (g *Gadget) Persist(path string) ([]Saved, error) {
	u, ok := g.be.(*userspace)
	if !ok {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remove the userspace drives' state %s: %w", path, err)
		}
		return nil, nil
	}
	saved, err := readSaved(path, len(u.drives))
	u.stateMu.Lock()
	u.statePath = path
	u.pending = map[int]bool{}
	for _, s := range saved {
		u.pending[s.Drive] = true
	}
	u.stateMu.Unlock()
	return saved, err
}

// Pending reports whether Persist found a medium for drive i to get back:
// at start, before the restore, its lease in a shared folder is not this
// run's to drop.
func (g *Gadget) Pending(i int) bool {
	u, ok := g.be.(*userspace)
	if !ok {
		return false
	}
	u.stateMu.Lock()
	defer u.stateMu.Unlock()
	return u.pending[i]
}

// readSaved reads a state file for a gadget of n drives.
func readSaved(path string, n int) ([]Saved, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the drives' state %s: %w", path, err)
	}
	var st savedState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("the drives' state %s is damaged (%v); the drives start empty", path, err)
	}
	if st.Version != savedVersion {
		return nil, fmt.Errorf("the drives' state %s has version %d, this msdav writes %d; the drives start empty", path, st.Version, savedVersion)
	}
	var out []Saved
	var errs []error
	seen := map[int]bool{}
	for _, s := range st.Drives {
		switch {
		case s.Drive < 0 || s.Drive >= n:
			errs = append(errs, fmt.Errorf("the drives' state %s names drive %d, which this gadget does not have (gadget.drives = %d); %s stays out", path, s.Drive, n, s.Name()))
		case seen[s.Drive]:
			errs = append(errs, fmt.Errorf("the drives' state %s names drive %d twice; only the first is used", path, s.Drive))
		case (s.File == "") == (s.URL == ""):
			errs = append(errs, fmt.Errorf("the drives' state %s has an entry for drive %d with neither or both of a file and a URL", path, s.Drive))
		case s.CDROM && s.RW || s.URL != "" && s.RW:
			errs = append(errs, fmt.Errorf("the drives' state %s has drive %d writable as a CD/DVD or from a URL; it stays empty", path, s.Drive))
		default:
			seen[s.Drive] = true
			out = append(out, s)
		}
	}
	return out, errors.Join(errs...)
}

// Name is the medium: its file or its URL.
func (s Saved) Name() string {
	if s.URL != "" {
		return s.URL
	}
	return s.File
}

// saveState writes what the drives hold now to the state file, when there
// is one. A failure is logged: the drives keep working, a restart would
// only find them as they were at the last good write.
func (u *userspace) saveState() {
	u.stateMu.Lock()
	defer u.stateMu.Unlock()
	if u.statePath == "" {
		return
	}
	st := savedState{Version: savedVersion, Drives: []Saved{}}
	for i, d := range u.drives {
		m, ro, _ := d.lun.State()
		s := Saved{Drive: i, CDROM: d.lun.CD()}
		switch m := m.(type) {
		case *fileMedium:
			s.File, s.Size, s.Inode, s.RW = m.path, m.size, m.inode, !ro && m.rw
		case urlMedium:
			s.URL, s.Size = m.URL(), m.Size()
		default:
			continue
		}
		st.Drives = append(st.Drives, s)
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := fs.WriteFileAtomic(u.statePath, append(b, '\n'), 0o644); err != nil {
		u.g.log.Error("cannot save what the drives hold; a restart of msdav would not put it back", "state", u.statePath, "err", err)
	}
}

// SaveState writes what the drives hold now to the state file Persist
// named (the userspace backend; a no-op otherwise): after a restore in
// which some drives could not go back, the file says they are empty.
func (g *Gadget) SaveState() {
	if u, ok := g.be.(*userspace); ok {
		u.saveState()
	}
}
