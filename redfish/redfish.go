// Package redfish is a DMTF Redfish service for fleet tools (OpenStack
// Ironic through sushy, redfishtool): one System, one Manager, and a
// VirtualMedia member per drive, acting through drives, fs and fetch.
package redfish

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/msdav/msdav/auth"
	"github.com/msdav/msdav/conf"
	"github.com/msdav/msdav/drives"
	"github.com/msdav/msdav/fetch"
	"github.com/msdav/msdav/fs"
)

// Fixed ids: there is one System and one Manager.
const (
	root       = "/redfish/v1"
	systemID   = "0"
	managerID  = "bmc"
	systemPath = root + "/Systems/" + systemID
	managerURL = root + "/Managers/" + managerID
	sessions   = root + "/SessionService/Sessions"
)

// Checker says whether a user and password are valid (auth.Guard.Check).
type Checker interface {
	Check(user, password string) bool
}

// Options configure the service.
type Options struct {
	Log  *slog.Logger
	Auth Checker // nil: no credentials needed, as with auth off
	Conf conf.Redfish
	// Run runs a configured power command; tests replace it.
	Run func(cmd string) (string, error)
}

// Handler serves /redfish.
type Handler struct {
	store  *fs.Store
	drives *drives.Manager
	jobs   *fetch.Manager
	o      Options
	log    *slog.Logger
	r      *mux.Router

	mu        sync.Mutex         // guards the fields below
	boot      bootOverride       // echoed back: a KVM box does not own the boot order
	tokens    map[string]session // X-Auth-Token -> session
	inserted  map[int]insertion  // the URL each drive's image came from
	sources   map[string]source  // URL -> the store's copy of it
	active    map[int]*task      // drive -> its running insert
	tasks     map[string]*task
	taskOrder []string // task ids, oldest first

	uuid string // the service root's UUID

	ctx  context.Context // tasks run on after their request, until Close
	stop context.CancelFunc
	wg   sync.WaitGroup
}

type session struct {
	id, user string
	stamp    string // the user's credential at login (Stamper)
	created  time.Time
	seen     time.Time
}

// Stamper is a Checker that can also say which credential a user has now
// (auth.Guard.Stamp): a session ends when its user is removed or changes
// password.
type Stamper interface {
	Stamp(user string) (stamp string, ok bool)
}

// live reports whether s may still be used at now.
func (h *Handler) live(s session, now time.Time) bool {
	if now.Sub(s.seen) > sessionTimeout || now.Sub(s.created) > sessionLifetime {
		return false
	}
	if st, ok := h.o.Auth.(Stamper); ok {
		cur, exists := st.Stamp(s.user)
		return exists && cur == s.stamp
	}
	return true
}

// insertion remembers the URL an image was fetched from, to show it as the
// drive's Image while the drive still holds that image.
type insertion struct {
	url, path string
}

// sessionTimeout ends a session nobody used for this long.
const sessionTimeout = 30 * time.Minute

// sessionLifetime ends any session this long after its login, used or
// not; maxSessions caps them (a login past it ends the least recently used).
var (
	sessionLifetime = 8 * time.Hour
	maxSessions     = 64
)

// New returns the service.
func New(store *fs.Store, dm *drives.Manager, jobs *fetch.Manager, o Options) *Handler {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Run == nil {
		o.Run = runShell
	}
	h := &Handler{store: store, drives: dm, jobs: jobs, o: o, log: o.Log,
		tokens: map[string]session{}, inserted: map[int]insertion{},
		sources: map[string]source{}, active: map[int]*task{}, tasks: map[string]*task{},
		boot: bootOverride{Enabled: "Disabled", Target: "None", Mode: "UEFI"}}
	h.ctx, h.stop = context.WithCancel(context.Background())
	r := mux.NewRouter().StrictSlash(false)
	get := func(p string, f handlerFunc) {
		r.Path(p).Methods("GET", "HEAD").Handler(h.serve(f))
		r.Path(p+"/").Methods("GET", "HEAD").Handler(h.serve(f))
	}
	// The service root answers without credentials: clients read it first.
	r.Path("/redfish").Methods("GET").Handler(h.open(func(*http.Request) (int, any, error) {
		return 200, map[string]string{"v1": root + "/"}, nil
	}))
	r.Path(root).Methods("GET", "HEAD").Handler(h.open(h.serviceRoot))
	r.Path(root+"/").Methods("GET", "HEAD").Handler(h.open(h.serviceRoot))
	r.Path(root + "/odata").Methods("GET").Handler(h.open(h.odata))
	r.Path(root+"/$metadata").Methods("GET", "HEAD").HandlerFunc(h.metadata)
	get(accountService, h.accounts)
	get(accountService+"/Roles", h.roles)
	get(accountService+"/Roles/{id}", h.role)
	get(root+"/Systems", h.systems)
	get(systemPath, h.system)
	r.Path(systemPath).Methods("PATCH").Handler(h.serve(h.patchSystem))
	r.Path(systemPath + "/Actions/ComputerSystem.Reset").Methods("POST").Handler(h.serve(h.resetSystem))
	get(root+"/Managers", h.managers)
	get(managerURL, h.manager)
	for _, base := range []string{managerURL, systemPath} {
		b := base
		get(b+"/VirtualMedia", func(r *http.Request) (int, any, error) { return h.mediaCollection(b) })
		get(b+"/VirtualMedia/{i}", func(r *http.Request) (int, any, error) { return h.media(r, b) })
		r.Path(b + "/VirtualMedia/{i}").Methods("PATCH").Handler(h.serve(func(r *http.Request) (int, any, error) { return h.patchMedia(r, b) }))
		r.Path(b + "/VirtualMedia/{i}/Actions/VirtualMedia.InsertMedia").Methods("POST").Handler(h.serve(h.insert))
		r.Path(b + "/VirtualMedia/{i}/Actions/VirtualMedia.EjectMedia").Methods("POST").Handler(h.serve(h.eject))
	}
	get(root+"/TaskService", h.taskService)
	get(tasksPath, h.taskList)
	get(tasksPath+"/{id}", h.getTask)
	get(tasksPath+"/{id}/Monitor", h.taskMonitor)
	get(root+"/SessionService", h.sessionService)
	get(sessions, h.listSessions)
	r.Path(sessions).Methods("POST").Handler(h.open(h.login))
	r.Path(sessions + "/Members").Methods("POST").Handler(h.open(h.login))
	get(sessions+"/{id}", h.getSession)
	r.Path(sessions + "/{id}").Methods("DELETE").Handler(h.serve(h.logout))
	r.NotFoundHandler = h.open(func(r *http.Request) (int, any, error) {
		return 0, nil, &Error{Status: 404, Code: "Base.1.8.ResourceMissingAtURI", Msg: "no resource at " + r.URL.Path}
	})
	r.MethodNotAllowedHandler = h.open(func(r *http.Request) (int, any, error) {
		return 0, nil, &Error{Status: 405, Code: "Base.1.8.ActionNotSupported", Msg: r.Method + " is not supported on " + r.URL.Path}
	})
	h.uuid = serviceUUID()
	h.r = r
	return h
}

