// Package api is the JSON control API under /api/: the image catalog, the
// drives, blank images and the event stream. It is HTTP only: drives change
// through drives.Manager, the store through fs.Store.
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"

	"github.com/gorilla/mux"
	"github.com/msdav/msdav/drives"
	"github.com/msdav/msdav/events"
	"github.com/msdav/msdav/fetch"
	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/fs/diskimage"
	"github.com/msdav/msdav/gadget"
	"github.com/msdav/msdav/gadget/remote"
	"github.com/msdav/msdav/problem"
)

// Options configure the API.
type Options struct {
	Log *slog.Logger
	// Local marks the handler served on the local unix socket to the CLI
	// (root, on this machine): it may attach files outside the store, as
	// kvmd-otgmsd does, and remount the store (msdav remount).
	Local bool
}

// Server is the API.
type Server struct {
	store  *fs.Store
	drives *drives.Manager
	hub    *events.Hub
	log    *slog.Logger
	local  bool
	r      *mux.Router

	mu   sync.Mutex     // guards jobs
	jobs *fetch.Manager // see SetJobs
}

// handlerFunc is one route: it returns the status and the value to send
// as JSON, or an error that problem turns into a status and a message.
// The answer is written once, by serve.
type handlerFunc func(r *http.Request) (int, any, error)

// New returns the API handler.
func New(store *fs.Store, dm *drives.Manager, hub *events.Hub, o Options) *Server {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	a := &Server{store: store, drives: dm, hub: hub, log: o.Log, local: o.Local}
	r := mux.NewRouter().SkipClean(true)
	route := func(path, method string, h handlerFunc) { r.Path(path).Methods(method).Handler(a.serve(h)) }
	route("/api/images", "GET", a.images)
	route("/api/images", "POST", a.createImage)
	route("/api/drives", "GET", a.listDrives)
	route("/api/drives/{i}", "GET", a.drive)
	route("/api/drives/{i}", "PUT", a.attach)
	route("/api/drives/{i}", "DELETE", a.eject)
	route("/api/usb/reconnect", "POST", a.reconnect)
	r.Path("/api/events").Methods("GET").HandlerFunc(a.events)
	a.routeJobs(r)
	if o.Local {
		route("/api/store/remount", "POST", a.remount)
	}
	r.NotFoundHandler = a.serve(func(r *http.Request) (int, any, error) {
		return 0, nil, problem.Errorf(http.StatusNotFound, "no such API route: %s %s", r.Method, r.URL.Path)
	})
	r.MethodNotAllowedHandler = a.serve(func(r *http.Request) (int, any, error) {
		return 0, nil, problem.Errorf(http.StatusMethodNotAllowed, "%s is not allowed on %s", r.Method, r.URL.Path)
	})
	a.r = r
	return a
}

func (a *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.r.ServeHTTP(w, r) }

// serve runs h and writes its one answer.
func (a *Server) serve(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, v, err := h(r)
		if l, ok := v.(located); ok {
			w.Header().Set("Location", l.at)
			v = l.v
		}
		if err != nil {
			var msg string
			status, msg = problem.Of(err)
			if status >= 500 {
				a.log.Error("api", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
			}
			v = map[string]string{"error": msg}
		}
		WriteJSON(w, status, v)
	})
}

// located is an answer with a Location header: a job's address.
type located struct {
	v  any
	at string
}

// WriteJSON writes v as the whole JSON answer.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (a *Server) images(r *http.Request) (int, any, error) {
	imgs, err := a.store.Images(r.Context())
	if err != nil {
		return 0, nil, err
	}
	parts, err := a.store.Parts(r.Context())
	if err != nil {
		return 0, nil, err
	}
	if imgs == nil {
		imgs = []fs.Image{}
	}
	return http.StatusOK, map[string]any{"images": imgs, "parts": parts}, nil
}

// index reads {i} and checks it names a drive.
func (a *Server) index(r *http.Request) (int, error) {
	if err := a.drives.Available(); err != nil {
		return 0, err
	}
	s := mux.Vars(r)["i"]
	i, err := strconv.Atoi(s)
	if err != nil {
		return 0, problem.Errorf(http.StatusNotFound, "no such drive %q: drives are 0 to %d", s, a.drives.Count()-1)
	}
	return i, a.drives.CheckDrive(i)
}

func (a *Server) listDrives(r *http.Request) (int, any, error) {
	ds, err := a.drives.Drives()
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"drives": ds}, nil
}

func (a *Server) drive(r *http.Request) (int, any, error) {
	i, err := a.index(r)
	if err != nil {
		return 0, nil, err
	}
	d, err := a.drives.Drive(i)
	return http.StatusOK, d, err
}

// attachRequest is the body of PUT /api/drives/{i}.
type attachRequest struct {
	Image *string `json:"image"`
	File  *string `json:"file"` // local socket only: an absolute path anywhere
	URL   *string `json:"url"`  // served from there (userspace backend)
	CDROM *bool   `json:"cdrom"`
	RW    *bool   `json:"rw"`
}

// decodeAttach reads an attach body; the drive manager checks it.
func decodeAttach(body io.Reader) (attachRequest, error) {
	var req attachRequest
	err := decodeJSON(body, &req, `{"image": "win.iso", "cdrom": true, "rw": false}`)
	return req, err
}

// request is the body as the drive manager's request for drive i.
func (b attachRequest) request(i int) drives.Request {
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	return drives.Request{Drive: i, Image: str(b.Image), File: str(b.File), URL: str(b.URL),
		CDROM: b.CDROM != nil && *b.CDROM, RW: b.RW != nil && *b.RW}
}

