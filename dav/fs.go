package dav

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	iofs "io/fs"
	"mime"
	"os"
	"path"
	"strings"

	"github.com/msdav/msdav/fs"
	"golang.org/x/net/webdav"
)

// storeFS is the webdav.FileSystem seam over the store: every path goes
// through fs.Clean and the store's os.Root, every change through the
// store's guarded operations, and the store's own files stay invisible.
type storeFS struct {
	s     *fs.Store
	props *propStore
}

// rel maps a webdav name ("/a/b.iso") to a store-relative path, refusing
// the store's internal files as if they did not exist.
func rel(name string) (string, error) {
	r, err := fs.Clean(name)
	if err != nil {
		return "", os.ErrPermission
	}
	if fs.Classify(r) == fs.Internal {
		return "", os.ErrNotExist
	}
	return r, nil
}

func (f *storeFS) Mkdir(ctx context.Context, name string, perm os.FileMode) error {
	r, err := rel(name)
	if err != nil {
		return err
	}
	return f.s.Mkdir(ctx, r)
}

func (f *storeFS) RemoveAll(ctx context.Context, name string) error {
	r, err := rel(name)
	if err != nil {
		return err
	}
	if err := f.s.RemoveAll(ctx, r); err != nil {
		return err
	}
	return f.props.remove(ctx, r)
}

func (f *storeFS) Rename(ctx context.Context, oldName, newName string) error {
	o, err := rel(oldName)
	if err != nil {
		return err
	}
	n, err := rel(newName)
	if err != nil {
		return err
	}
	if err := f.s.Rename(ctx, o, n); err != nil {
		return err
	}
	return f.props.rename(ctx, o, n)
}

func (f *storeFS) Stat(ctx context.Context, name string) (os.FileInfo, error) {
	r, err := rel(name)
	if err != nil {
		return nil, err
	}
	return f.s.Root().Stat(r)
}

func (f *storeFS) OpenFile(ctx context.Context, name string, flag int, perm os.FileMode) (webdav.File, error) {
	r, err := rel(name)
	if err != nil {
		return nil, err
	}
	writes := flag&(os.O_WRONLY|os.O_RDWR) != 0
	if writes && flag&os.O_TRUNC != 0 || flag&os.O_CREATE != 0 && !exists(f.s, r) {
		// COPY's destination and LOCK on an unmapped URL: an atomic upload,
		// committed on Close unless a write failed.
		u, err := f.s.Create(ctx, r, -1)
		if err != nil {
			return nil, err
		}
		return &uploadFile{Upload: u, fs: f, rel: r}, nil
	}
	// PROPPATCH opens O_RDWR only to reach the properties: the content
	// stays read-only.
	file, err := f.s.Root().Open(r)
	if err != nil {
		return nil, err
	}
	return &davFile{File: file, fs: f, rel: r}, nil
}

func exists(s *fs.Store, r string) bool {
	_, err := s.Root().Stat(r)
	return err == nil
}

// davFile is a file or folder opened for reading, with its properties.
type davFile struct {
	*os.File
	fs  *storeFS
	rel string
}

func (d *davFile) Write([]byte) (int, error) { return 0, os.ErrPermission }

// WriteTo is what COPY's io.Copy calls first: into an upload, the bytes
// are copied in the kernel (copy_file_range), never through this process.
func (d *davFile) WriteTo(w io.Writer) (int64, error) {
	if u, ok := w.(*uploadFile); ok {
		n, err := u.Upload.CopyFrom(d.File)
		if err != nil {
			u.failed = err
		}
		return n, err
	}
	return d.File.WriteTo(w)
}

// Readdir hides the store's own files.
func (d *davFile) Readdir(count int) ([]os.FileInfo, error) {
	fis, err := d.File.Readdir(count)
	out := fis[:0]
	for _, fi := range fis {
		if fs.Classify(fi.Name()) != fs.Internal {
			out = append(out, fi)
		}
	}
	return out, err
}

func (d *davFile) DeadProps() (map[xml.Name]webdav.Property, error) {
	return d.fs.props.deadProps(d.rel, d.isDir(), nil)
}

func (d *davFile) Patch(p []webdav.Proppatch) ([]webdav.Propstat, error) {
	return d.fs.props.patch(context.Background(), d.rel, p)
}

func (d *davFile) isDir() bool {
	fi, err := d.File.Stat()
	return err == nil && fi.IsDir()
}

// ContentType comes from the name alone: sniffing 512 bytes of every ISO on
// an NFS part for a PROPFIND would be slow and says nothing useful.
func (d *davFile) ContentType(ctx context.Context) (string, error) { return contentType(d.rel), nil }

// ETag matches what GET sends.
func (d *davFile) ETag(ctx context.Context) (string, error) {
	fi, err := d.File.Stat()
	if err != nil {
		return "", err
	}
	return etag(fi), nil
}

// uploadFile is a file being written through the store's atomic upload.
type uploadFile struct {
	*fs.Upload
	fs     *storeFS
	rel    string
	failed error
	patch  []webdav.Proppatch
}

func (u *uploadFile) Write(p []byte) (int, error) {
	n, err := u.Upload.Write(p)
	if err != nil {
		u.failed = err
	}
	return n, err
}

func (u *uploadFile) ReadFrom(r io.Reader) (int64, error) {
	n, err := u.Upload.ReadFrom(r)
	if err != nil {
		u.failed = err
	}
	return n, err
}

func (u *uploadFile) Read(p []byte) (int, error) { return u.Upload.File().Read(p) }
func (u *uploadFile) Seek(off int64, whence int) (int64, error) {
	return u.Upload.File().Seek(off, whence)
}
func (u *uploadFile) Readdir(int) ([]os.FileInfo, error) { return nil, os.ErrInvalid }
func (u *uploadFile) Stat() (os.FileInfo, error)         { return u.Upload.File().Stat() }

// Close commits the upload unless a write failed.
func (u *uploadFile) Close() error {
	if u.failed != nil {
		u.Upload.Abort()
		return u.failed
	}
	if err := u.Upload.Commit(); err != nil {
		return err
	}
	// A new file starts without the old one's properties, plus what COPY carried.
	u.fs.props.remove(context.Background(), u.rel)
	if len(u.patch) > 0 {
		_, err := u.fs.props.patch(context.Background(), u.rel, u.patch)
		return err
	}
	return nil
}

func (u *uploadFile) DeadProps() (map[xml.Name]webdav.Property, error) { return nil, nil }

// Patch is kept until Close: the properties belong to the final name.
func (u *uploadFile) Patch(p []webdav.Proppatch) ([]webdav.Propstat, error) {
	u.patch = append(u.patch, p...)
	var ps webdav.Propstat
	ps.Status = 200
	for _, pp := range p {
		for _, prop := range pp.Props {
			ps.Props = append(ps.Props, webdav.Property{XMLName: prop.XMLName})
		}
	}
	return []webdav.Propstat{ps}, nil
}

var extraTypes = map[string]string{
	".iso":   "application/x-iso9660-image",
	".img":   "application/octet-stream",
	".ima":   "application/octet-stream",
	".raw":   "application/octet-stream",
	".vhd":   "application/x-vhd",
	".qcow2": "application/x-qemu-disk",
	".dmg":   "application/x-apple-diskimage",
}

func contentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := extraTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

func isNotExist(err error) bool { return errors.Is(err, iofs.ErrNotExist) }
