package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replaykit/replay/schemas"
)

// memSource serves fixed batches of records, then io.EOF (or, with block,
// waits for ctx to end), and records every Commit.
type memSource struct {
	batches [][]schemas.Record
	block   bool
	pollErr error // returned after the batches instead of io.EOF
	// failCommits makes that many Commit calls fail before they succeed;
	// -1 makes every call fail.
	failCommits int

	mu      sync.Mutex
	next    int
	commits []schemas.Offsets

	polled         atomic.Int64
	added          *atomic.Int64 // the sink's count, to measure in-flight records
	maxOutstanding atomic.Int64  // max of polled - added seen at a Poll
}

var _ Source = (*memSource)(nil)

func (s *memSource) Poll(ctx context.Context) ([]schemas.Record, error) {
	if s.added != nil {
		out := s.polled.Load() - s.added.Load()
		for m := s.maxOutstanding.Load(); out > m && !s.maxOutstanding.CompareAndSwap(m, out); m = s.maxOutstanding.Load() {
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.next < len(s.batches) {
		b := s.batches[s.next]
		s.next++
		s.mu.Unlock()
		s.polled.Add(int64(len(b)))
		return b, nil
	}
	s.mu.Unlock()
	switch {
	case s.pollErr != nil:
		return nil, s.pollErr
	case s.block:
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return nil, io.EOF
}

func (s *memSource) Commit(_ context.Context, o schemas.Offsets) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failCommits != 0 {
		s.failCommits--
		return errCommit
	}
	s.commits = append(s.commits, maps.Clone(o))
	return nil
}

var errCommit = errors.New("rebalance in progress")

// committed merges every Commit call.
func (s *memSource) committed() schemas.Offsets {
	s.mu.Lock()
	defer s.mu.Unlock()
	return mergeCommits(s.commits)
}

// mergeCommits merges Commit calls in order, panicking if an offset ever
// went back.
func mergeCommits(commits []schemas.Offsets) schemas.Offsets {
	out := schemas.Offsets{}
	for _, c := range commits {
		for tp, off := range c {
			if off < out[tp] {
				panic(fmt.Sprintf("offset of %v went back from %d to %d", tp, out[tp], off))
			}
			out[tp] = off
		}
	}
	return out
}

// memSink keeps results in memory and checks that each partition's results
// arrive in offset order, starting at 0, without gaps.
type memSink struct {
	t        *testing.T
	flushErr error
	onAdd    func(r *schemas.Result) // called after Add, from the sink goroutine
	onFlush  func(flushed int)

	mu       sync.Mutex
	next     map[schemas.TopicPartition]int64
	buffered []*schemas.Result
	flushed  []*schemas.Result
	added    atomic.Int64
}

var _ Sink = (*memSink)(nil)

func (s *memSink) Add(r *schemas.Result) error {
	s.mu.Lock()
	if s.next == nil {
		s.next = map[schemas.TopicPartition]int64{}
	}
	if want := s.next[r.Source.TP()]; r.Source.Offset != want {
		s.t.Errorf("Add(%s): want offset %d next on this partition", r.Source, want)
	}
	s.next[r.Source.TP()] = r.Source.Offset + 1
	s.buffered = append(s.buffered, r)
	s.mu.Unlock()
	s.added.Add(1)
	if s.onAdd != nil {
		s.onAdd(r)
	}
	return nil
}

func (s *memSink) Buffered() (int, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.buffered), int64(100 * len(s.buffered))
}

func (s *memSink) Flush(ctx context.Context) (schemas.Offsets, error) {
	if s.flushErr != nil {
		return nil, s.flushErr
	}
	s.mu.Lock()
	offsets := schemas.Offsets{}
	for _, r := range s.buffered {
		offsets[r.Source.TP()] = max(offsets[r.Source.TP()], r.Source.Offset+1)
	}
	s.flushed = append(s.flushed, s.buffered...)
	s.buffered = nil
	n := len(s.flushed)
	s.mu.Unlock()
	if s.onFlush != nil {
		s.onFlush(n)
	}
	return offsets, nil
}

func (s *memSink) results() (flushed, buffered []*schemas.Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*schemas.Result(nil), s.flushed...), append([]*schemas.Result(nil), s.buffered...)
}

const topic = "capture"

var capturedAt = time.Date(2026, 11, 21, 10, 15, 2, 0, time.UTC)

