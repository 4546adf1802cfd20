package fs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

func hexSum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func catalogEntry(t *testing.T, s *Store, rel string) (Image, bool) {
	t.Helper()
	imgs, err := s.Images(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range imgs {
		if strings.Contains(im.Path, sumPrefix) {
			t.Errorf("catalog shows the store's own sidecar %s", im.Path)
		}
		if im.Path == rel {
			return im, true
		}
	}
	return Image{}, false
}

func upload(t *testing.T, s *Store, rel string, r io.Reader) *Upload {
	t.Helper()
	u, err := s.Create(context.Background(), rel, -1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.ReadFrom(r); err != nil {
		t.Fatal(err)
	}
	return u
}

// The sha256 computed while streaming matches the bytes stored, whatever
// sizes the reads come in, and the catalog shows it with the kind.
func TestUploadChecksum(t *testing.T) {
	s, err := Open(Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 5<<20+777)
	rand.New(rand.NewSource(9)).Read(data)
	fat := make([]byte, 1<<20) // a FAT boot sector, enough for the kind
	copy(fat, []byte{0xEB, 0x3C, 0x90})
	fat[11], fat[12], fat[13] = 0x00, 0x02, 4
	copy(fat[54:], "FAT16   ")
	fat[510], fat[511] = 0x55, 0xAA
	for _, tc := range []struct {
		name string
		r    io.Reader
		want []byte
		kind string
	}{
		{"whole", bytes.NewReader(data), data, "unknown"},
		{"half reads", iotest.HalfReader(bytes.NewReader(data)), data, "unknown"},
		{"one byte", iotest.OneByteReader(bytes.NewReader(data[:3000])), data[:3000], "unknown"},
		{"fat", bytes.NewReader(fat), fat, "fat"},
		{"empty", bytes.NewReader(nil), nil, "unknown"},
	} {
		rel := strings.ReplaceAll(tc.name, " ", "-") + ".img"
		u := upload(t, s, rel, tc.r)
		if got := u.Sum(); got != hexSum(tc.want) {
			t.Errorf("%s: Sum %s, want %s", tc.name, got, hexSum(tc.want))
		}
		if err := u.Commit(); err != nil {
			t.Fatal(err)
		}
		im, ok := catalogEntry(t, s, rel)
		if !ok || im.SHA256 != hexSum(tc.want) || im.Kind != tc.kind {
			t.Errorf("%s: catalog %+v, want sha256 %s kind %s", tc.name, im, hexSum(tc.want), tc.kind)
		}
	}
}

// The checksum belongs to the bytes: a change to the image (a rw drive,
// scp) drops it, a rename keeps it, a delete takes the sidecar along, and
// a store opened afresh reads it back from the sidecar.
func TestChecksumFollowsImage(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("msdav"), 100000)
	ctx := context.Background()
	for _, name := range []string{"a.img", "b.img", "c.img"} {
		if err := upload(t, s, name, bytes.NewReader(data)).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	want := hexSum(data)

	// Same size, new content and mtime, as a host writing through a drive.
	f, _ := os.OpenFile(filepath.Join(dir, "a.img"), os.O_WRONLY, 0)
	f.WriteAt([]byte("XX"), 10)
	f.Close()
	os.Chtimes(filepath.Join(dir, "a.img"), time.Now(), time.Now().Add(time.Second))
	if im, _ := catalogEntry(t, s, "a.img"); im.SHA256 != "" {
		t.Errorf("changed image keeps sha256 %s", im.SHA256)
	}
	if err := s.Rename(ctx, "b.img", "moved.img"); err != nil {
		t.Fatal(err)
	}
	if im, _ := catalogEntry(t, s, "moved.img"); im.SHA256 != want {
		t.Errorf("renamed image: sha256 %q, want %s", im.SHA256, want)
	}
	if err := s.RemoveAll(ctx, "c.img"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, sumPrefix+"c.img")); !os.IsNotExist(err) {
		t.Errorf("sidecar of a deleted image stays: %v", err)
	}
	s.Close()

	s, err = Open(Options{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if sum, kind, err := s.Checksum("moved.img"); err != nil || sum != want || kind != "unknown" {
		t.Errorf("after reopen: %q %q %v, want %s unknown", sum, kind, err, want)
	}
	// Replaced by a copy from outside with the same size: new inode.
	os.Remove(filepath.Join(dir, "moved.img"))
	os.WriteFile(filepath.Join(dir, "moved.img"), data, 0o644)
	if sum, _, _ := s.Checksum("moved.img"); sum != "" {
		t.Errorf("file replaced behind the store keeps sha256 %s", sum)
	}
}

// Bytes that bypass the hash leave no checksum rather than a wrong one;
// Reset starts the hash over with the file.
func TestChecksumBypassAndReset(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	os.WriteFile(filepath.Join(dir, "src"), []byte("source bytes"), 0o644)
	src, _ := os.Open(filepath.Join(dir, "src"))
	defer src.Close()
	u, _ := s.Create(ctx, "copy.img", -1)
	if _, err := u.CopyFrom(src); err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if sum, _, _ := s.Checksum("copy.img"); sum != "" {
		t.Errorf("copy_file_range copy claims sha256 %s", sum)
	}

	u = upload(t, s, "restart.img", strings.NewReader("first attempt, partial"))
	if err := u.Reset(); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write([]byte("second")); err != nil {
		t.Fatal(err)
	}
	if _, err := u.ReadFrom(strings.NewReader(" attempt")); err != nil {
		t.Fatal(err)
	}
	if u.Received() != int64(len("second attempt")) {
		t.Errorf("Received %d after reset", u.Received())
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "restart.img"))
	if string(got) != "second attempt" {
		t.Errorf("stored %q", got)
	}
	if sum, _, _ := s.Checksum("restart.img"); sum != hexSum(got) {
		t.Errorf("sha256 %s, want %s", sum, hexSum(got))
	}
}

// slowReader hands out its data in pieces with a pause before the last.
type slowReader struct {
	parts [][]byte
	pause time.Duration
}

func (r *slowReader) Read(p []byte) (int, error) {
	if len(r.parts) == 0 {
		return 0, io.EOF
	}
	if len(r.parts) == 1 {
		time.Sleep(r.pause)
	}
	n := copy(p, r.parts[0])
	r.parts[0] = r.parts[0][n:]
	if len(r.parts[0]) == 0 {
		r.parts = r.parts[1:]
	}
	return n, nil
}

// ReadFrom, the path of every PUT and fetch, tells the event stream of its
// progress as Write does.
func TestReadFromPublishesProgress(t *testing.T) {
	var mu sync.Mutex
	var got []Image
	s, err := Open(Options{Root: t.TempDir(), Publish: func(kind string, v any) {
		if im, ok := v.(Image); ok && kind == "image" {
			mu.Lock()
			got = append(got, im)
			mu.Unlock()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u, err := s.Create(context.Background(), "p.img", 2<<20)
	if err != nil {
		t.Fatal(err)
	}
	r := &slowReader{parts: [][]byte{make([]byte, 1<<20), make([]byte, 1<<20)}, pause: progressEvery + 50*time.Millisecond}
	if _, err := u.ReadFrom(r); err != nil {
		t.Fatal(err)
	}
	u.Abort()
	mu.Lock()
	defer mu.Unlock()
	progress := false
	for _, im := range got {
		if !im.Complete && im.Received > 0 {
			progress = true
		}
	}
	if !progress {
		t.Errorf("no progress event from ReadFrom: %+v", got)
	}
}

// Only the inode tells a file replaced behind the store (scp to a temp,
// then mv) from the uploaded one when the copy kept size and mtime (cp -p,
// rsync -t): the sidecar must not vouch for it, from the cache or from
// disk after a restart.
func TestChecksumInodeAlone(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("msdav"), 100000)
	if err := upload(t, s, "a.img", bytes.NewReader(data)).Commit(); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "a.img")
	before, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if sum, _, _ := s.Checksum("a.img"); sum != hexSum(data) {
		t.Fatalf("uploaded image: sha256 %q", sum)
	}
	forged := bytes.Repeat([]byte("evil!"), 100000)
	tmp := filepath.Join(dir, "incoming")
	os.WriteFile(tmp, forged, 0o644)
	if err := os.Chtimes(tmp, before.ModTime(), before.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, img); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(img)
	if after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) || Inode(after) == Inode(before) {
		t.Fatalf("setup: want same size and mtime, new inode: %v %v, %d %d", before.ModTime(), after.ModTime(), Inode(before), Inode(after))
	}
	if sum, _, _ := s.Checksum("a.img"); sum != "" {
		t.Errorf("cached: a file with a new inode keeps the old sha256 %s", sum)
	}
	s.Close()
	s, err = Open(Options{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if sum, _, _ := s.Checksum("a.img"); sum != "" {
		t.Errorf("from the sidecar: a file with a new inode keeps the old sha256 %s", sum)
	}
}
