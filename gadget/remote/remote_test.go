package remote

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func content(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>10)
	}
	return b
}

// server serves data with Range; fail makes the next requests fail.
type server struct {
	data     []byte
	requests atomic.Int64
	fail     atomic.Int64 // this many requests answer 503
	down     atomic.Bool  // every request answers 503
	noRange  bool
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if s.down.Load() || s.fail.Add(-1) >= 0 {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if s.noRange {
		w.Write(s.data)
		return
	}
	http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(s.data))
}

func open(t *testing.T, s *server, o Options) *Medium {
	t.Helper()
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	m, err := Open(t.Context(), ts.Client(), ts.URL+"/img", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestReadAt(t *testing.T) {
	data := content(10*4096 + 100)
	s := &server{data: data}
	m := open(t, s, Options{Block: 4096, CacheSize: 4, ReadAhead: 2})
	if m.Size() != int64(len(data)) {
		t.Fatalf("size %d, want %d", m.Size(), len(data))
	}
	for _, tc := range []struct {
		name    string
		off, n  int64
		wantErr bool
	}{
		{"head", 0, 512, false},
		{"across blocks", 4000, 5000, false},
		{"the short last block", int64(len(data)) - 300, 300, false},
		{"whole", 0, int64(len(data)), false},
		{"past the end", int64(len(data)) - 10, 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := make([]byte, tc.n)
			n, err := m.ReadAt(p, tc.off)
			if tc.wantErr {
				if err == nil {
					t.Fatal("read past the end succeeded")
				}
				return
			}
			if err != nil || n != len(p) || !bytes.Equal(p, data[tc.off:tc.off+tc.n]) {
				t.Fatalf("n %d err %v, data equal %v", n, err, bytes.Equal(p, data[tc.off:tc.off+tc.n]))
			}
		})
	}
	if m.lru.Len() > 4 {
		t.Errorf("cache holds %d blocks, bound 4", m.lru.Len())
	}
	if _, err := m.WriteAt([]byte{1}, 0); !errors.Is(err, ErrReadOnly) {
		t.Errorf("write: %v", err)
	}
}

// A sequential reader finds the next blocks already fetched.
func TestReadAhead(t *testing.T) {
	s := &server{data: content(64 * 1024)}
	m := open(t, s, Options{Block: 1024, CacheSize: 32, ReadAhead: 8})
	p := make([]byte, 1024)
	m.ReadAt(p, 0)
	m.ReadAt(p, 1024) // sequential: blocks 2..9 go ahead
	// Wait for all eight, not only the last: they are fetched at once and
	// finish in any order, and a fetch of 2..8 still on its way would be
	// counted below as a request of the reads that follow.
	deadline := time.Now().Add(5 * time.Second)
	for k := int64(2); k <= 9; k++ {
		for {
			m.mu.Lock()
			_, ok := m.cache[k]
			m.mu.Unlock()
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("block %d was not read ahead", k)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	before := s.requests.Load()
	for k := int64(2); k <= 9; k++ {
		m.ReadAt(p, k*1024)
	}
	// Reading 2..9 asks ahead up to 17, but 2..9 themselves come from the cache.
	m.mu.Lock()
	for k := int64(2); k <= 9; k++ {
		if _, ok := m.cache[k]; !ok {
			t.Errorf("block %d not cached", k)
		}
	}
	m.mu.Unlock()
	if s.requests.Load()-before > 8 {
		t.Errorf("%d requests for 8 blocks read ahead", s.requests.Load()-before)
	}
}

func TestRetriesThenGivesUp(t *testing.T) {
	s := &server{data: content(8192)}
	m := open(t, s, Options{Block: 4096, GiveUp: 3 * time.Second, Backoff: 10 * time.Millisecond, ReadAhead: -1})
	s.fail.Store(3)
	p := make([]byte, 100)
	if _, err := m.ReadAt(p, 0); err != nil {
		t.Fatalf("three failures then success: %v", err)
	}
	m2 := open(t, s, Options{Block: 4096, GiveUp: 300 * time.Millisecond, Backoff: 10 * time.Millisecond, ReadAhead: -1})
	s.down.Store(true)
	start := time.Now()
	_, err := m2.ReadAt(p, 4096)
	if err == nil || !strings.Contains(err.Error(), "gave up") {
		t.Fatalf("server down: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("a read with the server down took %s, limit 300ms", took)
	}
	if m2.Err() == nil {
		t.Error("the failure is not reported")
	}
}

// A server that accepts and never answers: the read still ends in time.
func TestHungServer(t *testing.T) {
	hang := make(chan struct{})
	data := content(8192)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "bytes=0-0" {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
			return
		}
		http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(ts.Close)
	t.Cleanup(func() { close(hang) }) // before ts.Close, which waits for handlers
	m, err := Open(t.Context(), ts.Client(), ts.URL, Options{Block: 4096, GiveUp: 300 * time.Millisecond, ReadAhead: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	start := time.Now()
	if _, err := m.ReadAt(make([]byte, 10), 0); err == nil {
		t.Fatal("read from a hung server succeeded")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("took %s", took)
	}
}

func TestOpenErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    *server
		want string
	}{
		{"no ranges", &server{data: content(100), noRange: true}, "does not answer Range"},
		{"down", func() *server { s := &server{data: content(100)}; s.down.Store(true); return s }(), "503"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(tc.s)
			defer ts.Close()
			_, err := Open(context.Background(), ts.Client(), ts.URL, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}
