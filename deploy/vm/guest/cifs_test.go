//go:build vmguest

package guest

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The library for the CIFS test: a tmpfs that Samba's smbd shares as
// "lib" (a NAS's CIFS share is Samba's almost always).
const (
	cifsExport = "/srv/lib"
	sambaDir   = "/tmp/samba"
	// What mount.cifs would hand the kernel: busybox has no mount.cifs.
	// A user smbd does not know is its guest ("map to guest = bad user"),
	// as on a NAS's open share. nodfs: no DFS referrals to look up.
	// nosharesock: each box's mount gets a connection and a superblock
	// (a cache) of its own, as two machines would; without it the
	// kernel shares one between identical mounts of the same share.
	cifsOptions = "ip=127.0.0.1,username=msdav,password=fleet,vers=3.0,sec=ntlmssp,nodfs,nosharesock"
)

const smbConf = `[global]
	server role = standalone server
	workgroup = WORKGROUP
	interfaces = lo
	bind interfaces only = yes
	smb ports = 445
	disable netbios = yes
	load printers = no
	printing = bsd
	printcap name = /dev/null
	disable spoolss = yes
	map to guest = bad user
	guest account = nobody
	lock directory = ` + sambaDir + `/lock
	state directory = ` + sambaDir + `/state
	cache directory = ` + sambaDir + `/cache
	private dir = ` + sambaDir + `/private
	pid directory = ` + sambaDir + `/pid
	ncalrpc dir = ` + sambaDir + `/ncalrpc
	binddns dir = ` + sambaDir + `/bind-dns
	log level = 1
[lib]
	path = ` + cifsExport + `
	read only = no
	guest ok = yes
	force user = root
	force group = root
`

// startSmbd starts smbd in the foreground (its log goes to the test's
// output) sharing cifsExport, and returns a function that stops it.
func startSmbd(t *testing.T) (stop func()) {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/smbd"); err != nil {
		t.Fatalf("no smbd in the initramfs (vm_test.go copies Samba when cifs is among the modules): %v", err)
	}
	for _, d := range []string{cifsExport, "/etc", "/var/log/samba", sambaDir + "/lock", sambaDir + "/state", sambaDir + "/cache",
		sambaDir + "/private", sambaDir + "/pid", sambaDir + "/ncalrpc", sambaDir + "/bind-dns"} {
		os.MkdirAll(d, 0o755)
	}
	run(t, "mount", "-t", "tmpfs", "-o", "size=200m", "tmpfs", cifsExport)
	// smbd maps the share's users to system users by name.
	appendLine := func(file, line string) {
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fmt.Fprintln(f, line)
	}
	appendLine("/etc/passwd", "root:x:0:0:root:/:/bin/sh")
	appendLine("/etc/passwd", "nobody:x:65534:65534:nobody:/nonexistent:/bin/false")
	appendLine("/etc/group", "root:x:0:")
	appendLine("/etc/group", "nogroup:x:65534:")
	if err := os.WriteFile(sambaDir+"/smb.conf", []byte(smbConf), 0o644); err != nil {
		t.Fatal(err)
	}
	d := exec.Command("/usr/sbin/smbd", "--foreground", "--no-process-group", "--debug-stdout",
		"--configfile="+sambaDir+"/smb.conf")
	// A process group of its own: smbd, stopping, signals its whole
	// group, which would otherwise be this test's.
	d.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, _ := d.StdoutPipe()
	d.Stderr = d.Stdout
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			// Every statfs of a tmpfs share looks for a block device's
			// quota, and says so; nothing is wrong.
			if !strings.Contains(sc.Text(), "sys_path_to_bdev") {
				fmt.Println("smbd:", sc.Text())
			}
		}
	}()
	return func() {
		d.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { d.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			d.Process.Kill()
		}
	}
}

