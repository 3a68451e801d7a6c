package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replaykit/replay/compare"
	"github.com/replaykit/replay/config"
	"github.com/replaykit/replay/pipeline"
	"github.com/replaykit/replay/schemas"
	"github.com/replaykit/replay/service"
)

// capture is one line of the test's capture file and what the target
// answers to its replay.
type capture struct {
	cid, path string
	kind      string // how the replay differs; see target
}

// captures are 24 exchanges over three endpoints (one named by a
// configured route), 8 each, and one POST that is not replayed. Batch
// compare classifies them: 12 matched (7 equal, 3 differing only at an
// ignored path, 2 only in a redacted header), 9 mismatched (4 differing
// bodies, 2 failed replays, 1 capture without a response, 2 answered
// 502), 3 lineage mismatches.
func captures() []capture {
	var out []capture
	add := func(kind string, n int) {
		for i := range n {
			c := capture{cid: fmt.Sprintf("%s-%d", kind, i), kind: kind}
			switch len(out) % 3 {
			case 0:
				c.path = fmt.Sprintf("/v1/titles/%d", 10+len(out))
			case 1:
				c.path = fmt.Sprintf("/v1/users/user%c/items", 'a'+len(out))
			default:
				c.path = "/v1/genres"
			}
			out = append(out, c)
		}
	}
	add("same", 7)
	add("ignored", 3)
	add("redacted", 2)
	add("differs", 4)
	add("failed", 2)
	add("no-capture", 1)
	add("5xx", 2)
	add("lineage", 3)
	return out
}

