package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
)

// Receive is the one upload pipeline every front end (WebDAV PUT, the
// API's upload, kvmd's write, fetch's start) goes through: name check,
// parent folder, early 507, create, copy, the short-body rule, telling the
// store's failures from the client's, commit or abort.

// ReceiveError is a refused or failed upload: the HTTP status it means and
// a message for a person, which never names the store's temp files or
// host paths. Err is the cause, for logs and errors.Is.
type ReceiveError struct {
	Status int
	Msg    string
	Err    error
}

func (e *ReceiveError) Error() string   { return e.Msg }
func (e *ReceiveError) Unwrap() error   { return e.Err }
func (e *ReceiveError) HTTPStatus() int { return e.Status }

// carried is the status an error says it means (a decoder's refusal of a
// stream too big for its memory limit says 422), if it says one.
func carried(err error) (int, bool) {
	var s interface{ HTTPStatus() int }
	if errors.As(err, &s) {
		return s.HTTPStatus(), true
	}
	return 0, false
}

func refuse(status int, cause error, format string, args ...any) *ReceiveError {
	return &ReceiveError{Status: status, Msg: fmt.Sprintf(format, args...), Err: cause}
}

// ReceiveOptions say how a front end differs.
type ReceiveOptions struct {
	// Image: the name must be usable as an image (not hidden or junk).
	Image bool
	// MakeParents creates missing folders, as kvmd's prefix does;
	// otherwise a missing parent is a 409.
	MakeParents bool
	// NoReplace refuses a name that exists (409) instead of replacing it.
	NoReplace bool
	// Decode, if set, unpacks the body on the way in; the announced size
	// then counts the body, not the image. Format names it in messages.
	Decode func(io.Reader) (io.ReadCloser, error)
	Format string
	// Check, if set, sees the stored image's sha256 before the commit; its
	// error aborts the upload with a 422 and its message.
	Check func(sha256 string) error
	// Progress, if set, is told of every body byte as it is read.
	Progress func(n int)
}

// Received is what a finished upload stored.
type Received struct {
	Rel      string
	Size     int64 // bytes stored
	Body     int64 // bytes of the body read
	SHA256   string
	Replaced bool // a file was there before
}

// Receive stores body under rel atomically. announced is the body's size
// as the client said it (Content-Length, X-Expected-Entity-Length), -1
// when unknown: a body that ends short stores nothing. Every refusal comes
// before the body is read. Errors are *ReceiveError.
func (s *Store) Receive(ctx context.Context, rel string, body io.Reader, announced int64, o ReceiveOptions) (Received, error) {
	u, replaced, err := s.begin(ctx, rel, announced, o)
	if err != nil {
		return Received{}, err
	}
	rel = u.rel
	in := &bodyCounter{r: body, progress: o.Progress}
	var src io.Reader = in
	if o.Decode != nil {
		dec, err := o.Decode(in)
		if err != nil {
			u.Abort()
			if status, ok := carried(err); ok { // a decoder's own refusal (a bomb: 422)
				return Received{}, refuse(status, err, "%s: %v; nothing was kept", rel, err)
			}
			return Received{}, refuse(400, err, "%s: the body is not what it says it is: %v", rel, err)
		}
		defer dec.Close()
		src = dec
	}
	n, err := u.ReadFrom(src)
	if err == nil && announced >= 0 && in.n != announced {
		err = fmt.Errorf("the body ended after %d of %d bytes", in.n, announced)
	}
	if err != nil {
		u.Abort()
		var werr *WriteError
		switch {
		case errors.As(err, &werr): // the store's fault, not the body's
			return Received{}, refuse(statusOf(err), err, "%v; nothing was kept", werr)
		case o.Decode != nil && in.err == nil:
			if status, ok := carried(err); ok {
				return Received{}, refuse(status, err, "%s: %v; nothing was kept", rel, err)
			}
			return Received{}, refuse(400, err, "%s: the %s data is damaged or cut short, nothing was kept: %v", rel, o.Format, err)
		}
		return Received{}, refuse(400, err, "upload of %s incomplete, nothing was kept: %v", rel, err)
	}
	sum := u.Sum()
	if o.Check != nil {
		if err := o.Check(sum); err != nil {
			u.Abort()
			return Received{}, refuse(422, err, "%v", err)
		}
	}
	if err := u.Commit(); err != nil {
		return Received{}, refuse(statusOf(err), err, "%v", err)
	}
	return Received{Rel: rel, Size: n, Body: in.n, SHA256: sum, Replaced: replaced}, nil
}

