// Package problem maps what went wrong in the store, the drives and the
// share to an HTTP status and a message a person can act on: one table for
// both the WebDAV share and the JSON API.
package problem

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"regexp"
	"syscall"

	"github.com/msdav/msdav/drives"
	"github.com/msdav/msdav/fetch"
	"github.com/msdav/msdav/fetch/unpack"
	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/fs/diskimage"
	"github.com/msdav/msdav/gadget"
	"golang.org/x/net/webdav"
)

// Error is an error whose status the code that found it knows best: bad
// input (400, 422), or a conflict only the handler can see.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// Errorf makes an *Error with the given status.
func Errorf(status int, format string, args ...any) error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// rule is one row of the table: the first that matches decides.
type rule struct {
	match  func(error) bool
	status int
}

func is(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }

func as[T error]() func(error) bool {
	return func(err error) bool { var t T; return errors.As(err, &t) }
}

var table = []rule{
	{as[*Error](), 0}, // its own status
	{as[*fs.LockedError](), 423},
	{is(webdav.ErrLocked), 423},
	{is(fs.ErrAttachUnknown), 503},
	{is(drives.ErrUnavailable), 503},
	{is(fs.ErrOutside), 403},
	{is(iofs.ErrPermission), 403},
	{is(fs.ErrBadName), 400},
	{is(gadget.ErrNoDrive), 404},
	{is(iofs.ErrNotExist), 404},
	{is(syscall.ENOTDIR), 404},
	{fs.IsNoSpace, 507},
	{is(syscall.EROFS), 503},
	{is(gadget.ErrMediumLocked), 409},
	{is(gadget.ErrBusy), 409},
	{is(drives.ErrConflict), 409},
	{is(diskimage.ErrExists), 409},
	{as[*gadget.TooBigError](), 422},
	{as[*unpack.LimitError](), 422},
	{is(drives.ErrRefused), 422},
	{is(gadget.ErrNeedsUserspace), 422},
	{is(gadget.ErrTooSmall), 422},
	{is(diskimage.ErrSpec), 422},
	{is(webdav.ErrConfirmationFailed), 412},
	{is(fetch.ErrInvalid), 400},
	{is(fetch.ErrExists), 409},
	{is(fetch.ErrRefused), 422},
	{is(fetch.ErrRemote), 502},
	{is(context.Canceled), 503},
	{is(context.DeadlineExceeded), 503},
}

// Status is the HTTP status err means; 500 when nothing in the table knows it.
func Status(err error) int {
	// An error that knows its own status (drives.Error) says it.
	var own interface{ HTTPStatus() int }
	if errors.As(err, &own) {
		return own.HTTPStatus()
	}
	for _, r := range table {
		if r.match(err) {
			if r.status == 0 {
				var e *Error
				errors.As(err, &e)
				return e.Status
			}
			return r.status
		}
	}
	return 500
}

// internalName matches the store's own temp names (".msdav-upload-123-"),
// which a client never chose and must never see.
var internalName = regexp.MustCompile(`\.msdav-[a-z]+-(\d+-)?`)

// Message is err's text for a client: internal names taken out, and, for
// the cases a person can do something about, what to do.
func Message(err error) string {
	msg := internalName.ReplaceAllString(err.Error(), "")
	switch {
	case errors.Is(err, syscall.EROFS):
		msg += " (the store's filesystem is read-only. With storage.remount on, msdav makes it writable for each change, also after someone remounted it behind msdav's back: try again. With storage.remount off, mount it read-write, or turn storage.remount on)"
	case errors.Is(err, gadget.ErrMediumLocked):
		msg += "; eject it on the host, or eject with force to break the lock"
	}
	return msg
}

// Of is Status and Message together.
func Of(err error) (int, string) { return Status(err), Message(err) }