// mountCifs mounts the share at dir with mount(2), retrying while
// ksmbd.mountd is still starting.
func mountCifs(t *testing.T, dir string) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	var err error
	start := time.Now()
	for time.Since(start) < 20*time.Second {
		if err = unix.Mount("//127.0.0.1/lib", dir, "cifs", 0, cifsOptions); err == nil {
			t.Logf("CIFS mounted at %s after %s", dir, time.Since(start).Round(time.Millisecond))
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	out, _ := exec.Command("dmesg").Output()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	t.Fatalf("mount //127.0.0.1/lib at %s (cifs %s): %v\ndmesg:\n%s", dir, cifsOptions, err, strings.Join(lines, "\n"))
}

// part returns the catalog's entry for the part at path on a box.
func (b *box) part(t *testing.T, path string) map[string]any {
	t.Helper()
	_, out := b.do(t, "GET", "/api/images", "")
	var v struct{ Parts []map[string]any }
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("box %s catalog: %v %s", b.name, err, out)
	}
	for _, p := range v.Parts {
		if p["path"] == path {
			return p
		}
	}
	t.Fatalf("box %s has no part %s: %s", b.name, path, out)
	return nil
}

// lists tells whether a box's catalog lists path as a complete image of size.
func (b *box) lists(t *testing.T, path string, size int) bool {
	t.Helper()
	_, out := b.do(t, "GET", "/api/images", "")
	var v struct{ Images []map[string]any }
	json.Unmarshal([]byte(out), &v)
	for _, im := range v.Images {
		if im["path"] == path {
			return im["complete"] == true && im["size"] == float64(size)
		}
	}
	return false
}

