package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/msdav/msdav/conf"
	"github.com/msdav/msdav/gadget/gadgettest"
	"golang.org/x/crypto/bcrypt"
)

// shellWords splits a command line the way sh would for the recipes below:
// spaces, 'single' and "double" quotes, backslash-newline.
func shellWords(s string) []string {
	s = strings.ReplaceAll(s, "\\\n", " ")
	var out []string
	var cur strings.Builder
	in := rune(0)
	has := false
	for _, c := range s {
		switch {
		case in != 0 && c == in:
			in = 0
		case in != 0:
			cur.WriteRune(c)
		case c == '\'' || c == '"':
			in, has = c, true
		case c == ' ' || c == '\t' || c == '\n':
			if has || cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
				has = false
			}
		default:
			cur.WriteRune(c)
		}
	}
	if has || cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// match compares got with want, where the string "*" in want matches any
// value (sizes and times that depend on the machine).
func match(want, got any) bool {
	if w, ok := want.(string); ok && w == "*" {
		return true
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for k, v := range w {
			if gv, ok := g[k]; !ok || !match(v, gv) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !match(w[i], g[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(want, got)
}

// The MSD recipes of PiKVM's API docs, run with curl as written (the host
// replaced), each beside the JSON kvmd 4.x answers. Where the docs' example
// output is older than kvmd's code (write answers the image, not {}), the
// code's answer is kept, as the docs' own notes say.
func TestKVMDRecipesWithCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("needs curl (.ci/run installs it)")
	}
	dir := t.TempDir()
	work := t.TempDir()
	os.WriteFile(filepath.Join(work, "test.iso"), make([]byte, 1<<20), 0o644) // dd if=/dev/zero of=test.iso bs=1M count=1
	upstream := httptest.NewServer(http.FileServer(http.Dir(work)))
	defer upstream.Close()

	gcfg := gadgettest.Bound(t, 1)
	cfg := conf.Default()
	cfg.Storage.Root = dir
	cfg.Gadget = gcfg
	cfg.Server.RuntimeDir = t.TempDir()
	cfg.Fetch.AllowPrivate = true
	hash, _ := bcrypt.GenerateFromPassword([]byte("admin"), bcrypt.MinCost)
	cfg.Auth.Htpasswd = filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(cfg.Auth.Htpasswd, []byte("admin:"+string(hash)+"\n"), 0o600)
	base, _ := startServe(t, cfg)
	lunFile := filepath.Join(gadgettest.LUN(gcfg, 0), "file")

	parts := `{"": {"free": "*", "size": "*", "writable": true}}`
	steps := []struct {
		recipe string // as in the docs
		status int
		want   string // kvmd's answer; "*" matches any value
		lines  bool   // NDJSON: want is the last line
	}{
		{`curl -k -u admin:admin https://<pikvm-ip>/api/msd`, 200,
			`{"ok": true, "result": {"busy": false, "drive": {"cdrom": false, "connected": false, "image": null, "rw": false},
			  "enabled": true, "online": true, "storage": {"downloading": null, "images": {}, "parts": ` + parts + `, "uploading": null}}}`, false},
		{`curl -v -X POST -k \
    -u admin:admin \
    https://<pikvm-ip>/api/msd/write_remote?url=http://example.com/test.iso`, 200,
			`{"ok": true, "result": {"image": {"name": "test.iso", "size": 1048576, "written": 1048576}}}`, true},
		{`curl -X POST -k \
    -u admin:admin \
    https://<pikvm-ip>/api/msd/remove?image=test.iso`, 200, `{"ok": true, "result": {}}`, false},
		{`curl -v -X POST --data-binary @test.iso -k \
    -u admin:admin \
    https://<pikvm-ip>/api/msd/write?image=test.iso`, 200,
			`{"ok": true, "result": {"image": {"name": "test.iso", "size": 1048576, "written": 1048576}}}`, false},
		{`curl -X POST -k \
    -u admin:admin \
    'https://<pikvm-ip>/api/msd/set_params?image=test.iso&cdrom=1'`, 200, `{"ok": true, "result": {}}`, false},
		{`curl -X POST -k \
    -u admin:admin \
    https://<pikvm-ip>/api/msd/set_connected?connected=1`, 200, `{"ok": true, "result": {}}`, false},
		{`curl -k -H X-KVMD-User:admin -H X-KVMD-Passwd:admin https://<pikvm-ip>/api/msd`, 200,
			`{"ok": true, "result": {"busy": false,
			  "drive": {"cdrom": true, "connected": true, "rw": false, "image": {"name": "test.iso", "in_storage": true,
			    "complete": true, "removable": true, "writable": false, "size": 1048576, "mod_ts": "*"}},
			  "enabled": true, "online": true, "storage": {"downloading": null, "uploading": null, "parts": ` + parts + `,
			    "images": {"test.iso": {"complete": true, "removable": true, "writable": false, "size": 1048576, "mod_ts": "*"}}}}}`, false},
		// What kvmd refuses while the drive is connected.
		{`curl -X POST -k -u admin:admin 'https://<pikvm-ip>/api/msd/set_params?image=test.iso&cdrom=0'`, 400,
			`{"ok": false, "result": {"error": "MsdConnectedError", "error_msg": "*"}}`, false},
		{`curl -X POST -k -u admin:admin https://<pikvm-ip>/api/msd/remove?image=test.iso`, 400,
			`{"ok": false, "result": {"error": "MsdConnectedError", "error_msg": "*"}}`, false},
		{`curl -X POST -k -u admin:admin https://<pikvm-ip>/api/msd/set_connected?connected=1`, 400,
			`{"ok": false, "result": {"error": "MsdConnectedError", "error_msg": "*"}}`, false},
		{`curl -X POST -k \
    -u admin:admin \
    https://<pikvm-ip>/api/msd/set_connected?connected=0`, 200, `{"ok": true, "result": {}}`, false},
		{`curl -X POST -k -u admin:admin https://<pikvm-ip>/api/msd/set_connected?connected=0`, 400,
			`{"ok": false, "result": {"error": "MsdDisconnectedError", "error_msg": "*"}}`, false},
		{`curl -v -X POST --data-binary @test.iso -k -u admin:admin https://<pikvm-ip>/api/msd/write?image=test.iso`, 400,
			`{"ok": false, "result": {"error": "MsdImageExistsError", "error_msg": "*"}}`, false},
		{`curl -X POST -k -u admin:admin 'https://<pikvm-ip>/api/msd/set_params?image=nope.iso'`, 400,
			`{"ok": false, "result": {"error": "MsdUnknownImageError", "error_msg": "*"}}`, false},
		{`curl -X POST -k -u admin:admin 'https://<pikvm-ip>/api/msd/set_params?cdrom=maybe'`, 400,
			`{"ok": false, "result": {"error": "ValidatorError", "error_msg": "*"}}`, false},
		{`curl -X POST -k -u admin:admin 'https://<pikvm-ip>/api/msd/write?image=../x.iso' --data-binary @test.iso`, 400,
			`{"ok": false, "result": {"error": "ValidatorError", "error_msg": "*"}}`, false},
		{`curl -X POST -k \
    -u admin:admin \
    https://<pikvm-ip>/api/msd/reset`, 200, `{"ok": true, "result": {}}`, false},
		// As kvmd, reset keeps the selection: connecting works again.
		{`curl -X POST -k -u admin:admin https://<pikvm-ip>/api/msd/set_connected?connected=1`, 200,
			`{"ok": true, "result": {}}`, false},
		{`curl -X POST -k -u admin:admin https://<pikvm-ip>/api/msd/set_connected?connected=0`, 200,
			`{"ok": true, "result": {}}`, false},
		{`curl -k -u admin:wrong https://<pikvm-ip>/api/msd`, 403,
			`{"ok": false, "result": {"error": "ForbiddenError", "error_msg": "*"}}`, false},
		{`curl -X POST -k \
    -u admin:admin \
    https://<pikvm-ip>/api/msd/remove?image=test.iso`, 200, `{"ok": true, "result": {}}`, false},
	}
	for i, st := range steps {
		recipe := strings.ReplaceAll(st.recipe, "https://<pikvm-ip>", base)
		recipe = strings.ReplaceAll(recipe, "http://example.com", upstream.URL)
		args := shellWords(recipe)
		args = append(args[1:], "-s", "-S", "-o", "-", "-w", "\n%{http_code}", "-H", "Expect:")
		cmd := exec.Command("curl", args...)
		cmd.Dir = work
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("step %d: curl: %v\n%s", i, err, out)
		}
		// -w puts the status after a newline at the very end.
		cut := strings.LastIndexByte(string(out), '\n')
		body, code := string(out[:cut]), string(out[cut+1:])
		if code != fmt.Sprint(st.status) {
			t.Errorf("step %d %q: status %s, want %d\n%s", i, st.recipe, code, st.status, body)
			continue
		}
		if st.want == "" {
			continue
		}
		if st.lines {
			ls := strings.Split(strings.TrimSpace(body), "\r\n")
			if len(ls) < 2 {
				t.Errorf("step %d: NDJSON with %d lines, want a first line and a last", i, len(ls))
			}
			body = ls[len(ls)-1]
		}
		var want, got any
		if err := json.Unmarshal([]byte(st.want), &want); err != nil {
			t.Fatalf("step %d: bad expectation: %v", i, err)
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Errorf("step %d: not JSON: %q", i, body)
			continue
		}
		if !match(want, got) {
			t.Errorf("step %d %q:\n got %s\nwant %s", i, st.recipe, body, st.want)
		}
		if i == 5 { // set_connected=1: configfs holds the image, as a CD
			if b, _ := os.ReadFile(lunFile); strings.TrimSpace(string(b)) != filepath.Join(dir, "test.iso") {
				t.Errorf("configfs file after set_connected=1: %q", b)
			}
		}
	}
}

// read streams an image back, plain or compressed as kvmd offers, and one
// upload at a time is kvmd's rule (409 MsdIsBusyError for the next).
func TestKVMDReadAndBusy(t *testing.T) {
	cfg := testConfig(t)
	cfg.Gadget = gadgettest.Bound(t, 1)
	cfg.Server.RuntimeDir = t.TempDir()
	base, _ := startServe(t, cfg)
	img := bytes.Repeat([]byte("msdav kvmd read "), 1<<16) // 1 MiB
	os.WriteFile(filepath.Join(cfg.Storage.Root, "a.img"), img, 0o644)
	for _, tc := range []struct{ compress, tool, name string }{
		{"", "", "a.img"}, {"zstd", "zstd", "a.img.zst"}, {"lzma", "xz", "a.img.xz"},
	} {
		resp, err := http.Get(base + "/api/msd/read?image=a.img&compress=" + tc.compress)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Disposition") != "attachment; filename*=UTF-8''"+tc.name {
			t.Fatalf("read %s: %d %q", tc.compress, resp.StatusCode, resp.Header.Get("Content-Disposition"))
		}
		if tc.tool != "" {
			if _, err := exec.LookPath(tc.tool); err != nil {
				t.Logf("no %s to check the %s stream", tc.tool, tc.compress)
				continue
			}
			cmd := exec.Command(tc.tool, "-dc")
			cmd.Stdin = bytes.NewReader(body)
			if body, err = cmd.Output(); err != nil {
				t.Fatalf("%s -dc of the stream: %v", tc.tool, err)
			}
		} else if resp.ContentLength != int64(len(img)) {
			t.Errorf("Content-Length %d", resp.ContentLength)
		}
		if !bytes.Equal(body, img) {
			t.Errorf("read %s: %d bytes differ from the image", tc.compress, len(body))
		}
	}
	// A slow upload holds the slot: a second answers 409 MsdIsBusyError.
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", base+"/api/msd/write?image=slow.img", pr)
	req.ContentLength = 1 << 20
	done := make(chan *http.Response, 1)
	go func() {
		resp, _ := http.DefaultClient.Do(req) // cut short below: an error is expected
		done <- resp
	}()
	pw.Write(make([]byte, 1000))
	var state map[string]any
	deadline := time.Now().Add(3 * time.Second)
	for {
		resp, _ := http.Get(base + "/api/msd")
		json.NewDecoder(resp.Body).Decode(&state)
		resp.Body.Close()
		r := state["result"].(map[string]any)
		if r["busy"] == true {
			up := r["storage"].(map[string]any)["uploading"].(map[string]any)
			if up["name"] != "slow.img" || up["size"] != float64(1<<20) {
				t.Errorf("uploading: %v", up)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never busy: %v", state)
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Post(base+"/api/msd/write?image=other.img", "application/octet-stream", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 409 || !strings.Contains(string(b), "MsdIsBusyError") {
		t.Errorf("second write while busy: %d %s", resp.StatusCode, b)
	}
	// The first upload is cut short: nothing of it is kept.
	pw.CloseWithError(io.ErrUnexpectedEOF)
	if r := <-done; r != nil {
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode == 200 {
			t.Errorf("a cut upload answered 200: %s", b)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(cfg.Storage.Root, "slow.img")); err == nil {
		t.Error("a cut upload was kept")
	}
}
