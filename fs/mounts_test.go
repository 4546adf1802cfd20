package fs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// needRoot skips tests that mount real filesystems.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts real tmpfs and loop ext4 filesystems")
	}
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func unmountLater(t testing.TB, dir string) {
	t.Cleanup(func() {
		if err := exec.Command("umount", dir).Run(); err != nil {
			exec.Command("umount", "-l", dir).Run()
		}
	})
}

// mountTmpfs mounts a real tmpfs of sizeMB at dir (created).
func mountTmpfs(t testing.TB, dir string, sizeMB int, opts ...string) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	o := "size=" + strconv.Itoa(sizeMB) + "m"
	for _, x := range opts {
		o += "," + x
	}
	run(t, "mount", "-t", "tmpfs", "-o", o, "tmpfs", dir)
	unmountLater(t, dir)
}

// mountExt4 makes an ext4 image of sizeMB and loop-mounts it at dir.
func mountExt4(t testing.TB, dir string, sizeMB int) {
	t.Helper()
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("needs mkfs.ext4 (Debian e2fsprogs)")
	}
	img := filepath.Join(t.TempDir(), "store.ext4")
	run(t, "truncate", "-s", strconv.Itoa(sizeMB)+"M", img)
	run(t, "mkfs.ext4", "-q", "-F", img)
	os.MkdirAll(dir, 0o755)
	run(t, "mount", "-o", "loop", img, dir)
	unmountLater(t, dir)
}

func isRO(t testing.TB, dir string) bool {
	t.Helper()
	ro, err := IsReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ro
}

// waitRO polls until dir is read-only or the deadline passes.
func waitRO(t testing.TB, dir string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !isRO(t, dir) {
		if time.Now().After(deadline) {
			t.Fatalf("%s still rw after %s", dir, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
