package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
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
	br, format, err := unpack.Peek(r.Body)
	if err != nil {
		return 0, nil, problem.Errorf(http.StatusBadRequest, "reading the body: %v", err)
	}
	if !auto {
		format = unpack.None
	}
	o := fs.ReceiveOptions{Image: true}
	var raw hash.Hash // of the compressed body, which a checksum may name instead
	if format != unpack.None {
		o.Format = string(format)
		o.Decode = func(r io.Reader) (io.ReadCloser, error) {
			if want != "" {
				raw = sha256.New()
				r = io.TeeReader(r, raw)
			}
			return unpack.Reader(r, format)
		}
	}
	if want != "" {
		o.Check = func(sum string) error {
			if want == sum || raw != nil && hex.EncodeToString(raw.Sum(nil)) == want {
				return nil
			}
			return fmt.Errorf("sha256 mismatch: want %s, the image is %s; nothing was kept", want, sum)
		}
	}
	got, err := a.store.Receive(r.Context(), unpack.Trim(name, format), br, fs.Announced(r.ContentLength, r.Header.Get("X-Expected-Entity-Length")), o)
	if err != nil {
		return 0, nil, receiveError(err)
	}
	rel := got.Rel
	out := map[string]any{"path": rel, "size": got.Size, "sha256": got.SHA256, "received": got.Body}
	if format != unpack.None {
		out["compression"] = string(format)
	}
	if _, kind, err := a.store.Checksum(rel); err == nil {
		out["kind"] = kind
	}
	return http.StatusCreated, out, nil
}

// receiveError hands the store's verdict on an upload to the API's writer.
func receiveError(err error) error {
	var re *fs.ReceiveError
	if errors.As(err, &re) {
		return &problem.Error{Status: re.Status, Msg: re.Msg}
	}
	return err
}
