package redfish

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/msdav/msdav/fetch"
	"github.com/msdav/msdav/fs"
)

const tasksPath = root + "/TaskService/Tasks"

// Task states (Redfish TaskState).
const (
	taskRunning   = "Running"
	taskCompleted = "Completed"
	taskException = "Exception"
	taskCancelled = "Cancelled"
)

// keepTasks is how many finished tasks stay listed; keepSources how many
// fetched URLs are remembered for revalidation.
const (
	keepTasks   = 50
	keepSources = 256
)

// insertWait is how long InsertMedia waits for its download before it
// answers 202 with a task to poll, when the client did not ask for that
// at once (Prefer: respond-async). Clients with a shorter timeout
// retry, and a retry joins the running download.
var insertWait = 10 * time.Minute

// task is one InsertMedia of a URL fetched into the store. It runs on
// after the request that started it (a client's timeout loses nothing),
// and the same InsertMedia again joins it instead of starting over.
type task struct {
	id     string
	drive  int
	url    string // as asked, credentials included: never shown whole
	start  time.Time
	cancel context.CancelFunc
	done   chan struct{}

	// Guarded by Handler.mu.
	inserted, writeProtected bool
	state                    string
	err                      *Error
	end                      time.Time
	jobID                    string
	reused                   bool // the store's copy was still current
}

// source is what the store's copy of a URL was fetched as: its validators
// (for a conditional GET) and the sha256 of the image, so a copy changed
// in the store since is not taken for the server's.
type source struct {
	rel, etag, modified, sum string
}

// insertURL fetches raw into the store in a task and attaches it, answering
// when the medium is in, or 202 with the task when it takes longer.
func (h *Handler) insertURL(r *http.Request, i int, raw string, inserted, writeProtected bool) (int, any, error) {
	// Refused before anything changes: the old medium stays.
	if _, _, err := h.jobs.Guarded(r.Context(), raw); err != nil {
		return 0, nil, err
	}
	t := h.startInsert(i, raw, inserted, writeProtected)
	if strings.Contains(strings.ToLower(r.Header.Get("Prefer")), "respond-async") {
		return h.accepted(t)
	}
	wait := time.NewTimer(insertWait)
	defer wait.Stop()
	select {
	case <-t.done:
		return h.outcome(t)
	case <-wait.C:
		return h.accepted(t)
	case <-r.Context().Done():
		// The client gave up; the task goes on for its retry to join.
		return 0, nil, r.Context().Err()
	}
}

// startInsert joins the drive's running task for the same URL (taking the
// newer flags), or cancels one for another URL and starts a new one.
func (h *Handler) startInsert(i int, raw string, inserted, writeProtected bool) *task {
	for {
		h.mu.Lock()
		old := h.active[i]
		if old == nil {
			break
		}
		if old.url == raw {
			old.inserted, old.writeProtected = inserted, writeProtected
			h.mu.Unlock()
			return old
		}
		h.mu.Unlock()
		old.cancel()
		<-old.done
	}
	defer h.mu.Unlock()
	ctx, cancel := context.WithCancel(h.ctx)
	t := &task{id: newToken()[:12], drive: i, url: raw, start: time.Now().UTC(), cancel: cancel,
		done: make(chan struct{}), inserted: inserted, writeProtected: writeProtected, state: taskRunning}
	h.active[i] = t
	h.tasks[t.id] = t
	h.taskOrder = append(h.taskOrder, t.id)
	for len(h.taskOrder) > keepTasks {
		oldest := h.tasks[h.taskOrder[0]]
		if oldest.state == taskRunning {
			break
		}
		delete(h.tasks, oldest.id)
		h.taskOrder = h.taskOrder[1:]
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.runInsert(ctx, t)
	}()
	return t
}

// cancelInsert stops drive i's running task, if any, and waits for it.
func (h *Handler) cancelInsert(i int) {
	h.mu.Lock()
	t := h.active[i]
	h.mu.Unlock()
	if t != nil {
		t.cancel()
		<-t.done
	}
}

func (h *Handler) runInsert(ctx context.Context, t *task) {
	defer close(t.done)
	err := h.fetchAndAttach(ctx, t)
	h.mu.Lock()
	if h.active[t.drive] == t {
		delete(h.active, t.drive)
	}
	t.end = time.Now().UTC()
	switch {
	case err == nil:
		t.state = taskCompleted
	case ctx.Err() != nil:
		t.state = taskCancelled
		t.err = &Error{Status: 409, Code: "Base.1.8.OperationCanceled", Msg: "the insert was canceled (an eject, another image for this drive, or msdav stopping); the drive kept its medium"}
	default:
		t.state = taskException
		var e *Error
		if !errors.As(err, &e) {
			e = fromStore(err)
		}
		t.err = e
	}
	h.mu.Unlock()
	h.log.Info("redfish: insert "+strings.ToLower(t.state), "task", t.id, "drive", t.drive, "url", fetch.Redact(t.url), "err", err)
}

