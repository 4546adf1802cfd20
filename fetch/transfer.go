package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	iofs "io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/msdav/msdav/fetch/unpack"
	"github.com/msdav/msdav/fs"
)

// Start checks the request, connects, and hands back the running job once
// the server answered: the name, the size and the compression are then
// known, and a download that cannot fit is refused before a byte is
// stored. Errors that come after a job exists return the job too (failed).
func (m *Manager) Start(req Request) (Job, error) {
	u, auto, wantSum, err := parseRequest(req)
	if err != nil {
		return Job{}, err
	}
	var rel string
	if req.Path != "" {
		if rel, err = m.cleanPath(req.Path); err != nil {
			return Job{}, err
		}
	}
	if err := m.checkURL(m.ctx, u); err != nil {
		return Job{}, err
	}
	ctx, cancel := context.WithCancel(m.ctx)
	j := &job{j: Job{ID: newID(), Kind: "fetch", URL: u.Redacted(), Path: rel, State: Running, Started: time.Now().UTC()},
		cancel: cancel, done: make(chan struct{})}
	m.add(j)
	fail := func(err error) (Job, error) {
		cancel()
		m.finish(j, Failed, err, "")
		close(j.done)
		m.mu.Lock()
		defer m.mu.Unlock()
		return j.snapshot(), err
	}

	t := &transfer{m: m, j: j, ctx: ctx, url: u.String(), total: -1}
	resp, err := t.open(0)
	if err != nil {
		return fail(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return fail(fmt.Errorf("%w: %s answered %s", ErrRemote, u.Redacted(), resp.Status))
	}
	t.take(resp)
	br, format, err := unpack.Peek(t)
	if err != nil {
		t.close()
		return fail(fmt.Errorf("%w: %s: %v", ErrRemote, u.Redacted(), err))
	}
	if !auto {
		format = unpack.None
	}
	// A bomb is refused here, with a 422, before anything is stored.
	head, _ := br.Peek(unpack.CheckLen)
	if err := unpack.Check(head, format); err != nil {
		t.close()
		return fail(err)
	}
	if rel == "" {
		if rel, err = m.cleanPath(unpack.Trim(nameOf(resp, u), format)); err != nil {
			t.close()
			return fail(err)
		}
	}
	m.mu.Lock()
	// Checked and claimed at once: two fetches to one name started
	// together must not both pass and then overwrite each other.
	var other string
	for _, o := range m.jobs {
		if o != j && o.claimed && o.j.State == Running && o.j.Path == rel {
			other = o.j.ID
		}
	}
	if other == "" {
		j.j.Path, j.claimed = rel, true
	}
	j.j.Compression = string(format)
	if t.total >= 0 {
		e := t.total
		j.j.Expected = &e
	}
	m.mu.Unlock()
	if other != "" {
		t.close()
		return fail(fmt.Errorf("%s %w: job %s is fetching it right now", rel, ErrExists, other))
	}

	if err := m.vacant(rel); err != nil {
		t.close()
		return fail(err)
	}
	if err := m.fits(ctx, j, rel, t.total); err != nil {
		t.close()
		return fail(err)
	}
	// Held for the whole job, journal included, so the journal goes only
	// after the image is committed or gone.
	release, err := m.store.Write(ctx, "fetch "+rel)
	if err != nil {
		t.close()
		return fail(err)
	}
	size := int64(-1)
	if format == unpack.None {
		size = t.total
	}
	up, err := m.store.Begin(ctx, rel, size, fs.ReceiveOptions{Image: true, NoReplace: true})
	if err != nil {
		release()
		t.close()
		return fail(fmt.Errorf("store %s: %w", rel, plain(err)))
	}
	j.upload.Store(up)
	m.mu.Lock()
	snap := j.snapshot()
	if m.closed {
		m.mu.Unlock()
		up.Abort()
		release()
		t.close()
		return fail(errors.New("msdav is stopping"))
	}
	m.wg.Add(1)
	m.mu.Unlock()
	m.writeJournal(j, snap)
	go func() {
		defer m.wg.Done()
		defer close(j.done)
		defer release()
		m.run(t, j, up, br, format, wantSum)
	}()
	m.publish(j)
	m.o.Log.Info("fetch started", "job", snap.ID, "url", u.Redacted(), "path", rel, "compression", format)
	return snap, nil
}

// cleanPath makes a store path of a client's or server's name.
func (m *Manager) cleanPath(p string) (string, error) {
	rel, err := fs.ImageName(p)
	if err != nil {
		return "", fmt.Errorf("%w: path %q is not a usable image name", ErrInvalid, p)
	}
	return rel, nil
}

// vacant refuses a path that holds an image or is being written: a fetch
// never replaces an image (delete it first).
func (m *Manager) vacant(rel string) error {
	if _, ok := m.store.Uploading(rel); ok {
		return fmt.Errorf("%s %w: it is being uploaded or fetched right now", rel, ErrExists)
	}
	fi, err := m.store.Root().Stat(rel)
	switch {
	case err == nil && fi.IsDir():
		return fmt.Errorf("%s %w as a folder: give a file name in \"path\"", rel, ErrExists)
	case err == nil:
		return fmt.Errorf("%s %w in the store: delete it first or give another \"path\"", rel, ErrExists)
	case !errors.Is(err, iofs.ErrNotExist):
		return fmt.Errorf("%s: %w", rel, plain(err))
	}
	if dir := path.Dir(rel); dir != "." {
		if fi, err := m.store.Root().Stat(dir); err != nil || !fi.IsDir() {
			return fmt.Errorf("%w: folder %s does not exist in the store", ErrInvalid, dir)
		}
	}
	return nil
}

// fits refuses early what cannot fit: Content-Length against the free
// space of the target part, less what running fetches to the same part
// still need. A compressed download is at least its own size.
func (m *Manager) fits(ctx context.Context, self *job, rel string, total int64) error {
	if total < 0 {
		return nil
	}
	part, err := m.store.Usage(ctx, rel)
	if err != nil {
		return nil // the write itself will tell
	}
	type claim struct {
		path string
		left int64
	}
	var others []claim
	m.mu.Lock()
	for _, j := range m.jobs {
		if j == self || j.j.State != Running || j.j.Expected == nil || j.j.Compression != "" {
			continue
		}
		w := int64(0)
		if u := j.upload.Load(); u != nil {
			w = u.Received()
		}
		others = append(others, claim{j.j.Path, max(*j.j.Expected-w, 0)})
	}
	m.mu.Unlock()
	// Outside the lock: a part's statfs may take up to the part timeout.
	var promised int64
	for _, o := range others {
		if p, err := m.store.Usage(ctx, o.path); err == nil && p.Path == part.Path {
			promised += o.left
		}
	}
	if uint64(total+promised) > part.Free {
		msg := fmt.Sprintf("%s needs %d bytes and %s has %d free", rel, total, partName(part.Path), part.Free)
		if promised > 0 {
			msg += fmt.Sprintf(", %d of them promised to running fetches", promised)
		}
		return fmt.Errorf("%s: %w", msg, syscall.ENOSPC)
	}
	return nil
}

func partName(p string) string {
	if p == "." {
		return "the store"
	}
	return "part " + p
}

// plain drops the file names from an *os.PathError or *os.LinkError: they
// would name the upload's temp file, which means nothing to a person.
func plain(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

// nameOf is the file name the server gives (Content-Disposition), else
// the last element of the URL asked for, else of the one redirected to.
func nameOf(resp *http.Response, asked *url.URL) string {
	if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil {
		if n := path.Base(strings.ReplaceAll(params["filename"], "\\", "/")); usable(n) {
			return n
		}
	}
	if n := path.Base(asked.Path); usable(n) && strings.Contains(n, ".") {
		return n
	}
	if resp.Request != nil {
		if n := path.Base(resp.Request.URL.Path); usable(n) {
			return n
		}
	}
	if n := path.Base(asked.Path); usable(n) {
		return n
	}
	return "download.img"
}

func usable(n string) bool {
	rel, err := fs.ImageName(n)
	return err == nil && rel == n
}

// run streams the download into the upload until it is committed or gone.
func (m *Manager) run(t *transfer, j *job, up *fs.Upload, br io.Reader, format unpack.Format, wantSum string) {
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tk := time.NewTicker(m.o.ProgressEvery)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				m.publish(j)
			}
		}
	}()
	defer t.close()
	var raw hash.Hash
	for {
		src := br
		if format != unpack.None && wantSum != "" {
			// The vendor's sum may be of the compressed file.
			raw = sha256.New()
			src = io.TeeReader(br, raw)
		}
		dec, err := unpack.Reader(src, format)
		if err == nil {
			_, err = up.ReadFrom(damage{dec, format})
			dec.Close()
		} else {
			err = &damagedError{format, err}
		}
		if t.restarted || errors.Is(err, errRestart) {
			if err = up.Reset(); err == nil {
				br = t.rewound()
				continue
			}
		}
		if err == nil && t.total >= 0 && t.pos != t.total {
			err = fmt.Errorf("%w: the server sent %d of %d bytes", ErrRemote, t.pos, t.total)
		}
		if err == nil {
			got := up.Sum()
			if wantSum != "" && got != wantSum && (raw == nil || hex.EncodeToString(raw.Sum(nil)) != wantSum) {
				msg := fmt.Sprintf("sha256 mismatch: want %s, the image is %s", wantSum, got)
				if raw != nil {
					msg += " and the download " + hex.EncodeToString(raw.Sum(nil))
				}
				err = errors.New(msg + "; nothing was kept")
			}
		}
		if err != nil {
			up.Abort()
			if t.ctx.Err() != nil {
				var why error
				if m.ctx.Err() != nil {
					why = errors.New("msdav is stopping; nothing of it was kept")
				}
				m.finish(j, Canceled, why, "")
				return
			}
			if fs.IsNoSpace(err) {
				err = fmt.Errorf("the store ran out of space after %d bytes: %w", up.Received(), plain(err))
			}
			m.finish(j, Failed, err, "")
			return
		}
		sum := up.Sum()
		if err := up.Commit(); err != nil {
			m.finish(j, Failed, fmt.Errorf("store %s: %w", j.j.Path, plain(err)), "")
			return
		}
		m.finish(j, Done, nil, sum)
		return
	}
}

