//go:build vmtest

package vm

import (
	"os"
	"path/filepath"
	"testing"
)

// guestArch is the machine the VM emulates: Debian's kernel for it, msdav
// and the guest tests built for it, and the qemu that boots it.
type guestArch struct {
	deb     string // Debian's name: amd64, armhf, arm64
	goarch  string // GOARCH, and GOARM where it matters
	goarm   string
	qemu    string
	machine []string // qemu's board and CPU
	console string   // the serial port the kernel writes to
}

// PiKVM OS runs ARMv7 on most of its boards (qemu's virt board with a
// Cortex-A15 runs Debian's multiplatform kernel); newer boards are arm64.
var guestArches = map[string]guestArch{
	"amd64": {deb: "amd64", goarch: "amd64", qemu: "qemu-system-x86_64", console: "ttyS0"},
	"armhf": {deb: "armhf", goarch: "arm", goarm: "7", qemu: "qemu-system-arm",
		machine: []string{"-M", "virt", "-cpu", "cortex-a15"}, console: "ttyAMA0"},
	"arm64": {deb: "arm64", goarch: "arm64", qemu: "qemu-system-aarch64",
		machine: []string{"-M", "virt", "-cpu", "cortex-a57"}, console: "ttyAMA0"},
}

// vmArch is the guest architecture VM_ARCH names (amd64 when unset).
func vmArch(t testing.TB) guestArch {
	name := os.Getenv("VM_ARCH")
	if name == "" {
		name = "amd64"
	}
	a, ok := guestArches[name]
	if !ok {
		t.Fatalf("VM_ARCH=%s: want amd64, armhf or arm64", name)
	}
	return a
}

// foreign reports whether the guest is not this host's kind, so the
// host's own programs (busybox, sg3-utils, Samba, systemd) cannot run in it.
func (a guestArch) foreign() bool { return a.deb != "amd64" }

// cache is where fetch-kernel.sh keeps this architecture's kernel.
func (a guestArch) cache(root string) string {
	if !a.foreign() {
		return filepath.Join(root, "deploy", "vm", "cache")
	}
	return filepath.Join(root, "deploy", "vm", "cache-"+a.deb)
}

func (a guestArch) goEnv() []string {
	env := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + a.goarch}
	if a.goarm != "" {
		env = append(env, "GOARM="+a.goarm)
	}
	return env
}

// needHostArch skips a VM test that uses this host's own programs or x86
// devices inside the guest, when VM_ARCH names another architecture.
func needHostArch(t *testing.T, why string) {
	t.Helper()
	if a := vmArch(t); a.foreign() {
		t.Skipf("VM_ARCH=%s: this test runs on amd64 guests only (%s)", a.deb, why)
	}
}
