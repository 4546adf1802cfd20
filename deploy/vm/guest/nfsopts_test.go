//go:build vmguest

package guest

import (
	"crypto/sha256"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// manualOptions are PiKVM's manual's NFS options, exactly, plus what a
// server without rpcbind needs (ports and addresses).
const manualOptions = "vers=3,timeo=1,retrans=1,soft,nolock,proto=tcp,port=2050,mountport=2050,mountproto=tcp,addr=127.0.0.1,mountaddr=127.0.0.1"

// A library mounted with the manual's options (a tenth of a second, one
// retry) that the NAS itself fills and the box only reads: the host reads
// an image whole, reads fail fast when the server dies, and the drive left
// attached reads again when it returns. An upload through msdav either
// lands whole or fails with a 5xx and leaves nothing: with these options
// the soft mount often gives up on a slow server's WRITE or COMMIT.
func TestNFSManualOptions(t *testing.T) {
	os.MkdirAll("/export2", 0o755)
	run(t, "mount", "-t", "tmpfs", "-o", "size=100m", "tmpfs", "/export2")
	defer unix.Unmount("/export2", unix.MNT_DETACH)
	iso, _ := os.ReadFile("/fixtures/test.iso")
	os.MkdirAll("/export2/isos", 0o755)
	if err := os.WriteFile("/export2/isos/boot.iso", iso, 0o644); err != nil {
		t.Fatal(err) // put there by the NAS, not through msdav
	}
	serve := func() *exec.Cmd {
		srv := exec.Command("/nfsd", "-dir", "/export2", "-listen", "127.0.0.1:2050")
		srv.Stdout, srv.Stderr = os.Stdout, os.Stderr
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		return srv
	}
	srv := serve()
	defer func() { srv.Process.Kill() }()
	mnt := "/tmp/boxB/nfs" // box B of the fleet test, on its gadget
	os.MkdirAll(mnt, 0o755)
	waitFor(t, "NFS mount with the manual's options", 10*time.Second, func() bool {
		return unix.Mount("127.0.0.1:/", mnt, "nfs", 0, manualOptions) == nil
	})
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	m := startBox(t, "B", "8082", "dummy_udc.1")
	defer func() {
		m.cmd.Process.Signal(syscall.SIGTERM)
		m.cmd.Wait()
	}()

	if _, out := m.do(t, "GET", "/api/images", ""); !strings.Contains(out, `"path":"nfs/isos/boot.iso"`) {
		t.Fatalf("the NAS's image is not listed: %s", out)
	}
	start := time.Now()
	if code, out := m.do(t, "PUT", "/api/drives/0", `{"image":"nfs/isos/boot.iso","cdrom":true}`); code != 200 {
		t.Fatalf("attach: %d %s", code, out)
	}
	dev, _ := waitBlockOnBus(t, "the CD on the host", "usb2", int64(len(iso)), 20*time.Second)
	if got, err := readDirect(dev, int64(len(iso))); err != nil || got != sha256.Sum256(iso) {
		t.Fatalf("the host's read with the manual's options: %v (sha256 match %v)", err, got == sha256.Sum256(iso))
	}
	t.Logf("attach to the host reading the image whole with the manual's options: %s", time.Since(start).Round(time.Millisecond))

	// Uploads: whole, or a 5xx that leaves nothing under the name.
	body := strings.Repeat("u", 4<<20)
	for i := range 3 {
		start := time.Now()
		code, out := m.do(t, "PUT", "/dav/nfs/up.img", body)
		got, err := os.ReadFile("/export2/up.img")
		switch {
		case code == 201 || code == 204:
			if string(got) != body {
				t.Errorf("upload %d answered %d but the server has %d bytes", i, code, len(got))
			}
			t.Logf("upload %d of 4 MiB with the manual's options: %d in %s", i, code, time.Since(start).Round(time.Millisecond))
		case code >= 500:
			if err == nil && len(got) != len(body) && len(got) != 0 {
				t.Errorf("upload %d failed (%d) and left %d bytes under its name", i, code, len(got))
			}
			// An EIO says which options caused it and what to use.
			if strings.Contains(out, "input/output error") && !strings.Contains(out, "timeo=1,retrans=1") {
				t.Errorf("upload %d's EIO does not name the mount's options: %s", i, out)
			}
			t.Logf("upload %d of 4 MiB with the manual's options: %d in %s: %s", i, code, time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
		default:
			t.Errorf("upload %d with the manual's options: %d %s, want success or a 5xx", i, code, out)
		}
	}

	srv.Process.Kill()
	srv.Wait()
	killed := time.Now()
	select {
	case err := <-readUntilError(dev, int64(len(iso))):
		t.Logf("the host's reads failed %s after the server died: %v", time.Since(killed).Round(100*time.Millisecond), err)
	case <-time.After(60 * time.Second):
		t.Fatal("the host's reads still hang 60 s after the server died")
	}
	srv = serve()
	back := time.Now()
	var err error
	waitFor(t, "the drive left attached to read again", 60*time.Second, func() bool {
		var got [32]byte
		got, err = readDirect(dev, int64(len(iso)))
		return err == nil && got == sha256.Sum256(iso)
	})
	t.Logf("the drive left attached read the whole image again %s after the server came back", time.Since(back).Round(time.Millisecond))
	if code, out := m.do(t, "DELETE", "/api/drives/0", ""); code != 200 {
		t.Errorf("eject: %d %s", code, out)
	}
}
