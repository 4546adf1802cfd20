package redfish

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/msdav/msdav/conf"
	"github.com/msdav/msdav/problem"
)

func (h *Handler) serviceRoot(*http.Request) (int, any, error) {
	return 200, map[string]any{
		"@odata.type":    "#ServiceRoot.v1_11_0.ServiceRoot",
		"@odata.id":      root,
		"Id":             "RootService",
		"UUID":           h.uuid,
		"Name":           "msdav Redfish service",
		"RedfishVersion": "1.11.0",
		"Product":        "msdav",
		"Vendor":         "msdav",
		"Systems":        link(root + "/Systems"),
		"Managers":       link(root + "/Managers"),
		"SessionService": link(root + "/SessionService"),
		"Tasks":          link(root + "/TaskService"),
		"AccountService": link(accountService),
		"Links":          map[string]any{"Sessions": link(sessions)},
	}, nil
}

func (h *Handler) odata(*http.Request) (int, any, error) {
	var v []map[string]string
	for _, n := range []string{"Systems", "Managers", "SessionService"} {
		v = append(v, map[string]string{"name": n, "kind": "Singleton", "url": root + "/" + n})
	}
	return 200, map[string]any{"@odata.context": root + "/$metadata", "value": v}, nil
}

func collection(path, typ, name string, members ...string) map[string]any {
	ms := make([]map[string]string, len(members))
	for i, m := range members {
		ms[i] = link(m)
	}
	return map[string]any{
		"@odata.type":         "#" + typ + "." + typ,
		"@odata.id":           path,
		"Name":                name,
		"Members":             ms,
		"Members@odata.count": len(ms),
	}
}

func (h *Handler) systems(*http.Request) (int, any, error) {
	return 200, collection(root+"/Systems", "ComputerSystemCollection", "Computer systems", systemPath), nil
}

func (h *Handler) managers(*http.Request) (int, any, error) {
	return 200, collection(root+"/Managers", "ManagerCollection", "Managers", managerURL), nil
}

// bootOverride is the System's Boot override, stored and echoed: msdav
// does not own the target's boot order. A client that needs it honoured
// sets it on the host's BMC or firmware too.
type bootOverride struct {
	Enabled, Target, Mode string
}

var (
	bootTargets = []string{"None", "Pxe", "Floppy", "Cd", "Usb", "Hdd", "BiosSetup", "Utilities", "Diags", "UefiShell", "UefiTarget", "SDCard", "UefiHttp", "RemoteDrive"}
	bootEnabled = []string{"Disabled", "Once", "Continuous"}
	bootModes   = []string{"Legacy", "UEFI"}
)

func (h *Handler) resetTypes() []string {
	out := []string{} // a list, never null: sushy warns on null
	for _, t := range conf.ResetTypes {
		if _, ok := h.o.Conf.Reset[t]; ok {
			out = append(out, t)
		}
	}
	return out
}

func (h *Handler) system(*http.Request) (int, any, error) {
	h.mu.Lock()
	b := h.boot
	h.mu.Unlock()
	var power any // null: msdav does not know
	if h.o.Conf.PowerState != "" {
		if out, err := h.o.Run(h.o.Conf.PowerState); err == nil {
			switch s := strings.TrimSpace(out); s {
			case "On", "Off":
				power = s
			default:
				h.log.Warn("redfish.power_state printed neither On nor Off", "output", s)
			}
		}
	}
	return 200, map[string]any{
		"@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem",
		"@odata.id":   systemPath,
		"Id":          systemID,
		"Name":        "Target host",
		"SystemType":  "Physical",
		"Description": "The host msdav's USB drives are plugged into",
		"PowerState":  power,
		"Status":      map[string]string{"State": "Enabled", "Health": "OK"},
		"Boot": map[string]any{
			"BootSourceOverrideEnabled":                        b.Enabled,
			"BootSourceOverrideTarget":                         b.Target,
			"BootSourceOverrideMode":                           b.Mode,
			"BootSourceOverrideTarget@Redfish.AllowableValues": bootTargets,
		},
		"VirtualMedia": link(systemPath + "/VirtualMedia"),
		"Actions": map[string]any{"#ComputerSystem.Reset": map[string]any{
			"target":                            systemPath + "/Actions/ComputerSystem.Reset",
			"ResetType@Redfish.AllowableValues": h.resetTypes(),
		}},
		"Links": map[string]any{"ManagedBy": []map[string]string{link(managerURL)}},
	}, nil
}

