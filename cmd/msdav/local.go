package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/msdav/msdav/conf"
	"github.com/msdav/msdav/fs"
	"golang.org/x/sys/unix"
)

// One process owns a store at a time. msdav serve holds the store's lock
// for its whole life and answers the CLI on a unix socket beside it, so the
// CLI's changes go through the server's own drive manager and remount
// guard. With no server, a CLI command takes the same lock and acts itself.

// localPaths names the socket and the lock of cfg's store: one pair per
// store root, so two servers of two stores never meet, and two of one
// store cannot both start.
func localPaths(cfg conf.Config) (sock, lock string, err error) {
	dir, err := runtimeDir(cfg.Server.RuntimeDir, conf.DefaultRuntimeDir)
	if err != nil {
		return "", "", err
	}
	root, err := filepath.Abs(cfg.Storage.Root)
	if err != nil {
		return "", "", err
	}
	if r, err := filepath.EvalSymlinks(root); err == nil {
		root = r
	}
	sum := sha256.Sum256([]byte(root))
	// A hash, not the path: a unix socket's path has at most 107 bytes.
	id := hex.EncodeToString(sum[:6])
	return filepath.Join(dir, "store-"+id+".sock"), filepath.Join(dir, "store-"+id+".lock"), nil
}

// runtimeDir makes dir and returns it. When dir is the default and this
// user cannot use it (make run as a user; or /run/msdav already made by a
// packaged server running as root, 0700), a private folder in /tmp serves
// instead. A configured folder is never swapped for another.
func runtimeDir(dir, deflt string) (string, error) {
	err := os.MkdirAll(dir, 0o700)
	if err == nil {
		err = unix.Access(dir, unix.W_OK|unix.X_OK)
	}
	if err == nil {
		return dir, nil
	}
	if dir != deflt {
		return "", fmt.Errorf("server.runtime_dir %s: %w", dir, err)
	}
	dir = filepath.Join(os.TempDir(), fmt.Sprintf("msdav-%d", os.Geteuid()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("runtime dir %s: %w", dir, err)
	}
	return dir, nil
}

// localClient talks to the running server over its unix socket.
type localClient struct {
	http *http.Client
}

// findServer returns a client for the server of cfg's store, or nil when
// none runs.
func findServer(sock string) *localClient {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return nil
	}
	c.Close()
	return &localClient{http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}}
}

// call sends a JSON request to the server's API and decodes the answer
// into out (may be nil); an {"error": ...} answer becomes the error.
func (l *localClient) call(method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://msdav"+path, rd)
	if err != nil {
		return 0, err
	}
	resp, err := l.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("talking to the running msdav serve: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 400 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return resp.StatusCode, errors.New(e.Error)
		}
		return resp.StatusCode, fmt.Errorf("msdav serve answered %s", resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("msdav serve's answer: %w", err)
		}
	}
	return resp.StatusCode, nil
}

// ownerWait is how long a CLI command waits for the store's lock: another
// command may be making a large image, or a server starting.
const ownerWait = 30 * time.Second

// viaServerOr runs remote with the running server of cfg's store, or,
// when none runs, direct under the store's lock, so that no server can
// start halfway through.
func viaServerOr(cfg conf.Config, remote func(*localClient) error, direct func() error) error {
	sock, lock, err := localPaths(cfg)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(ownerWait)
	for {
		if c := findServer(sock); c != nil {
			return remote(c)
		}
		release, err := fs.LockOwner(lock, 0)
		if err == nil {
			defer release()
			return direct()
		}
		if !errors.Is(err, fs.ErrOwned) {
			return err
		}
		// A server starting up (its socket comes after its lock), or
		// another command: wait for either.
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// storeOptions is cfg's [storage] for fs.Open, the server's and the CLI's alike.
func storeOptions(cfg conf.Config, log *slog.Logger) fs.Options {
	return fs.Options{
		Root:        cfg.Storage.Root,
		Remount:     cfg.Storage.Remount,
		Grace:       cfg.Storage.RemountGrace.Duration,
		PartTimeout: cfg.Storage.PartTimeout.Duration,
		Log:         log,
		Shared:      cfg.Storage.Shared,
		Box:         cfg.Storage.BoxName,
		LeaseTTL:    cfg.Storage.LeaseTTL.Duration,
	}
}

// openStore opens cfg's store for a CLI command acting on its own. No
// grace: the command exits right after, and the store goes ro as it does.
func openStore(cfg conf.Config, log *slog.Logger) (*fs.Store, error) {
	o := storeOptions(cfg, log)
	o.Grace = 0
	return fs.Open(o)
}

// closeStore closes a CLI command's store. A drive left attached rw keeps
// it rw, as it must: the kernel writes into the image after we exit, and
// the next owner (a server, or the eject) puts it back to ro.
func closeStore(s *fs.Store) error {
	if err := s.Close(); err != nil && !errors.Is(err, fs.ErrStillWriting) {
		return err
	}
	return nil
}
