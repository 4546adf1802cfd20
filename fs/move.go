package fs

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path"
)

// moveAcross moves between two mounted parts, where rename(2) says EXDEV:
// the source is copied to a temp beside the destination, synced, renamed
// over it, and only then deleted. The destination is never removed first, so
// a failure at any step leaves either the old or the new content in place.
func (s *Store) moveAcross(oldRel, newRel string) error {
	fi, err := s.root.Lstat(oldRel)
	if err != nil {
		return err
	}
	tmp := tempBeside(newRel)
	if err := s.copyTree(oldRel, tmp, fi); err != nil {
		s.root.RemoveAll(tmp)
		return fmt.Errorf("move %s to %s: copy: %w", oldRel, newRel, err)
	}
	if fi.IsDir() {
		// rename(2) will not replace a non-empty folder: park the old one.
		if _, err := s.root.Lstat(newRel); err == nil {
			old := tempBeside(newRel)
			if err := s.root.Rename(newRel, old); err != nil {
				s.root.RemoveAll(tmp)
				return fmt.Errorf("move %s to %s: %w", oldRel, newRel, err)
			}
			defer s.root.RemoveAll(old)
		}
	}
	if err := s.root.Rename(tmp, newRel); err != nil {
		s.root.RemoveAll(tmp)
		return fmt.Errorf("move %s to %s: %w", oldRel, newRel, err)
	}
	if err := s.syncDir(path.Dir(newRel)); err != nil {
		return err
	}
	if err := s.root.RemoveAll(oldRel); err != nil {
		return fmt.Errorf("move %s to %s: copied, but removing the source: %w", oldRel, newRel, err)
	}
	return nil
}

func (s *Store) copyTree(src, dst string, fi iofs.FileInfo) error {
	switch {
	case fi.IsDir():
		if err := s.root.Mkdir(dst, fi.Mode().Perm()); err != nil {
			return err
		}
		ents, err := iofs.ReadDir(s.root.FS(), src)
		if err != nil {
			return err
		}
		for _, e := range ents {
			efi, err := e.Info()
			if err != nil {
				return err
			}
			if err := s.copyTree(path.Join(src, e.Name()), path.Join(dst, e.Name()), efi); err != nil {
				return err
			}
		}
		return nil
	case fi.Mode().IsRegular():
		return s.copyFile(src, dst, fi.Mode().Perm())
	default:
		return fmt.Errorf("%s: %w (only files and folders move between parts)", src, errors.ErrUnsupported)
	}
}

func (s *Store) copyFile(src, dst string, perm os.FileMode) error {
	in, err := s.root.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := s.root.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	// *os.File to *os.File: io.Copy uses copy_file_range or splice.
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