// decodeJSON reads one JSON object, refusing unknown fields, with an
// example of the expected body in the error.
func decodeJSON(body io.Reader, v any, example string) error {
	dec := json.NewDecoder(io.LimitReader(body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return problem.Errorf(http.StatusBadRequest, "body must be JSON like %s: %v", example, err)
	}
	return nil
}

func (a *Server) attach(r *http.Request) (int, any, error) {
	i, err := a.index(r)
	if err != nil {
		return 0, nil, err
	}
	body, err := decodeAttach(r.Body)
	if err != nil {
		return 0, nil, err
	}
	req := body.request(i)
	if req.File != "" && !a.local {
		return 0, nil, problem.Errorf(http.StatusBadRequest, `"file" is for the local msdav drive command; name a store image in "image"`)
	}
	if req.URL != "" {
		// Checked before the URL's server sees a request.
		if err := a.drives.Check(req); err != nil {
			return 0, nil, err
		}
		d, err := a.attachURL(r, req)
		return http.StatusOK, d, err
	}
	d, err := a.drives.Attach(r.Context(), req)
	return http.StatusOK, d, err
}

func (a *Server) eject(r *http.Request) (int, any, error) {
	i, err := a.index(r)
	if err != nil {
		return 0, nil, err
	}
	force := r.URL.Query().Get("force")
	d, err := a.drives.Eject(r.Context(), i, force == "1" || force == "true")
	return http.StatusOK, d, err
}

func (a *Server) reconnect(r *http.Request) (int, any, error) {
	if err := a.drives.Reconnect(); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]bool{"ok": true}, nil
}

// createRequest is the body of POST /api/images.
type createRequest struct {
	Path  string          `json:"path"`
	Size  json.RawMessage `json:"size"` // "512M" or a number of bytes
	FS    string          `json:"fs"`
	Label string          `json:"label"`
}

func (a *Server) createImage(r *http.Request) (int, any, error) {
	var req createRequest
	if err := decodeJSON(r.Body, &req, `{"path": "flash/tools.img", "size": "512M", "fs": "fat32", "label": "TOOLS"}`); err != nil {
		return 0, nil, err
	}
	var size int64
	if err := json.Unmarshal(req.Size, &size); err != nil {
		var s string
		if err := json.Unmarshal(req.Size, &s); err != nil {
			return 0, nil, problem.Errorf(http.StatusBadRequest, `"size" must be "512M" or a number of bytes`)
		}
		if size, err = diskimage.ParseSize(s); err != nil {
			return 0, nil, problem.Errorf(http.StatusBadRequest, "%v", err)
		}
	}
	if req.Path == "" {
		return 0, nil, problem.Errorf(http.StatusBadRequest, `"path" is missing`)
	}
	if err := diskimage.Create(r.Context(), a.store, req.Path, size, diskimage.Options{FS: req.FS, Label: req.Label}); err != nil {
		return 0, nil, err
	}
	rel, _ := fs.Clean(req.Path)
	imgs, _ := a.store.Images(r.Context())
	for _, im := range imgs {
		if im.Path == rel && im.Complete {
			return http.StatusCreated, im, nil
		}
	}
	return http.StatusCreated, map[string]any{"path": rel, "size": size, "complete": true}, nil
}

// remountRequest is the body of POST /api/store/remount (local socket).
type remountRequest struct {
	Mode string `json:"mode"` // rw | ro
}

func (a *Server) remount(r *http.Request) (int, any, error) {
	var req remountRequest
	if err := decodeJSON(r.Body, &req, `{"mode": "rw"}`); err != nil {
		return 0, nil, err
	}
	mnt := a.store.MountPoint()
	switch req.Mode {
	case "rw":
		if err := a.store.Pin(r.Context()); err != nil {
			return 0, nil, err
		}
		return http.StatusOK, map[string]string{"mount": mnt, "mode": "rw", "note": "held rw until msdav remount ro"}, nil
	case "ro":
		err := a.store.Unpin()
		if errors.Is(err, fs.ErrStillWriting) {
			return http.StatusAccepted, map[string]string{"mount": mnt, "mode": "rw", "note": err.Error()}, nil
		}
		if err != nil {
			return 0, nil, fmt.Errorf("remount %s ro: %w", mnt, err)
		}
		return http.StatusOK, map[string]string{"mount": mnt, "mode": "ro"}, nil
	}
	return 0, nil, problem.Errorf(http.StatusBadRequest, `"mode" must be "rw" or "ro"`)
}

// attachURL serves the image at req.URL in its drive, reading it with
// Range requests through the same guard as fetch (no local addresses
// unless fetch.allow_private).
func (a *Server) attachURL(r *http.Request, req drives.Request) (drives.State, error) {
	// Refused before any traffic: the kernel backend reads files only.
	if !a.drives.ServesURLs() {
		return drives.State{}, gadget.ErrNeedsUserspace
	}
	a.mu.Lock()
	jobs := a.jobs
	a.mu.Unlock()
	if jobs == nil {
		return drives.State{}, problem.Errorf(http.StatusServiceUnavailable, "images from a URL are not set up in this server")
	}
	u, client, err := jobs.Guarded(r.Context(), req.URL)
	if err != nil {
		return drives.State{}, err
	}
	med, err := remote.Open(r.Context(), client, u.String(), remote.Options{})
	if err != nil {
		return drives.State{}, problem.Errorf(http.StatusBadGateway, "%v", err)
	}
	req.URL, req.Medium = u.String(), med
	d, err := a.drives.Attach(r.Context(), req)
	if err != nil {
		med.Close()
	}
	return d, err
}
