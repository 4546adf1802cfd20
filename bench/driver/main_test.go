package main

import (
	"fmt"
	"os/exec"
	"slices"
	"sort"
	"testing"
	"time"
)

func TestPairedRatio(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	for _, tc := range []struct {
		name        string
		m, n        []time.Duration
		mid, lo, hi float64
		ok          bool
	}{
		{"paired", ms(10, 30, 20), ms(10, 10, 40), 1, 0.5, 3, true},
		{"one", ms(5), ms(10), 0.5, 0.5, 0.5, true},
		{"unpaired", ms(1, 2), ms(1), 0, 0, 0, false},
		{"empty", nil, nil, 0, 0, 0, false},
	} {
		mid, lo, hi, ok := pairedRatio(tc.m, tc.n)
		if ok != tc.ok || mid != tc.mid || lo != tc.lo || hi != tc.hi {
			t.Errorf("%s: got %v %v %v %v, want %v %v %v %v", tc.name, mid, lo, hi, ok, tc.mid, tc.lo, tc.hi, tc.ok)
		}
	}
}

// Every round is a permutation, the same on every run, and the rounds do
// not all put the servers in one order.
func TestOrder(t *testing.T) {
	seen := map[string]bool{}
	for r := 0; r < 5; r++ {
		o := order(5, r)
		if got := order(5, r); !slices.Equal(got, o) {
			t.Fatalf("round %d not reproducible: %v %v", r, o, got)
		}
		s := append([]int(nil), o...)
		sort.Ints(s)
		for i, v := range s {
			if v != i {
				t.Fatalf("round %d: %v is not a permutation", r, o)
			}
		}
		seen[fmt.Sprint(o)] = true
	}
	if len(seen) < 2 {
		t.Error("every round has the same order")
	}
}

// cpuTime reads a live process's time from /proc; a busy child shows some.
func TestCPUTime(t *testing.T) {
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 5")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	s := &server{cmd: cmd}
	deadline := time.Now().Add(5 * time.Second)
	for cpuTime(s) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no CPU time read for a busy process")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if got := cpuTime(s); got != 0 {
		t.Errorf("a reaped process has %v", got)
	}
}

func TestTrimmedMean(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{[]time.Duration{10 * ms}, 10 * ms},
		{[]time.Duration{10 * ms, 30 * ms}, 20 * ms},
		{[]time.Duration{400 * ms, 10 * ms, 20 * ms, 30 * ms, 0}, 20 * ms}, // one stall, one zero tick: both dropped
		{[]time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 100}, 5},               // 3..8 kept: 33/6
	} {
		if got := trimmedMean(tc.in); got != tc.want {
			t.Errorf("trimmedMean(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// Five ranges of n bytes, the first at the start and the last at the end.
func TestRanges(t *testing.T) {
	rngs, n := ranges(1 << 30)
	want := []string{"bytes=0-67108863", "bytes=251658240-318767103", "bytes=503316480-570425343", "bytes=754974720-822083583", "bytes=1006632960-1073741823"}
	if n != 64<<20 || !slices.Equal(rngs, want) {
		t.Errorf("ranges(1 GiB) = %v, %d", rngs, n)
	}
	if _, n := ranges(64 << 20); n != 16<<20 {
		t.Errorf("range of a 64 MiB file: %d bytes", n)
	}
}
