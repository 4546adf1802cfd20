package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/mux"
	"github.com/msdav/msdav/api"
	"github.com/msdav/msdav/auth"
	"github.com/msdav/msdav/conf"
	"github.com/msdav/msdav/dav"
	"github.com/msdav/msdav/drives"
	"github.com/msdav/msdav/events"
	"github.com/msdav/msdav/fetch"
	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/gadget"
	"github.com/msdav/msdav/gadget/remote"
	"github.com/msdav/msdav/gadget/scsi"
	"github.com/msdav/msdav/kvmd"
	"github.com/msdav/msdav/metrics"
	"github.com/msdav/msdav/redfish"
	"github.com/msdav/msdav/web"
)

func init() {
	register(command{"serve", "serve the share and the API", serveCmd})
}

// loadConfig reads -config and applies flag overrides on top of it.
func loadConfig(path string, override func(*conf.Config)) (conf.Config, error) {
	c, err := conf.Load(path)
	if err != nil && path != "" {
		return c, err
	}
	if override != nil {
		override(&c)
		if err := c.Validate(); err != nil {
			return c, err
		}
	}
	return c, err
}

func serveCmd(args []string, stdout, stderr io.Writer) error {
	f := newFlags("serve", stderr)
	cfgPath := f.String("config", "", "TOML config `file` (default: none, built-in defaults)")
	listen := f.String("listen", "", "listen `address`, overrides server.listen")
	root := f.String("root", "", "store `directory`, overrides storage.root")
	logFormat := f.String("log-format", "", "`text` or json, overrides server.log_format")
	cpuProfile := f.String("cpuprofile", "", "write a CPU profile of the whole run to `file` (for go tool pprof)")
	if err := parse(f, args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		pf, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			pf.Close()
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer func() { pprof.StopCPUProfile(); pf.Close() }()
	}
	cfg, err := loadConfig(*cfgPath, func(c *conf.Config) {
		if *listen != "" {
			c.Server.Listen = *listen
		}
		if *root != "" {
			c.Storage.Root = *root
		}
		if *logFormat != "" {
			c.Server.LogFormat = *logFormat
		}
	})
	if err != nil {
		return err
	}
	if err := cfg.CheckExposure(); err != nil {
		return err
	}
	log := newLogger(cfg.Server.LogFormat, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return serve(ctx, cfg, log, nil)
}

func newLogger(format string, w io.Writer) *slog.Logger {
	o := &slog.HandlerOptions{ReplaceAttr: redactAttr}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// redactAttr takes URL passwords out of every message, string and error
// logged, whichever package logged it.
func redactAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(fetch.Redact(a.Value.String()))
	case slog.KindAny:
		switch v := a.Value.Any().(type) {
		case error:
			a.Value = slog.StringValue(fetch.Redact(v.Error()))
		case fmt.Stringer:
			a.Value = slog.StringValue(fetch.Redact(v.String()))
		}
	}
	return a
}

// serve runs msdav serve until ctx is cancelled, then stops taking
// requests and waits up to server.shutdown_grace for the running ones. If
// ready is not nil it receives the listening address once the server
// accepts connections (tests use it).
func serve(ctx context.Context, cfg conf.Config, log *slog.Logger, ready chan<- string) error {
	s := &server{cfg: cfg, log: log}
	defer s.close()
	if err := s.open(ctx); err != nil {
		return err
	}
	if err := s.listen(); err != nil {
		return err
	}
	if ready != nil {
		ready <- s.ln.Addr().String()
	}
	return s.run(ctx)
}

// server is what msdav serve holds, opened in this order by open and
// listen; close lets go of it in the reverse order, which matters: fetches
// end and remove their temps while the store is open, every goroutine has
// ended before the store closes, and the store's lock goes last, so no CLI
// command acts on the store while any of it runs. Each close step checks
// what was opened, so close also cleans up after a failed start.
type server struct {
	cfg conf.Config
	log *slog.Logger

	sock    string
	unlock  func()
	hub     *events.Hub
	store   *fs.Store
	dm      *drives.Manager
	jobs    *fetch.Manager
	wg      sync.WaitGroup // every goroutine serve starts
	stopRun context.CancelFunc

	srv, local *http.Server
	ln, lln    net.Listener
}

