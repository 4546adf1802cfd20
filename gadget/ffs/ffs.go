// Package ffs is the FunctionFS plumbing of msdav's userspace drives: it mounts
// one usb_f_fs instance, describes a Bulk-Only mass-storage interface on ep0, and serves ep0's events.
package ffs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Magic numbers of <linux/usb/functionfs.h>.
const (
	descsMagicV2 = 3
	stringsMagic = 2

	hasFSDesc = 1
	hasHSDesc = 2
	hasSSDesc = 4
)

// Event types read from ep0.
const (
	EventBind    = 0
	EventUnbind  = 1
	EventEnable  = 2
	EventDisable = 3
	EventSetup   = 4
	EventSuspend = 5
	EventResume  = 6
)

// eventSize is sizeof(struct usb_functionfs_event).
const eventSize = 12

// Setup is a control request the function must answer.
type Setup struct {
	RequestType, Request byte
	Value, Index, Length uint16
}

// In reports whether the request's data stage goes to the host.
func (s Setup) In() bool { return s.RequestType&0x80 != 0 }

// Event is one ep0 event.
type Event struct {
	Type  byte
	Setup Setup // for EventSetup
}

// ParseEvents splits what one read of ep0 returned.
func ParseEvents(b []byte) ([]Event, error) {
	if len(b)%eventSize != 0 {
		return nil, fmt.Errorf("ep0 events: %d bytes is not a whole number of events", len(b))
	}
	var out []Event
	for ; len(b) > 0; b = b[eventSize:] {
		out = append(out, Event{Type: b[8], Setup: Setup{
			RequestType: b[0], Request: b[1],
			Value:  binary.LittleEndian.Uint16(b[2:]),
			Index:  binary.LittleEndian.Uint16(b[4:]),
			Length: binary.LittleEndian.Uint16(b[6:]),
		}})
	}
	return out, nil
}

// MassStorageDescriptors is one interface (class 8, SCSI transparent,
// Bulk-Only) with a bulk IN endpoint (ep1) and a bulk OUT one (ep2), for
// full, high and super speed.
func MassStorageDescriptors() []byte {
	intf := []byte{9, 4, 0, 0, 2, 0x08, 0x06, 0x50, 1}
	ep := func(addr byte, maxPacket uint16) []byte {
		return []byte{7, 5, addr, 0x02, byte(maxPacket), byte(maxPacket >> 8), 0}
	}
	companion := []byte{6, 0x30, 0, 0, 0, 0}
	var fs, hs, ss []byte
	fs = append(append(append(fs, intf...), ep(0x81, 64)...), ep(0x02, 64)...)
	hs = append(append(append(hs, intf...), ep(0x81, 512)...), ep(0x02, 512)...)
	ss = append(append(append(append(append(ss, intf...), ep(0x81, 1024)...), companion...), ep(0x02, 1024)...), companion...)
	var b bytes.Buffer
	le := func(v uint32) { binary.Write(&b, binary.LittleEndian, v) }
	le(descsMagicV2)
	le(0) // length, patched below
	le(hasFSDesc | hasHSDesc | hasSSDesc)
	le(3)
	le(3)
	le(5)
	b.Write(fs)
	b.Write(hs)
	b.Write(ss)
	out := b.Bytes()
	binary.LittleEndian.PutUint32(out[4:], uint32(len(out)))
	return out
}

// Strings is the strings blob for ep0: one string (the interface's name)
// in US English.
func Strings(name string) []byte {
	var b bytes.Buffer
	le := func(v uint32) { binary.Write(&b, binary.LittleEndian, v) }
	le(stringsMagic)
	le(0)
	le(1) // strings
	le(1) // languages
	binary.Write(&b, binary.LittleEndian, uint16(0x0409))
	b.WriteString(name)
	b.WriteByte(0)
	out := b.Bytes()
	binary.LittleEndian.PutUint32(out[4:], uint32(len(out)))
	return out
}

// Function is one mounted FunctionFS instance with its endpoints open.
type Function struct {
	Instance string
	Dir      string
	ep0      *os.File
	in, out  *os.File
	outRaw   syscall.RawConn // out's descriptor, for ReadSoon
	// inQ sends bulk IN through AIO; nil where io_setup failed (AIO
	// disabled: fs.aio-max-nr), and QueueIn then writes synchronously.
	inQ     *aioQueue
	log     *slog.Logger
	closeMu sync.Mutex
}

// Mount mounts FunctionFS instance at dir (made if missing); a mount left
// by a previous run is reused.
func Mount(instance, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mount functionfs %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ep0")); err == nil {
		return nil
	}
	if err := unix.Mount(instance, dir, "functionfs", 0, ""); err != nil {
		if errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("mount functionfs %s at %s: the instance is mounted elsewhere (an older msdav's mount? see /proc/mounts and umount it): %w", instance, dir, err)
		}
		return fmt.Errorf("mount functionfs %s at %s (is usb_f_fs loaded? modprobe usb_f_fs): %w", instance, dir, err)
	}
	return nil
}

// Unmount undoes Mount.
func Unmount(dir string) error {
	if err := unix.Unmount(dir, 0); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("unmount functionfs %s: %w", dir, err)
	}
	return nil
}

