package gadget

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msdav/msdav/fs"
)

// readState reads the state file as a restart would find it.
func readState(t *testing.T, path string) []Saved {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("state file: %v", err)
	}
	var st savedState
	if err := json.Unmarshal(b, &st); err != nil || st.Version != savedVersion {
		t.Fatalf("state file %s: %v version %d", b, err, st.Version)
	}
	return st.Drives
}

// Every change to a userspace drive (attach, URL, eject, the host's eject)
// is in the state file when the call returns; a new gadget reads it back.
func TestUserspaceStateFollowsDrives(t *testing.T) {
	g, u := userspaceGadget(t, 2)
	path := filepath.Join(t.TempDir(), "drives.json")
	if saved, err := g.Persist(path); saved != nil || err != nil {
		t.Fatalf("no state file yet: %v %v", saved, err)
	}
	dvd, flash := image(t, 3<<30), image(t, 1<<20)
	fi, _ := os.Stat(dvd)
	if _, err := g.Attach(0, dvd, true, false); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Attach(1, flash, false, true); err != nil {
		t.Fatal(err)
	}
	got := readState(t, path)
	want := []Saved{
		{Drive: 0, File: dvd, CDROM: true, Size: 3 << 30, Inode: fs.Inode(fi)},
		{Drive: 1, File: flash, RW: true, Size: 1 << 20, Inode: fs.Inode(mustStat(t, flash))},
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("state after two attaches:\n got %+v\nwant %+v", got, want)
	}
	// A restart: another gadget over the same file gets both back.
	g2, _ := userspaceGadget(t, 2)
	if saved, err := g2.Persist(path); err != nil || len(saved) != 2 || saved[0] != want[0] || saved[1] != want[1] {
		t.Fatalf("read back: %+v %v", saved, err)
	}
	if _, err := g.Eject(1, false); err != nil {
		t.Fatal(err)
	}
	if got := readState(t, path); len(got) != 1 || got[0].Drive != 0 {
		t.Fatalf("state after eject of drive 1: %+v", got)
	}
	// The host ejects drive 0 itself.
	l := u.drives[0].lun
	l.Exec([]byte{0, 0, 0, 0, 0, 0}, nil)
	if err := l.Exec([]byte{0x1b, 0, 0, 0, 0x02, 0}, nil); err != nil {
		t.Fatalf("START STOP UNIT eject: %v", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(readState(t, path)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the host's eject is not in the state file: %+v", readState(t, path))
		}
		time.Sleep(5 * time.Millisecond)
	}
	m := &fakeURL{size: 1 << 20}
	if _, err := g.AttachURL(1, m.URL(), m, true); err != nil {
		t.Fatal(err)
	}
	if got := readState(t, path); len(got) != 1 || got[0] != (Saved{Drive: 1, URL: m.URL(), CDROM: true, Size: 1 << 20}) {
		t.Fatalf("state after a URL attach: %+v", got)
	}
	if _, err := g.Eject(1, false); err != nil {
		t.Fatal(err)
	}
	if got := readState(t, path); len(got) != 0 {
		t.Fatalf("state after the URL's eject: %+v", got)
	}
}

func mustStat(t *testing.T, p string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

// A state file that cannot be written is logged; the drive still works.
func TestUserspaceStateUnwritable(t *testing.T) {
	g, _ := userspaceGadget(t, 1)
	var logs bytes.Buffer
	g.log = slog.New(slog.NewTextHandler(&logs, nil))
	if _, err := g.Persist(filepath.Join(t.TempDir(), "missing", "drives.json")); err != nil {
		t.Fatal(err)
	}
	if d, err := g.Attach(0, image(t, 1<<20), true, false); err != nil || d.File == "" {
		t.Fatalf("attach with an unwritable state file: %+v %v", d, err)
	}
	if !strings.Contains(logs.String(), "cannot save what the drives hold") {
		t.Errorf("no error logged:\n%s", logs.String())
	}
}

// What of a state file can be used is, what cannot is said.
func TestReadSaved(t *testing.T) {
	good := `{"drive":0,"file":"/a.iso","cdrom":true,"size":4096}`
	for _, tc := range []struct {
		name, body string
		want       int    // entries returned
		err        string // in the error, "" for none
	}{
		{"missing", "", 0, ""},
		{"good", `{"version":1,"drives":[` + good + `]}`, 1, ""},
		{"empty", `{"version":1,"drives":[]}`, 0, ""},
		{"damaged", `{"version":1,"drives":[{"dri`, 0, "is damaged"},
		{"not json", "\x00\x01garbage", 0, "is damaged"},
		{"other version", `{"version":7,"drives":[` + good + `]}`, 0, "has version 7"},
		{"drive beyond the gadget", `{"version":1,"drives":[` + good + `,{"drive":5,"file":"/b.iso","size":4096}]}`, 1, "names drive 5, which this gadget does not have (gadget.drives = 2); /b.iso stays out"},
		{"negative drive", `{"version":1,"drives":[{"drive":-1,"file":"/b.iso","size":4096}]}`, 0, "names drive -1"},
		{"twice", `{"version":1,"drives":[` + good + `,{"drive":0,"file":"/b.iso","size":4096}]}`, 1, "names drive 0 twice"},
		{"no medium", `{"version":1,"drives":[{"drive":1,"size":4096}]}`, 0, "neither or both"},
		{"both", `{"version":1,"drives":[{"drive":1,"file":"/b.iso","url":"http://x/b.iso","size":4096}]}`, 0, "neither or both"},
		{"rw CD", `{"version":1,"drives":[{"drive":1,"file":"/b.iso","cdrom":true,"rw":true,"size":4096}]}`, 0, "writable as a CD/DVD"},
		{"rw URL", `{"version":1,"drives":[{"drive":1,"url":"http://x/b.iso","rw":true,"size":4096}]}`, 0, "writable as a CD/DVD or from a URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "drives.json")
			if tc.name != "missing" {
				os.WriteFile(path, []byte(tc.body), 0o600)
			}
			got, err := readSaved(path, 2)
			if len(got) != tc.want {
				t.Errorf("got %d entries, want %d: %+v", len(got), tc.want, got)
			}
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("error %v, want one with %q", err, tc.err)
			}
		})
	}
	// A state file that is a folder cannot be read.
	dir := t.TempDir()
	if _, err := readSaved(dir, 2); err == nil || !strings.Contains(err.Error(), "read the drives' state") {
		t.Errorf("a folder as the state file: %v", err)
	}
}

