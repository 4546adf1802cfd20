package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func makeSource(path string, size int64) {
	f, err := os.Create(path)
	must(err)
	buf := make([]byte, 4<<20)
	rand.Read(buf)
	for n := int64(0); n < size; n += int64(len(buf)) {
		_, err := f.Write(buf[:min(int64(len(buf)), size-n)])
		must(err)
	}
	must(f.Close())
	exec.Command("sync").Run()
}

// ranges are the Range headers of the ranged GETs of a file of size: five
// of n bytes each (64 MiB, or a quarter of a small file), from its start to
// its end.
func ranges(size int64) (rngs []string, n int64) {
	n = min(int64(64<<20), size/4)
	for k := int64(0); k < 5; k++ {
		off := (size - n) * k / 4
		rngs = append(rngs, fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	}
	return rngs, n
}

// makeFolder fills dir with the 10,000 one-byte images PROPFIND is timed on.
func makeFolder(dir string) {
	must(os.MkdirAll(dir, 0o755))
	for i := 0; i < 10000; i++ {
		must(os.WriteFile(filepath.Join(dir, fmt.Sprintf("image-%05d.iso", i)), []byte("x"), 0o644))
	}
}

// makeFolders fills dir with n subfolders, each holding one image, like a
// library sorted by distribution: the listing msdav once spent 419 ms on
// (quota per child).
func makeFolders(dir string, n int) {
	for i := 0; i < n; i++ {
		sub := filepath.Join(dir, fmt.Sprintf("distro-%04d", i))
		must(os.MkdirAll(sub, 0o755))
		must(os.WriteFile(filepath.Join(sub, "image.iso"), []byte("x"), 0o644))
	}
}

// warm reads a file through the page cache, so a GET measures the server
// and not the disk.
func warm(path string) {
	f, err := os.Open(path)
	must(err)
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Read(buf); err != nil {
			return
		}
	}
}

// dropCache evicts a file just written (and fsynced, so clean) from the
// page cache. Otherwise each PUT leaves up to 4 GiB cached, and the next
// one runs into reclaim when memory is full: a cost that depends on the
// order of the rounds, not on the server being measured.
func dropCache(f *os.File) {
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

func ddTime(src, dst string) (time.Duration, error) {
	os.Remove(dst) // as for the servers: a new file, nothing dirty before the clock starts
	exec.Command("sync").Run()
	start := time.Now()
	out, err := exec.Command("dd", "if="+src, "of="+dst, "bs=4M", "conv=fsync", "status=none").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("dd of=%s: %v %s", dst, err, out)
	}
	d := time.Since(start)
	if f, err := os.Open(dst); err == nil {
		dropCache(f)
		f.Close()
	}
	return d, nil
}

// syncFile fsyncs a file a server (or tool) wrote, checks its size, and
// drops it from the page cache. It returns the CPU time the fsync cost
// this thread: for a server that answered before syncing, the client did
// part of its work.
func syncFile(path string, size int64) (time.Duration, error) {
	w, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("open what was written: %w", err)
	}
	defer w.Close()
	runtime.LockOSThread()
	c0 := threadCPU()
	err = w.Sync()
	c := threadCPU() - c0
	runtime.UnlockOSThread()
	if err != nil {
		return 0, fmt.Errorf("fsync %s: %w", path, err)
	}
	if fi, err := w.Stat(); err != nil || fi.Size() != size {
		return 0, fmt.Errorf("%s holds %d bytes after the upload, want %d (%v)", path, fi.Size(), size, err)
	}
	dropCache(w)
	return c, nil
}

