package ffs

import (
	"os"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A drive the host is streaming READs from waits about 2 ms for each next
// CBW. Made the ordinary way, that wait is a goroutine in a system call,
// and Go's scheduler pays for it on the way in and out (in the VM that
// measures it, deploy/vm/guest/throughput_test.go, profiles showed sysmon
// retaking the P and the read taking one back). Read through a raw system
// call, the goroutine keeps its P while it waits: in eight boots
// alternating with syscall.Syscall's read (2026-11-26), 0.62-0.79 of
// f_mass_storage's read speed, median 0.72, against 0.61-0.68, median
// 0.64. Neither an AIO read waited for in Go's poller (0.55-0.60:
// FunctionFS completes an AIO read from a workqueue) nor a TSC clock for
// the VM (0.64-0.70) came close.
//
// A goroutine in a raw system call cannot be stopped by the runtime, so
// the garbage collector's stop-the-world would wait for the host. It does
// not here, because FunctionFS ends a read that a signal interrupts with
// EINTR (it takes the USB request back; a transfer that completed meanwhile
// is returned instead), and the runtime signals a thread whose goroutine
// it must stop: at once when the collector stops the world, after 10 ms
// when sysmon preempts a goroutine that has run that long. readSoon then
// yields, tries once more, and after a second signal waits the ordinary
// way: the host has gone quiet, and the P goes back to the scheduler.
// A P is so held at most about 20 ms after the host's last READ or WRITE.

var asyncPreemptOff = strings.Contains(os.Getenv("GODEBUG"), "asyncpreemptoff=1")

// readSoonOK: a raw wait needs a second P for everything else, and async
// preemption, whose signal is what ends it.
func readSoonOK() bool { return !asyncPreemptOff && runtime.GOMAXPROCS(0) >= 2 }

// readSoon reads one transfer from fd (a blocking file whose reads end
// with EINTR when a signal arrives, as FunctionFS endpoints and sockets
// with a receive timeout do) and falls back to slow after two signals.
func readSoon(rc syscall.RawConn, p []byte, slow func([]byte) (int, error)) (int, error) {
	if len(p) == 0 || !readSoonOK() {
		return slow(p)
	}
	for range 2 {
		var n uintptr
		var errno syscall.Errno
		// The RawConn holds a reference on the descriptor: a Close meanwhile
		// cannot free its number for another file to take.
		if err := rc.Read(func(fd uintptr) bool {
			n, _, errno = unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			return true
		}); err != nil {
			return 0, err
		}
		switch errno {
		case 0:
			return int(n), nil
		case unix.EINTR:
			runtime.Gosched() // the collector or the scheduler may have this P
		default:
			return 0, errno
		}
	}
	return slow(p)
}

// ReadSoon is Read for a transfer the host is about to send: the next CBW
// while it streams READs or WRITEs. Its wait keeps this goroutine's P
// (see readSoon); the wait for a host that has gone quiet is Read's.
func (f *Function) ReadSoon(p []byte) (int, error) {
	if f.outRaw == nil {
		return f.Read(p)
	}
	n, err := readSoon(f.outRaw, p, f.Read)
	if errno, ok := err.(syscall.Errno); ok {
		err = &os.PathError{Op: "read", Path: f.out.Name(), Err: errno}
	}
	return n, err
}
