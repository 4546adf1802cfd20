package events

import (
	"strings"
	"testing"
)

// A URL's password never reaches a subscriber, whichever package published it.
func TestPublishRedactsPasswords(t *testing.T) {
	h := New()
	s := h.Subscribe()
	defer s.Close()
	h.Publish("drive", map[string]any{"url": "http://admin:s3cret@images.example/a.iso", "error": "GET http://u:hunter22@x/y: 404"})
	ev := <-s.C
	if strings.Contains(string(ev.Data), "s3cret") || strings.Contains(string(ev.Data), "hunter22") || !strings.Contains(string(ev.Data), "admin:xxxxx@images.example") {
		t.Errorf("event data %s", ev.Data)
	}
}
