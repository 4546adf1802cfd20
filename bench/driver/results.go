package main

import (
	"encoding/csv"
	"fmt"
	mathrand "math/rand"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// order is the order the servers take their turns in round r: shuffled,
// with a fixed seed, so that no server always follows the same one (a
// rotation made msdav always follow dd, and pay for what dd left behind).
func order(n, r int) []int {
	return mathrand.New(mathrand.NewSource(int64(r) + 1)).Perm(n)
}

// results keeps samples per row and server: wall time, and the CPU time
// the server used for it.
type results struct {
	rows  []string
	cells map[string]map[string][]time.Duration
	cpu   map[string]map[string][]time.Duration
	raw   [][]string
}

// measure times one request and reads the server's CPU time around it.
// do returns the wall time and any CPU time the client spent on the
// server's behalf (the fsync a server left to it), charged to the server.
func (r *results) measure(row string, s *server, do func() (time.Duration, time.Duration)) {
	c0 := cpuTime(s)
	d, charged := do()
	c := cpuTime(s) - c0 + charged
	r.add(row, s.name, d)
	if r.cpu == nil {
		r.cpu = map[string]map[string][]time.Duration{}
	}
	if r.cpu[row] == nil {
		r.cpu[row] = map[string][]time.Duration{}
	}
	r.cpu[row][s.name] = append(r.cpu[row][s.name], c)
	r.raw = append(r.raw, []string{row, s.name, strconv.FormatInt(d.Microseconds(), 10), strconv.FormatInt(c.Microseconds(), 10)})
}

func (r *results) writeRaw(path string) {
	f, err := os.Create(path)
	must(err)
	w := csv.NewWriter(f)
	w.Write([]string{"measurement", "server", "wall_us", "cpu_us"})
	w.WriteAll(r.raw)
	must(f.Close())
}

// trimmedMean drops the lowest and highest fifth of the samples and
// averages the rest: one stall of the VM made a mean of five PUTs 2x, and a
// median of values in 10 ms ticks is too coarse for the short requests.
func trimmedMean(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	cut := len(s) / 5
	s = s[cut : len(s)-cut]
	var t time.Duration
	for _, d := range s {
		t += d
	}
	return t / time.Duration(len(s))
}

// cpuMarkdown is the trimmed mean CPU time per request of each server: the
// kernel's share (copies, page cache, sendfile) included, so it says what
// each server costs a small box's processor.
func (r *results) cpuMarkdown() string {
	cols := []string{"msdav", "nginx", "apache", "rclone", "plain"}
	var b strings.Builder
	b.WriteString("| measurement | " + strings.Join(cols, " | ") + " | msdav/nginx |\n|---|" + strings.Repeat("---|", len(cols)+1) + "\n")
	mean := trimmedMean
	for _, row := range r.rows {
		if r.cpu[row] == nil {
			continue
		}
		writeCells(&b, row, r.cpu[row], cols, mean)
		m, n := r.cpu[row]["msdav"], r.cpu[row]["nginx"]
		if len(m) > 0 && len(n) > 0 && mean(n) > 0 {
			fmt.Fprintf(&b, " **%.2f** |\n", float64(mean(m))/float64(mean(n)))
		} else {
			b.WriteString(" |\n")
		}
	}
	return b.String()
}

func (r *results) add(row, server string, d time.Duration) {
	if r.cells == nil {
		r.cells = map[string]map[string][]time.Duration{}
	}
	if r.cells[row] == nil {
		r.cells[row] = map[string][]time.Duration{}
		r.rows = append(r.rows, row)
	}
	r.cells[row][server] = append(r.cells[row][server], d)
}

// writeCells writes the start of a table row: its name, then one summary
// of each column's samples, empty where a server has none.
func writeCells(b *strings.Builder, row string, cells map[string][]time.Duration, cols []string, summary func([]time.Duration) time.Duration) {
	b.WriteString("| " + row + " |")
	for _, c := range cols {
		if ds := cells[c]; len(ds) > 0 {
			b.WriteString(" " + fmtDur(summary(ds)) + " |")
		} else {
			b.WriteString(" |")
		}
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func (r *results) markdown() string {
	cols := []string{"msdav", "nginx", "apache", "rclone", "plain", "dd conv=fsync"}
	var b strings.Builder
	b.WriteString("| measurement | " + strings.Join(cols, " | ") + " | msdav/nginx | per round |\n|---|" + strings.Repeat("---|", len(cols)+2) + "\n")
	for _, row := range r.rows {
		writeCells(&b, row, r.cells[row], cols, median)
		if mid, lo, hi, ok := pairedRatio(r.cells[row]["msdav"], r.cells[row]["nginx"]); ok {
			fmt.Fprintf(&b, " **%.2f** | %.2f–%.2f |\n", mid, lo, hi)
		} else {
			b.WriteString(" | |\n")
		}
	}
	return b.String()
}

// pairedRatio divides each msdav sample by the nginx sample taken in the
// same round, next to it in time, so that a slow moment of the machine
// weighs on both; it gives the median and the extremes of those ratios.
func pairedRatio(m, n []time.Duration) (mid, lo, hi float64, ok bool) {
	if len(m) == 0 || len(m) != len(n) {
		return 0, 0, 0, false
	}
	rs := make([]float64, len(m))
	for i := range m {
		rs[i] = float64(m[i]) / float64(n[i])
	}
	sort.Float64s(rs)
	return rs[len(rs)/2], rs[0], rs[len(rs)-1], true
}

func fmtDur(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func human(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%d GiB", n>>30)
	}
	return fmt.Sprintf("%d MiB", n>>20)
}