// fetchAndAttach brings the image at t.url into the store (or finds the
// store's copy still current) and attaches it. Whatever the drive held
// stays in, and its image in the store, until the new image is whole.
func (h *Handler) fetchAndAttach(ctx context.Context, t *task) error {
	_, client, err := h.jobs.Guarded(ctx, t.url)
	if err != nil {
		return err
	}
	u, _ := url.Parse(t.url)
	name := path.Base(u.Path)
	if rel, err := fs.ImageName(name); err != nil || rel != name {
		name = fmt.Sprintf("drive%d.iso", t.drive)
	}
	rel := fetchFolder + "/" + name

	h.mu.Lock()
	src, known := h.sources[t.url]
	h.mu.Unlock()
	if known {
		if im, ok := h.store.Image(src.rel); !ok || !im.Complete || src.sum == "" || im.SHA256 != src.sum {
			known = false // changed or gone in the store since
		}
	}
	v, fresh, err := h.ask(ctx, client, t.url, src, known)
	if err != nil {
		return err
	}
	final := src.rel
	if !fresh {
		if final, v.sum, err = h.download(ctx, t, rel); err != nil {
			return err
		}
	} else {
		v = src
		h.mu.Lock()
		t.reused = true
		h.mu.Unlock()
	}
	v.rel = final
	h.mu.Lock()
	for u, old := range h.sources {
		if old.rel == final || len(h.sources) >= keepSources {
			delete(h.sources, u) // one URL per copy; a bounded memory
		}
	}
	h.sources[t.url] = v
	inserted, wp := t.inserted, t.writeProtected
	h.mu.Unlock()
	if !inserted {
		return nil
	}
	return h.attach(ctx, t.drive, final, wp, t.url)
}

// ask sends one GET for the first byte: with the validators of the store's
// copy (known), a 304 says the copy is current; otherwise the answer
// gives the validators for the next time. A dead server or an error
// status fails here, before anything in the store changes.
func (h *Handler) ask(ctx context.Context, client *http.Client, raw string, src source, known bool) (source, bool, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", raw, nil)
	if err != nil {
		return source{}, false, badRequest("ActionParameterValueFormatError", "Image %s: %v", fetch.Redact(raw), err)
	}
	req.Header.Set("User-Agent", "msdav-redfish")
	req.Header.Set("Range", "bytes=0-0")
	if known && src.etag != "" {
		req.Header.Set("If-None-Match", src.etag)
	}
	if known && src.modified != "" {
		req.Header.Set("If-Modified-Since", src.modified)
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, fetch.ErrRefused) {
			return source{}, false, err
		}
		return source{}, false, badRequest("ActionParameterValueFormatError", "could not fetch %s: %v", fetch.Redact(raw), err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && known:
		return src, true, nil
	case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent:
		v := source{etag: resp.Header.Get("ETag"), modified: resp.Header.Get("Last-Modified")}
		return v, false, nil
	}
	return source{}, false, badRequest("ActionParameterValueFormatError", "could not fetch %s: the server answered %s", fetch.Redact(raw), resp.Status)
}

// download runs a fetch job into rel, or beside it when rel holds an
// older copy, and returns where the whole image is and its sha256. The
// older copy is replaced only now, the new one being whole.
func (h *Handler) download(ctx context.Context, t *task, rel string) (string, string, error) {
	if err := h.store.MkdirAll(ctx, fetchFolder); err != nil {
		return "", "", err
	}
	target := rel
	if _, err := h.store.Root().Lstat(rel); err == nil {
		target = fmt.Sprintf("%s/incoming-%s.part", fetchFolder, t.id)
	} else if _, busy := h.store.Uploading(rel); busy {
		target = fmt.Sprintf("%s/incoming-%s.part", fetchFolder, t.id)
	}
	job, err := h.jobs.Start(fetch.Request{URL: t.url, Path: target})
	if err != nil {
		return "", "", err
	}
	h.mu.Lock()
	t.jobID = job.ID
	h.mu.Unlock()
	tk := time.NewTicker(100 * time.Millisecond)
	defer tk.Stop()
	var sum string
wait:
	for {
		select {
		case <-ctx.Done():
			h.jobs.Cancel(job.ID)
			return "", "", ctx.Err()
		case <-tk.C:
		}
		j, ok := h.jobs.Get(job.ID)
		if !ok {
			return "", "", fmt.Errorf("the download of %s vanished", fetch.Redact(t.url))
		}
		switch j.State {
		case fetch.Done:
			sum = j.SHA256
			break wait
		case fetch.Failed, fetch.Canceled:
			return "", "", badRequest("ActionParameterValueFormatError", "could not fetch %s: %s", fetch.Redact(t.url), j.Error)
		}
	}
	if target == rel {
		return rel, sum, nil
	}
	// The new image is whole: the drive's older copy goes out, the new
	// one takes its name. Held by another drive, the name stays with
	// the old copy and the new one keeps its own.
	if d, err := h.drives.Drive(t.drive); err == nil && d.Image != nil && *d.Image == rel {
		if _, err := h.drives.Eject(ctx, t.drive, false); err != nil {
			h.store.RemoveAll(context.WithoutCancel(ctx), target)
			return "", "", err
		}
	}
	if err := h.store.Rename(ctx, target, rel); err != nil {
		h.log.Info("redfish: the older copy stays under its name", "image", rel, "new", target, "err", err)
		return target, sum, nil
	}
	return rel, sum, nil
}

