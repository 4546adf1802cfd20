package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// hostileTargetMiB is issue 31's target for the hostile-load row.
const hostileTargetMiB = 96

// hostileLocks is how many LOCKs the row sends (a variable for tests).
var hostileLocks = 3000

// hostileRSS is msdav's peak RSS (VmHWM) while, at once, four zstd bombs
// (--long=31: a 2 GiB window), 3,000 shared LOCKs with 100 KB owners,
// 1,000 event-stream subscribers and 1,000 half-open connections hit it,
// next to four uploads of size that must still land whole.
func hostileRSS(size int64) (float64, string, error) {
	root := filepath.Join(*work, "msdav-hostile")
	os.RemoveAll(root)
	defer os.RemoveAll(root)
	src := filepath.Join(*work, "hostile-src.bin")
	makeSource(src, size)
	defer os.Remove(src)
	zc := exec.Command("zstd", "-q", "--long=31", "-c")
	zc.Stdin = io.LimitReader(zeroReader{}, 64<<20)
	bomb, err := zc.Output()
	if err != nil {
		return 0, "", fmt.Errorf("zstd --long=31 (apt-get install zstd): %w", err)
	}
	must(os.MkdirAll(filepath.Join(root, "locks"), 0o755))
	must(os.WriteFile(filepath.Join(root, "locks", "shared.iso"), []byte("x"), 0o644))
	s := startMsdav("msdav-hostile", root, msdavOpts{})
	defer s.stop()
	host := strings.TrimPrefix(s.base, "http://")

	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	var lockCodes = map[int]int{}
	fail := func(format string, a ...any) { mu.Lock(); errs = append(errs, fmt.Sprintf(format, a...)); mu.Unlock() }
	var held []net.Conn
	hold := func(c net.Conn) { mu.Lock(); held = append(held, c); mu.Unlock() }
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	// 1,000 half-open connections: a request line and one header, never ended.
	wg.Go(func() {
		for i := 0; i < 1000; i++ {
			c, err := net.Dial("tcp", host)
			if err != nil {
				fail("half-open %d: %v", i, err)
				return
			}
			fmt.Fprintf(c, "PUT /dav/slow-%d.iso HTTP/1.1\r\nHost: %s\r\n", i, host)
			hold(c)
		}
	})
	// 1,000 event-stream subscribers that read nothing after the headers.
	wg.Go(func() {
		for i := 0; i < 1000; i++ {
			c, err := net.Dial("tcp", host)
			if err != nil {
				fail("event stream %d: %v", i, err)
				return
			}
			fmt.Fprintf(c, "GET /api/events HTTP/1.1\r\nHost: %s\r\n\r\n", host)
			if line, _ := bufio.NewReader(c).ReadString('\n'); !strings.Contains(line, "200") {
				fail("event stream %d: %q", i, line)
			}
			hold(c)
		}
	})
	// Four bombs, each refused.
	for i := 0; i < 4; i++ {
		wg.Go(func() {
			req, _ := http.NewRequest("PUT", s.base+fmt.Sprintf("/api/images/upload/bomb-%d.img.zst", i), bytes.NewReader(bomb))
			resp, err := s.client.Do(req)
			if err != nil {
				fail("bomb %d: %v", i, err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 422 {
				fail("bomb %d: %s, want 422", i, resp.Status)
			}
		})
	}
	// 3,000 shared LOCKs with 100 KB owners, four clients.
	owner := strings.Repeat("o", 100<<10)
	body := `<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>` + owner + `</D:owner></D:lockinfo>`
	for w := 0; w < 4; w++ {
		wg.Go(func() {
			for i := w; i < hostileLocks; i += 4 {
				req, _ := http.NewRequest("LOCK", s.url+"locks/shared.iso", strings.NewReader(body))
				req.Header.Set("Timeout", "Second-3600")
				resp, err := s.client.Do(req)
				if err != nil {
					fail("LOCK %d: %v", i, err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				lockCodes[resp.StatusCode]++
				mu.Unlock()
			}
		})
	}
	// Four legitimate uploads that must land whole.
	for i := 0; i < 4; i++ {
		wg.Go(func() {
			name := fmt.Sprintf("up-%d.bin", i)
			f, err := os.Open(src)
			if err != nil {
				fail("%v", err)
				return
			}
			defer f.Close()
			req, _ := http.NewRequest("PUT", s.url+name, f)
			req.ContentLength = size
			resp, err := s.client.Do(req)
			if err != nil {
				fail("PUT %s: %v", name, err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err := wantStatus(resp, "PUT "+name, 201, 204); err != nil {
				fail("%v", err)
			} else if fi, err := os.Stat(filepath.Join(root, name)); err != nil || fi.Size() != size {
				fail("PUT %s answered %s but the file is not %d bytes", name, resp.Status, size)
			}
		})
	}
	wg.Wait()
	time.Sleep(500 * time.Millisecond)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, "", fmt.Errorf("read msdav's peak RSS: %w", err)
	}
	kb, ok := vmHWM(b)
	if !ok {
		return 0, "", fmt.Errorf("no VmHWM in /proc/%d/status", s.cmd.Process.Pid)
	}
	if len(errs) > 0 {
		return float64(kb) / 1024, "", fmt.Errorf("%d failures, first: %s", len(errs), errs[0])
	}
	return float64(kb) / 1024, fmt.Sprintf("LOCK answers %v", lockCodes), nil
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }
