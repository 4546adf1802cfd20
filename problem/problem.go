// Package problem gives what went wrong an HTTP status and a message a
// person can act on: errors say their own status, and one table covers the
// standard library's, for the share, the JSON API, kvmd and Redfish alike.
package problem

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"regexp"
	"syscall"

	"golang.org/x/net/webdav"
)

// Error is an error that knows its status: bad input (400, 422), a
// conflict only the code that found it can see, or one of the store's,
// the drives' and the fetches' own errors, which are made with New.
type Error struct {
	Status int
	Msg    string
	Hint   string // what a person can do about it, added to the message for clients
}

func (e *Error) Error() string { return e.Msg }

// HTTPStatus is the status Status answers for any error that wraps e.
func (e *Error) HTTPStatus() int { return e.Status }

// New makes an error value with a status, for a package's sentinels:
// errors.Is finds it, and Status asks it.
func New(status int, msg string) *Error { return &Error{Status: status, Msg: msg} }

// Errorf makes an *Error with the given status.
func Errorf(status int, format string, args ...any) error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// rule is one row of the table of errors that do not know their status
// (the standard library's and x/net/webdav's): the first that matches decides.
type rule struct {
	match  func(error) bool
	status int
}

func is(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }

var table = []rule{
	{is(webdav.ErrLocked), 423},
	{is(iofs.ErrPermission), 403},
	{is(iofs.ErrNotExist), 404},
	{is(syscall.ENOTDIR), 404},
	{is(syscall.ENOSPC), 507},
	{is(syscall.EDQUOT), 507},
	{is(syscall.EROFS), 503},
	{is(webdav.ErrConfirmationFailed), 412},
	{is(context.Canceled), 503},
	{is(context.DeadlineExceeded), 503},
}

// Status is the HTTP status err means: the one the outermost error that
// knows its own (an HTTPStatus method) says, else the table's; 500 when
// nothing knows it.
func Status(err error) int {
	var own interface{ HTTPStatus() int }
	if errors.As(err, &own) {
		return own.HTTPStatus()
	}
	for _, r := range table {
		if r.match(err) {
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
	}
	var e *Error
	if errors.As(err, &e) && e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// Of is Status and Message together.
func Of(err error) (int, string) { return Status(err), Message(err) }
