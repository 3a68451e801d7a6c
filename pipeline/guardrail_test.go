package pipeline

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replaykit/replay/schemas"
)

// overloadTarget is a target whose latency depends on the load offered to
// it: while the rate it is offered is above its capacity it answers in
// slow (o.slow), otherwise at once. The offered rate is read from the
// pipeline (the rate its pacer runs when the request arrives), not
// estimated from arrival times: an estimate's jitter on a loaded machine
// would make the target slow or fast by chance, and the test is about how
// often the guardrail trips, not about estimating a rate.
type overloadTarget struct {
	capacity float64
	slow     time.Duration
	offered  atomic.Pointer[func() float64]

	count     atomic.Int64 // requests served
	slowCount atomic.Int64 // requests answered slowly
	arrived   chan struct{}
}

func (o *overloadTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f := o.offered.Load(); f != nil && (*f)() > o.capacity {
		o.slowCount.Add(1)
		t := time.NewTimer(o.slow)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	fmt.Fprint(w, "ok")
	o.count.Add(1)
	select {
	case o.arrived <- struct{}{}:
	default:
	}
}

// waitServed blocks until the target served at least n requests, or stop
// is closed first (then it returns false).
func (o *overloadTarget) waitServed(t *testing.T, n int64, stop <-chan struct{}) bool {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for o.count.Load() < n {
		select {
		case <-o.arrived:
		case <-stop:
			return false
		case <-deadline.C:
			t.Fatalf("waited 30s for %d requests served, saw %d", n, o.count.Load())
		}
	}
	return true
}

// TestGuardrailOneOverloadOneStepBack ramps 50, 100 and 250 requests/s
// with max_p99 1s against a target that slows down (2 s instead of about
// 1 ms) above 150 requests/s: the ramp of 100, 200 and 500/s
// against 300/s, halved to spare a shared machine. At 250/s the guardrail
// must step back to stage 1 once, and then hold it: the slow replies of
// the requests sent before the trip, still arriving, are not judged again
// (they used to step back to stage 0 and then pause, three trips for one
// overload).
func TestGuardrailOneOverloadOneStepBack(t *testing.T) {
	// Slow is 2 s against max_p99 1s, and min_requests 100, so that a
	// loaded machine's stray slow replies (a new connection, a descheduled
	// goroutine: fewer than 1 in 100) do not trip the guardrail: only the
	// overload does.
	target := &overloadTarget{capacity: 150, slow: 2 * time.Second, arrived: make(chan struct{}, 1)}
	srv := httptest.NewServer(target)
	t.Cleanup(srv.Close)
	cfg := validConfig()
	cfg.Replay.Target = srv.URL
	cfg.Replay.Workers = 1024 // 250/s × 2 s is 500 in flight: never bounded by workers
	cfg.Replay.Breaker.Errors = 0
	cfg.Replay.Mode = ModeRamp
	cfg.Replay.Ramp = []RampStage{
		{Rate: 50, Duration: 300 * time.Millisecond},
		{Rate: 100, Duration: time.Second},
		{Rate: 250, Duration: time.Hour},
	}
	cfg.Replay.Guardrails = GuardrailConfig{MaxP99: time.Second, Window: 4 * time.Second, MinRequests: 100,
		Action: GuardrailStepBack}
	cfg.Limits.MaxInFlight = 4096
	src := newChanSource()
	log, logs := newLogWatch(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, errc := startPipeline(t, ctx, cfg, src, &memSink{t: t}, log)
	offered := func() float64 { return p.Control().EffectiveRate }
	target.offered.Store(&offered)
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

	trip := p.guard.nextTrip()
	<-trip
	again := p.guard.nextTrip()
	if st := p.Control(); st.RampStage != 1 || st.EffectiveRate != 100 || st.Paused || st.Guardrail.Trips != 1 {
		t.Fatalf("after the trip: stage %d at %v/s, paused %v, trips %d; want stage 1 at 100/s, not paused, 1 trip",
			st.RampStage, st.EffectiveRate, st.Paused, st.Guardrail.Trips)
	}
	if n := target.slowCount.Load(); n == 0 {
		t.Fatal("the guardrail tripped before the target was slow")
	}
	// Every slow reply (sent before the trip, at 250/s) comes back within
	// 2 s; 3 s of requests at 100/s, all judged, come after them. A second
	// trip ends the wait early (and fails below).
	target.waitServed(t, target.count.Load()+300, again)
	st := p.Control()
	if st.Guardrail.Trips != 1 || p.guard.stepBacks.Load() != 1 || st.RampStage != 1 || st.Paused ||
		st.Guardrail.State != GuardrailTripped {
		t.Errorf("one overload: %d trips, %d step backs, stage %d, paused %v, state %s; want 1 trip, 1 step back, stage 1 held, not paused",
			st.Guardrail.Trips, p.guard.stepBacks.Load(), st.RampStage, st.Paused, st.Guardrail.State)
	}
	if n := logs.count("guardrail tripped: stepped the ramp back to stage 1 and holding it until an operator resumes (replay ctl resume)"); n != 1 {
		t.Errorf("%d step-back log lines, want 1", n)
	}
	close(feed)
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
