package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRuntimeDirNotOurs: a user running msdav where /run/msdav already
// exists and belongs to root (a packaged server ran there) gets a private
// folder in /tmp, not "permission denied" on the store's lock; a folder the
// config names is never swapped for another.
func TestRuntimeDirNotOurs(t *testing.T) {
	if d := os.Getenv("MSDAV_TEST_RUNTIME_DEFAULT"); d != "" {
		// The child, running as another user: report what it chose.
		got, err := runtimeDir(d, d)
		fmt.Printf("dir=%s err=%v\n", got, err)
		_, err = runtimeDir(d, "/elsewhere")
		fmt.Printf("configured err=%v\n", err)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: it runs itself as nobody against a root-owned 0700 folder")
	}
	base, err := os.MkdirTemp("", "msdav-rundir-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o777)
	deflt := filepath.Join(base, "run-msdav")
	if err := os.Mkdir(deflt, 0o700); err != nil {
		t.Fatal(err)
	}
	// The test binary, where nobody may run it.
	bin := filepath.Join(base, "msdav.test")
	copyFile(t, os.Args[0], bin)
	cmd := exec.Command(bin, "-test.run=^TestRuntimeDirNotOurs$", "-test.count=1")
	cmd.Env = append(os.Environ(), "MSDAV_TEST_RUNTIME_DEFAULT="+deflt, "TMPDIR="+base)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	want := fmt.Sprintf("dir=%s err=<nil>", filepath.Join(base, "msdav-65534"))
	if !strings.Contains(string(out), want) {
		t.Errorf("as nobody with %s root's and 0700: want %q, got\n%s", deflt, want, out)
	}
	if !strings.Contains(string(out), "configured err=server.runtime_dir "+deflt) {
		t.Errorf("a configured runtime_dir the user cannot use must be an error naming it, got\n%s", out)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// A start that fails half way (the address is taken) lets go of all it
// took: the control socket is gone and the store's lock is free, so the
// next start on the same store runs.
func TestFailedStartLetsGo(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := testConfig(t)
	cfg.Server.RuntimeDir = t.TempDir()
	cfg.Server.Listen = taken.Addr().String()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	err = serve(context.Background(), cfg, quiet, nil)
	if err == nil || !strings.Contains(err.Error(), "listen "+taken.Addr().String()) {
		t.Fatalf("serve on a taken address: %v", err)
	}
	sock, _, _ := localPaths(cfg)
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("control socket %s left behind: %v", sock, err)
	}
	done := make(chan error, 1)
	go func() {
		cfg := cfg
		cfg.Server.Listen = "127.0.0.1:0"
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		done <- serve(ctx, cfg, quiet, nil)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the next start on the store: %v", err)
		}
	case <-time.After(ownerWait + 10*time.Second):
		t.Fatal("the next start did not get the store's lock")
	}
}
