package fs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// guard keeps one filesystem read-only except while something writes to it.
// Writers share one rw period; after the last leaves and a grace period the
// filesystem is synced and remounted ro, retrying while the kernel says EBUSY.
type guard struct {
	mnt   string
	grace time.Duration
	log   *slog.Logger
	// remount is the syscall; tests replace it to inject EBUSY.
	remount func(mnt string, rw bool) error

	mu      sync.Mutex // guards the fields below
	writers int
	whys    map[uint64]string // what each writer is doing, by ticket
	ticket  uint64
	rw      bool
	closed  bool
	gen     uint64 // bumps on every state change, so stale timers do nothing
	timer   *time.Timer
	retry   time.Duration

	cycles atomic.Int64 // rw remounts done
	busy   atomic.Int64 // EBUSY answers seen while going ro
	drift  atomic.Int64 // times the mount was found ro while we believed rw
}

var errClosed = errors.New("store is shutting down")

func newGuard(mnt string, grace time.Duration, log *slog.Logger) (*guard, error) {
	ro, err := IsReadOnly(mnt)
	if err != nil {
		return nil, err
	}
	return &guard{mnt: mnt, grace: grace, log: log, remount: Remount, rw: !ro}, nil
}

// acquire makes the filesystem writable for one writer.
func (g *guard) acquire(ctx context.Context, why string) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, errClosed
	}
	g.writers++
	g.gen++
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	if g.rw {
		// Trust the kernel, not our memory: an admin's mount -o remount,ro
		// (or an older msdav CLI) may have flipped it behind our back, and a
		// write would then fail with EROFS halfway.
		if ro, err := IsReadOnly(g.mnt); err == nil && ro {
			g.log.Error("store was remounted read-only behind msdav's back; making it rw again", "mount", g.mnt, "for", why)
			g.rw = false
			g.drift.Add(1)
		}
	}
	if !g.rw {
		start := time.Now()
		if err := g.remount(g.mnt, true); err != nil {
			g.writers--
			return nil, fmt.Errorf("make the store writable for %s: %w", why, err)
		}
		g.rw = true
		g.cycles.Add(1)
		g.log.Debug("store rw", "mount", g.mnt, "for", why, "took", time.Since(start))
	}
	g.ticket++
	t := g.ticket
	if g.whys == nil {
		g.whys = map[uint64]string{}
	}
	g.whys[t] = why
	var once sync.Once
	return func() { once.Do(func() { g.release(t) }) }, nil
}

func (g *guard) release(t uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.whys, t)
	g.writers--
	if g.writers > 0 || g.closed {
		return
	}
	g.retry = 100 * time.Millisecond
	g.schedule(g.grace)
}

// schedule arms the timer that puts the filesystem back to ro. Caller holds mu.
func (g *guard) schedule(after time.Duration) {
	g.gen++
	gen := g.gen
	if g.timer != nil {
		g.timer.Stop()
	}
	g.timer = time.AfterFunc(after, func() { g.settle(gen) })
}

func (g *guard) settle(gen uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if gen != g.gen || g.writers > 0 || !g.rw || g.closed {
		return
	}
	if err := g.readOnly(); err != nil {
		if isBusy(err) {
			g.busy.Add(1)
			g.log.Warn("store busy, retrying ro remount", "mount", g.mnt, "in", g.retry)
		} else {
			g.log.Error("store stays rw", "mount", g.mnt, "err", err, "retry_in", g.retry)
		}
		g.schedule(g.retry)
		g.retry = min(2*g.retry, 5*time.Second)
	}
}

// readOnly syncs and remounts ro. Caller holds mu and has checked writers == 0.
func (g *guard) readOnly() error {
	if err := SyncFS(g.mnt); err != nil {
		return err
	}
	if err := g.remount(g.mnt, false); err != nil {
		return err
	}
	g.rw = false
	g.log.Debug("store ro", "mount", g.mnt)
	return nil
}

// settleNow puts the filesystem ro at once if nothing writes, retrying EBUSY
// for up to wait. Used at start (crash repair) and at Close.
func (g *guard) settleNow(wait time.Duration) error {
	deadline := time.Now().Add(wait)
	delay := 50 * time.Millisecond
	for {
		g.mu.Lock()
		if g.writers > 0 {
			whys := g.holdersLocked()
			g.mu.Unlock()
			return fmt.Errorf("store %s: %w: %s", g.mnt, ErrStillWriting, strings.Join(whys, ", "))
		}
		g.gen++
		if g.timer != nil {
			g.timer.Stop()
			g.timer = nil
		}
		var err error
		if g.rw {
			err = g.readOnly()
			if isBusy(err) {
				g.busy.Add(1)
			}
		}
		g.mu.Unlock()
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(delay)
		delay = min(2*delay, time.Second)
	}
}

// close stops the guard and leaves the filesystem ro.
func (g *guard) close(wait time.Duration) error {
	err := g.settleNow(wait)
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	return err
}

func (g *guard) state() (rw bool, writers int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.rw, g.writers
}

// holders says what keeps the filesystem rw now.
func (g *guard) holders() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.holdersLocked()
}

// holdersLocked is holders for a caller that holds mu.
func (g *guard) holdersLocked() []string {
	out := make([]string, 0, len(g.whys))
	for _, w := range g.whys {
		out = append(out, w)
	}
	sort.Strings(out)
	return out
}

// Pin keeps the store's filesystem rw for a person (msdav remount rw, for
// scp or rsync work) until Unpin. Without the guard it remounts rw at once.
func (s *Store) Pin(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pin != nil {
		return nil
	}
	if s.guard == nil {
		return Remount(s.mountPoint(), true)
	}
	done, err := s.guard.acquire(ctx, "msdav remount rw")
	if err != nil {
		return err
	}
	s.pin = done
	return nil
}

// Unpin ends Pin and puts the filesystem ro now if nothing else writes;
// otherwise it says what still does (the guard goes ro once they finish).
func (s *Store) Unpin() error {
	s.mu.Lock()
	pin := s.pin
	s.pin = nil
	s.mu.Unlock()
	if s.guard == nil {
		mnt := s.mountPoint()
		if err := SyncFS(mnt); err != nil {
			return err
		}
		return Remount(mnt, false)
	}
	if pin != nil {
		pin()
	}
	if h := s.guard.holders(); len(h) > 0 {
		return fmt.Errorf("%w: %s", ErrStillWriting, strings.Join(h, ", "))
	}
	return s.guard.settleNow(5 * time.Second)
}

// ErrStillWriting: the store stays rw for now, as something still writes.
var ErrStillWriting = errors.New("the store stays rw until these finish")

func (s *Store) mountPoint() string {
	if s.guard != nil {
		return s.guard.mnt
	}
	if mnt, err := MountPointOf(s.real); err == nil {
		return mnt
	}
	return s.real
}

// MountPoint is where the filesystem holding the store root is mounted.
func (s *Store) MountPoint() string { return s.mountPoint() }
