package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// keepalive is how often an idle event stream sends a comment, so proxies
// and NAT boxes between the page and msdav do not close it.
const keepalive = 15 * time.Second

// events streams changes as Server-Sent Events: first every drive's
// state, then each change as it happens. A subscriber that falls too far
// behind is cut off; EventSource reconnects and starts from the state again.
func (a *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := flusher(w)
	if !ok {
		WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": "this connection cannot stream events"})
		return
	}
	// Subscribe before reading the state, so no change falls in between.
	sub := a.hub.Subscribe()
	defer sub.Close()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n\n")
	if ds, err := a.drives.Drives(); err == nil {
		for _, d := range ds {
			writeEvent(w, "drive", mustJSON(d))
		}
	}
	fl.Flush()
	t := time.NewTicker(keepalive)
	defer t.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-sub.C:
			if !ok {
				return
			}
			writeEvent(w, ev.Kind, ev.Data)
			// Take what else is queued before one flush.
			for n := len(sub.C); n > 0; n-- {
				ev, ok := <-sub.C
				if !ok {
					fl.Flush()
					return
				}
				writeEvent(w, ev.Kind, ev.Data)
			}
			fl.Flush()
		case <-t.C:
			fmt.Fprint(w, ": keepalive\n\n")
			fl.Flush()
		}
	}
}

// flusher finds the connection's Flush through wrappers that only Unwrap
// (the metrics recorder around every route), as http.ResponseController does.
func flusher(w http.ResponseWriter) (http.Flusher, bool) {
	for {
		if f, ok := w.(http.Flusher); ok {
			return f, true
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil, false
		}
		w = u.Unwrap()
	}
}

// writeEvent writes one event; JSON has no raw newlines, so data is one line.
func writeEvent(w http.ResponseWriter, kind string, data []byte) {
	fmt.Fprintf(w, "event: %s\ndata: %s\n\n", kind, data)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{"error":"` + err.Error() + `"}`)
	}
	return b
}
