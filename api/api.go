// Package api is the JSON control API under /api/: the image catalog, the
// drives (attach, eject, reconnect) and blank image creation.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/msdav/msdav/fetch"
	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/fs/diskimage"
	"github.com/msdav/msdav/gadget"
)

// Server is the API. It is also the store's source of attached images.
type Server struct {
	store *fs.Store
	g     *gadget.Gadget
	gerr  error
	log   *slog.Logger
	r     *mux.Router

	mu    sync.Mutex
	holds map[int]func() // remount guard held by each rw drive
	jobs  *fetch.Manager // see SetJobs
}

// New returns the API handler. g may be nil, with gerr saying why the drives
// are unavailable; the drive routes then answer 503 with that reason.
func New(store *fs.Store, g *gadget.Gadget, gerr error, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	a := &Server{store: store, g: g, gerr: gerr, log: log, holds: map[int]func(){}}
	r := mux.NewRouter().SkipClean(true)
	r.Path("/api/images").Methods("GET").HandlerFunc(a.images)
	r.Path("/api/images").Methods("POST").HandlerFunc(a.createImage)
	r.Path("/api/drives").Methods("GET").HandlerFunc(a.drives)
	r.Path("/api/drives/{i}").Methods("GET").HandlerFunc(a.drive)
	r.Path("/api/drives/{i}").Methods("PUT").HandlerFunc(a.attach)
	r.Path("/api/drives/{i}").Methods("DELETE").HandlerFunc(a.eject)
	r.Path("/api/usb/reconnect").Methods("POST").HandlerFunc(a.reconnect)
	a.routeJobs(r)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API route: "+r.Method+" "+r.URL.Path)
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path)
	})
	a.r = r
	if g != nil {
		store.SetAttachments(a)
		a.holdRW()
	}
	return a
}

func (a *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.r.ServeHTTP(w, r) }

// Attached maps attached images (store-relative) to drives, read from
// configfs, so it stays true across restarts and host-side ejects.
func (a *Server) Attached() map[string][]int {
	ds, err := a.g.Drives()
	if err != nil {
		return nil
	}
	m := map[string][]int{}
	for _, d := range ds {
		if d.File == "" {
			continue
		}
		if rel, ok := a.store.Rel(d.File); ok {
			m[rel] = append(m[rel], d.Index)
		}
	}
	return m
}

// Watch notices what the host does on its own (an eject from the host's
// side empties the LUN's file without telling anyone) and releases the
// remount guard a rw drive held. It returns when ctx ends.
func (a *Server) Watch(ctx context.Context, every time.Duration) {
	if a.g == nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.holdRW()
			a.flushRW()
		}
	}
}

// flushRW fsyncs every image attached rw, so at most about one Watch
// interval of what the target host wrote can be lost to a power cut.
func (a *Server) flushRW() {
	ds, err := a.g.Drives()
	if err != nil {
		return
	}
	for _, d := range ds {
		if d.File == "" || !d.RW {
			continue
		}
		if rel, ok := a.store.Rel(d.File); ok {
			if err := a.store.Flush(rel); err != nil {
				a.log.Warn("cannot flush a rw drive's image", "drive", d.Index, "err", err)
			}
		}
	}
}

// holdRW makes the remount guard match the drives: held while a drive is
// attached rw (the kernel writes into the image), released otherwise.
func (a *Server) holdRW() {
	ds, err := a.g.Drives()
	if err != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, d := range ds {
		release, held := a.holds[d.Index]
		switch {
		case d.File != "" && d.RW && !held:
			done, err := a.store.Write(context.Background(), fmt.Sprintf("drive %d attached rw", d.Index))
			if err != nil {
				a.log.Error("cannot keep the store rw for a rw drive", "drive", d.Index, "err", err)
				continue
			}
			a.holds[d.Index] = done
		case (d.File == "" || !d.RW) && held:
			if d.File == "" {
				a.log.Info("drive emptied", "drive", d.Index)
			}
			release()
			delete(a.holds, d.Index)
		}
	}
}

// driveJSON is a drive as the API shows it.
type driveJSON struct {
	Index int     `json:"index"`
	Image *string `json:"image"`
	CDROM bool    `json:"cdrom"`
	RW    bool    `json:"rw"`
	Media string  `json:"media"`
	Path  string  `json:"file,omitempty"` // absolute, when outside the store (set by msdav drive)
}

