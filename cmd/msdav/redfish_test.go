package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msdav/msdav/conf"
	"github.com/msdav/msdav/gadget/gadgettest"
	"golang.org/x/crypto/bcrypt"
)

// redfishServer serves msdav with two fake drives, Basic auth admin:admin,
// and an upstream HTTP server holding a real ISO (xorriso).
func redfishServer(t *testing.T) (base, isoURL, lun0 string, iso []byte, root string) {
	t.Helper()
	if _, err := exec.LookPath("xorriso"); err != nil {
		t.Skip("needs xorriso to make an ISO (.ci/run installs it)")
	}
	work := t.TempDir()
	os.MkdirAll(filepath.Join(work, "src"), 0o755)
	os.WriteFile(filepath.Join(work, "src", "hello.txt"), []byte("hello from the redfish test\n"), 0o644)
	if out, err := exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-o", filepath.Join(work, "boot.iso"), filepath.Join(work, "src")).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v %s", err, out)
	}
	iso, _ = os.ReadFile(filepath.Join(work, "boot.iso"))
	upstream := httptest.NewServer(http.FileServer(http.Dir(work)))
	t.Cleanup(upstream.Close)

	gcfg := gadgettest.Bound(t, 2)
	cfg := conf.Default()
	cfg.Storage.Root = t.TempDir()
	cfg.Gadget = gcfg
	cfg.Server.RuntimeDir = t.TempDir()
	cfg.Fetch.AllowPrivate = true
	hash, _ := bcrypt.GenerateFromPassword([]byte("admin"), bcrypt.MinCost)
	cfg.Auth.Htpasswd = filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(cfg.Auth.Htpasswd, []byte("admin:"+string(hash)+"\n"), 0o600)
	base, _ = startServe(t, cfg)
	lun0 = gadgettest.LUN(gcfg, 0)
	return base, upstream.URL + "/boot.iso", lun0, iso, cfg.Storage.Root
}

// OpenStack Ironic's path through sushy (Debian's python3-sushy): System,
// ManagedBy, Manager, the CD-capable member, InsertMedia with a URL (fetched
// into the store, then attached as a CD), boot override, EjectMedia.
func TestRedfishWithSushy(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import sushy").Run(); err != nil {
		t.Skip("needs Debian's python3-sushy (.ci/run installs it)")
	}
	base, isoURL, lun0, iso, root := redfishServer(t)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(py, filepath.Join("..", "..", "redfish", "testdata", "ironic.py"), base, isoURL, "admin", "admin")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := stdout.String()
	t.Logf("sushy:\n%s", out)
	if err != nil {
		t.Fatalf("sushy script: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{
		"MANAGED_BY 1 bmc",
		"MEDIA 2 CD-capable 2",
		"INSERTED True " + isoURL + " boot.iso True ['CD', 'DVD', 'USBStick']",
		"BOOT Cd Once",
		"EJECTED False None",
		"MANAGER bmc",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("sushy output lacks %q", want)
		}
	}
	// The image was fetched into the store, byte for byte, and the drive
	// is empty again in configfs.
	got, err := os.ReadFile(filepath.Join(root, "redfish", "boot.iso"))
	if err != nil || !bytes.Equal(got, iso) {
		t.Errorf("fetched image differs from the ISO (%v)", err)
	}
	if b, _ := os.ReadFile(filepath.Join(lun0, "file")); strings.TrimSpace(string(b)) != "" {
		t.Errorf("drive 0 still holds %q after EjectMedia", b)
	}
}

// redfishtool (Debian) reads the service root, Systems and Managers.
func TestRedfishWithRedfishtool(t *testing.T) {
	if _, err := exec.LookPath("redfishtool"); err != nil {
		t.Skip("needs Debian's redfishtool (.ci/run installs it)")
	}
	base, _, _, _, _ := redfishServer(t)
	host := strings.TrimPrefix(base, "http://")
	for _, args := range [][]string{
		{"-r", host, "-S", "Never", "root"},
		{"-r", host, "-S", "Never", "-u", "admin", "-p", "admin", "Systems"},
		{"-r", host, "-S", "Never", "-u", "admin", "-p", "admin", "Systems", "-1"},
		{"-r", host, "-S", "Never", "-u", "admin", "-p", "admin", "Managers"},
		{"-r", host, "-S", "Never", "-u", "admin", "-p", "admin", "Managers", "-1"},
	} {
		out, err := exec.Command("redfishtool", args...).CombinedOutput()
		if err != nil {
			t.Errorf("redfishtool %v: %v\n%s", args, err, out)
			continue
		}
		var v map[string]any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Errorf("redfishtool %v: not JSON: %s", args, out)
		}
	}
}

