package fs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrUnavailable marks a part that did not answer within the part timeout.
var ErrUnavailable = errors.New("did not answer in time (dead NFS/CIFS server?)")

// prober runs filesystem calls that may hang (a dead NFS server) with a
// deadline. A part with a call still stuck past its deadline answers
// ErrUnavailable at once to every other call, whatever it is (walk,
// statfs, lease), instead of costing each of them the timeout again: the
// catalog of a store with a dead library took 4 s, a timeout per call.
// Calls that are merely running are no reason to refuse another: a lease
// renewal and a request reading the leases often overlap, and refusing
// the second gave a 503 and a failed renewal with the server up.
type prober struct {
	timeout time.Duration
	mu      sync.Mutex
	hung    map[string]int // by part: calls still running past their deadline
}

func (p *prober) run(ctx context.Context, key string, fn func()) error {
	part := key
	if i := strings.IndexByte(key, ':'); i >= 0 {
		part = key[i+1:]
	}
	p.mu.Lock()
	if p.hung[part] > 0 {
		p.mu.Unlock()
		return ErrUnavailable
	}
	p.mu.Unlock()
	done := make(chan struct{})
	var late bool // guarded by p.mu
	go func() {
		defer func() {
			// done closes under mu, so the caller, holding mu, either
			// sees it closed or has marked this call late before we look.
			p.mu.Lock()
			if late {
				p.hung[part]--
				if p.hung[part] <= 0 {
					delete(p.hung, part)
				}
			}
			close(done)
			p.mu.Unlock()
		}()
		fn()
	}()
	t := time.NewTimer(p.timeout)
	defer t.Stop()
	var err error = ErrUnavailable
	select {
	case <-done:
		return nil
	case <-t.C:
	case <-ctx.Done():
		err = ctx.Err()
	}
	// Still running and nobody waits for it: it counts as hung until it
	// ends, so callers who give up early cannot pile calls onto a dead part.
	p.mu.Lock()
	select {
	case <-done: // finished just now
		p.mu.Unlock()
		return nil
	default:
	}
	late = true
	if p.hung == nil {
		p.hung = map[string]int{}
	}
	p.hung[part]++
	p.mu.Unlock()
	return err
}

