package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/replaykit/replay/schemas"
)

// With replay.baseline set, every selected record is sent once to the
// target and once to the baseline, as the same rewritten request (each
// target's own prefix and Host), and its result carries both rows.
func TestBaselineReceivesEveryRequestOnce(t *testing.T) {
	cand, base := &recorder{}, &recorder{}
	candSrv, baseSrv := newServer(t, cand), newServer(t, base)

	var parts [][][]byte
	selected := map[string]string{} // correlation ID → rewritten path, without prefix
	for p := range 3 {
		var vals [][]byte
		for i := range 40 {
			cid := fmt.Sprintf("p%d-o%d", p, i)
			method := "GET"
			switch {
			case i%7 == 3:
				method = "POST" // not selected
			case i%11 == 5:
				vals = append(vals, []byte("not json")) // a dead letter
				continue
			default:
				selected[cid] = fmt.Sprintf("/v2/p%d/%d", p, i)
			}
			vals = append(vals, envelope(t, cid, method, fmt.Sprintf("/v1/p%d/%d", p, i), "lang=fr&debug=1",
				map[string][]string{"Authorization": {"Bearer secret"}, "X-Debug": {"1"}}))
		}
		parts = append(parts, vals)
	}

	cfg := validConfig()
	cfg.Replay.Target = candSrv.URL + "/new"
	cfg.Replay.Baseline = baseSrv.URL + "/old"
	cfg.Replay.Workers = 6
	cfg.Limits.MaxInFlight = 16
	cfg.Rewrite = []RewriteRule{
		{Path: &PathRewrite{Match: "^/v1/", Replace: "/v2/"}},
		{Query: &QueryRewrite{Set: map[string]string{"lang": "en"}, Remove: []string{"debug"}}},
		{Header: &HeaderRewrite{Set: map[string]string{"X-Env": "shadow"}, Remove: []string{"X-Debug"}}},
	}
	cfg.Flush = FlushPolicy{Rows: 10}
	src := &memSource{batches: interleave(parts, 7)}
	sink := &memSink{t: t}
	p, errc := startPipeline(t, context.Background(), cfg, src, sink, nil)
	if err := <-errc; err != nil {
		t.Fatalf("Run() = %v", err)
	}

	for name, rec := range map[string]*recorder{"target": cand, "baseline": base} {
		want := map[string]int{}
		for cid := range selected {
			want[cid] = 1
		}
		if got := rec.counts(); !maps.Equal(got, want) {
			t.Errorf("the %s received %d correlation IDs (%v), want each of the %d selected once", name, len(got), got, len(selected))
		}
	}
	for cid, path := range selected {
		c, _ := cand.get(cid)
		b, _ := base.get(cid)
		if c.Path != "/new"+path || b.Path != "/old"+path {
			t.Errorf("%s: paths %q and %q, want /new%s and /old%s", cid, c.Path, b.Path, path, path)
		}
		if c.Host != strings.TrimPrefix(candSrv.URL, "http://") || b.Host != strings.TrimPrefix(baseSrv.URL, "http://") {
			t.Errorf("%s: Host headers %q and %q, want each target's own", cid, c.Host, b.Host)
		}
		if c.Method != b.Method || c.Query != "lang=en" || b.Query != c.Query || c.Body != b.Body {
			t.Errorf("%s: target got %s ?%s, baseline %s ?%s", cid, c.Method, c.Query, b.Method, b.Query)
		}
		for _, h := range []string{"X-Env", "X-Debug", "Authorization", "X-Replay-Id"} {
			if c.Header.Get(h) != b.Header.Get(h) {
				t.Errorf("%s: %s is %q at the target, %q at the baseline", cid, h, c.Header.Get(h), b.Header.Get(h))
			}
		}
		if c.Header.Get("X-Env") != "shadow" || c.Header.Get("X-Debug") != "" || c.Header.Get("Authorization") != "Bearer secret" {
			t.Errorf("%s: headers %v: the rewrite rules were not applied", cid, c.Header)
		}
	}

	flushed, buffered := sink.results()
	if len(buffered) != 0 {
		t.Fatalf("%d results left buffered", len(buffered))
	}
	baselineRows := 0
	for _, r := range flushed {
		path, sel := selected[cidOf(r)]
		if !sel {
			if r.Replay != nil || r.Baseline != nil {
				t.Errorf("%s: not selected, but has replay %v and baseline %v rows", r.Source, r.Replay != nil, r.Baseline != nil)
			}
			continue
		}
		rr, br := r.Replay, r.Baseline
		if rr == nil || br == nil {
			t.Errorf("%s: replay row %v, baseline row %v; want both", r.Source, rr != nil, br != nil)
			continue
		}
		baselineRows++
		if rr.Target != candSrv.URL || br.Target != baseSrv.URL || br.Request.Path != "/old"+path ||
			br.CorrelationID != rr.CorrelationID || br.Source != r.Source || br.RunID != "run-1" ||
			br.Response == nil || string(br.Response.Body) != "replayed /old"+path || br.Lineage["catalog"] != "v9" {
			t.Errorf("%s: baseline row %+v", r.Source, br)
		}
		if br.Request.Headers["Authorization"][0] != Redacted || br.Response.Headers["Set-Cookie"][0] != Redacted {
			t.Errorf("%s: baseline row secrets not redacted: %v, %v", r.Source, br.Request.Headers, br.Response.Headers)
		}
	}
	if baselineRows != len(selected) {
		t.Errorf("%d results with both rows, want %d", baselineRows, len(selected))
	}
	s := p.Stats()
	if s.Replayed != int64(len(selected)) || s.RowsWritten.Replay != int64(len(selected)) || s.RowsWritten.Baseline != int64(len(selected)) {
		t.Errorf("stats: replayed %d, rows written %+v; want %d replay and baseline rows", s.Replayed, s.RowsWritten, len(selected))
	}
}

