package scsi

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
)

// USB Mass Storage Bulk-Only Transport: a 31-byte CBW on bulk OUT, the data
// phase, a 13-byte CSW on bulk IN.

const (
	cbwSig  = 0x43425355 // "USBC"
	cswSig  = 0x53425355 // "USBS"
	CBWSize = 31
	CSWSize = 13
)

// CSW status values.
const (
	StatusGood   = 0
	StatusFailed = 1
	StatusPhase  = 2
)

// CBW is a parsed command block wrapper.
type CBW struct {
	Tag    uint32
	Length uint32 // bytes the host expects to move
	In     bool   // data phase direction, meaningful when Length > 0
	LUN    byte
	CDB    []byte
}

// ErrInvalidCBW: not a valid or not a meaningful CBW; the device stalls
// both pipes until the host's reset recovery.
var ErrInvalidCBW = errors.New("invalid CBW")

// ParseCBW checks b is exactly one valid, meaningful CBW.
func ParseCBW(b []byte) (CBW, error) {
	if len(b) != CBWSize {
		return CBW{}, fmt.Errorf("%w: %d bytes", ErrInvalidCBW, len(b))
	}
	if binary.LittleEndian.Uint32(b) != cbwSig {
		return CBW{}, fmt.Errorf("%w: bad signature", ErrInvalidCBW)
	}
	flags, lun, n := b[12], b[13], b[14]
	if flags&0x7f != 0 || lun&0xf0 != 0 || n&0xe0 != 0 || n == 0 || n > 16 {
		return CBW{}, fmt.Errorf("%w: reserved bits or CDB length %d", ErrInvalidCBW, n)
	}
	return CBW{
		Tag:    binary.LittleEndian.Uint32(b[4:]),
		Length: binary.LittleEndian.Uint32(b[8:]),
		In:     flags&0x80 != 0,
		LUN:    lun,
		CDB:    append([]byte(nil), b[15:15+n]...),
	}, nil
}

// Bytes encodes the CBW (tests and tools send them).
func (c CBW) Bytes() []byte {
	b := make([]byte, CBWSize)
	binary.LittleEndian.PutUint32(b, cbwSig)
	binary.LittleEndian.PutUint32(b[4:], c.Tag)
	binary.LittleEndian.PutUint32(b[8:], c.Length)
	if c.In {
		b[12] = 0x80
	}
	b[13] = c.LUN
	b[14] = byte(len(c.CDB))
	copy(b[15:], c.CDB)
	return b
}

// CSW builds a command status wrapper.
func CSW(tag, residue uint32, status byte) []byte {
	b := make([]byte, CSWSize)
	binary.LittleEndian.PutUint32(b, cswSig)
	binary.LittleEndian.PutUint32(b[4:], tag)
	binary.LittleEndian.PutUint32(b[8:], residue)
	b[12] = status
	return b
}

// Pipes are the two bulk endpoints of one function. Read returns one
// transfer from bulk OUT; Write sends p as one transfer on bulk IN. HaltIn
// and HaltOut stall an endpoint until the host clears it.
type Pipes interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	HaltIn() error
	HaltOut() error
}

// QueuedPipes also keep several bulk IN transfers in flight: a READ's data
// and its CSW wait in the controller in order, so the host finds the CSW
// queued the moment its data phase ends instead of after a wake-up of
// this process (FunctionFS with AIO).
type QueuedPipes interface {
	Pipes
	// QueueIn starts p on bulk IN and returns; p may be reused at once.
	QueueIn(p []byte) error
	// WaitIn waits for every transfer QueueIn started; the first failure.
	WaitIn() error
}

// SoonReader is Pipes that can wait for a CBW the host is about to send
// (it is streaming READs or WRITEs) more cheaply than Read does.
type SoonReader interface {
	ReadSoon(p []byte) (int, error)
}

// Target serves one LUN over Bulk-Only Transport.
type Target struct {
	LUN   *LUN
	Pipes Pipes
	// Reset is signalled by BulkReset; after an invalid CBW the target
	// waits for it.
	Reset chan struct{}

	// resets counts BulkReset calls: a command that began before the
	// latest one belongs to a host that gave up on it, and sends nothing.
	resets atomic.Uint64

	// Log, if set, hears of phase errors and failed reads and writes:
	// what a host reports as an I/O error; and, once per opcode, of
	// commands this drive does not have: what to look for when a
	// firmware or an installer will not take the drive.
	Log *slog.Logger

	// unknown are the opcodes answered INVALID COMMAND OPERATION CODE so
	// far; only the goroutine running the commands touches it.
	unknown map[byte]bool
}

// errAbandoned ends a command the host reset the device during.
var errAbandoned = errors.New("the host reset the device during the command")

