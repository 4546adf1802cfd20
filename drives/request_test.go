package drives

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/gadget"
)

// Every bad attach is refused here, once, with a typed error that carries
// the status each front end answers with, and leaves the drive as it was.
func TestAttachRequestRefusals(t *testing.T) {
	m, _, _ := fakeDrive(t, fs.Options{})
	root := m.store.Dir()
	os.WriteFile(filepath.Join(root, "lib", "boot.iso"), make([]byte, 1<<20), 0o644)
	os.WriteFile(filepath.Join(root, "lib", "rw.img"), make([]byte, 1<<20), 0o644)
	os.MkdirAll(filepath.Join(root, "lib", "folder"), 0o755)
	if _, err := m.Attach(context.Background(), Request{Drive: 0, Image: "lib/boot.iso", CDROM: true}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		req      Request
		status   int
		sentinel error
		msg      string
	}{
		{"cdrom and rw", Request{Image: "lib/rw.img", CDROM: true, RW: true}, 422, ErrRefused, "a CD/DVD is never writable"},
		{"drive out of range", Request{Drive: 3, Image: "lib/rw.img"}, 404, gadget.ErrNoDrive, "drive 3: no such drive (drives are 0 to 0)"},
		{"negative drive", Request{Drive: -1, Image: "lib/rw.img"}, 404, gadget.ErrNoDrive, "drive -1: no such drive"},
		{"missing image", Request{Image: "lib/gone.iso"}, 404, os.ErrNotExist, `no image "lib/gone.iso" in the store`},
		{"a folder", Request{Image: "lib/folder"}, 404, os.ErrNotExist, `"lib/folder" is a folder, not an image`},
		{"the store itself", Request{Image: "/"}, 404, os.ErrNotExist, `no image "/" in the store`},
		{"an internal name", Request{Image: "lib/.msdav-upload-1-x.img"}, 404, os.ErrNotExist, "in the store"},
		{"no image named", Request{}, 400, ErrInvalid, "no image named"},
		{"two images named", Request{Image: "lib/rw.img", URL: "http://x/a.iso"}, 400, ErrInvalid, "name one image"},
		{"a URL rw", Request{URL: "http://x/a.iso", RW: true}, 422, ErrRefused, "read-only"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, how := range []string{"Check", "Attach"} {
				var err error
				if how == "Check" {
					err = m.Check(c.req)
				} else {
					_, err = m.Attach(context.Background(), c.req)
				}
				var e *Error
				if !errors.As(err, &e) || e.HTTPStatus() != c.status || !errors.Is(err, c.sentinel) || !strings.Contains(err.Error(), c.msg) {
					t.Fatalf("%s: got %v (%T), want status %d, %v, %q", how, err, err, c.status, c.sentinel, c.msg)
				}
			}
			if d, _ := m.Drive(0); d.Image == nil || *d.Image != "lib/boot.iso" {
				t.Errorf("a refused request changed the drive: %+v", d)
			}
		})
	}
	// Without drives, every request says why there are none.
	m2 := New(m.store, nil, errors.New("no UDC"), nil, nil)
	if err := m2.Check(Request{Image: "lib/rw.img"}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("no gadget: %v", err)
	}
	m.store.SetAttachments(m)
}