// Begin is Receive's checks and create without the copy, for a front end
// that writes the upload itself (fetch resumes with Range requests).
func (s *Store) Begin(ctx context.Context, rel string, announced int64, o ReceiveOptions) (*Upload, error) {
	u, _, err := s.begin(ctx, rel, announced, o)
	return u, err
}

func (s *Store) begin(ctx context.Context, name string, announced int64, o ReceiveOptions) (*Upload, bool, error) {
	rel, err := Clean(name)
	switch {
	case err != nil:
		return nil, false, refuse(400, err, "%q is not a usable %sname: it leaves the store", name, map[bool]string{true: "image "}[o.Image])
	case rel == ".":
		return nil, false, refuse(405, ErrBadName, "an upload needs a file name, not a folder")
	case Classify(rel) == Internal:
		return nil, false, refuse(403, ErrBadName, "%s: names starting .msdav- are msdav's own", rel)
	case o.Image && Classify(rel) != Visible:
		return nil, false, refuse(400, ErrBadName, "%q is not a usable image name (hidden or a system file)", name)
	}
	dir := path.Dir(rel)
	if o.MakeParents {
		if err := s.MkdirAll(ctx, dir); err != nil {
			return nil, false, refuse(statusOf(err), err, "cannot create folder %s: %v", dir, plainErr(err))
		}
	}
	if fi, err := s.root.Stat(dir); err != nil || !fi.IsDir() {
		return nil, false, refuse(409, iofs.ErrNotExist, "folder %s does not exist in the store", dir)
	}
	fi, err := s.root.Stat(rel)
	replaced := err == nil
	switch {
	case err == nil && fi.IsDir():
		return nil, false, refuse(409, iofs.ErrExist, "%s is a folder", rel)
	case err == nil && o.NoReplace:
		return nil, false, refuse(409, iofs.ErrExist, "%s is already in the store: remove it first", rel)
	case err != nil && !errors.Is(err, iofs.ErrNotExist):
		return nil, false, refuse(statusOf(err), err, "%s: %v", rel, plainErr(err))
	}
	if _, busy := s.Uploading(rel); busy && o.NoReplace {
		return nil, false, refuse(409, iofs.ErrExist, "%s is being uploaded right now", rel)
	}
	if announced > 0 {
		if part, err := s.Usage(ctx, rel); err == nil && uint64(announced) > part.Free {
			return nil, false, refuse(507, syscall.ENOSPC, "not enough space: %d bytes announced, %d free on %s", announced, part.Free, part.Path)
		}
	}
	expected := announced
	if o.Decode != nil {
		expected = -1
	}
	u, err := s.Create(ctx, rel, expected)
	if err != nil {
		return nil, false, refuse(statusOf(err), err, "%s: %v", rel, plainErr(err))
	}
	return u, replaced, nil
}

// Announced is the size a request body will have, -1 when unknown: its
// Content-Length, else X-Expected-Entity-Length, which macOS Finder sends
// with its chunked bodies. It counts for the early 507, the progress, and
// the rule that a short body stores nothing.
func Announced(contentLength int64, expectedEntityLength string) int64 {
	if contentLength >= 0 {
		return contentLength
	}
	if v, err := strconv.ParseInt(strings.TrimSpace(expectedEntityLength), 10, 64); err == nil && v >= 0 {
		return v
	}
	return -1
}

// bodyCounter counts a body's bytes and remembers its own read error, so
// a body that broke off is told from a decoder's complaint.
type bodyCounter struct {
	r        io.Reader
	n        int64
	err      error
	progress func(int)
}

func (c *bodyCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.progress != nil && n > 0 {
		c.progress(n)
	}
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// statusOf is the HTTP status of a store error.
func statusOf(err error) int {
	var le *LockedError
	switch {
	case errors.As(err, &le):
		return 423
	case errors.Is(err, ErrAttachUnknown), errors.Is(err, ErrUnavailable), errors.Is(err, errClosed),
		errors.Is(err, syscall.EROFS), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return 503
	case IsNoSpace(err):
		return 507
	case errors.Is(err, ErrOutside), errors.Is(err, iofs.ErrPermission):
		return 403
	case errors.Is(err, ErrBadName), errors.Is(err, syscall.ENAMETOOLONG):
		return 400
	case errors.Is(err, syscall.ENOTDIR):
		return 409
	}
	return 500
}

// plainErr drops the path an *os.PathError or *os.LinkError carries: it
// may be a temp file's or the host's, neither the client's business.
func plainErr(err error) error {
	var pe *os.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		return pe.Err
	case errors.As(err, &le):
		return le.Err
	}
	return err
}
