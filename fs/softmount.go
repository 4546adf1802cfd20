package fs

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// WriteError is an upload's failure to write what arrived into the store:
// the store's fault, not the client's, so the share answers it with a 5xx
// (507 when the part is full), never 400 as for a body that broke off.
type WriteError struct {
	Rel string
	Err error
}

func (e *WriteError) Error() string { return fmt.Sprintf("upload %s: write: %v", e.Rel, e.Err) }
func (e *WriteError) Unwrap() error { return e.Err }

// explainIO adds to an I/O error on rel what a person can do about it when
// rel lives on an NFS part mounted soft: there EIO most often means the
// server did not answer within timeo×retrans, and the cure is in the mount
// options. The file's absolute path an *os.PathError carries is left out:
// the caller names the image by its path in the store, and a client has no
// business learning where the store lives on the box.
func (s *Store) explainIO(rel string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if !errors.Is(err, syscall.EIO) {
		return err
	}
	pms, perr := s.partMounts()
	if perr != nil {
		return err
	}
	pm := innermost(pms, rel)
	return softMountAdvice(pm.Mount, pm.rel, err)
}

// innermost is the part holding rel: the deepest mount above it, else the
// root's own (pms[0], ".").
func innermost(pms []partMount, rel string) partMount {
	best := pms[0]
	for _, pm := range pms {
		if pm.rel != "." && under("/"+rel, "/"+pm.rel) && len(pm.rel) > len(best.rel) {
			best = pm
		}
	}
	return best
}

// softMountAdvice explains an EIO from part, mounted as m. A write that
// failed this way was not retried: after a failed writeback Linux drops
// the dirty pages and a second fsync reports success over lost data, so
// the only safe retry is the whole upload, which is the client's to make.
func softMountAdvice(m Mount, part string, err error) error {
	if !errors.Is(err, syscall.EIO) || !strings.HasPrefix(m.FSType, "nfs") || !hasOption(m.SuperOptions, "soft") {
		return err
	}
	timeo, _ := m.superOption("timeo")
	retrans, _ := m.superOption("retrans")
	try := "timeo"
	if n, aerr := strconv.Atoi(timeo); aerr == nil {
		try = (time.Duration(n) * 100 * time.Millisecond).String() // timeo counts tenths of a second
	}
	return fmt.Errorf("%w: part %s is NFS mounted soft with timeo=%s,retrans=%s, where the client gives up and reports an I/O error when the server takes longer than %s a try; "+
		"try again, and for a library that is written to mount it with timeo=30,retrans=2 or more (deploy/SETUP.md)", err, part, timeo, retrans, try)
}