// partMounts returns the root's own mount (as rel ".") and every mount below
// the store root, keyed by store-relative path, innermost last.
func (s *Store) partMounts() ([]partMount, error) {
	mounts, err := ReadMounts()
	if err != nil {
		return nil, err
	}
	rootMnt, ok := mountOf(mounts, s.real)
	if !ok {
		return nil, fmt.Errorf("no mount holds %s", s.real)
	}
	out := []partMount{{rel: ".", Mount: rootMnt}}
	seen := map[string]int{}
	for _, m := range mounts {
		if m.Point == s.real || !under(m.Point, s.real) {
			continue
		}
		rel := filepath.ToSlash(strings.TrimPrefix(m.Point, s.real+"/"))
		if i, dup := seen[rel]; dup { // stacked mounts: the last one is visible
			out[i].Mount = m
			continue
		}
		seen[rel] = len(out)
		out = append(out, partMount{rel: rel, Mount: m})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out, nil
}

type partMount struct {
	rel string
	Mount
}

// Parts lists the root's filesystem (".") and every filesystem mounted below
// it, live on every call, each probed with the part timeout.
func (s *Store) Parts(ctx context.Context) ([]Part, error) {
	pms, err := s.partMounts()
	if err != nil {
		return nil, err
	}
	out := make([]Part, len(pms))
	for i, pm := range pms {
		out[i] = s.describe(ctx, pm)
	}
	return out, nil
}

func (s *Store) describe(ctx context.Context, pm partMount) Part {
	p := Part{Path: pm.rel, FSType: pm.FSType}
	dir := filepath.Join(s.real, filepath.FromSlash(pm.rel))
	var (
		size, free uint64
		ro         bool
		serr, werr error
		fi         os.FileInfo
	)
	err := s.probe.run(ctx, "statfs:"+pm.rel, func() {
		size, free, ro, serr = space(dir)
		werr = canWrite(dir)
		fi, _ = os.Stat(dir)
	})
	if err != nil {
		p.Reason = err.Error()
		return p
	}
	if serr != nil {
		p.Reason = serr.Error()
		return p
	}
	p.Available, p.Size, p.Free = true, size, free
	guarded := pm.rel == "." && s.guard != nil
	switch {
	case ro && !guarded:
		p.Reason = "mounted read-only"
	case pm.ReadOnly() && !guarded:
		p.Reason = "mounted read-only"
	case werr != nil && !guarded:
		p.Reason = permissionReason(pm.Mount, fi, werr)
	default:
		p.Writable = true
	}
	return p
}

// permissionReason explains why this process may not write a part, naming
// the usual culprit: exFAT/vfat mounted root-owned without umask=0000.
func permissionReason(m Mount, fi os.FileInfo, err error) string {
	if errors.Is(err, syscall.EROFS) {
		return "mounted read-only"
	}
	owner := -1
	if fi != nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			owner = int(st.Uid)
		}
	}
	switch {
	case owner == 0 && uid() != 0 && (m.FSType == "exfat" || m.FSType == "vfat" || m.FSType == "ntfs3" || m.FSType == "fuseblk"):
		return fmt.Sprintf("%s is owned by root and msdav runs as uid %d: mount it with umask=0000 (or uid=%d)", m.FSType, uid(), uid())
	case owner == 0 && uid() != 0:
		return fmt.Sprintf("owned by root and msdav runs as uid %d: permission denied", uid())
	default:
		return fmt.Sprintf("permission denied for uid %d: %v", uid(), err)
	}
}

// Usage reports the part holding rel, for WebDAV quota properties.
func (s *Store) Usage(ctx context.Context, rel string) (Part, error) {
	rel, err := Clean(rel)
	if err != nil {
		return Part{}, err
	}
	pms, err := s.partMounts()
	if err != nil {
		return Part{}, err
	}
	best := pms[0]
	for _, pm := range pms[1:] {
		if under("/"+rel, "/"+pm.rel) && len(pm.rel) > len(best.rel) {
			best = pm
		}
	}
	p := s.describe(ctx, best)
	if !p.Available {
		return p, fmt.Errorf("part %s: %s", p.Path, p.Reason)
	}
	return p, nil
}

// Quota answers Usage for many paths at once, for one request: the mount
// table is read once and each part described once. A PROPFIND of a folder
// of 2,000 folders asked Usage 2,000 times, each reading
// /proc/self/mountinfo and probing the part: 419 ms against nginx's 20 ms.
type Quota struct {
	s     *Store
	ctx   context.Context
	pms   []partMount
	err   error
	parts map[string]Part // by part path, as described once
}

// NewQuota starts a batch of Usage questions.
func (s *Store) NewQuota(ctx context.Context) *Quota {
	q := &Quota{s: s, ctx: ctx, parts: map[string]Part{}}
	q.pms, q.err = s.partMounts()
	return q
}

// Usage is Store.Usage from the batch's one look at the parts.
func (q *Quota) Usage(rel string) (Part, error) {
	if q == nil {
		return Part{}, errors.New("no quota batch")
	}
	rel, err := Clean(rel)
	if err != nil {
		return Part{}, err
	}
	if q.err != nil {
		return Part{}, q.err
	}
	best := q.pms[0]
	for _, pm := range q.pms[1:] {
		if under("/"+rel, "/"+pm.rel) && len(pm.rel) > len(best.rel) {
			best = pm
		}
	}
	p, ok := q.parts[best.rel]
	if !ok {
		p = q.s.describe(q.ctx, best)
		q.parts[best.rel] = p
	}
	if !p.Available {
		return p, fmt.Errorf("part %s: %s", p.Path, p.Reason)
	}
	return p, nil
}
