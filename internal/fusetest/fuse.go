//go:build !(386 || arm || mips || mipsle)

package fusetest

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// deadDir answers nothing while dead: a stand-in for an NFS server that
// stopped answering.
type deadDir struct {
	gofs.Inode
	dead    atomic.Bool // off while mounting: go-fuse stats the mount to see it is up
	release chan struct{}
}

func (d *deadDir) wait() {
	if d.dead.Load() {
		<-d.release
	}
}

func (d *deadDir) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.wait()
	out.Mode = syscall.S_IFDIR | 0o755
	return 0
}

func (d *deadDir) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	d.wait()
	return 0
}

func (d *deadDir) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	d.wait()
	return gofs.NewListDirStream(nil), 0
}

// Dead mounts at dir an empty directory whose every call (stat, statfs,
// readdir) hangs until revive is called, with no kernel caching, so every
// stat reaches it. The test ends by reviving and unmounting it. It skips
// where FUSE cannot be mounted (no /dev/fuse, not root, 32-bit).
func Dead(t testing.TB, fsName, dir string) (revive func()) {
	t.Helper()
	d := &deadDir{release: make(chan struct{})}
	mount(t, dir, d, fsName)
	d.dead.Store(true)
	var once sync.Once
	revive = func() { once.Do(func() { close(d.release) }) }
	// Registered after mount's unmount, so it runs first: a dead
	// filesystem does not unmount cleanly.
	t.Cleanup(revive)
	return revive
}

// failingFile is a file whose bytes from bad on answer EIO.
type failingFile struct {
	gofs.Inode
	size, bad int64
}

func (f *failingFile) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o444
	out.Size = uint64(f.size)
	return 0
}

func (f *failingFile) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

func (f *failingFile) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off+int64(len(dest)) > f.bad {
		return nil, syscall.EIO
	}
	return fuse.ReadResultData(make([]byte, min(int64(len(dest)), f.size-off))), 0
}

type oneFileDir struct {
	gofs.Inode
	name string
	file *failingFile
}

func (r *oneFileDir) OnAdd(ctx context.Context) {
	r.AddChild(r.name, r.NewPersistentInode(ctx, r.file, gofs.StableAttr{Mode: syscall.S_IFREG}), false)
}

// FailingFile mounts at dir a directory holding one read-only file, name,
// of size bytes whose reads from bad on fail with EIO: a medium that fails
// mid-read. It skips where FUSE cannot be mounted.
func FailingFile(t testing.TB, dir, name string, size, bad int64) {
	t.Helper()
	mount(t, dir, &oneFileDir{name: name, file: &failingFile{size: size, bad: bad}}, "failingdisk")
}

func mount(t testing.TB, dir string, root gofs.InodeEmbedder, fsName string) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("needs /dev/fuse")
	}
	zero := time.Duration(0)
	srv, err := gofs.Mount(dir, root, &gofs.Options{
		MountOptions: fuse.MountOptions{FsName: fsName, Name: "fuse"},
		AttrTimeout:  &zero, EntryTimeout: &zero,
	})
	if err != nil {
		t.Skipf("cannot mount FUSE here: %v", err)
	}
	t.Cleanup(func() {
		if srv.Unmount() != nil {
			exec.Command("umount", "-l", dir).Run()
		}
	})
}
