package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const reportingOrder = "/sys/module/page_reporting/parameters/page_reporting_order"

var restoreReporting func()

// pausePageReporting stops a VM guest from handing freed pages back to its
// host for the run. With it on, every file a PUT replaces frees memory
// that the next PUT faults back in from the host, at about 0.3 GiB/s
// here, at random moments: dd of 1 GiB took from 0.25 s to 2.9 s. Real
// hardware has no such thing. Orders above the largest (10) are never
// reported. The old value comes back when the run ends.
func pausePageReporting() string {
	old, err := os.ReadFile(reportingOrder)
	if err != nil {
		return "not present (not a VM with free page reporting)"
	}
	if err := os.WriteFile(reportingOrder, []byte("11"), 0o644); err != nil {
		return fmt.Sprintf("on (could not pause it: %v): expect noisy PUT times", err)
	}
	restoreReporting = func() { os.WriteFile(reportingOrder, old, 0o644) }
	if *quick {
		// Small sizes need no prefault, and CI's machine may be running
		// other things whose memory a 20 GiB touch would push out.
		return fmt.Sprintf("paused for the run (page_reporting_order %s -> 11, restored after); no prefault at quick sizes", strings.TrimSpace(string(old)))
	}
	took, gib := prefault()
	return fmt.Sprintf("paused for the run (page_reporting_order %s -> 11, restored after), and %.1f GiB of free memory faulted in from the host first (%.0f s)",
		strings.TrimSpace(string(old)), gib, took.Seconds())
}

// prefault touches the guest's free memory once, so that pages the host
// took back before the run are its own again. Otherwise the first server to
// write pays for them: the first 4 GiB PUT of a run took 12.6 s, the next
// ones 2.7-3.0 s.
func prefault() (time.Duration, float64) {
	var avail int64
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if m := regexp.MustCompile(`MemAvailable:\s+(\d+) kB`).FindSubmatch(b); m != nil {
			kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
			avail = kb << 10
		}
	}
	start := time.Now()
	const chunk = 256 << 20
	var maps [][]byte
	defer func() {
		for _, m := range maps {
			unix.Munmap(m)
		}
	}()
	touched := int64(0)
	for touched+chunk < avail-(4<<30) && memAvailable() > 4<<30 { // leave 4 GiB, re-read as others allocate
		m, err := unix.Mmap(-1, 0, chunk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			break
		}
		for i := 0; i < len(m); i += 4096 {
			m[i] = 1
		}
		maps = append(maps, m)
		touched += chunk
	}
	return time.Since(start), float64(touched) / (1 << 30)
}

// cpuTime is the user and system time the process has used so far, all
// threads included, from /proc (clock ticks of 10 ms); 0 for a server not
// started here.
func cpuTime(s *server) time.Duration {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func machine() string {
	var mem string
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if m := regexp.MustCompile(`MemTotal:\s+(\d+) kB`).FindSubmatch(b); m != nil {
			kb, _ := strconv.Atoi(string(m[1]))
			mem = fmt.Sprintf("%.0f GiB RAM", float64(kb)/(1<<20))
		}
	}
	kernel, _ := exec.Command("uname", "-r").Output()
	cpu := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`model name\s+: (.*)`).FindSubmatch(b); m != nil {
			cpu = string(m[1])
		}
	}
	return fmt.Sprintf("%d cores (%s), %s, Linux %s, %s", runtime.NumCPU(), cpu, mem, strings.TrimSpace(string(kernel)), runtime.Version())
}

func fsType(dir string) string {
	out, err := exec.Command("stat", "-f", "-c", "%T", dir).Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// memAvailable is the kernel's MemAvailable now, in bytes (0 if unknown).
func memAvailable() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	m := regexp.MustCompile(`MemAvailable:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}
