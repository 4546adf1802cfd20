package fs

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

// Every refusal and failure of the pipeline has its status, a message
// without temp names, and leaves nothing behind.
func TestReceiveErrors(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	os.MkdirAll(filepath.Join(dir, "folder"), 0o755)
	os.WriteFile(filepath.Join(dir, "there.iso"), []byte("old"), 0o644)
	os.WriteFile(filepath.Join(dir, "held.iso"), []byte("held"), 0o644)
	s.SetAttachments(fakeAttachments{"held.iso": {0}})
	body := []byte("some image bytes")
	gz := func(o *ReceiveOptions) {
		o.Decode = func(r io.Reader) (io.ReadCloser, error) { return gzip.NewReader(r) }
	}
	for _, tc := range []struct {
		name     string
		rel      string
		body     io.Reader
		announce int64
		opt      func(*ReceiveOptions)
		status   int
		says     string
	}{
		{"root", "/", bytes.NewReader(body), -1, nil, 405, "file name"},
		{"internal", "a/.MSDAV-sum-x", bytes.NewReader(body), -1, nil, 403, "msdav's own"},
		{"junk image", ".DS_Store", bytes.NewReader(body), -1, func(o *ReceiveOptions) { o.Image = true }, 400, "not a usable image"},
		{"escape", "../x.iso", bytes.NewReader(body), -1, nil, 400, "leaves the store"},
		{"no parent", "missing/x.iso", bytes.NewReader(body), -1, nil, 409, "does not exist"},
		{"folder", "folder", bytes.NewReader(body), -1, nil, 409, "is a folder"},
		{"exists", "there.iso", bytes.NewReader(body), -1, func(o *ReceiveOptions) { o.NoReplace = true }, 409, "already in the store"},
		{"held", "held.iso", bytes.NewReader(body), -1, nil, 423, "drive 0"},
		{"short", "short.iso", bytes.NewReader(body), 100, nil, 400, "ended after 16 of 100"},
		{"broken body", "broken.iso", iotest.TimeoutReader(bytes.NewReader(bytes.Repeat(body, 1<<17))), -1, nil, 400, "incomplete"},
		{"not gzip", "bad.iso", bytes.NewReader(body), -1, gz, 400, "not what it says"},
		{"check", "check.iso", bytes.NewReader(body), -1, func(o *ReceiveOptions) { o.Check = func(string) error { return errors.New("sha256 mismatch") } }, 422, "sha256 mismatch"},
	} {
		var o ReceiveOptions
		if tc.opt != nil {
			tc.opt(&o)
		}
		_, err := s.Receive(context.Background(), tc.rel, tc.body, tc.announce, o)
		var re *ReceiveError
		if !errors.As(err, &re) || re.Status != tc.status || !strings.Contains(re.Msg, tc.says) || strings.Contains(strings.ToLower(re.Msg), ".msdav-upload") {
			t.Errorf("%s: %v, want %d saying %q", tc.name, err, tc.status, tc.says)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "there.iso")); string(b) != "old" {
		t.Errorf("refused upload changed there.iso: %q", b)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "folder held.iso there.iso" {
		t.Errorf("left in the store: %v", names)
	}
}

// Names up to NAME_MAX are storable with their checksum; kvmd's missing
// folders are made.
func TestReceiveLongNamesAndParents(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	body := []byte("image")
	for _, n := range []int{222, 244, 255} {
		rel := "deep/er/" + strings.Repeat("n", n-4) + ".iso"
		got, err := s.Receive(context.Background(), rel, bytes.NewReader(body), int64(len(body)), ReceiveOptions{Image: true, MakeParents: true})
		if err != nil {
			t.Fatalf("%d-byte name: %v", n, err)
		}
		if sum, _, _ := s.Checksum(rel); sum == "" || sum != got.SHA256 || got.Size != 5 || got.Replaced {
			t.Errorf("%d-byte name: checksum %q, received %+v", n, sum, got)
		}
	}
	got, err := s.Receive(context.Background(), "deep/er/again.iso", bytes.NewReader(body), -1, ReceiveOptions{MakeParents: true})
	if err != nil || got.Replaced {
		t.Fatal(err, got)
	}
	if got, err := s.Receive(context.Background(), "deep/er/again.iso", bytes.NewReader(body), -1, ReceiveOptions{}); err != nil || !got.Replaced {
		t.Errorf("replace: %v %+v", err, got)
	}
}
