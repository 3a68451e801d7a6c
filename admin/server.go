package admin

import (
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sourcegraph/conc"

	"github.com/replaykit/replay/pipeline"
	"github.com/replaykit/replay/schemas"
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

// Deps is what the admin server reads; it never changes any of it.
type Deps struct {
	// Stats is required: /metrics and /v1/status read it.
	Stats StatsSource
	// Readiness decides /readyz; nil = always ready.
	Readiness Readiness
	// RunID, Target and Baseline (replay.baseline; empty when off) are
	// shown by /v1/status.
	RunID    string
	Target   string
	Baseline string
	// StartedAt is when the run started, for /v1/status; zero = when New
	// was called.
	StartedAt time.Time
}

// Server is the admin HTTP server. Create it with New and serve with Run,
// once.
type Server struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	handler http.Handler

	started   chan struct{} // closed once the listener is bound
	startOnce sync.Once
	addr      string // the bound address; set before started is closed
}

// New builds a Server for cfg reading deps. A nil logger discards logs.
func New(cfg Config, deps Deps, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if deps.StartedAt.IsZero() {
		deps.StartedAt = time.Now()
	}
	s := &Server{cfg: cfg, deps: deps, log: logger, started: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(newRegistry(deps.Stats), promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}))
	mux.Handle("GET /v1/status", s.authorize(http.HandlerFunc(s.status)))
	s.handler = mux
	return s
}

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

// Run binds cfg.Listen and serves until ctx ends, then shuts down
// gracefully, waiting at most a few seconds for requests in progress. A
// bind failure is returned at once, naming admin.listen.
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("admin server: cannot listen on admin.listen %q: %w; pick a free port or set admin.listen to \"\" to disable it", s.cfg.Listen, err)
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.addr = ln.Addr().String()
	s.startOnce.Do(func() { close(s.started) })
	s.log.Info("admin server listening", "addr", s.addr, "auth", s.cfg.Token != "")

	served := make(chan error, 1)
	var wg conc.WaitGroup
	defer wg.Wait()
	wg.Go(func() { served <- srv.Serve(ln) })

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

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.deps.Readiness != nil {
		if err := s.deps.Readiness.Ready(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
	}
	_, _ = w.Write([]byte("ready\n"))
}

// Status is the body of GET /v1/status.
type Status struct {
	RunID     string      `json:"run_id"`
	Target    string      `json:"target"`
	Baseline  string      `json:"baseline,omitempty"`
	StartedAt time.Time   `json:"started_at"`
	Uptime    string      `json:"uptime"` // Go duration, e.g. "1m30.5s"
	Stats     StatusStats `json:"stats"`
}

// StatusStats is pipeline.Stats as JSON, with snake_case names; see
// pipeline.Stats for what each counts. Committed offsets are a list, since
// JSON objects cannot be keyed by topic and partition.
type StatusStats struct {
	Consumed     int64            `json:"consumed"`
	Decoded      int64            `json:"decoded"`
	DeadLettered int64            `json:"dead_lettered"`
	Filtered     int64            `json:"filtered"`
	SkippedHeld  int64            `json:"skipped_held"`
	Replayed     int64            `json:"replayed"`
	Retries      int64            `json:"retries"`
	ReplayErrors map[string]int64 `json:"replay_errors"`
	Discarded    int64            `json:"discarded"`
	Abandoned    int64            `json:"abandoned"`
	RowsWritten  map[string]int64 `json:"rows_written"` // by table name
	Flushes      int64            `json:"flushes"`
	Commits      int64            `json:"commits"`
	CommitErrors int64            `json:"commit_errors"`
	InFlight     int64            `json:"in_flight"`
	Breaker      string           `json:"breaker"`
	BreakerOpens int64            `json:"breaker_opens"`
	Committed    []CommittedAt    `json:"committed"`
}

// CommittedAt is the next offset to read of one partition, as last
// committed to the source.
type CommittedAt struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

func statusStats(s pipeline.Stats) StatusStats {
	out := StatusStats{
		Consumed: s.Consumed, Decoded: s.Decoded, DeadLettered: s.DeadLettered, Filtered: s.Filtered,
		SkippedHeld: s.SkippedHeld, Replayed: s.Replayed, Retries: s.Retries,
		ReplayErrors: s.ReplayErrors, Discarded: s.Discarded, Abandoned: s.Abandoned,
		RowsWritten: map[string]int64{
			schemas.TableProduction:  s.RowsWritten.Production,
			schemas.TableReplay:      s.RowsWritten.Replay,
			schemas.TableBaseline:    s.RowsWritten.Baseline,
			schemas.TableDeadLetters: s.RowsWritten.DeadLetter,
		},
		Flushes: s.Flushes, Commits: s.Commits, CommitErrors: s.CommitErrors,
		InFlight: s.InFlight, Breaker: s.Breaker, BreakerOpens: s.BreakerOpens,
		Committed: []CommittedAt{},
	}
	if out.ReplayErrors == nil {
		out.ReplayErrors = map[string]int64{}
	}
	for tp, off := range s.Committed {
		out.Committed = append(out.Committed, CommittedAt{Topic: tp.Topic, Partition: tp.Partition, Offset: off})
	}
	slices.SortFunc(out.Committed, func(a, b CommittedAt) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return out
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	st := Status{
		RunID:     s.deps.RunID,
		Target:    s.deps.Target,
		Baseline:  s.deps.Baseline,
		StartedAt: s.deps.StartedAt.UTC(),
		Uptime:    time.Since(s.deps.StartedAt).Round(time.Millisecond).String(),
		Stats:     statusStats(s.deps.Stats.Stats()),
	}
	raw, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		http.Error(w, "render status: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(raw, '\n'))
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
