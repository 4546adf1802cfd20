package fs

import "strings"

// Names the store writes for itself all start with tempPrefix: upload
// temps, property sidecars, move leftovers. They are hidden everywhere and
// the temps among them are swept at start.
const tempPrefix = ".msdav-"

// uploadPrefix starts the name of an upload's temp file.
const uploadPrefix = tempPrefix + "upload-"

// gonePrefix starts the name a file is hidden under while it is removed.
const gonePrefix = tempPrefix + "gone-"

// Visibility says who may see a store path.
type Visibility int

const (
	// Visible: an ordinary file or folder, an image candidate.
	Visible Visibility = iota
	// Junk: a client's hidden file or litter (.DS_Store, ._x, Thumbs.db):
	// the share keeps it, the catalog and the drives never use it.
	Junk
	// Internal: the store's own file; no client may see or name it.
	Internal
)

// Classify decides, for every element of a store-relative path, whether
// the path is the store's own, a client's junk, or visible. One internal
// element anywhere makes the whole path internal: "isos/.msdav-upload-1-x"
// is an upload temp whatever folder holds it. Case does not matter: on a
// part that folds case ".MSDAV-SUM-x" opens ".msdav-sum-x".
func Classify(rel string) Visibility {
	v := Visible
	for _, el := range strings.Split(rel, "/") {
		switch {
		case hasPrefixFold(el, tempPrefix):
			return Internal
		case junkName(el):
			v = Junk
		}
	}
	return v
}

// junkName reports one name that is never an image: hidden files, and
// what macOS and Windows leave on shares.
func junkName(name string) bool {
	if strings.HasPrefix(name, ".") && name != "." {
		return true
	}
	switch strings.ToLower(name) {
	case "thumbs.db", "desktop.ini", "$recycle.bin", "system volume information", "lost+found":
		return true
	}
	return false
}

// stale reports a temp file a crash can leave: an upload, the copy or
// parked old version of a move between parts, a lease's temp, or a file
// hidden on its way out (removeHidden).
func stale(name string) bool {
	for _, p := range []string{uploadPrefix, tempPrefix + "move-", tempPrefix + "old-", tempPrefix + "lease-tmp-", gonePrefix} {
		if hasPrefixFold(name, p) {
			return true
		}
	}
	return false
}

// hasPrefixFold is strings.HasPrefix ignoring ASCII case.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
