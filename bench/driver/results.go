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
// the server used for it. A row compares msdav with one peer (nginx unless
// said otherwise) and may carry a target for that ratio.
type results struct {
	rows   []string
	cells  map[string]map[string][]time.Duration
	cpu    map[string]map[string][]time.Duration
	meta   map[string]rowMeta
	failed map[string][]string // row -> "server: why", in the order they came
	raw    [][]string
}

type rowMeta struct {
	peer   string  // the column msdav is divided by
	target float64 // the ratio msdav should stay at or below; 0: none
}

// compare sets the peer a row's ratio is taken against, and its target.
func (r *results) compare(row, peer string, target float64) {
	if r.meta == nil {
		r.meta = map[string]rowMeta{}
	}
	r.meta[row] = rowMeta{peer, target}
}

func (r *results) peer(row string) string {
	if p := r.meta[row].peer; p != "" {
		return p
	}
	return "nginx"
}

// measure times one request and reads the server's CPU time around it.
// do returns the wall time and any CPU time the client spent on the
// server's behalf (the fsync a server left to it), charged to the server.
// A request that failed is no sample: the row is marked failed, with why.
func (r *results) measure(row string, s *server, do func() (time.Duration, time.Duration, error)) {
	c0 := cpuTime(s)
	d, charged, err := do()
	if err != nil {
		r.fail(row, s.name, err)
		return
	}
	r.sample(row, s.name, d, cpuTime(s)-c0+charged)
}

// sample records one wall and CPU time of a server or tool.
func (r *results) sample(row, name string, d, c time.Duration) {
	r.add(row, name, d)
	if r.cpu == nil {
		r.cpu = map[string]map[string][]time.Duration{}
	}
	if r.cpu[row] == nil {
		r.cpu[row] = map[string][]time.Duration{}
	}
	r.cpu[row][name] = append(r.cpu[row][name], c)
	r.raw = append(r.raw, []string{row, name, strconv.FormatInt(d.Microseconds(), 10), strconv.FormatInt(c.Microseconds(), 10), ""})
}

// fail marks a row failed for one server; the report says so in its cell
// and lists why, and the run ends with a non-zero status.
func (r *results) fail(row, name string, err error) {
	r.ensureRow(row)
	if r.failed == nil {
		r.failed = map[string][]string{}
	}
	r.failed[row] = append(r.failed[row], name+": "+err.Error())
	r.raw = append(r.raw, []string{row, name, "", "", err.Error()})
	fmt.Fprintf(os.Stderr, "bench: FAILED %s, %s: %v\n", row, name, err)
}

// failures lists every failed request, one line each.
func (r *results) failures() []string {
	var out []string
	for _, row := range r.rows {
		for _, f := range r.failed[row] {
			out = append(out, row+", "+f)
		}
	}
	return out
}

// failedFor says whether any request of name failed in row.
func (r *results) failedFor(row, name string) bool {
	for _, f := range r.failed[row] {
		if strings.HasPrefix(f, name+": ") {
			return true
		}
	}
	return false
}