// envelope encodes a captured GET-like exchange.
func envelope(t *testing.T, cid, method, path, query string, headers map[string][]string) []byte {
	t.Helper()
	b, err := json.Marshal(schemas.Envelope{
		CorrelationID: cid,
		CapturedAt:    capturedAt,
		Request: &schemas.EnvelopeRequest{
			Method: method, Scheme: "https", Host: "api.example.com", Path: path, Query: query, Headers: headers,
		},
		Response: &schemas.EnvelopeResponse{Status: 200, Headers: map[string][]string{"Set-Cookie": {"s=prod"}}, Body: "prod", LatencyMS: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// simple returns n GET envelopes for partition p with path /v1/p{p}/{i}.
func simple(t *testing.T, p, n int) [][]byte {
	var out [][]byte
	for i := range n {
		out = append(out, envelope(t, fmt.Sprintf("p%d-o%d", p, i), "GET", fmt.Sprintf("/v1/p%d/%d", p, i), "", nil))
	}
	return out
}

// interleave turns per-partition values into records taken round-robin
// across partitions, cut into batches of size.
func interleave(parts [][][]byte, size int) [][]schemas.Record {
	var all []schemas.Record
	for i := 0; ; i++ {
		more := false
		for p, vals := range parts {
			if i < len(vals) {
				more = true
				all = append(all, schemas.Record{
					Coordinates: schemas.Coordinates{Topic: topic, Partition: int32(p), Offset: int64(i)},
					Key:         fmt.Appendf(nil, "k%d", i),
					Value:       vals[i],
				})
			}
		}
		if !more {
			break
		}
	}
	var batches [][]schemas.Record
	for len(all) > 0 {
		n := min(size, len(all))
		batches = append(batches, all[:n])
		all = all[n:]
	}
	return batches
}

func tp(p int32) schemas.TopicPartition { return schemas.TopicPartition{Topic: topic, Partition: p} }

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// signalLogger closes the returned channel when a log line with msg is
// written, and passes every line on to the test output.
func signalLogger(t *testing.T, msg string) (*slog.Logger, <-chan struct{}) {
	ch := make(chan struct{})
	h := &signalHandler{Handler: testLogger(t).Handler(), msg: msg, ch: ch, once: &sync.Once{}}
	return slog.New(h), ch
}

type signalHandler struct {
	slog.Handler
	msg  string
	ch   chan struct{}
	once *sync.Once
}

func (h *signalHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(func() { close(h.ch) })
	}
	return h.Handler.Handle(ctx, r)
}

func (h *signalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.Handler = h.Handler.WithAttrs(as)
	return &c
}

func (h *signalHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.Handler = h.Handler.WithGroup(name)
	return &c
}

// received is what the target saw of one request.
type received struct {
	Method, Path, Query, Host string
	Header                    http.Header
	Body                      string
}

// recorder is a target that records requests by X-Replay-Id, and counts
// them.
type recorder struct {
	mu   sync.Mutex
	reqs map[string]received
	hits map[string]int
	// before, when set, runs before the response is written.
	before func(r *http.Request)
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	if rec.reqs == nil {
		rec.reqs, rec.hits = map[string]received{}, map[string]int{}
	}
	id := r.Header.Get("X-Replay-Id")
	rec.reqs[id] = received{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Host, r.Header.Clone(), string(body)}
	rec.hits[id]++
	rec.mu.Unlock()
	if rec.before != nil {
		rec.before(r)
	}
	w.Header().Set("Set-Cookie", "s=replay")
	w.Header().Set("X-Lineage-Catalog", "v9")
	fmt.Fprintf(w, "replayed %s", r.URL.Path)
}

func (rec *recorder) get(id string) (received, bool) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	r, ok := rec.reqs[id]
	return r, ok
}

// counts returns how often each X-Replay-Id was received.
func (rec *recorder) counts() map[string]int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return maps.Clone(rec.hits)
}

func startPipeline(t *testing.T, ctx context.Context, cfg Config, src Source, sink Sink, log *slog.Logger) (*Pipeline, <-chan error) {
	t.Helper()
	if log == nil {
		log = testLogger(t)
	}
	p, err := New(cfg, src, sink, log)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	return p, errc
}

func TestEndToEnd(t *testing.T) {
	// /v1/p1/0 is held until /v1/p1/1 has arrived, so partition 1 completes
	// out of order and the sequencer must put it back in order.
	p1second := make(chan struct{})
	target := &recorder{before: func(r *http.Request) {
		switch r.URL.Path {
		case "/api/v2/p1/0":
			<-p1second
		case "/api/v2/p1/1":
			close(p1second)
		}
	}}
	srv := httptest.NewServer(target)
	t.Cleanup(srv.Close)

	secretHeaders := map[string][]string{
		"Authorization": {"Bearer secret"}, "cookie": {"sid=1"}, "X-Debug": {"1"}, "Accept": {"application/json"},
	}
	p0 := [][]byte{
		envelope(t, "first", "GET", "/v1/titles/1", "lang=fr&debug=1", secretHeaders),
		[]byte("not json"),
		envelope(t, "post", "POST", "/v1/titles", "", nil),
		envelope(t, "health", "GET", "/v1/health", "", nil),
	}
	p2 := append([][]byte{
		[]byte(`{"request": null}`),
		envelope(t, "", "HEAD", "/v1/derived", "", nil), // no correlation ID: derived from the coordinates
	}, simple(t, 2, 6)[2:]...)
	batches := interleave([][][]byte{p0, simple(t, 1, 10), p2}, 3)
	batches[0][1].Timestamp = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) // p1/0: has a broker timestamp
	batches[1][0].Timestamp = time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC) // p0/1: the garbage

	cfg := validConfig()
	cfg.Replay.Target = srv.URL + "/api"
	cfg.Replay.Workers = 4
	cfg.Limits.MaxInFlight = 8
	cfg.Filter.ExcludePaths = []string{"/health$"}
	cfg.Rewrite = []RewriteRule{
		{Path: &PathRewrite{Match: "^/v1/", Replace: "/v2/"}},
		{Query: &QueryRewrite{Set: map[string]string{"lang": "en"}, Remove: []string{"debug"}}},
		{Header: &HeaderRewrite{Set: map[string]string{"X-Env": "shadow"}, Remove: []string{"X-Debug"}}},
	}
	cfg.Flush = FlushPolicy{Rows: 3}
	src := &memSource{batches: batches}
	sink := &memSink{t: t}

	p, errc := startPipeline(t, context.Background(), cfg, src, sink, nil)
	if err := <-errc; err != nil {
		t.Fatalf("Run() = %v", err)
	}

	flushed, buffered := sink.results()
	if len(buffered) != 0 || len(flushed) != 4+10+6 {
		t.Fatalf("flushed %d, buffered %d; want 20 flushed, 0 buffered", len(flushed), len(buffered))
	}
	byCoord := map[string]*schemas.Result{}
	for _, r := range flushed {
		byCoord[r.Source.String()] = r
	}
	res := func(p, o int) *schemas.Result { return byCoord[fmt.Sprintf("%s/%d@%d", topic, p, o)] }

	// Dead letters.
	for _, c := range []struct {
		p, o   int
		reason string
	}{{0, 1, "bad_json"}, {2, 0, "missing_request"}} {
		r := res(c.p, c.o)
		dl := r.DeadLetter
		if dl == nil || r.Production != nil || r.Replay != nil {
			t.Fatalf("%d@%d: want only a dead letter, got %+v", c.p, c.o, r)
		}
		if dl.Reason != c.reason || dl.RunID != "run-1" || dl.Error == "" || string(dl.Key) != fmt.Sprintf("k%d", c.o) ||
			dl.CorrelationID != schemas.DeriveCorrelationID(r.Source) || dl.Source != r.Source {
			t.Errorf("%d@%d: dead letter %+v", c.p, c.o, dl)
		}
	}
	if dl := res(0, 1).DeadLetter; string(dl.Raw) != "not json" || !dl.CapturedAt.Equal(time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)) {
		t.Errorf("garbage dead letter raw %q captured %v; want the raw bytes and the record timestamp", dl.Raw, dl.CapturedAt)
	}
	if dl := res(2, 0).DeadLetter; dl.CapturedAt.IsZero() {
		t.Errorf("dead letter without record timestamp has no captured_at")
	}

	// Not selected: production row only.
	for _, o := range []int{2, 3} {
		if r := res(0, o); r.Production == nil || r.Replay != nil || r.DeadLetter != nil {
			t.Errorf("0@%d: want a production row only, got %+v", o, r)
		}
	}

	// Selected: production and replay rows, and the target saw the rewritten request.
	selected := map[string]string{"first": "/api/v2/titles/1", schemas.DeriveCorrelationID(schemas.Coordinates{Topic: topic, Partition: 2, Offset: 1}): "/api/v2/derived"}
	for i := range 10 {
		selected[fmt.Sprintf("p1-o%d", i)] = fmt.Sprintf("/api/v2/p1/%d", i)
	}
	for i := 2; i < 6; i++ {
		selected[fmt.Sprintf("p2-o%d", i)] = fmt.Sprintf("/api/v2/p2/%d", i)
	}
	replayRows := 0
	for _, r := range flushed {
		if r.Replay == nil {
			continue
		}
		replayRows++
		cid := r.Replay.CorrelationID
		wantPath, ok := selected[cid]
		if !ok {
			t.Errorf("unexpected replay row for %s (%s)", cid, r.Source)
			continue
		}
		if r.Production == nil || r.Production.Exchange.CorrelationID != cid || r.Production.RunID != "run-1" {
			t.Errorf("%s: production row %+v", cid, r.Production)
		}
		got, ok := target.get(cid)
		if !ok {
			t.Errorf("%s: the target never saw X-Replay-Id %q", r.Source, cid)
			continue
		}
		if got.Path != wantPath || got.Header.Get("X-Env") != "shadow" || got.Host != strings.TrimPrefix(srv.URL, "http://") {
			t.Errorf("%s: target saw path %q host %q headers %v", cid, got.Path, got.Host, got.Header)
		}
		rr := r.Replay
		wantBody := "replayed " + wantPath
		if got.Method == "HEAD" {
			wantBody = ""
		}
		if rr.ErrorKind != "" || rr.Response == nil || rr.Response.Status != 200 || string(rr.Response.Body) != wantBody ||
			rr.Attempts != 1 || rr.Lineage["catalog"] != "v9" || rr.Request.Path != wantPath || rr.Target != srv.URL || rr.RunID != "run-1" ||
			!rr.CapturedAt.Equal(capturedAt) || rr.ReplayedAt.IsZero() || rr.Source != r.Source {
			t.Errorf("%s: replay row %+v, response %+v", cid, rr, rr.Response)
		}
		if rr.Response.Headers["Set-Cookie"][0] != Redacted {
			t.Errorf("%s: replay response Set-Cookie not redacted: %v", cid, rr.Response.Headers)
		}
	}
	if replayRows != len(selected) {
		t.Errorf("%d replay rows, want %d", replayRows, len(selected))
	}

	// The first record: rewritten query and headers, original secrets at the
	// target, redacted in every row.
	got, _ := target.get("first")
	if got.Method != "GET" || got.Query != "lang=en" || got.Header.Get("X-Debug") != "" || got.Header.Get("Accept") != "application/json" ||
		got.Header.Get("Authorization") != "Bearer secret" || got.Header.Get("Cookie") != "sid=1" {
		t.Errorf("target saw %s ?%s headers %v", got.Method, got.Query, got.Header)
	}
	first := res(0, 0)
	prodReq := first.Production.Exchange.Request.Headers
	if prodReq["Authorization"][0] != Redacted || prodReq["cookie"][0] != Redacted || prodReq["X-Debug"][0] != "1" {
		t.Errorf("production request headers %v: want Authorization and cookie redacted, the rest as captured", prodReq)
	}
	if h := first.Production.Exchange.Response.Headers; h["Set-Cookie"][0] != Redacted {
		t.Errorf("production response headers %v: want Set-Cookie redacted", h)
	}
	sent := first.Replay.Request.Headers
	if sent["Authorization"][0] != Redacted || sent["Cookie"][0] != Redacted || sent["X-Replay-Id"][0] != "first" || sent["X-Env"][0] != "shadow" {
		t.Errorf("replay request headers %v", sent)
	}
	if first.Replay.Request.Query != "lang=en" {
		t.Errorf("replay request query %q", first.Replay.Request.Query)
	}
	if !res(1, 0).Production.Exchange.CapturedAt.Equal(capturedAt) {
		t.Errorf("envelope captured_at not kept")
	}

	// Offsets: last offset + 1 per partition, committed after flushes.
	want := schemas.Offsets{tp(0): 4, tp(1): 10, tp(2): 6}
	if got := src.committed(); !maps.Equal(got, want) {
		t.Errorf("committed %v, want %v", got, want)
	}

	s := p.Stats()
	if s.Consumed != 20 || s.Decoded != 18 || s.DeadLettered != 2 || s.Filtered != 2 || s.Replayed != 16 || len(s.ReplayErrors) != 0 ||
		s.RowsWritten != (TableRows{Production: 18, Replay: 16, DeadLetter: 2}) || s.Flushes < 6 || s.Commits != s.Flushes ||
		s.InFlight != 0 || !maps.Equal(s.Committed, want) {
		t.Errorf("stats = %+v", s)
	}
}