// damage marks what the decoder itself reports (not the download's or the
// disk's errors, which pass through it) as damaged compressed data.
type damage struct {
	r io.Reader
	f unpack.Format
}

func (d damage) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	var limit *unpack.LimitError
	if err != nil && err != io.EOF && !errors.Is(err, ErrRemote) && !errors.Is(err, errRestart) &&
		!errors.Is(err, context.Canceled) && !errors.As(err, &limit) && d.f != unpack.None {
		err = &damagedError{d.f, err}
	}
	return n, err
}

type damagedError struct {
	f   unpack.Format
	err error
}

func (e *damagedError) Error() string { return fmt.Sprintf("%s data is damaged: %v", e.f, e.err) }
func (e *damagedError) Unwrap() error { return e.err }

// errRestart tells run that the server sent the whole file again (it
// ignored Range, or the file changed): start over from the first byte.
var errRestart = errors.New("restart from the first byte")

// transfer is the download's byte stream: one http response after another,
// resumed with Range where the last one broke off. It notices stalls, and
// reports progress in job.received.
type transfer struct {
	m   *Manager
	j   *job
	ctx context.Context
	url string

	body       io.ReadCloser
	stop       func() bool // stops the stall timer of body
	resetTimer func() bool
	stalled    chan struct{}
	pos        int64 // bytes of the file received
	total      int64 // -1 when unknown
	etag       string
	modified   string
	fails      int // tries since the last progress
	restarts   int
	restarted  bool // a 200 came instead of a 206: run must start over
	progress   int64
}