// BulkReset is the control side's Bulk-Only Mass Storage Reset: the host
// timed out or lost track of the command in progress. What was queued
// for it is taken back and what it has not sent yet is never sent: after
// the reset the host's next IN transfer must carry the next command's
// answer, not this one's (a READ still waiting on a slow medium would
// otherwise answer the host's TEST UNIT READY with its data).
func (t *Target) BulkReset() {
	t.resets.Add(1)
	if c, ok := t.Pipes.(interface{ CancelIn() }); ok {
		c.CancelIn()
	}
	t.LUN.Reset()
	if t.Reset != nil {
		select {
		case t.Reset <- struct{}{}:
		default:
		}
	}
}

func isReadWrite(op byte) bool {
	switch op {
	case 0x08, 0x28, 0xa8, 0x88, 0x0a, 0x2a, 0xaa, 0x8a:
		return true
	}
	return false
}

// Serve reads and answers CBWs until ctx ends or the pipes fail (the host
// went away or the function was disabled); it returns that error. ctx is
// looked at between commands: a read of the next CBW ends with the pipes.
//
// With QueuedPipes a command's data and CSW are left queued when its turn
// ends, and the read of the next CBW is queued behind them at once, so it
// waits in the controller when the host sends the CBW, as f_mass_storage's
// does. The host sends a CBW only once it has the last CSW, so this one
// read is the only wake-up per command: in the VM that measures it
// (deploy/vm/guest/throughput_test.go), a READ's CBW reached its first
// data queued in 0.7 ms where a goroutine reading CBWs and waking this
// one took 1.3 ms (side by side with f_mass_storage: 0.65 of its read
// speed, median of twelve runs, against 0.55 of eight).
//
// With a SoonReader, the CBW after a READ or a WRITE is read with
// ReadSoon: the host is streaming and sends it within milliseconds (0.72
// of f_mass_storage's speed against 0.64, medians of eight boots each,
// alternating). After anything else (a TEST UNIT READY a host repeats
// every two seconds) the host may stay quiet, and the wait is Read's.
func (t *Target) Serve(ctx context.Context) error {
	q, _ := t.Pipes.(QueuedPipes)
	soon, _ := t.Pipes.(SoonReader)
	buf := make([]byte, 512) // one max packet: a CBW is always a short one
	streaming := false       // the last command was a READ or a WRITE
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var n int
		var err error
		if streaming && soon != nil {
			n, err = soon.ReadSoon(buf)
		} else {
			n, err = t.Pipes.Read(buf)
		}
		if q != nil {
			// The last command's transfers are done: the host took its
			// CSW before this CBW, or is gone. A failure among them is
			// that command's, which the host has left behind.
			if werr := q.WaitIn(); werr != nil && err == nil && t.Log != nil {
				t.Log.Info("the last command's data or CSW did not reach the host", "err", werr)
			}
		}
		if err != nil {
			return fmt.Errorf("read CBW: %w", err)
		}
		cbw, err := ParseCBW(buf[:n])
		streaming = err == nil && isReadWrite(cbw.CDB[0])
		if err != nil {
			// Stall both pipes; the host's reset recovery clears them.
			t.Pipes.HaltIn()
			t.Pipes.HaltOut()
			if t.Reset != nil {
				select {
				case <-t.Reset:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			continue
		}
		if err := t.run(cbw); err != nil {
			return err
		}
	}
}

// xfer moves one command's data within the agreed length.
type xfer struct {
	p         Pipes
	q         QueuedPipes // p, when it can queue bulk IN
	limit     int64       // bytes the command may move: min(host, device)
	moved     int64
	abandoned func() bool // the host reset the device since the command began
}

func (x *xfer) Send(b []byte) error {
	if n := x.limit - x.moved; int64(len(b)) > n {
		b = b[:n]
	}
	if len(b) == 0 {
		return nil
	}
	if x.abandoned() {
		return errAbandoned
	}
	if x.q != nil {
		if err := x.q.QueueIn(b); err != nil {
			return fmt.Errorf("send data: %w", err)
		}
		x.moved += int64(len(b))
		return nil
	}
	n, err := x.p.Write(b)
	x.moved += int64(n)
	if err != nil {
		return fmt.Errorf("send data: %w", err)
	}
	return nil
}

func (x *xfer) Recv(b []byte) error {
	if x.abandoned() {
		return errAbandoned
	}
	if int64(len(b)) > x.limit-x.moved {
		return fmt.Errorf("receive data: %d bytes asked, %d left in the data phase", len(b), x.limit-x.moved)
	}
	for len(b) > 0 {
		n, err := x.p.Read(b)
		x.moved += int64(n)
		if err != nil {
			return fmt.Errorf("receive data: %w", err)
		}
		if n == 0 {
			return errors.New("receive data: empty transfer")
		}
		b = b[n:]
	}
	return nil
}

// Handle runs one command and sends its CSW, and returns once the host
// has taken it. Host and device disagreeing on the data phase (the
// thirteen cases of the BOT spec) ends in a phase error or a residue with
// the unused pipe stalled, as the spec allows.
func (t *Target) Handle(cbw CBW) error {
	if err := t.run(cbw); err != nil {
		return err
	}
	if q, ok := t.Pipes.(QueuedPipes); ok {
		if err := q.WaitIn(); err != nil {
			return fmt.Errorf("send data or CSW: %w", err)
		}
	}
	return nil
}

// run is Handle that leaves queued transfers queued (Serve).
func (t *Target) run(cbw CBW) error {
	err := t.handle(cbw)
	if errors.Is(err, errAbandoned) {
		if t.Log != nil {
			t.Log.Info("command abandoned: the host reset the drive", "cdb", fmt.Sprintf("%x", cbw.CDB))
		}
		return nil
	}
	return err
}

func (t *Target) handle(cbw CBW) error {
	epoch := t.resets.Load()
	abandoned := func() bool { return t.resets.Load() != epoch }
	hostDir, hostLen := None, int64(cbw.Length)
	if hostLen > 0 {
		hostDir = Out
		if cbw.In {
			hostDir = In
		}
	}
	q, _ := t.Pipes.(QueuedPipes)
	// waitData waits for the data phase queued so far: before a stall
	// (a controller refuses to halt an endpoint with transfers queued)
	// and to learn whether the host took it.
	waitData := func() error {
		if q == nil {
			return nil
		}
		if err := q.WaitIn(); err != nil {
			if abandoned() { // canceled by the reset
				return errAbandoned
			}
			return fmt.Errorf("send data: %w", err)
		}
		return nil
	}
	halt := func() error {
		if abandoned() {
			return errAbandoned
		}
		switch hostDir {
		case In:
			if err := waitData(); err != nil {
				return err
			}
			t.Pipes.HaltIn()
		case Out:
			t.Pipes.HaltOut()
		}
		return nil
	}
	csw := func(residue int64, status byte) error {
		if abandoned() {
			return errAbandoned
		}
		b := CSW(cbw.Tag, uint32(residue), status)
		if q == nil {
			if _, err := t.Pipes.Write(b); err != nil {
				return fmt.Errorf("send CSW: %w", err)
			}
			return nil
		}
		// Queued behind the data; waited for with the next CBW.
		if err := q.QueueIn(b); err != nil {
			return fmt.Errorf("send CSW: %w", err)
		}
		return nil
	}

	if cbw.LUN != 0 {
		// One LUN per function: Get Max LUN says 0.
		if err := halt(); err != nil {
			return err
		}
		return csw(hostLen, StatusFailed)
	}
	devDir, devLen := t.LUN.Phase(cbw.CDB)
	if devLen == 0 {
		devDir = None
	}
	if devDir != None && (hostDir != devDir || hostLen < devLen) {
		// Cases 2, 3, 7, 8, 10, 13: the host cannot take what the command
		// means to move.
		if t.Log != nil {
			t.Log.Warn("phase error", "cdb", fmt.Sprintf("%x", cbw.CDB), "host_in", cbw.In, "host_len", hostLen, "device_len", devLen)
		}
		if err := halt(); err != nil {
			return err
		}
		return csw(hostLen, StatusPhase)
	}
	x := &xfer{p: t.Pipes, q: q, limit: min(hostLen, devLen), abandoned: abandoned}
	err := t.LUN.Exec(cbw.CDB, x)
	var ce *CheckError
	if err != nil && !errors.As(err, &ce) {
		return err
	}
	residue := hostLen - x.moved
	if residue > 0 {
		if err := halt(); err != nil {
			return err
		}
	}
	if ce != nil && ce.Sense == InvalidOpcode && t.Log != nil && !t.unknown[cbw.CDB[0]] {
		if t.unknown == nil {
			t.unknown = map[byte]bool{}
		}
		t.unknown[cbw.CDB[0]] = true
		t.Log.Info("the host sent a command this drive does not have; it is refused (invalid opcode), and this is said once per opcode",
			"cdb", fmt.Sprintf("%x", cbw.CDB))
	}
	if ce != nil {
		if t.Log != nil && isReadWrite(cbw.CDB[0]) {
			t.Log.Warn("read or write failed", "cdb", fmt.Sprintf("%x", cbw.CDB), "sense", fmt.Sprintf("%02x/%02x/%02x", ce.Sense.Key, ce.Sense.ASC, ce.Sense.ASCQ))
		}
		return csw(residue, StatusFailed)
	}
	return csw(residue, StatusGood)
}
