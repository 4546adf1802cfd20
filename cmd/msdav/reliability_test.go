package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/msdav/msdav/conf"
	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/gadget/gadgettest"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// msdavBinary builds the real binary once, for tests that kill it.
func msdavBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "msdav-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "msdav")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v %s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

type proc struct {
	cmd  *exec.Cmd
	base string
}

func startProc(t *testing.T, cfgBody string, flags ...string) *proc {
	t.Helper()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	cfg := filepath.Join(t.TempDir(), "msdav.toml")
	os.WriteFile(cfg, []byte("[server]\nlisten = \""+addr+"\"\n"+cfgBody), 0o644)
	cmd := exec.Command(msdavBinary(t), append([]string{"serve", "-config", cfg}, flags...)...)
	logf, _ := os.Create(filepath.Join(t.TempDir(), "msdav.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, base: "http://" + addr}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 200; i++ {
		if r, err := http.Get(p.base + "/healthz"); err == nil {
			r.Body.Close()
			return p
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatal("msdav did not start")
	return nil
}

func (p *proc) kill9() { p.cmd.Process.Signal(syscall.SIGKILL); p.cmd.Wait() }

func needRootT(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: " + why)
	}
}

func mountT(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		t.Fatalf("mount %v: %v %s", args, err, out)
	}
	dir := args[len(args)-1]
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
}

// kill -9 in the middle of an upload, with the remount guard on a real
// ext4 store: after a restart nothing partial is visible, the temp is gone
// and the store is back to ro.
func TestCrashDuringUpload(t *testing.T) {
	needRootT(t, "loop-mounts an ext4 store")
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("needs mkfs.ext4")
	}
	img := filepath.Join(t.TempDir(), "store.ext4")
	exec.Command("truncate", "-s", "128M", img).Run()
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs: %v %s", err, out)
	}
	store := filepath.Join(t.TempDir(), "store")
	os.Mkdir(store, 0o755)
	mountT(t, "-o", "loop", img, store)
	os.WriteFile(filepath.Join(store, "keep.iso"), []byte("complete before the crash"), 0o644)
	cfg := "[storage]\nroot = \"" + store + "\"\nremount = true\nremount_grace = \"100ms\"\n[gadget]\nmode = \"disabled\"\n"
	p := startProc(t, cfg)
	pr, pw := io.Pipe()
	go func() {
		req, _ := http.NewRequest("PUT", p.base+"/dav/partial.iso", pr)
		req.ContentLength = 50 << 20
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	pw.Write(make([]byte, 8<<20))
	time.Sleep(300 * time.Millisecond)
	if ro, _ := fs.IsReadOnly(store); ro {
		t.Fatal("store ro during an upload")
	}
	p.kill9()
	pw.CloseWithError(io.ErrClosedPipe)
	temps, _ := filepath.Glob(filepath.Join(store, ".msdav-upload-*"))
	if len(temps) != 1 {
		t.Fatalf("expected the crashed upload's temp on disk before restart, found %v", temps)
	}
	p = startProc(t, cfg)
	resp, err := http.Get(p.base + "/api/images")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(b), "partial") || !strings.Contains(string(b), "keep.iso") {
		t.Errorf("catalog after the crash: %s", b)
	}
	if temps, _ := filepath.Glob(filepath.Join(store, ".msdav-*")); len(temps) != 0 {
		t.Errorf("temps survived the restart: %v", temps)
	}
	if ro, _ := fs.IsReadOnly(store); !ro {
		t.Error("store rw after the restart")
	}
	if got, _ := os.ReadFile(filepath.Join(store, "keep.iso")); string(got) != "complete before the crash" {
		t.Errorf("a complete image changed: %q", got)
	}
	// SIGTERM in the middle of an upload: it finishes, then the store is ro.
	pr, pw = io.Pipe()
	status := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("PUT", p.base+"/dav/late.iso", pr)
		req.ContentLength = 2 << 20
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			status <- -1
			return
		}
		resp.Body.Close()
		status <- resp.StatusCode
	}()
	pw.Write(make([]byte, 1<<20))
	time.Sleep(200 * time.Millisecond)
	p.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond)
	pw.Write(make([]byte, 1<<20))
	pw.Close()
	if code := <-status; code != 201 {
		t.Errorf("upload across SIGTERM: %d", code)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("msdav exit after SIGTERM: %v", err)
	}
	if ro, _ := fs.IsReadOnly(store); !ro {
		t.Error("store rw after SIGTERM")
	}
	if fi, err := os.Stat(filepath.Join(store, "late.iso")); err != nil || fi.Size() != 2<<20 {
		t.Errorf("upload across SIGTERM: %v", err)
	}
}

