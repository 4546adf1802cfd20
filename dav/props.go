package dav

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"sync"

	"github.com/msdav/msdav/fs"
	"golang.org/x/net/webdav"
)

// propStore keeps dead properties (PROPPATCH) in a hidden sidecar file next
// to each resource: plain files work on every part (vfat, exFAT, NFS, CIFS)
// where extended attributes do not, and a sidecar moves and dies with its
// file. A folder's own properties sit beside the folder, so its children's
// sidecars travel with it on MOVE.
type propStore struct {
	s  *fs.Store
	mu sync.Mutex // serialises read-modify-write of sidecars
}

const (
	sidecarPrefix = ".msdav-props-"
	// hashedPrefix starts the sidecar of a name too long for sidecarPrefix:
	// a hash of the name, so every name the filesystem takes has one.
	hashedPrefix = ".msdav-propx-"
	// nameMax is NAME_MAX, the longest name (in bytes) of every part msdav
	// serves: ext4, XFS, Btrfs, tmpfs, NFS, CIFS; vfat and exFAT count 255
	// UTF-16 units, which is never fewer bytes.
	nameMax = 255
	// tempOverhead is what the store puts before a name for the temp it
	// writes first (".msdav-upload-", up to 19 digits of nanoseconds, "-").
	tempOverhead = len(".msdav-upload-") + 20
)

// sidecarName is the name of the sidecar for base: sidecarPrefix+base
// while that and its upload temp fit in nameMax, else hashedPrefix and 32
// hex digits of base's sha256 (a 255-byte name's sidecar was 268 bytes;
// PROPPATCH answered 500).
func sidecarName(base string) string {
	if n := sidecarPrefix + base; len(n)+tempOverhead <= nameMax {
		return n
	}
	sum := sha256.Sum256([]byte(base))
	return hashedPrefix + hex.EncodeToString(sum[:16])
}

func sidecar(rel string) string {
	if rel == "." {
		return sidecarPrefix + "."
	}
	dir, base := path.Split(rel)
	return path.Join(dir, sidecarName(base))
}

// storedProp is one property as written to disk.
type storedProp struct {
	Space string `json:"ns"`
	Local string `json:"name"`
	Lang  string `json:"lang,omitempty"`
	Inner string `json:"xml"`
}

var (
	quotaAvail = xml.Name{Space: "DAV:", Local: "quota-available-bytes"}
	quotaUsed  = xml.Name{Space: "DAV:", Local: "quota-used-bytes"}
)

func (p *propStore) load(rel string) (map[xml.Name]webdav.Property, error) {
	b, err := p.s.Root().ReadFile(sidecar(rel))
	if isNotExist(err) {
		return map[xml.Name]webdav.Property{}, nil
	}
	if err != nil {
		return nil, err
	}
	var list []storedProp
	if err := json.Unmarshal(b, &list); err != nil {
		// A damaged sidecar must not make the file unreachable.
		return map[xml.Name]webdav.Property{}, nil
	}
	m := make(map[xml.Name]webdav.Property, len(list))
	for _, sp := range list {
		n := xml.Name{Space: sp.Space, Local: sp.Local}
		m[n] = webdav.Property{XMLName: n, Lang: sp.Lang, InnerXML: []byte(sp.Inner)}
	}
	return m, nil
}

// deadProps returns the stored properties, plus RFC 4331 quota on folders
// (computed live from the part that holds the folder, through q when a
// request asks for many; nil asks the store itself).
func (p *propStore) deadProps(rel string, isDir bool, q *fs.Quota) (map[xml.Name]webdav.Property, error) {
	if q == nil && isDir {
		q = p.s.NewQuota(context.Background())
	}
	return p.deadPropsKnown(rel, isDir, true, q)
}

// deadPropsKnown is deadProps for a caller that listed the folder and knows
// whether rel has a sidecar: without one nothing is read. A PROPFIND of
// 2,000 subfolders spent 59 % of its CPU opening sidecars that were not there.
func (p *propStore) deadPropsKnown(rel string, isDir, hasSidecar bool, q *fs.Quota) (map[xml.Name]webdav.Property, error) {
	m := map[xml.Name]webdav.Property{}
	if hasSidecar {
		var err error
		if m, err = p.load(rel); err != nil {
			return nil, err
		}
	}
	if isDir && q != nil {
		if part, err := q.Usage(rel); err == nil {
			m[quotaAvail] = webdav.Property{XMLName: quotaAvail, InnerXML: []byte(strconv.FormatUint(part.Free, 10))}
			m[quotaUsed] = webdav.Property{XMLName: quotaUsed, InnerXML: []byte(strconv.FormatUint(part.Size-part.Free, 10))}
		}
	}
	return m, nil
}

