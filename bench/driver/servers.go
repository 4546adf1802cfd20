package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// server is one running WebDAV server as the tables know it: name is its
// column (msdav, nginx, ...), so msdav over TLS is "msdav" too.
type server struct {
	name   string
	url    string // share root, trailing slash
	base   string // scheme://host:port, where msdav's /api is
	root   string // its directory on disk
	cmd    *exec.Cmd
	client *http.Client
}

var (
	procMu  sync.Mutex
	started []*exec.Cmd
)

// stopAll kills every server started, also when the run fails.
func stopAll() {
	procMu.Lock()
	defer procMu.Unlock()
	if restoreReporting != nil {
		restoreReporting()
		restoreReporting = nil
	}
	for _, c := range started {
		if c.Process != nil {
			c.Process.Kill()
			c.Wait()
		}
	}
	started = nil
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stopAll()
		os.Exit(1)
	}
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	defer l.Close()
	return l.Addr().String()
}

func waitUp(c *http.Client, url string) {
	for i := 0; i < 200; i++ {
		req, _ := http.NewRequest("OPTIONS", url, nil)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	must(fmt.Errorf("%s did not come up: see its log in %s", url, *work))
}

// start runs a server's command, its output in id.log, and waits until it
// answers on base (c's scheme).
func start(id, root, base, share string, c *http.Client, cmd *exec.Cmd) *server {
	logf, err := os.Create(filepath.Join(*work, id+".log"))
	must(err)
	cmd.Stdout, cmd.Stderr = logf, logf
	must(cmd.Start())
	procMu.Lock()
	started = append(started, cmd)
	procMu.Unlock()
	s := &server{name: id, url: base + share, base: base, root: root, cmd: cmd, client: c}
	waitUp(c, s.url)
	return s
}

// stop ends a server started for one measurement.
func (s *server) stop() {
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

// msdavOpts are the settings a msdav instance of the bench differs in.
type msdavOpts struct {
	remount bool
	tls     bool     // serve HTTPS with the bench's certificate
	flags   []string // after serve -config
}

func startMsdav(id, root string, o msdavOpts) *server {
	must(os.MkdirAll(root, 0o755))
	addr := freePort()
	cfg := filepath.Join(*work, id+".toml")
	scheme, c, tlsConf := "http", client, ""
	if o.tls {
		scheme, c = "https", tlsClient
		tlsConf = fmt.Sprintf("tls_cert = %q\ntls_key = %q\n", certFile, keyFile)
	}
	// allow_private: the fetch rows download from nginx on loopback.
	conf := fmt.Sprintf("[server]\nlisten = %q\n%s[storage]\nroot = %q\nremount = %v\n[gadget]\nmode = \"disabled\"\n[fetch]\nallow_private = true\n",
		addr, tlsConf, root, o.remount)
	must(os.WriteFile(cfg, []byte(conf), 0o644))
	s := start(id, root, scheme+"://"+addr, "/dav/", c, exec.Command(*msdav, append([]string{"serve", "-config", cfg}, o.flags...)...))
	s.name = "msdav"
	return s
}

// startNginx runs one nginx with two listeners on the same root: plain
// HTTP, and HTTPS with TLS 1.3 only on the bench's certificate, so the TLS
// rows compare msdav with nginx as the issue measured it. It runs as root
// (user root, no master), so its PUTs can write the root.
func startNginx() (plain, tls *server) {
	root := filepath.Join(*work, "nginx")
	for _, d := range []string{root, filepath.Join(*work, "nginx-tmp")} {
		must(os.MkdirAll(d, 0o755))
	}
	addr, tlsAddr := freePort(), freePort()
	conf := fmt.Sprintf(`load_module /usr/lib/nginx/modules/ngx_http_dav_ext_module.so;
daemon off; master_process off; worker_processes 1; user root;
error_log %[1]s/nginx.err; pid %[1]s/nginx.pid;
events { worker_connections 64; }
http {
  access_log off; sendfile on; tcp_nopush on; client_max_body_size 0;
  client_body_temp_path %[1]s/nginx-tmp; client_body_buffer_size 1m;
  server { listen %[2]s; root %[3]s;
    location / { dav_methods PUT DELETE MKCOL COPY MOVE; dav_ext_methods PROPFIND OPTIONS; create_full_put_path on; } }
  server { listen %[4]s ssl; root %[3]s;
    ssl_certificate %[5]s; ssl_certificate_key %[6]s; ssl_protocols TLSv1.3;
    location / { dav_methods PUT DELETE MKCOL COPY MOVE; dav_ext_methods PROPFIND OPTIONS; create_full_put_path on; } }
}
`, *work, addr, root, tlsAddr, certFile, keyFile)
	p := filepath.Join(*work, "nginx.conf")
	must(os.WriteFile(p, []byte(conf), 0o644))
	plain = start("nginx", root, "http://"+addr, "/", client, exec.Command("nginx", "-c", p, "-p", *work))
	tls = &server{name: "nginx", url: "https://" + tlsAddr + "/", base: "https://" + tlsAddr, root: root, cmd: plain.cmd, client: tlsClient}
	waitUp(tlsClient, tls.url)
	return plain, tls
}

func startApache() *server {
	root := filepath.Join(*work, "apache")
	lock := filepath.Join(*work, "apache-lock")
	must(os.MkdirAll(root, 0o755))
	must(os.MkdirAll(lock, 0o777))
	os.Chmod(lock, 0o777)
	addr := freePort()
	m := "/usr/lib/apache2/modules/"
	conf := fmt.Sprintf(`LoadModule mpm_event_module %[1]smod_mpm_event.so
LoadModule authz_core_module %[1]smod_authz_core.so
LoadModule unixd_module %[1]smod_unixd.so
LoadModule dav_module %[1]smod_dav.so
LoadModule dav_fs_module %[1]smod_dav_fs.so
User www-data
Group www-data
ServerName localhost
Listen %[2]s
PidFile %[3]s/apache.pid
ErrorLog %[3]s/apache.err
DocumentRoot %[4]s
DavLockDB %[5]s/lockdb
<Directory %[4]s>
  Dav On
  Require all granted
</Directory>
`, m, addr, *work, root, lock)
	p := filepath.Join(*work, "apache.conf")
	must(os.WriteFile(p, []byte(conf), 0o644))
	if _, err := os.Stat(m + "mod_unixd.so"); err != nil {
		conf = strings.Replace(conf, "LoadModule unixd_module "+m+"mod_unixd.so\n", "", 1)
		must(os.WriteFile(p, []byte(conf), 0o644))
	}
	cmd := exec.Command("apache2", "-X", "-f", p)
	cmd.Env = append(os.Environ(), "APACHE_RUN_DIR="+*work)
	return start("apache", root, "http://"+addr, "/", client, cmd)
}

func startRclone() *server {
	root := filepath.Join(*work, "rclone")
	must(os.MkdirAll(root, 0o755))
	addr := freePort()
	return start("rclone", root, "http://"+addr, "/", client, exec.Command("rclone", "serve", "webdav", root, "--addr", addr, "--dir-cache-time", "1s", "--config", filepath.Join(*work, "rclone.conf")))
}

func startPlain() *server {
	root := filepath.Join(*work, "plain")
	must(os.MkdirAll(root, 0o755))
	addr := freePort()
	return start("plain", root, "http://"+addr, "/", client, exec.Command(*plain, "-listen", addr, "-root", root))
}
