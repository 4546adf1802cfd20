// Package dav serves the image store over WebDAV: x/net/webdav wrapped around
// fs.Store, with atomic uploads, protected attached images and dead properties.
package dav

import (
	"log/slog"
	"net/http"

	"github.com/msdav/msdav/fs"
	"golang.org/x/net/webdav"
)

// Options configure the WebDAV handler.
type Options struct {
	Prefix string // URL prefix the share lives under, "/dav"
	Log    *slog.Logger
}

// New returns the WebDAV handler for store.
// TODO(dav): FileSystem over fs.Store; this serves the root directly for now.
func New(store *fs.Store, o Options) http.Handler {
	return &webdav.Handler{
		Prefix:     o.Prefix,
		FileSystem: webdav.Dir(store.Dir()),
		LockSystem: webdav.NewMemLS(),
	}
}
