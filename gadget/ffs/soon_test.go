package ffs

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// quietEndpoint is one end of a packet socket pair whose reads, like a
// FunctionFS endpoint's, end with EINTR when a signal arrives (a receive
// timeout makes Linux not restart them), and the other end, the host.
func quietEndpoint(t *testing.T) (ep, host *os.File, rc syscall.RawConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	tv := unix.Timeval{Sec: 3600}
	if err := unix.SetsockoptTimeval(fds[0], unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	ep, host = os.NewFile(uintptr(fds[0]), "ep"), os.NewFile(uintptr(fds[1]), "host")
	t.Cleanup(func() { ep.Close(); host.Close() })
	rc, err = ep.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return ep, host, rc
}

func noSlowRead(t *testing.T) func([]byte) (int, error) {
	return func([]byte) (int, error) {
		t.Error("the wait fell back to a slow read")
		return 0, errors.New("slow read")
	}
}

func TestReadSoonReadsOneTransfer(t *testing.T) {
	if !readSoonOK() {
		t.Skip("one P or async preemption off: readSoon waits the ordinary way")
	}
	ep, host, rc := quietEndpoint(t)
	host.Write([]byte("first"))
	host.Write([]byte("second"))
	buf := make([]byte, 512)
	for _, want := range []string{"first", "second"} {
		n, err := readSoon(rc, buf, noSlowRead(t))
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("read %q, %v; want %q", buf[:n], err, want)
		}
	}
	// One the host sends while the read waits (for 50 ms: by then the
	// wait may have become the ordinary one).
	go func() {
		time.Sleep(50 * time.Millisecond)
		host.Write([]byte("later"))
	}()
	if n, err := readSoon(rc, buf, ep.Read); err != nil || string(buf[:n]) != "later" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
}

// A host that goes quiet gets the ordinary wait once the runtime has
// signalled the waiting thread twice (sysmon preempts after 10 ms): the P
// goes back to the scheduler, and what the host sends later is read.
func TestReadSoonGivesBackItsPWhenTheHostIsQuiet(t *testing.T) {
	if !readSoonOK() {
		t.Skip("one P or async preemption off")
	}
	ep, host, rc := quietEndpoint(t)
	slow := make(chan struct{})
	var gotSlow bool
	read := make(chan string, 1)
	go func() {
		buf := make([]byte, 512)
		n, err := readSoon(rc, buf, func(p []byte) (int, error) {
			gotSlow = true
			close(slow)
			return ep.Read(p)
		})
		if err != nil {
			read <- err.Error()
			return
		}
		read <- string(buf[:n])
	}()
	select {
	case <-slow:
	case <-time.After(20 * time.Second):
		t.Fatal("a read the host does not answer kept its P for 20 s")
	}
	host.Write([]byte("cbw"))
	if got := <-read; got != "cbw" || !gotSlow {
		t.Fatalf("read %q", got)
	}
}

// The garbage collector stops the world while a drive waits for a host
// that sends nothing: the wait must not hold it up. Run in a child
// process, which a hang cannot take the test binary down with.
func TestReadSoonLetsTheCollectorStop(t *testing.T) {
	if os.Getenv("MSDAV_READSOON_CHILD") != "" {
		_, _, rc := quietEndpoint(t)
		go readSoon(rc, make([]byte, 512), func(p []byte) (int, error) {
			select {} // waits in Go, not in the kernel, from here on
		})
		time.Sleep(2 * time.Millisecond) // into the raw read, before any signal
		for range 3 {
			runtime.GC()
		}
		return
	}
	args := []string{os.Args[0], "-test.run=^TestReadSoonLetsTheCollectorStop$", "-test.v"}
	// Under qemu user mode without binfmt (make crosstest), the binary
	// runs itself through the emulator it runs in.
	if emu := os.Getenv("MSDAV_TEST_EXEC"); emu != "" {
		args = append([]string{emu}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "MSDAV_READSOON_CHILD=1", "GOMAXPROCS=2")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("three garbage collections did not finish in 30 s while a read waited for a quiet host\n%s", out.String())
	}
}

// Where a raw wait could hold up everything, the ordinary read runs.
func TestReadSoonWithOneP(t *testing.T) {
	_, _, rc := quietEndpoint(t)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	called := false
	n, err := readSoon(rc, make([]byte, 8), func([]byte) (int, error) { called = true; return 3, nil })
	if !called || n != 3 || err != nil {
		t.Fatalf("with one P: slow read called %v, got %d, %v", called, n, err)
	}
}

func TestReadSoonErrors(t *testing.T) {
	if !readSoonOK() {
		t.Skip("one P or async preemption off")
	}
	ep, host, rc := quietEndpoint(t)
	host.Close()
	if n, err := readSoon(rc, make([]byte, 8), noSlowRead(t)); n != 0 || err != nil {
		t.Fatalf("the host gone: %d, %v; want 0 bytes, no error (end of file)", n, err)
	}
	ep.Close()
	if _, err := readSoon(rc, make([]byte, 8), noSlowRead(t)); err == nil {
		t.Fatal("a read of a closed endpoint did not fail")
	}
	// A bad descriptor's errno comes back as it is.
	r, w, _ := os.Pipe()
	defer r.Close()
	wc, _ := w.SyscallConn()
	defer w.Close()
	if _, err := readSoon(wc, make([]byte, 8), noSlowRead(t)); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("a read of a write-only pipe end: %v, want EBADF", err)
	}
}
