package kvmd

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net/http"
	"net/url"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/msdav/msdav/drives"
	"github.com/msdav/msdav/fetch"
	"github.com/msdav/msdav/fs"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// exists reports whether the store holds the image name, complete.
func (h *Handler) exists(name string) bool {
	fi, err := h.store.Root().Stat(name)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	_, uploading := h.store.Uploading(name)
	return !uploading
}

func (h *Handler) setParams(w http.ResponseWriter, r *http.Request) (any, error) {
	if err := h.idle(); err != nil {
		return nil, err
	}
	q := r.URL.Query()
	cdrom, hasCD, err := boolParam(r, "cdrom")
	if err != nil {
		return nil, err
	}
	rw, hasRW, err := boolParam(r, "rw")
	if err != nil {
		return nil, err
	}
	var name string
	hasImage := q.Has("image")
	if hasImage && q.Get("image") != "" {
		if name, err = imageName(q.Get("image")); err != nil {
			return nil, err
		}
	}
	if err := h.disconnected(); err != nil {
		return nil, err
	}
	sel := h.drives.Selected(drive)
	if hasImage {
		if name != "" {
			// The drive manager's rule, as every attach is checked.
			if _, err := h.drives.CheckImage(name); errors.Is(err, drives.ErrConflict) {
				// Still uploading: kvmd knows no complete image by that name.
				return nil, kerr("MsdUnknownImageError", "%s", err.Error())
			} else if err != nil {
				return nil, err
			}
		}
		sel.Image = name
	}
	// kvmd's rule: rw is forced false for a CD or an image that cannot be
	// written; the drive stays what it was asked to be.
	if hasCD {
		sel.CDROM = cdrom
	}
	if hasRW {
		sel.RW = rw
	}
	if sel.CDROM || (sel.Image != "" && !writableImage(sel.Image, h.partWritable(r, sel.Image))) {
		sel.RW = false
	}
	h.drives.Select(drive, sel)
	return nil, nil
}

func (h *Handler) setConnected(w http.ResponseWriter, r *http.Request) (any, error) {
	if err := h.idle(); err != nil {
		return nil, err
	}
	on, present, err := boolParam(r, "connected")
	if err == nil && !present {
		err = kerr("ValidatorError", "the argument connected is required (1 or 0)")
	}
	if err != nil {
		return nil, err
	}
	_, isOn, err := h.connected()
	if err != nil {
		return nil, err
	}
	if !on {
		if !isOn {
			return nil, kerr("MsdDisconnectedError", "drive %d is already disconnected", drive)
		}
		if _, err := h.drives.Eject(r.Context(), drive, false); err != nil {
			return nil, err
		}
		return nil, nil
	}
	if isOn {
		return nil, kerr("MsdConnectedError", "drive %d is already connected", drive)
	}
	sel := h.drives.Selected(drive)
	if sel.Image == "" {
		return nil, kerr("MsdImageNotSelected", "no image selected: set_params?image=NAME first")
	}
	// kvmd's rule: rw is false for a CD or an .iso (the selection may have
	// come from Redfish). The drive manager checks the rest, as for every
	// other attach.
	req := drives.Request{Drive: drive, Image: sel.Image, CDROM: sel.CDROM, RW: sel.RW && !sel.CDROM && writableImage(sel.Image, true)}
	if _, err := h.drives.Attach(r.Context(), req); err != nil {
		return nil, err
	}
	return nil, nil
}

func (h *Handler) remove(w http.ResponseWriter, r *http.Request) (any, error) {
	if err := h.idle(); err != nil {
		return nil, err
	}
	name, err := imageName(r.URL.Query().Get("image"))
	if err != nil {
		return nil, err
	}
	if err := h.disconnected(); err != nil {
		return nil, err
	}
	if fi, err := h.store.Root().Stat(name); err != nil || !fi.Mode().IsRegular() {
		return nil, kerr("MsdUnknownImageError", "no image %q in the store", name)
	}
	if err := h.store.RemoveAll(r.Context(), name); err != nil {
		return nil, err
	}
	if sel := h.drives.Selected(drive); sel.Image == name {
		sel.Image = ""
		h.drives.Select(drive, sel)
	}
	return nil, nil
}

