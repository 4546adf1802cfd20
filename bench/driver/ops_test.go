package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeDAV is a share that stores PUTs in root, unless told to fail: a
// server that answers an error, or one that answers 201 without storing.
func fakeDAV(t *testing.T, root string, status int, store bool) *server {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case "PUT":
			b, _ := io.ReadAll(r.Body)
			if store {
				os.WriteFile(filepath.Join(root, r.URL.Path), b, 0o644)
			}
			w.WriteHeader(status)
		case "GET":
			if status >= 300 {
				w.WriteHeader(status)
				return
			}
			http.ServeFile(w, r, filepath.Join(root, r.URL.Path))
		case "PROPFIND":
			w.WriteHeader(status)
			for i := 0; i < 3; i++ {
				fmt.Fprintf(w, "<D:response><D:href>/d/image-%d.iso</D:href></D:response>", i)
			}
		}
	}))
	t.Cleanup(ts.Close)
	return &server{name: "fake", url: ts.URL + "/", base: ts.URL, root: root, client: ts.Client()}
}

// A PUT is a sample only if the server said 201/204 and the file it wrote
// is whole: smallWrites and peakRSS once timed failed PUTs as successes.
func TestPutChecksStatusAndFile(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	os.WriteFile(src, bytes.Repeat([]byte("x"), 4096), 0o644)
	for _, tc := range []struct {
		name   string
		status int
		store  bool
		want   string // in the error; "" for success
	}{
		{"stored", 201, true, ""},
		{"server error", 500, true, "500"},
		{"insufficient storage", 507, false, "507"},
		{"created but not stored", 201, false, "open what was written"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := fakeDAV(t, t.TempDir(), tc.status, tc.store)
			check := func(what string, err error) {
				t.Helper()
				if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
					t.Errorf("%s: %v, want %q", what, err, tc.want)
				}
			}
			_, _, err := putTime(s, "f.bin", src, 4096)
			check("Go client", err)
			if _, err := exec.LookPath("curl"); err != nil {
				t.Skip("curl not installed (apt-get install curl)")
			}
			_, _, err = curlPutTime(s, "f.bin", src, 4096)
			check("curl", err)
		})
	}
}

// A short file is no sample either.
func TestPutChecksSize(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	os.WriteFile(src, bytes.Repeat([]byte("x"), 4096), 0o644)
	s := fakeDAV(t, t.TempDir(), 201, true)
	if _, err := syncFile(src, 4000); err == nil || !strings.Contains(err.Error(), "4096 bytes") {
		t.Errorf("syncFile of a 4096-byte file wanting 4000: %v", err)
	}
	if _, _, err := putTime(s, "f.bin", src, 4096); err != nil {
		t.Fatal(err)
	}
}

func TestGetChecksStatusAndSize(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f.bin"), make([]byte, 1000), 0o644)
	good, bad := fakeDAV(t, root, 200, true), fakeDAV(t, root, 503, true)
	for _, tc := range []struct {
		name string
		s    *server
		rng  string
		want int64
		err  string
	}{
		{"whole", good, "", 1000, ""},
		{"range", good, "bytes=0-99", 100, ""},
		{"short", good, "", 2000, "1000 bytes, want 2000"},
		{"status", bad, "", 0, "503"},
	} {
		_, err := getTime(tc.s, "f.bin", tc.rng, tc.want)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: Go client: %v, want %q", tc.name, err, tc.err)
		}
		if _, err := exec.LookPath("curl"); err != nil {
			continue
		}
		_, err = curlTime(tc.s, "f.bin", tc.rng, tc.want)
		if tc.err == "" && err != nil || tc.err != "" && err == nil {
			t.Errorf("%s: curl: %v, want %q", tc.name, err, tc.err)
		}
	}
}

func TestPropfindChecks(t *testing.T) {
	good, bad := fakeDAV(t, t.TempDir(), 207, true), fakeDAV(t, t.TempDir(), 200, true)
	if _, err := propfindTime(good, "d/", namedProps, "image-", 3); err != nil {
		t.Errorf("3 entries, want 3: %v", err)
	}
	if _, err := propfindTime(good, "d/", namedProps, "image-", 4); err == nil {
		t.Error("3 entries passed for 4")
	}
	if _, err := propfindTime(bad, "d/", namedProps, "image-", 3); err == nil || !strings.Contains(err.Error(), "200 OK") {
		t.Errorf("a 200 to PROPFIND: %v", err)
	}
}