func TestBackpressureBoundsInFlight(t *testing.T) {
	const maxInFlight, batch = 4, 2
	var cur, peak atomic.Int64
	arrived := make(chan struct{}, 64)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		defer cur.Add(-1)
		for m := peak.Load(); n > m && !peak.CompareAndSwap(m, n); m = peak.Load() {
		}
		arrived <- struct{}{}
		<-release
	}))
	t.Cleanup(srv.Close)

	cfg := validConfig()
	cfg.Replay.Target = srv.URL
	cfg.Replay.Workers = 8 // more workers than slots: the slots must be the bound
	cfg.Limits.MaxInFlight = maxInFlight
	cfg.Flush = FlushPolicy{Rows: 5}
	sink := &memSink{t: t}
	src := &memSource{batches: interleave([][][]byte{simple(t, 0, 20), simple(t, 1, 20)}, batch), added: &sink.added}
	sink.onAdd = func(*schemas.Result) {
		if n := src.polled.Load() - sink.added.Load(); n > maxInFlight+batch {
			t.Errorf("%d records polled and not handed to the sink, want ≤ %d", n, maxInFlight+batch)
		}
	}
	p, errc := startPipeline(t, context.Background(), cfg, src, sink, nil)

	for range maxInFlight {
		<-arrived
	}
	// Every slot is taken by a request the target holds: intake is blocked.
	if s := p.Stats(); s.InFlight != maxInFlight {
		t.Errorf("InFlight = %d, want %d", s.InFlight, maxInFlight)
	}
	if n := src.polled.Load(); n > maxInFlight+batch {
		t.Errorf("polled %d records while %d slots were held, want ≤ %d", n, maxInFlight, maxInFlight+batch)
	}
	close(release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if n := peak.Load(); n > maxInFlight {
		t.Errorf("the target saw %d concurrent requests, want ≤ %d", n, maxInFlight)
	}
	if n := src.maxOutstanding.Load(); n > maxInFlight {
		t.Errorf("at a Poll, %d records were polled and not yet added, want ≤ %d", n, maxInFlight)
	}
	if flushed, _ := sink.results(); len(flushed) != 40 {
		t.Errorf("%d results, want 40", len(flushed))
	}
	if got, want := src.committed(), (schemas.Offsets{tp(0): 20, tp(1): 20}); !maps.Equal(got, want) {
		t.Errorf("committed %v, want %v", got, want)
	}
}

