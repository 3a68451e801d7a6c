package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replaykit/replay/schemas"
)

// arrivals is a target that answers 200 (or 503 once failing is set) and
// records when each request arrived.
type arrivals struct {
	failing atomic.Bool
	count   atomic.Int64

	mu    sync.Mutex
	times map[string]time.Time
	got   chan struct{} // closed and replaced on every request
}

func newArrivals() *arrivals {
	return &arrivals{times: map[string]time.Time{}, got: make(chan struct{})}
}

func (a *arrivals) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	a.count.Add(1)
	a.mu.Lock()
	a.times[r.Header.Get("X-Replay-Id")] = now
	close(a.got)
	a.got = make(chan struct{})
	a.mu.Unlock()
	if a.failing.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	fmt.Fprint(w, "ok")
}

// waitCount blocks until the target saw at least n requests.
func (a *arrivals) waitCount(t *testing.T, n int64) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		a.mu.Lock()
		ch := a.got
		a.mu.Unlock()
		if a.count.Load() >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("waited 20s for %d requests at the target, saw %d", n, a.count.Load())
		}
	}
}

// capturedEvery returns n envelopes of partition 0 captured gap apart.
func capturedEvery(t *testing.T, n int, gaps []time.Duration) [][]byte {
	t.Helper()
	var out [][]byte
	at := capturedAt
	for i := range n {
		if i > 0 {
			at = at.Add(gaps[(i-1)%len(gaps)])
		}
		b, err := json.Marshal(schemas.Envelope{
			CorrelationID: fmt.Sprintf("c%d", i),
			CapturedAt:    at,
			Request:       &schemas.EnvelopeRequest{Method: "GET", Scheme: "https", Host: "api.example.com", Path: fmt.Sprintf("/v1/items/%d", i)},
			Response:      &schemas.EnvelopeResponse{Status: 200, Body: "ok", LatencyMS: 1},
		})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestPaceModeReplaysCapturedGapsScaled(t *testing.T) {
	target := newArrivals()
	srv := httptest.NewServer(target)
	t.Cleanup(srv.Close)
	cfg := validConfig()
	cfg.Replay.Target = srv.URL
	cfg.Replay.Mode = ModePace
	cfg.Replay.Pace = 2
	gaps := []time.Duration{100 * time.Millisecond, 20 * time.Millisecond, 300 * time.Millisecond}
	const n = 10
	src := &memSource{batches: interleave([][][]byte{capturedEvery(t, n, gaps)}, n)}
	_, errc := startPipeline(t, context.Background(), cfg, src, &memSink{t: t}, nil)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	target.mu.Lock()
	defer target.mu.Unlock()
	first := target.times["c0"]
	var captured time.Duration
	for i := 1; i < n; i++ {
		captured += gaps[(i-1)%len(gaps)]
		got := target.times[fmt.Sprintf("c%d", i)].Sub(first)
		// A request never starts before its scaled capture time (less the
		// first request's connection setup, which later ones skip); the
		// upper bound only catches a pacer that ignores the scale.
		if want := captured / 2; got < want-10*time.Millisecond || got > want+captured/2 {
			t.Errorf("request %d arrived %v after the first, want ≈ %v (captured %v later, pace 2)", i, got, want, captured)
		}
	}
}

func TestControlPausesResumesAndChangesRate(t *testing.T) {
	target := newArrivals()
	srv := httptest.NewServer(target)
	t.Cleanup(srv.Close)
	cfg := validConfig()
	cfg.Replay.Target = srv.URL
	cfg.Replay.Workers = 2
	src := newChanSource()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, errc := startPipeline(t, ctx, cfg, src, &memSink{t: t}, nil)
	next := int64(0)
	send := func(n int) {
		var batch []schemas.Record
		for range n {
			batch = append(batch, rec(t, 0, next))
			next++
		}
		src.batches <- batch
	}
	send(5)
	target.waitCount(t, 5)

	// Paused, records are polled but nothing reaches the target.
	yes, no := true, false
	if st, err := p.UpdateControl(ControlUpdate{Paused: &yes}, "test"); err != nil || !st.Paused || st.PausedBy != "operator" || st.UpdatedBy != "test" {
		t.Fatalf("pause: %+v, %v", st, err)
	}
	send(5)
	held := time.NewTimer(300 * time.Millisecond) // the absence of requests has no signal: watch a window
	<-held.C
	if got := target.count.Load(); got != 5 {
		t.Fatalf("paused, the target saw %d requests, want 5", got)
	}
	if s := p.Stats(); s.Consumed != 10 || s.InFlight < 1 {
		t.Fatalf("paused: %d consumed, %d in flight; want all 10 polled and the next waiting", s.Consumed, s.InFlight)
	}
	// Resumed at 20/s with a burst of 1: the waiting five go, 50ms apart.
	rate, burst := 20.0, 1
	start := time.Now()
	if _, err := p.UpdateControl(ControlUpdate{Paused: &no, Rate: &rate, Burst: &burst}, "test"); err != nil {
		t.Fatal(err)
	}
	target.waitCount(t, 10)
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("5 requests at 20/s took %v, want ≥ 200ms less the first start", d)
	}
	if st := p.Control(); st.Mode != ModeRate || st.EffectiveRate != 20 || st.Paused {
		t.Fatalf("control after resume: %+v", st)
	}
	// An invalid change names the field and changes nothing.
	bad := -3.0
	if _, err := p.UpdateControl(ControlUpdate{Rate: &bad}, "test"); err == nil || !strings.Contains(err.Error(), "rate: must be") {
		t.Fatalf("negative rate: %v, want an error naming rate", err)
	}
	if st := p.Control(); st.Rate != 20 {
		t.Fatalf("rate after a rejected change: %v, want 20", st.Rate)
	}
	close(src.batches)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestGuardrailTripsMidRamp(t *testing.T) {
	target := newArrivals()
	srv := httptest.NewServer(target)
	t.Cleanup(srv.Close)
	cfg := validConfig()
	cfg.Replay.Target = srv.URL
	cfg.Replay.Workers = 4
	cfg.Replay.Breaker.Errors = 0 // the guardrail, not the breaker, must react
	cfg.Replay.Mode = ModeRamp
	cfg.Replay.Ramp = []RampStage{{Rate: 100, Duration: 200 * time.Millisecond}, {Rate: 400, Duration: time.Hour}}
	cfg.Replay.Guardrails = GuardrailConfig{MaxErrorRate: 0.5, Window: time.Second, MinRequests: 10, Action: GuardrailStepBack}
	cfg.Limits.MaxInFlight = 64
	src := newChanSource()
	log, logs := newLogWatch(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, errc := startPipeline(t, ctx, cfg, src, &memSink{t: t}, log)
	feed := make(chan struct{})
	go func() { // keep the pipeline supplied until the test ends
		for off := int64(0); ; off += 16 {
			var batch []schemas.Record
			for i := range int64(16) {
				batch = append(batch, rec(t, 0, off+i))
			}
			select {
			case src.batches <- batch:
			case <-feed:
				close(src.batches)
				return
			}
		}
	}()
	logs.wait(t, "ramp stage started", 1)
	trip := p.guard.nextTrip()
	if st := p.Control(); st.RampStage != 1 || st.EffectiveRate != 400 {
		t.Fatalf("before failing: %+v, want stage 1 at 400/s", st)
	}
	failedAt := time.Now()
	target.failing.Store(true)
	<-trip
	if d := time.Since(failedAt); d > 2*cfg.Replay.Guardrails.Window {
		t.Errorf("the guardrail tripped %v after the target began failing, want within the window (%v)", d, cfg.Replay.Guardrails.Window)
	}
	st := p.Control()
	if st.Guardrail.State != GuardrailTripped || st.RampStage != 0 || st.EffectiveRate != 100 || st.Paused {
		t.Fatalf("after the first trip: %+v, want stepped back to stage 0 (100/s), not paused", st)
	}
	// Still failing at stage 0: the guardrail pauses.
	trip = p.guard.nextTrip()
	<-trip
	st = p.Control()
	if !st.Paused || st.PausedBy != "guardrail" || st.Guardrail.Trips != 2 {
		t.Fatalf("after the second trip: %+v, want paused by the guardrail", st)
	}
	logs.wait(t, "guardrail tripped: paused until an operator resumes (replay ctl resume)", 1)
	// An operator resumes: requests flow again.
	target.failing.Store(false)
	seen := target.count.Load()
	no := false
	if _, err := p.UpdateControl(ControlUpdate{Paused: &no}, "operator"); err != nil {
		t.Fatal(err)
	}
	target.waitCount(t, seen+5)
	if st := p.Control(); st.Guardrail.State != GuardrailOK || st.Paused {
		t.Fatalf("after resume: %+v", st)
	}
	close(feed)
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
