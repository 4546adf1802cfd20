package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"slices"
	"sync"
	"syscall"

	"github.com/go-git/go-billy/v5"
	nfs "github.com/willscott/go-nfs"
)

// stableHandles gives every file a handle that outlives this process, as
// a real NAS's do: the handle is the file's inode number under the export
// (a tmpfs or disk that stays when the server restarts), not an entry in
// the process's memory. go-nfs's CachingHandler hands out random ids, so
// after a restart every handle the clients hold, the mount's root's too,
// answers ESTALE and nothing recovers without a remount.
//
// The map from inode to path is only a cache. A handle it does not know
// (a restart) or whose path now holds another inode (a rename) is found
// again by walking the export; one that is nowhere (removed, or replaced
// by a rename over its name) is stale, as on any NFS server. The walk
// costs a pass over the export per miss, fine for a test library of a few
// files. tmpfs hands out inode numbers from a counter, so a removed
// file's number does not come back for billions of files; a disk
// filesystem reuses them and would want the inode's generation in the
// handle too, as a kernel nfsd puts it.
//
// Directory cookies need nothing here: without CachingHandler's verifier
// cache go-nfs derives them from the names in the folder, which is the
// same in every process.
type stableHandles struct {
	nfs.Handler // Mount, Change and FSStat
	fs          billy.Filesystem

	mu    sync.Mutex
	paths map[uint64][]string // inode -> last known path under the export
}

// handleTag starts every handle this server makes, so a handle from some
// other server (or a corrupt one) is stale, not a random file.
var handleTag = []byte("msd1")

const handleLen = 4 + 8 // tag, inode number

func newStableHandles(h nfs.Handler, fs billy.Filesystem) *stableHandles {
	return &stableHandles{Handler: h, fs: fs, paths: map[uint64][]string{}}
}

// ToHandle names the file at path by its inode. A path that does not
// exist (go-nfs asks for the handle of a name it is about to remove or
// rename) gets inode 0, which resolves to nothing.
func (h *stableHandles) ToHandle(fs billy.Filesystem, path []string) []byte {
	fh := make([]byte, handleLen)
	copy(fh, handleTag)
	ino, err := inodeOf(fs, path)
	if err != nil {
		return fh
	}
	binary.BigEndian.PutUint64(fh[len(handleTag):], ino)
	h.mu.Lock()
	h.paths[ino] = slices.Clone(path)
	h.mu.Unlock()
	return fh
}

// FromHandle finds the file a handle names: at its cached path when that
// still holds the inode, else wherever a walk of the export finds it.
func (h *stableHandles) FromHandle(fh []byte) (billy.Filesystem, []string, error) {
	stale := &nfs.NFSStatusError{NFSStatus: nfs.NFSStatusStale}
	if len(fh) != handleLen || !bytes.HasPrefix(fh, handleTag) {
		return nil, nil, stale
	}
	ino := binary.BigEndian.Uint64(fh[len(handleTag):])
	if ino == 0 {
		return nil, nil, stale
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if p, ok := h.paths[ino]; ok {
		if got, err := inodeOf(h.fs, p); err == nil && got == ino {
			return h.fs, slices.Clone(p), nil
		}
	}
	h.rescanLocked()
	if p, ok := h.paths[ino]; ok {
		return h.fs, slices.Clone(p), nil
	}
	return nil, nil, stale
}

// InvalidateHandle forgets a removed or renamed file's cached path; a
// renamed file's handle is still good and is found again by the walk.
func (h *stableHandles) InvalidateHandle(_ billy.Filesystem, fh []byte) error {
	if len(fh) == handleLen && bytes.HasPrefix(fh, handleTag) {
		h.mu.Lock()
		delete(h.paths, binary.BigEndian.Uint64(fh[len(handleTag):]))
		h.mu.Unlock()
	}
	return nil
}

// HandleLimit bounds READDIR replies (go-nfs sends half of it per reply);
// the handles themselves are unlimited.
func (h *stableHandles) HandleLimit() int { return 1 << 16 }

// rescanLocked rebuilds the inode map from a walk of the whole export,
// without following symlinks. Caller holds mu.
func (h *stableHandles) rescanLocked() {
	clear(h.paths)
	var walk func(dir []string)
	walk = func(dir []string) {
		ents, err := h.fs.ReadDir(h.fs.Join(dir...))
		if err != nil {
			return
		}
		for _, fi := range ents {
			p := append(slices.Clone(dir), fi.Name())
			if ino, ok := inode(fi); ok {
				h.paths[ino] = p
			}
			if fi.IsDir() {
				walk(p)
			}
		}
	}
	if ino, err := inodeOf(h.fs, nil); err == nil {
		h.paths[ino] = []string{}
	}
	walk(nil)
}

func inodeOf(fs billy.Filesystem, path []string) (uint64, error) {
	fi, err := fs.Lstat(fs.Join(path...))
	if err != nil {
		return 0, err
	}
	ino, ok := inode(fi)
	if !ok {
		return 0, &os.PathError{Op: "inode", Path: fs.Join(path...), Err: syscall.ENOTSUP}
	}
	return ino, nil
}

func inode(fi os.FileInfo) (uint64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Ino == 0 {
		return 0, false
	}
	return st.Ino, true
}
