package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// smallWrites puts 1,000 small files into a msdav whose store is a real
// tmpfs with the remount guard on, and reads the cycles from /metrics. Every
// PUT must answer 201 or 204: a failed one would make the run look fast.
func smallWrites() (string, error) {
	if os.Geteuid() != 0 {
		return "not measured (needs root to mount a tmpfs)", nil
	}
	dir := filepath.Join(*work, "remount-store")
	os.MkdirAll(dir, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", dir).CombinedOutput(); err != nil {
		return "", fmt.Errorf("mount a tmpfs on %s: %v %s", dir, err, out)
	}
	defer exec.Command("umount", "-l", dir).Run()
	s := startMsdav("msdav-remount", dir, msdavOpts{remount: true})
	defer s.stop()
	data := bytes.Repeat([]byte("x"), 4096)
	start := time.Now()
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		go func(w int) {
			for i := 0; i < 250; i++ {
				name := fmt.Sprintf("f-%d-%d.txt", w, i)
				req, _ := http.NewRequest("PUT", s.url+name, bytes.NewReader(data))
				resp, err := s.client.Do(req)
				if err != nil {
					errs <- fmt.Errorf("PUT %s: %w", name, err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err := wantStatus(resp, "PUT "+name, 201, 204); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}(w)
	}
	for w := 0; w < 4; w++ {
		if err := <-errs; err != nil {
			return "", err
		}
	}
	took := time.Since(start).Round(time.Millisecond)
	resp, err := s.client.Get(s.base + "/metrics")
	if err != nil {
		return "", fmt.Errorf("GET /metrics: %w", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cycles, ok := metric(b, "msdav_remount_cycles_total")
	if !ok {
		return "", fmt.Errorf("msdav_remount_cycles_total not in /metrics (%s)", resp.Status)
	}
	return fmt.Sprintf("%v, %s remount cycle(s)", took, cycles), nil
}

// metric is the value of an unlabelled metric in Prometheus' text format.
func metric(text []byte, name string) (string, bool) {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(text)
	if m == nil {
		return "", false
	}
	return string(m[1]), true
}

// peakRSS runs four concurrent uploads of size into a fresh msdav (over
// TLS if asked) and reads its VmHWM. Each upload must answer 201 and land
// whole, or there is no figure.
func peakRSS(size int64, tls bool) (float64, error) {
	src := filepath.Join(*work, "rss-src.bin")
	makeSource(src, size)
	defer os.Remove(src)
	root := filepath.Join(*work, "msdav-rss")
	os.RemoveAll(root)
	defer os.RemoveAll(root)
	s := startMsdav("msdav-rss", root, msdavOpts{tls: tls})
	defer s.stop()
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func(i int) {
			name := fmt.Sprintf("up-%d.bin", i)
			f, err := os.Open(src)
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			req, _ := http.NewRequest("PUT", s.url+name, f)
			req.ContentLength = size
			resp, err := s.client.Do(req)
			if err != nil {
				errs <- fmt.Errorf("PUT %s: %w", name, err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err := wantStatus(resp, "PUT "+name, 201, 204); err != nil {
				errs <- err
				return
			}
			if fi, err := os.Stat(filepath.Join(root, name)); err != nil || fi.Size() != size {
				errs <- fmt.Errorf("PUT %s answered %s but the file is not %d bytes (%v)", name, resp.Status, size, err)
				return
			}
			errs <- nil
		}(i)
	}
	var first error
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return 0, first
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("read msdav's peak RSS: %w", err)
	}
	kb, ok := vmHWM(b)
	if !ok {
		return 0, fmt.Errorf("no VmHWM in /proc/%d/status", s.cmd.Process.Pid)
	}
	return float64(kb) / 1024, nil
}

// vmHWM is the peak resident set in kB from a /proc/PID/status.
func vmHWM(status []byte) (int64, bool) {
	m := regexp.MustCompile(`(?m)^VmHWM:\s+(\d+) kB`).FindSubmatch(status)
	if m == nil {
		return 0, false
	}
	kb, err := strconv.ParseInt(string(m[1]), 10, 64)
	return kb, err == nil
}

// profiles runs msdav alone under its -cpuprofile flag, one process per
// operation, so each profile shows one kind of request.
func profiles(dir string) {
	must(os.MkdirAll(dir, 0o755))
	size := int64(1 << 30)
	if *quick {
		size = 128 << 20
	}
	src := filepath.Join(*work, "profile-src.bin")
	makeSource(src, size)
	defer os.Remove(src)
	run := func(op string, setup func(s *server), load func(s *server)) {
		root := filepath.Join(*work, "msdav-profile-"+op)
		out := filepath.Join(dir, op+".pprof")
		s := startMsdav("msdav-profile-"+op, root, msdavOpts{tls: strings.HasPrefix(op, "tls-"), flags: []string{"-cpuprofile", out}})
		setup(s)
		load(s)
		must(s.cmd.Process.Signal(syscall.SIGTERM))
		s.cmd.Wait()
		os.RemoveAll(root)
		fmt.Fprintf(os.Stderr, "bench: wrote %s\n", out)
	}
	none := func(*server) {}
	run("put", none, func(s *server) {
		for i := 0; i < 3; i++ {
			check3(putTime(s, "big.bin", src, size))
		}
	})
	run("get", func(s *server) {
		check3(putTime(s, "big.bin", src, size))
		warm(filepath.Join(s.root, "big.bin"))
	}, func(s *server) {
		for i := 0; i < 5; i++ {
			check(getTime(s, "big.bin", "", size))
		}
		rngs, n := ranges(size)
		for i := 0; i < 4; i++ {
			for _, rng := range rngs {
				check(getTime(s, "big.bin", rng, n))
			}
		}
	})
	run("propfind", func(s *server) {
		makeFolder(filepath.Join(s.root, "many"))
	}, func(s *server) {
		for i := 0; i < 50; i++ {
			check(propfindTime(s, "many/", namedProps, "image-", 10000))
		}
	})
	run("propfind-folders", func(s *server) {
		makeFolders(filepath.Join(s.root, "folders"), 2000)
	}, func(s *server) {
		for i := 0; i < 50; i++ {
			check(propfindTime(s, "folders/", namedProps, "distro-", 2000))
		}
	})
	// TLS as curl does it, the first row: where msdav's time goes
	// against nginx's.
	run("tls-put", none, func(s *server) {
		for i := 0; i < 3; i++ {
			check3(curlPutTime(s, "big.bin", src, size))
		}
	})
	run("tls-get", func(s *server) {
		check3(putTime(s, "big.bin", src, size))
		warm(filepath.Join(s.root, "big.bin"))
	}, func(s *server) {
		for i := 0; i < 5; i++ {
			check(curlTime(s, "big.bin", "", size))
		}
	})
}

// check and check3 end the run on a failed request whose time is not a
// sample (profiles, setup).
func check(_ time.Duration, err error) { must(err) }

func check3(_, _ time.Duration, err error) { must(err) }