func (a *Server) show(d gadget.Drive) driveJSON {
	j := driveJSON{Index: d.Index, CDROM: d.CDROM, RW: d.RW, Media: d.Media}
	if d.File != "" {
		if rel, ok := a.store.Rel(d.File); ok {
			j.Image = &rel
		} else {
			j.Path = d.File
		}
	}
	return j
}

func (a *Server) images(w http.ResponseWriter, r *http.Request) {
	imgs, err := a.store.Images(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	parts, err := a.store.Parts(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if imgs == nil {
		imgs = []fs.Image{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"images": imgs, "parts": parts})
}

// gadgetOr503 answers 503 with the reason when there are no drives.
func (a *Server) gadgetOr503(w http.ResponseWriter) bool {
	if a.g == nil {
		msg := "no USB drives"
		if a.gerr != nil {
			msg += ": " + a.gerr.Error()
		}
		writeError(w, http.StatusServiceUnavailable, msg)
		return false
	}
	return true
}

func (a *Server) index(w http.ResponseWriter, r *http.Request) (int, bool) {
	if !a.gadgetOr503(w) {
		return 0, false
	}
	s := mux.Vars(r)["i"]
	i, err := strconv.Atoi(s)
	if err != nil || i < 0 || i >= a.g.Count() {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no drive %q: drives are 0 to %d", s, a.g.Count()-1))
		return 0, false
	}
	return i, true
}

func (a *Server) drives(w http.ResponseWriter, r *http.Request) {
	if !a.gadgetOr503(w) {
		return
	}
	ds, err := a.g.Drives()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := make([]driveJSON, len(ds))
	for i, d := range ds {
		out[i] = a.show(d)
	}
	writeJSON(w, http.StatusOK, map[string]any{"drives": out})
}

func (a *Server) drive(w http.ResponseWriter, r *http.Request) {
	i, ok := a.index(w, r)
	if !ok {
		return
	}
	d, err := a.g.Drive(i)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, a.show(d))
}

// attachRequest is the body of PUT /api/drives/{i}.
type attachRequest struct {
	Image *string `json:"image"`
	CDROM *bool   `json:"cdrom"`
	RW    *bool   `json:"rw"`
}

// decodeAttach reads and checks an attach body.
func decodeAttach(body io.Reader) (img string, cdrom, rw bool, err error) {
	dec := json.NewDecoder(io.LimitReader(body, 64<<10))
	dec.DisallowUnknownFields()
	var req attachRequest
	if err := dec.Decode(&req); err != nil {
		return "", false, false, fmt.Errorf("body must be JSON like {\"image\": \"win.iso\", \"cdrom\": true, \"rw\": false}: %v", err)
	}
	if req.Image == nil || *req.Image == "" {
		return "", false, false, errors.New(`"image" is missing: name an image from GET /api/images`)
	}
	if req.CDROM != nil {
		cdrom = *req.CDROM
	}
	if req.RW != nil {
		rw = *req.RW
	}
	if cdrom && rw {
		return "", false, false, errors.New("a CD/DVD cannot be writable: set rw to false, or cdrom to false for a flash drive")
	}
	return *req.Image, cdrom, rw, nil
}

func (a *Server) attach(w http.ResponseWriter, r *http.Request) {
	i, ok := a.index(w, r)
	if !ok {
		return
	}
	img, cdrom, rw, err := decodeAttach(r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	rel, err := fs.Clean(img)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("image %q: %v", img, err))
		return
	}
	if fs.Junk(rel) || fs.Internal(rel) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no image %q in the store", img))
		return
	}
	if u, ok := a.store.Uploading(rel); ok {
		writeError(w, http.StatusConflict, fmt.Sprintf("%s is still uploading (%d of %d bytes)", rel, u.Received(), u.Expected))
		return
	}
	abs, err := a.store.Abs(rel)
	if err != nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no image %q in the store (GET /api/images lists them)", img))
		return
	}
	if fi, err := os.Stat(abs); err != nil || !fi.Mode().IsRegular() {
		writeError(w, http.StatusNotFound, fmt.Sprintf("%q is not an image file", img))
		return
	}
	ds, err := a.g.Drives()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	for _, d := range ds {
		if d.Index == i || d.File != abs {
			continue
		}
		if d.RW || rw {
			writeError(w, http.StatusConflict, fmt.Sprintf("%s is attached to drive %d%s; one image can be shared only read-only", rel, d.Index, map[bool]string{true: " read-write", false: ""}[d.RW]))
			return
		}
	}
	// A different image in this drive goes out first; the same request again is idempotent.
	if cur := ds[i]; cur.File != "" {
		if cur.File == abs && cur.CDROM == cdrom && cur.RW == rw {
			writeJSON(w, http.StatusOK, a.show(cur))
			return
		}
		if _, err := a.g.Eject(i, false); err != nil {
			a.driveError(w, err)
			return
		}
	}
	var done func()
	if rw {
		if done, err = a.store.Write(r.Context(), fmt.Sprintf("drive %d attached rw", i)); err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
	}
	d, err := a.g.Attach(i, abs, cdrom, rw)
	if err != nil {
		if done != nil {
			done()
		}
		a.driveError(w, a.advise(rel, err))
		return
	}
	if done != nil {
		a.mu.Lock()
		if old, ok := a.holds[i]; ok {
			old()
		}
		a.holds[i] = done
		a.mu.Unlock()
	}
	a.holdRW()
	writeJSON(w, http.StatusOK, a.show(d))
}