// kill -9 in the middle of a MOVE between parts (a copy): the source is
// whole, the destination never appears half-written.
func TestCrashDuringMoveAcrossParts(t *testing.T) {
	needRootT(t, "mounts tmpfs parts")
	store := filepath.Join(t.TempDir(), "store")
	os.Mkdir(store, 0o755)
	mountT(t, "-t", "tmpfs", "-o", "size=1200m", "tmpfs", store)
	os.Mkdir(filepath.Join(store, "usb"), 0o755)
	mountT(t, "-t", "tmpfs", "-o", "size=1200m", "tmpfs", filepath.Join(store, "usb"))
	data := make([]byte, 512<<20)
	rand.New(rand.NewSource(1)).Read(data[:1<<20])
	for i := 1; i < 512; i++ {
		copy(data[i<<20:], data[:1<<20])
	}
	os.WriteFile(filepath.Join(store, "big.iso"), data, 0o644)
	want := sha256.Sum256(data)
	data = nil
	p := startProc(t, "[storage]\nroot = \""+store+"\"\n[gadget]\nmode = \"disabled\"\n")
	go func() {
		req, _ := http.NewRequest("MOVE", p.base+"/dav/big.iso", nil)
		req.Header.Set("Destination", p.base+"/dav/usb/big.iso")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	// Kill once the copy has started.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m, _ := filepath.Glob(filepath.Join(store, "usb", ".msdav-move-*")); len(m) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Skip("the move finished before it could be interrupted")
		}
		time.Sleep(time.Millisecond)
	}
	p.kill9()
	if _, err := os.Stat(filepath.Join(store, "usb", "big.iso")); err == nil {
		t.Fatal("the destination appeared before the copy was complete")
	}
	got, err := os.ReadFile(filepath.Join(store, "big.iso"))
	if err != nil || sha256.Sum256(got) != want {
		t.Fatalf("the source was damaged by the interrupted move: %v", err)
	}
	p = startProc(t, "[storage]\nroot = \""+store+"\"\n[gadget]\nmode = \"disabled\"\n")
	resp, _ := http.Get(p.base + "/api/images")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Count(string(b), "big.iso") != 1 || strings.Contains(string(b), "msdav-move") {
		t.Errorf("catalog after the interrupted move: %s", b)
	}
}

// 16 clients upload, download and read the API at once for a while under
// -race; every byte is intact and no goroutine is left behind.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	cfg := testConfig(t)
	// A fake configfs (plain files) so attach/eject loops run through the
	// whole API and gadget code; the kernel side is make vmtest's.
	cfg.Gadget = gadgettest.Bound(t, 2)
	cfg.Gadget.Mode = conf.ModeConfigfs
	os.WriteFile(filepath.Join(cfg.Storage.Root, "boot.iso"), make([]byte, 1<<20), 0o644)
	before := runtime.NumGoroutine()
	base, stop := startServe(t, cfg)
	// 15 s in CI; MSDAV_LOAD_SECONDS=60 for the full minute.
	secs := 15
	if v, err := strconv.Atoi(os.Getenv("MSDAV_LOAD_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ops, bytesMoved int64
	errs := make(chan error, 64)
	tr := &http.Transport{MaxIdleConnsPerHost: 32}
	c := &http.Client{Transport: tr}
	var attaches int64
	for d := 0; d < 2; d++ {
		wg.Add(1)
		go func(d int) {
			defer wg.Done()
			for ctx.Err() == nil {
				for _, rq := range []struct{ method, body string }{{"PUT", `{"image":"boot.iso","cdrom":true}`}, {"DELETE", ""}} {
					req, _ := http.NewRequest(rq.method, fmt.Sprintf("%s/api/drives/%d", base, d), strings.NewReader(rq.body))
					resp, err := c.Do(req)
					if err != nil {
						errs <- err
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						errs <- fmt.Errorf("%s drive %d: %d", rq.method, d, resp.StatusCode)
						return
					}
				}
				mu.Lock()
				attaches++
				mu.Unlock()
			}
		}(d)
	}
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(w)))
			for i := 0; ctx.Err() == nil; i++ {
				body := make([]byte, 64<<10+r.Intn(1<<20))
				r.Read(body)
				sum := sha256.Sum256(body)
				name := fmt.Sprintf("/dav/w%d-%d.img", w, i%4)
				req, _ := http.NewRequest("PUT", base+name, bytes.NewReader(body))
				resp, err := c.Do(req)
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				resp, err = c.Get(base + name)
				if err != nil {
					errs <- err
					return
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if sha256.Sum256(got) != sum {
					errs <- fmt.Errorf("%s: read back %d bytes that differ", name, len(got))
					return
				}
				resp, err = c.Get(base + "/api/images")
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				ops += 3
				bytesMoved += 2 * int64(len(body))
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	tr.CloseIdleConnections()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("16 clients: %d requests, %d MiB moved, all intact; %d attach/eject cycles on 2 drives", ops, bytesMoved>>20, attaches)
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:n])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A client that dribbles its headers is cut off; one with absurd headers
// is refused; neither stops others from being served.
func TestSlowAndAbsurdClients(t *testing.T) {
	cfg := testConfig(t)
	base, _ := startServe(t, cfg)
	addr := strings.TrimPrefix(base, "http://")
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprint(slow, "GET /dav/ HTTP/1.1\r\nHost: x\r\n")
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := fmt.Fprint(slow, "X-Slow: 1\r\n"); err != nil {
				done <- err
				return
			}
			time.Sleep(time.Second)
		}
	}()
	// Meanwhile a normal client is served.
	if r, err := http.Get(base + "/healthz"); err != nil || r.StatusCode != 200 {
		t.Fatalf("healthz during slowloris: %v", err)
	}
	huge, _ := net.Dial("tcp", addr)
	fmt.Fprintf(huge, "GET /dav/ HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 2<<20))
	line, _ := bufio.NewReader(huge).ReadString('\n')
	huge.Close()
	if !strings.Contains(line, "431") {
		t.Errorf("2 MiB header: %q, want 431", line)
	}
	for _, cl := range []string{"-1", "99999999999999999999", "abc"} {
		c, _ := net.Dial("tcp", addr)
		fmt.Fprintf(c, "PUT /dav/x.iso HTTP/1.1\r\nHost: x\r\nContent-Length: %s\r\n\r\n", cl)
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if !strings.Contains(line, "400") {
			t.Errorf("Content-Length %s: %q, want 400", cl, line)
		}
	}
	select {
	case <-done:
		t.Log("slow client cut off")
	case <-time.After(20 * time.Second):
		t.Error("a client dribbling headers for 20 s was not cut off")
	}
	if _, err := os.Stat(filepath.Join(cfg.Storage.Root, "x.iso")); err == nil {
		t.Error("a bad Content-Length created a file")
	}
}

