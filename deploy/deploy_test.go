// Package deploy holds the systemd unit, the sample configuration, the setup
// notes, a script that measures a drive from its USB host, and the qemu
// harness; its tests keep the first three honest.
package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/msdav/msdav/conf"
)

// The sample config loads, and says exactly the defaults: it cannot drift
// from conf.Default without this test failing.
func TestSampleConfigIsTheDefaults(t *testing.T) {
	c, err := conf.Load("msdav.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := conf.Default()
	want.Storage.Root = "/var/lib/msdav/images"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("sample config differs from the defaults:\n got %+v\nwant %+v", c, want)
	}
	b, _ := os.ReadFile("msdav.toml")
	for _, key := range []string{"listen", "open_share", "tls_cert", "remount", "remount_grace", "part_timeout", "mode", "udc", "drives", "htpasswd"} {
		if !strings.Contains(string(b), "\n"+key+" = ") {
			t.Errorf("sample config lacks %s", key)
		}
	}
}

// systemd removes a RuntimeDirectory when the unit stops, restarts
// included, unless told otherwise; the userspace drives' state lives there.
func TestUnitKeepsRuntimeDir(t *testing.T) {
	unit, _ := os.ReadFile("msdav.service")
	if !strings.Contains(string(unit), "\nRuntimeDirectory=msdav\n") || !strings.Contains(string(unit), "\nRuntimeDirectoryPreserve=yes\n") {
		t.Error("the unit does not keep /run/msdav across restarts: the userspace drives would come back empty")
	}
}

func TestUnitVerifies(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("needs systemd-analyze (Debian systemd)")
	}
	// verify wants the ExecStart binary to exist: point a copy of the unit at a stand-in.
	dir := t.TempDir()
	bin := filepath.Join(dir, "msdav")
	os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755)
	unit, _ := os.ReadFile("msdav.service")
	u := strings.ReplaceAll(string(unit), "/usr/local/bin/msdav", bin)
	p := filepath.Join(dir, "msdav.service")
	os.WriteFile(p, []byte(u), 0o644)
	out, err := exec.Command("systemd-analyze", "verify", p).CombinedOutput()
	// Lines about other units on this machine are not ours.
	var ours []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "msdav.service") {
			ours = append(ours, l)
		}
	}
	if err != nil || len(ours) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