// reset ejects drive 0 (breaking a host's lock) and keeps the selection,
// as kvmd does. As in kvmd, failures are logged, not answered.
func (h *Handler) reset(w http.ResponseWriter, r *http.Request) (any, error) {
	if err := h.idle(); err != nil {
		return nil, err
	}
	if h.drives.Available() == nil {
		if _, err := h.drives.Eject(r.Context(), drive, true); err != nil {
			h.log.Warn("MSD reset: cannot eject", "drive", drive, "err", err)
		}
	}
	return nil, nil
}

// partWritable reports whether the part holding name can be written.
func (h *Handler) partWritable(r *http.Request, name string) bool {
	p, err := h.store.Usage(r.Context(), name)
	return err == nil && p.Writable && p.Available
}

// track shows an upload or download under storage.uploading or downloading.
func (h *Handler) track(slot **progress, name string, size int64) (*progress, func()) {
	p := &progress{name: name, size: size}
	h.mu.Lock()
	*slot = p
	h.mu.Unlock()
	return p, func() {
		h.mu.Lock()
		if *slot == p {
			*slot = nil
		}
		h.mu.Unlock()
	}
}

// countingWriter counts what passes into p.
type countingWriter struct {
	w io.Writer
	p *progress
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.p.done.Add(int64(n))
	return n, err
}

func (h *Handler) read(w http.ResponseWriter, r *http.Request) (any, error) {
	name, err := imageName(r.URL.Query().Get("image"))
	if err != nil {
		return nil, err
	}
	suffix := ""
	switch c := r.URL.Query().Get("compress"); c {
	case "", "none":
	case "lzma":
		suffix = ".xz"
	case "zstd":
		suffix = ".zst"
	default:
		return nil, kerr("ValidatorError", "compress=%q: want none, lzma or zstd", c)
	}
	if err := h.disconnected(); err != nil {
		return nil, err
	}
	if !h.exists(name) {
		return nil, kerr("MsdUnknownImageError", "no complete image %q in the store", name)
	}
	release, err := h.take()
	if err != nil {
		return nil, err
	}
	defer release()
	f, err := h.store.Root().Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	p, done := h.track(&h.reading, name, fi.Size())
	defer done()
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Content-Disposition", "attachment; filename*=UTF-8''"+extValue(path.Base(name)+suffix))
	var out io.WriteCloser
	switch suffix {
	case "":
		hd.Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
		w.WriteHeader(200)
		io.Copy(countingWriter{w, p}, f) // a client that hangs up just ends it
		return streamed{}, nil
	case ".xz":
		out, err = lzmaWriter(r.Context(), w)
	case ".zst":
		out, err = zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest))
	}
	if err != nil {
		return nil, err
	}
	w.WriteHeader(200)
	_, err = io.Copy(out, io.TeeReader(f, countingWriter{io.Discard, p}))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		h.log.Info("MSD read ended early", "image", name, "err", err)
	}
	return streamed{}, nil
}

// lzmaWriter compresses to w as xz -1 -T1 does, through the system's xz
// when there is one: ulikunitz/xz's encoder took 3.2 times as long on a
// 20 MB image (58.8 s against 18.2 s on a loaded 2-core box; 104 s on a
// Pi), holding kvmd's only transfer slot all along. xz -1 needs about
// 10 MiB. Without xz: ulikunitz with a hash-table match finder and a
// 1 MiB dictionary (27.9 s there, 1.5x).
func lzmaWriter(ctx context.Context, w io.Writer) (io.WriteCloser, error) {
	bin, err := exec.LookPath("xz")
	if err != nil {
		return xz.WriterConfig{Matcher: lzma.HashTable4, DictCap: 1 << 20}.NewWriter(w)
	}
	cmd := exec.CommandContext(ctx, bin, "-1", "-T1", "-c", "-q")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	return &xzProcess{in: in, out: out, w: w, cmd: cmd, copied: make(chan error, 1)}, nil
}

// xzProcess is the xz child: Write feeds its stdin, and its stdout is
// copied to w from the first Write on (after the handler wrote the
// status: the copy must not race with it). Close waits for it to end.
type xzProcess struct {
	in     io.WriteCloser
	out    io.Reader
	w      io.Writer
	cmd    *exec.Cmd
	once   sync.Once
	copied chan error
}