// writeRaw writes every sample and failure of the tables to a CSV file.
func writeRaw(path string, tables ...*results) {
	f, err := os.Create(path)
	must(err)
	w := csv.NewWriter(f)
	w.Write([]string{"measurement", "server", "wall_us", "cpu_us", "error"})
	for _, r := range tables {
		w.WriteAll(r.raw)
	}
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
func (r *results) cpuMarkdown(cols []string) string {
	var b strings.Builder
	b.WriteString("| measurement | " + strings.Join(cols, " | ") + " | msdav/nginx |\n|---|" + strings.Repeat("---|", len(cols)+1) + "\n")
	for _, row := range r.rows {
		if r.cpu[row] == nil {
			continue
		}
		r.writeCells(&b, row, r.cpu[row], cols, trimmedMean)
		if ratio, ok := meanRatio(r.cpu[row]["msdav"], r.cpu[row][r.peer(row)]); ok {
			fmt.Fprintf(&b, " **%.2f** |\n", ratio)
		} else {
			b.WriteString(" |\n")
		}
	}
	return b.String()
}

// meanRatio divides msdav's trimmed mean CPU time by the peer's.
func meanRatio(m, n []time.Duration) (float64, bool) {
	if len(m) == 0 || len(n) == 0 || trimmedMean(n) == 0 {
		return 0, false
	}
	return float64(trimmedMean(m)) / float64(trimmedMean(n)), true
}

// writeCells writes the start of a table row: its name, then one summary
// of each column's samples, empty where a server has none.
func (r *results) writeCells(b *strings.Builder, row string, cells map[string][]time.Duration, cols []string, summary func([]time.Duration) time.Duration) {
	b.WriteString("| " + row + " |")
	for _, c := range cols {
		b.WriteString(" " + r.cell(row, c, cells[c], summary) + " |")
	}
}

// cell is one server's summary in a row, "failed" if any of its requests
// failed there, empty if it has no samples.
func (r *results) cell(row, name string, ds []time.Duration, summary func([]time.Duration) time.Duration) string {
	switch {
	case r.failedFor(row, name):
		return "failed"
	case len(ds) > 0:
		return fmtDur(summary(ds))
	}
	return ""
}

func (r *results) add(row, server string, d time.Duration) {
	r.ensureRow(row)
	r.cells[row][server] = append(r.cells[row][server], d)
}

func (r *results) ensureRow(row string) {
	if r.cells == nil {
		r.cells = map[string]map[string][]time.Duration{}
	}
	if r.cells[row] == nil {
		r.cells[row] = map[string][]time.Duration{}
		r.rows = append(r.rows, row)
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// ratioCells are the ratio, its spread over the rounds and the target of a
// row: "failed" when a request of msdav or of its peer failed, empty when
// the row has no peer.
func (r *results) ratioCells(row string) string {
	peer := r.peer(row)
	if r.failedFor(row, "msdav") || r.failedFor(row, peer) {
		return " failed | | " + verdict(0, r.meta[row].target, false) + " |"
	}
	mid, lo, hi, ok := pairedRatio(r.cells[row]["msdav"], r.cells[row][peer])
	if !ok {
		return " | | " + verdict(0, r.meta[row].target, false) + " |"
	}
	return fmt.Sprintf(" **%.2f** | %.2f–%.2f | %s |", mid, lo, hi, verdict(mid, r.meta[row].target, true))
}

// verdict says whether a ratio met its target: "≤ 1.10, met".
func verdict(ratio, target float64, measured bool) string {
	switch {
	case target == 0:
		return ""
	case !measured:
		return fmt.Sprintf("≤ %.2f", target)
	case ratio <= target:
		return fmt.Sprintf("≤ %.2f, met", target)
	default:
		return fmt.Sprintf("≤ %.2f, **missed**", target)
	}
}

// markdown is the table of the servers side by side: each row's median
// per server, and msdav/nginx.
func (r *results) markdown(cols []string) string {
	var b strings.Builder
	b.WriteString("| measurement | " + strings.Join(cols, " | ") + " | msdav/nginx | per round | target |\n|---|" + strings.Repeat("---|", len(cols)+3) + "\n")
	for _, row := range r.rows {
		r.writeCells(&b, row, r.cells[row], cols, median)
		b.WriteString(r.ratioCells(row) + "\n")
	}
	return b.String()
}

// peerMarkdown is the table of rows where msdav's peer is a tool, not a
// server (curl -o, xz -dc): msdav and the tool in the same round, their
// medians, the paired ratio and each one's CPU time.
func (r *results) peerMarkdown() string {
	var b strings.Builder
	b.WriteString("| measurement | msdav | peer | peer's time | msdav/peer | per round | target | CPU msdav | CPU peer |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, row := range r.rows {
		peer := r.peer(row)
		cells, cpu := r.cells[row], r.cpu[row]
		fmt.Fprintf(&b, "| %s | %s | %s | %s |%s %s | %s |\n", row,
			r.cell(row, "msdav", cells["msdav"], median), strings.ReplaceAll(peer, "|", `\|`), r.cell(row, peer, cells[peer], median),
			r.ratioCells(row),
			r.cell(row, "msdav", cpu["msdav"], trimmedMean), r.cell(row, peer, cpu[peer], trimmedMean))
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
