package api

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/msdav/msdav/fs"
)

// deadFS stands in for an NFS server that stopped answering.
type deadFS struct {
	gofs.Inode
	dead    atomic.Bool
	release chan struct{}
}

func (d *deadFS) wait() {
	if d.dead.Load() {
		<-d.release
	}
}

func (d *deadFS) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.wait()
	out.Mode = syscall.S_IFDIR | 0o755
	return 0
}

func (d *deadFS) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno { d.wait(); return 0 }

func (d *deadFS) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	d.wait()
	return gofs.NewListDirStream(nil), 0
}

// With a part that stopped answering, the drive API and the catalog still
// answer, and the part is reported unavailable.
func TestDriveAPIWithDeadPart(t *testing.T) {
	dir := tmpfsStore(t, "mounts tmpfs and FUSE", 16)
	os.WriteFile(filepath.Join(dir, "boot.iso"), make([]byte, 4096), 0o644)
	nfs := filepath.Join(dir, "nfs")
	os.Mkdir(nfs, 0o755)
	d := &deadFS{release: make(chan struct{})}
	zero := time.Duration(0)
	srv, err := gofs.Mount(nfs, d, &gofs.Options{MountOptions: fuse.MountOptions{FsName: "deadnfs", Name: "fuse"}, AttrTimeout: &zero, EntryTimeout: &zero})
	if err != nil {
		t.Skipf("cannot mount FUSE here: %v", err)
	}
	t.Cleanup(func() {
		if d.dead.Load() {
			close(d.release)
		}
		if srv.Unmount() != nil {
			exec.Command("umount", "-l", nfs).Run()
		}
	})
	d.dead.Store(true)
	e := newEnv(t, fakeGadget(t), nil, fs.Options{Root: dir, PartTimeout: 300 * time.Millisecond})
	start := time.Now()
	if code, m := e.call(t, "PUT", "/api/drives/0", `{"image":"boot.iso","cdrom":true}`); code != 200 {
		t.Fatalf("attach with a dead part: %d %v", code, m)
	}
	if code, _ := e.call(t, "GET", "/api/drives", ""); code != 200 {
		t.Fatalf("drives with a dead part: %d", code)
	}
	code, m := e.call(t, "GET", "/api/images", "")
	if code != 200 {
		t.Fatalf("images with a dead part: %d", code)
	}
	found := false
	for _, p := range m["parts"].([]any) {
		p := p.(map[string]any)
		if p["path"] == "nfs" {
			found = p["available"] == false && strings.Contains(p["reason"].(string), "did not answer")
		}
	}
	if !found {
		t.Errorf("dead part not reported unavailable: %v", m["parts"])
	}
	if code, _ := e.call(t, "DELETE", "/api/drives/0", ""); code != 200 {
		t.Errorf("eject with a dead part: %d", code)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("drive API calls with a dead part took %s", took)
	}
}
