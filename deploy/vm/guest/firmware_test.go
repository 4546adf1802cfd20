//go:build vmguest

package guest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFirmwareBoot serves the boot DVD (vm.bootDiscPack) on msdav's
// userspace drive and hands the drive's USB device, through usbredirect,
// to each firmware's qemu outside the VM (vm.TestFirmwareBootVM), one
// after the other, on the ports msdav.fwports names.
func TestFirmwareBoot(t *testing.T) {
	cmdline, _ := os.ReadFile("/proc/cmdline")
	var ports []string
	for _, a := range strings.Fields(string(cmdline)) {
		if v, ok := strings.CutPrefix(a, "msdav.fwports="); ok {
			ports = strings.Split(v, ",")
		}
	}
	if len(ports) == 0 {
		t.Fatal("no msdav.fwports on the kernel's command line")
	}
	os.MkdirAll("/tmp/store", 0o755)
	size := unpackSparse(t, "/fixtures/boot.pack", "/tmp/store/boot.iso")
	os.WriteFile("/tmp/msdav.toml", []byte(`[storage]
root = "/tmp/store"
[gadget]
mode = "configfs"
udc = "dummy_udc.0"
backend = "userspace"
drives = 1
`), 0o644)
	startMsdav(t)
	defer func() { server.Process.Signal(syscall.SIGTERM); server.Wait() }()
	if code, m := call(t, "PUT", "/api/drives/0", `{"image":"boot.iso","cdrom":true}`); code != 200 || m["media"] != "dvd" {
		t.Fatalf("attach the boot DVD: %d %v", code, m)
	}
	waitDev(t, "the boot DVD on the VM's USB host", size)
	run(t, "ifconfig", "eth0", "10.0.2.15", "netmask", "255.255.255.0", "up")

	for _, port := range ports {
		// The device the drive is on the VM's first USB host (dummy_hcd.0):
		// read again each time, the last firmware may have reset it.
		bus, _ := os.ReadFile("/sys/bus/usb/devices/1-1/busnum")
		dev, _ := os.ReadFile("/sys/bus/usb/devices/1-1/devnum")
		device := strings.TrimSpace(string(bus)) + "-" + strings.TrimSpace(string(dev))
		// The firmware's qemu may not listen yet: a refused connection ends
		// usbredirect at once (and, in Debian's 0.13, in an abort), and is
		// tried again. A session ends when that qemu does, and usbredirect
		// with it, with status 0.
		deadline := time.Now().Add(3 * time.Minute)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			start := time.Now()
			out, err := exec.CommandContext(ctx, "/hosttools/usbredirect", "--device", device, "--to", "10.0.2.2:"+port).CombinedOutput()
			cancel()
			refused := strings.Contains(string(out), "Failed to connect")
			if !refused || time.Now().After(deadline) {
				t.Logf("usbredirect --device %s --to 10.0.2.2:%s ran %s (%v): %s", device, port, time.Since(start).Round(time.Millisecond), err, out)
			}
			if !refused {
				if err != nil {
					t.Errorf("the drive's session with the firmware on port %s ended in %v", port, err)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no firmware took the drive on port %s", port)
			}
			time.Sleep(time.Second)
		}
	}
}
