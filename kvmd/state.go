package kvmd

import (
	"net/http"
	"strings"
	"time"

	"github.com/msdav/msdav/fs"
)

// imageState is one image as kvmd lists it under storage.images.
type imageState struct {
	Complete  bool    `json:"complete"`
	ModTS     float64 `json:"mod_ts"`
	Removable bool    `json:"removable"`
	Size      int64   `json:"size"`
	Writable  bool    `json:"writable"`
}

// driveImage is drive.image: an imageState with its name.
type driveImage struct {
	Name      string  `json:"name"`
	InStorage bool    `json:"in_storage"`
	Complete  bool    `json:"complete"`
	ModTS     float64 `json:"mod_ts"`
	Removable bool    `json:"removable"`
	Size      int64   `json:"size"`
	Writable  bool    `json:"writable"`
}

type partState struct {
	Free     uint64 `json:"free"`
	Size     uint64 `json:"size"`
	Writable bool   `json:"writable"`
}

type driveState struct {
	CDROM     bool        `json:"cdrom"`
	Connected bool        `json:"connected"`
	Image     *driveImage `json:"image"`
	RW        bool        `json:"rw"`
}

type storageState struct {
	Downloading any                   `json:"downloading"`
	Images      map[string]imageState `json:"images"`
	Parts       map[string]partState  `json:"parts"`
	Uploading   any                   `json:"uploading"`
}

type msdState struct {
	Busy    bool          `json:"busy"`
	Drive   *driveState   `json:"drive"`
	Enabled bool          `json:"enabled"`
	Online  bool          `json:"online"`
	Storage *storageState `json:"storage"`
}

// modTS is a file's time as kvmd gives it; an upload still arriving has no
// file time yet, and is dated now (PiKVM's UI sorts and dates by it).
func modTS(t time.Time) float64 {
	if t.IsZero() {
		t = time.Now()
	}
	return float64(t.UnixNano()) / 1e9
}

// writableImage is kvmd's rule: an .iso is never attached writable, nor an
// image on a part that cannot be written.
func writableImage(name string, partWritable bool) bool {
	return partWritable && !strings.HasSuffix(strings.ToLower(name), ".iso")
}

func (h *Handler) state(w http.ResponseWriter, r *http.Request) (any, error) {
	st, err := h.snapshot(r)
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (h *Handler) snapshot(r *http.Request) (msdState, error) {
	if h.drives.Available() != nil {
		// kvmd's otg MSD without its gadget: enabled, offline, storage
		// and drive null.
		return msdState{Enabled: true}, nil
	}
	imgs, err := h.store.Images(r.Context())
	if err != nil {
		return msdState{}, err
	}
	parts, err := h.store.Parts(r.Context())
	if err != nil {
		return msdState{}, err
	}
	st := &storageState{Images: map[string]imageState{}, Parts: map[string]partState{}}
	partWritable := map[string]bool{}
	for _, p := range parts {
		name := p.Path
		if name == "." {
			name = ""
		}
		partWritable[p.Path] = p.Writable && p.Available
		st.Parts[name] = partState{Free: p.Free, Size: p.Size, Writable: p.Writable && p.Available}
	}
	byName := map[string]fs.Image{}
	for _, im := range imgs {
		if _, dup := byName[im.Path]; dup {
			continue // an upload that just completed: the complete one comes first
		}
		byName[im.Path] = im
		pw := partWritable[im.Part]
		st.Images[im.Path] = imageState{
			Complete:  im.Complete,
			ModTS:     modTS(im.ModTime),
			Removable: pw, // as kvmd: attached or not
			Size:      im.Size,
			Writable:  writableImage(im.Path, pw),
		}
	}
	h.mu.Lock()
	if p := h.reading; p != nil {
		st.Downloading = map[string]any{"name": p.name, "size": p.size, "readed": p.done.Load()}
	}
	if p := h.uploading; p != nil {
		st.Uploading = map[string]any{"name": p.name, "size": p.size, "written": p.done.Load()}
	}
	h.mu.Unlock()

	cur, on, err := h.connected()
	if err != nil {
		return msdState{}, err
	}
	ds := &driveState{Connected: on}
	if on {
		ds.CDROM, ds.RW = cur.CDROM, cur.RW
		switch {
		case cur.Image != nil:
			ds.Image = h.driveImage(*cur.Image, byName, partWritable)
		default: // attached from outside the store by msdav drive
			ds.Image = &driveImage{Name: cur.File, InStorage: false, Complete: true}
		}
	} else {
		sel := h.drives.Selected(drive)
		ds.CDROM, ds.RW = sel.CDROM, sel.RW
		if sel.Image != "" {
			if _, ok := byName[sel.Image]; ok {
				ds.Image = h.driveImage(sel.Image, byName, partWritable)
			}
		}
	}
	return msdState{Busy: h.busy.Load(), Drive: ds, Enabled: true, Online: true, Storage: st}, nil
}

func (h *Handler) driveImage(name string, byName map[string]fs.Image, partWritable map[string]bool) *driveImage {
	im, ok := byName[name]
	if !ok {
		return &driveImage{Name: name, InStorage: true}
	}
	pw := partWritable[im.Part]
	return &driveImage{Name: name, InStorage: true, Complete: im.Complete, ModTS: modTS(im.ModTime),
		Removable: pw, Size: im.Size, Writable: writableImage(name, pw)}
}