func (x *xzProcess) start() {
	x.once.Do(func() {
		go func() {
			_, err := io.Copy(x.w, x.out)
			if err != nil {
				io.Copy(io.Discard, x.out) // let xz finish or fail on its own
			}
			x.copied <- err
		}()
	})
}

func (x *xzProcess) Write(p []byte) (int, error) {
	x.start()
	return x.in.Write(p)
}

func (x *xzProcess) Close() error {
	x.start()
	x.in.Close()
	cerr := <-x.copied
	if err := x.cmd.Wait(); err != nil {
		return fmt.Errorf("xz: %w", err)
	}
	return cerr
}

// extValue percent-encodes s for an RFC 5987 ext-value: every byte but
// attr-char (url.PathEscape leaves "=", ";" and more as they are).
func extValue(s string) string {
	const attr = "!#$&+-.^_`|~"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(attr, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// target is where a write or write_remote puts name: under prefix, a part.
func target(prefix, name string) (string, error) {
	return imageName(strings.Trim(prefix, "/") + "/" + name)
}

func (h *Handler) write(w http.ResponseWriter, r *http.Request) (any, error) {
	q := r.URL.Query()
	if q.Get("image") == "" {
		return nil, kerr("ValidatorError", "the argument image is required")
	}
	name, err := target(q.Get("prefix"), q.Get("image"))
	if err != nil {
		return nil, err
	}
	if _, _, err := boolParam(r, "remove_incomplete"); err != nil {
		return nil, err
	}
	if r.ContentLength < 0 {
		return nil, kerr("ValidatorError", "Content-Length is required (send the image as the raw request body)")
	}
	if err := h.disconnected(); err != nil {
		return nil, err
	}
	release, err := h.take()
	if err != nil {
		return nil, err
	}
	defer release()
	p, done := h.track(&h.uploading, name, r.ContentLength)
	defer done()
	// kvmd makes the prefix's folders and never replaces an image. Unlike
	// kvmd, nothing incomplete is kept (atomic uploads).
	o := fs.ReceiveOptions{Image: true, MakeParents: true, NoReplace: true, Progress: func(n int) { p.done.Add(int64(n)) }}
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		// kvmd's server undoes it as aiohttp does; PiKVM's own docs use it.
		o.Format = "gzip"
		o.Decode = func(r io.Reader) (io.ReadCloser, error) { return gzip.NewReader(r) }
	}
	got, err := h.store.Receive(r.Context(), name, r.Body, r.ContentLength, o)
	if err != nil {
		return nil, receiveError(err)
	}
	return writeInfo(name, r.ContentLength, got.Size), nil
}

// receiveError names the store's verdict on an upload as kvmd names its
// own errors, keeping the store's message.
func receiveError(err error) error {
	var re *fs.ReceiveError
	if !errors.As(err, &re) {
		return err
	}
	e := *translate(re.Err)
	switch {
	case errors.Is(re.Err, iofs.ErrExist):
		e = *kerr("MsdImageExistsError", "")
	case e.Name == "UnknownError" && re.Status < 500:
		e = *kerr("MsdOperationError", "")
	}
	e.Msg = re.Msg
	return &e
}

// folders makes the folders of name, as kvmd does for a write.
func (h *Handler) folders(r *http.Request, name string) error {
	if dir := path.Dir(name); dir != "." {
		return h.store.MkdirAll(r.Context(), dir)
	}
	return nil
}

func writeInfo(name string, size, written int64) map[string]any {
	return map[string]any{"image": map[string]any{"name": name, "size": size, "written": written}}
}

// reportEvery is how often write_remote streams a progress line, as kvmd.
const reportEvery = time.Second

func (h *Handler) writeRemote(w http.ResponseWriter, r *http.Request) (any, error) {
	q := r.URL.Query()
	raw := q.Get("url")
	if u, err := url.Parse(raw); raw == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, kerr("ValidatorError", "the argument url must be an http or https URL, got %q", raw)
	}
	for _, b := range []string{"insecure", "remove_incomplete"} {
		if _, _, err := boolParam(r, b); err != nil {
			return nil, err
		}
	}
	var timeout time.Duration // 0: msdav's own connect and header timeouts
	if t := q.Get("timeout"); t != "" {
		v, err := strconv.ParseFloat(t, 64)
		if err != nil || v <= 0 || v > 3600 {
			return nil, kerr("ValidatorError", "timeout=%q: want a positive number of seconds", t)
		}
		timeout = time.Duration(v * float64(time.Second))
	}
	var name string
	if img := strings.TrimSpace(q.Get("image")); img != "" {
		var err error
		if name, err = target(q.Get("prefix"), img); err != nil {
			return nil, err
		}
	}
	if h.jobs == nil {
		return nil, kerr("MsdOperationError", "downloads are not set up in this server")
	}
	if err := h.disconnected(); err != nil {
		return nil, err
	}
	release, err := h.take()
	if err != nil {
		return nil, err
	}
	defer release()
	if name != "" {
		if err := h.folders(r, name); err != nil {
			return nil, err
		}
	}
	// kvmd stores what the server sends, compressed or not.
	job, err := h.start(r, fetch.Request{URL: raw, Path: name, Decompress: "none"}, timeout)
	if err != nil {
		return nil, err
	}
	size := int64(0)
	if job.Expected != nil {
		size = *job.Expected
	}
	p, done := h.track(&h.uploading, job.Path, size)
	defer done()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(200)
	fl, _ := w.(http.Flusher)
	line := func(v any) {
		b, _ := jsonLine(v)
		w.Write(b)
		if fl != nil {
			fl.Flush()
		}
	}
	info := func(j fetch.Job) {
		sz := int64(0)
		if j.Expected != nil {
			sz = *j.Expected
		}
		p.done.Store(j.Written)
		line(map[string]any{"ok": true, "result": writeInfo(j.Path, sz, j.Written)})
	}
	info(job)
	t := time.NewTicker(reportEvery)
	defer t.Stop()
	for {
		select {
		case <-r.Context().Done():
			// As in kvmd, the download lives as long as its request.
			h.jobs.Cancel(job.ID)
			return streamed{}, nil
		case <-t.C:
		}
		j, ok := h.jobs.Get(job.ID)
		if !ok {
			line(envelopeError(kerr("MsdOperationError", "the download job vanished")))
			return streamed{}, nil
		}
		info(j)
		switch j.State {
		case fetch.Done:
			return streamed{}, nil
		case fetch.Failed, fetch.Canceled:
			msg := j.Error
			if msg == "" {
				msg = "the download was " + j.State
			}
			line(envelopeError(kerr("MsdOperationError", "%s", msg)))
			return streamed{}, nil
		}
	}
}