// open takes the store's lock, opens the store, the gadget and the drives
// (put back as they were before a restart) and starts their pollers.
func (s *server) open(ctx context.Context) error {
	sock, lock, err := localPaths(s.cfg)
	if err != nil {
		return err
	}
	// Before the store opens: Open repairs and sweeps, which is only safe
	// with no CLI command acting on the store at the same time.
	if s.unlock, err = fs.LockOwner(lock, ownerWait); err != nil {
		return fmt.Errorf("%w: is another msdav serve running on %s?", err, s.cfg.Storage.Root)
	}
	s.sock, s.hub = sock, events.New()
	o := storeOptions(s.cfg, s.log)
	o.Publish = s.hub.Publish
	if s.store, err = fs.Open(o); err != nil {
		return err
	}
	s.cfg.Gadget.FFSMounts = filepath.Join(s.cfg.Server.RuntimeDir, "ffs")
	g, gerr := gadget.Open(s.cfg.Gadget, s.log)
	switch {
	case gerr != nil && s.cfg.Gadget.Mode == conf.ModeConfigfs:
		// auto serves the share without drives; configfs asked for them.
		return fmt.Errorf("gadget.mode = \"configfs\": %w (set gadget.mode = \"auto\" to serve the share without drives)", gerr)
	case gerr != nil:
		s.log.Warn("drives unavailable; the share still works", "reason", gerr)
	}
	// The userspace backend's drives live in this process: what they held
	// when it last ran is in a file beside the socket, put back below.
	var saved []gadget.Saved
	if g != nil {
		var perr error
		if saved, perr = g.Persist(strings.TrimSuffix(sock, ".sock") + ".drives.json"); perr != nil {
			s.log.Error("what the drives held before the restart cannot all be put back", "err", perr)
		}
	}
	s.dm = drives.New(s.store, g, gerr, s.hub.Publish, s.log)
	var runCtx context.Context
	runCtx, s.stopRun = context.WithCancel(context.Background())
	s.wg.Go(func() { s.dm.Run(runCtx, drivePoll, drives.FlushEvery) })
	s.wg.Go(func() { s.store.Watch(runCtx, storePoll, func() bool { return s.hub.Subscribers() > 0 }) })
	s.jobs = fetch.New(s.store, fetch.Options{AllowPrivate: s.cfg.Fetch.AllowPrivate, Log: s.log, Publish: s.hub.Publish})
	// Before the first request: the API shows the drives as they were.
	s.dm.Restore(ctx, saved, func(ctx context.Context, raw string) (scsi.Medium, error) {
		u, client, err := s.jobs.Guarded(ctx, raw)
		if err != nil {
			return nil, err
		}
		med, err := remote.Open(ctx, client, u.String(), remote.Options{})
		if err != nil {
			return nil, err // not a nil *remote.Medium in a non-nil interface
		}
		return med, nil
	})
	return nil
}

// listen builds the HTTP server and the CLI's, and opens their sockets.
func (s *server) listen() error {
	h, err := handler(s.cfg, s.store, s.dm, s.hub, s.jobs, s.log)
	if err != nil {
		return err
	}
	s.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		// No ReadTimeout/WriteTimeout: a 8 GB upload or download may take an hour.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if !s.cfg.Server.HTTP2 {
		// HTTP/1.1 only: Go's HTTP/2 sends a download in 16 KiB frames,
		// each handed between goroutines and written on its own; measured
		// here on a 1 GiB GET with curl, 2.27 s and 1.22 s of CPU against
		// 0.94 s and 0.90 s over HTTP/1.1.
		var p http.Protocols
		p.SetHTTP1(true)
		s.srv.Protocols = &p
	}
	s.srv.RegisterOnShutdown(s.hub.Close) // event streams end, or Shutdown would wait for them
	s.local = &http.Server{
		Handler:           api.New(s.store, s.dm, s.hub, api.Options{Log: s.log, Local: true}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	os.Remove(s.sock) // a dead server's; we hold the lock, so no live one has it
	if s.lln, err = net.Listen("unix", s.sock); err != nil {
		return fmt.Errorf("control socket %s: %w", s.sock, err)
	}
	if err := os.Chmod(s.sock, 0o600); err != nil {
		return fmt.Errorf("control socket %s: %w", s.sock, err)
	}
	if s.ln, err = net.Listen("tcp", s.cfg.Server.Listen); err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.Server.Listen, err)
	}
	s.log.Info("serving", "addr", s.ln.Addr().String(), "root", s.store.Dir(), "tls", s.cfg.Server.TLSCert != "", "socket", s.sock)
	return nil
}

