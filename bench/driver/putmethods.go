package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// putMethod is one way to time a synced PUT: the bench's (a new name each
// time, the old file deleted and the disk synced first, the bench's client
// with 256 KiB buffers) and the variants an A/B run may differ in.
type putMethod struct {
	name string
	put  func(s *server, src string, size int64) (time.Duration, error)
}

var putMethods = []putMethod{
	{"bench: delete + sync first, 256 KiB client buffers", func(s *server, src string, size int64) (time.Duration, error) {
		d, _, err := putTime(s, "big.bin", src, size)
		return d, err
	}},
	{"overwrite one name, 256 KiB client buffers", func(s *server, src string, size int64) (time.Duration, error) {
		return putOver(s, client, "ab.bin", src, size)
	}},
	{"overwrite one name, Go's default client (A/B)", func(s *server, src string, size int64) (time.Duration, error) {
		return putOver(s, http.DefaultClient, "ab.bin", src, size)
	}},
	{"delete + sync first, Go's default client", func(s *server, src string, size int64) (time.Duration, error) {
		os.Remove(filepath.Join(s.root, "big.bin"))
		syncAll()
		return putOver(s, http.DefaultClient, "big.bin", src, size)
	}},
}

// putOver PUTs src to name with c, replacing what is there, then fsyncs
// what the server wrote, as putTime does.
func putOver(s *server, c *http.Client, name, src string, size int64) (time.Duration, error) {
	f, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	start := time.Now()
	req, _ := http.NewRequest("PUT", s.url+name, f)
	req.ContentLength = size
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("PUT %s: %w", name, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err := wantStatus(resp, "PUT "+name, 201, 204); err != nil {
		return 0, err
	}
	_, err = syncFile(filepath.Join(s.root, name), size)
	return time.Since(start), err
}

// comparePutMethods times every method on msdav and nginx, interleaved,
// and returns a Markdown table: medians, msdav/nginx as the median of the
// per-round ratios, and msdav's CPU.
func comparePutMethods(ms, ng *server, size int64, rounds int) string {
	src := filepath.Join(*work, "ab-src.bin")
	makeSource(src, size)
	defer os.Remove(src)
	// The overwrite methods need something to overwrite.
	putOver(ms, client, "ab.bin", src, size)
	putOver(ng, client, "ab.bin", src, size)
	type cell struct{ wall, cpu []time.Duration }
	got := map[string]map[string]*cell{}
	var ratios = map[string][]float64{}
	for r := 0; r < rounds; r++ {
		for _, k := range order(len(putMethods), r) {
			m := putMethods[k]
			if got[m.name] == nil {
				got[m.name] = map[string]*cell{"msdav": {}, "nginx": {}}
			}
			var t [2]time.Duration
			for i, s := range []*server{ms, ng} {
				if r%2 == 1 {
					s = []*server{ng, ms}[i]
				}
				c0 := cpuTime(s)
				d, err := m.put(s, src, size)
				if err != nil {
					return "failed: " + err.Error()
				}
				c := got[m.name][s.name]
				c.wall = append(c.wall, d)
				c.cpu = append(c.cpu, cpuTime(s)-c0)
				if s == ms {
					t[0] = d
				} else {
					t[1] = d
				}
			}
			ratios[m.name] = append(ratios[m.name], t[0].Seconds()/t[1].Seconds())
		}
	}
	var b strings.Builder
	b.WriteString("| method | msdav | nginx | msdav/nginx | per round | CPU msdav | CPU nginx |\n|---|---|---|---|---|---|---|\n")
	for _, m := range putMethods {
		rs := ratios[m.name]
		sort.Float64s(rs)
		c := got[m.name]
		fmt.Fprintf(&b, "| %s | %v | %v | **%.2f** | %.2f–%.2f | %v | %v |\n", m.name,
			medianDur(c["msdav"].wall).Round(time.Millisecond), medianDur(c["nginx"].wall).Round(time.Millisecond),
			rs[len(rs)/2], rs[0], rs[len(rs)-1],
			medianDur(c["msdav"].cpu).Round(10*time.Millisecond), medianDur(c["nginx"].cpu).Round(10*time.Millisecond))
	}
	return b.String()
}

func medianDur(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// syncAll is what putTime does before its PUT.
func syncAll() { exec.Command("sync").Run() }
