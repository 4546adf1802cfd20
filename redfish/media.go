package redfish

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/gorilla/mux"
	"github.com/msdav/msdav/drives"
	"github.com/msdav/msdav/fetch"
	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/fs/imagekind"
	"github.com/msdav/msdav/gadget"
	"github.com/msdav/msdav/gadget/remote"
)

// fetchFolder is where images inserted by URL are stored: a folder of
// their own, so a fetch never replaces an image a person put in the store.
const fetchFolder = "redfish"

func (h *Handler) mediaCollection(base string) (int, any, error) {
	var members []string
	for i := 0; i < h.drives.Count(); i++ {
		members = append(members, base+"/VirtualMedia/"+strconv.Itoa(i))
	}
	return 200, collection(base+"/VirtualMedia", "VirtualMediaCollection", "Virtual media", members...), nil
}

func (h *Handler) index(r *http.Request) (int, error) {
	s := mux.Vars(r)["i"]
	i, err := strconv.Atoi(s)
	if err != nil || h.drives.Count() == 0 || strconv.Itoa(i) != s {
		return 0, &Error{Status: 404, Code: "Base.1.8.ResourceMissingAtURI", Msg: fmt.Sprintf("no virtual media %q (members are 0 to %d)", s, h.drives.Count()-1)}
	}
	// The range is the drive manager's, as for every attach.
	if err := h.drives.CheckDrive(i); err != nil {
		return 0, fromStore(err)
	}
	return i, nil
}

func (h *Handler) media(r *http.Request, base string) (int, any, error) {
	i, err := h.index(r)
	if err != nil {
		return 0, nil, err
	}
	self := base + "/VirtualMedia/" + strconv.Itoa(i)
	v := map[string]any{
		"@odata.type":          "#VirtualMedia.v1_4_0.VirtualMedia",
		"@odata.id":            self,
		"Id":                   strconv.Itoa(i),
		"Name":                 fmt.Sprintf("Virtual media %d", i),
		"MediaTypes":           []string{"CD", "DVD", "USBStick"},
		"Image":                nil,
		"ImageName":            nil,
		"Inserted":             false,
		"WriteProtected":       true,
		"ConnectedVia":         "NotConnected",
		"TransferMethod":       "Upload",
		"TransferProtocolType": nil,
		"UserName":             nil,
		"Password":             nil,
		"Actions": map[string]any{
			"#VirtualMedia.InsertMedia": map[string]string{"target": self + "/Actions/VirtualMedia.InsertMedia"},
			"#VirtualMedia.EjectMedia":  map[string]string{"target": self + "/Actions/VirtualMedia.EjectMedia"},
		},
		"Status": map[string]string{"State": "Enabled", "Health": "OK"},
	}
	d, err := h.drives.Drive(i)
	if err != nil {
		// Never a 5xx on a GET: say the drive cannot be read.
		v["Status"] = map[string]string{"State": "UnavailableOffline", "Health": "Critical"}
		v["Inserted"] = nil
		return 200, v, nil
	}
	if d.URL != "" {
		// Served straight from its URL (userspace drives).
		v["Inserted"] = true
		v["Image"] = fetch.Redact(d.URL)
		v["ImageName"] = nil
		if u, err := url.Parse(d.URL); err == nil {
			v["ImageName"] = path.Base(u.Path)
			v["TransferProtocolType"] = strings.ToUpper(u.Scheme)
		}
		v["ConnectedVia"] = "URI"
		v["TransferMethod"] = "Stream"
		if d.MediumError != "" {
			v["Status"] = map[string]string{"State": "Enabled", "Health": "Warning"}
		}
		return 200, v, nil
	}
	if d.Image == nil && d.File == "" {
		return 200, v, nil
	}
	name := d.File
	if d.Image != nil {
		name = *d.Image
	}
	v["Inserted"] = true
	v["WriteProtected"] = !d.RW
	v["ImageName"] = path.Base(name)
	v["Image"] = name
	v["ConnectedVia"] = "Oem" // a file in msdav's own store
	h.mu.Lock()
	ins, ok := h.inserted[i]
	h.mu.Unlock()
	if ok && d.Image != nil && ins.path == *d.Image {
		v["Image"] = fetch.Redact(ins.url)
		v["ConnectedVia"] = "URI"
		if u, err := url.Parse(ins.url); err == nil {
			v["TransferProtocolType"] = strings.ToUpper(u.Scheme)
		}
	}
	return 200, v, nil
}