func writeCaptures(t *testing.T, path string, cs []capture) {
	t.Helper()
	var b strings.Builder
	for _, c := range cs {
		env := schemas.Envelope{
			CorrelationID: c.cid,
			CapturedAt:    time.Date(2026, 11, 21, 10, 15, 2, 0, time.UTC),
			Request:       &schemas.EnvelopeRequest{Method: "GET", Scheme: "https", Host: "api.example.com", Path: c.path},
			Response: &schemas.EnvelopeResponse{Status: 200, Headers: map[string][]string{"Content-Type": {"application/json"}},
				Body: `{"title":"Heat","year":1995,"generatedAt":"2026-11-21T10:15:02Z"}`},
		}
		switch c.kind {
		case "redacted":
			env.Response.Headers["Set-Cookie"] = []string{"s=production"}
		case "no-capture":
			env.Response = nil
		case "lineage":
			env.Lineage = map[string]string{"catalog": "v8"}
		}
		line, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	b.WriteString(`{"correlation_id":"post-0","captured_at":"2026-11-21T10:15:02Z","request":{"method":"POST","path":"/v1/orders"},"response":{"status":201}}` + "\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// target answers each replay by its capture's kind (X-Replay-Id).
func target(t *testing.T, cs []capture) *httptest.Server {
	kinds := map[string]string{}
	for _, c := range cs {
		kinds[c.cid] = c.kind
	}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, status := `{"generatedAt":"2026-11-21T10:15:02Z","year":1995,"title":"Heat"}`, http.StatusOK
		switch kinds[r.Header.Get("X-Replay-Id")] {
		case "ignored":
			body = `{"title":"Heat","year":1995,"generatedAt":"2026-11-21T10:16:40Z"}`
		case "redacted":
			w.Header().Set("Set-Cookie", "s=candidate")
		case "differs":
			body = `{"title":"Heat","year":1996,"generatedAt":"2026-11-21T10:15:02Z"}`
		case "5xx":
			status = http.StatusBadGateway
		case "lineage":
			w.Header().Set("X-Lineage-Catalog", "v9")
			body = `{"title":"Heat (remastered)"}`
		case "failed":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			_ = conn.Close()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
}

// writeConfig writes a config file for a file-source run into dir.
func writeConfig(t *testing.T, dir, runID, captureFile, targetURL string, live bool) string {
	t.Helper()
	cfg := fmt.Sprintf(`run_id: %s
source:
  type: file
  file: {path: %s}
replay:
  target: %s
  retry: {attempts: 1}
live_compare:
  enabled: %t
sink:
  catalog: {uri: %s, warehouse: %s}
compare:
  normalize:
    routes: ["GET /v1/users/{user}/items"]
    ignore_paths: [$.generatedAt]
    compare_headers: [Content-Type, Set-Cookie]
  report: %s
log: {level: warn}
`, runID, captureFile, targetURL, live, filepath.Join(dir, "catalog.db"), filepath.Join(dir, "warehouse"),
		filepath.Join(dir, "report.html"))
	path := filepath.Join(dir, runID+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func runFromFile(t *testing.T, ctx context.Context, path string) (config.Config, *service.Result) {
	t.Helper()
	cfg, err := config.Load(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := service.Run(ctx, cfg, config.Log{Level: "warn", Format: "text"}.Logger(t.Output()))
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	t.Cleanup(func() { _ = res.Sink.Close() })
	return cfg, res
}

// TestLiveCompareFromConfigFile runs replay twice over the same capture
// file, with live_compare.enabled false then true in the config file, and
// checks that only the second compares live, and that its counts are,
// endpoint by endpoint, those of batch compare over the tables it wrote.
func TestLiveCompareFromConfigFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	cs := captures()
	captureFile := filepath.Join(dir, "captures.ndjson")
	writeCaptures(t, captureFile, cs)
	srv := target(t, cs)
	defer srv.Close()

	_, off := runFromFile(t, ctx, writeConfig(t, t.TempDir(), "live-off", captureFile, srv.URL, false))
	if off.Stats.Replayed != int64(len(cs)) || off.Stats.Live != nil || off.Stats.LiveTotal != (pipeline.LiveCounts{}) {
		t.Errorf("live_compare.enabled false: replayed %d, Live %v, LiveTotal %+v; want %d, nil, zero",
			off.Stats.Replayed, off.Stats.Live, off.Stats.LiveTotal, len(cs))
	}

	cfg, on := runFromFile(t, ctx, writeConfig(t, dir, "live-on", captureFile, srv.URL, true))
	st := on.Stats
	if want := (pipeline.LiveCounts{Compared: 24, Matched: 12, Mismatched: 9, Lineage: 3}); st.LiveTotal != want {
		t.Errorf("LiveTotal = %+v, want %+v", st.LiveTotal, want)
	}
	sum, err := compare.Run(ctx, cfg.Compare, on.Sink, compare.Options{RunID: "live-on"})
	if err != nil {
		t.Fatal(err)
	}
	batch := map[string]pipeline.LiveCounts{}
	for _, e := range sum.Endpoints {
		if e.Joined == 0 {
			continue // production only: not replayed
		}
		batch[e.Endpoint] = pipeline.LiveCounts{Compared: e.Matched + e.Mismatched + e.LineageExcluded,
			Matched: e.Matched, Mismatched: e.Mismatched, Lineage: e.LineageExcluded}
	}
	if !maps.Equal(st.Live, batch) {
		t.Errorf("live counts by endpoint %+v, batch compare's %+v", st.Live, batch)
	}
	if len(batch) != 3 || batch["GET /v1/users/{user}/items"].Compared != 8 {
		t.Errorf("batch endpoints %+v: want three, the route named by compare.normalize.routes", batch)
	}
	if o := sum.Overall; o.Matched != st.LiveTotal.Matched || o.Mismatched != st.LiveTotal.Mismatched ||
		o.LineageExcluded != st.LiveTotal.Lineage || sum.MatchRate == nil || st.LiveTotal.MatchRate() == nil || *sum.MatchRate != *st.LiveTotal.MatchRate() {
		t.Errorf("batch overall %+v (rate %v), live %+v (rate %v)", o, compare.RateLogValue(sum.MatchRate), st.LiveTotal, compare.RateLogValue(st.LiveTotal.MatchRate()))
	}
}
