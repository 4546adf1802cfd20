package fs

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"path/filepath"
)

// tempBeside names a fresh temp file in the folder of rel. The name has a
// fixed length whatever rel's: a temp that embedded the final name would
// pass NAME_MAX (255 bytes) for names the filesystem itself takes. It
// starts with uploadPrefix, so the sweep at start removes it after a crash.
func tempBeside(rel string) string { return hiddenBeside(rel, uploadPrefix) }

// hiddenBeside is a fresh name starting with prefix in the folder of rel.
func hiddenBeside(rel, prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return path.Join(path.Dir(rel), prefix+hex.EncodeToString(b[:]))
}

// writeFileAtomic replaces name under root with b: a temp beside it,
// written, synced, renamed over name, and the folder synced, so a crash
// leaves the old file or the new one, never a part of either.
func writeFileAtomic(root *os.Root, name string, b []byte, perm os.FileMode) error {
	tmp := tempBeside(name)
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, name)
	}
	if err != nil {
		root.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	d, err := root.Open(path.Dir(name))
	if err != nil {
		return fmt.Errorf("write %s: sync folder: %w", name, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write %s: sync folder: %w", name, err)
	}
	return nil
}

// WriteFileAtomic is the store's atomic write for a file outside it (the
// userspace drives' state file), given by its host path.
func WriteFileAtomic(name string, b []byte, perm os.FileMode) error {
	r, err := os.OpenRoot(filepath.Dir(name))
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer r.Close()
	if err := writeFileAtomic(r, filepath.Base(name), b, perm); err != nil {
		return fmt.Errorf("save %s: %w", name, err)
	}
	return nil
}