// A saved file goes back only if it is the same file it was.
func TestSavedCheck(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "a.iso")
	os.WriteFile(img, make([]byte, 4096), 0o644)
	s := Saved{Drive: 0, File: img, CDROM: true, Size: 4096, Inode: fs.Inode(mustStat(t, img))}
	if err := s.Check(); err != nil {
		t.Fatalf("the same file: %v", err)
	}
	if err := (Saved{URL: "http://x/a.iso"}).Check(); err != nil {
		t.Errorf("a URL: %v", err)
	}
	// Replaced under the same name (another inode, same size).
	os.WriteFile(img+".new", make([]byte, 4096), 0o644)
	os.Rename(img+".new", img)
	if err := s.Check(); err == nil || !strings.Contains(err.Error(), "replaced by another file") {
		t.Errorf("a replaced file: %v", err)
	}
	s.Inode = fs.Inode(mustStat(t, img))
	os.Truncate(img, 8192)
	if err := s.Check(); err == nil || !strings.Contains(err.Error(), "changed size") {
		t.Errorf("a resized file: %v", err)
	}
	os.Remove(img)
	if err := s.Check(); err == nil || !strings.Contains(err.Error(), "is gone") {
		t.Errorf("a removed file: %v", err)
	}
	os.Mkdir(img, 0o755)
	if err := s.Check(); err == nil || !strings.Contains(err.Error(), "no longer a regular file") {
		t.Errorf("a folder in its place: %v", err)
	}
}

// The kernel backend keeps its drives in configfs: a userspace run's state
// file is stale and goes, and nothing is handed back to restore.
func TestKernelPersistRemovesStale(t *testing.T) {
	g, err := Open(fakeConfigfs(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "drives.json")
	os.WriteFile(path, []byte(`{"version":1,"drives":[{"drive":0,"file":"/a.iso","cdrom":true,"size":4096}]}`), 0o600)
	if saved, err := g.Persist(path); saved != nil || err != nil {
		t.Fatalf("kernel backend: %v %v", saved, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the stale state file is still there: %v", err)
	}
	// One that cannot be removed is reported.
	os.MkdirAll(filepath.Join(path, "x"), 0o755)
	if _, err := g.Persist(path); err == nil || !strings.Contains(err.Error(), "remove the userspace drives' state") {
		t.Errorf("an unremovable state file: %v", err)
	}
	g.SaveState() // a no-op here
}

// A detached gadget's drives take media, report them, and persist them,
// without any USB behind them.
func TestOpenDetached(t *testing.T) {
	g := OpenDetached(2, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if g.Count() != 2 || !g.ServesURLs() || !g.DVD() {
		t.Fatalf("detached: count %d, urls %v", g.Count(), g.ServesURLs())
	}
	path := filepath.Join(t.TempDir(), "drives.json")
	g.Persist(path)
	img := image(t, 1<<20)
	if d, err := g.Attach(1, img, true, false); err != nil || d.Media != "cd" {
		t.Fatalf("attach: %+v %v", d, err)
	}
	if err := g.Reconnect(); err != nil {
		t.Errorf("reconnect: %v", err)
	}
	if got := readState(t, path); len(got) != 1 || got[0].File != img {
		t.Errorf("state: %+v", got)
	}
	k, _ := Open(fakeConfigfs(t), nil)
	if k.ServesURLs() {
		t.Error("the kernel backend says it serves URLs")
	}
}

// Pending names the drives Persist found media for, and only on the
// userspace backend.
func TestPending(t *testing.T) {
	g, _ := userspaceGadget(t, 3)
	path := filepath.Join(t.TempDir(), "drives.json")
	os.WriteFile(path, []byte(`{"version":1,"drives":[{"drive":1,"file":"/a.iso","cdrom":true,"size":4096}]}`), 0o600)
	if _, err := g.Persist(path); err != nil {
		t.Fatal(err)
	}
	if g.Pending(0) || !g.Pending(1) || g.Pending(2) {
		t.Errorf("pending: %v %v %v", g.Pending(0), g.Pending(1), g.Pending(2))
	}
	k, _ := Open(fakeConfigfs(t), nil)
	k.Persist(path)
	if k.Pending(0) || k.Pending(1) {
		t.Error("the kernel backend has pending drives")
	}
}
