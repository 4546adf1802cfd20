//go:build vmtest

package vm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Blocks of the boot DVD where the test puts the firmware's boot images:
// past f_mass_storage's CD limit (block 1,151,999), so a firmware that
// boots has read there through msdav's userspace drive.
const (
	biosImageBlock = 1200000
	efiImageBlock  = 1200016
	bootDiscSize   = 3 << 30
)

const ovmf = "/usr/share/ovmf/OVMF.fd"

// The lines the boot images print: the boot program from the DVD and
// from the stick (testdata/boot.S, its line swapped for the stick's), and
// OVMF's startup.nsh from the DVD and from the stick; and what the
// stick's script writes to written.txt there.
const (
	biosSays   = "MSDAV-BIOS-BOOT"
	diskSays   = "MSDAV-DISK-BOOT"
	uefiSays   = "MSDAV-UEFI-BOOT"
	stickSays  = "MSDAV-UEFI-STICK"
	stickWrote = "MSDAV-UEFI-WROTE"
)

// firmwares are the boots, in order: SeaBIOS (qemu's default) and OVMF
// from a disc, then from a USB stick, on msdav's userspace drive and then
// on the kernel's f_mass_storage, each with the image the drive holds (a
// file of the guest's store; dvd, cd, flash, or url: the DVD served to
// the drive by an HTTP server in the guest) and the line its boot
// program or script prints. From the stick OVMF's script also writes a
// file, which the guest then reads back through the drive.
var firmwares = []struct{ name, bios, backend, image, media, says string }{
	{"SeaBIOS from the userspace DVD", "", "userspace", "boot.iso", "dvd", biosSays},
	{"OVMF from the userspace DVD", ovmf, "userspace", "boot.iso", "dvd", uefiSays},
	{"SeaBIOS from the userspace stick", "", "userspace", "bios-stick.img", "flash", diskSays},
	{"OVMF from the userspace stick", ovmf, "userspace", "efi-stick.img", "flash", stickSays},
	{"SeaBIOS from the userspace DVD at a URL", "", "userspace", "boot.iso", "url", biosSays},
	{"OVMF from the userspace DVD at a URL", ovmf, "userspace", "boot.iso", "url", uefiSays},
	{"SeaBIOS from the kernel's CD", "", "kernel", "boot-cd.iso", "cd", biosSays},
	{"OVMF from the kernel's CD", ovmf, "kernel", "boot-cd.iso", "cd", uefiSays},
	{"SeaBIOS from the kernel's stick", "", "kernel", "bios-stick.img", "flash", diskSays},
	{"OVMF from the kernel's stick", ovmf, "kernel", "efi-stick.img", "flash", stickSays},
}

