package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// One bad attach, asked through the API, kvmd and Redfish, is refused by
// the drive manager once: each front end answers it in its own wire format
// with the same class of status and the same words.
func TestAttachRefusalsAgreeAcrossFrontEnds(t *testing.T) {
	base, _, lun0, iso, root := redfishServer(t)
	os.WriteFile(filepath.Join(root, "boot.iso"), iso, 0o644)
	os.WriteFile(filepath.Join(root, "disk.img"), make([]byte, 1<<20), 0o644)
	os.MkdirAll(filepath.Join(root, "dir"), 0o755)
	do := func(method, path, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.SetBasicAuth("admin", "admin")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	// Each front end's answer: its status and the message in its format.
	api := func(drive, body string) (int, string) {
		code, b := do("PUT", "/api/drives/"+drive, body)
		var m struct{ Error string }
		json.Unmarshal(b, &m)
		return code, m.Error
	}
	redfish := func(drive, body string) (int, string) {
		code, b := do("POST", "/redfish/v1/Managers/bmc/VirtualMedia/"+drive+"/Actions/VirtualMedia.InsertMedia", body)
		var m struct{ Error struct{ Message string } }
		json.Unmarshal(b, &m)
		return code, m.Error.Message
	}
	kvmd := func(path string) (int, string) {
		code, b := do("POST", "/api/msd/"+path, "")
		var m struct {
			Result struct {
				Error    string `json:"error"`
				ErrorMsg string `json:"error_msg"`
			}
		}
		json.Unmarshal(b, &m)
		return code, m.Result.ErrorMsg
	}
	type answer struct {
		via    string
		status int
		msg    string
	}
	for _, c := range []struct {
		name   string
		family int // 4 for 4xx
		says   string
		got    func() []answer
	}{
		{"a CD asked writable", 4, "a CD/DVD is never writable", func() []answer {
			a1, m1 := api("1", `{"image":"disk.img","cdrom":true,"rw":true}`)
			r1, n1 := redfish("1", `{"Image":"boot.iso","WriteProtected":false}`)
			return []answer{{"api", a1, m1}, {"redfish", r1, n1}}
		}},
		{"a drive out of range", 4, "drive 5: no such drive (drives are 0 to 1)", func() []answer {
			a1, m1 := api("5", `{"image":"disk.img"}`)
			r1, n1 := redfish("5", `{"Image":"disk.img"}`)
			return []answer{{"api", a1, m1}, {"redfish", r1, n1}}
		}},
		{"a missing image", 4, `no image "gone.iso" in the store`, func() []answer {
			a1, m1 := api("0", `{"image":"gone.iso"}`)
			r1, n1 := redfish("0", `{"Image":"gone.iso"}`)
			k1, l1 := kvmd("set_params?image=gone.iso")
			return []answer{{"api", a1, m1}, {"redfish", r1, n1}, {"kvmd", k1, l1}}
		}},
		{"a folder", 4, `"dir" is a folder, not an image`, func() []answer {
			a1, m1 := api("0", `{"image":"dir"}`)
			r1, n1 := redfish("0", `{"Image":"dir"}`)
			k1, l1 := kvmd("set_params?image=dir")
			return []answer{{"api", a1, m1}, {"redfish", r1, n1}, {"kvmd", k1, l1}}
		}},
		{"a selected image gone by set_connected", 4, `no image "gone.img" in the store`, func() []answer {
			os.WriteFile(filepath.Join(root, "gone.img"), make([]byte, 1<<20), 0o644)
			if code, msg := kvmd("set_params?image=gone.img"); code != 200 {
				t.Fatalf("set_params: %d %s", code, msg)
			}
			os.Remove(filepath.Join(root, "gone.img"))
			k1, l1 := kvmd("set_connected?connected=1")
			a1, m1 := api("0", `{"image":"gone.img"}`)
			return []answer{{"kvmd", k1, l1}, {"api", a1, m1}}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := c.got()
			for _, g := range got {
				if g.status/100 != c.family || !strings.Contains(g.msg, c.says) || g.msg != got[0].msg {
					t.Errorf("%s: %d %q; want %dxx saying %q, as %s said %q", g.via, g.status, g.msg, c.family, c.says, got[0].via, got[0].msg)
				}
			}
		})
	}
	if b, _ := os.ReadFile(filepath.Join(lun0, "file")); strings.TrimSpace(string(b)) != "" {
		t.Errorf("a refused attach filled drive 0: %q", b)
	}
	// kvmd's own rule: a CD is never attached writable; it is not refused,
	// rw is applied as false (kvmd 4.x's set_params does the same).
	if code, msg := kvmd("set_params?image=disk.img&cdrom=1&rw=1"); code != 200 {
		t.Fatalf("kvmd set_params cdrom+rw: %d %s", code, msg)
	}
	if code, msg := kvmd("set_connected?connected=1"); code != 200 {
		t.Fatalf("kvmd set_connected: %d %s", code, msg)
	}
	ro, _ := os.ReadFile(filepath.Join(lun0, "ro"))
	cd, _ := os.ReadFile(filepath.Join(lun0, "cdrom"))
	if strings.TrimSpace(string(ro)) != "1" || strings.TrimSpace(string(cd)) != "1" {
		t.Errorf("kvmd cdrom+rw: ro=%q cdrom=%q, want a read-only CD", ro, cd)
	}
}
