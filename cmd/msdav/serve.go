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
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/gorilla/mux"
	"github.com/msdav/msdav/api"
	"github.com/msdav/msdav/auth"
	"github.com/msdav/msdav/conf"
	"github.com/msdav/msdav/dav"
	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/gadget"
	"github.com/msdav/msdav/metrics"
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
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// serve runs until ctx is cancelled. If ready is not nil it receives the
// listening address once the server accepts connections (tests use it).
func serve(ctx context.Context, cfg conf.Config, log *slog.Logger, ready chan<- string) error {
	store, err := fs.Open(fs.Options{
		Root:        cfg.Storage.Root,
		Remount:     cfg.Storage.Remount,
		Grace:       cfg.Storage.RemountGrace.Duration,
		PartTimeout: cfg.Storage.PartTimeout.Duration,
		Log:         log,
	})
	if err != nil {
		return err
	}
	defer store.Close()

	g, gerr := gadget.Open(cfg.Gadget, log)
	if gerr != nil {
		log.Warn("drives unavailable; the share still works", "reason", gerr)
	}

	h, err := handler(ctx, cfg, store, g, gerr, log)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		// No ReadTimeout/WriteTimeout: a 8 GB upload or download may take an hour.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Server.Listen, err)
	}
	log.Info("serving", "addr", ln.Addr().String(), "root", store.Dir(), "tls", cfg.Server.TLSCert != "")
	if ready != nil {
		ready <- ln.Addr().String()
	}
	errc := make(chan error, 1)
	go func() {
		if cfg.Server.TLSCert != "" {
			errc <- srv.ServeTLS(ln, cfg.Server.TLSCert, cfg.Server.TLSKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("stopping: waiting for running requests", "grace", cfg.Server.ShutdownGrace.Duration)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownGrace.Duration)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// handler builds the whole HTTP surface: /healthz open, the rest behind auth.
func handler(ctx context.Context, cfg conf.Config, store *fs.Store, g *gadget.Gadget, gerr error, log *slog.Logger) (http.Handler, error) {
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
	r.PathPrefix("/dav").Handler(guard.Wrap(davH))
	a := api.New(store, g, gerr, log)
	go a.Watch(ctx, time.Second)
	r.PathPrefix("/api/").Handler(guard.Wrap(a))
	return rec.Wrap(r), nil
}
