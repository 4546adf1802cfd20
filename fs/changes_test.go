package fs

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// folderCalls counts, per folder in dirs, the opens and the reads
// (getdents) of the folder itself by any process, from the kernel's
// inotify IN_OPEN and IN_ACCESS: the real calls, not a wrapper's count. A
// stat shows in neither.
type folderCalls struct {
	t     *testing.T
	fd    int
	names map[int]string // by watch descriptor
	opens map[string]int
	reads map[string]int
	total func(map[string]int) int
}

func watchFolders(t *testing.T, dirs []string) *folderCalls {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	c := &folderCalls{t: t, fd: fd, names: map[int]string{}, opens: map[string]int{}, reads: map[string]int{}}
	for _, d := range dirs {
		wd, err := unix.InotifyAddWatch(fd, d, unix.IN_OPEN|unix.IN_ACCESS|unix.IN_ONLYDIR)
		if err != nil {
			t.Fatal(err)
		}
		c.names[wd] = filepath.Base(d)
	}
	return c
}

// take returns the opens and reads per folder since the last take.
func (c *folderCalls) take() (opens, reads map[string]int) {
	buf := make([]byte, 64<<10)
	for {
		got, err := unix.Read(c.fd, buf)
		if err == unix.EAGAIN || got <= 0 {
			break
		}
		if err != nil {
			c.t.Fatal(err)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= got; {
			var ev unix.InotifyEvent
			binary.Read(bytes.NewReader(buf[off:off+unix.SizeofInotifyEvent]), binary.NativeEndian, &ev)
			// The folder itself (no name), as a folder; events of its files
			// (kind detection reads image heads) and subfolders carry a name.
			if ev.Mask&unix.IN_ISDIR != 0 && ev.Len == 0 {
				name := c.names[int(ev.Wd)]
				if ev.Mask&unix.IN_OPEN != 0 {
					c.opens[name]++
				}
				if ev.Mask&unix.IN_ACCESS != 0 {
					c.reads[name]++
				}
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
	opens, reads = c.opens, c.reads
	c.opens, c.reads = map[string]int{}, map[string]int{}
	return opens, reads
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// A library that does not change costs the watcher no folder reads after
// its first look: it stats each folder and reads again only the ones whose
// mtime moved. Changes from outside still show: a new file in one folder, a
// file growing in place (scp still copying), a file removed.
func TestWatchReadsOnlyChangedFolders(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]Image{}
	removed := map[string]bool{}
	dir := t.TempDir()
	var dirs []string
	dirs = append(dirs, dir)
	const folders, per = 10, 20
	for f := 0; f < folders; f++ {
		d := filepath.Join(dir, fmt.Sprintf("f%d", f))
		os.Mkdir(d, 0o755)
		dirs = append(dirs, d)
		for i := 0; i < per; i++ {
			os.WriteFile(filepath.Join(d, fmt.Sprintf("i%d.img", i)), []byte("x"), 0o644)
		}
	}
	// Old files: quiet for an hour, as a library mostly is.
	old := time.Now().Add(-time.Hour)
	filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error { return os.Chtimes(p, old, old) })
	s, err := Open(Options{Root: dir, Publish: func(kind string, v any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := v.(type) {
		case Image:
			seen[e.Path] = e
		case Removed:
			removed[e.Path] = true
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	calls := watchFolders(t, dirs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const every = 10 * time.Millisecond
	go s.Watch(ctx, every, func() bool { return true })

	// The first look reads each folder, each image's sidecar and head.
	// It is over when 100 ms pass without a call (or after 3 s: today's
	// watcher never stops reading).
	total := 0
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
		opens, reads := calls.take()
		if total > 0 && sum(opens)+sum(reads) == 0 {
			break
		}
		total += sum(opens) + sum(reads)
	}
	t.Logf("first look of %d folders: %d folder opens and reads (getdents)", len(dirs), total)
	time.Sleep(time.Second) // polls every 10 ms, fewer as they find nothing
	opens, reads := calls.take()
	t.Logf("then 1 s of quiet polls: %d folder opens, %d reads", sum(opens), sum(reads))
	if sum(opens) > 0 || sum(reads) > 0 {
		t.Errorf("%d folder opens and %d reads in 1 s for %d folders that did not change: every poll reads every folder", sum(opens), sum(reads), len(dirs))
	}

	wait := func(what string, ok func() bool) {
		t.Helper()
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			mu.Lock()
			done := ok()
			mu.Unlock()
			if done {
				return
			}
		}
		t.Fatalf("not announced: %s", what)
	}
	// A new file in one folder: that folder is read again, no other.
	os.WriteFile(filepath.Join(dir, "f3", "new.img"), []byte("12345"), 0o644)
	wait("f3/new.img", func() bool { return seen["f3/new.img"].Size == 5 })
	if _, reads = calls.take(); reads["f3"] == 0 || sum(reads) != reads["f3"] {
		t.Errorf("folder reads after a change in f3: %v, want f3's alone", reads)
	}
	// It grows in place, once the folder has settled: no change to the
	// folder, the file is watched.
	time.Sleep(2100 * time.Millisecond) // settle: a folder is read again while its mtime is under 2 s old
	calls.take()
	f, err := os.OpenFile(filepath.Join(dir, "f3", "new.img"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("678"))
	f.Close()
	wait("f3/new.img grown to 8 bytes", func() bool { return seen["f3/new.img"].Size == 8 })
	if _, reads = calls.take(); sum(reads) > 0 {
		t.Errorf("folder reads for a file growing in place: %v, want a stat of the file alone", reads)
	}
	// A subfolder's file removed, and a whole new folder.
	os.Remove(filepath.Join(dir, "f7", "i3.img"))
	wait("f7/i3.img removed", func() bool { return removed["f7/i3.img"] })
	os.MkdirAll(filepath.Join(dir, "f3", "deep"), 0o755)
	os.WriteFile(filepath.Join(dir, "f3", "deep", "d.iso"), []byte("1"), 0o644)
	wait("f3/deep/d.iso", func() bool { return seen["f3/deep/d.iso"].Size == 1 })
	// A folder removed with its images.
	os.RemoveAll(filepath.Join(dir, "f9"))
	wait("f9's images removed", func() bool { return removed["f9/i0.img"] && removed["f9/i19.img"] })
}
