package events

import (
	"runtime"
	"testing"
	"time"
)

// A subscriber that never reads is dropped, and Publish never waits for it.
func TestSlowSubscriberNeverBlocks(t *testing.T) {
	h := New()
	slow := h.Subscribe()
	fast := h.Subscribe()
	start := time.Now()
	for i := 0; i < 10*queue; i++ {
		h.Publish("drive", map[string]int{"index": i})
		<-fast.C // a subscriber that keeps up
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("publishing past a stuck subscriber took %s", took)
	}
	n := 0
	for range slow.C { // closed when it fell behind
		n++
	}
	if n != queue {
		t.Errorf("slow subscriber got %d events before being dropped, want %d", n, queue)
	}
	if got := h.Subscribers(); got != 1 {
		t.Errorf("%d subscribers, want the fast one only", got)
	}
	h.Close()
	if _, ok := <-fast.C; ok {
		t.Error("stream still open after Close")
	}
	if h.Subscribers() != 0 {
		t.Error("subscribers left after Close")
	}
	if s := h.Subscribe(); s != nil {
		if _, ok := <-s.C; ok {
			t.Error("subscribe after Close got an open stream")
		}
	}
}

// Subscribers that go away leave no goroutine or entry behind.
func TestNoLeak(t *testing.T) {
	h := New()
	before := runtime.NumGoroutine()
	for i := 0; i < 100; i++ {
		s := h.Subscribe()
		h.Publish("image", i)
		s.Close()
		s.Close()
	}
	if h.Subscribers() != 0 {
		t.Errorf("%d subscribers after all closed", h.Subscribers())
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("goroutines %d -> %d", before, after)
	}
	var nilHub *Hub
	nilHub.Publish("drive", 1) // a store without events
}