func (p *propStore) patch(ctx context.Context, rel string, patches []webdav.Proppatch) ([]webdav.Propstat, error) {
	// Quota is computed, not stored: refuse the whole request (RFC 4918 9.2:
	// PROPPATCH is atomic), failing the protected ones with 403 and the rest
	// with 424.
	var forbidden, rest webdav.Propstat
	forbidden.Status, rest.Status = http.StatusForbidden, http.StatusFailedDependency
	for _, pp := range patches {
		for _, prop := range pp.Props {
			if prop.XMLName == quotaAvail || prop.XMLName == quotaUsed {
				forbidden.Props = append(forbidden.Props, webdav.Property{XMLName: prop.XMLName})
			} else {
				rest.Props = append(rest.Props, webdav.Property{XMLName: prop.XMLName})
			}
		}
	}
	if len(forbidden.Props) > 0 {
		return []webdav.Propstat{forbidden, rest}, nil
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	m, err := p.load(rel)
	if err != nil {
		return nil, err
	}
	before := propBytes(m)
	ok := webdav.Propstat{Status: http.StatusOK}
	for _, pp := range patches {
		for _, prop := range pp.Props {
			ok.Props = append(ok.Props, webdav.Property{XMLName: prop.XMLName})
			if pp.Remove {
				delete(m, prop.XMLName)
			} else {
				m[prop.XMLName] = prop
			}
		}
	}
	// Past the cap only a patch that shrinks them passes (a sidecar
	// written before there was one).
	if n := propBytes(m); n > maxDeadPropBytes && n > before {
		// RFC 4918 9.2.1: 507, the server cannot record the property; the
		// request is atomic, so none of it is.
		full := webdav.Propstat{Status: http.StatusInsufficientStorage, Props: ok.Props,
			ResponseDescription: fmt.Sprintf("dead properties of %d bytes; a resource keeps at most %d", n, maxDeadPropBytes)}
		return []webdav.Propstat{full}, nil
	}
	if err := p.save(ctx, rel, m); err != nil {
		return nil, err
	}
	return []webdav.Propstat{ok}, nil
}

// maxDeadPropBytes bounds one resource's dead properties (names, language
// and values): each PROPPATCH rewrites the sidecar whole and every allprop
// PROPFIND sends it, so without a bound 40 PROPPATCHes of 1 MB made a 40 MB
// sidecar, a 41 MB answer and each PROPPATCH slower than the last. Real
// clients store a few timestamps and attributes (Windows' Win32 times are
// under 300 bytes); 64 KiB is 200 times that and rewrites in well under a
// millisecond.
const maxDeadPropBytes = 64 << 10

func propBytes(m map[xml.Name]webdav.Property) int {
	n := 0
	for name, p := range m {
		n += len(name.Space) + len(name.Local) + len(p.Lang) + len(p.InnerXML)
	}
	return n
}

// save writes the sidecar atomically through the store (temp, fsync, rename).
func (p *propStore) save(ctx context.Context, rel string, m map[xml.Name]webdav.Property) error {
	if len(m) == 0 {
		return p.remove(ctx, rel)
	}
	list := make([]storedProp, 0, len(m))
	for n, prop := range m {
		list = append(list, storedProp{Space: n.Space, Local: n.Local, Lang: prop.Lang, Inner: string(prop.InnerXML)})
	}
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	u, err := p.s.CreateInternal(ctx, sidecar(rel), int64(len(b)))
	if err != nil {
		return err
	}
	if _, err := u.Write(b); err != nil {
		u.Abort()
		return err
	}
	return u.Commit()
}

func (p *propStore) remove(ctx context.Context, rel string) error {
	sc := sidecar(rel)
	if _, err := p.s.Root().Lstat(sc); isNotExist(err) {
		return nil
	}
	done, err := p.s.Write(ctx, "remove properties of "+rel)
	if err != nil {
		return err
	}
	defer done()
	if err := p.s.Root().Remove(sc); err != nil && !isNotExist(err) {
		return err
	}
	return nil
}

func (p *propStore) rename(ctx context.Context, from, to string) error {
	if _, err := p.s.Root().Lstat(sidecar(from)); err != nil {
		return p.remove(ctx, to)
	}
	return p.s.Rename(ctx, sidecar(from), sidecar(to))
}
