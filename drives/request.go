package drives

import (
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/gadget"
	"github.com/msdav/msdav/gadget/scsi"
)

// Request is one attach, however it arrived (the API's PUT, kvmd's
// set_connected, Redfish's InsertMedia, the CLI, a restore): each front end
// translates its wire format into one, and Attach validates it, once.
// Exactly one of Image, File and URL names what goes in.
type Request struct {
	Drive int
	Image string // store-relative
	File  string // absolute, anywhere: the local CLI (msdav drive) only
	URL   string // served by Medium, read from there (userspace backend)
	// Medium reads URL; Attach takes it over when it succeeds, the caller
	// closes it when it fails.
	Medium scsi.Medium
	CDROM  bool
	RW     bool
}

// Error is a request the manager refused, with the HTTP status every front
// end answers it with (each in its own wire format). It unwraps to the
// sentinel that says what kind of refusal it is.
type Error struct {
	Status int
	Msg    string
	Err    error // ErrRefused, ErrInvalid, ErrConflict, os.ErrNotExist, gadget.ErrNoDrive
}

func (e *Error) Error() string   { return e.Msg }
func (e *Error) Unwrap() error   { return e.Err }
func (e *Error) HTTPStatus() int { return e.Status }

// ErrInvalid: the request itself is malformed (names no image, or two).
var ErrInvalid = errors.New("invalid attach request")

func refuse(status int, sentinel error, format string, args ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...), Err: sentinel}
}

// CheckDrive refuses an index that names no drive.
func (m *Manager) CheckDrive(i int) error {
	if err := m.Available(); err != nil {
		return err
	}
	if n := m.Count(); i < 0 || i >= n {
		return refuse(http.StatusNotFound, gadget.ErrNoDrive, "drive %d: %v (drives are 0 to %d)", i, gadget.ErrNoDrive, n-1)
	}
	return nil
}

// CheckImage resolves rel to a complete image file in the store: the rule
// every way of attaching (and kvmd's set_params, which only selects) shares.
func (m *Manager) CheckImage(rel string) (clean string, err error) {
	img := rel
	rel, err = fs.ImageName(rel)
	if errors.Is(err, fs.ErrBadName) { // hidden or internal: as if not there
		return "", refuse(http.StatusNotFound, os.ErrNotExist, "no image %q in the store (GET /api/images lists them)", img)
	}
	if err != nil {
		return "", err
	}
	if u, ok := m.store.Uploading(rel); ok {
		return "", refuse(http.StatusConflict, ErrConflict, "%s is still uploading (%d bytes so far)", rel, u.Received())
	}
	abs, err := m.store.Abs(rel)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("no image %q in the store (GET /api/images lists them): %w", img, err)
	}
	var fi os.FileInfo
	if err == nil {
		fi, err = os.Stat(abs)
	}
	switch {
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("image %q: %w", img, err)
	case err != nil:
		return "", refuse(http.StatusNotFound, os.ErrNotExist, "no image %q in the store (GET /api/images lists them)", img)
	case fi.IsDir():
		return "", refuse(http.StatusNotFound, os.ErrNotExist, "%q is a folder, not an image: name an image file in it", img)
	case !fi.Mode().IsRegular():
		return "", refuse(http.StatusNotFound, os.ErrNotExist, "%q is not an image file", img)
	}
	return rel, nil
}

// Check validates req without attaching anything: what Attach refuses
// before it touches a drive.
func (m *Manager) Check(req Request) error {
	_, err := m.check(req)
	return err
}

// check validates req and returns it with Image cleaned.
func (m *Manager) check(req Request) (Request, error) {
	if err := m.Available(); err != nil {
		return req, err
	}
	named := 0
	for _, s := range []string{req.Image, req.File, req.URL} {
		if s != "" {
			named++
		}
	}
	switch {
	case named == 0:
		return req, refuse(http.StatusBadRequest, ErrInvalid, "no image named: name an image from GET /api/images, or a URL")
	case named > 1:
		return req, refuse(http.StatusBadRequest, ErrInvalid, "name one image: a store image, a file or a URL, not two")
	}
	if err := m.CheckDrive(req.Drive); err != nil {
		return req, err
	}
	if req.CDROM && req.RW {
		return req, refuse(http.StatusUnprocessableEntity, ErrRefused, "a CD/DVD is never writable: attach it read-only (rw false, WriteProtected true), or as a flash drive (cdrom false)")
	}
	switch {
	case req.URL != "":
		if req.RW {
			return req, refuse(http.StatusUnprocessableEntity, ErrRefused, "an image served from a URL is read-only: attach it with rw false (WriteProtected true)")
		}
	case req.Image != "":
		rel, err := m.CheckImage(req.Image)
		if err != nil {
			return req, err
		}
		req.Image = rel
	case req.File != "":
		if _, err := os.Stat(req.File); err != nil {
			return req, fmt.Errorf("attach %s: %w", req.File, err)
		}
	}
	return req, nil
}
