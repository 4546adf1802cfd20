// Package api is the JSON control API under /api/: the image catalog, the
// drives (attach, eject, reconnect) and blank image creation.
package api

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/gorilla/mux"
	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/gadget"
)

// New returns the API handler. g may be nil, with gerr saying why the drives
// are unavailable; the drive routes then answer 503 with that reason.
func New(store *fs.Store, g *gadget.Gadget, gerr error, log *slog.Logger) http.Handler {
	a := &server{store: store, g: g, gerr: gerr, log: log}
	r := mux.NewRouter().SkipClean(true)
	r.Path("/api/images").Methods("GET").HandlerFunc(a.images)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API route: "+r.Method+" "+r.URL.Path)
	})
	return r
}

type server struct {
	store *fs.Store
	g     *gadget.Gadget
	gerr  error
	log   *slog.Logger
}

func (a *server) images(w http.ResponseWriter, r *http.Request) {
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
	writeJSON(w, http.StatusOK, map[string]any{"images": imgs, "parts": parts})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