// insertRequest is InsertMedia's body (and PATCH's).
type insertRequest struct {
	Image                *string
	Inserted             *bool
	WriteProtected       *bool
	TransferProtocolType *string
	TransferMethod       *string
	UserName             *string
	Password             *string
}

func (h *Handler) insert(r *http.Request) (int, any, error) {
	i, err := h.index(r)
	if err != nil {
		return 0, nil, err
	}
	var req insertRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if req.Image == nil || strings.TrimSpace(*req.Image) == "" {
		return 0, nil, badRequest("ActionParameterMissing", "Image is missing: an http(s) URL to fetch, or a path in msdav's store")
	}
	if req.UserName != nil && *req.UserName != "" {
		return 0, nil, badRequest("ActionParameterNotSupported", "UserName/Password for the image server are not supported; put credentials in the URL")
	}
	if req.TransferMethod != nil && *req.TransferMethod != "Upload" && *req.TransferMethod != "Stream" {
		return 0, nil, badRequest("ActionParameterValueNotInList", "TransferMethod %q: want Stream or Upload", *req.TransferMethod)
	}
	inserted := req.Inserted == nil || *req.Inserted
	wp := req.WriteProtected == nil || *req.WriteProtected
	// Upload asks for the whole image to be copied to the service first.
	upload := req.TransferMethod != nil && *req.TransferMethod == "Upload"
	return h.doInsert(r, i, strings.TrimSpace(*req.Image), inserted, wp, upload)
}

// doInsert serves a URL straight from its server (userspace drives, unless
// the client asked for upload), or fetches it into the store in a task
// (insertURL), or takes a store path, and, when inserted, attaches it. It
// returns when the medium is in, or with the reason it is not, or 202 with
// the task still fetching.
func (h *Handler) doInsert(r *http.Request, i int, image string, inserted, writeProtected, upload bool) (int, any, error) {
	ctx := r.Context()
	if u, err := url.Parse(image); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		if h.jobs == nil {
			return 0, nil, &Error{Status: 503, Code: "Base.1.8.ServiceTemporarilyUnavailable", Msg: "fetching images is not set up in this server"}
		}
		if writeProtected && !upload && h.drives.ServesURLs() {
			// The host boots at once, reading the image with Range
			// requests; a writable medium needs a file of its own.
			h.cancelInsert(i)
			return h.stream(ctx, i, image, inserted)
		}
		return h.insertURL(r, i, image, inserted, writeProtected)
	}
	rel, err := fs.Clean(image)
	if err != nil || rel == "." {
		return 0, nil, badRequest("ActionParameterValueFormatError", "Image %q is neither an http(s) URL nor a path in the store", image)
	}
	if rel, err = h.drives.CheckImage(rel); err != nil {
		return 0, nil, err
	}
	if !inserted {
		return http.StatusNoContent, nil, nil
	}
	h.cancelInsert(i)
	if err := h.attach(ctx, i, rel, writeProtected, ""); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// attach puts the store image rel into drive i: as a CD/DVD unless the
