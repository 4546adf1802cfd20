// Package fetch downloads images from http(s) URLs into the store as jobs:
// resumed after drops and stalls, decompressed on the way in, checked by sha256.
package fetch

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	iofs "io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/problem"
)

// Errors Start returns, for the API to pick a status by.
var (
	ErrInvalid  = problem.New(400, "invalid request")
	ErrExists   = problem.New(409, "already exists")
	ErrRemote   = problem.New(502, "download failed")
	ErrNotFound = errors.New("no such job")
)

// Options configure a Manager. Zero limits get the defaults noted.
type Options struct {
	// AllowPrivate lets URLs name loopback, private and link-local hosts.
	AllowPrivate bool
	// Publish, if set, gets ("job", Job) on every state change and about
	// every ProgressEvery while a job runs.
	Publish func(kind string, v any)
	Log     *slog.Logger

	Retries       int           // tries after a drop or stall without progress; 8
	Backoff       time.Duration // first wait before a retry, doubled each time; 1s
	MaxBackoff    time.Duration // 30s
	Stall         time.Duration // no byte for this long counts as a drop; 30s
	HeaderTimeout time.Duration // for the response headers; 30s
	DialTimeout   time.Duration // 15s
	ProgressEvery time.Duration // 500ms
	MaxRedirects  int           // 10
	Keep          int           // finished jobs remembered; 100

	TLS      *tls.Config                                                  // nil: the system's CA roots
	LookupIP func(ctx context.Context, host string) ([]netip.Addr, error) // nil: the system resolver
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Backoff, time.Second)
	def(&o.MaxBackoff, 30*time.Second)
	def(&o.Stall, 30*time.Second)
	def(&o.HeaderTimeout, 30*time.Second)
	def(&o.DialTimeout, 15*time.Second)
	def(&o.ProgressEvery, 500*time.Millisecond)
	if o.Retries <= 0 {
		o.Retries = 8
	}
	if o.MaxRedirects <= 0 {
		o.MaxRedirects = 10
	}
	if o.Keep <= 0 {
		o.Keep = 100
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// Request asks for one download (the body of POST /api/images/fetch).
type Request struct {
	URL        string `json:"url"`
	Path       string `json:"path,omitempty"`       // default: from Content-Disposition or the URL
	SHA256     string `json:"sha256,omitempty"`     // of the download or of the image
	Decompress string `json:"decompress,omitempty"` // "auto" (default) or "none"
}

// Job states.
const (
	Running  = "running"
	Done     = "done"
	Failed   = "failed"
	Canceled = "canceled"
)

// Job is a download as the API shows it.
type Job struct {
	ID          string     `json:"id"`
	Kind        string     `json:"kind"` // always "fetch"
	URL         string     `json:"url"`
	Path        string     `json:"path"`
	State       string     `json:"state"`
	Received    int64      `json:"received"` // bytes from the server (compressed)
	Expected    *int64     `json:"expected"` // Content-Length; null when unknown
	Written     int64      `json:"written"`  // image bytes in the store
	SHA256      string     `json:"sha256,omitempty"`
	Error       string     `json:"error,omitempty"`
	Compression string     `json:"compression,omitempty"` // xz, gzip, zstd, bzip2 when decompressed
	Resumes     int        `json:"resumes"`               // drops and stalls resumed
	Note        string     `json:"note,omitempty"`        // what happened on the way (restarts)
	Started     time.Time  `json:"started"`
	Finished    *time.Time `json:"finished,omitempty"`
}

// Manager runs fetch jobs into one store.
type Manager struct {
	store  *fs.Store
	o      Options
	client *http.Client
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	jobs   map[string]*job
	order  []string // ids, oldest first
	closed bool     // no job starts after Close
}

// job is a Job and the live state behind it.
type job struct {
	j         Job  // guarded by Manager.mu
	claimed   bool // j.Path is this job's; guarded by Manager.mu
	journaled bool
	received  atomic.Int64
	upload    atomic.Pointer[fs.Upload]
	cancel    context.CancelFunc
	done      chan struct{}
}

// New returns a Manager for store. Jobs a crash interrupted (their journal
// is still in the store) are listed as failed, saying so.
func New(store *fs.Store, o Options) *Manager {
	o.defaults()
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{store: store, o: o, ctx: ctx, cancel: cancel, jobs: map[string]*job{}}
	tr := &http.Transport{
		Proxy:                 nil, // a proxy would dial for us, past the guard
		DialContext:           m.dial,
		TLSClientConfig:       o.TLS,
		TLSHandshakeTimeout:   o.DialTimeout,
		ResponseHeaderTimeout: o.HeaderTimeout,
		// Go would ask for gzip and undo it, which breaks Range and the counts.
		DisableCompression:  true,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}
	m.client = &http.Client{Transport: tr, CheckRedirect: m.checkRedirect}
	m.recover()
	return m
}

func (m *Manager) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > m.o.MaxRedirects {
		return fmt.Errorf("stopped after %d redirects (a redirect loop?)", m.o.MaxRedirects)
	}
	return m.checkURL(req.Context(), req.URL)
}

// snapshot is the job's JSON value now. Call with m.mu held.
func (j *job) snapshot() Job {
	v := j.j
	if v.State == Running {
		v.Received = j.received.Load()
		if u := j.upload.Load(); u != nil {
			v.Written = u.Received()
		}
	}
	return v
}

// List returns every job, oldest first.
func (m *Manager) List() []Job {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Job, 0, len(m.order))
	for _, id := range m.order {
		out = append(out, m.jobs[id].snapshot())
	}
	return out
}