func cidOf(r *schemas.Result) string {
	if r.Production == nil {
		return ""
	}
	return r.Production.Exchange.CorrelationID
}

// The breaker watches the target only: a baseline that refuses every
// connection gives baseline rows with an error kind and never pauses the
// run.
func TestBaselineFailuresDoNotOpenTheBreaker(t *testing.T) {
	cand := &recorder{}
	candSrv := newServer(t, cand)
	down := newServer(t, http.NotFoundHandler())
	down.Close() // nothing listens there any more: refused

	cfg := validConfig()
	cfg.Replay.Target = candSrv.URL
	cfg.Replay.Baseline = down.URL
	cfg.Replay.Retry.Attempts = 1
	cfg.Replay.Breaker = BreakerConfig{Errors: 2, ProbeInterval: 1}
	src := &memSource{batches: interleave([][][]byte{simple(t, 0, 12)}, 4)}
	sink := &memSink{t: t}
	p, errc := startPipeline(t, context.Background(), cfg, src, sink, nil)
	if err := <-errc; err != nil {
		t.Fatalf("Run() = %v", err)
	}
	flushed, _ := sink.results()
	if len(flushed) != 12 {
		t.Fatalf("%d results, want 12", len(flushed))
	}
	for _, r := range flushed {
		if r.Replay == nil || r.Replay.ErrorKind != "" || r.Baseline == nil || r.Baseline.ErrorKind != schemas.ErrorRefused {
			t.Errorf("%s: replay %+v, baseline %+v; want a response and a refused baseline", r.Source, r.Replay, r.Baseline)
		}
	}
	if s := p.Stats(); s.BreakerOpens != 0 || len(s.ReplayErrors) != 0 || s.RowsWritten.Baseline != 12 {
		t.Errorf("stats: breaker opened %d times, replay errors %v, baseline rows %d; want 0, none, 12",
			s.BreakerOpens, s.ReplayErrors, s.RowsWritten.Baseline)
	}
}

// The production guard covers the baseline: a baseline that is a
// production host is refused at New, and a record captured from the
// baseline's host stops the run before anything is sent.
func TestBaselineProductionGuard(t *testing.T) {
	cfg := validConfig()
	cfg.Replay.Baseline = "http://api.example.com"
	cfg.Replay.ProductionHosts = []string{"api.example.com"}
	_, err := New(cfg, &memSource{}, &memSink{t: t}, nil)
	if !errors.Is(err, ErrProductionTarget) {
		t.Fatalf("New() = %v, want ErrProductionTarget", err)
	}
	for _, part := range []string{"replay.baseline: ", "point replay.baseline at a second copy of the old version", "replay.allow_production_target"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not contain %q", err, part)
		}
	}
	cfg.Replay.AllowProductionTarget = true
	if _, err := New(cfg, &memSource{}, &memSink{t: t}, nil); err != nil {
		t.Errorf("allowed: New() = %v", err)
	}

	cand, base := &recorder{}, &recorder{}
	candSrv, baseSrv := newServer(t, cand), newServer(t, base)
	hostport := strings.TrimPrefix(baseSrv.URL, "http://")
	raw, err := json.Marshal(schemas.Envelope{
		CorrelationID: "from-baseline", CapturedAt: capturedAt,
		Request: &schemas.EnvelopeRequest{Method: "GET", Scheme: "http", Host: hostport, Path: "/v1/x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg = validConfig()
	cfg.Replay.Target, cfg.Replay.Baseline = candSrv.URL, baseSrv.URL
	src := &memSource{batches: interleave([][][]byte{{raw}}, 1)}
	_, errc := startPipeline(t, context.Background(), cfg, src, &memSink{t: t}, nil)
	err = <-errc
	if !errors.Is(err, ErrProductionTarget) || !strings.Contains(err.Error(), "which is replay.baseline "+baseSrv.URL) {
		t.Fatalf("Run() = %v, want ErrProductionTarget naming replay.baseline", err)
	}
	if len(cand.counts())+len(base.counts()) != 0 {
		t.Error("the record captured from the baseline was sent")
	}
}
