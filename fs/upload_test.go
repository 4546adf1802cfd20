package fs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

// Upload.ReadFrom keeps every byte whatever sizes the reads come in, takes
// only io.EOF as the end, and passes any other error through, truncated
// bodies (io.ErrUnexpectedEOF from net/http) included.
func TestUploadReadFrom(t *testing.T) {
	s, err := Open(Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 3<<20+12345)
	rand.New(rand.NewSource(3)).Read(data)
	broken := errors.New("client hung up")
	for _, tc := range []struct {
		name    string
		r       io.Reader
		want    []byte
		wantErr error
	}{
		{"whole reads", bytes.NewReader(data), data, nil},
		{"half reads", iotest.HalfReader(bytes.NewReader(data)), data, nil},
		{"one byte at a time", iotest.OneByteReader(bytes.NewReader(data[:5000])), data[:5000], nil},
		{"data with EOF", iotest.DataErrReader(bytes.NewReader(data)), data, nil},
		{"empty", bytes.NewReader(nil), []byte{}, nil},
		{"truncated body", io.MultiReader(bytes.NewReader(data[:1<<20+7]), iotest.ErrReader(io.ErrUnexpectedEOF)), nil, io.ErrUnexpectedEOF},
		{"hang-up", io.MultiReader(bytes.NewReader(data[:100]), iotest.ErrReader(broken)), nil, broken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(filepath.Join(s.Dir(), "f.iso"))
			u, err := s.Create(context.Background(), "f.iso", -1)
			if err != nil {
				t.Fatal(err)
			}
			n, err := u.ReadFrom(tc.r)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("ReadFrom error %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				u.Abort()
				if _, err := os.Stat(filepath.Join(s.Dir(), "f.iso")); !os.IsNotExist(err) {
					t.Errorf("aborted upload visible: %v", err)
				}
				return
			}
			if n != int64(len(tc.want)) || u.Received() != n {
				t.Errorf("ReadFrom = %d, Received %d, want %d", n, u.Received(), len(tc.want))
			}
			if err := u.Commit(); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(filepath.Join(s.Dir(), "f.iso"))
			if !bytes.Equal(got, tc.want) {
				t.Errorf("stored %d bytes, not the %d sent", len(got), len(tc.want))
			}
		})
	}
}