func TestCancelDrainsInFlightAndCommits(t *testing.T) {
	slowArrived := make(chan struct{})
	release := make(chan struct{})
	target := &recorder{before: func(r *http.Request) {
		if r.URL.Path == "/v1/p0/2" {
			close(slowArrived)
			<-release
		}
	}}
	srv := httptest.NewServer(target)
	t.Cleanup(srv.Close)

	cfg := validConfig()
	cfg.Replay.Target = srv.URL
	cfg.Replay.Workers = 4
	cfg.Limits.MaxInFlight = 6
	cfg.Flush = FlushPolicy{Rows: 4}
	src := &memSource{batches: interleave([][][]byte{simple(t, 0, 10), simple(t, 1, 10), simple(t, 2, 10)}, 3), block: true}
	sink := &memSink{t: t}
	log, intakeStopped := signalLogger(t, "shutdown: intake stopped")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, errc := startPipeline(t, ctx, cfg, src, sink, log)

	<-slowArrived
	cancel()
	<-intakeStopped // the pipeline saw the cancellation; the slow request is still in flight
	close(release)
	if err := <-errc; err != nil {
		t.Fatalf("Run() = %v, want nil after cancellation", err)
	}

	flushed, buffered := sink.results()
	if len(buffered) != 0 {
		t.Fatalf("%d results added but not flushed", len(buffered))
	}
	if len(flushed) >= 30 {
		t.Fatalf("all 30 records were handled; the test wants a cancellation mid-run")
	}
	counts := schemas.Offsets{}
	var slow *schemas.Result
	for _, r := range flushed {
		counts[r.Source.TP()]++ // memSink checked they are contiguous from 0
		if r.Source.Partition == 0 && r.Source.Offset == 2 {
			slow = r
		}
	}
	if got := src.committed(); !maps.Equal(got, counts) {
		t.Errorf("committed %v, want %v (everything added)", got, counts)
	}
	if slow == nil || slow.Replay.ErrorKind != "" || slow.Replay.Response.Status != 200 {
		t.Fatalf("the request in flight at cancellation: %+v; want it finished with 200 and written", slow)
	}
	if s := p.Stats(); s.InFlight != 0 || s.RowsWritten.Production != int64(len(flushed)) {
		t.Errorf("stats = %+v", s)
	}
}

