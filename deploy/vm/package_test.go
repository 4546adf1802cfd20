//go:build vmtest

package vm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDebianPackageVM installs make package's amd64 .deb with dpkg (the
// host's, copied in with its libraries) in a guest whose PID 1 is systemd,
// starts msdav through the packaged unit, uploads over WebDAV and attaches
// through the API, then removes the package (binary and unit gone, the
// edited config kept) and purges it (config gone). The guest side is
// TestDebianPackage.
func TestDebianPackageVM(t *testing.T) {
	nativeOnly(t)
	needSystemd(t)
	work := t.TempDir()
	initrd := filepath.Join(work, "initrd")
	root := repoRoot(t)

	pkgs := filepath.Join(work, "packages")
	build := exec.Command("make", "package", "PACKAGE_ARCHES=amd64", "PACKAGE_OUT="+pkgs)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make package: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(pkgs, "msdav_*_amd64.deb"))
	if len(debs) != 1 {
		t.Fatalf("make package made %v, want one amd64 .deb", debs)
	}

	put, cp := systemdGuest(t, work)
	cp(debs[0], "msdav.deb")
	// dpkg, and what it wants in PATH: GNU tar for dpkg-deb (busybox gives
	// sh, rm and diff; /usr/bin comes before /bin in systemd's PATH).
	for _, bin := range []string{"/usr/bin/dpkg", "/usr/bin/dpkg-deb", "/usr/bin/dpkg-split", "/usr/bin/dpkg-query", "/usr/sbin/start-stop-daemon", "/usr/sbin/ldconfig", "/usr/bin/tar"} {
		cp(bin, bin)
		copyLibs(t, initrd, bin)
	}
	put("var/lib/dpkg/status", "", 0o644)
	put("var/lib/dpkg/available", "", 0o644)
	for _, d := range []string{"info", "updates", "triggers", "alternatives"} {
		os.MkdirAll(filepath.Join(initrd, "var", "lib", "dpkg", d), 0o755)
	}
	os.MkdirAll(filepath.Join(initrd, "var", "log"), 0o755)
	os.MkdirAll(filepath.Join(initrd, "usr", "local", "bin"), 0o755)
	put("vm-modules.sh", "/bin/busybox --install -s /bin\n"+loadModules, 0o755)
	put("etc/systemd/system/vm-check.service", `[Unit]
Description=install, run and remove the msdav package
After=vm-modules.service
[Service]
Type=oneshot
Environment=MSDAV_PACKAGE_VM=1
ExecStart=/bin/busybox sh /vm-check.sh
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
`, 0o644)
	put("vm-check.sh", `cd /tmp
/guest.test -test.v -test.timeout 4m -test.run '^TestDebianPackage$'
rc=$?
if [ $rc != 0 ]; then /bin/systemctl status --no-pager msdav; tail -30 /var/log/dpkg.log; dmesg | tail -40; fi
echo "GUEST-EXIT $rc"
sync
poweroff -f
`, 0o755)
	put("etc/systemd/system/default.target", `[Unit]
Description=the VM test
Requires=vm-modules.service vm-check.service
`, 0o644)
	// guestImage builds /msdav too; the test checks the packaged one runs.
	kernel, img := guestImage(t, work, initScript)
	log, exit := boot(t, kernel, img, "rdinit="+systemdBin+" systemd.log_target=console systemd.show_status=0")
	if exit != 0 {
		t.Fatalf("guest tests exited %d%s", exit, guestFailures(log))
	}
	if !strings.Contains(log, "--- PASS: TestDebianPackage") {
		t.Fatal("TestDebianPackage did not pass in the guest")
	}
}
