package admin

import (
	"math"
	"testing"
	"time"
)

func TestSketchQuantilesWithinAlpha(t *testing.T) {
	var s sketch
	for i := 1; i <= 1000; i++ {
		s.add(float64(i) / 10) // 0.1 ms … 100 ms
	}
	for _, tc := range []struct{ q, want float64 }{{0.5, 50}, {0.9, 90}, {0.99, 99}} {
		got := s.quantile(tc.q)
		if math.Abs(got-tc.want)/tc.want > sketchAlpha {
			t.Errorf("q%v = %v, want %v within %v%%", tc.q, got, tc.want, sketchAlpha*100)
		}
	}
	var empty sketch
	if got := empty.quantile(0.5); got != 0 {
		t.Errorf("empty q50 = %v, want 0", got)
	}
	var edges sketch
	edges.add(0)
	edges.add(1e9)
	edges.add(math.NaN())
	edges.add(-1)
	if edges.n != 2 || edges.quantile(0.01) != sketchMinMS || edges.quantile(1) < sketchMaxMS*(1-sketchAlpha) {
		t.Errorf("edges: n %d, min %v, max %v", edges.n, edges.quantile(0.01), edges.quantile(1))
	}
}

func TestWindowSummaryAndSeries(t *testing.T) {
	t0 := time.Unix(1_790_000_000, 0)
	w := newWindow(t0)
	at := func(sec int, ms int) time.Time {
		return t0.Add(time.Duration(sec)*time.Second + time.Duration(ms)*time.Millisecond)
	}

	// Second 0: 4 replays, one failed (no replay latency), one mismatch.
	// Replay latencies 20, 20, 40 (and 60, 60 in second 2): the nearest-rank
	// median of the five is 40.
	w.observe(at(0, 100), counts{replayed: 1, matched: 1}, 10, 20)
	w.observe(at(0, 200), counts{replayed: 1, matched: 1}, 10, 20)
	w.observe(at(0, 300), counts{replayed: 1, mismatched: 1}, 10, 40)
	w.observe(at(0, 400), counts{replayed: 1, errors: 1}, 10, -1)
	// Second 2: 2 replays.
	w.observe(at(2, 0), counts{replayed: 1, lineage: 1}, 30, 60)
	w.observe(at(2, 500), counts{replayed: 1, matched: 1}, 30, 60)

	sum := w.summary(at(3, 0))
	if sum.Seconds != 4 || sum.Replayed != 6 || sum.Errors != 1 || sum.Matched != 3 || sum.Mismatched != 1 || sum.Lineage != 1 {
		t.Errorf("summary counts: %+v", sum)
	}
	if sum.Rate != 1.5 || sum.CurrentRate != 2 { // 6 over 4 s; 6 over the 3 complete seconds
		t.Errorf("rates: %v over the window, %v current; want 1.5 and 2", sum.Rate, sum.CurrentRate)
	}
	if sum.MatchRate == nil || *sum.MatchRate != 0.75 || sum.ErrorRate != round6(1.0/6) {
		t.Errorf("match rate %v, error rate %v", sum.MatchRate, sum.ErrorRate)
	}
	if sum.Production.Count != 6 || sum.Replay.Count != 5 || !near(sum.Replay.P50, 40) || !near(sum.Replay.P99, 60) || !near(sum.Production.P90, 30) || !near(sum.Production.P50, 10) {
		t.Errorf("percentiles: production %+v, replay %+v", sum.Production, sum.Replay)
	}

	lag := int64(7)
	w.seal(at(3, 10), sampleExtras{lag: &lag, targetRate: 50})
	got := w.samples(0)
	if len(got) != 3 || got[0].T != t0.Unix() || got[2].T != t0.Unix()+2 {
		t.Fatalf("samples after sealing second 3: %+v, want seconds 0, 1, 2", got)
	}
	if got[0].Replayed != 4 || got[0].Errors != 1 || got[0].Replay == nil || got[0].Replay.Count != 3 || !near(got[0].Replay.P99, 40) {
		t.Errorf("second 0: %+v", got[0])
	}
	if got[1].Replayed != 0 || got[1].Replay != nil || got[1].Production != nil || *got[1].Lag != 7 || got[1].TargetRate != 50 {
		t.Errorf("second 1 (empty): %+v", got[1])
	}
	// Sealing again in the same second adds nothing; since filters.
	w.seal(at(3, 900), sampleExtras{})
	if n := len(w.samples(0)); n != 3 {
		t.Errorf("%d samples after sealing twice, want 3", n)
	}
	if s := w.samples(t0.Unix() + 1); len(s) != 1 || s[0].T != t0.Unix()+2 {
		t.Errorf("samples since second 1: %+v", s)
	}

	// A minute later the window has forgotten everything; the ring keeps
	// the last seriesSeconds samples only.
	later := at(seriesSeconds+100, 0)
	if sum := w.summary(later); sum.Replayed != 0 || sum.Seconds != windowSeconds || sum.MatchRate != nil {
		t.Errorf("summary a while later: %+v", sum)
	}
	w.seal(later, sampleExtras{})
	s := w.samples(0)
	if len(s) != seriesSeconds || s[len(s)-1].T != later.Unix()-1 || s[0].T != later.Unix()-seriesSeconds {
		t.Errorf("ring after a jump: %d samples from %d to %d", len(s), s[0].T, s[len(s)-1].T)
	}
}

func near(got, want float64) bool { return math.Abs(got-want) <= want*sketchAlpha }
