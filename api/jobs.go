package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path"
	"strings"

	"github.com/gorilla/mux"
	"github.com/msdav/msdav/fetch"
	"github.com/msdav/msdav/fetch/unpack"
	"github.com/msdav/msdav/fs"
)

// SetJobs installs the fetch jobs behind /api/images/fetch and /api/jobs.
// Without it those routes answer 503.
func (a *Server) SetJobs(m *fetch.Manager) {
	a.mu.Lock()
	a.jobs = m
	a.mu.Unlock()
}

func (a *Server) routeJobs(r *mux.Router) {
	r.Path("/api/images/fetch").Methods("POST").HandlerFunc(a.fetchImage)
	r.Path("/api/images/upload/{path:.+}").Methods("PUT").HandlerFunc(a.uploadImage)
	r.Path("/api/jobs").Methods("GET").HandlerFunc(a.listJobs)
	r.Path("/api/jobs/{id}").Methods("GET").HandlerFunc(a.getJob)
	r.Path("/api/jobs/{id}").Methods("DELETE").HandlerFunc(a.cancelJob)
}

func (a *Server) jobsOr503(w http.ResponseWriter) *fetch.Manager {
	a.mu.Lock()
	m := a.jobs
	a.mu.Unlock()
	if m == nil {
		writeError(w, http.StatusServiceUnavailable, "fetching images is not set up in this server")
	}
	return m
}

func (a *Server) fetchImage(w http.ResponseWriter, r *http.Request) {
	m := a.jobsOr503(w)
	if m == nil {
		return
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	var req fetch.Request
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, `body must be JSON like {"url": "https://example.com/os.img.xz", "path": "os.img", "sha256": "...", "decompress": "auto"}: `+err.Error())
		return
	}
	j, err := m.Start(req)
	if err == nil {
		w.Header().Set("Location", "/api/jobs/"+j.ID)
		writeJSON(w, http.StatusAccepted, j)
		return
	}
	var le *fs.LockedError
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, fetch.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, fetch.ErrRefused):
		status = http.StatusUnprocessableEntity
	case errors.Is(err, fetch.ErrExists):
		status = http.StatusConflict
	case errors.As(err, &le):
		status = http.StatusLocked
	case fs.IsNoSpace(err):
		status = http.StatusInsufficientStorage
	case errors.Is(err, fetch.ErrRemote):
		status = http.StatusBadGateway
	}
	body := map[string]any{"error": err.Error()}
	if j.ID != "" {
		body["job"] = j // listed in /api/jobs too, failed, saying why
	}
	writeJSON(w, status, body)
}