// open sends a GET from byte from (Range, If-Range) and waits for headers.
func (t *transfer) open(from int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(t.ctx, "GET", t.url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	req.Header.Set("User-Agent", "msdav-fetch")
	if from > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", from))
		if t.etag != "" {
			req.Header.Set("If-Range", t.etag)
		} else if t.modified != "" {
			req.Header.Set("If-Range", t.modified)
		}
	}
	resp, err := t.m.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, ErrRefused) || errors.Is(err, ErrInvalid) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrRemote, t.redacted(), err)
	}
	return resp, nil
}

func (t *transfer) redacted() string {
	if u, err := url.Parse(t.url); err == nil {
		return u.Redacted()
	}
	return t.url
}

// take makes resp (a 200 from the first byte) the current body and
// remembers what identifies the file, for If-Range.
func (t *transfer) take(resp *http.Response) {
	t.setBody(resp)
	t.pos, t.total = 0, resp.ContentLength
	t.j.received.Store(0)
	t.etag, t.modified = "", resp.Header.Get("Last-Modified")
	if e := resp.Header.Get("ETag"); e != "" && !strings.HasPrefix(e, "W/") {
		t.etag = e // If-Range takes strong validators only
	}
}

// setBody starts reading resp with a stall timer: a read that brings
// nothing for Options.Stall closes the body, and the read fails.
func (t *transfer) setBody(resp *http.Response) {
	t.body = resp.Body
	stalled := make(chan struct{})
	t.stalled = stalled
	body := resp.Body
	// A read may bring data just as the timer fires and re-arm it: the
	// stall is signalled, and the body closed, once.
	var once sync.Once
	timer := time.AfterFunc(t.m.o.Stall, func() { once.Do(func() { close(stalled); body.Close() }) })
	t.stop = timer.Stop
	t.resetTimer = func() bool { return timer.Reset(t.m.o.Stall) }
}

func (t *transfer) close() {
	if t.body != nil {
		t.stop()
		t.body.Close()
		t.body = nil
	}
}

