package api

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/gadget"
	"github.com/msdav/msdav/gadget/gadgettest"
)

// When configfs cannot be read, images cannot change: 503 with the reason,
// and nothing is deleted or replaced.
func TestFailsClosedWhenConfigfsUnreadable(t *testing.T) {
	cfg := gadgettest.Bound(t, 1)
	g, err := gadget.Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, g, nil, fs.Options{})
	os.WriteFile(filepath.Join(e.store.Dir(), "a.iso"), []byte("keep"), 0o644)
	// The LUN's file attribute stops being readable.
	file := filepath.Join(gadgettest.LUN(cfg, 0), "file")
	os.Remove(file)
	os.Mkdir(file, 0o755)
	code, m := e.call(t, "POST", "/api/images", `{"path":"new.img","size":"40M"}`)
	if code != 503 || !strings.Contains(m["error"].(string), "cannot tell which images are attached") {
		t.Errorf("create while drives unknown: %d %v", code, m)
	}
	if code, m := e.call(t, "GET", "/api/drives", ""); code != 500 && code != 503 {
		t.Errorf("drives while configfs unreadable: %d %v", code, m)
	}
	if _, err := os.Stat(filepath.Join(e.store.Dir(), "new.img")); err == nil {
		t.Error("image created while the drives were unknown")
	}
	if b, _ := os.ReadFile(filepath.Join(e.store.Dir(), "a.iso")); string(b) != "keep" {
		t.Error("image changed")
	}
}

// A rw attach that fails after the store's hold was taken gives the hold
// back: the store goes ro again, as invariant 3 promises.
func TestFailedRWAttachReleasesHold(t *testing.T) {
	dir := tmpfsStore(t, "mounts a real tmpfs as the store", 8)
	os.WriteFile(filepath.Join(dir, "rw.img"), make([]byte, 4096), 0o644)
	cfg := gadgettest.Bound(t, 1)
	g, err := gadget.Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, g, nil, fs.Options{Root: dir, Remount: true, Grace: 50 * time.Millisecond})
	// The kernel refuses the "ro" attribute (a stand-in for any failure
	// between taking the hold and the LUN accepting the file).
	ro := filepath.Join(gadgettest.LUN(cfg, 0), "ro")
	os.Remove(ro)
	os.Mkdir(ro, 0o755)
	code, m := e.call(t, "PUT", "/api/drives/0", `{"image":"rw.img","rw":true}`)
	if code < 500 {
		t.Fatalf("attach with a broken LUN: %d %v", code, m)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		if ro, _ := fs.IsReadOnly(dir); ro {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("store stayed rw after a failed rw attach: the hold leaked")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rw, writers := e.store.Writable(); rw || writers != 0 {
		t.Errorf("guard: rw=%v writers=%d after a failed attach", rw, writers)
	}
}
