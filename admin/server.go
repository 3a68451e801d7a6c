package admin

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sourcegraph/conc"

	"github.com/replaykit/replay/pipeline"
	"github.com/replaykit/replay/sources"
)

// shutdownTimeout bounds how long Run waits for in-flight admin requests
// (a scrape, a status call) once its context ends.
const shutdownTimeout = 5 * time.Second

// StatsSource gives a snapshot of the pipeline's counters; *pipeline.Pipeline
// is one.
type StatsSource interface {
	Stats() pipeline.Stats
}

var _ StatsSource = (*pipeline.Pipeline)(nil)

// Readiness reports whether the process is ready for work: nil when ready,
// else an error saying why not (shown by /readyz).
type Readiness interface {
	Ready(ctx context.Context) error
}

// ReadinessFunc adapts a function to Readiness.
type ReadinessFunc func(ctx context.Context) error

// Ready calls f.
func (f ReadinessFunc) Ready(ctx context.Context) error { return f(ctx) }

// LagSource gives the consumer lag per partition; *sources.Kafka is one.
type LagSource interface {
	Lag() []sources.PartitionLag
}

var _ LagSource = (*sources.Kafka)(nil)

// Deps is what the admin server reads, and the one thing it changes: the
// live control, through Control.
type Deps struct {
	// Stats is required: /metrics and /v1/status read it.
	Stats StatsSource
	// Control serves GET and PUT /v1/control and the control metrics; nil
	// = no /v1/control.
	Control Controller
	// Lag gives the consumer lag for /metrics and /v1/status; nil = none
	// (a file source).
	Lag LagSource
	// Readiness decides /readyz; nil = always ready.
	Readiness Readiness
	// Health is the part of Readiness that asks nothing over the network
	// (the pipeline's and the sink's own state), shown by /v1/status as
	// its state and reasons; nil = always healthy.
	Health Readiness
	// Liveness decides /healthz: nil = live while the process answers;
	// else an error says why the process is wedged and must be
	// restarted.
	Liveness Readiness
	// RunID, Target and Baseline (replay.baseline; empty when off) are
	// shown by /v1/status.
	RunID    string
	Target   string
	Baseline string
	// StartedAt is when the run started, for /v1/status; zero = when New
	// was called.
	StartedAt time.Time
	// Now is the server's clock; nil = time.Now. Tests freeze it.
	Now func() time.Time
}

// Server is the admin HTTP server. Create it with New, hand Observer to
// the pipeline, and serve with Run, once.
type Server struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	handler  http.Handler
	observer *Observer

	started   chan struct{} // closed once the listener is bound
	startOnce sync.Once
	addr      string // the bound address; set before started is closed
}

// New builds a Server for cfg reading deps. A nil logger discards logs.
func New(cfg Config, deps Deps, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.StartedAt.IsZero() {
		deps.StartedAt = deps.Now()
	}
	endpoints := newEndpointLabels()
	s := &Server{cfg: cfg, deps: deps, log: logger, started: make(chan struct{}),
		observer: newObserver(deps.Now, endpoints)}
	stats := newStatsCollector(deps.Stats, deps.Control, deps.Lag, endpoints)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.page)
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(newRegistry(stats, s.observer), promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}))
	mux.Handle("GET /v1/status", s.authorize(http.HandlerFunc(s.status)))
	mux.Handle("GET /v1/series", s.authorize(http.HandlerFunc(s.series)))
	if deps.Control != nil {
		mux.Handle("GET /v1/control", s.authorize(http.HandlerFunc(s.getControl)))
		mux.Handle("PUT /v1/control", s.authorize(http.HandlerFunc(s.putControl)))
	}
	s.handler = mux
	return s
}

// Observer returns the observer of finished replays, flushes and commits
// that feeds the server's latency metrics, last-minute numbers and series:
// pass it to Pipeline.SetObserver before Run.
func (s *Server) Observer() *Observer { return s.observer }

// Handler returns the server's routes, for embedding or tests.
func (s *Server) Handler() http.Handler { return s.handler }

