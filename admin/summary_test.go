package admin_test

import (
	"strings"
	"testing"
	"time"

	"github.com/replaykit/replay/admin"
	"github.com/replaykit/replay/pipeline"
	"github.com/replaykit/replay/sources"
)

func TestWriteSummary(t *testing.T) {
	rate, total := 0.98765, 0.75
	st := admin.Status{
		RunID: "try-7", Target: "http://candidate:8080", Uptime: "12m3s",
		Stats: admin.StatusStats{Consumed: 12345, Replayed: 10000, Filtered: 2000, DeadLettered: 3, InFlight: 16, Breaker: "closed",
			ReplayErrors: map[string]int64{"timeout": 10, "refused": 2},
			LiveTotal:    &admin.LiveStatus{Compared: 9000, Matched: 6000, Mismatched: 2000, Lineage: 1000, MatchRate: &total}},
		Control: &pipeline.ControlStatus{
			Control: pipeline.Control{Mode: pipeline.ModeRamp, Burst: 8, Pace: 1, DialPercent: 50, MultiplierDefault: 1,
				Multipliers: map[string]float64{"tv": 1.8}, Paused: true,
				Ramp: []pipeline.RampStage{{Rate: 100, Duration: 2 * time.Minute}, {Pace: 2, Duration: 10 * time.Minute}}},
			EffectivePace: 2, RampStage: 1, PausedBy: "guardrail",
			Guardrail: pipeline.GuardrailStatus{State: pipeline.GuardrailTripped, Reason: "error rate 12% > 5%", ErrorRate: 0.12, P99MS: 840, Requests: 400},
			UpdatedAt: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC), UpdatedBy: "alice@laptop from 10.0.0.7:5555",
		},
		Lag: &admin.LagStatus{Total: 1234, Partitions: []sources.PartitionLag{{Topic: "captures", Partition: 0, Lag: 600}, {Topic: "captures", Partition: 1, Lag: 634}}},
		Window: admin.WindowStatus{Seconds: 60, Replayed: 741, Rate: 12.35, CurrentRate: 11.2, Errors: 7, ErrorRate: 0.009447,
			Matched: 640, Mismatched: 8, MatchRate: &rate,
			Production: admin.Percentiles{Count: 741, P50: 3.01, P90: 8.1, P99: 20}, Replay: admin.Percentiles{Count: 730, P50: 4.1, P90: 9, P99: 31.25}},
	}
	var b strings.Builder
	if err := admin.WriteSummary(&b, st); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"run         try-7 → http://candidate:8080, up 12m3s",
		"state       PAUSED by guardrail",
		"pacing      ramp 100/s:2m0s,2x:10m0s, stage 2 of 2 (now 2× captured pace)",
		"traffic     dial 50%, multipliers tv ×1.8, others ×1",
		"guardrail   tripped: error rate 12% > 5% (error rate 12.00%, p99 840.0ms over 400 replays)",
		"changed     2026-11-21 10:00:00 UTC by alice@laptop from 10.0.0.7:5555",
		"totals      consumed 12,345, replayed 10,000, filtered 2,000, dead-lettered 3, in flight 16, breaker closed",
		"errors      refused 2, timeout 10",
		"last 60s    11.2 req/s now (12.35 req/s average), 741 replayed, 7 errors (0.94%)",
		"latency     replay p50 4.1ms  p90 9.0ms  p99 31.2ms   production p50 3.0ms  p90 8.1ms  p99 20.0ms",
		"live match  98.77% in the last 60s (640 matched, 8 mismatched, 0 lineage)",
		"live total  75.00% since the start (9,000 compared, 6,000 matched, 2,000 mismatched, 1,000 lineage)",
		"lag         1,234 records (captures/0 600, captures/1 634)",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}