// putTime uploads src with Go's client and fsyncs what the server wrote.
// It returns the wall time and the CPU time of that fsync.
func putTime(s *server, name, src string, size int64) (time.Duration, time.Duration, error) {
	os.Remove(filepath.Join(s.root, name))
	exec.Command("sync").Run()
	f, err := os.Open(src)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	start := time.Now()
	req, _ := http.NewRequest("PUT", s.url+name, f)
	req.ContentLength = size
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("PUT %s: %w", name, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err := wantStatus(resp, "PUT "+name, 201, 204); err != nil {
		return 0, 0, err
	}
	// Durable for everyone: fsync what the server wrote.
	c, err := syncFile(filepath.Join(s.root, name), size)
	return time.Since(start), c, err
}

// curlPutTime uploads src with curl (over TLS when the server is) and
// fsyncs what the server wrote, like putTime.
func curlPutTime(s *server, name, src string, size int64) (time.Duration, time.Duration, error) {
	os.Remove(filepath.Join(s.root, name))
	exec.Command("sync").Run()
	start := time.Now()
	// No Expect: 100-continue, whose wait would depend on the server.
	code, n, err := curl(s, "-T", src, "-H", "Expect:", "-w", "%{http_code} %{size_upload}", s.url+name)
	if err != nil {
		return 0, 0, err
	}
	if (code != 201 && code != 204) || n != size {
		return 0, 0, fmt.Errorf("curl PUT %s: status %d, %d bytes sent of %d", name, code, n, size)
	}
	c, err := syncFile(filepath.Join(s.root, name), size)
	return time.Since(start), c, err
}

// curl runs curl against s (trusting the bench's certificate, HTTP/1.1)
// with a -w format printing the status and a byte count, and parses them.
func curl(s *server, args ...string) (code int, n int64, err error) {
	base := []string{"-sS", "--http1.1", "-o", "/dev/null"}
	if certFile != "" {
		base = append(base, "--cacert", certFile)
	}
	out, err := exec.Command("curl", append(base, args...)...).Output()
	if err != nil {
		var msg []byte
		if ee, ok := err.(*exec.ExitError); ok {
			msg = bytes.TrimSpace(ee.Stderr)
		}
		return 0, 0, fmt.Errorf("curl %s: %v %s", args[len(args)-1], err, msg)
	}
	return parseCurl(string(out))
}

// parseCurl reads curl's "-w '%{http_code} %{size_...}'" output.
func parseCurl(out string) (code int, n int64, err error) {
	if _, err := fmt.Sscan(out, &code, &n); err != nil {
		return 0, 0, fmt.Errorf("curl printed %q, not a status and a size: %w", out, err)
	}
	return code, n, nil
}

// wantStatus is nil when resp has one of the codes, else an error naming
// the request and the status.
func wantStatus(resp *http.Response, what string, codes ...int) error {
	for _, c := range codes {
		if resp.StatusCode == c {
			return nil
		}
	}
	return fmt.Errorf("%s: %s, want %v", what, resp.Status, codes)
}

// threadCPU is the calling thread's user and system time.
func threadCPU() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_THREAD, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// getBuf is where GET bodies land. io.Copy to io.Discard reads 8 KiB at a
// time: the client then costs more than the server and decides the result.
var getBuf = make([]byte, 1<<20)

func getTime(s *server, name, rng string, want int64) (time.Duration, error) {
	req, _ := http.NewRequest("GET", s.url+name, nil)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", name, err)
	}
	var n int64
	for {
		m, err := resp.Body.Read(getBuf)
		n += int64(m)
		if err != nil {
			break
		}
	}
	resp.Body.Close()
	code := 200
	if rng != "" {
		code = 206
	}
	if err := wantStatus(resp, "GET "+name+" "+rng, code); err != nil {
		return 0, err
	}
	if n != want {
		return 0, fmt.Errorf("GET %s %s: %d bytes, want %d", name, rng, n, want)
	}
	return time.Since(start), nil
}

// curlTime is a GET by curl, a client with other habits than Go's (16 KiB
// reads): the servers do not rank the same under both.
func curlTime(s *server, name, rng string, want int64) (time.Duration, error) {
	args := []string{"-w", "%{http_code} %{size_download}"}
	wantCode := 200
	if rng != "" {
		args = append(args, "-r", strings.TrimPrefix(rng, "bytes="))
		wantCode = 206
	}
	start := time.Now()
	code, n, err := curl(s, append(args, s.url+name)...)
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	if code != wantCode || n != want {
		return 0, fmt.Errorf("curl GET %s %s: status %d, %d bytes, want %d and %d", name, rng, code, n, wantCode, want)
	}
	return d, nil
}

const (
	namedProps = `<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getcontentlength/><getlastmodified/><resourcetype/></prop></propfind>`
	allProp    = `<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>`
)

// propfindTime lists dir at Depth 1 with body and checks that the answer
// is a 207 naming at least want entries that start with prefix.
func propfindTime(s *server, dir, body, prefix string, want int) (time.Duration, error) {
	req, _ := http.NewRequest("PROPFIND", s.url+dir, strings.NewReader(body))
	req.Header.Set("Depth", "1")
	req.Header.Set("Content-Type", "application/xml")
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("PROPFIND %s: %w", dir, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("PROPFIND %s: %w", dir, err)
	}
	if err := wantStatus(resp, "PROPFIND "+dir, 207); err != nil {
		return 0, err
	}
	if n := bytes.Count(b, []byte(">"+prefix)) + bytes.Count(b, []byte("/"+prefix)); n < want {
		return 0, fmt.Errorf("PROPFIND %s: %d entries named %s*, want %d", dir, n, prefix, want)
	}
	return d, nil
}
