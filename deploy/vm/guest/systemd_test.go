//go:build vmguest

package guest

import (
	"bytes"
	"crypto/sha256"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/msdav/msdav/fs"
)

// TestSystemdUnit runs as the VM's vm-check.service, after systemd started
// msdav with the shipped unit (TestSystemdVM on the host side).
func TestSystemdUnit(t *testing.T) {
	if os.Getenv("MSDAV_SYSTEMD_VM") == "" {
		t.Skip("runs only under systemd in TestSystemdVM")
	}
	b := &box{name: "systemd", base: "http://127.0.0.1:8080"}
	b.waitAnswers(t, "msdav started by its unit", "/healthz", 60*time.Second)

	// The sandbox is the unit's: no new privileges, a seccomp filter, and
	// a /dev of its own without the machine's devices.
	pid := msdavPID(t)
	status, _ := os.ReadFile("/proc/" + pid + "/status")
	for _, want := range []string{"NoNewPrivs:\t1", "Seccomp:\t2"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("msdav (pid %s) runs without %q: the unit's sandbox is not in force\n%s", pid, want, status)
		}
	}
	if _, err := os.Stat("/dev/ttyS0"); err != nil {
		t.Fatalf("this VM has no /dev/ttyS0 to compare with: %v", err)
	}
	if _, err := os.Stat("/proc/" + pid + "/root/dev/ttyS0"); err == nil {
		t.Error("msdav sees the machine's /dev/ttyS0: PrivateDevices=yes is not in force")
	}

	// Into the store over WebDAV (ProtectSystem=strict leaves only the
	// unit's ReadWritePaths writable), then onto the USB host as a CD.
	// The store's disk is mounted ro: the remount guard makes it rw for
	// the upload from inside the unit's mount namespace, and ro again a
	// second (remount_grace) after it.
	const store = "/var/lib/msdav/images"
	if !superRO(t, store) {
		t.Fatal("the store's disk is not mounted ro before the upload")
	}
	iso, err := os.ReadFile("/fixtures/test.iso")
	if err != nil {
		t.Fatal(err)
	}
	if code, out := b.do(t, "PUT", "/dav/test.iso", string(iso)); code != 201 {
		t.Fatalf("upload under the unit: %d %s", code, out)
	}
	waitFor(t, "the store's disk ro again after the upload", 15*time.Second, func() bool { return superRO(t, store) })
	if got, err := os.ReadFile(store + "/test.iso"); err != nil || !bytes.Equal(got, iso) {
		t.Fatalf("the upload as the machine sees it: %d bytes, %v", len(got), err)
	}

	// A USB stick (exFAT) mounted inside the store while msdav runs: the
	// mount reaches the unit's namespace, msdav lists it as a writable
	// part, and an upload lands on the stick.
	run(t, "mount", "-t", "exfat", "/dev/vdb", store+"/usb")
	defer syscall.Unmount(store+"/usb", 0)
	waitFor(t, "the stick as a writable part of the store", 15*time.Second, func() bool {
		_, out := b.do(t, "GET", "/api/images", "")
		return strings.Contains(out, `"path":"usb"`) && strings.Contains(out, `"fstype":"exfat"`) && strings.Contains(out, `"writable":true`)
	})
	if code, out := b.do(t, "PUT", "/dav/usb/on-the-stick.iso", string(iso)); code != 201 {
		t.Fatalf("upload onto the stick under the unit: %d %s", code, out)
	}
	if got, err := os.ReadFile(store + "/usb/on-the-stick.iso"); err != nil || !bytes.Equal(got, iso) {
		t.Fatalf("the upload on the stick as the machine sees it: %d bytes, %v", len(got), err)
	}
	if code, out := b.do(t, "PUT", "/api/drives/0", `{"image":"test.iso","cdrom":true}`); code != 200 {
		t.Fatalf("attach under the unit: %d %s", code, out)
	}
	hostReads := func(what, bus string) {
		t.Helper()
		dev, _ := waitBlockOnBus(t, what, bus, int64(len(iso)), 60*time.Second)
		got, err := os.ReadFile(dev)
		if err != nil {
			t.Fatalf("%s: read %s: %v", what, dev, err)
		}
		if sha256.Sum256(got) != sha256.Sum256(iso) {
			t.Fatalf("%s: %s differs from the image", what, dev)
		}
	}
	hostReads("the CD on the USB host", "usb1")

	// A restart through systemd keeps the drive: the unit preserves its
	// RuntimeDirectory, where the userspace drives' state lives.
	if out, err := exec.Command("/bin/systemctl", "restart", "msdav").CombinedOutput(); err != nil {
		t.Fatalf("systemctl restart msdav: %v %s", err, out)
	}
	if newPID := msdavPID(t); newPID == pid {
		t.Fatalf("msdav still runs as pid %s after the restart", pid)
	}
	hostReads("the CD on the USB host after systemctl restart", "usb1")
	if code, out := b.do(t, "GET", "/api/drives", ""); code != 200 || !strings.Contains(out, `"test.iso"`) {
		t.Errorf("drives after the restart: %d %s", code, out)
	}

	// The default backend, f_mass_storage through configfs (the unit's
	// ReadWritePaths), on the second UDC.
	cfg, err := os.ReadFile("/etc/msdav/msdav.toml")
	if err != nil {
		t.Fatal(err)
	}
	kernelCfg := strings.NewReplacer(`backend = "userspace"`, `backend = "kernel"`, `udc = "dummy_udc.0"`, `udc = "dummy_udc.1"`).Replace(string(cfg))
	kernelCfg = strings.Replace(kernelCfg, "[gadget]\n", "[gadget]\nname = \"msdavk\"\n", 1)
	if err := os.WriteFile("/etc/msdav/msdav.toml", []byte(kernelCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("/bin/systemctl", "restart", "msdav").CombinedOutput(); err != nil {
		t.Fatalf("systemctl restart msdav with the kernel backend: %v %s", err, out)
	}
	b.waitAnswers(t, "msdav back with the kernel backend", "/api/drives", 60*time.Second)
	if code, out := b.do(t, "PUT", "/api/drives/0", `{"image":"test.iso","cdrom":true}`); code != 200 {
		t.Fatalf("attach with the kernel backend under the unit: %d %s", code, out)
	}
	hostReads("the CD on the USB host through f_mass_storage", "usb2")
}

// superRO reports whether the file system mounted at dir is read-only
// itself (its super options in mountinfo), whatever one mount of it says.
func superRO(t *testing.T, dir string) bool {
	t.Helper()
	mounts, err := fs.ReadMounts()
	if err != nil {
		t.Fatal(err)
	}
	for i := len(mounts) - 1; i >= 0; i-- { // the last mount at dir is the one seen
		if mounts[i].Point == dir {
			return slices.Contains(strings.Split(mounts[i].SuperOptions, ","), "ro")
		}
	}
	t.Fatalf("nothing is mounted at %s", dir)
	return false
}

// msdavPID waits for the one msdav process and returns its pid.
func msdavPID(t *testing.T) string {
	t.Helper()
	var pid string
	waitFor(t, "msdav's process", 30*time.Second, func() bool {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			comm, err := os.ReadFile("/proc/" + e.Name() + "/comm")
			if err == nil && bytes.Equal(bytes.TrimSpace(comm), []byte("msdav")) {
				pid = e.Name()
				return true
			}
		}
		return false
	})
	return pid
}
