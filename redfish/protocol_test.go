package redfish

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func req(t *testing.T, method, url, body string, hdr ...string) (*http.Response, map[string]any, []byte) {
	t.Helper()
	r, _ := http.NewRequest(method, url, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(b, &m)
	return resp, m, b
}

// Issue 32 §2: what DMTF's service and protocol validators and sushy
// found, one check a case.
func TestRedfishProtocol(t *testing.T) {
	srv, store, _ := service(t, kernel(t), true)
	base := srv.URL
	t.Run("VirtualMedia is v1_4_0 (Status)", func(t *testing.T) {
		_, m, _ := req(t, "GET", base+media0, "")
		if m["@odata.type"] != "#VirtualMedia.v1_4_0.VirtualMedia" {
			t.Errorf("@odata.type %v", m["@odata.type"])
		}
	})
	t.Run("$metadata is CSDL naming every type served", func(t *testing.T) {
		resp, _, b := req(t, "GET", base+"/redfish/v1/$metadata", "")
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/xml") {
			t.Fatalf("$metadata: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if err := xml.Unmarshal(b, new(struct{})); err != nil {
			t.Errorf("not XML: %v", err)
		}
		for _, ns := range []string{"ServiceRoot.v1_11_0", "VirtualMedia.v1_4_0", "Task.v1_4_3", "Role.v1_2_1"} {
			if !strings.Contains(string(b), `Namespace="`+ns+`"`) {
				t.Errorf("$metadata lacks %s", ns)
			}
		}
	})
	t.Run("GETs carry Allow, Link describedby, Cache-Control and ETag", func(t *testing.T) {
		resp, _, _ := req(t, "GET", base+media0, "")
		if a := resp.Header.Get("Allow"); !strings.Contains(a, "GET") || !strings.Contains(a, "PATCH") || strings.Contains(a, "DELETE") {
			t.Errorf("Allow: %q", a)
		}
		if l := resp.Header.Get("Link"); !regexp.MustCompile(`^<[^>]*VirtualMedia\.v1_4_0\.json>; rel=describedby$`).MatchString(l) {
			t.Errorf("Link: %q", l)
		}
		if resp.Header.Get("Cache-Control") == "" || resp.Header.Get("ETag") == "" {
			t.Errorf("Cache-Control %q ETag %q", resp.Header.Get("Cache-Control"), resp.Header.Get("ETag"))
		}
		resp, _, _ = req(t, "DELETE", base+"/redfish/v1/Systems/0", "")
		if resp.StatusCode != 405 || !strings.Contains(resp.Header.Get("Allow"), "PATCH") {
			t.Errorf("405: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})
	t.Run("OData-Version 4.1 is 412", func(t *testing.T) {
		if resp, _, _ := req(t, "GET", base+"/redfish/v1/", "", "OData-Version", "4.1"); resp.StatusCode != 412 {
			t.Errorf("OData-Version 4.1: %d", resp.StatusCode)
		}
	})
	t.Run("POST to Sessions/Members logs in", func(t *testing.T) {
		resp, _, _ := req(t, "POST", base+sessions+"/Members", `{"UserName":"a","Password":"b"}`)
		if resp.StatusCode != 201 || resp.Header.Get("X-Auth-Token") == "" {
			t.Errorf("POST Sessions/Members: %d", resp.StatusCode)
		}
	})
	t.Run("AccountService/Roles and a root UUID", func(t *testing.T) {
		_, root, _ := req(t, "GET", base+"/redfish/v1/", "")
		if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`).MatchString(fmt.Sprint(root["UUID"])) {
			t.Errorf("UUID %v", root["UUID"])
		}
		_, acc, _ := req(t, "GET", base+"/redfish/v1/AccountService", "")
		roles, _ := acc["Roles"].(map[string]any)
		if roles == nil {
			t.Fatalf("AccountService: %v", acc)
		}
		_, coll, _ := req(t, "GET", base+roles["@odata.id"].(string), "")
		if coll["Members@odata.count"] != 3.0 {
			t.Fatalf("Roles: %v", coll)
		}
		_, role, _ := req(t, "GET", base+coll["Members"].([]any)[0].(map[string]any)["@odata.id"].(string), "")
		if role["RoleId"] != "Administrator" {
			t.Errorf("role: %v", role)
		}
	})
	t.Run("ResetType@Redfish.AllowableValues is a list, never null", func(t *testing.T) {
		_, m, _ := req(t, "GET", base+systemPath, "")
		rt := m["Actions"].(map[string]any)["#ComputerSystem.Reset"].(map[string]any)["ResetType@Redfish.AllowableValues"]
		if _, ok := rt.([]any); !ok {
			t.Errorf("ResetType@Redfish.AllowableValues: %v", rt)
		}
	})
	up := newUpstream(t, false) // a real ISO and FAT image
	for from, to := range map[string]string{"stick.img": "stick.img", "boot.iso": "cd.iso"} {
		b, _ := os.ReadFile(filepath.Join(up.dir, from))
		os.WriteFile(filepath.Join(store.Dir(), to), b, 0o644)
	}
	t.Run("MediaTypes is the slot's, whatever the medium; a store path is connected", func(t *testing.T) {
		if code, _ := do(t, "POST", base+media0+"/Actions/VirtualMedia.InsertMedia", `{"Image":"stick.img"}`); code != 204 {
			t.Fatalf("insert: %d", code)
		}
		_, m, _ := req(t, "GET", base+media0, "")
		b, _ := json.Marshal(m["MediaTypes"])
		if string(b) != `["CD","DVD","USBStick"]` || m["ConnectedVia"] == "NotConnected" {
			t.Errorf("MediaTypes %s ConnectedVia %v", b, m["ConnectedVia"])
		}
	})
	t.Run("PATCH under Systems answers its own @odata.id", func(t *testing.T) {
		p := "/redfish/v1/Systems/0/VirtualMedia/0"
		if code, m := do(t, "PATCH", base+p, `{"Image":"stick.img"}`); code != 200 || m["@odata.id"] != p {
			t.Errorf("PATCH %s: %d %v", p, code, m["@odata.id"])
		}
	})
	t.Run("PATCH with If-Match: the current ETag passes, another is 412", func(t *testing.T) {
		resp, _, _ := req(t, "GET", base+systemPath, "")
		tag := resp.Header.Get("ETag")
		body := `{"Boot":{"BootSourceOverrideTarget":"Cd"}}`
		if resp, _, _ := req(t, "PATCH", base+systemPath, body, "If-Match", `W/"0000"`); resp.StatusCode != 412 {
			t.Errorf("a stale If-Match: %d", resp.StatusCode)
		}
		if resp, _, _ := req(t, "PATCH", base+systemPath, body, "If-Match", tag); resp.StatusCode != 200 {
			t.Errorf("the current If-Match: %d", resp.StatusCode)
		}
	})
	t.Run("WriteProtected false with a CD-only image is refused", func(t *testing.T) {
		code, m := do(t, "POST", base+"/redfish/v1/Managers/bmc/VirtualMedia/1/Actions/VirtualMedia.InsertMedia", `{"Image":"cd.iso","WriteProtected":false}`)
		// The drive manager's refusal (422, as through the API and kvmd), in
		// Redfish's words.
		e, _ := m["error"].(map[string]any)
		if code != 422 || e["code"] != "Base.1.8.ActionParameterValueConflict" {
			t.Errorf("a writable CD: %d %v", code, m)
		}
	})
}
