package main

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

type jobJSON struct {
	ID, State, Error, Path, SHA256 string
	Received, Written              int64
}

// kill -9 of msdav serve in the middle of a fetch: after the restart the
// store holds nothing of it, the job is listed as failed saying why, and
// the same fetch then completes byte-identical.
func TestCrashDuringFetch(t *testing.T) {
	img := make([]byte, 6<<20)
	rand.New(rand.NewSource(1)).Read(img)
	hold := make(chan struct{})
	defer close(hold)
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(img)))
		if r.URL.Path == "/slow.img" {
			w.Write(img[:2<<20])
			w.(http.Flusher).Flush()
			select {
			case <-hold:
			case <-r.Context().Done():
			}
			return
		}
		w.Write(img)
	}))
	defer src.Close()
	store := t.TempDir()
	cfg := "[storage]\nroot = \"" + store + "\"\n[gadget]\nmode = \"disabled\"\n[fetch]\nallow_private = true\n"
	p := startProc(t, cfg)
	resp, err := http.Post(p.base+"/api/images/fetch", "application/json",
		strings.NewReader(`{"url":"`+src.URL+`/slow.img","path":"os.img"}`))
	if err != nil {
		t.Fatal(err)
	}
	var j jobJSON
	json.NewDecoder(resp.Body).Decode(&j)
	resp.Body.Close()
	if resp.StatusCode != 202 || j.State != "running" {
		t.Fatalf("POST fetch: %d %+v", resp.StatusCode, j)
	}
	for i := 0; ; i++ {
		var cur jobJSON
		getJSON(t, p.base+"/api/jobs/"+j.ID, &cur)
		if cur.Written >= 2<<20 {
			break
		}
		if i > 500 {
			t.Fatalf("fetch made no progress: %+v", cur)
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.kill9()
	if temps, _ := filepath.Glob(filepath.Join(store, ".msdav-upload-*")); len(temps) != 1 {
		t.Fatalf("the killed fetch's temp should be on disk before the restart: %v", temps)
	}

	p = startProc(t, cfg)
	var list struct{ Jobs []jobJSON }
	getJSON(t, p.base+"/api/jobs", &list)
	if len(list.Jobs) != 1 || list.Jobs[0].ID != j.ID || list.Jobs[0].State != "failed" ||
		!strings.Contains(list.Jobs[0].Error, "interrupted") || list.Jobs[0].Path != "os.img" {
		t.Errorf("jobs after the restart: %+v", list.Jobs)
	}
	if left, _ := filepath.Glob(filepath.Join(store, "*")); len(left) != 0 {
		t.Errorf("store after the restart: %v", left)
	}
	if left, _ := filepath.Glob(filepath.Join(store, ".msdav-*")); len(left) != 0 {
		t.Errorf("temps or journals after the restart: %v", left)
	}

	resp, err = http.Post(p.base+"/api/images/fetch", "application/json",
		strings.NewReader(`{"url":"`+src.URL+`/fast.img","path":"os.img"}`))
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&j)
	resp.Body.Close()
	for i := 0; j.State == "running" && i < 1000; i++ {
		time.Sleep(10 * time.Millisecond)
		getJSON(t, p.base+"/api/jobs/"+j.ID, &j)
	}
	got, _ := os.ReadFile(filepath.Join(store, "os.img"))
	if j.State != "done" || !bytes.Equal(got, img) {
		t.Errorf("fetch after the restart: %+v, %d bytes stored", j, len(got))
	}
}