func TestShutdownGraceAbandonsStuckReplays(t *testing.T) {
	stuck := make(chan struct{})
	target := &recorder{before: func(r *http.Request) {
		if r.URL.Path == "/v1/p0/0" {
			close(stuck)
			<-r.Context().Done() // until the pipeline gives up on it
		}
	}}
	srv := httptest.NewServer(target)
	t.Cleanup(srv.Close)

	cfg := validConfig()
	cfg.Replay.Target = srv.URL
	cfg.ShutdownGrace = 50 * time.Millisecond
	cfg.Flush = FlushPolicy{Rows: 100}
	sink := &memSink{t: t}
	p1done := make(chan struct{})
	var p1 atomic.Int64
	sink.onAdd = func(r *schemas.Result) {
		if r.Source.Partition == 1 && p1.Add(1) == 3 {
			close(p1done)
		}
	}
	src := &memSource{batches: interleave([][][]byte{simple(t, 0, 3), simple(t, 1, 3)}, 2), block: true}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, errc := startPipeline(t, ctx, cfg, src, sink, nil)

	<-stuck
	<-p1done
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
	flushed, _ := sink.results()
	for _, r := range flushed {
		if r.Source.Partition == 0 {
			t.Errorf("result %s written behind a replay that never finished", r.Source)
		}
	}
	if got, want := src.committed(), (schemas.Offsets{tp(1): 3}); !maps.Equal(got, want) {
		t.Errorf("committed %v, want %v", got, want)
	}
	if s := p.Stats(); s.Replayed < 3 || s.ReplayErrors[schemas.ErrorOther] != 0 {
		t.Errorf("stats = %+v; the abandoned replay must not count as an error", s)
	}
}