func TestParsers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		code int
		n    int64
		ok   bool
	}{
		{"201 1073741824", 201, 1 << 30, true},
		{"206 67108864\n", 206, 64 << 20, true},
		{"000 0", 0, 0, true},
		{"", 0, 0, false},
		{"curl: (7) refused", 0, 0, false},
	} {
		code, n, err := parseCurl(tc.in)
		if (err == nil) != tc.ok || code != tc.code || n != tc.n {
			t.Errorf("parseCurl(%q) = %d %d %v", tc.in, code, n, err)
		}
	}
	status := []byte("Name:\tmsdav\nVmPeak:\t 1300000 kB\nVmHWM:\t   16212 kB\nVmRSS:\t 9000 kB\n")
	if kb, ok := vmHWM(status); !ok || kb != 16212 {
		t.Errorf("vmHWM = %d %v, want 16212", kb, ok)
	}
	if _, ok := vmHWM([]byte("VmRSS: 9000 kB\n")); ok {
		t.Error("vmHWM found a value in a status without one")
	}
	metrics := []byte("# TYPE msdav_remount_cycles_total counter\nmsdav_remount_cycles_total 3\nmsdav_remount_cycles_total_x 9\n")
	if v, ok := metric(metrics, "msdav_remount_cycles_total"); !ok || v != "3" {
		t.Errorf("metric = %q %v, want 3", v, ok)
	}
	if _, ok := metric(metrics, "msdav_remount"); ok {
		t.Error("metric matched a prefix of a name")
	}
}

// fakeJobs answers POST /api/images/fetch and /api/jobs/{id} like msdav:
// the job runs for two polls, then ends as told, after writing size bytes.
func fakeJobs(t *testing.T, root, state string, size int) *server {
	t.Helper()
	var polls atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "DELETE":
			w.WriteHeader(404)
		case r.Method == "POST" && r.URL.Path == "/api/images/fetch":
			var req map[string]string
			json.NewDecoder(r.Body).Decode(&req)
			if req["decompress"] != "auto" || !strings.HasPrefix(req["url"], "http://") {
				w.WriteHeader(400)
				return
			}
			w.WriteHeader(202)
			json.NewEncoder(w).Encode(job{ID: "j1", State: "running"})
		case r.URL.Path == "/api/jobs/j1":
			j := job{ID: "j1", State: "running"}
			if polls.Add(1) > 2 {
				os.WriteFile(filepath.Join(root, "out.img"), make([]byte, size), 0o644)
				j.State, j.Written = state, int64(size)
				if state == "failed" {
					j.Error = "xz: corrupt input"
				}
			}
			json.NewEncoder(w).Encode(j)
		default:
			w.WriteHeader(404)
		}
	}))
	t.Cleanup(ts.Close)
	return &server{name: "msdav", url: ts.URL + "/dav/", base: ts.URL, root: root, client: ts.Client()}
}

func TestFetchTime(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state string
		size  int
		want  string
	}{
		{"done", "done", 100, ""},
		{"failed", "failed", 100, "xz: corrupt input"},
		{"short", "done", 99, "holds 99 bytes"},
	} {
		s := fakeJobs(t, t.TempDir(), tc.state, tc.size)
		_, err := fetchTime(s, "http://127.0.0.1:1/a.img.xz", "out.img", "auto", 100)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	s := fakeJobs(t, t.TempDir(), "done", 100)
	if _, err := fetchTime(s, "http://127.0.0.1:1/a.img", "out.img", "none", 100); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("a refused POST: %v", err)
	}
}

func TestToolTime(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	if _, _, err := toolTime("head -c 100 /dev/zero > "+out, out, 100); err != nil {
		t.Errorf("a pipeline writing 100 bytes: %v", err)
	}
	if _, _, err := toolTime("head -c 99 /dev/zero > "+out, out, 100); err == nil {
		t.Error("a short output passed")
	}
	// pipefail: a failing first command fails the pipeline.
	if _, _, err := toolTime("false | cat > "+out, out, 0); err == nil {
		t.Error("a failed pipeline passed")
	}
}

// The stand-in image is the same on every run (the cache depends on it)
// and neither all zeros nor all noise.
func TestMakeImage(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, p := range []string{a, b} {
		if err := makeImage(p, 32<<20+5); err != nil {
			t.Fatal(err)
		}
	}
	da, _ := os.ReadFile(a)
	db, _ := os.ReadFile(b)
	if len(da) != 32<<20+5 || !bytes.Equal(da, db) {
		t.Fatalf("two images of one size differ or are %d bytes", len(da))
	}
	zeros, spaces := bytes.Count(da, []byte{0}), bytes.Count(da, []byte(" "))
	if zeros < len(da)/10 || zeros > len(da)*9/10 || spaces < len(da)/20 {
		t.Errorf("image of %d bytes has %d zeros and %d spaces: not a mix", len(da), zeros, spaces)
	}
}

