package redfish

// FuzzBody sends any JSON body to every Redfish route that reads one
// (issue 31.9). URLs in the bodies resolve nowhere: no lookup leaves the
// test.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/msdav/msdav/drives"
	"github.com/msdav/msdav/fetch"
	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/gadget"
)

var bodyRoutes = []struct{ method, path string }{
	{"PATCH", systemPath},
	{"POST", systemPath + "/Actions/ComputerSystem.Reset"},
	{"PATCH", managerURL + "/VirtualMedia/0"},
	{"POST", managerURL + "/VirtualMedia/0/Actions/VirtualMedia.InsertMedia"},
	{"POST", systemPath + "/VirtualMedia/0/Actions/VirtualMedia.EjectMedia"},
	{"POST", sessions},
}

func FuzzBody(f *testing.F) {
	for i, b := range []string{
		`{"Boot":{"BootSourceOverrideTarget":"Cd","BootSourceOverrideEnabled":"Once"}}`,
		`{"ResetType":"ForceRestart"}`,
		`{"Inserted":true,"Image":"a.img","WriteProtected":true}`,
		`{"Image":"http://images.example/a.iso","Inserted":true,"TransferMethod":"Stream"}`,
		`{}`,
		`{"UserName":"admin","Password":"x"}`,
		`[1,2`, `{"Image":null}`, `{"Image":{"a":1}}`,
	} {
		f.Add(uint8(i%len(bodyRoutes)), []byte(b))
	}
	root := f.TempDir()
	os.WriteFile(filepath.Join(root, "a.img"), make([]byte, 4096), 0o644)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := fs.Open(fs.Options{Root: root})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	dm := drives.New(s, gadget.OpenDetached(1, nil), nil, nil, log)
	jobs := fetch.New(s, fetch.Options{Log: log, LookupIP: func(context.Context, string) ([]netip.Addr, error) {
		return nil, errors.New("no lookups while fuzzing")
	}})
	f.Cleanup(jobs.Close)
	h := New(s, dm, jobs, Options{Log: log, Run: func(string) (string, error) { return "", errors.New("no power commands while fuzzing") }})
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := bodyRoutes[int(route)%len(bodyRoutes)]
		r := httptest.NewRequest(rt.method, "http://box"+rt.path, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code == 500 {
			t.Errorf("%s %s %q: 500 %s", rt.method, rt.path, body, w.Body.Bytes())
		}
		if w.Body.Len() > 0 && !json.Valid(w.Body.Bytes()) {
			t.Errorf("%s %s: not JSON: %.200s", rt.method, rt.path, w.Body.Bytes())
		}
	})
}
