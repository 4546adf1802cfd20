package redfish

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"

	"github.com/gorilla/mux"
)

// types are the schema versions this service serves, for $metadata and
// the Link header's JSON schema.
var types = []string{
	"ServiceRoot.v1_11_0", "ComputerSystemCollection", "ComputerSystem.v1_13_0",
	"ManagerCollection", "Manager.v1_10_0", "VirtualMediaCollection", "VirtualMedia.v1_4_0",
	"SessionService.v1_1_8", "SessionCollection", "Session.v1_3_0",
	"TaskService.v1_2_0", "TaskCollection", "Task.v1_4_3",
	"AccountService.v1_5_0", "RoleCollection", "Role.v1_2_1", "Message.v1_1_1",
}

// metadata is the OData CSDL document: a reference to DMTF's schema of
// every type served, and the service's entity container.
func (h *Handler) metadata(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">` + "\n")
	for _, t := range types {
		ns, _, _ := strings.Cut(t, ".")
		fmt.Fprintf(&b, "  <edmx:Reference Uri=\"http://redfish.dmtf.org/schemas/v1/%s_v1.xml\">\n    <edmx:Include Namespace=%q/>\n", ns, ns)
		if t != ns {
			fmt.Fprintf(&b, "    <edmx:Include Namespace=%q/>\n", t)
		}
		b.WriteString("  </edmx:Reference>\n")
	}
	b.WriteString(`  <edmx:DataServices>
    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">
      <EntityContainer Name="Service" Extends="ServiceRoot.v1_11_0.ServiceContainer"/>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
`)
	w.Header().Set("Content-Type", "application/xml")
	h.allow(w, r)
	w.Header().Set("Cache-Control", "no-cache")
	if r.Method != "HEAD" {
		w.Write([]byte(b.String()))
	}
}

// allow sets Allow to the methods the router takes on this path.
func (h *Handler) allow(w http.ResponseWriter, r *http.Request) {
	var ms []string
	for _, m := range []string{"GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"} {
		probe := r.Clone(r.Context())
		probe.Method = m
		var match mux.RouteMatch
		if h.r.Match(probe, &match) && match.Route != nil {
			ms = append(ms, m)
		}
	}
	if len(ms) > 0 {
		w.Header().Set("Allow", strings.Join(ms, ", "))
	}
}

var odataType = regexp.MustCompile(`^#([A-Za-z]+)\.(v\d+_\d+_\d+\.)?[A-Za-z]+$`)

// describedBy is the JSON schema of a resource's @odata.type.
func describedBy(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	t, _ := m["@odata.type"].(string)
	sm := odataType.FindStringSubmatch(t)
	if sm == nil {
		return ""
	}
	return "http://redfish.dmtf.org/schemas/v1/" + sm[1] + "." + sm[2] + "json"
}

// etag is a weak validator of a resource's JSON.
func etag(body []byte) string {
	sum := sha256.Sum256(body)
	return `W/"` + hex.EncodeToString(sum[:8]) + `"`
}

// serviceUUID is stable for a box: from its machine-id and host name.
func serviceUUID() string {
	mid, _ := os.ReadFile("/etc/machine-id")
	host, _ := os.Hostname()
	s := sha256.Sum256([]byte("msdav-redfish\x00" + strings.TrimSpace(string(mid)) + "\x00" + host))
	s[6] = s[6]&0x0f | 0x50 // version 5 layout (name-based)
	s[8] = s[8]&0x3f | 0x80
	x := hex.EncodeToString(s[:16])
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

const accountService = root + "/AccountService"

func (h *Handler) accounts(*http.Request) (int, any, error) {
	return 200, map[string]any{
		"@odata.type":    "#AccountService.v1_5_0.AccountService",
		"@odata.id":      accountService,
		"Id":             "AccountService",
		"Name":           "Accounts",
		"Description":    "Users are the htpasswd file's (auth.htpasswd); each has every privilege",
		"ServiceEnabled": true,
		"Roles":          link(accountService + "/Roles"),
	}, nil
}

// roles are Redfish's predefined ones. msdav has no per-user privileges
// (every htpasswd user is an Administrator); the others are listed, as
// the specification asks, for clients that look them up.
var roles = map[string][]string{
	"Administrator": {"Login", "ConfigureManager", "ConfigureUsers", "ConfigureSelf", "ConfigureComponents"},
	"Operator":      {"Login", "ConfigureSelf", "ConfigureComponents"},
	"ReadOnly":      {"Login", "ConfigureSelf"},
}

func (h *Handler) roles(*http.Request) (int, any, error) {
	var ms []string
	for _, id := range []string{"Administrator", "Operator", "ReadOnly"} {
		ms = append(ms, accountService+"/Roles/"+id)
	}
	return 200, collection(accountService+"/Roles", "RoleCollection", "Roles", ms...), nil
}

func (h *Handler) role(r *http.Request) (int, any, error) {
	id := mux.Vars(r)["id"]
	privs, ok := roles[id]
	if !ok {
		return 0, nil, &Error{Status: 404, Code: "Base.1.8.ResourceMissingAtURI", Msg: "no role " + id + " (Administrator, Operator, ReadOnly)"}
	}
	return 200, map[string]any{
		"@odata.type":        "#Role.v1_2_1.Role",
		"@odata.id":          accountService + "/Roles/" + id,
		"Id":                 id,
		"Name":               id,
		"RoleId":             id,
		"IsPredefined":       true,
		"AssignedPrivileges": privs,
	}, nil
}

// ifMatch refuses a PATCH whose If-Match names another version of the
// resource than current gives (sushy sends the ETag it last read).
func ifMatch(r *http.Request, current func() (int, any, error)) error {
	want := r.Header.Get("If-Match")
	if want == "" || want == "*" {
		return nil
	}
	_, v, err := current()
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	have := etag(append(b, '\n'))
	for _, w := range strings.Split(want, ",") {
		w = strings.TrimSpace(w)
		if w == have || "W/"+w == have {
			return nil
		}
	}
	return &Error{Status: http.StatusPreconditionFailed, Code: "Base.1.8.PreconditionFailed",
		Msg: "If-Match " + want + " does not name the resource as it is now (" + have + "): GET it again"}
}