// TestFirmwareBootVM boots PC firmware from a 3 GiB DVD that msdav's
// userspace drive serves: msdav runs in the usual VM, and a second qemu,
// outside it, gets the drive's USB device through usbredir (usbredirect
// in the VM, qemu's usb-redir on an xHCI controller) and boots from it,
// first with SeaBIOS (El Torito, a boot program that prints a line) and
// then with OVMF (the EFI shell runs startup.nsh from the El Torito EFI
// image). Both boot images lie past the CD limit. Then the same from a
// USB stick (the drive as flash, read-write): SeaBIOS runs the boot
// program from its first sector, OVMF's shell runs startup.nsh from its
// FAT file system, which writes a file there for the guest to read back.
// Then both from the DVD served to the drive from a URL. Then the disc and
// stick boots again on the kernel backend (f_mass_storage), from the disc
// as made (a CD) and the same sticks: the default works as well.
func TestFirmwareBootVM(t *testing.T) {
	nativeOnly(t)
	for _, tool := range []string{"as", "ld", "mcopy", "usbredirect"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("needs %s (.ci/run installs binutils, mtools and usbredirect)", tool)
		}
	}
	if _, err := os.Stat(ovmf); err != nil {
		t.Fatalf("needs OVMF (.ci/run installs ovmf): %v", err)
	}
	work := t.TempDir()
	initrd := filepath.Join(work, "initrd")
	os.MkdirAll(filepath.Join(initrd, "fixtures"), 0o755)
	os.MkdirAll(filepath.Join(initrd, "hosttools"), 0o755)
	prog := bootProgram(t, work)
	bootDiscPack(t, work, prog, filepath.Join(initrd, "fixtures", "boot.pack"))
	bootSticks(t, work, prog, filepath.Join(initrd, "fixtures"))
	usbredirect, _ := exec.LookPath("usbredirect")
	must(t, "cp", usbredirect, filepath.Join(initrd, "hosttools", "usbredirect"))
	copyLibs(t, initrd, usbredirect)
	kernel, img := guestImage(t, work, initScript, "virtio_net", "virtio_pci")

	// Each firmware's qemu listens for the VM's usbredirect on a port of
	// its own and starts the machine only once it is connected (wait=on):
	// the firmware finds the drive plugged in at power-on.
	var ports []string
	for range firmwares {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, fmt.Sprint(l.Addr().(*net.TCPAddr).Port))
		l.Close()
	}
	type result struct {
		log  string
		err  error
		took time.Duration
	}
	results := make(chan result, len(firmwares))
	go func() {
		for i, fw := range firmwares {
			args := []string{"-nographic", "-m", "256", "-nic", "none", "-no-reboot", "-accel", "tcg",
				"-chardev", "socket,id=usbredir,host=127.0.0.1,port=" + ports[i] + ",server=on,wait=on",
				"-device", "qemu-xhci,id=xhci", "-device", "usb-redir,chardev=usbredir,bus=xhci.0",
				"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"}
			if fw.bios != "" {
				args = append(args, "-bios", fw.bios)
			}
			q := exec.Command("qemu-system-x86_64", args...)
			var out bytes.Buffer
			q.Stdout, q.Stderr = &out, &out
			start := time.Now()
			err := q.Start()
			if err == nil {
				timer := time.AfterFunc(3*time.Minute, func() { q.Process.Kill() })
				err = q.Wait()
				timer.Stop()
			}
			results <- result{out.String(), err, time.Since(start)}
		}
	}()
	var sessions []string // port:backend:image:media, for the guest
	for i, fw := range firmwares {
		sessions = append(sessions, strings.Join([]string{ports[i], fw.backend, fw.image, fw.media}, ":"))
	}
	log, exit := boot(t, kernel, img, "msdav.run=^TestFirmwareBoot$ msdav.fw="+strings.Join(sessions, ","),
		"-nic", "user,model=virtio-net-pci")
	if exit != 0 {
		t.Errorf("guest test exited %d%s", exit, guestFailures(log))
	}
	// Nothing the hosts there asked (the VM's Linux, then each firmware)
	// is a command the drive does not have: msdav says so once per opcode.
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "drive does not have") {
			t.Errorf("a host asked for a command the drive does not have: %s", strings.TrimSpace(line))
		}
	}
	for _, fw := range firmwares {
		var r result
		select {
		case r = <-results:
		case <-time.After(2 * time.Minute):
			t.Fatalf("%s's qemu did not end", fw.name)
		}
		// Only the firmware's own lines: the console's escape sequences out.
		screen := regexpEscapes.ReplaceAllString(r.log, "")
		t.Logf("%s ran %s (%v); its console:\n%s", fw.name, r.took.Round(time.Millisecond), r.err, screen)
		if !hasLine(screen, fw.says) {
			t.Errorf("%s did not boot: no %q on its console", fw.name, fw.says)
		}
	}
}

// regexpEscapes are a terminal's control sequences (OVMF draws its screen).
var regexpEscapes = regexp.MustCompile(`\x1b\[[0-9;=?]*[A-Za-z]`)

func hasLine(s, line string) bool {
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == line {
			return true
		}
	}
	return false
}

// bootProgram assembles testdata/boot.S into the flat program a BIOS loads
// at 0000:7C00.
func bootProgram(t *testing.T, work string) []byte {
	t.Helper()
	obj, bin := filepath.Join(work, "boot.o"), filepath.Join(work, "boot.bin")
	must(t, "as", "--32", "-o", obj, filepath.Join(repoRoot(t), "deploy", "vm", "testdata", "boot.S"))
	must(t, "ld", "-m", "elf_i386", "-Ttext", "0x7c00", "--oformat", "binary", "-o", bin, obj)
	prog, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(prog, []byte(biosSays)) {
		t.Fatalf("the boot program does not say %s", biosSays)
	}
	return prog
}

