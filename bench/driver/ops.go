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

func ddTime(src, dst string) time.Duration {
	os.Remove(dst) // as for the servers: a new file, nothing dirty before the clock starts
	exec.Command("sync").Run()
	start := time.Now()
	out, err := exec.Command("dd", "if="+src, "of="+dst, "bs=4M", "conv=fsync", "status=none").CombinedOutput()
	if err != nil {
		must(fmt.Errorf("dd: %v %s", err, out))
	}
	d := time.Since(start)
	if f, err := os.Open(dst); err == nil {
		dropCache(f)
		f.Close()
	}
	return d
}

// putTime uploads src and fsyncs what the server wrote. It returns the
// wall time and the CPU time of that fsync: for a server that answered
// before syncing, the client did part of its work.
func putTime(s *server, name, src string, size int64) (time.Duration, time.Duration) {
	os.Remove(filepath.Join(s.root, name))
	exec.Command("sync").Run()
	f, err := os.Open(src)
	must(err)
	defer f.Close()
	start := time.Now()
	req, _ := http.NewRequest("PUT", s.url+name, f)
	req.ContentLength = size
	resp, err := client.Do(req)
	must(err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		must(fmt.Errorf("%s PUT: %s", s.name, resp.Status))
	}
	// Durable for everyone: fsync what the server wrote.
	w, err := os.OpenFile(filepath.Join(s.root, name), os.O_RDWR, 0)
	must(err)
	runtime.LockOSThread()
	c0 := threadCPU()
	must(w.Sync())
	d := time.Since(start)
	fsyncCPU := threadCPU() - c0
	runtime.UnlockOSThread()
	dropCache(w)
	w.Close()
	return d, fsyncCPU
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

func getTime(s *server, name, rng string, want int64) time.Duration {
	req, _ := http.NewRequest("GET", s.url+name, nil)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	start := time.Now()
	resp, err := client.Do(req)
	must(err)
	var n int64
	for {
		m, err := resp.Body.Read(getBuf)
		n += int64(m)
		if err != nil {
			break
		}
	}
	resp.Body.Close()
	if n != want {
		must(fmt.Errorf("%s GET %s: %d bytes, want %d (%s)", s.name, rng, n, want, resp.Status))
	}
	return time.Since(start)
}

// curlTime is a GET by curl, a client with other habits than Go's (16 KiB
// reads): the servers do not rank the same under both.
func curlTime(s *server, name, rng string, want int64) time.Duration {
	args := []string{"-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}"}
	if rng != "" {
		args = append(args, "-r", strings.TrimPrefix(rng, "bytes="))
	}
	start := time.Now()
	out, err := exec.Command("curl", append(args, s.url+name)...).Output()
	d := time.Since(start)
	must(err)
	var code int
	var n int64
	fmt.Sscan(string(out), &code, &n)
	if n != want {
		must(fmt.Errorf("%s curl GET %s: %d bytes, want %d (status %d)", s.name, rng, n, want, code))
	}
	return d
}

func propfindTime(s *server, dir string) time.Duration {
	body := `<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getcontentlength/><getlastmodified/><resourcetype/></prop></propfind>`
	req, _ := http.NewRequest("PROPFIND", s.url+dir, strings.NewReader(body))
	req.Header.Set("Depth", "1")
	req.Header.Set("Content-Type", "application/xml")
	start := time.Now()
	resp, err := client.Do(req)
	must(err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if resp.StatusCode != 207 || bytes.Count(b, []byte("image-")) < 10000 {
		must(fmt.Errorf("%s PROPFIND: %s, %d entries", s.name, resp.Status, bytes.Count(b, []byte("image-"))))
	}
	return d
}
