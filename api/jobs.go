package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"path"
	"strings"

	"github.com/gorilla/mux"
	"github.com/msdav/msdav/fetch"
	"github.com/msdav/msdav/fetch/unpack"
	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/problem"
)

// SetJobs installs the fetch jobs behind /api/images/fetch and /api/jobs.
// Without it those routes answer 503.
func (a *Server) SetJobs(m *fetch.Manager) {
	a.mu.Lock()
	a.jobs = m
	a.mu.Unlock()
}

func (a *Server) routeJobs(r *mux.Router) {
	r.Path("/api/images/fetch").Methods("POST").Handler(a.serve(a.fetchImage))
	r.Path("/api/images/upload/{path:.+}").Methods("PUT").Handler(a.serve(a.uploadImage))
	r.Path("/api/jobs").Methods("GET").Handler(a.serve(a.listJobs))
	r.Path("/api/jobs/{id}").Methods("GET").Handler(a.serve(a.getJob))
	r.Path("/api/jobs/{id}").Methods("DELETE").Handler(a.serve(a.cancelJob))
}

func (a *Server) fetchJobs() (*fetch.Manager, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.jobs == nil {
		return nil, problem.Errorf(http.StatusServiceUnavailable, "fetching images is not set up in this server")
	}
	return a.jobs, nil
}

func (a *Server) fetchImage(r *http.Request) (int, any, error) {
	m, err := a.fetchJobs()
	if err != nil {
		return 0, nil, err
	}
	var req fetch.Request
	if err := decodeJSON(r.Body, &req, `{"url": "https://example.com/os.img.xz", "path": "os.img", "sha256": "...", "decompress": "auto"}`); err != nil {
		return 0, nil, err
	}
	j, err := m.Start(req)
	if err == nil {
		return http.StatusAccepted, located{v: j, at: "/api/jobs/" + j.ID}, nil
	}
	status, msg := problem.Of(err)
	body := map[string]any{"error": msg}
	if j.ID != "" {
		body["job"] = j // listed in /api/jobs too, failed, saying why
	}
	return status, body, nil
}

func (a *Server) listJobs(r *http.Request) (int, any, error) {
	m, err := a.fetchJobs()
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"jobs": m.List()}, nil
}

func (a *Server) getJob(r *http.Request) (int, any, error) {
	m, err := a.fetchJobs()
	if err != nil {
		return 0, nil, err
	}
	id := mux.Vars(r)["id"]
	j, ok := m.Get(id)
	if !ok {
		return 0, nil, problem.Errorf(http.StatusNotFound, "no job %q (GET /api/jobs lists them)", id)
	}
	return http.StatusOK, j, nil
}

// cancelJob stops a running job (answering once nothing of it is left in
// the store) and forgets a finished one.
func (a *Server) cancelJob(r *http.Request) (int, any, error) {
	m, err := a.fetchJobs()
	if err != nil {
		return 0, nil, err
	}
	id := mux.Vars(r)["id"]
	before, ok := m.Get(id)
	if !ok {
		return 0, nil, problem.Errorf(http.StatusNotFound, "no job %q (GET /api/jobs lists them)", id)
	}
	if err := m.Cancel(id); err != nil {
		return 0, nil, problem.Errorf(http.StatusNotFound, "%v", err)
	}
	if after, ok := m.Get(id); ok {
		before = after
	}
	return http.StatusOK, before, nil
}

// uploadImage stores a raw request body as an image, decompressing it on
// the way in unless ?decompress=none: the API's counterpart of a WebDAV
// PUT for images published compressed (WebDAV stores what it is sent).
func (a *Server) uploadImage(r *http.Request) (int, any, error) {
	name := mux.Vars(r)["path"]
	q := r.URL.Query()
	auto := true
	switch q.Get("decompress") {
	case "", "auto":
	case "none":
		auto = false
	default:
		return 0, nil, problem.Errorf(http.StatusBadRequest, "decompress=%q: want auto or none", q.Get("decompress"))
	}
	want := strings.ToLower(q.Get("sha256"))
	if b, err := hex.DecodeString(want); want != "" && (err != nil || len(b) != 32) {
		return 0, nil, problem.Errorf(http.StatusBadRequest, "sha256 must be 64 hex digits")
	}
	rel, err := fs.Clean(name)
	if err != nil || rel == "." || fs.Classify(rel) != fs.Visible {
		return 0, nil, problem.Errorf(http.StatusBadRequest, "%q is not a usable image name", name)
	}
	body := &counter{r: r.Body}
	br, format, err := unpack.Peek(body)
	if err != nil {
		return 0, nil, problem.Errorf(http.StatusBadRequest, "reading the body: %v", err)
	}
	if !auto {
		format = unpack.None
	}
	rel = unpack.Trim(rel, format)
	if parent, err := a.store.Root().Stat(path.Dir(rel)); err != nil || !parent.IsDir() {
		return 0, nil, problem.Errorf(http.StatusConflict, "folder %s does not exist in the store", path.Dir(rel))
	}
	if fi, err := a.store.Root().Stat(rel); err == nil && fi.IsDir() {
		return 0, nil, problem.Errorf(http.StatusConflict, "%s is a folder", rel)
	}
	if r.ContentLength > 0 {
		// Compressed, the image is at least as big as the body.
		if part, err := a.store.Usage(r.Context(), rel); err == nil && uint64(r.ContentLength) > part.Free {
			return 0, nil, problem.Errorf(http.StatusInsufficientStorage, "not enough space: %d bytes announced, %d free on %s", r.ContentLength, part.Free, part.Path)
		}
	}
	expected := int64(-1)
	if format == unpack.None {
		expected = r.ContentLength
	}
	u, err := a.store.Create(r.Context(), rel, expected)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", rel, err)
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
		var werr *fs.WriteError
		switch {
		case fs.IsNoSpace(err):
			return 0, nil, problem.Errorf(http.StatusInsufficientStorage, "%s: the store ran out of space", rel)
		case errors.As(err, &werr): // the store's fault, not the body's
			return 0, nil, fmt.Errorf("%s: %w", rel, err)
		case errors.As(err, new(*unpack.LimitError)): // a bomb: 422, with how to recompress
			return 0, nil, fmt.Errorf("%s: %w", rel, err)
		case format != unpack.None:
			return 0, nil, problem.Errorf(http.StatusBadRequest, "%s data is damaged or cut short: %v", format, err)
		}
		return 0, nil, problem.Errorf(http.StatusBadRequest, "upload incomplete: %v", err)
	}
	sum := u.Sum()
	if want != "" && want != sum && (raw == nil || hex.EncodeToString(raw.Sum(nil)) != want) {
		u.Abort()
		return 0, nil, problem.Errorf(http.StatusUnprocessableEntity, "sha256 mismatch: want %s, the image is %s; nothing was kept", want, sum)
	}
	if err := u.Commit(); err != nil {
		return 0, nil, fmt.Errorf("%s: %w", rel, err)
	}
	out := map[string]any{"path": rel, "size": u.Received(), "sha256": sum, "received": body.n}
	if format != unpack.None {
		out["compression"] = string(format)
	}
	if _, kind, err := a.store.Checksum(rel); err == nil {
		out["kind"] = kind
	}
	return http.StatusCreated, out, nil
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