// decode reads a JSON body into v; an empty body leaves v as it is.
func decode(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return badRequest("MalformedJSON", "reading the body: %v", err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return badRequest("MalformedJSON", "the body is not the JSON expected: %v", err)
	}
	return nil
}

func (h *Handler) patchSystem(r *http.Request) (int, any, error) {
	var req struct {
		Boot *struct {
			BootSourceOverrideEnabled *string
			BootSourceOverrideTarget  *string
			BootSourceOverrideMode    *string
		}
	}
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if req.Boot == nil {
		return 0, nil, badRequest("PropertyNotWritable", "only Boot can be changed on this System")
	}
	if err := ifMatch(r, func() (int, any, error) { return h.system(r) }); err != nil {
		return 0, nil, err
	}
	h.mu.Lock()
	b := h.boot
	h.mu.Unlock()
	for _, f := range []struct {
		v       *string
		allowed []string
		dst     *string
		name    string
	}{
		{req.Boot.BootSourceOverrideEnabled, bootEnabled, &b.Enabled, "BootSourceOverrideEnabled"},
		{req.Boot.BootSourceOverrideTarget, bootTargets, &b.Target, "BootSourceOverrideTarget"},
		{req.Boot.BootSourceOverrideMode, bootModes, &b.Mode, "BootSourceOverrideMode"},
	} {
		if f.v == nil {
			continue
		}
		if !slices.Contains(f.allowed, *f.v) {
			return 0, nil, badRequest("PropertyValueNotInList", "%s %q is not one of %s", f.name, *f.v, strings.Join(f.allowed, ", "))
		}
		*f.dst = *f.v
	}
	h.mu.Lock()
	h.boot = b
	h.mu.Unlock()
	return h.system(r)
}

func (h *Handler) resetSystem(r *http.Request) (int, any, error) {
	var req struct{ ResetType string }
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if req.ResetType == "" {
		return 0, nil, badRequest("ActionParameterMissing", "ResetType is missing (one of %s)", strings.Join(h.resetTypes(), ", "))
	}
	cmd, ok := h.o.Conf.Reset[req.ResetType]
	if !ok {
		if len(h.o.Conf.Reset) == 0 {
			return 0, nil, badRequest("ActionNotSupported", "power is not managed by msdav: name commands under [redfish.reset] in its config (a PiKVM ATX call, an ipmitool line)")
		}
		return 0, nil, badRequest("ActionParameterValueNotInList", "ResetType %q is not configured here (configured: %s)", req.ResetType, strings.Join(h.resetTypes(), ", "))
	}
	if out, err := h.o.Run(cmd); err != nil {
		return 0, nil, &Error{Status: 500, Code: "Base.1.8.GeneralError", Msg: fmt.Sprintf("redfish.reset.%s failed: %v: %s", req.ResetType, err, strings.TrimSpace(out))}
	}
	return http.StatusNoContent, nil, nil
}

// runShell runs a configured command and returns what it printed.
func runShell(cmd string) (string, error) {
	c := exec.Command("/bin/sh", "-c", cmd)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = c.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		if c.Process != nil {
			c.Process.Kill()
		}
		<-done
		err = errors.New("timed out after 30 s")
	}
	return string(out), err
}

func (h *Handler) manager(*http.Request) (int, any, error) {
	host, _ := os.Hostname()
	return 200, map[string]any{
		"@odata.type":  "#Manager.v1_10_0.Manager",
		"@odata.id":    managerURL,
		"Id":           managerID,
		"Name":         "msdav on " + host,
		"ManagerType":  "BMC",
		"Model":        "msdav virtual media",
		"Status":       map[string]string{"State": "Enabled", "Health": "OK"},
		"VirtualMedia": link(managerURL + "/VirtualMedia"),
		"Links":        map[string]any{"ManagerForServers": []map[string]string{link(systemPath)}},
	}, nil
}

func (h *Handler) sessionService(*http.Request) (int, any, error) {
	return 200, map[string]any{
		"@odata.type":    "#SessionService.v1_1_8.SessionService",
		"@odata.id":      root + "/SessionService",
		"Id":             "SessionService",
		"Name":           "Sessions",
		"ServiceEnabled": true,
		"SessionTimeout": int(sessionTimeout / time.Second),
		"Sessions":       link(sessions),
	}, nil
}

