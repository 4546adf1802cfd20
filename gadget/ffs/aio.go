package ffs

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Linux native AIO (io_setup, io_submit, io_getevents, io_cancel) on a
// FunctionFS endpoint file. A blocking write(2) on an endpoint queues one
// USB request and sleeps until the host took it, so the controller has
// nothing to send between a READ's data and its CSW, and nothing can take
// the request back when the host resets the device. Submitted through AIO,
// FunctionFS copies the buffer, queues its own request and returns at
// once: several transfers wait in the controller in order, and io_cancel
// dequeues them.

// iocb is struct iocb of <linux/aio_abi.h> (64 bytes, little endian).
type iocb struct {
	data      uint64
	key       uint32
	rwFlags   int32
	opcode    uint16
	reqprio   int16
	fd        uint32
	buf       uint64
	nbytes    uint64
	offset    int64
	reserved2 uint64
	flags     uint32
	resfd     uint32
}

// ioEvent is struct io_event.
type ioEvent struct {
	data uint64
	obj  uint64
	res  int64
	res2 int64
}

const iocbCmdPwrite = 1

// aioDepth bounds the transfers in flight on one endpoint: a READ's data
// (one or more chunks) and its CSW. Each holds a kernel copy of its bytes.
const aioDepth = 8

// errCanceled is a transfer taken back by CancelIn (a Bulk-Only reset).
var errCanceled = errors.New("transfer canceled by a reset")

// aioQueue sends writes on one file descriptor through one AIO context.
type aioQueue struct {
	ctx uint64 // aio_context_t
	fd  int

	mu sync.Mutex // guards the fields below
	// inflight are the iocbs submitted and not yet reaped, by address:
	// the kernel names them by address in events and in io_cancel, and
	// this map keeps each alive (Go's heap does not move) until reaped.
	inflight map[uintptr]*iocb
	failed   error // the first failure since the last wait
}

func newAIOQueue(fd int) (*aioQueue, error) {
	var ctx uint64
	if _, _, e := unix.Syscall(unix.SYS_IO_SETUP, aioDepth, uintptr(unsafe.Pointer(&ctx)), 0); e != 0 {
		return nil, fmt.Errorf("io_setup: %w", e)
	}
	return &aioQueue{ctx: ctx, fd: fd, inflight: map[uintptr]*iocb{}}, nil
}

// submit queues p as one write. FunctionFS copies p before io_submit
// returns, so the caller may reuse it at once. With aioDepth transfers in
// flight it first waits for the oldest.
func (q *aioQueue) submit(p []byte) error {
	for q.pending() >= aioDepth {
		if err := q.reap(1); err != nil {
			return err
		}
	}
	cb := &iocb{opcode: iocbCmdPwrite, fd: uint32(q.fd), nbytes: uint64(len(p))}
	if len(p) > 0 {
		cb.buf = uint64(uintptr(unsafe.Pointer(&p[0])))
	}
	addr := uintptr(unsafe.Pointer(cb))
	q.mu.Lock()
	q.inflight[addr] = cb
	q.mu.Unlock()
	cbs := [1]*iocb{cb}
	for {
		_, _, e := unix.Syscall(unix.SYS_IO_SUBMIT, uintptr(q.ctx), 1, uintptr(unsafe.Pointer(&cbs[0])))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			q.mu.Lock()
			delete(q.inflight, addr)
			q.mu.Unlock()
			return fmt.Errorf("io_submit: %w", e)
		}
		break
	}
	// The kernel copied p's bytes during io_submit; until then p must live.
	runtime.KeepAlive(p)
	return nil
}

func (q *aioQueue) pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.inflight)
}

// reap waits for at least atLeast events and records the first failure.
func (q *aioQueue) reap(atLeast int) error {
	var evs [aioDepth]ioEvent
	for {
		n, _, e := unix.Syscall6(unix.SYS_IO_GETEVENTS, uintptr(q.ctx), uintptr(atLeast), aioDepth, uintptr(unsafe.Pointer(&evs[0])), 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return fmt.Errorf("io_getevents: %w", e)
		}
		q.mu.Lock()
		for _, ev := range evs[:n] {
			delete(q.inflight, uintptr(ev.obj))
			if q.failed == nil {
				switch {
				case ev.res == -int64(syscall.ECONNRESET) || ev.res == -int64(syscall.ECANCELED):
					q.failed = errCanceled
				case ev.res < 0:
					q.failed = syscall.Errno(-ev.res)
				}
			}
		}
		q.mu.Unlock()
		return nil
	}
}

// wait waits for every submitted write and returns the first failure
// among them (and forgets it).
func (q *aioQueue) wait() error {
	for q.pending() > 0 {
		if err := q.reap(1); err != nil {
			return err
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	err := q.failed
	q.failed = nil
	return err
}

// cancel asks the kernel to take back every write in flight; their events
// then report the cancellation to wait.
func (q *aioQueue) cancel() {
	q.mu.Lock()
	cbs := make([]*iocb, 0, len(q.inflight))
	for _, cb := range q.inflight {
		cbs = append(cbs, cb)
	}
	q.mu.Unlock()
	var ev ioEvent
	for _, cb := range cbs {
		// EINPROGRESS: the cancellation is under way and its event comes
		// through io_getevents; EINVAL: it completed meanwhile.
		unix.Syscall(unix.SYS_IO_CANCEL, uintptr(q.ctx), uintptr(unsafe.Pointer(cb)), uintptr(unsafe.Pointer(&ev)))
	}
}

func (q *aioQueue) close() error {
	if _, _, e := unix.Syscall(unix.SYS_IO_DESTROY, uintptr(q.ctx), 0, 0); e != 0 {
		return fmt.Errorf("io_destroy: %w", e)
	}
	return nil
}
