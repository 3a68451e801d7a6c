package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replaykit/replay/admin"
	"github.com/replaykit/replay/config"
	"github.com/replaykit/replay/pipeline"
	"github.com/replaykit/replay/schemas"
	"github.com/replaykit/replay/service"
)

type fakeStats struct{ s pipeline.Stats }

func (f fakeStats) Stats() pipeline.Stats { return f.s }

var sampleStats = pipeline.Stats{
	Consumed: 42, Decoded: 40, DeadLettered: 2, Filtered: 5, Replayed: 35, Retries: 3,
	ReplayErrors: map[string]int64{schemas.ErrorTimeout: 4, schemas.ErrorRefused: 1},
	RowsWritten:  pipeline.TableRows{Production: 40, Replay: 35, Baseline: 34, DeadLetter: 2},
	Flushes:      6, Commits: 5, CommitErrors: 1, InFlight: 7,
	Breaker: pipeline.BreakerOpen, BreakerOpens: 2,
	DeadLetters:  map[string]int64{schemas.ReasonBadJSON: 1, schemas.ReasonBodyTooLarge: 1},
	DuplicateIDs: 3,
	Committed:    schemas.Offsets{{Topic: "captures", Partition: 1}: 20, {Topic: "captures", Partition: 0}: 22},
}

// start runs an admin server on a free loopback port and returns its base
// URL; it stops when the test ends.
func start(t *testing.T, cfg admin.Config, deps admin.Deps, logger ...*slog.Logger) string {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	var l *slog.Logger
	if len(logger) > 0 {
		l = logger[0]
	}
	return serve(t, admin.New(cfg, deps, l))
}

// serve runs srv until the test ends and returns its base URL.
func serve(t *testing.T, srv *admin.Server) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("admin Run: %v", err)
		}
	})
	select {
	case <-srv.Started():
	case err := <-done:
		t.Fatalf("admin Run ended before listening: %v", err)
	}
	if srv.Addr() == "" {
		t.Fatal("Addr is empty after Started")
	}
	return "http://" + srv.Addr()
}

func get(t *testing.T, url string, header ...string) (int, string) {
	t.Helper()
	return request(t, http.MethodGet, url, "", header...)
}

// request sends body (none when empty; else as JSON) with the header
// name, value pairs, and returns the status and body of the answer.
func request(t *testing.T, method, url, body string, header ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(raw)
}

func TestAdminHealthz(t *testing.T) {
	base := start(t, admin.Config{}, admin.Deps{Stats: fakeStats{}})
	if code, body := get(t, base+"/healthz"); code != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Fatalf("/healthz = %d %q, want 200 ok", code, body)
	}
}

func TestAdminReadyz(t *testing.T) {
	var ready atomic.Bool
	base := start(t, admin.Config{}, admin.Deps{Stats: fakeStats{}, Readiness: admin.ReadinessFunc(func(context.Context) error {
		if !ready.Load() {
			return errors.New("pipeline not started")
		}
		return nil
	})})
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "pipeline not started") {
		t.Fatalf("/readyz before ready = %d %q, want 503 with the reason", code, body)
	}
	ready.Store(true)
	if code, body := get(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz when ready = %d %q, want 200", code, body)
	}
}

func TestAdminReadyzWithoutReadinessIsReady(t *testing.T) {
	base := start(t, admin.Config{}, admin.Deps{Stats: fakeStats{}})
	if code, body := get(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz = %d %q, want 200", code, body)
	}
}

