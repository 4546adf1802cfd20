package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"time"
)

// The fleet row: a library of fleetImages images in fleetFolders folders,
// one box with its console open, and the calls its msdav makes on the
// library while nothing changes.
const (
	fleetImages  = 1000
	fleetFolders = 20
	fleetBoxes   = 100
)

// fleetCalls is what strace saw msdav call on the library in one window.
type fleetCalls struct {
	window    time.Duration
	firstLook *fleetCalls // the look on subscribing, which reads everything
	listings  int         // folder reads to the end (a getdents64 that returns 0)
	getdents  int
	opens     int // openat
	stats     int // newfstatat, statx, fstat, lstat, stat
	statfs    int
}

func (c fleetCalls) perMin(n int) float64 { return float64(n) / c.window.Minutes() }

// fleetRow is the report's line for the fleet's cost.
func (b *bench) fleetRow() {
	c, err := fleetCost(*msdav, int(size(60, 20)))
	if err != nil {
		b.errs = append(b.errs, "fleet cost: "+err.Error())
		b.alone = append(b.alone, "A fleet's cost on a shared library: failed.")
		return
	}
	b.alone = append(b.alone, c.line())
}

func (c fleetCalls) line() string {
	reads, stats := c.perMin(c.listings), c.perMin(c.stats)
	var full string
	if f := c.firstLook; f != nil {
		reads += float64(f.listings) / fleetFullEvery.Minutes()
		stats += float64(f.stats) / fleetFullEvery.Minutes()
		full = fmt.Sprintf(" (the look on subscribing: %d folder reads, %d stats, %d opens; msdav looks everything over again every %v, counted spread over that time)",
			f.listings, f.stats, f.opens, fleetFullEvery)
	}
	verdict := "met"
	if reads*fleetBoxes/60 > fleetTargetPerSec {
		verdict = "**missed**"
	}
	return fmt.Sprintf("A fleet's cost: one box following /api/events on a quiet library of %d images in %d folders, strace -f on msdav for %v: "+
		"%.1f folder reads/min, %.0f stats/min, %.0f opens/min, %.0f statfs/min%s; "+
		"%d boxes on paper: %.1f folder reads/s, %.0f stats/s (target: at most %d folder reads/s, %s).",
		fleetImages, fleetFolders, c.window, reads, stats, c.perMin(c.opens), c.perMin(c.statfs), full,
		fleetBoxes, reads*fleetBoxes/60, stats*fleetBoxes/60, fleetTargetPerSec, verdict)
}

// fleetFullEvery is fs's fullEvery: how often the watcher reads every
// folder even if none changed.
const fleetFullEvery = 30 * time.Minute

// fleetTargetPerSec is "a few scans per second" for the whole fleet.
const fleetTargetPerSec = 3

// fleetCost starts msdav (the binary bin) on a fresh library, follows its
// event stream as the console does, waits out the first look and counts
// msdav's calls on files for seconds.
func fleetCost(bin string, seconds int) (fleetCalls, error) {
	if _, err := exec.LookPath("strace"); err != nil {
		return fleetCalls{}, fmt.Errorf("strace is not installed (apt-get install strace)")
	}
	root := filepath.Join(*work, "msdav-fleet")
	os.RemoveAll(root)
	defer os.RemoveAll(root)
	old := time.Now().Add(-time.Hour) // a library at rest
	for f := 0; f < fleetFolders; f++ {
		dir := filepath.Join(root, fmt.Sprintf("distro-%02d", f))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fleetCalls{}, err
		}
		for i := 0; i < fleetImages/fleetFolders; i++ {
			p := filepath.Join(dir, fmt.Sprintf("image-%03d.img", i))
			if err := os.WriteFile(p, make([]byte, 4096), 0o644); err != nil {
				return fleetCalls{}, err
			}
			os.Chtimes(p, old, old)
		}
		os.Chtimes(dir, old, old)
	}
	saved := *msdav
	*msdav = bin
	s := startMsdav("msdav-fleet", root, msdavOpts{})
	*msdav = saved
	defer s.stop()

	// The first look reads everything; the watcher repeats it every
	// fullEvery (fs), so its cost is counted and spread over that time.
	first, err := straced(s, 15*time.Second, "fleet-first.strace", func() error {
		return follow(s)
	})
	if err != nil {
		return fleetCalls{}, err
	}
	c, err := straced(s, time.Duration(seconds)*time.Second, "fleet.strace", nil)
	c.firstLook = &first
	return c, err
}

// follow opens the event stream as the console does, and keeps it open
// until msdav stops.
func follow(s *server) error {
	resp, err := (&http.Client{}).Get(s.base + "/api/events")
	if err != nil {
		return fmt.Errorf("GET /api/events: %w", err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		return fmt.Errorf("GET /api/events: %s", resp.Status)
	}
	go func() { io.Copy(io.Discard, resp.Body); resp.Body.Close() }()
	return nil
}

// straced counts msdav's calls on files for window, after calling start
// (if any) with strace attached.
func straced(s *server, window time.Duration, name string, start func() error) (fleetCalls, error) {
	out := filepath.Join(*work, name)
	if os.Getenv("MSDAV_FLEET_KEEP") == "" {
		defer os.Remove(out)
	}
	st := exec.Command("strace", "-f", "-qq", "-o", out, "-p", strconv.Itoa(s.cmd.Process.Pid),
		"-e", "trace=openat,getdents64,newfstatat,statx,fstat,lstat,stat,statfs,fstatfs")
	st.Stderr = os.Stderr
	if err := st.Start(); err != nil {
		return fleetCalls{}, fmt.Errorf("strace: %w", err)
	}
	defer func() {
		st.Process.Signal(syscall.SIGINT)
		st.Wait()
	}()
	time.Sleep(500 * time.Millisecond) // strace attaches to every thread
	if start != nil {
		if err := start(); err != nil {
			return fleetCalls{}, err
		}
	}
	time.Sleep(window)
	st.Process.Signal(syscall.SIGINT)
	st.Wait()
	f, err := os.Open(out)
	if err != nil {
		return fleetCalls{}, err
	}
	defer f.Close()
	c, err := countCalls(f)
	c.window = window
	return c, err
}

var straceLine = regexp.MustCompile(`^\d+\s+(\w+)\(.*\)\s+=\s+(-?\d+)`)

// countCalls tallies strace -f output; unfinished/resumed pairs count once,
// by their resumed half, which carries the result.
func countCalls(r io.Reader) (fleetCalls, error) {
	var c fleetCalls
	resumed := regexp.MustCompile(`^\d+\s+<\.\.\. (\w+) resumed>.*=\s+(-?\d+)`)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		m := straceLine.FindStringSubmatch(l)
		if m == nil {
			m = resumed.FindStringSubmatch(l)
		}
		if m == nil {
			continue
		}
		switch m[1] {
		case "getdents64":
			c.getdents++
			if m[2] == "0" {
				c.listings++
			}
		case "openat":
			c.opens++
		case "newfstatat", "statx", "fstat", "lstat", "stat":
			c.stats++
		case "statfs", "fstatfs":
			c.statfs++
		}
	}
	return c, sc.Err()
}