// The root answers without credentials, the rest needs them, errors use
// Redfish's shape, and sessions work.
func TestRedfishAuthAndErrors(t *testing.T) {
	base, _, _, _, _ := redfishServer(t)
	do := func(method, path, body string, hdr ...string) (*http.Response, map[string]any) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		json.Unmarshal(b, &m)
		return resp, m
	}
	for _, p := range []string{"/redfish/v1", "/redfish/v1/"} {
		if r, m := do("GET", p, ""); r.StatusCode != 200 || m["Id"] != "RootService" {
			t.Errorf("GET %s without auth: %d %v", p, r.StatusCode, m)
		}
	}
	r, m := do("GET", "/redfish/v1/Systems", "")
	if r.StatusCode != 401 || m["error"] == nil {
		t.Errorf("Systems without auth: %d %v", r.StatusCode, m)
	}
	basic := []string{"Authorization", "Basic YWRtaW46YWRtaW4="}
	r, m = do("POST", "/redfish/v1/Managers/bmc/VirtualMedia/0/Actions/VirtualMedia.InsertMedia", `{}`, basic...)
	e, _ := m["error"].(map[string]any)
	if r.StatusCode != 400 || e["code"] != "Base.1.8.ActionParameterMissing" || e["@Message.ExtendedInfo"] == nil {
		t.Errorf("InsertMedia without Image: %d %v", r.StatusCode, m)
	}
	r, m = do("POST", "/redfish/v1/Managers/bmc/VirtualMedia/0/Actions/VirtualMedia.InsertMedia", `{"Image":"missing.iso"}`, basic...)
	if r.StatusCode != 404 {
		t.Errorf("InsertMedia of a missing store path: %d %v", r.StatusCode, m)
	}
	r, m = do("POST", "/redfish/v1/Managers/bmc/VirtualMedia/0/Actions/VirtualMedia.InsertMedia", `{"Image":"http://127.0.0.1:1/x.iso"}`, basic...)
	if r.StatusCode < 400 || r.StatusCode >= 500 {
		t.Errorf("InsertMedia of an unreachable URL: %d %v", r.StatusCode, m)
	}
	if r, _ := do("GET", "/redfish/v1/Managers/bmc/VirtualMedia/7", "", basic...); r.StatusCode != 404 {
		t.Errorf("member 7: %d", r.StatusCode)
	}
	r, m = do("POST", "/redfish/v1/Systems/0/Actions/ComputerSystem.Reset", `{"ResetType":"On"}`, basic...)
	if e, _ := m["error"].(map[string]any); r.StatusCode != 400 || !strings.Contains(e["message"].(string), "not managed") {
		t.Errorf("Reset without power commands: %d %v", r.StatusCode, m)
	}
	r, m = do("PATCH", "/redfish/v1/Systems/0", `{"Boot":{"BootSourceOverrideTarget":"Floppy2"}}`, basic...)
	if r.StatusCode != 400 {
		t.Errorf("bad boot target: %d %v", r.StatusCode, m)
	}
	// A session: the token works without the password, and not after logout.
	r, m = do("POST", "/redfish/v1/SessionService/Sessions", `{"UserName":"admin","Password":"admin"}`)
	tok := r.Header.Get("X-Auth-Token")
	if r.StatusCode != 201 || tok == "" || r.Header.Get("Location") == "" {
		t.Fatalf("login: %d %v", r.StatusCode, m)
	}
	if r, _ := do("GET", "/redfish/v1/Systems/0", "", "X-Auth-Token", tok); r.StatusCode != 200 {
		t.Errorf("with the token: %d", r.StatusCode)
	}
	if r, _ := do("DELETE", r.Header.Get("Location"), "", "X-Auth-Token", tok); r.StatusCode != 204 && r.StatusCode != 404 {
		t.Errorf("logout: %d", r.StatusCode)
	}
	if r, _ := do("POST", "/redfish/v1/SessionService/Sessions", `{"UserName":"admin","Password":"no"}`); r.StatusCode != 401 {
		t.Errorf("login with a wrong password: %d", r.StatusCode)
	}
}
