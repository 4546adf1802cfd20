//go:build vmtest

package vm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdVM boots the guest with Debian's systemd as PID 1 (the host's
// own, copied in with its libraries) and runs msdav through the shipped
// unit, deploy/msdav.service, unchanged: its sandbox (ProtectSystem=strict,
// PrivateDevices=yes, the system call filter, the capability bounding set)
// must leave the userspace drives working, their FunctionFS mounts under
// RuntimeDirectory included, and keep them across a restart; and the
// kernel backend's configfs gadget working after it. The store is an ext4
// disk mounted ro, which the remount guard makes rw while it writes; an
// exFAT stick mounted inside it while msdav runs is a part it writes to.
// systemdGuest starts an initramfs in work/initrd whose PID 1 is this
// host's systemd, with its standard targets and a vm-modules.service that
// loads the VM's modules (and installs busybox's applets) before msdav.
// put writes a file into it, cp copies one of the host's.
func systemdGuest(t *testing.T, work string) (put func(rel, body string, mode os.FileMode), cp func(src, rel string)) {
	t.Helper()
	initrd := filepath.Join(work, "initrd")
	put = func(rel, body string, mode os.FileMode) {
		p := filepath.Join(initrd, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	cp = func(src, rel string) {
		p := filepath.Join(initrd, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		must(t, "cp", "-L", src, p)
	}
	for _, bin := range []string{systemdBin, "/bin/systemctl"} {
		cp(bin, bin)
		copyLibs(t, initrd, bin)
	}
	// The standard targets, without what the host wants in them: the
	// unit's default dependencies (sysinit.target, basic.target,
	// shutdown.target) must exist for it to start.
	targets, _ := filepath.Glob("/lib/systemd/system/*.target")
	sliceUnits, _ := filepath.Glob("/lib/systemd/system/*.slice")
	for _, u := range append(targets, sliceUnits...) {
		cp(u, filepath.Join("lib", "systemd", "system", filepath.Base(u)))
	}
	cp("/etc/os-release", "etc/os-release")
	put("etc/machine-id", "", 0o444)
	put("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0o644)
	put("etc/group", "root:x:0:\ntty:x:5:\ndisk:x:6:\nnogroup:x:65534:\n", 0o644)
	// What the distribution's boot would do before msdav: the modules
	// (this initramfs has no modprobe database) and configfs.
	put("etc/systemd/system/vm-modules.service", `[Unit]
Description=load the VM's modules
DefaultDependencies=no
Before=msdav.service sysinit.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/busybox sh /vm-modules.sh
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
`, 0o644)
	return put, cp
}

// systemdBin is Debian's systemd, PID 1 of the systemd guests.
const systemdBin = "/lib/systemd/systemd"

// needSystemd fails without Debian's systemd on this host.
func needSystemd(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(systemdBin); err != nil {
		t.Fatalf("needs Debian's systemd on this host (.ci/run installs it): %v", err)
	}
}

func TestSystemdVM(t *testing.T) {
	nativeOnly(t)
	needSystemd(t)
	work := t.TempDir()
	initrd := filepath.Join(work, "initrd")
	root := repoRoot(t)
	put, _ := systemdGuest(t, work)

	unit, err := os.ReadFile(filepath.Join(root, "deploy", "msdav.service"))
	if err != nil {
		t.Fatal(err)
	}
	put("etc/systemd/system/msdav.service", string(unit), 0o644) // as shipped
	put("etc/msdav/msdav.toml", `[server]
listen = "127.0.0.1:8080"
[storage]
root = "/var/lib/msdav/images"
remount = true
remount_grace = "1s"
[gadget]
mode = "configfs"
backend = "userspace"
udc = "dummy_udc.0"
drives = 1
`, 0o644)
	os.MkdirAll(filepath.Join(initrd, "var", "lib", "msdav", "images"), 0o755)
	// The store: an ext4 disk that fstab would mount ro, for the remount
	// guard to make rw while it writes, from inside the unit's namespace.
	put("vm-modules.sh", "/bin/busybox --install -s /bin\n"+loadModules+`for i in $(seq 100); do [ -b /dev/vda ] && break; sleep 0.1; done
mount -t ext4 -o ro /dev/vda /var/lib/msdav/images
`, 0o755)
	put("etc/systemd/system/vm-check.service", `[Unit]
Description=check msdav under its unit
Wants=msdav.service
After=msdav.service
[Service]
Type=oneshot
Environment=MSDAV_SYSTEMD_VM=1
ExecStart=/bin/busybox sh /vm-check.sh
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
`, 0o644)
	put("vm-check.sh", `cd /tmp
/guest.test -test.v -test.timeout 4m -test.run '^TestSystemdUnit$'
rc=$?
if [ $rc != 0 ]; then /bin/systemctl status --no-pager msdav; dmesg | tail -40; fi
echo "GUEST-EXIT $rc"
sync
poweroff -f
`, 0o755)
	put("etc/systemd/system/default.target", `[Unit]
Description=the VM test
Requires=vm-modules.service vm-check.service
`, 0o644)
	// guestImage puts msdav at /msdav; the unit runs /usr/local/bin/msdav.
	os.MkdirAll(filepath.Join(initrd, "usr", "local", "bin"), 0o755)
	if err := os.Symlink("/msdav", filepath.Join(initrd, "usr", "local", "bin", "msdav")); err != nil {
		t.Fatal(err)
	}

	disk := filepath.Join(work, "store.img")
	must(t, "truncate", "-s", "64M", disk)
	// usb/: where the guest mounts the stick as a part of the store.
	layout := filepath.Join(work, "storelayout")
	os.MkdirAll(filepath.Join(layout, "usb"), 0o755)
	must(t, "mkfs.ext4", "-q", "-F", "-d", layout, disk)
	stick := filepath.Join(work, "stick.img")
	must(t, "truncate", "-s", "32M", stick)
	must(t, "mkfs.exfat", "-L", "STICK", stick)
	kernel, img := guestImage(t, work, initScript, "crc32c_generic", "ext4", "virtio_blk", "virtio_pci", "exfat")
	log, exit := boot(t, kernel, img, "rdinit="+systemdBin+" systemd.log_target=console systemd.show_status=0",
		"-drive", "file="+disk+",if=virtio,format=raw,cache=none",
		"-drive", "file="+stick+",if=virtio,format=raw,cache=none")
	if exit != 0 {
		t.Fatalf("guest tests exited %d%s", exit, guestFailures(log))
	}
	if !strings.Contains(log, "--- PASS: TestSystemdUnit") {
		t.Fatal("TestSystemdUnit did not pass in the guest")
	}
	// The VM powered off with the store mounted: the guard had left it ro
	// and synced, so the disk is clean and holds the upload.
	if out, err := exec.Command("e2fsck", "-fn", disk).CombinedOutput(); err != nil {
		t.Errorf("e2fsck of the store after the VM: %v\n%s", err, out)
	}
	if out, _ := exec.Command("debugfs", "-R", "ls -l /", disk).CombinedOutput(); !strings.Contains(string(out), "test.iso") {
		t.Errorf("the store's disk has no test.iso:\n%s", out)
	}
}