// bootDiscPack makes the boot DVD and writes it as a sparse pack (see
// udfPack) for the guest to lay out: an ISO 9660 disc with two El Torito
// images, a BIOS one (prog) and an EFI one (a FAT image holding
// startup.nsh), both moved past the CD limit with the boot catalog
// pointing there, in a disc of 3 GiB.
func bootDiscPack(t *testing.T, work string, prog []byte, out string) {
	t.Helper()
	src := filepath.Join(work, "bootsrc")
	os.MkdirAll(src, 0o755)
	if err := os.WriteFile(filepath.Join(src, "boot.bin"), prog, 0o644); err != nil {
		t.Fatal(err)
	}
	nsh := filepath.Join(work, "startup.nsh")
	os.WriteFile(nsh, []byte("echo "+uefiSays+"\r\nreset -s\r\n"), 0o644)
	efi := filepath.Join(src, "efi.img")
	must(t, "mkfs.vfat", "-C", efi, "1440")
	must(t, "mcopy", "-i", efi, nsh, "::/startup.nsh")
	iso := filepath.Join(work, "boot.iso")
	must(t, "xorriso", "-as", "mkisofs", "-quiet", "-V", "MSDAVBOOT",
		"-b", "boot.bin", "-no-emul-boot", "-boot-load-size", "4",
		"-eltorito-alt-boot", "-e", "efi.img", "-no-emul-boot", "-o", iso, src)
	disc, err := os.ReadFile(iso)
	if err != nil {
		t.Fatal(err)
	}
	// As made, with its images where xorriso put them: the kernel's CD.
	if err := os.WriteFile(filepath.Join(filepath.Dir(out), "boot-cd.iso"), disc, 0o644); err != nil {
		t.Fatal(err)
	}
	// The boot record volume descriptor (block 17) names the catalog;
	// its default entry (BIOS) is the second 32-byte record, the EFI
	// section's entry the fourth; each entry's image block is at byte 8.
	brvd := disc[17*2048:]
	if brvd[0] != 0 || string(brvd[1:6]) != "CD001" || !bytes.HasPrefix(brvd[7:], []byte("EL TORITO SPECIFICATION")) {
		t.Fatal("xorriso's disc has no El Torito boot record at block 17")
	}
	catalog := disc[binary.LittleEndian.Uint32(brvd[0x47:])*2048:]
	if catalog[32] != 0x88 || catalog[64]&0xfe != 0x90 || catalog[65] != 0xef || catalog[96] != 0x88 {
		t.Fatalf("unexpected boot catalog: % x", catalog[:128])
	}
	image := func(entry []byte) []byte {
		at := int(binary.LittleEndian.Uint32(entry[8:])) * 2048
		n := int(binary.LittleEndian.Uint16(entry[6:])) * 512
		return append([]byte(nil), disc[at:at+n]...)
	}
	bios, efiImage := image(catalog[32:]), image(catalog[96:])
	binary.LittleEndian.PutUint32(catalog[32+8:], biosImageBlock)
	binary.LittleEndian.PutUint32(catalog[96+8:], efiImageBlock)
	if len(bios) > (efiImageBlock-biosImageBlock)*2048 {
		t.Fatalf("the BIOS image (%d bytes) runs into the EFI one", len(bios))
	}

	pack := createSparsePack(t, out)
	pack.run(0, disc)
	pack.run(biosImageBlock*2048, bios)
	pack.run(efiImageBlock*2048, efiImage)
	pack.close(t, bootDiscSize)
	t.Logf("boot DVD: %d bytes; BIOS image (%d bytes) at block %d, EFI image (%d bytes) at block %d",
		int64(bootDiscSize), len(bios), biosImageBlock, len(efiImage), efiImageBlock)
}

// bootSticks makes the two USB stick images into dir: bios-stick.img, the
// boot program (prog, saying diskSays instead) as its master boot record;
// efi-stick.img, a FAT file system without partitions whose startup.nsh
// writes written.txt and ends the machine.
func bootSticks(t *testing.T, work string, prog []byte, dir string) {
	t.Helper()
	prog = bytes.Replace(prog, []byte(biosSays), []byte(diskSays), 1)
	if !bytes.Contains(prog, []byte(diskSays)) || len(prog) > 446 {
		t.Fatalf("boot program of %d bytes without its line: not a master boot record", len(prog))
	}
	mbr := make([]byte, 1<<20)
	copy(mbr, prog)
	mbr[510], mbr[511] = 0x55, 0xaa
	if err := os.WriteFile(filepath.Join(dir, "bios-stick.img"), mbr, 0o644); err != nil {
		t.Fatal(err)
	}
	nsh := filepath.Join(work, "stick-startup.nsh")
	os.WriteFile(nsh, []byte("echo "+stickSays+"\r\necho "+stickWrote+" >a FS0:\\written.txt\r\nreset -s\r\n"), 0o644)
	efi := filepath.Join(dir, "efi-stick.img")
	must(t, "mkfs.vfat", "-C", efi, "4096")
	must(t, "mcopy", "-i", efi, nsh, "::/startup.nsh")
}
