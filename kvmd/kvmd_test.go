package kvmd

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msdav/msdav/drives"
	"github.com/msdav/msdav/fetch"
	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/gadget"
	"github.com/msdav/msdav/gadget/gadgettest"
)

// server is kvmd's API over a store and two fake drives (a fake configfs).
func server(t *testing.T) (*httptest.Server, *Handler, *fs.Store, *drives.Manager) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := fs.Open(fs.Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	g, err := gadget.Open(gadgettest.Bound(t, 2), log)
	if err != nil {
		t.Fatal(err)
	}
	dm := drives.New(store, g, nil, nil, log)
	h := New(store, dm, nil, log)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, h, store, dm
}

func call(t *testing.T, method, url string) (int, http.Header, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(b, &m)
	return resp.StatusCode, resp.Header, m
}

func errName(m map[string]any) string {
	r, _ := m["result"].(map[string]any)
	s, _ := r["error"].(string)
	return s
}

func put(t *testing.T, store *fs.Store, name string, size int) {
	t.Helper()
	p := filepath.Join(store.Dir(), name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Issue 32 §3, against kvmd 4.x's otg plugin, one behaviour a case.
func TestKVMDParity(t *testing.T) {
	t.Run("set_params of an image still uploading is MsdUnknownImageError", func(t *testing.T) {
		srv, _, store, _ := server(t)
		u, err := store.Create(t.Context(), "up.img", 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		defer u.Abort()
		code, _, m := call(t, "POST", srv.URL+"/api/msd/set_params?image=up.img")
		if r, _ := m["result"].(map[string]any); code != 400 || errName(m) != "MsdUnknownImageError" || !strings.Contains(r["error_msg"].(string), "still uploading") {
			t.Errorf("set_params of an uploading image: %d %v", code, m)
		}
	})
	t.Run("mod_ts of an uploading image is its time, not the zero time", func(t *testing.T) {
		srv, _, store, _ := server(t)
		u, err := store.Create(t.Context(), "up.img", 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		defer u.Abort()
		u.Write(make([]byte, 4096))
		_, _, m := call(t, "GET", srv.URL+"/api/msd")
		im := m["result"].(map[string]any)["storage"].(map[string]any)["images"].(map[string]any)["up.img"].(map[string]any)
		if ts := im["mod_ts"].(float64); ts < 1e9 {
			t.Errorf("mod_ts of an uploading image: %v", ts)
		}
	})
	t.Run("removable stays true while attached", func(t *testing.T) {
		srv, _, store, _ := server(t)
		put(t, store, "a.img", 1<<20)
		call(t, "POST", srv.URL+"/api/msd/set_params?image=a.img")
		if code, _, m := call(t, "POST", srv.URL+"/api/msd/set_connected?connected=1"); code != 200 {
			t.Fatalf("connect: %d %v", code, m)
		}
		_, _, m := call(t, "GET", srv.URL+"/api/msd")
		res := m["result"].(map[string]any)
		if im := res["storage"].(map[string]any)["images"].(map[string]any)["a.img"].(map[string]any); im["removable"] != true {
			t.Errorf("storage image while attached: %v", im)
		}
		if im := res["drive"].(map[string]any)["image"].(map[string]any); im["removable"] != true {
			t.Errorf("drive image while attached: %v", im)
		}
	})
	t.Run("no gadget: enabled true, online false", func(t *testing.T) {
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		store, _ := fs.Open(fs.Options{Root: t.TempDir()})
		defer store.Close()
		dm := drives.New(store, nil, errors.New("no UDC"), nil, log)
		srv := httptest.NewServer(New(store, dm, nil, log))
		defer srv.Close()
		_, _, m := call(t, "GET", srv.URL+"/api/msd")
		res := m["result"].(map[string]any)
		if res["enabled"] != true || res["online"] != false || res["drive"] != nil || res["storage"] != nil {
			t.Errorf("state without a gadget: %v", res)
		}
	})
	t.Run("set_params rw=1 on a CD keeps the CD and rw false", func(t *testing.T) {
		srv, _, store, dm := server(t)
		put(t, store, "a.img", 1<<20)
		call(t, "POST", srv.URL+"/api/msd/set_params?image=a.img&cdrom=1")
		call(t, "POST", srv.URL+"/api/msd/set_params?rw=1")
		if sel := dm.Selected(0); !sel.CDROM || sel.RW {
			t.Errorf("selection after rw=1 on a CD: %+v", sel)
		}
		put(t, store, "b.iso", 1<<20)
		call(t, "POST", srv.URL+"/api/msd/set_params?image=b.iso&cdrom=0&rw=1")
		if sel := dm.Selected(0); sel.CDROM || sel.RW {
			t.Errorf("selection after rw=1 on an .iso: %+v", sel)
		}
	})
	t.Run("busy: set_params, set_connected, remove and reset answer 409 MsdIsBusyError", func(t *testing.T) {
		srv, h, store, _ := server(t)
		put(t, store, "a.img", 1<<20)
		release, err := h.take()
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		for _, p := range []string{"set_params?image=a.img", "set_connected?connected=1", "remove?image=a.img", "reset"} {
			if code, _, m := call(t, "POST", srv.URL+"/api/msd/"+p); code != 409 || errName(m) != "MsdIsBusyError" {
				t.Errorf("%s while busy: %d %v", p, code, m)
			}
		}
		if _, err := os.Stat(filepath.Join(store.Dir(), "a.img")); err != nil {
			t.Error("remove while busy removed the image")
		}
	})
	t.Run("reset keeps the selection", func(t *testing.T) {
		srv, _, store, dm := server(t)
		put(t, store, "a.img", 1<<20)
		call(t, "POST", srv.URL+"/api/msd/set_params?image=a.img&cdrom=1")
		if code, _, m := call(t, "POST", srv.URL+"/api/msd/reset"); code != 200 {
			t.Fatalf("reset: %d %v", code, m)
		}
		if sel := dm.Selected(0); sel.Image != "a.img" || !sel.CDROM {
			t.Errorf("selection after reset: %+v", sel)
		}
	})
	t.Run("read's filename* escapes = and other non-attr-chars (RFC 5987)", func(t *testing.T) {
		srv, _, store, _ := server(t)
		put(t, store, "a=b;c d,é.img", 4096)
		code, hdr, _ := call(t, "GET", srv.URL+"/api/msd/read?image=a%3Db%3Bc%20d%2C%C3%A9.img")
		want := "attachment; filename*=UTF-8''a%3Db%3Bc%20d%2C%C3%A9.img"
		if code != 200 || hdr.Get("Content-Disposition") != want {
			t.Errorf("read: %d %q, want %q", code, hdr.Get("Content-Disposition"), want)
		}
	})
	t.Run("write creates the folders of image and prefix", func(t *testing.T) {
		srv, _, store, _ := server(t)
		req, _ := http.NewRequest("POST", srv.URL+"/api/msd/write?prefix=p/q&image=r/s.img", strings.NewReader("hello"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.Contains(string(b), ".msdav-") {
			t.Errorf("write into missing folders: %d %s", resp.StatusCode, b)
		}
		if got, _ := os.ReadFile(filepath.Join(store.Dir(), "p/q/r/s.img")); string(got) != "hello" {
			t.Errorf("stored: %q", got)
		}
	})
}

// Issue 31.8: the password of a write_remote URL shows nowhere in kvmd's
// answers; and kvmd's error for connecting with nothing selected stays.
func TestKVMDSecretsAndSelection(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := fs.Open(fs.Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	g, err := gadget.Open(gadgettest.Bound(t, 1), log)
	if err != nil {
		t.Fatal(err)
	}
	jobs := fetch.New(store, fetch.Options{AllowPrivate: true, Log: log, Retries: 1})
	defer jobs.Close()
	srv := httptest.NewServer(New(store, drives.New(store, g, nil, nil, log), jobs, log))
	defer srv.Close()
	if code, _, m := call(t, "POST", srv.URL+"/api/msd/set_connected?connected=1"); code != 400 || errName(m) != "MsdImageNotSelected" {
		t.Errorf("connect with nothing selected: %d %v", code, m)
	}
	resp, err := http.Post(srv.URL+"/api/msd/write_remote?url="+url.QueryEscape("http://ironic:s3cret@127.0.0.1:1/x.iso"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, _, state := call(t, "GET", srv.URL+"/api/msd")
	sb, _ := json.Marshal(state)
	if strings.Contains(string(b)+string(sb), "s3cret") {
		t.Errorf("the password shows: %s %s", b, sb)
	}
}

// write_remote honours kvmd's timeout: a server that has not answered by
// then fails the call at once, and nothing of the download stays.
func TestKVMDWriteRemoteTimeout(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := fs.Open(fs.Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	g, err := gadget.Open(gadgettest.Bound(t, 1), log)
	if err != nil {
		t.Fatal(err)
	}
	jobs := fetch.New(store, fetch.Options{AllowPrivate: true, Log: log})
	defer jobs.Close()
	srv := httptest.NewServer(New(store, drives.New(store, g, nil, nil, log), jobs, log))
	defer srv.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Second)
		w.Write([]byte("late image"))
	}))
	defer slow.Close()
	start := time.Now()
	code, _, m := call(t, "POST", srv.URL+"/api/msd/write_remote?image=late.img&timeout=0.3&url="+url.QueryEscape(slow.URL+"/late.img"))
	if code != 400 || errName(m) != "MsdOperationError" || time.Since(start) > 1900*time.Millisecond { // before the server answers
		t.Errorf("a server slower than timeout: %d %v after %v", code, m, time.Since(start))
	}
	time.Sleep(2500 * time.Millisecond) // the late answer comes, and is canceled
	if _, err := os.Stat(filepath.Join(store.Dir(), "late.img")); err == nil {
		t.Error("the timed-out download was kept")
	}
	if code, _, m := call(t, "POST", srv.URL+"/api/msd/write_remote?image=ok.img&timeout=10&url="+url.QueryEscape(slow.URL+"/ok.img")); code != 200 {
		t.Errorf("within the timeout: %d %v", code, m)
	}
}