// Open writes the mass-storage descriptors to the mounted instance's ep0
// and opens its endpoints. Until the gadget is bound and the host enables
// the configuration, endpoint I/O waits.
func Open(instance, dir, name string, log *slog.Logger) (*Function, error) {
	if log == nil {
		log = slog.Default()
	}
	ep0, err := os.OpenFile(filepath.Join(dir, "ep0"), os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", filepath.Join(dir, "ep0"), err)
	}
	for _, blob := range [][]byte{MassStorageDescriptors(), Strings(name)} {
		if _, err := ep0.Write(blob); err != nil {
			ep0.Close()
			return nil, fmt.Errorf("describe the function on %s: %w", filepath.Join(dir, "ep0"), err)
		}
	}
	f := &Function{Instance: instance, Dir: dir, ep0: ep0, log: log}
	if f.in, err = os.OpenFile(filepath.Join(dir, "ep1"), os.O_RDWR, 0); err == nil {
		f.out, err = os.OpenFile(filepath.Join(dir, "ep2"), os.O_RDWR, 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open the endpoints of %s: %w", dir, err)
	}
	if f.outRaw, err = f.out.SyscallConn(); err != nil {
		f.Close()
		return nil, fmt.Errorf("open the endpoints of %s: %w", dir, err)
	}
	if f.inQ, err = newAIOQueue(int(f.in.Fd())); err != nil {
		log.Warn("no asynchronous I/O on the drive's bulk IN; each transfer waits for the host", "dir", dir, "err", err)
	}
	return f, nil
}

// Close closes the endpoints and ep0; the kernel then unbinds the gadget.
func (f *Function) Close() error {
	f.closeMu.Lock()
	defer f.closeMu.Unlock()
	if f.inQ != nil {
		// Not set to nil: a Serve may still be using it, and an
		// io_submit on a destroyed context fails cleanly.
		f.inQ.cancel()
		f.inQ.close()
	}
	for _, c := range []*os.File{f.in, f.out, f.ep0} {
		if c != nil {
			c.Close()
		}
	}
	return nil
}

// Read reads one transfer from bulk OUT.
func (f *Function) Read(p []byte) (int, error) {
	n, err := f.out.Read(p)
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// Write sends p on bulk IN.
func (f *Function) Write(p []byte) (int, error) { return f.in.Write(p) }

// QueueIn starts p on bulk IN behind what is already queued and returns
// without waiting for the host; p may be reused at once. Failures show in
// the next WaitIn.
func (f *Function) QueueIn(p []byte) error {
	if f.inQ == nil {
		_, err := f.in.Write(p)
		return err
	}
	return f.inQ.submit(p)
}

// WaitIn waits until the host took everything QueueIn started, and returns
// the first failure among them.
func (f *Function) WaitIn() error {
	if f.inQ == nil {
		return nil
	}
	if err := f.inQ.wait(); err != nil {
		return fmt.Errorf("bulk IN of %s: %w", f.Dir, err)
	}
	return nil
}

// CancelIn takes back what QueueIn started and the host has not taken:
// after a Bulk-Only reset, stale data must not answer the next command.
func (f *Function) CancelIn() {
	if f.inQ != nil {
		f.inQ.cancel()
	}
}

// HaltIn stalls bulk IN: FunctionFS halts an endpoint used in the wrong
// direction, and answers EBADMSG when it did.
func (f *Function) HaltIn() error { return halted(f.in.Read(make([]byte, 1))) }

// HaltOut stalls bulk OUT the same way.
func (f *Function) HaltOut() error { return halted(f.out.Write(make([]byte, 1))) }

func halted(_ int, err error) error {
	if errors.Is(err, syscall.EBADMSG) {
		return nil
	}
	if err == nil {
		return errors.New("halt: the endpoint moved data instead of stalling")
	}
	return fmt.Errorf("halt: %w", err)
}

// pastDeadline wakes a blocked ep0 read when the context ends.
var pastDeadline = time.Unix(1, 0)

// Control answers a SETUP: reply is the data stage of an IN request; ok
// false stalls the request.
type Control func(s Setup) (reply []byte, ok bool)

// Events reads ep0 until ctx ends or ep0 fails, answering SETUPs with ctl
// and telling on every event.
func (f *Function) Events(ctx context.Context, ctl Control, on func(Event)) error {
	stop := context.AfterFunc(ctx, func() { f.ep0.SetReadDeadline(pastDeadline) })
	defer stop()
	buf := make([]byte, 4*eventSize)
	for {
		n, err := f.ep0.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN) {
				continue
			}
			return fmt.Errorf("read events from %s: %w", f.Dir, err)
		}
		evs, err := ParseEvents(buf[:n])
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if ev.Type == EventSetup {
				f.answer(ev.Setup, ctl)
			}
			if on != nil {
				on(ev)
			}
		}
	}
}

// answer completes a SETUP's data and status stages, or stalls it by
// using ep0 in the wrong direction.
func (f *Function) answer(s Setup, ctl Control) {
	reply, ok := ctl(s)
	// Raw syscalls: os.File skips zero-length reads and writes, and a
	// zero-length read is how the status stage is acknowledged.
	rc, err := f.ep0.SyscallConn()
	if err != nil {
		return
	}
	var ioErr error
	rc.Control(func(fd uintptr) {
		switch {
		case !ok && s.In():
			_, ioErr = unix.Read(int(fd), nil)
		case !ok:
			_, ioErr = unix.Write(int(fd), nil)
		case s.In():
			if len(reply) > int(s.Length) {
				reply = reply[:s.Length]
			}
			_, ioErr = unix.Write(int(fd), reply)
		default:
			_, ioErr = unix.Read(int(fd), make([]byte, s.Length))
		}
	})
	err = ioErr
	if err != nil && ok {
		f.log.Debug("ep0 control answer", "request", s.Request, "err", err)
	}
}
