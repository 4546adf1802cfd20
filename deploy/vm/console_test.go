//go:build vmtest

package vm

import (
	"strings"
	"testing"
)

func TestGuestKernelTrouble(t *testing.T) {
	for _, c := range []struct {
		line string
		want kernelTrouble
	}{
		// Lines from a TCG boot that stalled and then locked up.
		{"[   45.959742] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", kernelStalled},
		{"[   72.871876] watchdog: BUG: soft lockup - CPU#0 stuck for 44s! [guest.test:134]", kernelLockedUp},
		{"[   12.000000] rcu: INFO: rcu_sched self-detected stall on CPU", kernelStalled},
		// Kernels before 5.0 print it without the "rcu: " prefix.
		{"[   12.000000] INFO: rcu_sched self-detected stall on CPU", kernelStalled},
		{"[   30.000000] NMI watchdog: Watchdog detected hard LOCKUP on cpu 1", kernelLockedUp},
		// Ordinary lines, some of them near misses.
		{"[   46.704405] rcu: \t1-...!: (0 ticks this GP) idle=adc4/1/0x4000000000000000 softirq=943/943 fqs=0", kernelFine},
		{"=== RUN   TestUserspace/a_locked_eject_is_refused_then_forced", kernelFine},
		{"    userspace_test.go:200: the host's stall of bulk IN was cleared", kernelFine},
		{"GUEST-EXIT 0", kernelFine},
	} {
		if got := guestKernelTrouble(c.line); got != c.want {
			t.Errorf("guestKernelTrouble(%q) = %d, want %d", c.line, got, c.want)
		}
	}
}

func TestGuestFailures(t *testing.T) {
	// A guest run shaped like the CI failure that showed only the dmesg
	// dump: a passing test, a failing one with a continued message, box
	// logs in between, then the init script's dump.
	log := strings.Join([]string{
		"=== RUN   TestExfatPart",
		"    parts_test.go:10: mounted",
		"--- PASS: TestExfatPart (2.39s)",
		"=== RUN   TestFleetOnNFS",
		"    fleet_test.go:146: B listed A's upload 67ms after it completed\r",
		"time=2026-11-26T11:10:53.646Z level=INFO msg=serving addr=127.0.0.1:8084",
		"    fleet_test.go:316: A's drive, attached through the outage: read /dev/sr0 at 3342336: EOF (sha256 match false)",
		"        second line of that message",
		"time=2026-11-26T11:10:54.037Z level=INFO msg=http method=GET path=/api/images",
		"=== RUN   TestFleetOnNFS/sub",
		"    fleet_test.go:400: inside the subtest",
		"    --- FAIL: TestFleetOnNFS/sub (0.01s)",
		"--- FAIL: TestFleetOnNFS (33.75s)",
		"FAIL",
		"--- guest dmesg",
		"[  115.654408] usb 1-1: USB disconnect",
		"GUEST-EXIT 1",
	}, "\n")
	got := guestFailures(log)
	for _, want := range []string{
		"--- FAIL: TestFleetOnNFS (33.75s)",
		"fleet_test.go:316: A's drive, attached through the outage",
		"        second line of that message",
		"--- FAIL: TestFleetOnNFS/sub (0.01s)",
		"fleet_test.go:400: inside the subtest",
		"fleet_test.go:146: B listed A's upload 67ms after it completed",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("guestFailures lacks %q; it said:\n%s", want, got)
		}
	}
	for _, not := range []string{"mounted", "level=INFO", "USB disconnect", "\r"} {
		if strings.Contains(got, not) {
			t.Errorf("guestFailures has %q, which is not a failed test's own line:\n%s", not, got)
		}
	}
	// The subtest's line is told once, under the subtest, not again under
	// its parent.
	if n := strings.Count(got, "inside the subtest"); n != 1 {
		t.Errorf("the subtest's line appears %d times:\n%s", n, got)
	}
	// A cut-off marker line does not stop the reading (nor panic it).
	if got := guestFailures("=== RUN\n=== RUN   TestA\n--- PASS: TestA (0.00s)\nPASS\n"); got != "" {
		t.Errorf("guestFailures of a passing run = %q, want nothing", got)
	}
}

func TestLddPath(t *testing.T) {
	for _, c := range []struct{ line, want string }{
		{"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0000000000)", "/lib/x86_64-linux-gnu/libc.so.6"},
		{"\t/lib64/ld-linux-x86-64.so.2 (0x00007f0000000000)", "/lib64/ld-linux-x86-64.so.2"},
		{"\tlinux-vdso.so.1 (0x00007ffc00000000)", ""},
		{"\tlibfoo.so.1 => not found", ""},
		{"", ""},
	} {
		if got := lddPath(c.line); got != c.want {
			t.Errorf("lddPath(%q) = %q, want %q", c.line, got, c.want)
		}
	}
}
