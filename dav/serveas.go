package dav

import (
	"fmt"
	"mime"
	"net/http"
	"path"
	"strings"
)

// sandboxPolicy is the Content-Security-Policy of every answer from the
// share. The share holds files anyone with write access (a share writer,
// a co-tenant of an NFS library, a URL fetched) put there, served on the
// console's own origin: a page among them that ran script would act with
// the admin's credentials. sandbox without allow-scripts stops script;
// without allow-same-origin the document is an opaque origin, so even a
// form it submits is cross-site to the API.
const sandboxPolicy = "sandbox; default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'"

// setShareHeaders marks an answer from the share as inert: no script, no
// guessing a type the name did not give.
func setShareHeaders(h http.Header) {
	h.Set("Content-Security-Policy", sandboxPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
}

// Sandbox sets the share's headers on every answer of next, the ones it
// writes itself and the ones written before it (an auth refusal) alike.
func Sandbox(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setShareHeaders(w.Header())
		next.ServeHTTP(w, r)
	})
}

// passiveTypes are the media types a browser shows without running
// anything: images other than SVG, sound, video, plain text and the types
// it only ever downloads. Every other type (HTML, XHTML, SVG, XML, XSLT,
// JavaScript, PDF with its own script engine, types no one has thought of
// yet) is sent as a download of application/octet-stream: an allowlist,
// because a blocklist misses the next active type.
var passiveTypes = map[string]bool{
	"text/plain":                    true,
	"application/octet-stream":      true,
	"application/x-iso9660-image":   true,
	"application/x-vhd":             true,
	"application/x-qemu-disk":       true,
	"application/x-apple-diskimage": true,
	"application/zip":               true,
	"application/gzip":              true,
	"application/x-gzip":            true,
	"application/x-xz":              true,
	"application/zstd":              true,
	"application/x-bzip2":           true,
	"application/x-tar":             true,
	"application/json":              true,
	"image/png":                     true,
	"image/jpeg":                    true,
	"image/gif":                     true,
	"image/webp":                    true,
	"image/avif":                    true,
	"image/bmp":                     true,
	"image/x-icon":                  true,
	"image/vnd.microsoft.icon":      true,
}

// servedType returns the Content-Type a GET of name answers with and,
// for an active type, the Content-Disposition that makes it a download.
func servedType(name string) (ctype, disposition string) {
	ct := contentType(name)
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (passiveTypes[mt] || strings.HasPrefix(mt, "audio/") || strings.HasPrefix(mt, "video/")) {
		return ct, ""
	}
	return "application/octet-stream", attachment(path.Base(name))
}

// attachment is an RFC 6266 Content-Disposition for a download of name:
// an ASCII filename for old clients and the exact name in RFC 5987's
// filename* for the rest.
func attachment(name string) string {
	var ascii strings.Builder
	for _, r := range name {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			ascii.WriteByte('_')
		} else {
			ascii.WriteRune(r)
		}
	}
	return `attachment; filename="` + ascii.String() + `"; filename*=UTF-8''` + rfc5987(name)
}

// rfc5987 percent-encodes everything but RFC 5987's attr-char.
func rfc5987(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
