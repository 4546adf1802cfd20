//go:build vmguest

package guest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/msdav/msdav/gadget/ffs"
	"golang.org/x/sys/unix"
)

// sumTail is the sha256 of the n bytes that end at size in path.
func sumTail(t *testing.T, path string, size, n int64) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, size-n, n)); err != nil {
		t.Fatalf("read the last %d bytes of %s: %v", n, path, err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// tool runs a program copied into the VM with its libraries (/hosttools).
func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command("/hosttools/"+name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// TestUserspace runs the drives on msdav's own target over FunctionFS
// (gadget.backend = "userspace") and checks what the host sees.
func TestUserspace(t *testing.T) {
	os.MkdirAll("/tmp/store", 0o755)
	run(t, "cp", "/fixtures/test.iso", "/tmp/store/test.iso")
	iso, _ := os.Stat("/fixtures/test.iso")

	// A 3 GiB DVD: the ISO's head, holes, and a known tail.
	const dvdSize = 3 << 30
	run(t, "cp", "/fixtures/test.iso", "/tmp/store/dvd.iso")
	func() {
		f, err := os.OpenFile("/tmp/store/dvd.iso", os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		tail := make([]byte, 4<<20)
		for i := range tail {
			tail[i] = byte(i*13 + i>>12)
		}
		if _, err := f.WriteAt(tail, dvdSize-int64(len(tail))); err != nil {
			t.Fatal(err)
		}
	}()

	config := func(backend string) {
		os.WriteFile("/tmp/msdav.toml", []byte(`[storage]
root = "/tmp/store"
[gadget]
mode = "configfs"
udc = "dummy_udc.0"
backend = "`+backend+`"
drives = 2
[fetch]
allow_private = true
`), 0o644)
	}
	t.Run("the benchmark's dd reader times a whole read and refuses a short one", func(t *testing.T) {
		if _, err := os.Stat("/hosttools/dd"); err != nil {
			t.Skip("no /hosttools/dd in this VM (GNU coreutils' dd on the host)")
		}
		f := "/tmp/ddread.img"
		if err := os.WriteFile(f, make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(f)
		if d, err := ddRead(f, 256<<10, 512<<10); err != nil || d <= 0 {
			t.Errorf("ddRead of 512 KiB at 256 KiB of a 1 MiB file: %v, %v", d, err)
		}
		for _, c := range []struct {
			dev       string
			off, n    int64
			wantError string
		}{
			{f, 768 << 10, 512 << 10, "dd copied 262144 bytes of 524288"},
			{"/tmp/no-such-drive", 0, 32 << 10, "No such file"},
		} {
			_, err := ddRead(c.dev, c.off, c.n)
			if err == nil || !strings.Contains(err.Error(), c.wantError) {
				t.Errorf("ddRead(%s, %d, %d) = %v, want an error with %q", c.dev, c.off, c.n, err, c.wantError)
			}
		}
	})
	t.Run("read throughput, both backends side by side", func(t *testing.T) {
		readThroughputSideBySide(t, "/tmp/store/dvd.iso", dvdSize)
	})
	t.Run("SCSI answers as f_mass_storage's", scsiAnswersMatchKernel)
	// One gadget goes from the kernel's drive to msdav's own: the
	// server below reconfigures the gadget this one made.
	t.Run("the kernel backend, then the userspace one on the same gadget", func(t *testing.T) {
		config("kernel")
		startMsdav(t)
		defer func() { server.Process.Signal(syscall.SIGTERM); server.Wait() }()
		if code, m := call(t, "PUT", "/api/drives/0", `{"image":"test.iso","cdrom":true}`); code != 200 {
			t.Fatalf("attach on the kernel backend: %d %v", code, m)
		}
		waitFor(t, "/dev/sr0 from f_mass_storage", 20*time.Second, func() bool { return deviceSize("/dev/sr0") == iso.Size() })
		if code, m := call(t, "DELETE", "/api/drives/0", ""); code != 200 {
			t.Fatalf("eject: %d %v", code, m)
		}
	})
	config("userspace")
	startMsdav(t)
	defer func() { server.Process.Signal(syscall.SIGTERM); server.Wait() }()
	// The drives' FunctionFS instances are mounted in msdav's runtime
	// directory (the boxes above: their own), not under /dev, which a
	// systemd 255+ unit with PrivateDevices=yes has read-only.
	mounts, _ := os.ReadFile("/proc/mounts")
	var ffsMounts []string
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[2] == "functionfs" {
			ffsMounts = append(ffsMounts, f[1])
			if !strings.HasPrefix(f[1], "/run/msdav") || !strings.Contains(f[1], "/ffs/") {
				t.Errorf("a drive's FunctionFS is mounted at %s, not in a runtime directory", f[1])
			}
		}
	}
	if !slices.Contains(ffsMounts, "/run/msdav/ffs/msdav0") || !slices.Contains(ffsMounts, "/run/msdav/ffs/msdav1") {
		t.Errorf("FunctionFS mounts %v: want /run/msdav/ffs/msdav0 and msdav1", ffsMounts)
	}
	// An instance mounted elsewhere (an older msdav's mount at another
	// place) is refused with a reason.
	os.MkdirAll("/tmp/ffs-elsewhere", 0o755)
	if err := ffs.Mount("msdav0", "/tmp/ffs-elsewhere"); err == nil || !strings.Contains(err.Error(), "mounted elsewhere") {
		t.Errorf("mount of a mounted instance elsewhere: %v", err)
	}

	t.Run("a 3 GiB DVD shows its full size, its tail reads back, it mounts", func(t *testing.T) {
		start := time.Now()
		code, m := call(t, "PUT", "/api/drives/0", `{"image":"dvd.iso","cdrom":true}`)
		if code != 200 || m["media"] != "dvd" {
			t.Fatalf("attach: %d %v", code, m)
		}
		waitFor(t, "/dev/sr0 at 3 GiB", 30*time.Second, func() bool { return deviceSize("/dev/sr0") == dvdSize })
		t.Logf("attach-to-visible latency: %s", time.Since(start).Round(time.Millisecond))
		const tail = 64 << 20
		t0 := time.Now()
		got := sumTail(t, "/dev/sr0", dvdSize, tail)
		took := time.Since(t0)
		if got != sumTail(t, "/tmp/store/dvd.iso", dvdSize, tail) {
			t.Fatal("the last 64 MiB of /dev/sr0 differ from the image")
		}
		t.Logf("USERSPACE-READ-MBPS %.1f (64 MiB at the end of the DVD in %s)", 64/took.Seconds(), took.Round(time.Millisecond))
		os.MkdirAll("/mnt/dvd", 0o755)
		run(t, "mount", "-t", "iso9660", "-o", "ro", "/dev/sr0", "/mnt/dvd")
		b, err := os.ReadFile("/mnt/dvd/hello.txt")
		if err != nil || string(b) != "hello from msdav\n" {
			t.Fatalf("hello.txt on the DVD: %q %v", b, err)
		}
	})
	t.Run("sg3-utils see a DVD drive", func(t *testing.T) {
		if _, err := os.Stat("/hosttools/sg_inq"); err != nil {
			t.Skip("sg3-utils were not copied into the VM")
		}
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"sg_inq", "/dev/sr0"}, "Peripheral device type: cd/dvd"},
			{[]string{"sg_inq", "/dev/sr0"}, "Virtual DVD-ROM"},
			{[]string{"sg_readcap", "/dev/sr0"}, fmt.Sprintf("Device size: %d bytes", int64(dvdSize))},
			{[]string{"sg_turs", "-v", "/dev/sr0"}, ""},
			{[]string{"sg_modes", "-p", "0x2a", "/dev/sr0"}, "MM capabilities"},
			{[]string{"sg_get_config", "/dev/sr0"}, "Current profile: DVD-ROM"},
		} {
			out := tool(t, tc.args[0], tc.args[1:]...)
			t.Logf("%s:\n%s", strings.Join(tc.args, " "), out)
			if !strings.Contains(out, tc.want) {
				t.Errorf("%v: want %q in the output", tc.args, tc.want)
			}
		}
	})
	t.Run("a locked eject is 409, forced works", func(t *testing.T) {
		code, m := call(t, "DELETE", "/api/drives/0", "")
		if code != 409 {
			t.Fatalf("eject of a mounted DVD: %d %v", code, m)
		}
		code, m = call(t, "DELETE", "/api/drives/0?force=1", "")
		if code != 200 || m["image"] != nil {
			t.Fatalf("forced eject: %d %v", code, m)
		}
		exec.Command("umount", "-l", "/mnt/dvd").Run()
		waitFor(t, "sr0 empty", 10*time.Second, func() bool { return deviceSize("/dev/sr0") == 0 })
	})
	t.Run("a disc swapped without reconnect is seen", func(t *testing.T) {
		if code, m := call(t, "PUT", "/api/drives/0", `{"image":"test.iso","cdrom":true}`); code != 200 || m["media"] != "cd" {
			t.Fatalf("attach: %d %v", code, m)
		}
		waitFor(t, "/dev/sr0 with test.iso", 20*time.Second, func() bool { return deviceSize("/dev/sr0") == iso.Size() })
		if sum(t, "/dev/sr0", iso.Size()) != sum(t, "/fixtures/test.iso", iso.Size()) {
			t.Fatal("/dev/sr0 differs from test.iso")
		}
		if code, m := call(t, "DELETE", "/api/drives/0", ""); code != 200 {
			t.Fatalf("eject: %d %v", code, m)
		}
		if code, m := call(t, "PUT", "/api/drives/0", `{"image":"dvd.iso","cdrom":true}`); code != 200 {
			t.Fatalf("attach: %d %v", code, m)
		}
		waitFor(t, "/dev/sr0 with the DVD again", 20*time.Second, func() bool { return deviceSize("/dev/sr0") == dvdSize })
		if sumTail(t, "/dev/sr0", dvdSize, 1<<20) != sumTail(t, "/tmp/store/dvd.iso", dvdSize, 1<<20) {
			t.Fatal("the swapped-in DVD reads wrong")
		}
	})
	t.Run("the host's CDROMEJECT is noticed", func(t *testing.T) {
		fd, err := unix.Open("/dev/sr0", unix.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		const cdromEject = 0x5309
		err = unix.IoctlSetInt(fd, cdromEject, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatalf("CDROMEJECT: %v", err)
		}
		took := waitFor(t, "msdav to report drive 0 empty", 10*time.Second, func() bool {
			_, m := call(t, "GET", "/api/drives/0", "")
			return m["image"] == nil
		})
		t.Logf("host eject noticed after %s", took.Round(time.Millisecond))
	})
	t.Run("flash rw: the host formats, writes, syncs; the bytes are in the image", func(t *testing.T) {
		f, _ := os.Create("/tmp/store/blank.img")
		f.Truncate(64 << 20)
		f.Close()
		code, m := call(t, "PUT", "/api/drives/1", `{"image":"blank.img","cdrom":false,"rw":true}`)
		if code != 200 || m["media"] != "flash" || m["rw"] != true {
			t.Fatalf("attach flash rw: %d %v", code, m)
		}
		var dev string
		waitFor(t, "the flash drive as /dev/sd?", 20*time.Second, func() bool {
			for _, d := range []string{"/dev/sda", "/dev/sdb"} {
				if deviceSize(d) == 64<<20 {
					dev = d
					return true
				}
			}
			return false
		})
		mkfs := []string{"/hosttools/mkfs.fat", "-F", "32", "-n", "HOSTMADE", dev}
		if _, err := os.Stat(mkfs[0]); err != nil {
			mkfs = []string{"mkdosfs", "-n", "HOSTMADE", dev}
		}
		run(t, mkfs[0], mkfs[1:]...)
		os.MkdirAll("/mnt/f", 0o755)
		run(t, "mount", "-t", "vfat", dev, "/mnt/f")
		marker := fmt.Sprintf("written by the host over FunctionFS at %d", time.Now().UnixNano())
		if err := os.WriteFile("/mnt/f/FROMHOST.TXT", []byte(marker), 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, "sync")
		run(t, "umount", "/mnt/f")
		if code, m := call(t, "DELETE", "/api/drives/1", ""); code != 200 {
			t.Fatalf("eject after umount: %d %v", code, m)
		}
		img, err := os.ReadFile("/tmp/store/blank.img")
		if err != nil || !bytes.Contains(img, []byte(marker)) || !bytes.Contains(img, []byte("HOSTMADE")) {
			t.Fatalf("the host's filesystem and file are not in the image (%v)", err)
		}
	})
	t.Run("a DVD served from a URL; the server gone gives I/O errors, not a hang", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.FileServer(http.Dir("/tmp/store"))}
		go srv.Serve(ln)
		defer srv.Close()
		call(t, "DELETE", "/api/drives/0?force=1", "")
		url := "http://" + ln.Addr().String() + "/dvd.iso"
		code, m := call(t, "PUT", "/api/drives/0", `{"url":"`+url+`","cdrom":true}`)
		if code != 200 || m["url"] != url || m["media"] != "dvd" {
			t.Fatalf("attach URL: %d %v", code, m)
		}
		waitFor(t, "/dev/sr0 at 3 GiB from the URL", 30*time.Second, func() bool { return deviceSize("/dev/sr0") == dvdSize })
		const tail = 16 << 20
		t0 := time.Now()
		if sumTail(t, "/dev/sr0", dvdSize, tail) != sumTail(t, "/tmp/store/dvd.iso", dvdSize, tail) {
			t.Fatal("the last 16 MiB of /dev/sr0 differ from the image served by URL")
		}
		t.Logf("URL-READ-MBPS %.1f (16 MiB)", 16/time.Since(t0).Seconds())
		srv.Close() // the server is gone
		// A direct read far from anything cached must fail within the
		// limit (10 s) plus the host's handling, not hang.
		fd, err := unix.Open("/dev/sr0", unix.O_RDONLY|unix.O_DIRECT, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		buf, _ := unix.Mmap(-1, 0, 64<<10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		start := time.Now()
		done := make(chan error, 1)
		go func() { _, err := unix.Pread(fd, buf, 1<<30); done <- err }()
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("a read with the server gone succeeded")
			}
			t.Logf("read with the server gone failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
		case <-time.After(90 * time.Second):
			t.Fatal("a read with the server gone hung for 90 s")
		}
		if code, m := call(t, "DELETE", "/api/drives/0?force=1", ""); code != 200 {
			t.Fatalf("eject the URL drive: %d %v", code, m)
		}
	})
	t.Run("the host gives up on a READ held by a slow URL server; what follows reads right", func(t *testing.T) {
		hostGivesUpDuringSlowRead(t, "/tmp/store/dvd.iso", dvdSize)
	})
	t.Run("a UDF disc bigger than a CD mounts -t udf, its file past the CD limit reads right", func(t *testing.T) {
		if _, err := os.Stat("/fixtures/udf.pack"); err != nil {
			t.Skip("no UDF fixture (genisoimage was not installed on the host)")
		}
		size := unpackSparse(t, "/fixtures/udf.pack", "/tmp/store/udf.iso")
		call(t, "DELETE", "/api/drives/0?force=1", "")
		code, m := call(t, "PUT", "/api/drives/0", `{"image":"udf.iso","cdrom":true}`)
		if code != 200 || m["media"] != "dvd" {
			t.Fatalf("attach the UDF disc: %d %v", code, m)
		}
		waitFor(t, "/dev/sr0 with the UDF disc", 30*time.Second, func() bool { return deviceSize("/dev/sr0") == size })
		os.MkdirAll("/mnt/udf", 0o755)
		run(t, "mount", "-t", "udf", "-o", "ro", "/dev/sr0", "/mnt/udf")
		defer exec.Command("umount", "/mnt/udf").Run()
		var st unix.Statfs_t
		if err := unix.Statfs("/mnt/udf", &st); err != nil || st.Type != 0x15013346 { // UDF_SUPER_MAGIC
			t.Fatalf("/mnt/udf is not UDF: type %#x %v", st.Type, err)
		}
		b, err := os.ReadFile("/mnt/udf/hello.txt")
		if err != nil || string(b) != "hello from a UDF disc\n" {
			t.Fatalf("hello.txt on the UDF disc: %q %v", b, err)
		}
		b, err = os.ReadFile("/mnt/udf/zzz-payload.bin")
		if err != nil || !bytes.Equal(b, udfPayload()) {
			t.Fatalf("the payload past the CD limit reads wrong (%d bytes, %v)", len(b), err)
		}
		fi, err := os.Stat("/mnt/udf/aaa-filler.bin")
		if err != nil || fi.Size() != 2500000000 {
			t.Fatalf("the filler: %v %v", fi, err)
		}
		run(t, "umount", "/mnt/udf")
		if code, m := call(t, "DELETE", "/api/drives/0", ""); code != 200 {
			t.Fatalf("eject: %d %v", code, m)
		}
	})
	t.Run("after a kill -9 and restart the drives come back with their media", func(t *testing.T) {
		// An image server of the test's own, alive across msdav's restarts.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.FileServer(http.Dir("/fixtures"))}
		go srv.Serve(ln)
		defer srv.Close()
		url := "http://" + ln.Addr().String() + "/test.iso"
		call(t, "DELETE", "/api/drives/0?force=1", "")
		call(t, "DELETE", "/api/drives/1?force=1", "")
		if code, m := call(t, "PUT", "/api/drives/0", `{"image":"dvd.iso","cdrom":true}`); code != 200 {
			t.Fatalf("attach the DVD: %d %v", code, m)
		}
		if code, m := call(t, "PUT", "/api/drives/1", `{"url":"`+url+`","cdrom":true}`); code != 200 {
			t.Fatalf("attach the URL: %d %v", code, m)
		}
		dvd := waitDev(t, "the DVD", dvdSize)
		waitDev(t, "the CD from the URL", iso.Size())
		_, before0 := call(t, "GET", "/api/drives/0", "")
		_, before1 := call(t, "GET", "/api/drives/1", "")
		server.Process.Signal(syscall.SIGKILL)
		server.Wait()
		// The process was the device: the host lost both drives.
		waitFor(t, "the host to lose the DVD", 30*time.Second, func() bool { return deviceSize(dvd) != dvdSize })
		t0 := time.Now()
		startMsdav(t)
		for i, before := range []map[string]any{before0, before1} {
			_, m := call(t, "GET", fmt.Sprintf("/api/drives/%d", i), "")
			if fmt.Sprint(m) != fmt.Sprint(before) {
				t.Errorf("drive %d after the restart: %v, was %v", i, m, before)
			}
		}
		dvd = waitDev(t, "the DVD after the restart", dvdSize)
		t.Logf("restart to the DVD seen again by the host: %s", time.Since(t0).Round(time.Millisecond))
		if sumTail(t, dvd, dvdSize, 4<<20) != sumTail(t, "/tmp/store/dvd.iso", dvdSize, 4<<20) {
			t.Fatalf("the DVD's tail reads wrong from %s after the restart", dvd)
		}
		cd := waitDev(t, "the CD from the URL after the restart", iso.Size())
		if sum(t, cd, iso.Size()) != sum(t, "/fixtures/test.iso", iso.Size()) {
			t.Fatalf("%s differs from test.iso after the restart", cd)
		}
		// Both drives came back as CDs, which a new process's drives are
		// not until the restore: typed before the host asked, they need
		// no reconnect, which would show the host the device twice.
		if strings.Contains(serverLog.String(), "reconnected so the host sees the new drive type") {
			t.Error("the restore reconnected the USB device to change a drive's type the host had not read yet")
		}
		// The DVD is still attached as far as the share is concerned.
		if code, _ := call(t, "DELETE", "/dav/dvd.iso", ""); code != 423 {
			t.Errorf("DELETE of the restored DVD: %d, want 423", code)
		}

		// Again, with the image server gone meanwhile: msdav starts, the
		// DVD comes back, the URL's drive is empty and says why.
		server.Process.Signal(syscall.SIGKILL)
		server.Wait()
		srv.Close()
		startMsdav(t)
		_, m := call(t, "GET", "/api/drives/1", "")
		if m["url"] != nil || !strings.Contains(fmt.Sprint(m["restore_error"]), url) {
			t.Fatalf("drive 1 after a restart with its URL gone: %v", m)
		}
		t.Logf("drive 1's restore_error: %v", m["restore_error"])
		dvd = waitDev(t, "the DVD after the second restart", dvdSize)
		if sumTail(t, dvd, dvdSize, 1<<20) != sumTail(t, "/tmp/store/dvd.iso", dvdSize, 1<<20) {
			t.Fatalf("the DVD's tail reads wrong from %s after the second restart", dvd)
		}
		call(t, "DELETE", "/api/drives/0?force=1", "")
	})
	t.Run("attached image is 423 on the share", func(t *testing.T) {
		if code, m := call(t, "PUT", "/api/drives/0", `{"image":"test.iso","cdrom":true}`); code != 200 {
			t.Fatalf("attach: %d %v", code, m)
		}
		if code, _ := call(t, "DELETE", "/dav/test.iso", ""); code != 423 {
			t.Fatalf("DELETE of an attached image: %d, want 423", code)
		}
	})
}

// waitDev waits for the host to show a medium of size on a CD drive and
// names the device.
func waitDev(t *testing.T, what string, size int64) string {
	t.Helper()
	var dev string
	waitFor(t, what, 60*time.Second, func() bool {
		for _, d := range []string{"/dev/sr0", "/dev/sr1", "/dev/sr2", "/dev/sr3"} {
			if deviceSize(d) == size {
				dev = d
				return true
			}
		}
		return false
	})
	return dev
}

// udfPayload is the file on the UDF fixture (vm.udfPayload on the host).
func udfPayload() []byte {
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte(i*13 + i>>12 + 1)
	}
	return b
}

// unpackSparse lays out a sparse pack (vm.udfPack) as a sparse file and
// returns its size.
func unpackSparse(t *testing.T, pack, out string) int64 {
	t.Helper()
	in, err := os.Open(pack)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	r := bufio.NewReader(in)
	if magic, _ := r.ReadString('\n'); magic != "MSDAVSPARSE1\n" {
		t.Fatalf("%s: not a sparse pack (%q)", pack, magic)
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for {
		var off, n int64
		if err := binary.Read(r, binary.BigEndian, &off); err != nil {
			t.Fatalf("%s: %v", pack, err)
		}
		if err := binary.Read(r, binary.BigEndian, &n); err != nil {
			t.Fatalf("%s: %v", pack, err)
		}
		if off < 0 {
			if err := f.Truncate(n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatalf("%s: %v", pack, err)
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
}
