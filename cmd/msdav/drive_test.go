package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msdav/msdav/gadget/gadgettest"
)

// fakeConfigfs writes a config pointing at a fake bound gadget with one drive.
func fakeConfigfs(t *testing.T) string {
	t.Helper()
	g := gadgettest.Bound(t, 1)
	cfgFile := filepath.Join(t.TempDir(), "msdav.toml")
	os.WriteFile(cfgFile, []byte("[storage]\nroot = \""+t.TempDir()+"\"\n[gadget]\nconfigfs = \""+g.Configfs+"\"\nsysfs = \""+g.Sysfs+"\"\n"), 0o644)
	return cfgFile
}

func TestDriveCommand(t *testing.T) {
	cfg := fakeConfigfs(t)
	img := filepath.Join(t.TempDir(), "flash.img")
	os.WriteFile(img, make([]byte, 4096), 0o644)
	var out, errb bytes.Buffer
	drive := func(args ...string) (int, string) {
		out.Reset()
		errb.Reset()
		code := run(append([]string{"drive", "-config", cfg}, args...), &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, o := drive(); code != 0 || o != "Image file:  \nCD/DVD flag: no\nRW flag:     no\n" {
		t.Errorf("state: %d %q", code, o)
	}
	if code, o := drive("-i", "0", "-set-rw=1", "-set-cdrom=0", "-set-image", img); code != 0 || !strings.Contains(o, "Image file:  "+img) || !strings.Contains(o, "RW flag:     yes") {
		t.Errorf("attach: %d %q", code, o)
	}
	// Another attach replaces what is in the drive, as the API does.
	if code, o := drive("-set-image", img); code != 0 || !strings.Contains(o, "RW flag:     no") {
		t.Errorf("attach over an image: %d %q", code, o)
	}
	if code, o := drive("-unlock", "-eject"); code != 0 || !strings.HasPrefix(o, "Image file:  \n") {
		t.Errorf("eject: %d %q", code, o)
	}
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"-set-cdrom=2"}, 1, "0 or 1"},
		{[]string{"-set-rw=yes"}, 1, "0 or 1"},
		{[]string{"-i", "3"}, 1, "no such drive"},
		{[]string{"-set-image", img, "-set-cdrom=1", "-set-rw=1"}, 1, "never writable"},
		{[]string{"extra"}, 1, "unexpected argument"},
		{[]string{"-bogus"}, 2, "flag provided but not defined"},
	} {
		if code, o := drive(tc.args...); code != tc.code || !strings.Contains(o, tc.says) {
			t.Errorf("%v: %d %q, want %d %q", tc.args, code, o, tc.code, tc.says)
		}
	}
}
