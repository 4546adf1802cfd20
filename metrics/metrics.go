// Package metrics counts what msdav does for Prometheus (/metrics) and logs
// one line per request; it watches HTTP from the outside, so the packages
// that do the work need no hooks.
package metrics

import (
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Recorder holds the counters of one server.
type Recorder struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	uploads   *prometheus.CounterVec
	upBytes   prometheus.Counter
	downBytes prometheus.Counter
	drives    *prometheus.CounterVec
	errors    prometheus.Counter
	log       *slog.Logger
}

// New makes a Recorder; remountCycles, if not nil, is read at each scrape.
func New(log *slog.Logger, remountCycles func() int64) *Recorder {
	reg := prometheus.NewRegistry()
	m := &Recorder{
		reg: reg,
		log: log,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "msdav_http_requests_total", Help: "HTTP requests by method and status code.",
		}, []string{"method", "code"}),
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "msdav_uploads_total", Help: "PUTs on the share by result (ok, refused, failed).",
		}, []string{"result"}),
		upBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "msdav_upload_bytes_total", Help: "Bytes received in PUT bodies on the share.",
		}),
		downBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "msdav_download_bytes_total", Help: "Bytes sent in GET responses on the share.",
		}),
		drives: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "msdav_drive_operations_total", Help: "Attach, eject and reconnect calls by result.",
		}, []string{"op", "result"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "msdav_errors_total", Help: "Responses with a 5xx status.",
		}),
	}
	reg.MustRegister(m.requests, m.uploads, m.upBytes, m.downBytes, m.drives, m.errors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if remountCycles != nil {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "msdav_remount_cycles_total", Help: "Times the store's filesystem was remounted rw by the remount guard.",
		}, func() float64 { return float64(remountCycles()) }))
	}
	return m
}

// Handler serves the metrics.
func (m *Recorder) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Wrap counts and logs every request to h.
func (m *Recorder) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, code: http.StatusOK}
		var body *countingBody
		if r.Body != nil && r.Body != http.NoBody {
			// Count on a shallow copy: net/http decides, from the type of the
			// original request's Body, whether a refused Expect: 100-continue
			// upload may be answered without reading (and so sending) it.
			body = &countingBody{ReadCloser: r.Body}
			r = r.WithContext(r.Context())
			r.Body = body
		}
		h.ServeHTTP(rec, r)
		var in int64
		if body != nil {
			in = body.n
		}
		m.observe(r, rec.code, in, rec.n)
		user, _, _ := r.BasicAuth()
		m.log.Info("http", "method", r.Method, "path", r.URL.Path, "status", rec.code,
			"in", in, "out", rec.n, "took", time.Since(start).Round(time.Microsecond), "user", user, "remote", r.RemoteAddr)
	})
}

func (m *Recorder) observe(r *http.Request, code int, in, out int64) {
	m.requests.WithLabelValues(r.Method, strconv.Itoa(code)).Inc()
	if code >= 500 {
		m.errors.Inc()
	}
	result := "ok"
	switch {
	case code >= 500:
		result = "failed"
	case code >= 400:
		result = "refused"
	}
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/dav") && r.Method == http.MethodPut:
		m.uploads.WithLabelValues(result).Inc()
		m.upBytes.Add(float64(in))
	case strings.HasPrefix(p, "/dav") && r.Method == http.MethodGet:
		m.downBytes.Add(float64(out))
	case strings.HasPrefix(p, "/api/drives/") && r.Method == http.MethodPut:
		m.drives.WithLabelValues("attach", result).Inc()
	case strings.HasPrefix(p, "/api/drives/") && r.Method == http.MethodDelete:
		m.drives.WithLabelValues("eject", result).Inc()
	case p == "/api/usb/reconnect":
		m.drives.WithLabelValues("reconnect", result).Inc()
	}
}

// recorder notes the status and size of a response. It passes ReadFrom
// through so that downloads keep sendfile.
type recorder struct {
	http.ResponseWriter
	code  int
	n     int64
	wrote bool
}

func (w *recorder) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	w.wrote = true
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

func (w *recorder) ReadFrom(r io.Reader) (int64, error) {
	w.wrote = true
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(w.ResponseWriter, r)
	}
	w.n += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (flush, deadlines).
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}
