package diskimage

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"path"
	"syscall"

	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/problem"
)

// ErrExists refuses to replace an image by creating a blank one.
var ErrExists = problem.New(409, "already exists")

// ErrSpec marks a size, filesystem or label that cannot be made.
var ErrSpec = problem.New(422, "cannot make such an image")

// Create writes a blank image at rel in the store, atomically: it appears
// under its name only when formatted and on disk.
func Create(ctx context.Context, s *fs.Store, rel string, size int64, o Options) error {
	rel, err := fs.Clean(rel)
	if err != nil {
		return err
	}
	if rel == "." || fs.Classify(rel) != fs.Visible {
		return fmt.Errorf("%q: %w for an image (no hidden names or folders, nothing starting with a dot)", rel, fs.ErrBadName)
	}
	if _, err := s.Root().Stat(rel); err == nil {
		return fmt.Errorf("%s %w: pick another name or delete it first", rel, ErrExists)
	} else if !errors.Is(err, iofs.ErrNotExist) {
		return err
	}
	// The image is sparse, but the target host will fill it: one larger
	// than the free space would fail it with I/O errors mid-write.
	if part, err := s.Usage(ctx, rel); err == nil && uint64(size) > part.Free {
		return fmt.Errorf("%s: %d bytes do not fit in the %d free on %s: %w", rel, size, part.Free, part.Path, syscall.ENOSPC)
	}
	if err := s.MkdirAll(ctx, path.Dir(rel)); err != nil {
		return err
	}
	u, err := s.Create(ctx, rel, size)
	if err != nil {
		return err
	}
	if err := Format(u.File(), size, o); err != nil {
		u.Abort()
		if fs.IsNoSpace(err) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrSpec, err)
	}
	if _, err := s.Root().Stat(rel); err == nil {
		u.Abort()
		return fmt.Errorf("%s %w (created meanwhile)", rel, ErrExists)
	}
	return u.Commit()
}