// Close cancels the inserts still fetching and waits for them to end.
func (h *Handler) Close() {
	h.stop()
	h.wg.Wait()
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("OData-Version", "4.0")
	if v := r.Header.Get("OData-Version"); v != "" && v != "4.0" {
		h.writeError(w, &Error{Status: http.StatusPreconditionFailed, Code: "Base.1.8.PreconditionFailed",
			Msg: "OData-Version " + v + " is not supported: this service speaks 4.0"})
		return
	}
	h.r.ServeHTTP(w, r)
}

// handlerFunc returns a status and a body, or an error to answer in
// Redfish's error format; the answer is written once.
type handlerFunc func(r *http.Request) (int, any, error)

// withHeaders is a body that comes with headers of its own (a session's token).
type withHeaders struct {
	body any
	hdr  map[string]string
}

// Error is a Redfish error: status, a message registry code, a message.
type Error struct {
	Status int
	Code   string
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func badRequest(code, format string, args ...any) *Error {
	return &Error{Status: 400, Code: "Base.1.8." + code, Msg: fmt.Sprintf(format, args...)}
}

// open answers without credentials.
func (h *Handler) open(f handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.write(w, r, f) })
}

// serve needs credentials: Basic (or kvmd's headers, as the API) or a
// session's X-Auth-Token.
func (h *Handler) serve(f handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="msdav"`)
			h.writeError(w, &Error{Status: 401, Code: "Base.1.8.NoValidSession", Msg: "credentials are needed: Basic auth or an X-Auth-Token from " + sessions})
			return
		}
		h.write(w, r, f)
	})
}

func (h *Handler) write(w http.ResponseWriter, r *http.Request, f handlerFunc) {
	status, v, err := f(r)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = fromStore(err)
		}
		if e.Status == http.StatusMethodNotAllowed {
			h.allow(w, r)
		}
		if r.Method == "GET" && e.Status >= 500 {
			// sushy retries a 5xx GET for 30 s; nothing a GET reads here
			// gets better by waiting.
			e.Status = 400
		}
		h.writeError(w, e)
		return
	}
	if wh, ok := v.(withHeaders); ok {
		for k, val := range wh.hdr {
			w.Header().Set(k, val)
		}
		v = wh.body
	}
	h.allow(w, r)
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	b = append(b, '\n')
	hd := w.Header()
	hd.Set("Content-Type", "application/json; charset=utf-8")
	if r.Method == "GET" || r.Method == "HEAD" {
		hd.Set("Cache-Control", "no-cache")
		if status == 200 {
			hd.Set("ETag", etag(b))
		}
		if s := describedBy(v); s != "" {
			hd.Set("Link", "<"+s+">; rel=describedby")
		}
	}
	w.WriteHeader(status)
	if r.Method != "HEAD" {
		w.Write(b)
	}
}

func (h *Handler) writeError(w http.ResponseWriter, e *Error) {
	if e.Status >= 500 {
		h.log.Error("redfish", "status", e.Status, "err", e.Msg)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(e.Status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code":    e.Code,
		"message": e.Msg,
		"@Message.ExtendedInfo": []map[string]any{{
			"@odata.type": "#Message.v1_1_1.Message",
			"MessageId":   e.Code,
			"Message":     e.Msg,
			"Severity":    map[bool]string{true: "Critical", false: "Warning"}[e.Status >= 500],
			"Resolution":  resolution(e),
		}},
	}})
}

func resolution(e *Error) string {
	switch e.Status {
	case 401:
		return "Send Basic credentials or create a session."
	case 404:
		return "Check the URI; GET " + root + " lists the services."
	case 409:
		return "Eject the medium or wait for the operation in progress, then retry."
	}
	return "Correct the request and resubmit it."
}

func (h *Handler) authorized(r *http.Request) bool {
	if h.o.Auth == nil {
		return true
	}
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		h.mu.Lock()
		defer h.mu.Unlock()
		s, ok := h.tokens[tok]
		now := time.Now()
		if !ok || !h.live(s, now) {
			delete(h.tokens, tok)
			return false
		}
		s.seen = now
		h.tokens[tok] = s
		return true
	}
	user, pass, ok := auth.Credentials(r)
	return ok && h.o.Auth.Check(user, pass)
}

func link(p string) map[string]string { return map[string]string{"@odata.id": p} }

func newToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func trimSlash(p string) string { return strings.TrimSuffix(p, "/") }
