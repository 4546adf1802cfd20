package dav

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msdav/msdav/fs"
)

// These benchmarks are for profiling the handler alone (go test -bench
// -cpuprofile); the side-by-side figures come from make bench.

// discard is a ResponseWriter that keeps nothing but the status.
type discard struct {
	h      http.Header
	status int
	n      int64
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(code int)        { d.status = code }
func (d *discard) Write(p []byte) (int, error) { d.n += int64(len(p)); return len(p), nil }

func benchHandler(b *testing.B) (*Handler, string) {
	root := b.TempDir()
	s, err := fs.Open(fs.Options{Root: root})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return New(s, Options{Prefix: "/dav"}), root
}

func BenchmarkPropfindDepth1(b *testing.B) {
	h, root := benchHandler(b)
	dir := filepath.Join(root, "many")
	os.Mkdir(dir, 0o755)
	for i := 0; i < 10000; i++ {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("image-%05d.iso", i)), []byte("x"), 0o644)
	}
	body := `<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getcontentlength/><getlastmodified/><resourcetype/></prop></propfind>`
	b.ReportAllocs()
	for b.Loop() {
		r, _ := http.NewRequest("PROPFIND", "/dav/many/", strings.NewReader(body))
		r.Header.Set("Depth", "1")
		w := &discard{h: http.Header{}}
		h.ServeHTTP(w, r)
		if w.status != http.StatusMultiStatus || w.n < 10000*100 {
			b.Fatalf("PROPFIND: %d, %d bytes", w.status, w.n)
		}
	}
}

// A folder of 2,000 folders: every child is a collection with quota
// properties, which made one mount-table read and part probe each.
func BenchmarkPropfindFolders(b *testing.B) {
	h, root := benchHandler(b)
	dir := filepath.Join(root, "dirs")
	os.Mkdir(dir, 0o755)
	for i := 0; i < 2000; i++ {
		os.Mkdir(filepath.Join(dir, fmt.Sprintf("folder-%04d", i)), 0o755)
	}
	b.ReportAllocs()
	for b.Loop() {
		r, _ := http.NewRequest("PROPFIND", "/dav/dirs/", strings.NewReader(""))
		r.Header.Set("Depth", "1")
		w := &discard{h: http.Header{}}
		h.ServeHTTP(w, r)
		if w.status != http.StatusMultiStatus || w.n < 2000*100 {
			b.Fatalf("PROPFIND: %d, %d bytes", w.status, w.n)
		}
	}
}

func BenchmarkPut64M(b *testing.B) {
	h, _ := benchHandler(b)
	data := bytes.Repeat([]byte("0123456789abcdef"), 4<<20)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r, _ := http.NewRequest("PUT", "/dav/big.bin", io.NopCloser(bytes.NewReader(data)))
		r.ContentLength = int64(len(data))
		w := &discard{h: http.Header{}}
		h.ServeHTTP(w, r)
		if w.status != http.StatusCreated && w.status != http.StatusNoContent {
			b.Fatalf("PUT: %d", w.status)
		}
	}
}

// BenchmarkProbe404 is Explorer's desktop.ini probe, sent for every folder
// it opens: it must cost about what a stat costs, not an error path.
func BenchmarkProbe404(b *testing.B) {
	h, root := benchHandler(b)
	os.Mkdir(filepath.Join(root, "isos"), 0o755)
	b.ReportAllocs()
	for b.Loop() {
		r, _ := http.NewRequest("PROPFIND", "/dav/isos/desktop.ini", nil)
		r.Header.Set("Depth", "0")
		w := &discard{h: http.Header{}}
		h.ServeHTTP(w, r)
		if w.status != http.StatusNotFound {
			b.Fatalf("probe: %d", w.status)
		}
	}
}
