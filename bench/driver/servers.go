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

type server struct {
	name string
	url  string // share root, trailing slash
	root string // its directory on disk
	cmd  *exec.Cmd
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

func waitUp(url string) {
	for i := 0; i < 200; i++ {
		req, _ := http.NewRequest("OPTIONS", url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	must(fmt.Errorf("%s did not come up", url))
}

func start(name, root, url string, cmd *exec.Cmd) *server {
	logf, _ := os.Create(filepath.Join(*work, name+".log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	must(cmd.Start())
	procMu.Lock()
	started = append(started, cmd)
	procMu.Unlock()
	waitUp(url)
	return &server{name: name, url: url, root: root, cmd: cmd}
}

func startMsdav(name, root string, remount bool, flags ...string) *server {
	must(os.MkdirAll(root, 0o755))
	addr := freePort()
	cfg := filepath.Join(*work, name+".toml")
	must(os.WriteFile(cfg, []byte(fmt.Sprintf("[server]\nlisten = %q\n[storage]\nroot = %q\nremount = %v\n[gadget]\nmode = \"disabled\"\n", addr, root, remount)), 0o644))
	return start(name, root, "http://"+addr+"/dav/", exec.Command(*msdav, append([]string{"serve", "-config", cfg}, flags...)...))
}

func startNginx() *server {
	root := filepath.Join(*work, "nginx")
	for _, d := range []string{root, filepath.Join(*work, "nginx-tmp")} {
		must(os.MkdirAll(d, 0o755))
	}
	addr := freePort()
	conf := fmt.Sprintf(`load_module /usr/lib/nginx/modules/ngx_http_dav_ext_module.so;
daemon off; master_process off; worker_processes 1; user root;
error_log %[1]s/nginx.err; pid %[1]s/nginx.pid;
events { worker_connections 64; }
http {
  access_log off; sendfile on; tcp_nopush on; client_max_body_size 0;
  client_body_temp_path %[1]s/nginx-tmp; client_body_buffer_size 1m;
  server { listen %[2]s; root %[3]s;
    location / { dav_methods PUT DELETE MKCOL COPY MOVE; dav_ext_methods PROPFIND OPTIONS; create_full_put_path on; } }
}
`, *work, addr, root)
	p := filepath.Join(*work, "nginx.conf")
	must(os.WriteFile(p, []byte(conf), 0o644))
	return start("nginx", root, "http://"+addr+"/", exec.Command("nginx", "-c", p, "-p", *work))
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
	return start("apache", root, "http://"+addr+"/", cmd)
}

func startRclone() *server {
	root := filepath.Join(*work, "rclone")
	must(os.MkdirAll(root, 0o755))
	addr := freePort()
	return start("rclone", root, "http://"+addr+"/", exec.Command("rclone", "serve", "webdav", root, "--addr", addr, "--dir-cache-time", "1s", "--config", filepath.Join(*work, "rclone.conf")))
}

func startPlain() *server {
	root := filepath.Join(*work, "plain")
	must(os.MkdirAll(root, 0o755))
	addr := freePort()
	return start("plain", root, "http://"+addr+"/", exec.Command(*plain, "-listen", addr, "-root", root))
}
