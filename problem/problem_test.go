package problem_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/msdav/msdav/drives"
	"github.com/msdav/msdav/fetch"
	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/fs/diskimage"
	"github.com/msdav/msdav/gadget"
	"github.com/msdav/msdav/problem"
	"golang.org/x/net/webdav"
)

func TestStatus(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("op x: %w", err) }
	for _, tc := range []struct {
		err  error
		want int
	}{
		{problem.Errorf(400, "bad"), 400},
		{wrap(problem.New(409, "x")), 409},
		{wrap(&gadget.TooBigError{Size: 5 << 30}), 422},
		{fmt.Errorf("%w: %w", fs.ErrBadName, os.ErrNotExist), 400}, // the error that knows its status wins
		{&fs.LockedError{Path: "a.iso", Drive: 1}, 423},
		{wrap(webdav.ErrLocked), 423},
		{wrap(fs.ErrAttachUnknown), 503},
		{wrap(drives.ErrUnavailable), 503},
		{wrap(fs.ErrOutside), 403},
		{wrap(os.ErrPermission), 403},
		{wrap(fs.ErrBadName), 400},
		{wrap(gadget.ErrNoDrive), 404},
		{&os.PathError{Op: "open", Path: "x", Err: syscall.ENOENT}, 404},
		{&os.PathError{Op: "open", Path: "x", Err: syscall.ENOTDIR}, 404},
		{&os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}, 507},
		{&os.PathError{Op: "write", Path: "x", Err: syscall.EDQUOT}, 507},
		{&os.PathError{Op: "openat", Path: "x", Err: syscall.EROFS}, 503},
		{wrap(gadget.ErrMediumLocked), 409},
		{wrap(gadget.ErrBusy), 409},
		{wrap(drives.ErrConflict), 409},
		{wrap(diskimage.ErrExists), 409},
		{&gadget.TooBigError{Size: 5 << 30}, 422},
		{wrap(drives.ErrRefused), 422},
		{wrap(diskimage.ErrSpec), 422},
		{wrap(webdav.ErrConfirmationFailed), 412},
		{wrap(fetch.ErrInvalid), 400},
		{wrap(fetch.ErrExists), 409},
		{wrap(fetch.ErrRefused), 422},
		{wrap(fetch.ErrRemote), 502},
		{context.Canceled, 503},
		{errors.New("something else"), 500},
	} {
		if got := problem.Status(tc.err); got != tc.want {
			t.Errorf("Status(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// A message never shows the store's own temp names (finding 5 of issue 11:
// "openat flash/.msdav-upload-…").
func TestMessageHidesInternalNames(t *testing.T) {
	for _, err := range []error{
		&os.PathError{Op: "openat", Path: "flash/.msdav-upload-1732561234567-tools.img", Err: syscall.ENOENT},
		fmt.Errorf("upload %s: rename: %w", "a.iso", &os.LinkError{Op: "renameat", Old: ".msdav-upload-99-a.iso", New: "a.iso", Err: syscall.EIO}),
		errors.New("write isos/.msdav-props-a.iso: no space"),
	} {
		msg := problem.Message(err)
		if strings.Contains(msg, ".msdav-") {
			t.Errorf("Message(%v) = %q shows an internal name", err, msg)
		}
	}
	if msg := problem.Message(&os.PathError{Op: "openat", Path: "flash/.msdav-upload-17-tools.img", Err: syscall.ENOENT}); msg != "openat flash/tools.img: no such file or directory" {
		t.Errorf("message %q does not name the client's own file", msg)
	}
	if msg := problem.Message(&os.PathError{Op: "openat", Path: "a.img", Err: syscall.EROFS}); !strings.Contains(msg, "try again") || !strings.Contains(msg, "mount it read-write") {
		t.Errorf("EROFS message gives no advice: %q", msg)
	}
}

// A hint is what a person can do; the message carries it, wrapped or not.
func TestMessageHint(t *testing.T) {
	msg := problem.Message(fmt.Errorf("eject drive 0: %w", gadget.ErrMediumLocked))
	if !strings.Contains(msg, "the host has locked the medium") || !strings.Contains(msg, "eject with force") {
		t.Errorf("locked medium: %q gives no way out", msg)
	}
}