func TestFlushFailureStopsWithoutCommitting(t *testing.T) {
	srv := httptest.NewServer(&recorder{})
	t.Cleanup(srv.Close)
	cfg := validConfig()
	cfg.Replay.Target = srv.URL
	cfg.Flush = FlushPolicy{Rows: 2}
	errDisk := errors.New("disk full")
	sink := &memSink{t: t, flushErr: errDisk}
	src := &memSource{batches: interleave([][][]byte{simple(t, 0, 10), simple(t, 1, 10)}, 2), block: true}
	_, errc := startPipeline(t, context.Background(), cfg, src, sink, nil)
	err := <-errc
	if !errors.Is(err, errDisk) || !strings.Contains(err.Error(), "flush") {
		t.Fatalf("Run() = %v, want a flush error wrapping %v", err, errDisk)
	}
	if c := src.committed(); len(c) != 0 {
		t.Fatalf("committed %v after a failed flush, want nothing", c)
	}
}

func TestPollErrorIsReturnedAfterDrain(t *testing.T) {
	srv := httptest.NewServer(&recorder{})
	t.Cleanup(srv.Close)
	cfg := validConfig()
	cfg.Replay.Target = srv.URL
	errBroker := errors.New("broker gone")
	src := &memSource{batches: interleave([][][]byte{simple(t, 0, 5)}, 2), pollErr: errBroker}
	sink := &memSink{t: t}
	_, errc := startPipeline(t, context.Background(), cfg, src, sink, nil)
	if err := <-errc; !errors.Is(err, errBroker) {
		t.Fatalf("Run() = %v, want it to wrap %v", err, errBroker)
	}
	if got, want := src.committed(), (schemas.Offsets{tp(0): 5}); !maps.Equal(got, want) {
		t.Fatalf("committed %v, want %v: what was polled before the error is still written", got, want)
	}
}

// panicRule makes the worker panic on one path.
type panicRule struct{ path string }

func (p panicRule) apply(r *outRequest) {
	if r.Path == p.path {
		panic("boom")
	}
}

func TestWorkerPanicIsAnError(t *testing.T) {
	srv := httptest.NewServer(&recorder{})
	t.Cleanup(srv.Close)
	cfg := validConfig()
	cfg.Replay.Target = srv.URL
	cfg.Flush = FlushPolicy{Rows: 1}
	src := &memSource{batches: interleave([][][]byte{simple(t, 0, 3), simple(t, 1, 3)}, 1), block: true}
	sink := &memSink{t: t}
	p, err := New(cfg, src, sink, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	p.replayer.rewriter.rules = append(p.replayer.rewriter.rules, panicRule{"/v1/p0/1"})
	err = p.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "panicked") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Run() = %v, want the panic as an error", err)
	}
	if off, ok := src.committed()[tp(0)]; ok && off > 1 {
		t.Fatalf("partition 0 committed up to %d, past the record whose worker panicked", off)
	}
}

func TestFlushOnInterval(t *testing.T) {
	srv := httptest.NewServer(&recorder{})
	t.Cleanup(srv.Close)
	cfg := validConfig()
	cfg.Replay.Target = srv.URL
	cfg.Flush = FlushPolicy{Interval: 10 * time.Millisecond}
	flushedAll := make(chan struct{})
	sink := &memSink{t: t, onFlush: func(n int) {
		if n == 3 {
			close(flushedAll)
		}
	}}
	src := &memSource{batches: interleave([][][]byte{simple(t, 0, 3)}, 3), block: true}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, errc := startPipeline(t, ctx, cfg, src, sink, nil)
	<-flushedAll // no size trigger and no shutdown yet: the interval flushed
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Flushes < 1 || !maps.Equal(s.Committed, schemas.Offsets{tp(0): 3}) {
		t.Fatalf("stats = %+v", s)
	}
}

func TestRateLimitsReplays(t *testing.T) {
	srv := httptest.NewServer(&recorder{})
	t.Cleanup(srv.Close)
	cfg := validConfig()
	cfg.Replay.Target = srv.URL
	cfg.Replay.Rate = 200
	cfg.Replay.Burst = 1
	src := &memSource{batches: interleave([][][]byte{simple(t, 0, 21)}, 5)}
	start := time.Now()
	_, errc := startPipeline(t, context.Background(), cfg, src, &memSink{t: t}, nil)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// 21 requests at 200/s with a burst of 1 need at least 20 intervals of 5ms.
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("21 replays at 200/s took %v, want ≥ 100ms", d)
	}
}

func TestReplayErrorsAreRows(t *testing.T) {
	srv := httptest.NewServer(&recorder{})
	url := srv.URL
	srv.Close() // nothing listens there any more: every replay is refused
	cfg := validConfig()
	cfg.Replay.Target = url
	src := &memSource{batches: interleave([][][]byte{simple(t, 0, 4)}, 4)}
	sink := &memSink{t: t}
	p, errc := startPipeline(t, context.Background(), cfg, src, sink, nil)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	flushed, _ := sink.results()
	for _, r := range flushed {
		if r.Replay == nil || r.Replay.ErrorKind != schemas.ErrorRefused || r.Replay.Response != nil || r.Production == nil {
			t.Errorf("%s: %+v", r.Source, r.Replay)
		}
	}
	if s := p.Stats(); len(flushed) != 4 || s.ReplayErrors[schemas.ErrorRefused] != 4 || s.Replayed != 4 {
		t.Errorf("%d rows, stats %+v", len(flushed), s)
	}
}

