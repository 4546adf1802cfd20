//go:build vmguest

package guest

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFirmwareBoot serves the boot discs (vm.bootDiscPack) and the USB
// sticks (vm.bootSticks) on msdav's drives, userspace and kernel, and hands
// the drive's USB device, through usbredirect, to each firmware's qemu
// outside the VM (vm.TestFirmwareBootVM), one after the other: msdav.fw
// names each session's port, backend, image and media (dvd, cd, flash, or
// url: the DVD from an HTTP server here). It reads back
// through the drive what OVMF wrote to each stick.
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
	// Box U serves the userspace drive on the first UDC (usb1), box K the
	// kernel's on the second (usb2); each store holds the images.
	u := startBackendBox(t, "U", "8092", "dummy_udc.0", "userspace", "[fetch]", "allow_private = true")
	// usbredirect finds a device by its vendor and product IDs, even when
	// given its bus and number: box U has the default ones.
	k := startBackendBox(t, "K", "8091", "dummy_udc.1", "kernel", "product_id = 0x0105", `serial = "msdavK"`)
	defer stopBackendBoxes(t, u, k)
	sizes := map[string]int64{"boot.iso": unpackSparse(t, "/fixtures/boot.pack", "/tmp/boxU/boot.iso")}
	for _, image := range []string{"boot-cd.iso", "bios-stick.img", "efi-stick.img"} {
		for _, b := range []*box{u, k} {
			run(t, "cp", "/fixtures/"+image, "/tmp/box"+b.name+"/"+image)
		}
		fi, _ := os.Stat("/fixtures/" + image)
		sizes[image] = fi.Size()
	}
	run(t, "ifconfig", "eth0", "10.0.2.15", "netmask", "255.255.255.0", "up")

	// The DVD also from a URL: an HTTP server here (Range requests, as
	// net/http serves files) of box U's store.
	web := &http.Server{Addr: "127.0.0.1:8099", Handler: http.FileServer(http.Dir("/tmp/boxU"))}
	go web.ListenAndServe()
	defer web.Close()

	held := map[string]string{} // backend: image and media
	for _, session := range sessions {
		f := strings.Split(session, ":")
		if len(f) != 4 {
			t.Fatalf("session %q: want port:backend:image:media", session)
		}
		port, backend, image, media := f[0], f[1], f[2], f[3]
		b, bus := u, "usb1"
		if backend == "kernel" {
			b, bus = k, "usb2"
		}
		if held[backend] != image+media {
			body, want := `{"image":"`+image+`","cdrom":true}`, media
			switch media {
			case "flash":
				body = `{"image":"` + image + `","cdrom":false,"rw":true}`
			case "url":
				body, want = `{"url":"http://127.0.0.1:8099/`+image+`","cdrom":true}`, "dvd"
			}
			if code, out := b.do(t, "PUT", "/api/drives/0", body); code != 200 || !strings.Contains(out, `"media":"`+want+`"`) {
				t.Fatalf("attach %s on box %s: %d %s", body, b.name, code, out)
			}
			held[backend] = image + media
		}
		waitBlockOnBus(t, image+" on the VM's USB host ("+backend+")", bus, sizes[image], 60*time.Second)
		redirect(t, port, bus)
		if image != "efi-stick.img" {
			continue
		}
		// OVMF's script wrote to the stick: the VM's Linux reads it
		// through the drive once the device is back.
		dev, _ := waitBlockOnBus(t, "the stick back on the VM's USB host", bus, sizes[image], 60*time.Second)
		os.MkdirAll("/mnt/stick", 0o755)
		run(t, "mount", "-t", "vfat", "-o", "ro", dev, "/mnt/stick")
		got, err := os.ReadFile("/mnt/stick/written.txt")
		syscall.Unmount("/mnt/stick", 0)
		if err != nil || strings.TrimSpace(string(got)) != stickWrote {
			t.Errorf("the file OVMF wrote on the %s stick reads %q (%v), want %s", backend, got, err, stickWrote)
		}
	}
}

// stickWrote is what OVMF's script on the stick writes (vm.stickWrote).
const stickWrote = "MSDAV-UEFI-WROTE"

// redirect hands the USB device on the VM's bus (usb1: the first UDC's)
// to the firmware's qemu listening on port of the host (10.0.2.2 on qemu's
// user network) until that qemu ends.
func redirect(t *testing.T, port, onBus string) {
	t.Helper()
	// The drive is the one device on its bus; read its number each time,
	// it may have been plugged anew.
	sys := "/sys/bus/usb/devices/" + strings.TrimPrefix(onBus, "usb") + "-1/"
	bus, _ := os.ReadFile(sys + "busnum")
	dev, _ := os.ReadFile(sys + "devnum")
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