// run serves until ctx ends or a server fails, then shuts both down,
// giving running requests server.shutdown_grace.
func (s *server) run(ctx context.Context) error {
	errc := make(chan error, 2)
	s.wg.Go(func() {
		if s.cfg.Server.TLSCert != "" {
			errc <- s.srv.ServeTLS(s.ln, s.cfg.Server.TLSCert, s.cfg.Server.TLSKey)
		} else {
			errc <- s.srv.Serve(s.ln)
		}
	})
	s.wg.Go(func() { errc <- s.local.Serve(s.lln) })
	var serveErr error
	select {
	case serveErr = <-errc:
	case <-ctx.Done():
	}
	s.log.Info("stopping: waiting for running requests", "grace", s.cfg.Server.ShutdownGrace.Duration)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.Server.ShutdownGrace.Duration)
	defer cancel()
	err := errors.Join(s.srv.Shutdown(sctx), s.local.Shutdown(sctx))
	if errors.Is(err, context.DeadlineExceeded) {
		err = nil
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return err
}

// close lets go of what open and listen took, last first.
func (s *server) close() {
	for _, l := range []net.Listener{s.ln, s.lln} {
		if l != nil {
			l.Close() // closed already after a Shutdown; a failed start's are not
		}
	}
	if s.lln != nil {
		os.Remove(s.sock)
	}
	if s.jobs != nil {
		s.jobs.Close() // running fetches remove their temps: the store is still open
	}
	if s.stopRun != nil {
		s.stopRun()
	}
	s.wg.Wait()
	if s.store != nil {
		s.store.Close()
	}
	if s.unlock != nil {
		s.unlock()
	}
}

// drivePoll is how often configfs is read for what the host did itself:
// an eject on its side reaches event subscribers within 2 s with room to
// spare. One poll reads four small attributes per drive, about 20 us.
const drivePoll = 500 * time.Millisecond

// storePoll is how often, while someone follows /api/events, the catalog
// and parts are compared for changes msdav did not make (NFS, scp).
const storePoll = 2 * time.Second

// handler builds the whole HTTP surface: /healthz open, the rest behind auth.
func handler(cfg conf.Config, store *fs.Store, dm *drives.Manager, hub *events.Hub, jobs *fetch.Manager, log *slog.Logger) (http.Handler, error) {
	r := mux.NewRouter().SkipClean(true)
	rec := metrics.New(log, store.RemountCycles)
	r.Path("/healthz").HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	guard, err := auth.New(cfg.Auth.Htpasswd, log)
	if err != nil {
		return nil, err
	}
	davH := dav.New(store, dav.Options{Prefix: "/dav", Log: log})
	// Windows' redirector asks the host's root before it maps /dav/.
	r.Path("/").Methods(http.MethodOptions, "PROPFIND").Handler(guard.Wrap(davH.HostRoot()))
	r.Path("/metrics").Handler(guard.Wrap(rec.Handler()))
	r.PathPrefix("/dav").Handler(dav.Sandbox(guard.Wrap(davH)))
	if cfg.Redfish.Enabled {
		// It checks credentials itself: its root answers without, and
		// sessions (X-Auth-Token) count as well as Basic.
		var check redfish.Checker
		if guard.Enabled() {
			check = guard
		}
		r.PathPrefix("/redfish").Handler(redfish.New(store, dm, jobs, redfish.Options{Log: log, Auth: check, Conf: cfg.Redfish}))
	}
	// kvmd's Mass Storage API for drive 0 and its session login, before
	// the rest of /api/. It checks credentials itself, answering kvmd's
	// JSON errors, and takes its auth_token cookie besides Basic.
	msd := kvmd.New(store, dm, jobs, log)
	if guard.Enabled() {
		msd.SetAuth(guard)
	}
	r.Path("/api/msd").Handler(msd)
	r.PathPrefix("/api/msd/").Handler(msd)
	r.PathPrefix("/api/auth/").Handler(msd)
	a := api.New(store, dm, hub, api.Options{Log: log})
	a.SetJobs(jobs)
	r.PathPrefix("/api/").Handler(guard.Wrap(a))
	// Only GET and HEAD on / are the console: other methods there belong to
	// WebDAV clients (Windows sends OPTIONS and PROPFIND to /).
	console := guard.Wrap(web.New())
	r.Path("/").Methods(http.MethodGet, http.MethodHead).Handler(console)
	r.PathPrefix(web.Prefix).Methods(http.MethodGet, http.MethodHead).Handler(console)
	return rec.Wrap(web.KnownHosts(cfg.Server.Hosts, guard.Discover(web.SameOrigin(r)))), nil
}