func TestAdminMetrics(t *testing.T) {
	base := start(t, admin.Config{Token: "secret"}, admin.Deps{Stats: fakeStats{sampleStats}})
	code, body := get(t, base+"/metrics") // open even with a token
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d\n%s", code, body)
	}
	for _, line := range []string{
		"replay_records_consumed_total 42",
		"replay_records_decoded_total 40",
		"replay_records_dead_lettered_total 2",
		`replay_dead_letters_total{reason="bad_json"} 1`,
		`replay_dead_letters_total{reason="body_too_large"} 1`,
		`replay_dead_letters_total{reason="missing_request"} 0`,
		"replay_duplicate_ids_total 3",
		"replay_records_filtered_total 5",
		"replay_replayed_total 35",
		`replay_replay_errors_total{kind="timeout"} 4`,
		`replay_replay_errors_total{kind="refused"} 1`,
		`replay_replay_errors_total{kind="dns"} 0`,
		"replay_retries_total 3",
		`replay_rows_written_total{table="production_responses"} 40`,
		`replay_rows_written_total{table="replay_responses"} 35`,
		`replay_rows_written_total{table="baseline_responses"} 34`,
		`replay_rows_written_total{table="dead_letters"} 2`,
		"replay_flushes_total 6",
		"replay_commits_total 5",
		"replay_commit_errors_total 1",
		"replay_in_flight 7",
		`replay_breaker_state{state="open"} 1`,
		`replay_breaker_state{state="closed"} 0`,
		`replay_breaker_state{state="half-open"} 0`,
		"replay_breaker_opens_total 2",
		"# TYPE replay_records_consumed_total counter",
		"# TYPE replay_in_flight gauge",
		"go_goroutines ",
		"process_start_time_seconds ",
	} {
		if !strings.Contains(body, line+"\n") && !strings.Contains(body, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

func TestAdminStatus(t *testing.T) {
	startedAt := time.Now().Add(-time.Minute)
	base := start(t, admin.Config{}, admin.Deps{Stats: fakeStats{sampleStats}, RunID: "try-1",
		Target: "http://candidate:8080", Baseline: "http://old-copy:8080", StartedAt: startedAt})
	code, body := get(t, base+"/v1/status")
	if code != http.StatusOK {
		t.Fatalf("/v1/status = %d\n%s", code, body)
	}
	var st admin.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("status is not JSON: %v\n%s", err, body)
	}
	if st.RunID != "try-1" || st.Target != "http://candidate:8080" || st.Baseline != "http://old-copy:8080" || !st.StartedAt.Equal(startedAt.UTC()) {
		t.Errorf("status header fields: %+v", st)
	}
	if up, err := time.ParseDuration(st.Uptime); err != nil || up < time.Minute {
		t.Errorf("uptime %q, want ≥ 1m", st.Uptime)
	}
	s := st.Stats
	if s.Consumed != 42 || s.Replayed != 35 || s.ReplayErrors[schemas.ErrorTimeout] != 4 ||
		s.RowsWritten[schemas.TableReplay] != 35 || s.RowsWritten[schemas.TableBaseline] != 34 || s.InFlight != 7 || s.Breaker != pipeline.BreakerOpen {
		t.Errorf("status stats: %+v", s)
	}
	want := []admin.CommittedAt{{Topic: "captures", Partition: 0, Offset: 22}, {Topic: "captures", Partition: 1, Offset: 20}}
	if len(s.Committed) != 2 || s.Committed[0] != want[0] || s.Committed[1] != want[1] {
		t.Errorf("committed = %+v, want %+v", s.Committed, want)
	}
}

func TestAdminToken(t *testing.T) {
	base := start(t, admin.Config{Token: "s3cret"}, admin.Deps{Stats: fakeStats{sampleStats}})
	for _, tc := range []struct {
		name   string
		header []string
		want   int
	}{
		{"no header", nil, http.StatusUnauthorized},
		{"wrong token", []string{"Authorization", "Bearer nope"}, http.StatusUnauthorized},
		{"not bearer", []string{"Authorization", "Basic s3cret"}, http.StatusUnauthorized},
		{"right token", []string{"Authorization", "Bearer s3cret"}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := get(t, base+"/v1/status", tc.header...); code != tc.want {
				t.Errorf("/v1/status = %d %q, want %d", code, body, tc.want)
			}
		})
	}
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz must not need the token, got %d", code)
	}
}

func TestAdminListenInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = admin.New(admin.Config{Listen: ln.Addr().String()}, admin.Deps{Stats: fakeStats{}}, nil).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "admin.listen") {
		t.Fatalf("Run on a port in use = %v, want an error naming admin.listen", err)
	}
}

func TestAdminConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  admin.Config
		want string // "" = valid
	}{
		{admin.Config{}, ""},
		{admin.Config{Listen: "127.0.0.1:9464", Token: "t"}, ""},
		{admin.Config{Listen: ":0"}, ""},
		{admin.Config{Listen: "127.0.0.1:0"}, ""},
		{admin.Config{Listen: "9464"}, "listen: want host:port"},
		{admin.Config{Listen: "localhost:http"}, "listen: port must be a number"},
		{admin.Config{Listen: "localhost:70000"}, "listen: port must be a number"},
		{admin.Config{Token: "a b"}, "token: must not contain whitespace"},
	} {
		errs := tc.cfg.Validate()
		switch {
		case tc.want == "" && len(errs) > 0:
			t.Errorf("%+v: unexpected %v", tc.cfg, errs)
		case tc.want != "" && (len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), tc.want)):
			t.Errorf("%+v: got %v, want one error starting %q", tc.cfg, errs, tc.want)
		}
	}
	cfg := config.Default()
	cfg.RunID = "x"
	cfg.Pipeline.Replay.Target = "http://127.0.0.1:1"
	cfg.Admin.Listen = "nope"
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "admin.listen: ") {
		t.Errorf("config.Validate = %v, want a problem at admin.listen", err)
	}
}

