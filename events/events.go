// Package events fans out what changes in msdav (drives, images, parts,
// jobs) to every subscriber of GET /api/events, never blocking the sender.
package events

import (
	"bytes"
	"encoding/json"
	"sync"

	"github.com/msdav/msdav/fetch"
)

// Event is one change, its data encoded once for every subscriber.
type Event struct {
	Kind string
	Data []byte
}

// queue is how many events a subscriber may fall behind before it is
// dropped. A browser takes a burst of a few hundred drive and image events
// in microseconds; one that cannot is on a dead link, and EventSource
// reconnects and starts again from the current state.
const queue = 256

// Hub is the set of subscribers.
type Hub struct {
	mu     sync.Mutex // guards subs and closed
	subs   map[*Sub]struct{}
	closed bool
}

// New returns an empty hub.
func New() *Hub { return &Hub{subs: map[*Sub]struct{}{}} }

// Sub is one subscriber. C is closed when the subscriber fell too far
// behind or the hub closed; the reader then ends its stream.
type Sub struct {
	C    <-chan Event
	c    chan Event
	h    *Hub
	once sync.Once
}

// Subscribe adds a subscriber. Close it when done.
func (h *Hub) Subscribe() *Sub {
	c := make(chan Event, queue)
	s := &Sub{C: c, c: c, h: h}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(c)
		return s
	}
	h.subs[s] = struct{}{}
	return s
}

// Close removes the subscriber; safe to call more than once.
func (s *Sub) Close() {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	s.dropLocked()
}

// dropLocked removes s and closes its channel. Caller holds h.mu.
func (s *Sub) dropLocked() {
	if _, ok := s.h.subs[s]; ok {
		delete(s.h.subs, s)
		s.once.Do(func() { close(s.c) })
	}
}

// Publish sends v, encoded as JSON, to every subscriber without waiting:
// one that is full is dropped instead of slowing a drive operation.
func (h *Hub) Publish(kind string, v any) {
	if h == nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	if bytes.Contains(b, []byte("://")) {
		// Whoever published it: a URL's password reaches no subscriber.
		b = []byte(fetch.Redact(string(b)))
	}
	ev := Event{Kind: kind, Data: b}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.c <- ev:
		default:
			s.dropLocked()
		}
	}
}

// Subscribers counts the live subscribers; pollers idle when it is 0.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Close ends every subscription (server shutdown) and refuses new ones.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		s.dropLocked()
	}
}
