package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		ratio, target float64
		measured      bool
		want          string
	}{
		{0.9, 1.1, true, "≤ 1.10, met"},
		{1.1, 1.1, true, "≤ 1.10, met"},
		{1.11, 1.1, true, "≤ 1.10, **missed**"},
		{0, 1.2, false, "≤ 1.20"},
		{3, 0, true, ""},
	} {
		if got := verdict(tc.ratio, tc.target, tc.measured); got != tc.want {
			t.Errorf("verdict(%v, %v, %v) = %q, want %q", tc.ratio, tc.target, tc.measured, got, tc.want)
		}
	}
}

// A row where one request failed says so in the server's cell and in the
// ratio, lists why, and keeps the other rows as they were.
func TestFailedRow(t *testing.T) {
	ms := time.Millisecond
	r := &results{}
	r.compare("TLS PUT", "nginx", 1.1)
	r.sample("TLS PUT", "nginx", 10*ms, 5*ms)
	r.sample("TLS PUT", "msdav", 10*ms, 5*ms)
	ok := &server{name: "msdav"}
	r.measure("TLS PUT", ok, func() (time.Duration, time.Duration, error) {
		return 0, 0, errors.New("PUT tls.bin: 500 Internal Server Error")
	})
	r.sample("GET", "msdav", 30*ms, 0)
	r.sample("GET", "nginx", 20*ms, 0)
	md := r.markdown([]string{"msdav", "nginx"})
	lines := strings.Split(md, "\n")
	if want := "| TLS PUT | failed | 10.0 ms | failed | | ≤ 1.10 |"; lines[2] != want {
		t.Errorf("failed row:\n%s\nwant\n%s", lines[2], want)
	}
	if want := "| GET | 30.0 ms | 20.0 ms | **1.50** | 1.50–1.50 |  |"; lines[3] != want {
		t.Errorf("other row:\n%s\nwant\n%s", lines[3], want)
	}
	f := r.failures()
	if len(f) != 1 || !strings.Contains(f[0], "TLS PUT, msdav: PUT tls.bin: 500") {
		t.Errorf("failures: %q", f)
	}
	if r.failedFor("TLS PUT", "nginx") || r.failedFor("GET", "msdav") {
		t.Error("a failure marked a server or row it was not in")
	}
}

// Rows against a tool divide msdav by that tool, whose name may hold a
// pipe that must not split the markdown cell.
func TestPeerMarkdown(t *testing.T) {
	ms := time.Millisecond
	r := &results{}
	r.compare("Fetch, zstd", "curl | zstd -dc", 1.2)
	for i, d := range []time.Duration{100, 130, 90} {
		r.sample("Fetch, zstd", "msdav", d*ms, 50*ms)
		r.sample("Fetch, zstd", "curl | zstd -dc", []time.Duration{100, 100, 100}[i]*ms, 40*ms)
	}
	got := strings.Split(r.peerMarkdown(), "\n")[2]
	want := `| Fetch, zstd | 100.0 ms | curl \| zstd -dc | 100.0 ms | **1.00** | 0.90–1.30 | ≤ 1.20, met | 50.0 ms | 40.0 ms |`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestMeanRatio(t *testing.T) {
	ms := time.Millisecond
	if r, ok := meanRatio([]time.Duration{30 * ms}, []time.Duration{20 * ms}); !ok || r != 1.5 {
		t.Errorf("meanRatio = %v %v, want 1.5", r, ok)
	}
	for _, n := range [][]time.Duration{nil, {0}} {
		if _, ok := meanRatio([]time.Duration{ms}, n); ok {
			t.Errorf("meanRatio against %v gave a ratio", n)
		}
	}
}
