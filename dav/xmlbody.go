package dav

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// maxXMLBody bounds PROPFIND, PROPPATCH and LOCK bodies: real clients send
// a few KiB; a 100 MB body is an attack on memory.
const maxXMLBody = 1 << 20

// checkXMLBody reads a request's XML body, refusing one that is too large
// or that Go's decoder would accept but XML Namespaces forbids (a prefix
// bound to the empty name, as litmus checks), then puts it back.
func checkXMLBody(r *http.Request) (int, error) {
	if r.Body == nil || r.ContentLength == 0 {
		return 0, nil
	}
	if r.ContentLength > maxXMLBody {
		return http.StatusRequestEntityTooLarge, fmt.Errorf("XML body of %d bytes; at most %d", r.ContentLength, maxXMLBody)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxXMLBody+1))
	if err != nil {
		return http.StatusBadRequest, err
	}
	if len(b) > maxXMLBody {
		return http.StatusRequestEntityTooLarge, fmt.Errorf("XML body over %d bytes", maxXMLBody)
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			return 0, nil
		}
		if err != nil {
			return http.StatusBadRequest, fmt.Errorf("malformed XML body: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			for _, a := range se.Attr {
				if a.Name.Space == "xmlns" && a.Value == "" {
					return http.StatusBadRequest, fmt.Errorf("namespace prefix %q bound to an empty name", a.Name.Local)
				}
			}
		}
	}
}