func (a *Server) eject(w http.ResponseWriter, r *http.Request) {
	i, ok := a.index(w, r)
	if !ok {
		return
	}
	force := r.URL.Query().Get("force")
	before, _ := a.g.Drive(i)
	d, err := a.g.Eject(i, force == "1" || force == "true")
	if err != nil {
		a.driveError(w, err)
		return
	}
	if before.RW && before.File != "" {
		// The kernel closes the file without syncing it.
		if rel, ok := a.store.Rel(before.File); ok {
			if err := a.store.Flush(rel); err != nil {
				a.log.Warn("cannot flush an ejected image", "drive", i, "err", err)
			}
		}
	}
	a.holdRW()
	writeJSON(w, http.StatusOK, a.show(d))
}

// createRequest is the body of POST /api/images.
type createRequest struct {
	Path  string          `json:"path"`
	Size  json.RawMessage `json:"size"` // "512M" or a number of bytes
	FS    string          `json:"fs"`
	Label string          `json:"label"`
}

func (a *Server) createImage(w http.ResponseWriter, r *http.Request) {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	var req createRequest
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, `body must be JSON like {"path": "flash/tools.img", "size": "512M", "fs": "fat32", "label": "TOOLS"}: `+err.Error())
		return
	}
	var size int64
	var s string
	if err := json.Unmarshal(req.Size, &size); err != nil {
		if err := json.Unmarshal(req.Size, &s); err != nil {
			writeError(w, http.StatusBadRequest, `"size" must be "512M" or a number of bytes`)
			return
		}
		if size, err = diskimage.ParseSize(s); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	if req.Path == "" {
		writeError(w, http.StatusBadRequest, `"path" is missing`)
		return
	}
	err := diskimage.Create(r.Context(), a.store, req.Path, size, diskimage.Options{FS: req.FS, Label: req.Label})
	var le *fs.LockedError
	switch {
	case err == nil:
	case errors.Is(err, diskimage.ErrExists):
		writeError(w, http.StatusConflict, err.Error())
		return
	case errors.As(err, &le):
		writeError(w, http.StatusLocked, err.Error())
		return
	case fs.IsNoSpace(err):
		writeError(w, http.StatusInsufficientStorage, err.Error())
		return
	case errors.Is(err, fs.ErrOutside), errors.Is(err, os.ErrNotExist):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	default:
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	rel, _ := fs.Clean(req.Path)
	imgs, _ := a.store.Images(r.Context())
	for _, im := range imgs {
		if im.Path == rel {
			writeJSON(w, http.StatusCreated, im)
			return
		}
	}
	writeJSON(w, http.StatusCreated, map[string]any{"path": rel, "size": size, "complete": true})
}

func (a *Server) reconnect(w http.ResponseWriter, r *http.Request) {
	if !a.gadgetOr503(w) {
		return
	}
	if err := a.g.Reconnect(); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// driveError maps the gadget's errors to statuses.
func (a *Server) driveError(w http.ResponseWriter, err error) {
	var big *gadget.TooBigError
	switch {
	case errors.Is(err, gadget.ErrMediumLocked):
		writeError(w, http.StatusConflict, err.Error()+"; eject it on the host, or DELETE with ?force=1 to break the lock")
	case errors.Is(err, gadget.ErrBusy):
		writeError(w, http.StatusConflict, err.Error())
	case errors.As(err, &big):
		writeError(w, http.StatusUnprocessableEntity, err.Error())
	case errors.Is(err, gadget.ErrNoDrive):
		writeError(w, http.StatusNotFound, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