// addrHandler reports the address the admin server logs when it listens.
type addrHandler struct {
	slog.Handler
	addr chan string
}

func (h addrHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "admin server listening" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "addr" {
				h.addr <- a.Value.String()
			}
			return true
		})
	}
	return h.Handler.Handle(ctx, r)
}

func (h addrHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return addrHandler{h.Handler.WithAttrs(as), h.addr}
}

func (h addrHandler) WithGroup(name string) slog.Handler {
	return addrHandler{h.Handler.WithGroup(name), h.addr}
}

// TestAdminThroughServiceRun replays the sample capture file through
// service.Run with the admin server on and scrapes it mid-run: the target
// holds every request until the test has looked, so the run cannot end
// first.
func TestAdminThroughServiceRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	firstRequest, release := make(chan struct{}), make(chan struct{})
	var firstOnce, releaseOnce sync.Once
	tgt := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		firstOnce.Do(func() { close(firstRequest) })
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	defer tgt.Close()
	letGo := func() { releaseOnce.Do(func() { close(release) }) }
	defer letGo() // before tgt.Close, which waits for handlers

	dir := t.TempDir()
	cfg := config.Default()
	cfg.RunID = "admin-1"
	cfg.Source.Type = "file"
	cfg.Source.File.Path = "../testdata/captures/sample.ndjson"
	cfg.Pipeline.Replay.Target = tgt.URL
	cfg.Sink.Catalog.URI = filepath.Join(dir, "catalog.db")
	cfg.Sink.Catalog.Warehouse = filepath.Join(dir, "wh")
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Admin.Token = "tok"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan string, 1)
	logger := slog.New(addrHandler{slog.NewTextHandler(io.Discard, nil), addrs})

	type outcome struct {
		res *service.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := service.Run(ctx, cfg, logger)
		done <- outcome{res, err}
	}()

	var base string
	select {
	case a := <-addrs:
		base = "http://" + a
	case o := <-done:
		t.Fatalf("service.Run ended before the admin server listened: %v", o.err)
	}
	select {
	case <-firstRequest:
	case o := <-done:
		t.Fatalf("service.Run ended before replaying: %v", o.err)
	}

	// Mid-run: the file is read in one poll, and every replay waits on the target.
	code, body := get(t, base+"/metrics")
	if code != http.StatusOK || !strings.Contains(body, "\nreplay_records_consumed_total 22\n") {
		t.Fatalf("/metrics mid-run = %d, want replay_records_consumed_total 22:\n%s", code, grepReplay(body))
	}
	if strings.Contains(body, "\nreplay_in_flight 0\n") {
		t.Errorf("/metrics mid-run shows nothing in flight:\n%s", grepReplay(body))
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz mid-run = %d %q, want 200", code, body)
	}
	if code, _ := get(t, base+"/v1/status"); code != http.StatusUnauthorized {
		t.Errorf("/v1/status without the token = %d, want 401", code)
	}
	code, body = get(t, base+"/v1/status", "Authorization", "Bearer tok")
	var st admin.Status
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil || st.RunID != "admin-1" ||
		st.Target != tgt.URL || st.Stats.Consumed != 22 {
		t.Errorf("/v1/status mid-run = %d %v %+v", code, err, st)
	}

	letGo()
	o := <-done
	if o.err != nil {
		t.Fatalf("service.Run: %v", o.err)
	}
	defer o.res.Sink.Close()
	if s := o.res.Stats; s.Consumed != 22 || s.Replayed != 16 || s.DeadLettered != 2 {
		t.Errorf("stats: consumed %d, replayed %d, dead lettered %d; want 22, 16, 2", s.Consumed, s.Replayed, s.DeadLettered)
	}
	// The admin server stops with the run.
	if resp, err := http.Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("admin server still answers after service.Run returned: %d", resp.StatusCode)
	}
}

func TestAdminServiceRunFailsWhenListenInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.RunID = "admin-2"
	cfg.Source.Type = "file"
	cfg.Source.File.Path = "../testdata/captures/sample.ndjson"
	cfg.Pipeline.Replay.Target = "http://127.0.0.1:1"
	cfg.Sink.Catalog.URI = filepath.Join(dir, "catalog.db")
	cfg.Sink.Catalog.Warehouse = filepath.Join(dir, "wh")
	cfg.Admin.Listen = ln.Addr().String()
	res, err := service.Run(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err == nil {
		res.Sink.Close()
		t.Fatal("service.Run succeeded with admin.listen in use")
	}
	if !strings.Contains(err.Error(), "admin.listen") {
		t.Errorf("error %q does not name admin.listen", err)
	}
}

func grepReplay(body string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "replay_") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
