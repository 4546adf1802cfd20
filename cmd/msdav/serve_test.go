package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/msdav/msdav/conf"
	"golang.org/x/crypto/bcrypt"
)

// startServe runs serve in-process on a free loopback port.
func startServe(t *testing.T, cfg conf.Config) (base string, stop func() error) {
	t.Helper()
	cfg.Server.Listen = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), ready) }()
	select {
	case addr := <-ready:
		var once bool
		stop = func() error {
			if once {
				return nil
			}
			once = true
			cancel()
			return <-errc
		}
		t.Cleanup(func() { stop() })
		return "http://" + addr, stop
	case err := <-errc:
		cancel()
		t.Fatalf("serve: %v", err)
	}
	return "", nil
}

func testConfig(t *testing.T) conf.Config {
	cfg := conf.Default()
	cfg.Storage.Root = t.TempDir()
	cfg.Gadget.Mode = conf.ModeDisabled
	return cfg
}

func TestEveryRouteNeedsAuth(t *testing.T) {
	cfg := testConfig(t)
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	cfg.Auth.Htpasswd = filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(cfg.Auth.Htpasswd, []byte("admin:"+string(h)+"\n"), 0o600)
	os.WriteFile(filepath.Join(cfg.Storage.Root, "a.iso"), []byte("a"), 0o644)
	base, _ := startServe(t, cfg)
	routes := []struct{ method, path string }{
		{"GET", "/dav/"}, {"GET", "/dav/a.iso"}, {"HEAD", "/dav/a.iso"}, {"PUT", "/dav/b.iso"},
		{"DELETE", "/dav/a.iso"}, {"MKCOL", "/dav/x"}, {"COPY", "/dav/a.iso"}, {"MOVE", "/dav/a.iso"},
		{"PROPFIND", "/dav/"}, {"PROPPATCH", "/dav/a.iso"}, {"LOCK", "/dav/a.iso"}, {"UNLOCK", "/dav/a.iso"},
		{"GET", "/api/images"}, {"GET", "/api/drives"}, {"GET", "/api/drives/0"}, {"PUT", "/api/drives/0"},
		{"DELETE", "/api/drives/0"}, {"POST", "/api/usb/reconnect"}, {"POST", "/api/images"}, {"GET", "/api/nope"},
		{"GET", "/"}, {"HEAD", "/"}, {"GET", "/ui/app.js"},
	}
	for _, rt := range routes {
		req, _ := http.NewRequest(rt.method, base+rt.path, strings.NewReader("x"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("%s %s without credentials: %d", rt.method, rt.path, resp.StatusCode)
		}
		req, _ = http.NewRequest(rt.method, base+rt.path, strings.NewReader("x"))
		req.SetBasicAuth("admin", "nope")
		resp, _ = http.DefaultClient.Do(req)
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("%s %s with a wrong password: %d", rt.method, rt.path, resp.StatusCode)
		}
	}
	resp, err := http.Get(base + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", err, resp)
	}
	req, _ := http.NewRequest("GET", base+"/dav/a.iso", nil)
	req.SetBasicAuth("admin", "pw")
	resp, _ = http.DefaultClient.Do(req)
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(b) != "a" {
		t.Errorf("with credentials: %d %q", resp.StatusCode, b)
	}
	if b, _ := os.ReadFile(filepath.Join(cfg.Storage.Root, "a.iso")); string(b) != "a" {
		t.Error("an unauthenticated request changed the store")
	}
}

func TestOpenShareRefusedOffLoopback(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"serve", "-listen", "0.0.0.0:0", "-root", t.TempDir()}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "open_share") {
		t.Errorf("open share on 0.0.0.0: exit %d, %q", code, errb.String())
	}
	cfgFile := filepath.Join(t.TempDir(), "msdav.toml")
	os.WriteFile(cfgFile, []byte("[server]\nlisten = \"0.0.0.0:0\"\nbogus = 1\n"), 0o644)
	errb.Reset()
	if code := run([]string{"serve", "-config", cfgFile}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "server.bogus") {
		t.Errorf("unknown key: exit %d, %q", code, errb.String())
	}
}