// start starts the download; with a timeout, as kvmd's, a server that has
// not answered by then fails it (the job, once it starts, is canceled and
// leaves nothing).
func (h *Handler) start(r *http.Request, req fetch.Request, timeout time.Duration) (fetch.Job, error) {
	if timeout <= 0 {
		return h.jobs.Start(req)
	}
	type started struct {
		job fetch.Job
		err error
	}
	ch := make(chan started, 1)
	go func() {
		j, err := h.jobs.Start(req)
		ch <- started{j, err}
	}()
	abandon := func() {
		go func() {
			s := <-ch
			if s.err != nil {
				return
			}
			before, _ := h.jobs.Get(s.job.ID)
			// A running job is canceled and leaves nothing; a finished one
			// is only forgotten, and its image stays: removed here (a fetch
			// never replaces a file, so what is at its path is its own).
			h.jobs.Cancel(s.job.ID)
			after, listed := h.jobs.Get(s.job.ID)
			if listed && after.State == fetch.Done || !listed && (before.State == fetch.Done || before.State == fetch.Running) {
				h.store.RemoveAll(context.Background(), s.job.Path)
			}
		}()
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case s := <-ch:
		return s.job, s.err
	case <-t.C:
		abandon()
		u, _ := url.Parse(req.URL)
		return fetch.Job{}, kerr("MsdOperationError", "%s did not answer within timeout=%s", u.Redacted(), timeout)
	case <-r.Context().Done():
		abandon()
		return fetch.Job{}, r.Context().Err()
	}
}

// jsonLine is one NDJSON line, ended with CRLF as kvmd ends them.
func jsonLine(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	return append(b, '\r', '\n'), err
}
