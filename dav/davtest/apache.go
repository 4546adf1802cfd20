package davtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// StartApache runs Apache mod_dav serving a fresh directory as /dav/, the
// reference the transcripts are also played against. It returns the
// target, or skips when Apache is not installed.
func StartApache(t testing.TB, small, auth bool) Target {
	t.Helper()
	bin, err := exec.LookPath("apache2")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("apache2 is not installed (CI must install it in .ci/run)")
		}
		t.Skip("needs apache2 (Debian package) as the reference server; skipping")
	}
	const mods = "/usr/lib/apache2/modules"
	// Apache started as root drops to User; everything it touches must be
	// open to that user, including the temp directories above it.
	dir, err := os.MkdirTemp("", "msdav-apache-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	store := filepath.Join(dir, "store")
	for _, d := range []string{dir, store, filepath.Join(dir, "run")} {
		os.MkdirAll(d, 0o777)
		os.Chmod(d, 0o777)
	}
	if small {
		SmallStore(t, store)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	// With auth, Apache is set up the way its documentation shows: the
	// whole share behind Basic, OPTIONS included.
	authConf := "\tRequire all granted\n"
	if auth {
		h, _ := bcrypt.GenerateFromPassword([]byte(Pass), bcrypt.MinCost)
		pw := filepath.Join(dir, "htpasswd")
		os.WriteFile(pw, []byte(User+":"+string(h)+"\n"), 0o644)
		authConf = fmt.Sprintf("\tAuthType Basic\n\tAuthName msdav\n\tAuthBasicProvider file\n\tAuthUserFile %s\n\tRequire valid-user\n", pw)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "User nobody\nGroup nogroup\n"
	}
	cfg := fmt.Sprintf(`ServerRoot %[1]s
ServerName 127.0.0.1
Listen %[2]s
PidFile %[1]s/run/httpd.pid
DefaultRuntimeDir %[1]s/run
ErrorLog %[1]s/error.log
LogLevel warn
%[4]s
LoadModule mpm_event_module %[3]s/mod_mpm_event.so
LoadModule authz_core_module %[3]s/mod_authz_core.so
LoadModule authz_user_module %[3]s/mod_authz_user.so
LoadModule authn_core_module %[3]s/mod_authn_core.so
LoadModule authn_file_module %[3]s/mod_authn_file.so
LoadModule auth_basic_module %[3]s/mod_auth_basic.so
LoadModule alias_module %[3]s/mod_alias.so
LoadModule mime_module %[3]s/mod_mime.so
LoadModule dav_module %[3]s/mod_dav.so
LoadModule dav_fs_module %[3]s/mod_dav_fs.so
TypesConfig /etc/mime.types
DavLockDB %[1]s/run/DavLock
DocumentRoot %[1]s/run
Alias /dav %[1]s/store
<Directory %[1]s/store>
	Dav On
	Options None
	AllowOverride None
%[5]s</Directory>
`, dir, addr, mods, user, authConf)
	conf := filepath.Join(dir, "httpd.conf")
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", conf, "-DFOREGROUND")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("apache2: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("apache2 did not start: %s %s", out.String(), log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return Target{Addr: addr, Root: store}
}

// LineDiff lists the lines only in a (-) and only in b (+).
func LineDiff(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if !mb[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if !ma[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}