func TestRunOnce(t *testing.T) {
	cfg := validConfig()
	p, err := New(cfg, &memSource{}, &memSink{t: t}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err == nil {
		t.Fatal("second Run() = nil, want an error")
	}
	if err := p.SetRate(-1); err == nil {
		t.Fatal("SetRate(-1) = nil, want an error")
	}
	if err := p.SetRate(10); err != nil || p.Control().Rate != 10 || p.Control().Mode != ModeRate {
		t.Fatalf("SetRate(10) = %v, control %+v", err, p.Control())
	}
}

func TestCommitFailures(t *testing.T) {
	srv := httptest.NewServer(&recorder{})
	t.Cleanup(srv.Close)
	cfg := validConfig()
	cfg.Replay.Target = srv.URL
	cfg.Flush = FlushPolicy{Rows: 2}

	t.Run("mid-run failures are retried with the next flush", func(t *testing.T) {
		src := &memSource{batches: interleave([][][]byte{simple(t, 0, 6), simple(t, 1, 6)}, 1), failCommits: 2}
		p, errc := startPipeline(t, context.Background(), cfg, src, &memSink{t: t}, nil)
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if got, want := src.committed(), (schemas.Offsets{tp(0): 6, tp(1): 6}); !maps.Equal(got, want) {
			t.Fatalf("committed %v, want %v", got, want)
		}
		if s := p.Stats(); s.CommitErrors != 2 || s.Commits < 1 {
			t.Fatalf("stats = %+v", s)
		}
	})
	t.Run("a failed final commit is returned", func(t *testing.T) {
		src := &memSource{batches: interleave([][][]byte{simple(t, 0, 3)}, 3), failCommits: -1}
		_, errc := startPipeline(t, context.Background(), cfg, src, &memSink{t: t}, nil)
		if err := <-errc; !errors.Is(err, errCommit) || !strings.Contains(err.Error(), "final commit") {
			t.Fatalf("Run() = %v, want the final commit error", err)
		}
	})
}

// logWatch passes every log line to the test output and counts lines by
// message, so a test can wait for a lifecycle event instead of sleeping.
type logWatch struct {
	mu      sync.Mutex
	counts  map[string]int
	changed chan struct{}
}

func newLogWatch(t *testing.T) (*slog.Logger, *logWatch) {
	w := &logWatch{counts: map[string]int{}, changed: make(chan struct{})}
	return slog.New(&watchHandler{Handler: testLogger(t).Handler(), w: w}), w
}

// wait blocks until n lines with msg were logged; it fails the test after
// a generous deadline so a bug shows as a failure, not a hang.
func (w *logWatch) wait(t *testing.T, msg string, n int) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		got, ch := w.counts[msg], w.changed
		w.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("waited 20s for %d log lines %q, saw %d", n, msg, got)
		}
	}
}

func (w *logWatch) count(msg string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.counts[msg]
}

type watchHandler struct {
	slog.Handler
	w *logWatch
}

func (h *watchHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	h.w.mu.Lock()
	h.w.counts[r.Message]++
	close(h.w.changed)
	h.w.changed = make(chan struct{})
	h.w.mu.Unlock()
	return err
}

func (h *watchHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &watchHandler{Handler: h.Handler.WithAttrs(as), w: h.w}
}

func (h *watchHandler) WithGroup(name string) slog.Handler {
	return &watchHandler{Handler: h.Handler.WithGroup(name), w: h.w}
}

// chanSource returns the batches the test sends on batches, and io.EOF
// once the test closes it; it records every Commit.
type chanSource struct {
	batches chan []schemas.Record

	mu      sync.Mutex
	commits []schemas.Offsets
}

var _ Source = (*chanSource)(nil)

func newChanSource() *chanSource { return &chanSource{batches: make(chan []schemas.Record)} }

func (s *chanSource) Poll(ctx context.Context) ([]schemas.Record, error) {
	select {
	case b, ok := <-s.batches:
		if !ok {
			return nil, io.EOF
		}
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *chanSource) Commit(_ context.Context, o schemas.Offsets) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commits = append(s.commits, maps.Clone(o))
	return nil
}

func (s *chanSource) committed() schemas.Offsets {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := schemas.Offsets{}
	for _, c := range s.commits {
		maps.Copy(out, c)
	}
	return out
}

// rec is the record at offset off of partition p carrying the simple GET
// envelope for /v1/p{p}/{off}.
func rec(t *testing.T, p int32, off int64) schemas.Record {
	return schemas.Record{
		Coordinates: schemas.Coordinates{Topic: topic, Partition: p, Offset: off},
		Value:       envelope(t, fmt.Sprintf("p%d-o%d", p, off), "GET", fmt.Sprintf("/v1/p%d/%d", p, off), "", nil),
	}
}