// Read reads the file on, resuming after a drop or stall.
func (t *transfer) Read(p []byte) (int, error) {
	if t.restarted {
		return 0, errRestart
	}
	for {
		if t.body == nil {
			return 0, fmt.Errorf("%w: no connection", ErrRemote)
		}
		n, err := t.body.Read(p)
		if n > 0 {
			t.resetTimer()
			t.pos += int64(n)
			t.progress += int64(n)
			t.j.received.Store(t.pos)
			if t.progress >= 64<<10 {
				t.fails = 0
			}
		}
		if err == nil {
			return n, nil
		}
		if errors.Is(err, io.EOF) && (t.total < 0 || t.pos >= t.total) {
			return n, io.EOF
		}
		if t.ctx.Err() != nil {
			return n, t.ctx.Err()
		}
		cause := err
		select {
		case <-t.stalled:
			cause = fmt.Errorf("no data for %s", t.m.o.Stall)
		default:
			if errors.Is(err, io.EOF) {
				cause = io.ErrUnexpectedEOF
			}
		}
		if rerr := t.resume(cause); rerr != nil {
			return n, rerr
		}
		if t.restarted {
			return n, errRestart
		}
		if n > 0 {
			return n, nil
		}
	}
}

// resume reconnects after the current body broke off at t.pos, with
// backoff, until a response continues the file or the tries run out.
func (t *transfer) resume(cause error) error {
	t.close()
	for {
		t.fails++
		if t.fails > t.m.o.Retries {
			return fmt.Errorf("%w: connection lost at byte %d and %d tries to resume failed; last: %v", ErrRemote, t.pos, t.m.o.Retries, cause)
		}
		wait := t.m.o.Backoff << min(t.fails-1, 16)
		wait = min(wait, t.m.o.MaxBackoff)
		t.m.o.Log.Info("fetch resuming", "job", t.j.j.ID, "at", t.pos, "try", t.fails, "wait", wait, "cause", cause)
		select {
		case <-t.ctx.Done():
			return t.ctx.Err()
		case <-time.After(wait):
		}
		if t.etag == "" && t.modified == "" {
			// Nothing proves the file is still the same: only a fresh
			// start is safe.
			resp, err := t.open(0)
			if err != nil {
				cause = err
				continue
			}
			if resp.StatusCode != http.StatusOK {
				resp.Body.Close()
				cause = fmt.Errorf("server answered %s", resp.Status)
				if permanent(resp.StatusCode) {
					return fmt.Errorf("%w: %s", ErrRemote, cause)
				}
				continue
			}
			return t.startOver(resp, "the server gives no ETag or Last-Modified to resume by")
		}
		resp, err := t.open(t.pos)
		if err != nil {
			if t.ctx.Err() != nil {
				return t.ctx.Err()
			}
			cause = err
			continue
		}
		switch {
		case resp.StatusCode == http.StatusPartialContent:
			if start, ok := rangeStart(resp.Header.Get("Content-Range")); !ok || start != t.pos {
				resp.Body.Close()
				return fmt.Errorf("%w: asked to resume at byte %d, the server sent %q", ErrRemote, t.pos, resp.Header.Get("Content-Range"))
			}
			t.setBody(resp)
			t.progress = 0
			t.m.mu.Lock()
			t.j.j.Resumes++
			t.m.mu.Unlock()
			return nil
		case resp.StatusCode == http.StatusOK:
			why := "the server ignored Range"
			if resp.Header.Get("Accept-Ranges") == "bytes" {
				why = "the file changed on the server"
			}
			return t.startOver(resp, why)
		default:
			resp.Body.Close()
			cause = fmt.Errorf("server answered %s", resp.Status)
			if permanent(resp.StatusCode) {
				return fmt.Errorf("%w: resuming at byte %d: %v", ErrRemote, t.pos, cause)
			}
		}
	}
}

// startOver takes a whole new copy of the file and says so in the job.
func (t *transfer) startOver(resp *http.Response, why string) error {
	if t.restarts >= t.m.o.Retries {
		resp.Body.Close()
		return fmt.Errorf("%w: gave up after restarting from zero %d times (%s, and the connection broke each time)", ErrRemote, t.restarts, why)
	}
	t.restarts++
	t.take(resp)
	t.restarted = true
	t.progress = 0
	t.m.mu.Lock()
	t.j.j.Note = fmt.Sprintf("restarted from zero %d time(s): %s", t.restarts, why)
	if resp.ContentLength >= 0 {
		e := resp.ContentLength
		t.j.j.Expected = &e
	}
	t.m.mu.Unlock()
	t.m.o.Log.Warn("fetch restarting from the first byte", "job", t.j.j.ID, "why", why)
	return nil
}

// rewound returns the reader for the new copy after a restart.
func (t *transfer) rewound() io.Reader {
	t.restarted = false
	br, _, _ := unpack.Peek(t)
	return br
}

func permanent(status int) bool {
	return status >= 400 && status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests
}

// rangeStart reads the first byte of "bytes 100-199/1000".
func rangeStart(cr string) (int64, bool) {
	s, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, false
	}
	s, _, ok = strings.Cut(s, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
