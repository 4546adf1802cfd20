package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msdav/msdav/gadget"
)

// fakeConfigfs lays out a bound msdav gadget with one drive as plain files;
// the real kernel is exercised by make vmtest.
func fakeConfigfs(t *testing.T) (cfgFile, lun string) {
	t.Helper()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "udc", "dummy_udc.0"), 0o755)
	old := gadget.UDCClass
	gadget.UDCClass = filepath.Join(root, "udc")
	t.Cleanup(func() { gadget.UDCClass = old })
	g := filepath.Join(root, "configfs", "usb_gadget", "msdav")
	os.MkdirAll(filepath.Join(g, "configs", "c.1", "strings", "0x409"), 0o755)
	os.WriteFile(filepath.Join(g, "configs", "c.1", "strings", "0x409", "configuration"), []byte("msdav\n"), 0o644)
	os.WriteFile(filepath.Join(g, "UDC"), []byte("dummy_udc.0\n"), 0o644)
	lun = filepath.Join(g, "functions", "mass_storage.usb0", "lun.0")
	os.MkdirAll(lun, 0o755)
	for a, v := range map[string]string{"file": "\n", "ro": "1\n", "cdrom": "0\n", "removable": "1\n", "forced_eject": "\n"} {
		os.WriteFile(filepath.Join(lun, a), []byte(v), 0o644)
	}
	cfgFile = filepath.Join(root, "msdav.toml")
	os.WriteFile(cfgFile, []byte("[storage]\nroot = \""+filepath.Join(root, "store")+"\"\n[gadget]\nconfigfs = \""+filepath.Join(root, "configfs")+"\"\n"), 0o644)
	return cfgFile, lun
}

func TestDriveCommand(t *testing.T) {
	cfg, _ := fakeConfigfs(t)
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
	if code, o := drive("-set-image", img); code != 1 || !strings.Contains(o, "eject it first") {
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
		{[]string{"-set-image", img, "-set-cdrom=1", "-set-rw=1"}, 1, "cannot be writable"},
		{[]string{"extra"}, 1, "unexpected argument"},
		{[]string{"-bogus"}, 2, "flag provided but not defined"},
	} {
		if code, o := drive(tc.args...); code != tc.code || !strings.Contains(o, tc.says) {
			t.Errorf("%v: %d %q, want %d %q", tc.args, code, o, tc.code, tc.says)
		}
	}
}