func (h *Handler) listSessions(*http.Request) (int, any, error) {
	h.mu.Lock()
	h.pruneSessions(time.Now(), false)
	var ids []string
	for _, s := range h.tokens {
		ids = append(ids, sessions+"/"+s.id)
	}
	h.mu.Unlock()
	slices.Sort(ids)
	return 200, collection(sessions, "SessionCollection", "Sessions", ids...), nil
}

// login creates a session: sushy and Ironic prefer X-Auth-Token to sending
// the password with every request.
func (h *Handler) login(r *http.Request) (int, any, error) {
	var req struct{ UserName, Password string }
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if h.o.Auth != nil && !h.o.Auth.Check(req.UserName, req.Password) {
		return 0, nil, &Error{Status: 401, Code: "Base.1.8.NoValidSession", Msg: "wrong user name or password"}
	}
	now := time.Now()
	s := session{id: newToken()[:16], user: req.UserName, created: now, seen: now}
	if st, ok := h.o.Auth.(Stamper); ok {
		s.stamp, _ = st.Stamp(req.UserName)
	}
	tok := newToken()
	h.mu.Lock()
	h.pruneSessions(now, true)
	h.tokens[tok] = s
	h.mu.Unlock()
	return http.StatusCreated, withHeaders{body: sessionJSON(s), hdr: map[string]string{"X-Auth-Token": tok, "Location": sessions + "/" + s.id}}, nil
}

// pruneSessions forgets the sessions that ended and, making room for a new
// one at the cap, the least recently used. Call with h.mu held.
func (h *Handler) pruneSessions(now time.Time, room bool) {
	for t, old := range h.tokens {
		if !h.live(old, now) {
			delete(h.tokens, t)
		}
	}
	for room && len(h.tokens) >= maxSessions {
		var lru string
		for t, old := range h.tokens {
			if lru == "" || old.seen.Before(h.tokens[lru].seen) {
				lru = t
			}
		}
		h.log.Info("redfish: session cap reached; ending the least recently used", "user", h.tokens[lru].user, "cap", maxSessions)
		delete(h.tokens, lru)
	}
}

func sessionJSON(s session) map[string]any {
	return map[string]any{
		"@odata.type": "#Session.v1_3_0.Session",
		"@odata.id":   sessions + "/" + s.id,
		"Id":          s.id,
		"Name":        "Session " + s.id,
		"UserName":    s.user,
	}
}

func (h *Handler) findSession(id string) (string, session, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for t, s := range h.tokens {
		if s.id == id {
			return t, s, true
		}
	}
	return "", session{}, false
}

func (h *Handler) getSession(r *http.Request) (int, any, error) {
	_, s, ok := h.findSession(mux.Vars(r)["id"])
	if !ok {
		return 0, nil, &Error{Status: 404, Code: "Base.1.8.ResourceMissingAtURI", Msg: "no such session"}
	}
	return 200, sessionJSON(s), nil
}

func (h *Handler) logout(r *http.Request) (int, any, error) {
	t, _, ok := h.findSession(mux.Vars(r)["id"])
	if !ok {
		return 0, nil, &Error{Status: 404, Code: "Base.1.8.ResourceMissingAtURI", Msg: "no such session"}
	}
	h.mu.Lock()
	delete(h.tokens, t)
	h.mu.Unlock()
	return http.StatusNoContent, nil, nil
}

// fromStore turns an error of the store or the drives into a Redfish one,
// with the status the API would give it.
func fromStore(err error) *Error {
	status, msg := problem.Of(err)
	code := "Base.1.8.GeneralError"
	switch status {
	case 400, 403, 422:
		code = "Base.1.8.ActionParameterValueFormatError"
	case 404:
		code = "Base.1.8.ResourceMissingAtURI"
	case 409, 423:
		code = "Base.1.8.ResourceInUse"
	case 502:
		// The image's server failed: a bad parameter from the client's
		// side, as sushy-tools answers it.
		status, code = 400, "Base.1.8.ActionParameterValueFormatError"
	case 503:
		code = "Base.1.8.ServiceTemporarilyUnavailable"
	case 507:
		code = "Base.1.8.InsufficientStorage"
	}
	return &Error{Status: status, Code: code, Msg: msg}
}
