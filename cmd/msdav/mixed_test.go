package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msdav/msdav/conf"
	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/gadget/gadgettest"
)

// The server and the CLI interleaved on one guarded tmpfs store, as a user
// mixing tools would: uploads, mkimage, remount rw/ro, attach and eject
// through both. Every answer is checked against a model, nothing may be
// lost, and the store must be ro at every idle moment. Before the CLI went
// through the server, mkimage "repaired" the server's rw store to ro and
// the next upload failed with EROFS.
func TestServerAndCLIInterleaved(t *testing.T) {
	needRootT(t, "mounts a real tmpfs as the store")
	dir := filepath.Join(t.TempDir(), "store")
	os.MkdirAll(dir, 0o755)
	mountT(t, "-t", "tmpfs", "-o", "size=64m", "tmpfs", dir)
	gcfg := gadgettest.Bound(t, 2)
	cfg := conf.Default()
	cfg.Storage.Root = dir
	cfg.Storage.Remount = true
	cfg.Storage.RemountGrace = conf.Duration{Duration: 10 * time.Millisecond}
	cfg.Gadget = gcfg
	cfg.Server.RuntimeDir = t.TempDir()
	cfgFile := filepath.Join(t.TempDir(), "msdav.toml")
	os.WriteFile(cfgFile, fmt.Appendf(nil, "[server]\nruntime_dir = %q\n[storage]\nroot = %q\nremount = true\nremount_grace = \"10ms\"\n[gadget]\nconfigfs = %q\nsysfs = %q\ndrives = 2\n",
		cfg.Server.RuntimeDir, dir, gcfg.Configfs, gcfg.Sysfs), 0o644)
	base, _ := startServe(t, cfg)

	cli := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(append(args[:1:1], append([]string{"-config", cfgFile}, args[1:]...)...), &out, &errb)
		return code, out.String() + errb.String()
	}
	do := func(method, path string, body []byte) int {
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}

	names := []string{"a.img", "b.img", "sub/c.img", "d.img"}
	files := map[string][]byte{} // the model: what the store must hold
	inDrive := map[int]string{}  // drive -> image
	rwDrive := map[int]bool{}
	pinned := false
	attachedTo := func(name string) (int, bool) {
		for d, n := range inDrive {
			if n == name {
				return d, true
			}
		}
		return 0, false
	}
	idle := func(step int, what string) {
		if pinned || rwDrive[0] || rwDrive[1] {
			return
		}
		deadline := time.Now().Add(2 * time.Second)
		for {
			if ro, _ := fs.IsReadOnly(dir); ro {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("step %d (%s): store still rw at an idle moment", step, what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	rnd := rand.New(rand.NewSource(11))
	steps := 300
	counts := map[string]int{}
	for step := 0; step < steps; step++ {
		name := names[rnd.Intn(len(names))]
		_, isAttached := attachedTo(name)
		var what string
		switch op := rnd.Intn(7); op {
		case 0, 1: // upload over WebDAV
			what = "PUT " + name
			body := fmt.Appendf(nil, "step %d %s", step, strings.Repeat("x", rnd.Intn(70000)))
			code := do("PUT", "/dav/"+name, body)
			switch {
			case isAttached && code != 423:
				t.Fatalf("step %d: %s over an attached image: %d, want 423", step, what, code)
			case !isAttached && strings.Contains(name, "/") && files[name] == nil && !hasDir(files, "sub"):
				if code != 409 && code != 201 {
					t.Fatalf("step %d: %s without its folder: %d", step, what, code)
				}
				if code == 201 {
					files[name] = body
				}
			case !isAttached:
				if code != 201 && code != 204 {
					t.Fatalf("step %d: %s: %d", step, what, code)
				}
				files[name] = body
			}
		case 2: // mkimage through the CLI
			what = "mkimage " + name
			code, out := cli("mkimage", "-size", "64K", "-fs", "none", name)
			switch {
			case files[name] != nil:
				if code != 1 || !strings.Contains(out, "already exists") {
					t.Fatalf("step %d: %s over an existing file: %d %q", step, what, code, out)
				}
			case code != 0:
				t.Fatalf("step %d: %s: %d %q", step, what, code, out)
			default:
				files[name] = make([]byte, 64<<10)
			}
		case 3: // remount rw, write with scp's eyes (straight into the folder), remount ro
			what = "remount rw/ro"
			if code, out := cli("remount", "rw"); code != 0 {
				t.Fatalf("step %d: remount rw: %d %q", step, code, out)
			}
			pinned = true
			time.Sleep(30 * time.Millisecond) // longer than the grace: the pin must hold it
			if ro, _ := fs.IsReadOnly(dir); ro {
				t.Fatalf("step %d: store went ro while msdav remount rw held it", step)
			}
			p := filepath.Join(dir, "scp-"+fmt.Sprint(step)+".img")
			if err := os.WriteFile(p, []byte("by scp"), 0o644); err != nil {
				t.Fatalf("step %d: write while remounted rw: %v", step, err)
			}
			files[filepath.Base(p)] = []byte("by scp")
			code, out := cli("remount", "ro")
			pinned = false
			wantRO := !rwDrive[0] && !rwDrive[1]
			if code != 0 || wantRO && !strings.Contains(out, "is now ro") || !wantRO && !strings.Contains(out, "stays rw") {
				t.Fatalf("step %d: remount ro (rw drives: %v): %d %q", step, rwDrive, code, out)
			}
		case 4: // attach through the CLI or the API
			drive := rnd.Intn(2)
			rw := rnd.Intn(2) == 0
			what = fmt.Sprintf("attach %s to %d rw=%v", name, drive, rw)
			if files[name] == nil {
				continue
			}
			other, elsewhere := attachedTo(name)
			var ok bool
			if rnd.Intn(2) == 0 {
				code, out := cli("drive", "-i", fmt.Sprint(drive), "-set-rw="+map[bool]string{true: "1", false: "0"}[rw], "-set-image", filepath.Join(dir, name))
				ok = code == 0
				if !ok && !(elsewhere && other != drive) {
					t.Fatalf("step %d: %s via CLI: %d %q", step, what, code, out)
				}
			} else {
				code := do("PUT", fmt.Sprintf("/api/drives/%d", drive), fmt.Appendf(nil, `{"image":%q,"rw":%v}`, name, rw))
				ok = code == 200
				if !ok && !(elsewhere && other != drive && code == 409) {
					t.Fatalf("step %d: %s via API: %d", step, what, code)
				}
			}
			if elsewhere && other != drive && ok && (rw || rwDrive[other]) {
				t.Fatalf("step %d: %s succeeded although drive %d holds it", step, what, other)
			}
			if ok {
				inDrive[drive], rwDrive[drive] = name, rw
			}
		case 5: // eject through the CLI or the API
			drive := rnd.Intn(2)
			what = fmt.Sprintf("eject %d", drive)
			if rnd.Intn(2) == 0 {
				if code, out := cli("drive", "-i", fmt.Sprint(drive), "-eject"); code != 0 || !strings.Contains(out, "Image file:  \n") {
					t.Fatalf("step %d: %s via CLI: %d %q", step, what, code, out)
				}
			} else if code := do("DELETE", fmt.Sprintf("/api/drives/%d", drive), nil); code != 200 {
				t.Fatalf("step %d: %s via API: %d", step, what, code)
			}
			delete(inDrive, drive)
			delete(rwDrive, drive)
		case 6: // delete over WebDAV
			what = "DELETE " + name
			code := do("DELETE", "/dav/"+name, nil)
			switch {
			case isAttached && code != 423:
				t.Fatalf("step %d: %s of an attached image: %d", step, what, code)
			case !isAttached && files[name] != nil && code != 204:
				t.Fatalf("step %d: %s: %d", step, what, code)
			case !isAttached && files[name] == nil && code != 404:
				t.Fatalf("step %d: %s of nothing: %d", step, what, code)
			case !isAttached:
				delete(files, name)
			}
			if name == "sub/c.img" && !isAttached && rnd.Intn(2) == 0 {
				do("MKCOL", "/dav/sub", nil)
			}
		}
		counts[strings.Fields(what)[0]]++
		idle(step, what)
	}
	t.Logf("steps by kind: %v", counts)
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: lost or changed (%d bytes, %v; want %d bytes)", name, len(got), err, len(want))
		}
	}
	for _, d := range []int{0, 1} {
		do("DELETE", fmt.Sprintf("/api/drives/%d", d), nil)
	}
	rwDrive = nil
	idle(steps, "final eject")
}

func hasDir(files map[string][]byte, dir string) bool {
	for n := range files {
		if strings.HasPrefix(n, dir+"/") {
			return true
		}
	}
	return false
}

// One store has one server: a second one says who holds it, and a CLI
// command with no server acts itself under the same lock.
func TestOneOwnerPerStore(t *testing.T) {
	cfg := testConfig(t)
	cfg.Server.RuntimeDir = t.TempDir()
	startServe(t, cfg)
	sock, lock, err := localPaths(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if findServer(sock) == nil {
		t.Fatal("no server on the socket")
	}
	if _, err := fs.LockOwner(lock, 100*time.Millisecond); err == nil || !strings.Contains(err.Error(), "another msdav process") {
		t.Fatalf("second owner: %v", err)
	}
	// Another store: its own socket and lock.
	other := cfg
	other.Storage.Root = t.TempDir()
	sock2, lock2, _ := localPaths(other)
	if sock2 == sock || lock2 == lock {
		t.Fatal("two stores share a socket or lock")
	}
	if findServer(sock2) != nil {
		t.Fatal("a server answers for a store nobody serves")
	}
	release, err := fs.LockOwner(lock2, 0)
	if err != nil {
		t.Fatalf("lock of an unserved store: %v", err)
	}
	release()
	// A runtime dir that cannot be made is a clear error.
	bad := cfg
	bad.Server.RuntimeDir = "/proc/no/such"
	if _, _, err := localPaths(bad); err == nil || !strings.Contains(err.Error(), "server.runtime_dir") {
		t.Errorf("unusable runtime dir: %v", err)
	}
}
