package admin_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replaykit/replay/admin"
	"github.com/replaykit/replay/pipeline"
	"github.com/replaykit/replay/schemas"
	"github.com/replaykit/replay/sources"
)

type fixedLag []sources.PartitionLag

func (l fixedLag) Lag() []sources.PartitionLag { return l }

// observation is one finished replay of endpoint: the captured latency,
// and the candidate's status and latency (status 0: no response).
func observation(endpoint string, prodMS float64, status int, replayMS float64, verdict string) pipeline.Observation {
	o := pipeline.Observation{
		Endpoint:   endpoint,
		Production: &schemas.Exchange{Response: &schemas.Response{Status: 200, LatencyMS: prodMS}},
		Replay:     &schemas.ReplayRow{},
		Verdict:    verdict,
	}
	if status == 0 {
		o.Replay.ErrorKind = schemas.ErrorTimeout
	} else {
		o.Replay.Response = &schemas.Response{Status: status, LatencyMS: replayMS}
	}
	return o
}

// frozenClock is a clock the test moves by hand.
type frozenClock struct{ unixNano atomic.Int64 }

func newFrozenClock(t time.Time) *frozenClock {
	c := &frozenClock{}
	c.set(t)
	return c
}
func (c *frozenClock) now() time.Time  { return time.Unix(0, c.unixNano.Load()) }
func (c *frozenClock) set(t time.Time) { c.unixNano.Store(t.UnixNano()) }