// Downloads leave through sendfile(2) across the whole handler chain (auth,
// metrics, routing): strace watches the real binary serve a GET.
// The big byte paths stay in the kernel: GET (whole and ranged) is
// sendfile, COPY is copy_file_range, and what they deliver is the file.
func TestZeroCopyPaths(t *testing.T) {
	needRootT(t, "strace attaches to the server")
	if _, err := exec.LookPath("strace"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("strace is not installed (.ci/run installs it)")
		}
		t.Skip("needs strace")
	}
	root := t.TempDir()
	data := make([]byte, 8<<20)
	rand.New(rand.NewSource(7)).Read(data)
	os.WriteFile(filepath.Join(root, "a.iso"), data, 0o644)
	p := startProc(t, "[storage]\nroot = \""+root+"\"\n[gadget]\nmode = \"disabled\"\n")
	trace := func(calls string, do func()) string {
		out := filepath.Join(t.TempDir(), "strace.txt")
		st := exec.Command("strace", "-f", "-e", "trace="+calls, "-o", out, "-p", strconv.Itoa(p.cmd.Process.Pid))
		if err := st.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond) // attach
		do()
		time.Sleep(200 * time.Millisecond)
		st.Process.Signal(syscall.SIGINT)
		st.Wait()
		b, _ := os.ReadFile(out)
		return string(b)
	}
	get := func(rng string, want []byte) {
		req, _ := http.NewRequest("GET", p.base+"/dav/a.iso", nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Equal(got, want) {
			t.Errorf("GET %q: %d bytes, not the file's", rng, len(got))
		}
	}
	for _, tc := range []struct {
		rng  string
		want []byte
	}{{"", data}, {"bytes=1048576-5242879", data[1<<20 : 5<<20]}} {
		b := trace("sendfile", func() { get(tc.rng, tc.want) })
		var sent int
		for _, m := range regexp.MustCompile(`sendfile\(.*\)\s+= (\d+)`).FindAllStringSubmatch(b, -1) {
			n, _ := strconv.Atoi(m[1])
			if n > 2<<20 {
				t.Errorf("GET %q: one sendfile call of %d bytes, more than the 2 MiB chunk", tc.rng, n)
			}
			sent += n
		}
		// net/http writes the first 512 bytes itself, with the header.
		if sent < len(tc.want)-512 || sent > len(tc.want) {
			t.Errorf("GET %q: sendfile sent %d of %d bytes:\n%s", tc.rng, sent, len(tc.want), b)
		}
	}
	b := trace("copy_file_range,read", func() {
		req, _ := http.NewRequest("COPY", p.base+"/dav/a.iso", nil)
		req.Header.Set("Destination", p.base+"/dav/b.iso")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("COPY: %s", resp.Status)
		}
	})
	if !strings.Contains(b, "copy_file_range(") {
		t.Errorf("COPY made no copy_file_range call:\n%s", b)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "b.iso")); !bytes.Equal(got, data) {
		t.Errorf("COPY: b.iso is %d bytes, not a.iso's", len(got))
	}
}
