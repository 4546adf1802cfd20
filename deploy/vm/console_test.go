//go:build vmtest

package vm

import "testing"

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
