package drives

import (
	"errors"
	"fmt"

	"github.com/msdav/msdav/fs/imagekind"
	"github.com/msdav/msdav/gadget"
)

// adviceError is a drive refusal with advice that depends on what the
// image is; it still unwraps to the refusal, so the status stays.
type adviceError struct {
	msg string
	err error
}

func (e *adviceError) Error() string { return e.msg }
func (e *adviceError) Unwrap() error { return e.err }

// advise replaces the blind "attach it as flash" of a CD that is too big
// with what will really happen: a hybrid ISO boots as flash, a plain one
// does not.
func (m *Manager) advise(rel string, err error) error {
	var big *gadget.TooBigError
	if !errors.As(err, &big) {
		return err
	}
	_, kind, kerr := m.store.Checksum(rel)
	if kerr != nil {
		return err
	}
	head := fmt.Sprintf("%s has %d bytes, more than a CD holds on this kernel (%d bytes; DVD emulation needs a patched f_mass_storage)", rel, big.Size, int64(gadget.CDMaxBytes))
	switch imagekind.Kind(kind) {
	case imagekind.Hybrid:
		return &adviceError{head + `: it is a hybrid ISO (it also carries a partition table), so it boots as a flash drive: attach it with "cdrom": false`, err}
	case imagekind.ISO9660, imagekind.UDF:
		return &adviceError{fmt.Sprintf("%s: it is a plain %s disc image without a partition table, so as a flash drive the target would see it but not boot from it; booting it needs a kernel with DVD emulation", head, kind), err}
	}
	return err
}
