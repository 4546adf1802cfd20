// Package gadgettest lays out a fake configfs for tests of code above the
// gadget (API, CLI): plain files shaped like a bound msdav gadget.
package gadgettest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/msdav/msdav/conf"
)

// Bound makes a bound msdav gadget with drives empty drives under a temp
// directory, with a fake UDC list beside it. It has none of the kernel's
// behaviour (host locks, ro fallback, enumeration): make vmtest covers
// those on a real kernel.
func Bound(t testing.TB, drives int) conf.Gadget {
	t.Helper()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "sys", "class", "udc", "dummy_udc.0"), 0o755)
	cfg := conf.Default().Gadget
	cfg.Configfs = filepath.Join(root, "configfs")
	cfg.Sysfs = filepath.Join(root, "sys")
	cfg.Drives = drives
	g := filepath.Join(cfg.Configfs, "usb_gadget", cfg.Name)
	os.MkdirAll(filepath.Join(g, "configs", "c.1", "strings", "0x409"), 0o755)
	os.WriteFile(filepath.Join(g, "configs", "c.1", "strings", "0x409", "configuration"), []byte("msdav\n"), 0o644)
	os.WriteFile(filepath.Join(g, "UDC"), []byte("dummy_udc.0\n"), 0o644)
	for i := 0; i < drives; i++ {
		lun := LUN(cfg, i)
		os.MkdirAll(lun, 0o755)
		for a, v := range map[string]string{"file": "\n", "ro": "1\n", "cdrom": "0\n", "removable": "1\n", "forced_eject": "\n"} {
			os.WriteFile(filepath.Join(lun, a), []byte(v), 0o644)
		}
	}
	return cfg
}

// LUN is the directory of drive i's LUN in the fake gadget cfg describes,
// where tests read what msdav wrote and play the kernel's part.
func LUN(cfg conf.Gadget, i int) string {
	return filepath.Join(cfg.Configfs, "usb_gadget", cfg.Name, "functions", fmt.Sprintf("mass_storage.usb%d", i), "lun.0")
}
