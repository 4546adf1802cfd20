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

// TestFirmwareBoot serves the boot DVD (vm.bootDiscPack) and the USB sticks
// (vm.bootSticks) on msdav's userspace drive and hands the drive's USB
// device, through usbredirect, to each firmware's qemu outside the VM
// (vm.TestFirmwareBootVM), one after the other: msdav.fw names each
// session's port, image and media. Then it reads back through the drive
// what OVMF wrote to its stick.
func TestFirmwareBoot(t *testing.T) {
	cmdline, _ := os.ReadFile("/proc/cmdline")
	var sessions []string
	for _, a := range strings.Fields(string(cmdline)) {
		if v, ok := strings.CutPrefix(a, "msdav.fw="); ok {
			sessions = strings.Split(v, ",")
		}
	}
	if len(sessions) == 0 {
		t.Fatal("no msdav.fw on the kernel's command line")
	}
	os.MkdirAll("/tmp/store", 0o755)
	sizes := map[string]int64{"boot.iso": unpackSparse(t, "/fixtures/boot.pack", "/tmp/store/boot.iso")}
	for _, stick := range []string{"bios-stick.img", "efi-stick.img"} {
		run(t, "cp", "/fixtures/"+stick, "/tmp/store/"+stick)
		fi, _ := os.Stat("/tmp/store/" + stick)
		sizes[stick] = fi.Size()
	}
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
	run(t, "ifconfig", "eth0", "10.0.2.15", "netmask", "255.255.255.0", "up")

	held := ""
	for _, session := range sessions {
		port, rest, _ := strings.Cut(session, ":")
		image, media, _ := strings.Cut(rest, ":")
		if image != held {
			body := `{"image":"` + image + `","cdrom":true}`
			if media == "flash" {
				body = `{"image":"` + image + `","cdrom":false,"rw":true}`
			}
			if code, m := call(t, "PUT", "/api/drives/0", body); code != 200 || m["media"] != media {
				t.Fatalf("attach %s: %d %v", image, code, m)
			}
			held = image
		}
		waitBlockOnBus(t, image+" on the VM's USB host", "usb1", sizes[image], 60*time.Second)
		redirect(t, port)
	}

	// OVMF's script wrote to its stick: the VM's Linux reads it through the
	// drive once the device is back.
	dev, _ := waitBlockOnBus(t, "the stick back on the VM's USB host", "usb1", sizes["efi-stick.img"], 60*time.Second)
	os.MkdirAll("/mnt/stick", 0o755)
	run(t, "mount", "-t", "vfat", "-o", "ro", dev, "/mnt/stick")
	defer syscall.Unmount("/mnt/stick", 0)
	got, err := os.ReadFile("/mnt/stick/written.txt")
	if err != nil || strings.TrimSpace(string(got)) != "MSDAV-UEFI-WROTE" {
		t.Errorf("the file OVMF wrote on the stick reads %q (%v), want MSDAV-UEFI-WROTE", got, err)
	}
}

// redirect hands the drive's USB device to the firmware's qemu listening
// on port of the host (10.0.2.2 on qemu's user network) until that qemu
// ends.
func redirect(t *testing.T, port string) {
	t.Helper()
	// The device is on the VM's first USB host (dummy_hcd.0); read its
	// number each time, the device may have been plugged anew.
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
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no firmware took the drive on port %s", port)
		}
		time.Sleep(time.Second)
	}
}
