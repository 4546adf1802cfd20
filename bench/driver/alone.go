package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// smallWrites puts 1,000 small files into a msdav whose store is a real
// tmpfs with the remount guard on, and reads the cycles from /metrics.
func smallWrites() (cycles string, took string) {
	if os.Geteuid() != 0 {
		return "not measured (needs root to mount a tmpfs)", "-"
	}
	dir := filepath.Join(*work, "remount-store")
	os.MkdirAll(dir, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", dir).CombinedOutput(); err != nil {
		return fmt.Sprintf("not measured (mount: %v %s)", err, out), "-"
	}
	defer exec.Command("umount", "-l", dir).Run()
	s := startMsdav("msdav-remount", dir, true)
	defer func() { s.cmd.Process.Kill(); s.cmd.Wait() }()
	data := bytes.Repeat([]byte("x"), 4096)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 250; i++ {
				req, _ := http.NewRequest("PUT", fmt.Sprintf("%sf-%d-%d.txt", s.url, w, i), bytes.NewReader(data))
				resp, err := client.Do(req)
				must(err)
				resp.Body.Close()
			}
		}(w)
	}
	wg.Wait()
	took = time.Since(start).Round(time.Millisecond).String()
	resp, err := client.Get(strings.TrimSuffix(s.url, "/dav/") + "/metrics")
	must(err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`(?m)^msdav_remount_cycles_total (\d+)`).FindSubmatch(b)
	if m == nil {
		return "not found in /metrics", took
	}
	return string(m[1]), took
}

// peakRSS runs four concurrent uploads into a fresh msdav and reads VmHWM.
func peakRSS(size int64) string {
	src := filepath.Join(*work, "rss-src.bin")
	makeSource(src, size)
	defer os.Remove(src)
	root := filepath.Join(*work, "msdav-rss")
	os.RemoveAll(root)
	defer os.RemoveAll(root)
	s := startMsdav("msdav-rss", root, false)
	defer func() { s.cmd.Process.Kill(); s.cmd.Wait() }()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			f, err := os.Open(src)
			must(err)
			defer f.Close()
			req, _ := http.NewRequestWithContext(context.Background(), "PUT", fmt.Sprintf("%sup-%d.bin", s.url, i), f)
			req.ContentLength = size
			resp, err := client.Do(req)
			must(err)
			resp.Body.Close()
		}(i)
	}
	wg.Wait()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	must(err)
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		return "unknown"
	}
	kb, _ := strconv.Atoi(string(m[1]))
	return fmt.Sprintf("%.1f MiB", float64(kb)/1024)
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
		s := startMsdav("msdav-profile-"+op, root, false, "-cpuprofile", out)
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
			putTime(s, "big.bin", src, size)
		}
	})
	run("get", func(s *server) {
		putTime(s, "big.bin", src, size)
		warm(filepath.Join(s.root, "big.bin"))
	}, func(s *server) {
		for i := 0; i < 5; i++ {
			getTime(s, "big.bin", "", size)
		}
		rngs, n := ranges(size)
		for i := 0; i < 4; i++ {
			for _, rng := range rngs {
				getTime(s, "big.bin", rng, n)
			}
		}
	})
	run("propfind", func(s *server) {
		makeFolder(filepath.Join(s.root, "many"))
	}, func(s *server) {
		for i := 0; i < 50; i++ {
			propfindTime(s, "many/")
		}
	})
}
