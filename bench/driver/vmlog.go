package main

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"time"
)

// vmLatencies reads the attach-to-visible latencies a `make vmtest` log
// prints (the bench does not boot the VM itself): CD, from the API call to
// /dev/sr0 readable at full size, and flash, to /dev/sda.
func vmLatencies(log []byte) (cd, flash time.Duration, err error) {
	for _, p := range []struct {
		re  string
		dst *time.Duration
	}{
		{`attach-to-visible latency \(API call to /dev/sr0[^)]*\): (\S+)`, &cd},
		{`visible as /dev/sda; attach-to-visible latency[^:]*: (\S+)`, &flash},
	} {
		m := regexp.MustCompile(p.re).FindSubmatch(log)
		if m == nil {
			return 0, 0, fmt.Errorf("no line matching %q", p.re)
		}
		if *p.dst, err = time.ParseDuration(string(m[1])); err != nil {
			return 0, 0, fmt.Errorf("latency %q: %w", m[1], err)
		}
	}
	return cd, flash, nil
}

// vmLine is the report's line for a vmtest log, dated by the file.
func vmLine(path string) (line string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read vmtest log: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	cd, flash, err := vmLatencies(b)
	if err != nil {
		return "", fmt.Errorf("vmtest log %s: %w", path, err)
	}
	if tl, err := throughputLine(b, "its log of "+fi.ModTime().UTC().Format("2006-01-02 15:04 MST")); err == nil {
		defer func() { line += " " + tl }()
	}
	return fmt.Sprintf("Attach to visible in the guest of `make vmtest` (qemu TCG, dummy_hcd; its log of %s): CD %v (API call to /dev/sr0 readable at full size), flash %v (to /dev/sda).",
		fi.ModTime().UTC().Format("2006-01-02 15:04 MST"), cd.Round(time.Millisecond), flash.Round(time.Millisecond)), nil
}

// userspaceTargetRatio: the target for the userspace drive, time
// within 1.3x of f_mass_storage's, so throughput at least 1/1.3 of it.
const userspaceTargetRatio = 1 / 1.3

// vmThroughput reads the side-by-side read throughput line the guest's
// TestUserspace prints: userspace/kernel and each backend's MB/s.
func vmThroughput(log []byte) (ratio, kernel, user float64, err error) {
	m := regexp.MustCompile(`THROUGHPUT userspace/kernel = ([0-9.]+) \(kernel ([0-9.]+) MB/s, userspace ([0-9.]+) MB/s`).FindSubmatch(log)
	if m == nil {
		return 0, 0, 0, fmt.Errorf("no THROUGHPUT line")
	}
	var v [3]float64
	for i := range v {
		if v[i], err = strconv.ParseFloat(string(m[i+1]), 64); err != nil {
			return 0, 0, 0, fmt.Errorf("THROUGHPUT figure %q: %w", m[i+1], err)
		}
	}
	return v[0], v[1], v[2], nil
}

func throughputLine(log []byte, source string) (string, error) {
	r, k, u, err := vmThroughput(log)
	if err != nil {
		return "", err
	}
	// Logs from before 2026-11-27 do not name the reader: it was a Go loop.
	reader := "a Go loop"
	if m := regexp.MustCompile(`THROUGHPUT .*; read by ([^)\n]+)\)`).FindSubmatch(log); m != nil {
		reader = string(m[1])
	}
	return fmt.Sprintf("Sequential reads from the target host's side, both drive backends at once in one VM (`TestUserspace`, qemu TCG, dummy_hcd, one UDC each, 64 MiB four times in alternating 8 MiB slices of buffered 32 KiB reads by %s; %s): f_mass_storage %.1f MB/s, msdav's userspace drive %.1f MB/s, ratio %.2f (target ≥ %.2f, time within 1.3x: %s).",
		reader, source, k, u, r, userspaceTargetRatio, map[bool]string{true: "met", false: "**missed**"}[r >= userspaceTargetRatio]), nil
}

// runVMThroughput boots the VM for the side-by-side throughput subtest
// only (about two minutes under TCG) and returns its report line.
func runVMThroughput() (string, error) {
	cmd := exec.Command("go", "test", "-tags", "vmtest", "-count=1", "-v", "-timeout", "15m", "-run", "^TestUserspaceVM$", "./deploy/vm/")
	cmd.Env = append(os.Environ(), "MSDAV_VM_RUN=^TestUserspace$/read_throughput")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("VM throughput run: %v\n%s", err, out[max(0, len(out)-2000):])
	}
	return throughputLine(out, "booted by this run")
}