func (a *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	m := a.jobsOr503(w)
	if m == nil {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": m.List()})
}

func (a *Server) getJob(w http.ResponseWriter, r *http.Request) {
	m := a.jobsOr503(w)
	if m == nil {
		return
	}
	id := mux.Vars(r)["id"]
	j, ok := m.Get(id)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no job %q (GET /api/jobs lists them)", id))
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// cancelJob stops a running job (answering once nothing of it is left in
// the store) and forgets a finished one.
func (a *Server) cancelJob(w http.ResponseWriter, r *http.Request) {
	m := a.jobsOr503(w)
	if m == nil {
		return
	}
	id := mux.Vars(r)["id"]
	before, ok := m.Get(id)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no job %q (GET /api/jobs lists them)", id))
		return
	}
	if err := m.Cancel(id); err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	if after, ok := m.Get(id); ok {
		before = after
	}
	writeJSON(w, http.StatusOK, before)
}

// uploadImage stores a raw request body as an image, decompressing it on
// the way in unless ?decompress=none: the API's counterpart of a WebDAV
// PUT for images published compressed (WebDAV stores what it is sent).
func (a *Server) uploadImage(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["path"]
	q := r.URL.Query()
	auto := true
	switch q.Get("decompress") {
	case "", "auto":
	case "none":
		auto = false
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("decompress=%q: want auto or none", q.Get("decompress")))
		return
	}
	want := strings.ToLower(q.Get("sha256"))
	if b, err := hex.DecodeString(want); want != "" && (err != nil || len(b) != 32) {
		writeError(w, http.StatusBadRequest, "sha256 must be 64 hex digits")
		return
	}
	rel, err := fs.Clean(name)
	if err != nil || rel == "." || fs.Classify(rel) != fs.Visible {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%q is not a usable image name", name))
		return
	}
	body := &counter{r: r.Body}
	br, format, err := unpack.Peek(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	if !auto {
		format = unpack.None
	}
	rel = unpack.Trim(rel, format)
	if parent, err := a.store.Root().Stat(path.Dir(rel)); err != nil || !parent.IsDir() {
		writeError(w, http.StatusConflict, fmt.Sprintf("folder %s does not exist in the store", path.Dir(rel)))
		return
	}
	if fi, err := a.store.Root().Stat(rel); err == nil && fi.IsDir() {
		writeError(w, http.StatusConflict, rel+" is a folder")
		return
	}
	if r.ContentLength > 0 {
		// Compressed, the image is at least as big as the body.
		if part, err := a.store.Usage(r.Context(), rel); err == nil && uint64(r.ContentLength) > part.Free {
			writeError(w, http.StatusInsufficientStorage, fmt.Sprintf("not enough space: %d bytes announced, %d free on %s", r.ContentLength, part.Free, part.Path))
			return
		}
	}
	expected := int64(-1)
	if format == unpack.None {
		expected = r.ContentLength
	}
	u, err := a.store.Create(r.Context(), rel, expected)
	if err != nil {
		a.storeError(w, rel, err)
		return
	}
	var src io.Reader = br
	var raw hash.Hash
	if want != "" && format != unpack.None {
		raw = sha256.New()
		src = io.TeeReader(br, raw)
	}
	dec, err := unpack.Reader(src, format)
	if err == nil {
		_, err = u.ReadFrom(dec)
		dec.Close()
	}
	if err == nil && r.ContentLength >= 0 && body.n != r.ContentLength {
		err = fmt.Errorf("body ended after %d of %d bytes", body.n, r.ContentLength)
	}
	if err != nil {
		u.Abort()
		if fs.IsNoSpace(err) {
			writeError(w, http.StatusInsufficientStorage, fmt.Sprintf("%s: the store ran out of space", rel))
			return
		}
		msg := "upload incomplete: " + err.Error()
		if format != unpack.None {
			msg = fmt.Sprintf("%s data is damaged or cut short: %v", format, err)
		}
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	sum := u.Sum()
	if want != "" && want != sum && (raw == nil || hex.EncodeToString(raw.Sum(nil)) != want) {
		u.Abort()
		writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("sha256 mismatch: want %s, the image is %s; nothing was kept", want, sum))
		return
	}
	if err := u.Commit(); err != nil {
		a.storeError(w, rel, err)
		return
	}
	out := map[string]any{"path": rel, "size": u.Received(), "sha256": sum, "received": body.n}
	if format != unpack.None {
		out["compression"] = string(format)
	}
	if _, kind, err := a.store.Checksum(rel); err == nil {
		out["kind"] = kind
	}
	writeJSON(w, http.StatusCreated, out)
}

// storeError answers a store failure, naming the image, never a temp file.
func (a *Server) storeError(w http.ResponseWriter, rel string, err error) {
	var le *fs.LockedError
	var pe *os.PathError
	var lk *os.LinkError
	switch {
	case errors.As(err, &le):
		writeError(w, http.StatusLocked, err.Error())
	case fs.IsNoSpace(err):
		writeError(w, http.StatusInsufficientStorage, rel+": the store ran out of space")
	case errors.As(err, &pe):
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("%s: %v", rel, pe.Err))
	case errors.As(err, &lk):
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("%s: %v", rel, lk.Err))
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// counter counts the bytes of a request body as they are read.
type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