// Cleaning the work directory keeps the archives that take minutes to make.
func TestCleanWork(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "cache"), 0o755)
	os.WriteFile(filepath.Join(dir, "cache", "image.xz"), []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(dir, "nginx", "many"), 0o755)
	os.WriteFile(filepath.Join(dir, "samples.csv"), []byte("x"), 0o644)
	if err := cleanWork(dir); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "cache" {
		t.Errorf("left %v", ents)
	}
	if _, err := os.Stat(filepath.Join(dir, "cache", "image.xz")); err != nil {
		t.Error(err)
	}
}

func TestCachedImage(t *testing.T) {
	for _, tool := range []string{"xz", "zstd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install xz-utils zstd)", tool)
		}
	}
	dir := t.TempDir()
	img, xz, zst, err := cachedImage(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(xz)
	mtime := fi.ModTime()
	for _, c := range [][]string{{"xz", "-dc", xz}, {"zstd", "-dc", zst}} {
		out, err := exec.Command(c[0], c[1:]...).Output()
		want, _ := os.ReadFile(img)
		if err != nil || !bytes.Equal(out, want) {
			t.Errorf("%s does not unpack to the image: %v", c[2], err)
		}
	}
	time.Sleep(10 * time.Millisecond)
	if _, xz2, _, err := cachedImage(dir, 1<<20); err != nil || xz2 != xz {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(xz); !fi.ModTime().Equal(mtime) {
		t.Error("the cached archive was made again")
	}
}

func TestVMLatencies(t *testing.T) {
	log := []byte(`    vm_test.go:121:     guarded_test.go:76: rw flash visible after 146ms
    vm_test.go:121:     guest_test.go:145: attach-to-visible latency (API call to /dev/sr0 readable at full size): 1.951s
    vm_test.go:121:     guest_test.go:230: flash image visible as /dev/sda; attach-to-visible latency (no reconnect needed): 65ms
`)
	cd, flash, err := vmLatencies(log)
	if err != nil || cd != 1951*time.Millisecond || flash != 65*time.Millisecond {
		t.Errorf("vmLatencies = %v %v %v, want 1.951s 65ms", cd, flash, err)
	}
	if _, _, err := vmLatencies(log[:bytes.Index(log, []byte("flash image"))]); err == nil {
		t.Error("a log without the flash line gave figures")
	}
	if _, _, err := vmLatencies([]byte("attach-to-visible latency (API call to /dev/sr0 readable): soon\n")); err == nil {
		t.Error("a latency that is no duration passed")
	}
}

func TestVMThroughput(t *testing.T) {
	line := []byte("    vm_test.go:168:     throughput_test.go:133: THROUGHPUT userspace/kernel = 0.74 (kernel 2.0 MB/s, userspace 1.5 MB/s; per-slice ratios 0.42 to 1.15, median 0.74)\n")
	for _, tc := range []struct {
		log  string
		want string // in the line; "" means an error
	}{
		{string(line), "f_mass_storage 2.0 MB/s, msdav's userspace drive 1.5 MB/s, ratio 0.74 (target ≥ 0.77, time within 1.3x: **missed**)"},
		{strings.Replace(string(line), "= 0.74", "= 0.98", 1), "ratio 0.98 (target ≥ 0.77, time within 1.3x: met)"},
		{string(line), "8 MiB slices of buffered 32 KiB reads by a Go loop; x)"},
		{strings.Replace(string(line), "median 0.74)", "median 0.74; read by dd)", 1), "8 MiB slices of buffered 32 KiB reads by dd; x)"},
		{"no such line\n", ""},
		{strings.Replace(string(line), "kernel 2.0", "kernel 2.0.1", 1), ""},
	} {
		got, err := throughputLine([]byte(tc.log), "x")
		if tc.want == "" {
			if err == nil {
				t.Errorf("%q: no error, line %q", tc.log, got)
			}
			continue
		}
		if err != nil || !strings.Contains(got, tc.want) {
			t.Errorf("%q: %q %v, want %q in it", tc.log, got, err, tc.want)
		}
	}
}