// image is a disk or FAT image, or too big for a CD on this kernel but
// hybrid (boots as flash). from is the URL it was fetched from, if any.
func (h *Handler) attach(ctx context.Context, i int, rel string, writeProtected bool, from string) error {
	im, _ := h.store.Image(rel)
	cdrom := true
	switch imagekind.Kind(im.Kind) {
	case imagekind.Disk, imagekind.FAT:
		cdrom = false
	case imagekind.Hybrid:
		cdrom = im.Size <= gadget.CDMaxBytes || h.drives.DVD()
	}
	if !writeProtected {
		switch imagekind.Kind(im.Kind) {
		case imagekind.ISO9660, imagekind.UDF:
			// Only a CD: asked writable, the drive manager refuses it.
		default:
			cdrom = false // a writable medium is a flash drive
		}
	}
	req := drives.Request{Drive: i, Image: rel, CDROM: cdrom, RW: !writeProtected}
	if _, err := h.drives.Attach(ctx, req); err != nil {
		if e := fromStore(err); errors.Is(err, drives.ErrRefused) {
			e.Code = "Base.1.8.ActionParameterValueConflict"
			return e
		}
		return err
	}
	h.mu.Lock()
	if from != "" {
		h.inserted[i] = insertion{url: from, path: rel}
	} else {
		delete(h.inserted, i)
	}
	h.mu.Unlock()
	return nil
}

// stream serves the image at raw in drive i straight from its server,
// through the same guard as a fetch (no local addresses unless
// fetch.allow_private): as a CD/DVD unless it is a disk or FAT image. Not
// inserted, the URL is only checked.
func (h *Handler) stream(ctx context.Context, i int, raw string, inserted bool) (int, any, error) {
	u, client, err := h.jobs.Guarded(ctx, raw)
	if err != nil {
		return 0, nil, err
	}
	med, err := remote.Open(ctx, client, u.String(), remote.Options{Log: h.log})
	if err != nil {
		return 0, nil, &Error{Status: 400, Code: "Base.1.8.ActionParameterValueFormatError", Msg: fmt.Sprintf("could not read %s: %v", u.Redacted(), err)}
	}
	if !inserted {
		med.Close()
		return http.StatusNoContent, nil, nil
	}
	cdrom := true
	switch imagekind.Detect(med, med.Size()) {
	case imagekind.Disk, imagekind.FAT:
		cdrom = false
	}
	if _, err := h.drives.Attach(ctx, drives.Request{Drive: i, URL: u.String(), Medium: med, CDROM: cdrom}); err != nil {
		med.Close()
		return 0, nil, err
	}
	h.mu.Lock()
	delete(h.inserted, i) // the drive itself says where its image is
	h.mu.Unlock()
	h.log.Info("redfish: serving an image from its URL", "drive", i, "url", u.Redacted(), "cdrom", cdrom)
	return http.StatusNoContent, nil, nil
}

func (h *Handler) eject(r *http.Request) (int, any, error) {
	i, err := h.index(r)
	if err != nil {
		return 0, nil, err
	}
	var ignored map[string]any
	if err := decode(r, &ignored); err != nil {
		return 0, nil, err
	}
	h.cancelInsert(i)
	if _, err := h.drives.Eject(r.Context(), i, false); err != nil {
		return 0, nil, err
	}
	h.mu.Lock()
	delete(h.inserted, i)
	h.mu.Unlock()
	return http.StatusNoContent, nil, nil
}

// patchMedia is the older clients' way: PATCH Image/Inserted/WriteProtected.
func (h *Handler) patchMedia(r *http.Request, base string) (int, any, error) {
	i, err := h.index(r)
	if err != nil {
		return 0, nil, err
	}
	var req insertRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if err := ifMatch(r, func() (int, any, error) { return h.media(r, base) }); err != nil {
		return 0, nil, err
	}
	eject := req.Inserted != nil && !*req.Inserted || req.Image != nil && *req.Image == ""
	switch {
	case eject:
		h.cancelInsert(i)
		if _, err := h.drives.Eject(r.Context(), i, false); err != nil {
			return 0, nil, err
		}
		h.mu.Lock()
		delete(h.inserted, i)
		h.mu.Unlock()
	case req.Image != nil:
		wp := req.WriteProtected == nil || *req.WriteProtected
		upload := req.TransferMethod != nil && *req.TransferMethod == "Upload"
		status, v, err := h.doInsert(r, i, *req.Image, true, wp, upload)
		if err != nil || status == http.StatusAccepted {
			return status, v, err
		}
	default:
		return 0, nil, badRequest("PropertyMissing", "PATCH takes Image (and Inserted, WriteProtected)")
	}
	return h.media(r, base)
}
