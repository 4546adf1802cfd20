//go:build vmguest

package guest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// nfsOptions are what a library that is written to needs under TCG: PiKVM's
// timeo=1,retrans=1 gives up on a slow server and fails fsync with EIO.
const nfsOptions = "vers=3,proto=tcp,port=2049,mountport=2049,mountproto=tcp,nolock,soft,timeo=30,retrans=2,addr=127.0.0.1,mountaddr=127.0.0.1"

type box struct {
	name, base string
	cmd        *exec.Cmd
}

func startBox(t *testing.T, name, port, udc string) *box {
	t.Helper()
	root := "/tmp/box" + name
	cfg := fmt.Sprintf(`[server]
listen = "127.0.0.1:%s"
runtime_dir = "/run/msdav%s"
[storage]
root = %q
box_name = %q
lease_ttl = "5s"
[gadget]
mode = "configfs"
name = "msdav%s"
udc = %q
drives = 1
`, port, name, root, name, name, udc)
	os.WriteFile("/tmp/box"+name+".toml", []byte(cfg), 0o644)
	b := &box{name: name, base: "http://127.0.0.1:" + port}
	b.cmd = exec.Command("/msdav", "serve", "-config", "/tmp/box"+name+".toml")
	b.cmd.Stdout, b.cmd.Stderr = os.Stdout, os.Stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "box "+name+" up", 20*time.Second, func() bool {
		r, err := http.Get(b.base + "/healthz")
		if err == nil {
			r.Body.Close()
		}
		return err == nil
	})
	return b
}

func (b *box) do(t *testing.T, method, path, body string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, b.base+path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("box %s %s %s: %v", b.name, method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// Two boxes, each with its own store and gadget, mount one NFS export (a
// real kernel NFS client, a userspace NFSv3 server) at nfs/ in their
// stores: what one uploads the other lists, what one attaches the other
// cannot change (423 naming the box and drive), an eject frees it, and a
// box killed with -9 frees it when its lease expires.
func TestFleetOnNFS(t *testing.T) {
	os.MkdirAll("/export", 0o755)
	run(t, "mount", "-t", "tmpfs", "-o", "size=200m", "tmpfs", "/export")
	srv := exec.Command("/nfsd", "-dir", "/export", "-listen", "127.0.0.1:2049")
	srv.Stdout, srv.Stderr = os.Stdout, os.Stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Process.Kill()
	for _, name := range []string{"A", "B"} {
		mnt := "/tmp/box" + name + "/nfs"
		os.MkdirAll(mnt, 0o755)
		var err error
		waitFor(t, "NFS mount for box "+name, 10*time.Second, func() bool {
			err = unix.Mount("127.0.0.1:/", mnt, "nfs", 0, nfsOptions)
			return err == nil
		})
		defer unix.Unmount(mnt, unix.MNT_DETACH)
	}
	a := startBox(t, "A", "8081", "dummy_udc.0")
	b := startBox(t, "B", "8082", "dummy_udc.1")
	defer func() {
		for _, x := range []*box{a, b} {
			x.cmd.Process.Signal(syscall.SIGTERM)
			x.cmd.Wait()
		}
	}()

	iso, _ := os.ReadFile("/fixtures/test.iso")
	if code, out := a.do(t, "PUT", "/dav/nfs/lib.iso", string(iso)); code != 201 {
		t.Fatalf("upload on A: %d %s", code, out)
	}
	start := time.Now()
	waitFor(t, "B lists A's upload", 10*time.Second, func() bool {
		_, out := b.do(t, "GET", "/api/images", "")
		return strings.Contains(out, `"path":"nfs/lib.iso","size":`+fmt.Sprint(len(iso)))
	})
	t.Logf("B listed A's upload %s after it completed", time.Since(start).Round(time.Millisecond))
	if _, out := b.do(t, "GET", "/api/images", ""); !strings.Contains(out, `"fstype":"nfs"`) {
		t.Errorf("B does not see an nfs part: %s", out)
	}
	if code, out := a.do(t, "PUT", "/api/drives/0", `{"image":"nfs/lib.iso","cdrom":true}`); code != 200 {
		t.Fatalf("attach on A: %d %s", code, out)
	}
	for _, rq := range [][3]string{{"PUT", "/dav/nfs/lib.iso", "other"}, {"DELETE", "/dav/nfs/lib.iso", ""}, {"MOVE", "/dav/nfs/lib.iso", ""}} {
		code, out := b.do(t, rq[0], rq[1], rq[2], "Destination", b.base+"/dav/nfs/moved.iso")
		if code != 423 || !strings.Contains(out, "box A") || !strings.Contains(out, "drive 0") {
			t.Errorf("B's %s while A holds it: %d %q", rq[0], code, out)
		}
	}
	if code, _ := a.do(t, "DELETE", "/api/drives/0", ""); code != 200 {
		t.Fatal("eject on A")
	}
	if code, out := b.do(t, "PUT", "/dav/nfs/lib.iso", "replaced by B"); code != 204 {
		t.Fatalf("B replaces after A's eject: %d %s", code, out)
	}
	// Uploads of one name from both boxes at once: one whole version wins.
	bodyA, bodyB := bytes.Repeat([]byte("A"), 3<<20), bytes.Repeat([]byte("B"), 3<<20)
	var wg sync.WaitGroup
	for _, x := range []struct {
		bx   *box
		body []byte
	}{{a, bodyA}, {b, bodyB}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, out := x.bx.do(t, "PUT", "/dav/nfs/race.img", string(x.body)); code != 201 && code != 204 {
				t.Errorf("box %s upload: %d %s", x.bx.name, code, out)
			}
		}()
	}
	wg.Wait()
	got, _ := os.ReadFile("/export/race.img")
	if !bytes.Equal(got, bodyA) && !bytes.Equal(got, bodyB) {
		t.Errorf("concurrent uploads left a mix (%d bytes)", len(got))
	}
	// A attaches and dies: B's 423 lasts until A's lease expires. (A new
	// name: go-nfs cannot reopen a name replaced behind a client's cache,
	// the kernel's f_mass_storage gets ETOOSMALL; a kernel nfsd can.)
	if code, out := a.do(t, "PUT", "/dav/nfs/second.iso", string(iso)); code != 201 {
		t.Fatalf("second upload on A: %d %s", code, out)
	}
	if code, out := a.do(t, "PUT", "/api/drives/0", `{"image":"nfs/second.iso","cdrom":true}`); code != 200 {
		t.Fatalf("attach on A: %d %s", code, out)
	}
	a.cmd.Process.Signal(syscall.SIGKILL)
	a.cmd.Wait()
	killed := time.Now()
	if code, _ := b.do(t, "DELETE", "/dav/nfs/second.iso", ""); code != 423 {
		t.Errorf("B's DELETE right after A died: %d, want 423", code)
	}
	waitFor(t, "A's lease to expire", 15*time.Second, func() bool {
		code, _ := b.do(t, "DELETE", "/dav/nfs/second.iso", "")
		return code == 204
	})
	t.Logf("B's 423 ended %s after A was killed (lease_ttl 5s)", time.Since(killed).Round(100*time.Millisecond))
	// Nothing internal is listed on B.
	if _, out := b.do(t, "GET", "/api/images", ""); strings.Contains(out, ".msdav-") || strings.Contains(out, ".nfs") {
		t.Errorf("B lists internal files: %s", out)
	}
	a.cmd = exec.Command("true")
	a.cmd.Start()
}
