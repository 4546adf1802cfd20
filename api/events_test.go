package api

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/gadget"
	"github.com/msdav/msdav/gadget/gadgettest"
)

type sse struct {
	kind string
	data map[string]any
}

// follow reads /api/events into a channel until the test ends.
func follow(t *testing.T, url string) <-chan sse {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("events: %d %q", resp.StatusCode, ct)
	}
	out := make(chan sse, 100)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		var kind string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				kind = line[7:]
			case strings.HasPrefix(line, "data: "):
				var m map[string]any
				if err := json.Unmarshal([]byte(line[6:]), &m); err != nil {
					t.Errorf("event data not JSON: %q", line)
				}
				out <- sse{kind, m}
			}
		}
	}()
	return out
}

// next waits for an event that matches, skipping others.
func next(t *testing.T, c <-chan sse, within time.Duration, want func(sse) bool) sse {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev, ok := <-c:
			if !ok {
				t.Fatal("event stream ended")
			}
			if want(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no matching event within %s", within)
		}
	}
}

func TestEvents(t *testing.T) {
	cfg := gadgettest.Bound(t, 2)
	g, err := gadget.Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWithEvents(t, g)
	os.WriteFile(filepath.Join(e.store.Dir(), "a.iso"), make([]byte, 4096), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.drives.Run(ctx, 500*time.Millisecond, time.Second)

	c := follow(t, e.srv.URL)
	// First the state of every drive.
	for i := 0; i < 2; i++ {
		ev := <-c
		if ev.kind != "drive" || ev.data["index"] != float64(i) || ev.data["media"] != "none" {
			t.Fatalf("initial event %d: %+v", i, ev)
		}
	}
	if code, m := e.call(t, "PUT", "/api/drives/1", `{"image":"a.iso","cdrom":true}`); code != 200 {
		t.Fatalf("attach: %d %v", code, m)
	}
	next(t, c, time.Second, func(ev sse) bool {
		return ev.kind == "drive" && ev.data["index"] == float64(1) && ev.data["image"] == "a.iso" && ev.data["media"] == "cd"
	})
	// The host ejects on its side: the kernel empties the LUN's file.
	lun := filepath.Join(gadgettest.LUN(cfg, 1), "file")
	os.WriteFile(lun, []byte("\n"), 0o644)
	start := time.Now()
	next(t, c, 2*time.Second, func(ev sse) bool {
		return ev.kind == "drive" && ev.data["index"] == float64(1) && ev.data["image"] == nil
	})
	t.Logf("host eject seen after %s", time.Since(start))

	// An upload: appears, completes; a delete: removed.
	u, err := e.store.Create(context.Background(), "b.img", 10)
	if err != nil {
		t.Fatal(err)
	}
	next(t, c, time.Second, func(ev sse) bool {
		return ev.kind == "image" && ev.data["path"] == "b.img" && ev.data["complete"] == false
	})
	u.Write(make([]byte, 10))
	u.Commit()
	next(t, c, time.Second, func(ev sse) bool {
		return ev.kind == "image" && ev.data["path"] == "b.img" && ev.data["complete"] == true && ev.data["size"] == float64(10)
	})
	e.store.RemoveAll(context.Background(), "b.img")
	next(t, c, time.Second, func(ev sse) bool {
		return ev.kind == "image" && ev.data["path"] == "b.img" && ev.data["removed"] == true
	})
	// A file copied in from outside msdav (scp, NFS) is noticed by the watcher.
	go e.store.Watch(ctx, 100*time.Millisecond, func() bool { return e.hub.Subscribers() > 0 })
	time.Sleep(300 * time.Millisecond) // the watcher's first look
	os.WriteFile(filepath.Join(e.store.Dir(), "scp.img"), make([]byte, 7), 0o644)
	next(t, c, 2*time.Second, func(ev sse) bool {
		return ev.kind == "image" && ev.data["path"] == "scp.img" && ev.data["size"] == float64(7)
	})
}

// newEnvWithEvents is newEnv with the store publishing into the same hub.
func newEnvWithEvents(t *testing.T, g *gadget.Gadget) *env {
	t.Helper()
	var e *env
	publish := func(kind string, v any) {
		if e != nil {
			e.hub.Publish(kind, v)
		}
	}
	e = newEnv(t, g, nil, fs.Options{Publish: publish})
	return e
}
