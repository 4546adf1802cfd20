package ffs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"syscall"
	"testing"
)

// A pipe is not a FunctionFS endpoint (AIO on it completes inside
// io_submit), but it runs the same system calls: the order of the bytes,
// the depth bound, and failures reported by events. Queuing on a real
// endpoint and io_cancel are proven in the VM (TestUserspaceVM).
func TestAIOQueueWritesInOrder(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	q, err := newAIOQueue(int(w.Fd()))
	if err != nil {
		t.Skipf("no AIO here (qemu user mode has no io_setup; the VM proves AIO): %v", err)
	}
	defer q.close()
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		got <- b
	}()
	var want bytes.Buffer
	buf := make([]byte, 1000)
	for i := range 3 * aioDepth {
		// One buffer for all: the kernel copies it at submit.
		for j := range buf {
			buf[j] = byte(i*31 + j)
		}
		want.Write(buf[:100+i])
		if err := q.submit(buf[:100+i]); err != nil {
			t.Fatal(err)
		}
		if n := q.pending(); n > aioDepth {
			t.Fatalf("%d writes in flight, the bound is %d", n, aioDepth)
		}
	}
	if err := q.wait(); err != nil {
		t.Fatal(err)
	}
	if n := q.pending(); n != 0 {
		t.Fatalf("%d writes still in flight after wait", n)
	}
	w.Close()
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("read %d bytes, not the %d written in order", len(b), want.Len())
	}
}

func TestAIOQueueReportsFailures(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	q, err := newAIOQueue(int(w.Fd()))
	if err != nil {
		t.Skipf("no AIO here (qemu user mode has no io_setup; the VM proves AIO): %v", err)
	}
	defer q.close()
	r.Close() // the reader is gone: each write fails with EPIPE
	if err := q.submit([]byte("lost")); err != nil {
		t.Fatalf("submit: %v (the failure belongs to the event)", err)
	}
	if err := q.wait(); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("wait: %v, want EPIPE", err)
	}
	if err := q.wait(); err != nil {
		t.Fatalf("a second wait repeats an old failure: %v", err)
	}

	bad, err := newAIOQueue(-1)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.close()
	if err := bad.submit([]byte("x")); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("submit on a bad descriptor: %v, want EBADF", err)
	}
	if n := bad.pending(); n != 0 {
		t.Fatalf("a refused submit stays in flight (%d)", n)
	}
}

// The queue of a Function without AIO falls back to plain writes.
func TestQueueInWithoutAIO(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f := &Function{in: w}
	go func() {
		f.QueueIn([]byte("abc"))
		f.WaitIn()
		w.Close()
	}()
	if b, _ := io.ReadAll(r); string(b) != "abc" {
		t.Fatalf("read %q", b)
	}
}
