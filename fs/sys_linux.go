package fs

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Every syscall the store makes lives here, under a name from the domain.

// Remount flips the filesystem mounted at mnt between read-only and
// read-write, keeping its other mount flags (nosuid, noexec, noatime, ...).
func Remount(mnt string, rw bool) error {
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		return fmt.Errorf("remount %s: statfs: %w", mnt, err)
	}
	// Statfs_t.Flags is int32 on 32-bit ARM and 386, int64 elsewhere.
	flags := uintptr(unix.MS_REMOUNT) | keptFlags(int64(st.Flags))
	mode := "rw"
	if !rw {
		flags |= unix.MS_RDONLY
		mode = "ro"
	}
	if err := unix.Mount("", mnt, "", flags, ""); err != nil {
		return fmt.Errorf("remount %s %s: %w", mnt, mode, err)
	}
	return nil
}

// keptFlags maps statfs's ST_* flags to the MS_* flags a remount must repeat,
// since MS_REMOUNT replaces the whole set.
func keptFlags(st int64) uintptr {
	pairs := []struct {
		st int64
		ms uintptr
	}{
		{unix.ST_NOSUID, unix.MS_NOSUID},
		{unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_SYNCHRONOUS, unix.MS_SYNCHRONOUS},
		{unix.ST_MANDLOCK, unix.MS_MANDLOCK},
		{unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME},
		{unix.ST_RELATIME, unix.MS_RELATIME},
	}
	var ms uintptr
	for _, p := range pairs {
		if st&p.st != 0 {
			ms |= p.ms
		}
	}
	return ms
}

// IsReadOnly reports whether the filesystem at path is mounted read-only.
func IsReadOnly(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, fmt.Errorf("statfs %s: %w", path, err)
	}
	return st.Flags&unix.ST_RDONLY != 0, nil
}

// SyncFS writes every dirty page of the filesystem holding path to disk.
func SyncFS(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("syncfs %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("syncfs %s: %w", path, err)
	}
	return nil
}

// space reports a filesystem's size and the bytes an unprivileged writer may use.
func space(path string) (size, free uint64, readOnly bool, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, 0, false, fmt.Errorf("statfs %s: %w", path, err)
	}
	bs := uint64(st.Bsize)
	return st.Blocks * bs, st.Bavail * bs, st.Flags&unix.ST_RDONLY != 0, nil
}

// canWrite asks the kernel whether this process may create files in dir.
func canWrite(dir string) error {
	return unix.Access(dir, unix.W_OK|unix.X_OK)
}

// isBusy is the kernel's answer to a ro remount while files are open for writing.
func isBusy(err error) bool { return errors.Is(err, unix.EBUSY) }

// isCrossDevice is rename's answer when source and destination are on different mounts.
func isCrossDevice(err error) bool { return errors.Is(err, unix.EXDEV) }

// IsNoSpace reports a full filesystem (or quota).
func IsNoSpace(err error) bool { return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) }

// Inode is the inode number of a file stat'ed by the os package (0 if unknown).
func Inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// fileID is what the kernel knows a file by, whatever name reached it.
type fileID struct{ dev, ino uint64 }

func idOf(fi os.FileInfo) fileID {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{dev: uint64(st.Dev), ino: st.Ino}
	}
	return fileID{}
}

// uid is this process's effective user, for explaining permission problems.
func uid() int { return unix.Geteuid() }

// statChildren stats names, entries of the folder open as dir, relative to
// its descriptor and without following symlinks: one fstatat each, no path
// walk, and a name from the listing cannot reach outside the folder. each
// receives every answer in order; a name that vanished since the listing
// gets ENOENT there.
func statChildren(dir *os.File, names []string, each func(i int, e Entry, err error)) error {
	rc, err := dir.SyscallConn()
	if err != nil {
		return fmt.Errorf("list %s: %w", dir.Name(), err)
	}
	cerr := rc.Control(func(fd uintptr) {
		var st unix.Stat_t
		for i, n := range names {
			if err := unix.Fstatat(int(fd), n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				each(i, Entry{}, &os.PathError{Op: "fstatat", Path: n, Err: err})
				continue
			}
			each(i, entryFromStat(n, &st), nil)
		}
	})
	if cerr != nil {
		return fmt.Errorf("list %s: %w", dir.Name(), cerr)
	}
	return nil
}

func entryFromStat(name string, st *unix.Stat_t) Entry {
	e := Entry{name: name, size: st.Size, mtime: time.Unix(st.Mtim.Unix()), mode: os.FileMode(st.Mode & 0o777), ino: st.Ino}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		e.mode |= os.ModeDir
	case unix.S_IFLNK:
		e.mode |= os.ModeSymlink
	case unix.S_IFREG:
	default:
		e.mode |= os.ModeIrregular
	}
	return e
}

// ErrOwned: another msdav process owns the store (its lock is taken).
var ErrOwned = errors.New("another msdav process is using this store")

// LockOwner takes the exclusive lock at path that makes this process the
// store's one owner, waiting up to wait for another holder to finish. The
// kernel drops it when the process dies, so a crash never leaves it stuck.
func LockOwner(path string, wait time.Duration) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	deadline := time.Now().Add(wait)
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			pid, _ := os.ReadFile(path)
			f.Close()
			return nil, fmt.Errorf("lock %s (held by pid %s): %w", path, strings.TrimSpace(string(pid)), ErrOwned)
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.Truncate(0)
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return func() { f.Close() }, nil
}
