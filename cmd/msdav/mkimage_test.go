package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestMkimageCommand(t *testing.T) {
	root := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "msdav.toml")
	os.WriteFile(cfg, []byte("[storage]\nroot = \""+root+"\"\n"), 0o644)
	var out, errb bytes.Buffer
	// The folder is missing: it is made, as mkdir -p would.
	if code := run([]string{"mkimage", "-config", cfg, "-size", "64M", "-label", "tools", "flash/tools.img"}, &out, &errb); code != 0 {
		t.Fatalf("mkimage: %d %s", code, errb.String())
	}
	fi, err := os.Stat(filepath.Join(root, "flash", "tools.img"))
	if err != nil || fi.Size() != 64<<20 {
		t.Fatalf("image: %v", err)
	}
	if _, err := exec.LookPath("sfdisk"); err == nil {
		if b, _ := exec.Command("sfdisk", "-d", filepath.Join(root, "flash", "tools.img")).CombinedOutput(); !strings.Contains(string(b), "type=c") {
			t.Errorf("no FAT32 partition: %s", b)
		}
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"mkimage", "-config", cfg, "-size", "64M", "flash/tools.img"}, 1, "already exists"},
		{[]string{"mkimage", "-config", cfg, "-size", "10M", "small.img"}, 1, "at least"},
		{[]string{"mkimage", "-config", cfg, "-size", "lots", "x.img"}, 1, "want a number"},
		{[]string{"mkimage", "-config", cfg, "-size", "64M", "../out.img"}, 1, "leaves the store"},
		{[]string{"mkimage", "-config", cfg, "-size", "64M", "flash/.msdav-upload-1-x.img"}, 1, "not a usable name"},
		{[]string{"mkimage", "-config", cfg, "x.img"}, 2, "usage: msdav mkimage"},
	} {
		errb.Reset()
		if code := run(tc.args, &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d %q, want %d %q", tc.args, code, errb.String(), tc.code, tc.want)
		}
	}
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		if e.Name() != "flash" {
			t.Errorf("left in the store: %s", e.Name())
		}
	}
}