// outcome is the answer for a finished task: 204, or its error.
func (h *Handler) outcome(t *task) (int, any, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t.err != nil {
		e := *t.err
		return 0, nil, &e
	}
	return http.StatusNoContent, nil, nil
}

// accepted answers 202 with the task and its monitor in Location.
func (h *Handler) accepted(t *task) (int, any, error) {
	return http.StatusAccepted, withHeaders{body: h.taskJSON(t), hdr: map[string]string{"Location": tasksPath + "/" + t.id + "/Monitor"}}, nil
}

func (h *Handler) taskJSON(t *task) map[string]any {
	h.mu.Lock()
	state, e, end, jobID, reused := t.state, t.err, t.end, t.jobID, t.reused
	h.mu.Unlock()
	self := tasksPath + "/" + t.id
	v := map[string]any{
		"@odata.type": "#Task.v1_4_3.Task",
		"@odata.id":   self,
		"Id":          t.id,
		"Name":        fmt.Sprintf("Insert %s into virtual media %d", fetch.Redact(t.url), t.drive),
		"Description": "Fetches the image into msdav's store, then attaches it",
		"TaskState":   state,
		"TaskStatus":  "OK",
		"StartTime":   t.start.Format(time.RFC3339),
		"TaskMonitor": self + "/Monitor",
		"HidePayload": true,
		"Messages":    []any{},
	}
	pct := 0
	if j, ok := h.jobs.Get(jobID); ok && j.Expected != nil && *j.Expected > 0 {
		pct = int(j.Received * 100 / *j.Expected)
	}
	switch state {
	case taskCompleted:
		pct = 100
		msg := "The image was fetched and inserted."
		if reused {
			msg = "The store's copy was still current (the server answered 304 Not Modified): inserted without a download."
		}
		v["Messages"] = []any{map[string]string{"MessageId": "Base.1.8.Success", "Message": msg, "Severity": "OK"}}
	case taskException, taskCancelled:
		v["TaskStatus"] = "Critical"
		if state == taskCancelled {
			v["TaskStatus"] = "Warning"
		}
		v["Messages"] = []any{map[string]string{"MessageId": e.Code, "Message": e.Msg, "Severity": v["TaskStatus"].(string)}}
	}
	v["PercentComplete"] = min(pct, 100)
	if !end.IsZero() {
		v["EndTime"] = end.Format(time.RFC3339)
	}
	return v
}

func (h *Handler) taskFor(r *http.Request) (*task, error) {
	h.mu.Lock()
	t, ok := h.tasks[mux.Vars(r)["id"]]
	h.mu.Unlock()
	if !ok {
		return nil, &Error{Status: 404, Code: "Base.1.8.ResourceMissingAtURI", Msg: "no task " + mux.Vars(r)["id"] + " (finished tasks are kept while they are among the last " + fmt.Sprint(keepTasks) + ")"}
	}
	return t, nil
}

func (h *Handler) taskService(*http.Request) (int, any, error) {
	return 200, map[string]any{
		"@odata.type":                     "#TaskService.v1_2_0.TaskService",
		"@odata.id":                       root + "/TaskService",
		"Id":                              "TaskService",
		"Name":                            "Tasks",
		"ServiceEnabled":                  true,
		"CompletedTaskOverWritePolicy":    "Oldest",
		"LifeCycleEventOnTaskStateChange": false,
		"Status":                          map[string]string{"State": "Enabled", "Health": "OK"},
		"Tasks":                           link(tasksPath),
	}, nil
}

func (h *Handler) taskList(*http.Request) (int, any, error) {
	h.mu.Lock()
	ids := slices.Clone(h.taskOrder)
	h.mu.Unlock()
	for i, id := range ids {
		ids[i] = tasksPath + "/" + id
	}
	return 200, collection(tasksPath, "TaskCollection", "Tasks", ids...), nil
}

// getTask answers the Task: 202 while it runs, as clients that poll the
// task itself for its monitor (sushy) expect, then 200.
func (h *Handler) getTask(r *http.Request) (int, any, error) {
	t, err := h.taskFor(r)
	if err != nil {
		return 0, nil, err
	}
	select {
	case <-t.done:
		return 200, h.taskJSON(t), nil
	default:
		return http.StatusAccepted, h.taskJSON(t), nil
	}
}

// taskMonitor answers 202 with the task while it runs, then what the
// action would have answered: 204, or its error.
func (h *Handler) taskMonitor(r *http.Request) (int, any, error) {
	t, err := h.taskFor(r)
	if err != nil {
		return 0, nil, err
	}
	select {
	case <-t.done:
		return h.outcome(t)
	default:
		return h.accepted(t)
	}
}