// Started is closed once Run has bound its listener; Addr is set then.
func (s *Server) Started() <-chan struct{} { return s.started }

// Addr returns the bound address (host:port) once Started is closed, else "".
func (s *Server) Addr() string {
	select {
	case <-s.started:
		return s.addr
	default:
		return ""
	}
}

// Listen binds cfg.Listen, for Serve. A bind failure names admin.listen.
// A process binds before it creates anything, so a taken port refuses the
// run before tables are created or a consumer group is joined.
func Listen(ctx context.Context, cfg Config) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin server: cannot listen on admin.listen %q: %w; pick a free port or set admin.listen to \"\" to disable it", cfg.Listen, err)
	}
	return ln, nil
}

// Run binds cfg.Listen and serves until ctx ends, then shuts down
// gracefully, waiting at most a few seconds for requests in progress. A
// bind failure is returned at once, naming admin.listen.
func (s *Server) Run(ctx context.Context) error {
	ln, err := Listen(ctx, s.cfg)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln (from Listen) until ctx ends, then shuts down
// gracefully like Run. It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.addr = ln.Addr().String()
	s.startOnce.Do(func() { close(s.started) })
	s.log.Info("admin server listening", "addr", s.addr, "auth", s.cfg.Token != "")

	served := make(chan error, 1)
	stopTicking := make(chan struct{})
	var wg conc.WaitGroup
	defer wg.Wait()
	defer close(stopTicking)
	wg.Go(func() { served <- srv.Serve(ln) })
	wg.Go(func() { s.tickEverySecond(stopTicking) })

	select {
	case err := <-served:
		return fmt.Errorf("admin server on %s: %w", s.addr, err)
	case <-ctx.Done():
	}
	t := time.Now()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close() // requests still running after the timeout are cut
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin server on %s: %w", s.addr, err)
	}
	s.log.Info("admin server stopped", "addr", s.addr, "took", time.Since(t).Round(time.Millisecond))
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.deps.Liveness != nil {
		if err := s.deps.Liveness.Ready(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "wedged:\n  %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  "))
			return
		}
	}
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.deps.Readiness != nil {
		if err := s.deps.Readiness.Ready(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready:\n  %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  "))
			return
		}
	}
	_, _ = w.Write([]byte("ready\n"))
}

// tickEverySecond turns each complete second into a sample of the series,
// until stop is closed.
func (s *Server) tickEverySecond(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.tick()
		}
	}
}

// tick seals the complete seconds into samples, with the lag and the
// control as they are now.
func (s *Server) tick() {
	var x sampleExtras
	if s.deps.Lag != nil {
		total := lagTotal(s.deps.Lag.Lag())
		x.lag = &total
	}
	if s.deps.Control != nil {
		st := s.deps.Control.Control()
		x.targetRate, x.paused = st.EffectiveRate, st.Paused || st.PausedBy != ""
	}
	s.observer.window.seal(s.deps.Now(), x)
}

// Series is the body of GET /v1/series: one sample per second for the last
// five minutes, oldest first; with ?since=UNIX_SECONDS only the later
// ones.
type Series struct {
	StepSeconds int      `json:"step_seconds"`
	Samples     []Sample `json:"samples"`
}

func (s *Server) series(w http.ResponseWriter, r *http.Request) {
	var since int64
	if v := r.URL.Query().Get("since"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, ErrorBody{Error: fmt.Sprintf("since: want Unix seconds, got %q", v)})
			return
		}
		since = n
	}
	writeJSON(w, http.StatusOK, Series{StepSeconds: 1, Samples: s.observer.window.samples(since)})
}

// authorize requires "Authorization: Bearer <cfg.Token>" when a token is
// configured; the comparison takes constant time.
func (s *Server) authorize(next http.Handler) http.Handler {
	if s.cfg.Token == "" {
		return next
	}
	want := []byte(s.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="replay admin"`)
			http.Error(w, "unauthorized: send Authorization: Bearer <admin.token>", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
