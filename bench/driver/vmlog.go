package main

import (
	"fmt"
	"os"
	"regexp"
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
func vmLine(path string) (string, error) {
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
	return fmt.Sprintf("Attach to visible in the guest of `make vmtest` (qemu TCG, dummy_hcd; its log of %s): CD %v (API call to /dev/sr0 readable at full size), flash %v (to /dev/sda).",
		fi.ModTime().UTC().Format("2006-01-02 15:04 MST"), cd.Round(time.Millisecond), flash.Round(time.Millisecond)), nil
}