// countByPartition counts results per partition; memSink already checked
// they are contiguous from offset 0, so the count is the next offset.
func countByPartition(rs []*schemas.Result) schemas.Offsets {
	out := schemas.Offsets{}
	for _, r := range rs {
		out[r.Source.TP()]++
	}
	return out
}

// holdingSink is a memSink that already holds the replay rows of some
// records, and records what it was asked.
type holdingSink struct {
	*memSink
	holds func(c schemas.Coordinates) bool

	mu    sync.Mutex
	asked []schemas.Coordinates
}

var _ ReplayHolder = (*holdingSink)(nil)

func (s *holdingSink) HoldsReplay(c schemas.Coordinates) bool {
	s.mu.Lock()
	s.asked = append(s.asked, c)
	s.mu.Unlock()
	return s.holds(c)
}

func TestSkipReplaysTheSinkHolds(t *testing.T) {
	target := &recorder{}
	cfg := validConfig()
	cfg.Replay.Target = newServer(t, target).URL
	sink := &holdingSink{memSink: &memSink{t: t}, holds: func(c schemas.Coordinates) bool { return c.Offset%2 == 0 }}
	values := append(simple(t, 0, 5), envelope(t, "post", "POST", "/v1/x", "", nil), []byte("garbage"))
	src := &memSource{batches: interleave([][][]byte{values}, 3)}
	p, errc := startPipeline(t, context.Background(), cfg, src, sink, nil)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	flushed, _ := sink.results()
	if len(flushed) != 7 {
		t.Fatalf("%d results, want 7", len(flushed))
	}
	for _, r := range flushed[:5] {
		_, sent := target.get(fmt.Sprintf("p0-o%d", r.Source.Offset))
		held := r.Source.Offset%2 == 0
		if sent == held || (r.Replay == nil) != held || r.Production == nil {
			t.Errorf("%s: held %v, sent %v, replay row %v; want held records not sent and without a replay row", r.Source, held, sent, r.Replay != nil)
		}
	}
	sink.mu.Lock()
	asked := len(sink.asked)
	sink.mu.Unlock()
	if asked != 5 {
		t.Errorf("HoldsReplay asked %d times, want 5: only for selected records", asked)
	}
	if s := p.Stats(); s.SkippedHeld != 3 || s.Replayed != 2 || s.Filtered != 1 || s.DeadLettered != 1 {
		t.Errorf("stats = %+v", s)
	}
	if got := src.committed()[tp(0)]; got != 7 {
		t.Errorf("committed %d, want 7", got)
	}
}

func TestBodyRedactionInRows(t *testing.T) {
	var gotBody atomic.Value
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotBody.Store(string(b))
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"session":{"token":"replay-secret"},"ok":true}`)
	}))
	cfg := validConfig()
	cfg.Replay.Target = srv.URL
	cfg.Filter.Methods = []string{"*"}
	cfg.RedactBodyPaths = []string{"$.password", "$.card.number", "$..token"}
	const reqBody = `{"user":"ann","password":"hunter2","card":{"number":"4111111111111111","exp":"12/30"}}`
	raw, err := json.Marshal(schemas.Envelope{
		CorrelationID: "c1", CapturedAt: capturedAt,
		Request: &schemas.EnvelopeRequest{Method: "POST", Scheme: "https", Host: "api.example.com", Path: "/v1/login",
			Headers: map[string][]string{"Content-Type": {"application/json"}}, Body: reqBody},
		Response: &schemas.EnvelopeResponse{Status: 200, Body: `{"token":"prod-secret","user":{"id":7}}`},
	})
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{t: t}
	_, errc := startPipeline(t, context.Background(), cfg, &memSource{batches: interleave([][][]byte{{raw}}, 1)}, sink, nil)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got := gotBody.Load(); got != reqBody {
		t.Errorf("the target got body %q, want the original", got)
	}
	flushed, _ := sink.results()
	r := flushed[0]
	for name, got := range map[string]string{
		"production request":  string(r.Production.Exchange.Request.Body),
		"production response": string(r.Production.Exchange.Response.Body),
		"replay request":      string(r.Replay.Request.Body),
		"replay response":     string(r.Replay.Response.Body),
	} {
		for _, secret := range []string{"hunter2", "4111111111111111", "prod-secret", "replay-secret"} {
			if strings.Contains(got, secret) {
				t.Errorf("%s body %s holds the secret %q", name, got, secret)
			}
		}
		if !strings.Contains(got, Redacted) {
			t.Errorf("%s body %s: nothing redacted", name, got)
		}
	}
	if got := string(r.Production.Exchange.Request.Body); got != `{"card":{"exp":"12/30","number":"REDACTED"},"password":"REDACTED","user":"ann"}` {
		t.Errorf("production request body %s", got)
	}
}