// SIGTERM (here: ctx cancelled) lets a running upload finish, then stops.
func TestGracefulStopFinishesUploads(t *testing.T) {
	cfg := testConfig(t)
	base, stop := startServe(t, cfg)
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("PUT", base+"/dav/slow.iso", pr)
		req.ContentLength = 6
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	pw.Write([]byte("abc"))
	time.Sleep(200 * time.Millisecond)
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	time.Sleep(200 * time.Millisecond)
	pw.Write([]byte("def"))
	pw.Close()
	if code := <-done; code != 201 {
		t.Errorf("upload during shutdown: %d", code)
	}
	if err := <-stopped; err != nil {
		t.Errorf("serve returned %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(cfg.Storage.Root, "slow.iso")); string(b) != "abcdef" {
		t.Errorf("upload content %q", b)
	}
}

func TestMetrics(t *testing.T) {
	cfg := testConfig(t)
	base, _ := startServe(t, cfg)
	req, _ := http.NewRequest("PUT", base+"/dav/m.iso", strings.NewReader("12345"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("PUT: %v %v", err, resp)
	}
	resp.Body.Close()
	resp, _ = http.Get(base + "/dav/m.iso")
	io.ReadAll(resp.Body)
	resp.Body.Close()
	req, _ = http.NewRequest("PUT", base+"/api/drives/0", strings.NewReader(`{"image":"m.iso"}`))
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`msdav_uploads_total{result="ok"} 1`,
		`msdav_upload_bytes_total 5`,
		`msdav_download_bytes_total 5`,
		`msdav_drive_operations_total{op="attach",result="failed"} 1`, // 503: gadget disabled
		`msdav_http_requests_total{code="201",method="PUT"} 1`,
		`msdav_remount_cycles_total 0`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, cert, key)
	cfg := testConfig(t)
	cfg.Server.TLSCert, cfg.Server.TLSKey = cert, key
	base, _ := startServe(t, cfg)
	base = strings.Replace(base, "http://", "https://", 1)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Get(base + "/healthz")
	if err != nil || resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("TLS healthz: %v %v", err, resp)
	}
	resp.Body.Close()
	if resp, err := http.Get(strings.Replace(base, "https://", "http://", 1) + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Error("plain HTTP answered on the TLS port")
	}
	// HTTP/1.1 only, unless server.http2 says otherwise; a download
	// through TLS arrives whole.
	os.WriteFile(filepath.Join(cfg.Storage.Root, "big.bin"), bytes.Repeat([]byte("tls!"), 1<<20), 0o644)
	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}}
	resp, err = h2.Get(base + "/dav/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 1 || len(body) != 4<<20 || !bytes.Equal(body[:8], []byte("tls!tls!")) {
		t.Errorf("TLS download: %s, %d bytes", resp.Proto, len(body))
	}
	cfg2 := testConfig(t)
	cfg2.Server.TLSCert, cfg2.Server.TLSKey, cfg2.Server.HTTP2 = cert, key, true
	base2, _ := startServe(t, cfg2)
	resp, err = h2.Get(strings.Replace(base2, "http://", "https://", 1) + "/healthz")
	if err != nil || resp.ProtoMajor != 2 {
		t.Errorf("server.http2 = true: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
}

func writeSelfSigned(t *testing.T, certPath, keyPath string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
}

// A refused upload (401, 423) answers before the client sends the body:
// with Expect: 100-continue, no "100 Continue" comes first.
func TestExpectContinueRefusedEarly(t *testing.T) {
	cfg := testConfig(t)
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	cfg.Auth.Htpasswd = filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(cfg.Auth.Htpasswd, []byte("admin:"+string(h)+"\n"), 0o600)
	base, _ := startServe(t, cfg)
	for _, tc := range []struct {
		auth string
		want string
	}{
		{"", "401"},
		{"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("admin:pw")) + "\r\n", "100"},
	} {
		c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "PUT /dav/big.iso HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n", tc.auth)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if !strings.Contains(line, " "+tc.want+" ") {
			t.Errorf("auth %q: first line %q, want %s", tc.auth, line, tc.want)
		}
	}
}

// -cpuprofile writes a profile that is complete once msdav stops on
// SIGTERM, and a path it cannot create is refused before serving.
func TestCPUProfileFlag(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "missing", "cpu.pprof")
	err := serveCmd([]string{"-root", t.TempDir(), "-cpuprofile", bad}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "cpu profile") {
		t.Fatalf("unwritable profile path: %v", err)
	}
	prof := filepath.Join(t.TempDir(), "cpu.pprof")
	p := startProc(t, "[storage]\nroot = \""+t.TempDir()+"\"\n[gadget]\nmode = \"disabled\"\n", "-cpuprofile", prof)
	for i := 0; i < 20; i++ {
		if r, err := http.Get(p.base + "/dav/"); err == nil {
			r.Body.Close()
		}
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	b, err := os.ReadFile(prof)
	if err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("profile is not a gzipped pprof file: %v, %d bytes", err, len(b))
	}
}
