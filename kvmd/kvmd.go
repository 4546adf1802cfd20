// Package kvmd answers PiKVM kvmd 4.x's Mass Storage API (/api/msd) for
// drive 0, so scripts written for a PiKVM keep working; it keeps no state of
// its own beyond the operation in progress, and acts through drives, fs and fetch.
package kvmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/gorilla/mux"
	"github.com/msdav/msdav/drives"
	"github.com/msdav/msdav/fetch"
	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/fs/diskimage"
	"github.com/msdav/msdav/gadget"
)

// drive is the one drive kvmd's API knows.
const drive = 0

// Handler serves /api/msd and below.
type Handler struct {
	store  *fs.Store
	drives *drives.Manager
	jobs   *fetch.Manager // nil: write_remote is unavailable
	log    *slog.Logger
	r      *mux.Router
	auth   Checker // nil: no credentials needed
	sess   sessions

	// kvmd runs one upload or download at a time and answers 409
	// MsdIsBusyError to the rest; scripts retry on it.
	busy atomic.Bool

	mu        sync.Mutex // guards the two below
	reading   *progress  // storage.downloading
	uploading *progress  // storage.uploading
}

// progress is an upload or download as kvmd shows it.
type progress struct {
	name string
	size int64
	done atomic.Int64
}

// New returns the handler. jobs may be nil.
func New(store *fs.Store, dm *drives.Manager, jobs *fetch.Manager, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	h := &Handler{store: store, drives: dm, jobs: jobs, log: log, sess: sessions{tokens: map[string]kvmdSession{}}}
	r := mux.NewRouter().SkipClean(true)
	r.Path("/api/msd").Methods("GET").Handler(h.serve(h.state))
	r.Path("/api/msd/set_params").Methods("POST").Handler(h.serve(h.setParams))
	r.Path("/api/msd/set_connected").Methods("POST").Handler(h.serve(h.setConnected))
	r.Path("/api/msd/read").Methods("GET").Handler(h.serve(h.read))
	r.Path("/api/msd/write").Methods("POST").Handler(h.serve(h.write))
	r.Path("/api/msd/write_remote").Methods("POST").Handler(h.serve(h.writeRemote))
	r.Path("/api/msd/remove").Methods("POST").Handler(h.serve(h.remove))
	r.Path("/api/msd/reset").Methods("POST").Handler(h.serve(h.reset))
	r.Path("/api/auth/login").Methods("POST").Handler(h.open(h.login))
	r.Path("/api/auth/check").Methods("GET").Handler(h.serve(h.check))
	r.Path("/api/auth/logout").Methods("POST").Handler(h.serve(h.logout))
	r.NotFoundHandler = h.serve(func(w http.ResponseWriter, r *http.Request) (any, error) {
		return nil, &Error{Name: "NotFoundError", Status: 404, Msg: "no such MSD route: " + r.URL.Path}
	})
	r.MethodNotAllowedHandler = h.serve(func(w http.ResponseWriter, r *http.Request) (any, error) {
		return nil, &Error{Name: "HttpMethodNotAllowed", Status: 405, Msg: r.Method + " is not allowed on " + r.URL.Path}
	})
	h.r = r
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.r.ServeHTTP(w, r) }

// Error is a kvmd error: its exception class name, status and message.
type Error struct {
	Name   string
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Name + ": " + e.Msg }

func kerr(name, format string, args ...any) *Error {
	status := 400
	if name == "MsdIsBusyError" {
		status = 409
	}
	return &Error{Name: name, Status: status, Msg: fmt.Sprintf(format, args...)}
}

// translate names msdav's errors as kvmd names its own, so scripts that
// branch on the class keep working; the message stays msdav's.
func translate(err error) *Error {
	var ke *Error
	var le *fs.LockedError
	var big *gadget.TooBigError
	msg := err.Error()
	switch {
	case errors.As(err, &ke):
		return ke
	case errors.As(err, &le):
		return kerr("MsdConnectedError", "%s", msg)
	case errors.Is(err, drives.ErrUnavailable), errors.Is(err, fs.ErrAttachUnknown):
		return kerr("MsdOfflineError", "%s", msg)
	case errors.Is(err, os.ErrNotExist):
		return kerr("MsdUnknownImageError", "%s", msg)
	case errors.Is(err, diskimage.ErrExists), errors.Is(err, fetch.ErrExists):
		return kerr("MsdImageExistsError", "%s", msg)
	case errors.Is(err, fs.ErrOutside), errors.Is(err, fs.ErrBadName), errors.Is(err, fetch.ErrInvalid),
		errors.Is(err, drives.ErrInvalid), errors.Is(err, gadget.ErrNoDrive):
		return kerr("ValidatorError", "%s", msg)
	case errors.As(err, &big), errors.Is(err, gadget.ErrMediumLocked), errors.Is(err, drives.ErrConflict),
		errors.Is(err, drives.ErrRefused), fs.IsNoSpace(err), errors.Is(err, fetch.ErrRefused),
		errors.Is(err, fetch.ErrRemote), errors.Is(err, syscall.EROFS):
		return kerr("MsdOperationError", "%s", msg)
	}
	return &Error{Name: "UnknownError", Status: 500, Msg: msg}
}