func TestMetricsFromObserverControlAndLag(t *testing.T) {
	p := idlePipeline(t, nil)
	if _, err := p.UpdateControl(pipeline.ControlUpdate{DialPercent: ptr(40.0), Paused: ptr(true)}, "test"); err != nil {
		t.Fatal(err)
	}
	stats := sampleStats
	stats.Live = map[string]pipeline.LiveCounts{
		"GET /users/{id}": {Compared: 12, Matched: 9, Mismatched: 2, Lineage: 1},
	}
	srv := admin.New(admin.Config{Listen: "127.0.0.1:0"}, admin.Deps{
		Stats: fakeStats{stats}, Control: p,
		Lag: fixedLag{{Topic: "captures", Partition: 0, HighWatermark: 15, Committed: 10, Lag: 5}, {Topic: "captures", Partition: 1, Lag: 2}},
	}, nil)
	base := serve(t, srv)
	obs := srv.Observer()
	obs.ObserveReplay(observation("GET /users/{id}", 3, 200, 4, pipeline.VerdictMatch))
	obs.ObserveReplay(observation("GET /users/{id}", 3, 503, 40, pipeline.VerdictMismatch))
	obs.ObserveReplay(observation("GET /users/{id}", 3, 0, 0, ""))
	obs.ObserveReplay(observation("GET /orders", 12, 404, 2, ""))
	obs.ObserveFlush(120, 30*time.Millisecond)
	obs.ObserveCommit(2*time.Millisecond, nil)
	obs.ObserveCommit(time.Second, errors.New("rebalance"))

	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	for _, line := range []string{
		`replay_latency_seconds_count{endpoint="GET /users/{id}",side="replay"} 2`,
		`replay_latency_seconds_count{endpoint="GET /users/{id}",side="production"} 3`,
		`replay_latency_seconds_bucket{endpoint="GET /users/{id}",side="replay",le="0.005"} 1`,
		`replay_latency_seconds_sum{endpoint="GET /orders",side="production"} 0.012`,
		`replay_replayed_by_status_total{endpoint="GET /users/{id}",status_class="2xx"} 1`,
		`replay_replayed_by_status_total{endpoint="GET /users/{id}",status_class="5xx"} 1`,
		`replay_replayed_by_status_total{endpoint="GET /users/{id}",status_class="error"} 1`,
		`replay_replayed_by_status_total{endpoint="GET /orders",status_class="4xx"} 1`,
		`replay_flush_duration_seconds_count 1`,
		`replay_commit_duration_seconds_count{result="ok"} 1`,
		`replay_commit_duration_seconds_count{result="error"} 1`,
		`replay_control_dial_percent 40`,
		`replay_control_paused 1`,
		`replay_control_effective_rate 100`,
		`replay_control_mode{mode="rate"} 1`,
		`replay_control_mode{mode="pace"} 0`,
		`replay_guardrail_state{state="ok"} 1`,
		`replay_guardrail_state{state="tripped"} 0`,
		`replay_guardrail_trips_total 0`,
		`replay_consumer_lag_records{partition="0",topic="captures"} 5`,
		`replay_consumer_lag_records{partition="1",topic="captures"} 2`,
		`replay_live_compared_total{endpoint="GET /users/{id}",verdict="match"} 9`,
		`replay_live_compared_total{endpoint="GET /users/{id}",verdict="mismatch"} 2`,
		`replay_live_compared_total{endpoint="GET /users/{id}",verdict="lineage_mismatch"} 1`,
		"# TYPE replay_latency_seconds histogram",
		"# TYPE replay_consumer_lag_records gauge",
	} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

func TestMetricsCapEndpoints(t *testing.T) {
	srv := admin.New(admin.Config{Listen: "127.0.0.1:0"}, admin.Deps{Stats: fakeStats{}}, nil)
	base := serve(t, srv)
	for i := range 250 {
		srv.Observer().ObserveReplay(observation(fmt.Sprintf("GET /e%d", i), 1, 200, 1, ""))
	}
	_, body := get(t, base+"/metrics")
	labels := map[string]bool{}
	for _, m := range regexp.MustCompile(`replay_latency_seconds_count\{endpoint="([^"]*)",side="replay"\} (\d+)`).FindAllStringSubmatch(body, -1) {
		labels[m[1]] = true
		if m[1] == "other" && m[2] != "50" {
			t.Errorf("other counts %s replays, want the 50 endpoints past the cap", m[2])
		}
	}
	if len(labels) != 201 || !labels["other"] || !labels["GET /e199"] || labels["GET /e200"] {
		t.Errorf("%d endpoint labels (other: %v, e199: %v, e200: %v), want the first 200 and other",
			len(labels), labels["other"], labels["GET /e199"], labels["GET /e200"])
	}
}

func TestStatusWindowControlLagAndLive(t *testing.T) {
	clock := newFrozenClock(time.Unix(1_790_000_000, 0))
	p := idlePipeline(t, nil)
	stats := sampleStats
	stats.Live = map[string]pipeline.LiveCounts{"GET /users/{id}": {Compared: 4, Matched: 3, Mismatched: 1}}
	stats.LiveTotal = pipeline.LiveCounts{Compared: 4, Matched: 3, Mismatched: 1}
	srv := admin.New(admin.Config{Listen: "127.0.0.1:0"}, admin.Deps{
		Stats: fakeStats{stats}, Control: p, Now: clock.now, StartedAt: clock.now().Add(-5 * time.Second),
		Lag: fixedLag{{Topic: "captures", Partition: 0, Lag: 5}, {Topic: "captures", Partition: 1, Lag: 2}},
	}, nil)
	base := serve(t, srv)
	for i := range 10 {
		srv.Observer().ObserveReplay(observation("GET /users/{id}", 10, 200, float64(20+i), pipeline.VerdictMatch))
	}
	srv.Observer().ObserveReplay(observation("GET /users/{id}", 10, 500, 100, pipeline.VerdictMismatch))
	clock.set(clock.now().Add(time.Second))

	_, body := get(t, base+"/v1/status")
	var st admin.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	w := st.Window
	if w.Seconds != 2 || w.Replayed != 11 || w.Rate != 5.5 || w.CurrentRate != 11 || w.Errors != 1 || w.Matched != 10 || w.Mismatched != 1 ||
		w.MatchRate == nil || *w.MatchRate != 0.909091 {
		t.Errorf("window: %+v", w)
	}
	if w.Production.Count != 11 || w.Replay.Count != 11 || w.Replay.P50 < 24 || w.Replay.P50 > 26 || w.Replay.P99 < 98 {
		t.Errorf("window percentiles: production %+v, replay %+v", w.Production, w.Replay)
	}
	if st.Control == nil || st.Control.Rate != 100 || st.Control.Guardrail.State != pipeline.GuardrailOK {
		t.Errorf("control: %+v", st.Control)
	}
	if st.Lag == nil || st.Lag.Total != 7 || len(st.Lag.Partitions) != 2 {
		t.Errorf("lag: %+v", st.Lag)
	}
	if lt := st.Stats.LiveTotal; lt == nil || lt.Matched != 3 || lt.MatchRate == nil || *lt.MatchRate != 0.75 ||
		st.Stats.Live["GET /users/{id}"].Mismatched != 1 {
		t.Errorf("live: total %+v, by endpoint %+v", st.Stats.LiveTotal, st.Stats.Live)
	}
	if st.Uptime != "6s" {
		t.Errorf("uptime %q, want 6s on the frozen clock", st.Uptime)
	}
}

func ptr[T any](v T) *T { return &v }