// Get returns one job.
func (m *Manager) Get(id string) (Job, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	if !ok {
		return Job{}, false
	}
	return j.snapshot(), true
}

// Cancel stops a running job and returns once nothing of it is left in the
// store; a finished job is forgotten.
func (m *Manager) Cancel(id string) error {
	m.mu.Lock()
	j, ok := m.jobs[id]
	if !ok {
		m.mu.Unlock()
		return fmt.Errorf("%w %q", ErrNotFound, id)
	}
	running := j.j.State == Running
	if !running {
		m.forget(id)
	}
	m.mu.Unlock()
	if running {
		j.cancel()
		<-j.done
	}
	return nil
}

// forget drops a job from the list. Call with m.mu held.
func (m *Manager) forget(id string) {
	delete(m.jobs, id)
	for i, o := range m.order {
		if o == id {
			m.order = append(m.order[:i], m.order[i+1:]...)
			break
		}
	}
}

// Close cancels every running job and waits until each has cleaned up.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
}

// publish sends the job's state to the event stream, if any.
func (m *Manager) publish(j *job) {
	if m.o.Publish == nil {
		return
	}
	m.mu.Lock()
	v := j.snapshot()
	m.mu.Unlock()
	m.o.Publish("job", v)
}

// add records a new job, dropping the oldest finished ones beyond Keep.
func (m *Manager) add(j *job) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.jobs[j.j.ID] = j
	m.order = append(m.order, j.j.ID)
	for i := 0; len(m.order) > m.o.Keep && i < len(m.order); {
		if m.jobs[m.order[i]].j.State != Running {
			m.forget(m.order[i])
			continue
		}
		i++
	}
}

// finish sets the final state once, and publishes it.
func (m *Manager) finish(j *job, state string, err error, sum string) {
	m.mu.Lock()
	j.j.Received = j.received.Load()
	if u := j.upload.Load(); u != nil {
		j.j.Written = u.Received()
	}
	j.j.State = state
	j.j.SHA256 = sum
	if err != nil {
		j.j.Error = err.Error()
	}
	if state == Canceled {
		j.j.Written = 0
	}
	now := time.Now().UTC()
	j.j.Finished = &now
	id, path := j.j.ID, j.j.Path
	m.mu.Unlock()
	// Before anyone can see the final state: the job is over, whatever
	// happens to msdav next.
	if j.journaled {
		if err := m.store.Root().Remove(journalName(id)); err != nil && !errors.Is(err, iofs.ErrNotExist) {
			m.o.Log.Warn("cannot remove the journal of a finished fetch", "job", id, "err", err)
		}
	}
	switch state {
	case Failed:
		m.o.Log.Warn("fetch failed", "job", id, "path", path, "err", err)
	default:
		m.o.Log.Info("fetch "+state, "job", id, "path", path)
	}
	m.publish(j)
}

func newID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// parseRequest checks what can be checked before any network traffic.
func parseRequest(req Request) (*url.URL, bool, string, error) {
	u, err := url.Parse(strings.TrimSpace(req.URL))
	if err != nil || req.URL == "" {
		return nil, false, "", fmt.Errorf("%w: \"url\" must be an http or https URL, like https://example.com/os.img.xz", ErrInvalid)
	}
	sum := strings.ToLower(strings.TrimSpace(req.SHA256))
	if sum != "" {
		if b, err := hex.DecodeString(sum); err != nil || len(b) != 32 {
			return nil, false, "", fmt.Errorf("%w: \"sha256\" must be 64 hex digits", ErrInvalid)
		}
	}
	var auto bool
	switch req.Decompress {
	case "", "auto":
		auto = true
	case "none":
	default:
		return nil, false, "", fmt.Errorf("%w: \"decompress\" is %q: want \"auto\" or \"none\"", ErrInvalid, req.Decompress)
	}
	return u, auto, sum, nil
}

// journal is what a running job leaves in the store root, so that a job a
// crash or kill -9 cut short is still reported after the restart (the
// store's start-up sweep already removed its partial image).
func journalName(id string) string { return ".msdav-job-" + id + ".json" }

func (m *Manager) writeJournal(j *job, v Job) {
	b, _ := json.Marshal(v)
	if err := m.store.Root().WriteFile(journalName(v.ID), b, 0o644); err != nil {
		m.o.Log.Warn("cannot keep a journal of a fetch; a crash would lose its record", "job", v.ID, "err", err)
		return
	}
	j.journaled = true
}

func (m *Manager) recover() {
	d, err := m.store.Root().Open(".")
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	var found []string
	for _, n := range names {
		if strings.HasPrefix(n, ".msdav-job-") && strings.HasSuffix(n, ".json") {
			found = append(found, n)
		}
	}
	if len(found) == 0 {
		return
	}
	done, err := m.store.Write(context.Background(), "clear fetch journals")
	if err != nil {
		m.o.Log.Warn("cannot clear the journals of interrupted fetches", "err", err)
		return
	}
	defer done()
	for _, n := range found {
		b, err := m.store.Root().ReadFile(n)
		var j Job
		if err == nil && json.Unmarshal(b, &j) == nil && j.ID != "" {
			j.State, j.SHA256, j.Written = Failed, "", 0
			j.Error = "interrupted: msdav stopped during the download (crash, power loss or kill); nothing of it was kept, start it again"
			now := time.Now().UTC()
			j.Finished = &now
			m.add(&job{j: j, done: closed()})
			m.o.Log.Warn("fetch interrupted by a stop of msdav", "job", j.ID, "url", j.URL, "path", j.Path)
		}
		m.store.Root().Remove(n)
	}
}

func closed() chan struct{} { c := make(chan struct{}); close(c); return c }