// handlerFunc answers one kvmd call: the result (nil for kvmd's {}) or the
// error, which answer writes in kvmd's envelope. One that streams its own
// answer (read, write_remote) returns streamed{} once it has begun.
type handlerFunc func(w http.ResponseWriter, r *http.Request) (any, error)

// streamed is the result of a handler that wrote its answer itself.
type streamed struct{}

// open answers without credentials (login).
func (h *Handler) open(f handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := f(w, r)
		answer(w, v, err)
	})
}

// serve answers with kvmd's credentials checked first.
func (h *Handler) serve(f handlerFunc) http.Handler {
	return h.open(func(w http.ResponseWriter, r *http.Request) (any, error) {
		if e := h.authorize(r); e != nil {
			return nil, e
		}
		return f(w, r)
	})
}

// answer is the one place a kvmd answer is written.
func answer(w http.ResponseWriter, v any, err error) {
	switch {
	case err != nil:
		fail(w, err)
	case v == (streamed{}):
	default:
		reply(w, v)
	}
}

func reply(w http.ResponseWriter, result any) {
	if result == nil {
		result = struct{}{}
	}
	writeEnvelope(w, 200, map[string]any{"ok": true, "result": result})
}

func fail(w http.ResponseWriter, err error) {
	e := translate(err)
	writeEnvelope(w, e.Status, envelopeError(e))
}

func envelopeError(e *Error) map[string]any {
	return map[string]any{"ok": false, "result": map[string]string{"error": e.Name, "error_msg": e.Msg}}
}

func writeEnvelope(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "    ") // kvmd pretty-prints
	enc.Encode(v)
}

// boolParam reads a kvmd boolean: 1/true/yes or 0/false/no, any case.
// present is false when the parameter is absent.
func boolParam(r *http.Request, name string) (v, present bool, err error) {
	q := r.URL.Query()
	if !q.Has(name) {
		return false, false, nil
	}
	switch strings.ToLower(strings.TrimSpace(q.Get(name))) {
	case "1", "true", "yes":
		return true, true, nil
	case "0", "false", "no":
		return false, true, nil
	}
	return false, true, kerr("ValidatorError", "the argument %q of %s is not a boolean (1/true/yes or 0/false/no)", q.Get(name), name)
}

// imageName checks a kvmd image name: a relative path whose parts are not
// hidden; empty parts are dropped, as kvmd drops them.
func imageName(raw string) (string, error) {
	var parts []string
	for _, p := range strings.Split(raw, "/") {
		if p != "" {
			parts = append(parts, p)
		}
	}
	name := strings.Join(parts, "/")
	if name == "" {
		return "", kerr("ValidatorError", "the image name is empty")
	}
	rel, err := fs.ImageName(name)
	if err != nil || rel != name {
		return "", kerr("ValidatorError", "%q is not a valid image name (a relative path, no part starting with a dot)", raw)
	}
	return rel, nil
}

// connected reports whether drive 0 holds a medium now (configfs is the truth).
func (h *Handler) connected() (drives.State, bool, error) {
	d, err := h.drives.Drive(drive)
	if err != nil {
		return d, false, err
	}
	return d, d.Image != nil || d.File != "", nil
}

// disconnected refuses an operation while drive 0 holds a medium, as kvmd does.
func (h *Handler) disconnected() error {
	_, on, err := h.connected()
	if err != nil {
		return err
	}
	if on {
		return kerr("MsdConnectedError", "drive %d is connected to the host; disconnect it first (set_connected?connected=0)", drive)
	}
	return nil
}

// idle refuses a change while an upload or download runs, as kvmd's busy
// lock does.
func (h *Handler) idle() error {
	if h.busy.Load() {
		return kerr("MsdIsBusyError", "an upload or download is running; try again when it is done")
	}
	return nil
}

// take claims the one-operation-at-a-time slot.
func (h *Handler) take() (release func(), err error) {
	if !h.busy.CompareAndSwap(false, true) {
		return nil, kerr("MsdIsBusyError", "another upload or download is running; try again when it is done")
	}
	return func() { h.busy.Store(false) }, nil
}
