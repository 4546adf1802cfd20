package conf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConf(t testing.TB, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "msdav.toml")
	os.WriteFile(p, []byte(body), 0o644)
	return p
}

func TestDefaultsAreValid(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Listen != "127.0.0.1:8080" || c.Storage.Root != "./images" || c.Gadget.Mode != ModeAuto || c.Gadget.Drives != 1 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestLoad(t *testing.T) {
	c, err := Load(writeConf(t, `
[server]
listen = ":9000"
open_share = true
[storage]
root = "/srv/images"
remount = true
remount_grace = "500ms"
[gadget]
mode = "disabled"
backend = "userspace"
drives = 3
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Listen != ":9000" || !c.Storage.Remount || c.Storage.RemountGrace.Milliseconds() != 500 || c.Gadget.Drives != 3 || c.Gadget.Backend != "userspace" {
		t.Errorf("loaded: %+v", c)
	}
	if d, _ := Load(""); d.Gadget.Backend != "kernel" {
		t.Errorf("default gadget.backend = %q, want kernel", d.Gadget.Backend)
	}
	// Keys not in the file keep their defaults.
	if c.Storage.PartTimeout.Seconds() != 2 || c.Gadget.Configfs != "/sys/kernel/config" {
		t.Errorf("defaults lost: %+v", c)
	}
}

func TestLoadFetch(t *testing.T) {
	if c, _ := Load(""); c.Fetch.AllowPrivate {
		t.Error("fetch.allow_private is on by default")
	}
	c, err := Load(writeConf(t, "[fetch]\nallow_private = true\n"))
	if err != nil || !c.Fetch.AllowPrivate {
		t.Errorf("allow_private = true: %+v, %v", c.Fetch, err)
	}
}

func TestLoadHosts(t *testing.T) {
	c, err := Load(writeConf(t, "[server]\nhosts = [\"pikvm.example.net\", \"203.0.113.7\", \"2001:db8::1\"]\n"))
	if err != nil || len(c.Server.Hosts) != 3 {
		t.Errorf("hosts: %+v, %v", c.Server.Hosts, err)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"[server]\nlisten = \"x\"", `server.listen = "x": want host:port`},
		{"[server]\nlisten = \"1.2.3.4:\"", "the port is missing"},
		{"[server]\ntls_cert = \"a.pem\"", "set both or neither"},
		{"[server]\nlog_format = \"xml\"", `want "text" or "json"`},
		{"[storage]\nroot = \"\"", "storage.root is empty"},
		{"[storage]\nremount_grace = \"soon\"", "is not a duration"},
		{"[storage]\nremount_grace = \"-1s\"", "want between 0s and 10m"},
		{"[storage]\npart_timeout = \"1ms\"", "want between 100ms and 5m"},
		{"[gadget]\nmode = \"usb\"", `want "auto", "configfs" or "disabled"`},
		{"[gadget]\nbackend = \"fuse\"", `gadget.backend = "fuse": want "kernel"`},
		{"[gadget]\nbackend = \"\"", `gadget.backend = "": want "kernel"`},
		{"[gadget]\ndrives = 0", "want 1 to 16"},
		{"[gadget]\ndrives = 17", "want 1 to 16"},
		{"[gadget]\nname = \"a/b\"", "plain directory name"},
		{"[gadget]\nconfigfs = \"relative\"", "absolute path"},
		{"[gadget]\nsysfs = \"sys\"", "gadget.sysfs = \"sys\": want an absolute path"},
		{"[gadget]\nudc = \"../x\"", "/sys/class/udc"},
		{"[gadget]\ninquiry = \"" + strings.Repeat("x", 25) + "\"", "at most 24"},
		{"[auth]\nhtpasswd = \"/nonexistent/htpasswd\"", "auth.htpasswd"},
		{"[server]\nlisten = 8080", "server.listen"},
		{"[server]\nlsiten = \"x\"", "unknown key server.lsiten"},
		{"[storage]\nroot = \"/x\"\n[extra]\nkey = 1", "unknown key extra"},
		{"[fetch]\nallow_privat = true", "unknown key fetch.allow_privat"},
		{"[fetch]\nallow_private = \"yes\"", "allow_private"},
		{"[storage\nroot = 1", "config"},
		{"[server]\nhosts = [\"http://box\"]", "without scheme or port"},
		{"[server]\nhosts = [\"box:8080\"]", "without scheme or port"},
		{"[server]\nhosts = [\"\"]", "server.hosts"},
		{"[server]\nhosts = \"box\"", "hosts"},
	} {
		_, err := Load(writeConf(t, tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want it to say %q", tc.body, err, tc.want)
		}
	}
	if _, err := Load("/nonexistent/msdav.toml"); err == nil {
		t.Error("a missing config file loaded")
	}
}

func TestCheckExposure(t *testing.T) {
	for _, tc := range []struct {
		listen, htpasswd string
		open, ok         bool
	}{
		{"127.0.0.1:8080", "", false, true},
		{"[::1]:8080", "", false, true},
		{"localhost:8080", "", false, true},
		{"0.0.0.0:8080", "", false, false},
		{":8080", "", false, false},
		{"192.0.2.1:80", "", false, false},
		{"0.0.0.0:8080", "", true, true},
		{"0.0.0.0:8080", "/etc/msdav/htpasswd", false, true},
	} {
		c := Default()
		c.Server.Listen, c.Auth.Htpasswd, c.Server.OpenShare = tc.listen, tc.htpasswd, tc.open
		if err := c.CheckExposure(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v", tc, err)
		}
	}
}

func FuzzLoad(f *testing.F) {
	f.Add("[server]\nlisten = \"127.0.0.1:1\"\n")
	f.Add("[gadget]\ndrives = 99\nmode = \"x\"\n")
	f.Add("[storage]\nremount_grace = \"1h\"\n")
	f.Fuzz(func(t *testing.T, body string) {
		p := filepath.Join(t.TempDir(), "c.toml")
		os.WriteFile(p, []byte(body), 0o644)
		c, err := Load(p)
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Load accepted a config Validate refuses: %v", verr)
			}
		}
	})
}

func TestRedfishReset(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		body, says string
	}{
		{"[redfish.reset]\nOn = \"true\"\nForceOff = \"true\"\n", ""},
		{"[redfish.reset]\nBoot = \"true\"\n", "not a ResetType"},
		{"[redfish.reset]\nOn = \"  \"\n", "is empty"},
		{"[redfish]\nenabled = false\nbogus = 1\n", "unknown key redfish.bogus"},
	} {
		p := filepath.Join(dir, "c.toml")
		os.WriteFile(p, []byte(tc.body), 0o644)
		c, err := Load(p)
		switch {
		case tc.says == "" && err != nil:
			t.Errorf("%q: %v", tc.body, err)
		case tc.says == "" && len(c.Redfish.Reset) != 2:
			t.Errorf("%q: reset = %v", tc.body, c.Redfish.Reset)
		case tc.says != "" && (err == nil || !strings.Contains(err.Error(), tc.says)):
			t.Errorf("%q: %v, want %q", tc.body, err, tc.says)
		}
	}
	if !Default().Redfish.Enabled {
		t.Error("redfish is off by default")
	}
}
