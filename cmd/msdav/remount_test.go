package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msdav/msdav/fs"
)

func TestRemountCommand(t *testing.T) {
	var out, errb bytes.Buffer
	for _, args := range [][]string{{"remount"}, {"remount", "sideways"}, {"remount", "rw", "extra"}} {
		out.Reset()
		errb.Reset()
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)", args, code)
		}
		if !strings.Contains(errb.String(), "usage: msdav remount rw|ro") {
			t.Errorf("%v: no usage line in %q", args, errb.String())
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: remounts a real tmpfs")
	}
	dir := filepath.Join(t.TempDir(), "store")
	os.MkdirAll(dir, 0o755)
	if b, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, b)
	}
	defer exec.Command("umount", "-l", dir).Run()
	cfg := filepath.Join(t.TempDir(), "msdav.toml")
	os.WriteFile(cfg, []byte("[storage]\nroot = \""+dir+"\"\n"), 0o644)
	for _, mode := range []string{"ro", "rw", "ro"} {
		out.Reset()
		errb.Reset()
		if code := run([]string{"remount", mode, "-config", cfg}, &out, &errb); code != 0 {
			t.Fatalf("remount %s: exit %d: %s", mode, code, errb.String())
		}
		ro, _ := fs.IsReadOnly(dir)
		if ro != (mode == "ro") {
			t.Errorf("after remount %s: read-only = %v", mode, ro)
		}
		if !strings.Contains(out.String(), "is now "+mode) {
			t.Errorf("output %q", out.String())
		}
	}
}
