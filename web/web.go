// Package web serves the browser console at / with its assets under /ui/,
// and holds the cross-site rule that keeps other sites from changing state.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed ui
var files embed.FS

// Prefix is where the console's assets are served.
const Prefix = "/ui/"

// CSP allows only msdav's own files: no inline script or style, no other
// host, and no framing (clickjacking of the eject and delete buttons).
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

type asset struct {
	body  []byte
	ctype string
	etag  string
}

// Console serves the page at / and its assets under Prefix. Only GET and
// HEAD reach it: the router keeps the other methods on / for WebDAV clients.
type Console struct {
	assets map[string]asset // by name under ui/, "index.html" for /
	start  time.Time
}

// New loads the embedded assets once; their ETag is a hash of the content,
// so a browser revalidates cheaply and never keeps a stale script after an
// upgrade.
func New() *Console {
	c := &Console{assets: map[string]asset{}, start: time.Now()}
	fs.WalkDir(files, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		c.assets[strings.TrimPrefix(p, "ui/")] = asset{body: b, ctype: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	return c
}

// Size is the total weight of the page and its assets in bytes.
func (c *Console) Size() int {
	n := 0
	for _, a := range c.assets {
		n += len(a.body)
	}
	return n
}

func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, r.Method+" is not allowed on "+r.URL.Path, http.StatusMethodNotAllowed)
		return
	}
	name := "index.html"
	if r.URL.Path != "/" {
		name = strings.TrimPrefix(r.URL.Path, Prefix)
	}
	a, ok := c.assets[name]
	if !ok || name == "index.html" && r.URL.Path != "/" {
		http.Error(w, "no such console file: "+r.URL.Path, http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	http.ServeContent(w, r, "", c.start, bytes.NewReader(a.body))
}
