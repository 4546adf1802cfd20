// Package remote is a drive medium read from an http(s) URL with Range requests:
// blocks in a bounded cache, read-ahead for sequential reads, retries with backoff, and a time limit.
package remote

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options tune a Medium; zero values take the defaults.
type Options struct {
	Block     int64         // bytes per request and cache entry; 1 MiB
	CacheSize int           // blocks kept; 64 (64 MiB)
	ReadAhead int           // blocks fetched ahead of a sequential reader; 8
	GiveUp    time.Duration // a block not fetched within this fails the read; 10s
	Backoff   time.Duration // first wait between tries, doubled up to 2s; 100ms
	Log       *slog.Logger
}

func (o *Options) defaults() {
	if o.Block <= 0 {
		o.Block = 1 << 20
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 64
	}
	if o.ReadAhead < 0 {
		o.ReadAhead = 0
	} else if o.ReadAhead == 0 {
		o.ReadAhead = 8
	}
	if o.ReadAhead >= o.CacheSize {
		o.ReadAhead = o.CacheSize / 2
	}
	if o.GiveUp <= 0 {
		o.GiveUp = 10 * time.Second
	}
	if o.Backoff <= 0 {
		o.Backoff = 100 * time.Millisecond
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// ErrReadOnly: a URL image cannot be written.
var ErrReadOnly = errors.New("an image served from a URL is read-only")

// Medium is an image at a URL.
type Medium struct {
	url    string
	client *http.Client
	size   int64
	o      Options
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	cache   map[int64]*list.Element // block -> lru element holding *block
	lru     *list.List              // front: most recently used
	pending map[int64]*fetchCall
	last    int64 // the last block read, for read-ahead
	failed  error // the last fetch failure, for the drive's state
}

type block struct {
	n    int64
	data []byte
}

type fetchCall struct {
	done chan struct{}
	data []byte
	err  error
}

// Open learns the image's size with a one-byte Range request and checks
// the server honours ranges.
func Open(ctx context.Context, client *http.Client, url string, o Options) (*Medium, error) {
	o.defaults()
	mctx, cancel := context.WithCancel(context.Background())
	m := &Medium{url: url, client: client, o: o, ctx: mctx, cancel: cancel,
		cache: map[int64]*list.Element{}, lru: list.New(), pending: map[int64]*fetchCall{}, last: -2}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open %s: %w", url, err)
	}
	req.Header.Set("Range", "bytes=0-0")
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open %s: %w", url, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		cancel()
		if resp.StatusCode == http.StatusOK {
			return nil, fmt.Errorf("open %s: the server does not answer Range requests; download the image into the store instead (POST /api/images/fetch)", url)
		}
		return nil, fmt.Errorf("open %s: the server answered %s", url, resp.Status)
	}
	size, err := totalSize(resp.Header.Get("Content-Range"))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open %s: %w", url, err)
	}
	m.size = size
	return m, nil
}

// totalSize reads the size from "bytes 0-0/12345".
func totalSize(cr string) (int64, error) {
	_, total, ok := strings.Cut(cr, "/")
	if !ok || total == "*" {
		return 0, fmt.Errorf("the server does not say the image's size (Content-Range %q)", cr)
	}
	n, err := strconv.ParseInt(total, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad Content-Range %q", cr)
	}
	return n, nil
}

// URL is where the image is.
func (m *Medium) URL() string { return m.url }

// Size is the image's size in bytes.
func (m *Medium) Size() int64 { return m.size }

// Sync has nothing to flush.
func (m *Medium) Sync() error { return nil }

// WriteAt refuses: the drive is read-only.
func (m *Medium) WriteAt([]byte, int64) (int, error) { return 0, ErrReadOnly }

// Close stops fetches in flight; reads after it fail.
func (m *Medium) Close() error {
	m.cancel()
	return nil
}

// Err is the last fetch failure, nil once a fetch succeeds again.
func (m *Medium) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.failed
}

// ReadAt reads from the cache, fetching missing blocks; it fails rather
// than waits past Options.GiveUp when the server is gone.
func (m *Medium) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > m.size {
		return 0, fmt.Errorf("read %s at %d: past the end (%d bytes)", m.url, off, m.size)
	}
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		n := pos / m.o.Block
		data, err := m.block(n)
		if err != nil {
			return done, err
		}
		done += copy(p[done:], data[pos-n*m.o.Block:])
	}
	return done, nil
}

// block returns block n, from the cache or fetched, and starts read-ahead
// when the reader is sequential.
func (m *Medium) block(n int64) ([]byte, error) {
	m.mu.Lock()
	seq := n == m.last || n == m.last+1
	m.last = n
	if seq {
		blocks := (m.size + m.o.Block - 1) / m.o.Block
		for k := n + 1; k <= n+int64(m.o.ReadAhead) && k < blocks; k++ {
			m.startLocked(k)
		}
	}
	if e, ok := m.cache[n]; ok {
		m.lru.MoveToFront(e)
		data := e.Value.(*block).data
		m.mu.Unlock()
		return data, nil
	}
	c := m.startLocked(n)
	m.mu.Unlock()
	<-c.done
	return c.data, c.err
}

// startLocked fetches block n in the background unless it is cached or
// on its way. Caller holds mu.
func (m *Medium) startLocked(n int64) *fetchCall {
	if c, ok := m.pending[n]; ok {
		return c
	}
	c := &fetchCall{done: make(chan struct{})}
	if e, ok := m.cache[n]; ok {
		c.data = e.Value.(*block).data
		close(c.done)
		return c
	}
	m.pending[n] = c
	go func() {
		c.data, c.err = m.fetch(n)
		m.mu.Lock()
		delete(m.pending, n)
		if c.err == nil {
			m.failed = nil
			m.cache[n] = m.lru.PushFront(&block{n: n, data: c.data})
			for m.lru.Len() > m.o.CacheSize {
				old := m.lru.Remove(m.lru.Back()).(*block)
				delete(m.cache, old.n)
			}
		} else {
			m.failed = c.err
		}
		m.mu.Unlock()
		close(c.done)
	}()
	return c
}

// fetch gets block n with retries and backoff until GiveUp.
func (m *Medium) fetch(n int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(m.ctx, m.o.GiveUp)
	defer cancel()
	start := n * m.o.Block
	end := min(start+m.o.Block, m.size) - 1
	wait := m.o.Backoff
	var last error
	for try := 1; ; try++ {
		data, err := m.get(ctx, start, end)
		if err == nil {
			return data, nil
		}
		last = err
		m.o.Log.Debug("fetch of a URL image's block failed; retrying", "url", m.url, "offset", start, "try", try, "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("read %s at %d: gave up after %d tries in %s: %w", m.url, start, try, m.o.GiveUp, last)
		case <-time.After(wait):
		}
		wait = min(wait*2, 2*time.Second)
	}
}

func (m *Medium) get(ctx context.Context, start, end int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", start, end))
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		return nil, fmt.Errorf("the server answered %s to a Range request", resp.Status)
	}
	buf := make([]byte, end-start+1)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		return nil, fmt.Errorf("short answer: %w", err)
	}
	return buf, nil
}