// exportNames lists the share's folder as the server has it.
func exportNames(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(cifsExport)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestCifsPart: a CIFS share from Samba's smbd, mounted with the kernel's
// cifs client at lib/ in the stores of two boxes. Listing, an atomic
// upload (nothing under the final name, and nothing listed on the other
// box, until the last byte), the catalog's fstype, the ISO attached as a
// CD that the USB host reads through the share byte for byte, the fleet
// lease written on the share and honoured by the other box (423 naming
// the box and drive), MOVE, replace and DELETE once ejected, a box killed
// with -9 whose lease expires, and a DELETE of an image the dead box's
// gadget still holds open that frees the name at once.
func TestCifsPart(t *testing.T) {
	stop := startSmbd(t)
	defer stop()
	for _, name := range []string{"C", "D"} {
		mnt := "/tmp/box" + name + "/lib"
		mountCifs(t, mnt)
		defer unix.Unmount(mnt, unix.MNT_DETACH)
	}
	c := startBox(t, "C", "8084", "dummy_udc.0")
	d := startBox(t, "D", "8085", "dummy_udc.1")
	defer func() {
		for _, x := range []*box{c, d} {
			x.cmd.Process.Signal(syscall.SIGTERM)
			x.cmd.Wait()
		}
	}()

	// The part, as both boxes list it.
	for _, b := range []*box{c, d} {
		if p := b.part(t, "lib"); p["fstype"] != "cifs" || p["writable"] != true || p["available"] != true {
			t.Errorf("box %s lists the share as %v, want a writable, available cifs part", b.name, p)
		}
	}
	// An image the NAS itself adds is listed on both boxes.
	nas := strings.Repeat("n", 1<<20)
	if err := os.WriteFile(cifsExport+"/nas.img", []byte(nas), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, b := range []*box{c, d} {
		took := waitFor(t, "box "+b.name+" lists the NAS's image", 10*time.Second, func() bool { return b.lists(t, "lib/nas.img", len(nas)) })
		t.Logf("box %s listed an image the server added after %s", b.name, took.Round(time.Millisecond))
	}

	// An upload onto the share is atomic: a temp file until the last byte,
	// then renamed onto its name.
	iso, err := os.ReadFile("/fixtures/test.iso")
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("PUT", c.base+"/dav/lib/lib.iso", pr)
	req.ContentLength = int64(len(iso))
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{0, err}
			return
		}
		resp.Body.Close()
		done <- result{resp.StatusCode, nil}
	}()
	half := len(iso) / 2
	if _, err := pw.Write(iso[:half]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the upload's temp file on the share", 10*time.Second, func() bool {
		for _, n := range exportNames(t) {
			if strings.HasPrefix(n, ".msdav-upload-") {
				return true
			}
		}
		return false
	})
	if _, err := os.Stat(cifsExport + "/lib.iso"); err == nil {
		t.Error("half an upload is on the share under its final name")
	}
	if _, out := d.do(t, "GET", "/api/images", ""); strings.Contains(out, "lib.iso") || strings.Contains(out, ".msdav-") {
		t.Errorf("box D lists box C's upload in progress: %s", out)
	}
	pw.Write(iso[half:])
	pw.Close()
	if r := <-done; r.err != nil || r.code != 201 {
		t.Fatalf("upload onto the share: %d %v", r.code, r.err)
	}
	if got, err := os.ReadFile(cifsExport + "/lib.iso"); err != nil || sha256.Sum256(got) != sha256.Sum256(iso) {
		t.Fatalf("the share does not hold the uploaded bytes: %v (%d bytes)", err, len(got))
	}
	for _, n := range exportNames(t) {
		if strings.HasPrefix(n, ".msdav-upload-") {
			t.Errorf("an upload's temp file is left on the share: %s", n)
		}
	}
	took := waitFor(t, "box D lists C's upload", 10*time.Second, func() bool { return d.lists(t, "lib/lib.iso", len(iso)) })
	t.Logf("box D listed box C's upload %s after it completed", took.Round(time.Millisecond))

	// Attached on C as a CD: the USB host reads the image through the share.
	if code, out := c.do(t, "PUT", "/api/drives/0", `{"image":"lib/lib.iso","cdrom":true}`); code != 200 {
		t.Fatalf("attach on C: %d %s", code, out)
	}
	dev, took := waitBlockOnBus(t, "C's CD on the host", "usb1", int64(len(iso)), 30*time.Second)
	if !strings.HasPrefix(dev, "/dev/sr") {
		t.Fatalf("C's drive is %s on the host, not a CD", dev)
	}
	t.Logf("the host saw %s with the share's ISO %s after the attach", dev, took.Round(time.Millisecond))
	start := time.Now()
	if got := sum(t, dev, int64(len(iso))); got != sha256.Sum256(iso) {
		t.Errorf("the host read other bytes from %s than the ISO on the share", dev)
	}
	t.Logf("the host read %d bytes of the CD through the share in %s", len(iso), time.Since(start).Round(time.Millisecond))

	// The fleet lease, on the share, where box D reads it.
	raw, err := os.ReadFile(cifsExport + "/.msdav-lease-C-0.json")
	if err != nil {
		t.Fatalf("no lease of box C on the share: %v (the share has %v)", err, exportNames(t))
	}
	var lease struct {
		Box     string
		Drive   int
		Image   string
		Expires time.Time
	}
	if err := json.Unmarshal(raw, &lease); err != nil || lease.Box != "C" || lease.Drive != 0 || lease.Image != "lib.iso" || !lease.Expires.After(time.Now()) {
		t.Errorf("box C's lease on the share: %v %s", err, raw)
	}
	for _, rq := range [][3]string{{"PUT", "/dav/lib/lib.iso", "other"}, {"DELETE", "/dav/lib/lib.iso", ""}, {"MOVE", "/dav/lib/lib.iso", ""}} {
		code, out := d.do(t, rq[0], rq[1], rq[2], "Destination", d.base+"/dav/lib/moved.iso")
		if code != 423 || !strings.Contains(out, "box C") || !strings.Contains(out, "drive 0") {
			t.Errorf("box D's %s while C has it attached: %d %q", rq[0], code, out)
		}
	}
	if got, _ := os.ReadFile(cifsExport + "/lib.iso"); sha256.Sum256(got) != sha256.Sum256(iso) {
		t.Error("the attached image changed on the share")
	}

	// Ejected: the lease goes, and D may move, replace and delete it.
	if code, out := c.do(t, "DELETE", "/api/drives/0", ""); code != 200 {
		t.Fatalf("eject on C: %d %s", code, out)
	}
	if _, err := os.Stat(cifsExport + "/.msdav-lease-C-0.json"); err == nil {
		t.Error("box C's lease is still on the share after the eject")
	}
	if code, out := d.do(t, "MOVE", "/dav/lib/lib.iso", "", "Destination", d.base+"/dav/lib/moved.iso"); code != 201 {
		t.Fatalf("box D's MOVE after the eject: %d %s", code, out)
	}
	if _, err := os.Stat(cifsExport + "/moved.iso"); err != nil {
		t.Errorf("the move is not on the share: %v", err)
	}
	if code, out := d.do(t, "PUT", "/dav/lib/moved.iso", "replaced by D"); code != 204 {
		t.Errorf("box D replaces the moved image: %d %s", code, out)
	}
	if got, _ := os.ReadFile(cifsExport + "/moved.iso"); string(got) != "replaced by D" {
		t.Errorf("the share holds %d bytes after D's replace, want D's 13", len(got))
	}
	if code, out := d.do(t, "DELETE", "/dav/lib/moved.iso", ""); code != 204 {
		t.Errorf("box D's DELETE: %d %s", code, out)
	}
	took = waitFor(t, "box C no longer lists the deleted image", 10*time.Second, func() bool {
		_, out := c.do(t, "GET", "/api/images", "")
		return !strings.Contains(out, "lib.iso") && !strings.Contains(out, "moved.iso")
	})
	t.Logf("box C stopped listing D's deleted image after %s", took.Round(time.Millisecond))
	for _, b := range []*box{c, d} {
		if _, out := b.do(t, "GET", "/api/images", ""); strings.Contains(out, ".msdav-") {
			t.Errorf("box %s lists internal files: %s", b.name, out)
		}
	}
	// C attaches the NAS's image and dies: D's 423 lasts until the lease
	// expires (lease_ttl 5s). D sees C's new lease once its cifs client's
	// attribute cache (1 s) lets the lease file through: until then D's
	// DELETE reaches the server (CI, 2026-11-26: refused there, with C's
	// gadget holding the image open, and answered 405, 27 ms before D's
	// first 423). So C dies once D has seen the lease.
	if code, out := c.do(t, "PUT", "/api/drives/0", `{"image":"lib/nas.img"}`); code != 200 {
		t.Fatalf("attach on C: %d %s", code, out)
	}
	attached := time.Now()
	waitFor(t, "box D to see C's lease", 5*time.Second, func() bool {
		// A COPY onto itself changes nothing: 403 from WebDAV while D
		// sees no lease, 423 once it does.
		code, _ := d.do(t, "COPY", "/dav/lib/nas.img", "", "Destination", d.base+"/dav/lib/nas.img")
		return code == 423
	})
	t.Logf("box D saw C's lease %s after C's attach", time.Since(attached).Round(time.Millisecond))
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
	killed := time.Now()
	if code, out := d.do(t, "DELETE", "/dav/lib/nas.img", ""); code != 423 || !strings.Contains(out, "box C") {
		t.Errorf("box D's DELETE right after C died: %d %q, want 423 naming box C", code, out)
	}
	waitFor(t, "C's lease to expire", 20*time.Second, func() bool {
		code, _ := d.do(t, "DELETE", "/dav/lib/nas.img", "")
		return code == 204
	})
	t.Logf("box D's 423 ended %s after box C was killed (lease_ttl 5s)", time.Since(killed).Round(100*time.Millisecond))
	// C's gadget (its kernel lives on) still has nas.img open through C's
	// mount: smbd only marks it delete-pending, and the name would stay,
	// listed on every box, until that handle closes. msdav renames it to
	// a hidden name before the unlink, so the name is free at once.
	if _, out := d.do(t, "GET", "/api/images", ""); strings.Contains(out, "nas.img") {
		t.Errorf("box D still lists the image it deleted (held open by C's gadget): %s", out)
	}
	if _, err := os.Stat(cifsExport + "/nas.img"); err == nil {
		t.Error("the share still has nas.img under its name after D's DELETE")
	}
	t.Logf("the share, with the deleted image still open on C: %v", exportNames(t))
	if code, out := d.do(t, "PUT", "/dav/lib/nas.img", "new nas"); code != 201 {
		t.Errorf("box D uploads a new nas.img: %d %s", code, out)
	}
	c.cmd = exec.Command("true") // for the deferred stop
	c.cmd.Start()
	left := exportNames(t)
	t.Logf("the share holds %v at the end", left)
	for _, n := range left {
		if strings.HasPrefix(n, ".msdav-upload-") || n == ".msdav-lease-D-0.json" || n == "lib.iso" || n == "moved.iso" {
			t.Errorf("left on the share: %s", n)
		}
	}
	fmt.Println("CIFS part: listed, uploaded, attached, leased, moved, replaced, deleted")
}
