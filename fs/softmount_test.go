package fs

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
)

// An EIO from an NFS part mounted soft names the options that cause it and
// what to mount instead; every other error, and EIO elsewhere, is left as
// it is.
func TestSoftMountAdvice(t *testing.T) {
	eio := &os.PathError{Op: "sync", Path: "nfs/a.iso", Err: syscall.EIO}
	pikvm := Mount{FSType: "nfs", SuperOptions: "rw,vers=3,rsize=1048576,soft,nolock,proto=tcp,timeo=1,retrans=1,sec=sys"}
	for _, tc := range []struct {
		name string
		m    Mount
		err  error
		want []string // nil: err unchanged
	}{
		{"PiKVM's options", pikvm, eio, []string{"part nfs is NFS mounted soft with timeo=1,retrans=1", "longer than 100ms a try", "timeo=30,retrans=2", "input/output error"}},
		{"NFSv4, minutes", Mount{FSType: "nfs4", SuperOptions: "rw,vers=4.2,soft,timeo=600,retrans=2"}, eio, []string{"timeo=600,retrans=2", "longer than 1m0s a try"}},
		{"hard mount", Mount{FSType: "nfs", SuperOptions: "rw,vers=3,hard,timeo=600,retrans=2"}, eio, nil},
		{"not EIO", pikvm, &os.PathError{Op: "write", Path: "a", Err: syscall.ENOSPC}, nil},
		{"a local disk", Mount{FSType: "ext4", SuperOptions: "rw,errors=remount-ro"}, eio, nil},
		{"CIFS", Mount{FSType: "cifs", SuperOptions: "rw,vers=3.1.1,soft"}, eio, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := softMountAdvice(tc.m, "nfs", tc.err)
			if !errors.Is(got, tc.err) {
				t.Fatalf("%v does not wrap %v", got, tc.err)
			}
			if tc.want == nil {
				if got != tc.err {
					t.Errorf("changed: %v", got)
				}
				return
			}
			for _, w := range tc.want {
				if !strings.Contains(got.Error(), w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
		})
	}
}

// A write that fails is the store's fault (*WriteError), a body that
// breaks off is not; either way nothing is left under the name.
func TestUploadWriteError(t *testing.T) {
	root := t.TempDir()
	s, err := Open(Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u, err := s.Create(context.Background(), "w.iso", -1)
	if err != nil {
		t.Fatal(err)
	}
	u.File().Close() // every write now fails
	_, err = u.ReadFrom(strings.NewReader("some bytes"))
	var we *WriteError
	if !errors.As(err, &we) || we.Rel != "w.iso" || !errors.Is(err, os.ErrClosed) || !strings.Contains(err.Error(), "upload w.iso: write:") {
		t.Fatalf("a failed write: %v (%T), want a *WriteError for w.iso wrapping os.ErrClosed", err, err)
	}
	if strings.Contains(err.Error(), root) {
		t.Errorf("a failed write's message tells where the store is: %v", err)
	}
	u.Abort()
	if _, err := s.Root().Stat("w.iso"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed upload left its name: %v", err)
	}
	u, err = s.Create(context.Background(), "r.iso", -1)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Abort()
	if _, err := u.ReadFrom(&failingReader{}); errors.As(err, &we) || err == nil {
		t.Errorf("a body that broke off: %v, want its own error, not a *WriteError", err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, syscall.ECONNRESET }

// The part an upload's error is explained by is the deepest mount above it.
func TestInnermostPart(t *testing.T) {
	pms := []partMount{{rel: "."}, {rel: "nfs"}, {rel: "nfs/fast"}, {rel: "nfsx"}}
	for rel, want := range map[string]string{
		"a.iso":             ".",
		"nfs/a.iso":         "nfs",
		"nfs/fast/a.iso":    "nfs/fast",
		"nfs/fastish/a.iso": "nfs",
		"nfsx/a.iso":        "nfsx",
		"nfs":               "nfs",
	} {
		if got := innermost(pms, rel); got.rel != want {
			t.Errorf("%s: part %s, want %s", rel, got.rel, want)
		}
	}
}
