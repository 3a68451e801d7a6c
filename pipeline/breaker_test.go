package pipeline

import (
	"context"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replaykit/replay/schemas"
)

func TestBreakerStates(t *testing.T) {
	const interval = time.Minute
	b := newBreaker(BreakerConfig{Errors: 3, ProbeInterval: interval}, slog.New(slog.DiscardHandler), "r")
	now := time.Now()
	mustAcquire := func(at time.Time, wantProbe bool) {
		t.Helper()
		ok, probe, _, _ := b.acquire(at)
		if !ok || probe != wantProbe {
			t.Fatalf("acquire = ok %v probe %v; want ok, probe %v (state %s)", ok, probe, wantProbe, b.current())
		}
	}
	mustWait := func(at time.Time, wantAfter bool) <-chan struct{} {
		t.Helper()
		ok, _, wake, after := b.acquire(at)
		if ok || wake == nil || (after > 0) != wantAfter {
			t.Fatalf("acquire = ok %v wake %v after %v; want a wait (timed %v) (state %s)", ok, wake, after, wantAfter, b.current())
		}
		return wake
	}

	mustAcquire(now, false)
	b.report(false, outcomeFailed)
	b.report(false, outcomeFailed)
	b.report(false, outcomeResponse) // a response resets the count
	b.report(false, outcomeFailed)
	b.report(false, outcomeNeutral) // says nothing
	b.report(false, outcomeFailed)
	if s := b.current(); s != BreakerClosed {
		t.Fatalf("state %s after 2 consecutive failures, want closed", s)
	}
	b.report(false, outcomeFailed)
	if s := b.current(); s != BreakerOpen || b.opens.Load() != 1 {
		t.Fatalf("state %s opens %d after 3 consecutive failures, want open, 1", s, b.opens.Load())
	}
	wake := mustWait(time.Now(), true) // the probe is not due yet

	later := time.Now().Add(2 * interval)
	mustAcquire(later, true) // the probe
	select {
	case <-wake:
	default:
		t.Fatal("the state change to half-open did not wake a waiter")
	}
	if s := b.current(); s != BreakerHalfOpen {
		t.Fatalf("state %s with a probe in flight, want half-open", s)
	}
	mustWait(later, false) // one probe at a time
	b.report(false, outcomeFailed)
	if s := b.current(); s != BreakerHalfOpen {
		t.Fatalf("a straggler's failure changed the state to %s", s)
	}
	b.report(true, outcomeFailed) // the probe failed
	if s := b.current(); s != BreakerOpen {
		t.Fatalf("state %s after a failed probe, want open", s)
	}
	mustWait(time.Now(), true) // the next probe is an interval after the failed one

	mustAcquire(later.Add(2*interval), true)
	b.cancelProbe() // the probe was never sent: the next record probes at once
	mustAcquire(later.Add(2*interval), true)
	b.report(true, outcomeNeutral) // abandoned probe: same
	mustAcquire(later.Add(2*interval), true)
	b.report(true, outcomeResponse)
	if s := b.current(); s != BreakerClosed || b.opens.Load() != 1 {
		t.Fatalf("state %s opens %d after a good probe, want closed, 1", s, b.opens.Load())
	}
	mustAcquire(later, false)

	off := newBreaker(BreakerConfig{}, slog.New(slog.DiscardHandler), "r")
	for range 100 {
		off.report(false, outcomeFailed)
	}
	if ok, _, _, _ := off.acquire(time.Now()); !ok || off.current() != BreakerClosed {
		t.Fatal("a disabled breaker opened")
	}
}

// switchTarget resets every connection while down, and answers 200 when
// up.
type switchTarget struct {
	t           *testing.T
	down        atomic.Bool
	resets, oks atomic.Int64
}

func (s *switchTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() {
		s.resets.Add(1)
		hijack(s.t, true, func(net.Conn) {})(w, r)
		return
	}
	s.oks.Add(1)
	w.Write([]byte("ok"))
}

func breakerConfig(target string) Config {
	cfg := validConfig()
	cfg.Replay.Target = target
	cfg.Replay.Workers = 2
	cfg.Replay.Retry.Attempts = 1
	cfg.Limits.MaxInFlight = 16
	cfg.Flush = FlushPolicy{Rows: 1000}
	return cfg
}

func TestBreakerOpensProbesAndCloses(t *testing.T) {
	const batch = 10
	target := &switchTarget{t: t}
	target.down.Store(true)
	srv := newServer(t, target)
	cfg := breakerConfig(srv.URL)
	cfg.Replay.Breaker = BreakerConfig{Errors: 4, ProbeInterval: 20 * time.Millisecond}

	sink := &memSink{t: t}
	src := &memSource{batches: interleave([][][]byte{simple(t, 0, 100), simple(t, 1, 100)}, batch), added: &sink.added}
	sink.onAdd = func(*schemas.Result) {
		if n := src.polled.Load() - sink.added.Load(); n > int64(cfg.Limits.MaxInFlight+batch) {
			t.Errorf("%d records polled and not handed to the sink, want ≤ %d", n, cfg.Limits.MaxInFlight+batch)
		}
	}
	log, watch := newLogWatch(t)
	p, errc := startPipeline(t, context.Background(), cfg, src, sink, log)

	watch.wait(t, "replay breaker opened: the target keeps failing; replays wait, one probe per probe_interval", 1)
	watch.wait(t, "replay breaker stays open: the probe failed", 3)
	if s := p.Stats(); s.BreakerOpens != 1 || (s.Breaker != BreakerOpen && s.Breaker != BreakerHalfOpen) {
		t.Errorf("while down: Breaker %q, BreakerOpens %d; want open or half-open, 1", s.Breaker, s.BreakerOpens)
	}
	if n := src.polled.Load(); n > int64(cfg.Limits.MaxInFlight+batch) {
		t.Errorf("polled %d records while the breaker was open, want ≤ %d: the source must stop being polled", n, cfg.Limits.MaxInFlight+batch)
	}
	target.down.Store(false)
	if err := <-errc; err != nil {
		t.Fatalf("Run() = %v", err)
	}

	flushed, _ := sink.results()
	if len(flushed) != 200 {
		t.Fatalf("%d results written, want 200", len(flushed))
	}
	var errorRows int64
	for _, r := range flushed {
		if r.Replay.ErrorKind != "" {
			errorRows++
			if r.Replay.ErrorKind != schemas.ErrorReset {
				t.Errorf("%s: error kind %q, want reset", r.Source, r.Replay.ErrorKind)
			}
		}
	}
	// Error rows: the failures that opened it, the replays in flight then,
	// and one per failed probe; never one per waiting record.
	failedProbes := int64(watch.count("replay breaker stays open: the probe failed"))
	if resets := target.resets.Load(); errorRows != resets || resets > 4+int64(cfg.Replay.Workers)+failedProbes {
		t.Errorf("%d error rows, %d resets at the target, %d failed probes; want equal rows and resets, ≤ %d",
			errorRows, resets, failedProbes, 4+int64(cfg.Replay.Workers)+failedProbes)
	}
	if watch.count("replay breaker closed: the target answered") != 1 {
		t.Errorf("the breaker did not log closing once")
	}
	s := p.Stats()
	if s.Breaker != BreakerClosed || s.BreakerOpens != 1 || s.ReplayErrors[schemas.ErrorReset] != errorRows || s.InFlight != 0 {
		t.Errorf("stats = %+v", s)
	}
	if got, want := src.committed(), (schemas.Offsets{tp(0): 100, tp(1): 100}); !maps.Equal(got, want) {
		t.Errorf("committed %v, want %v", got, want)
	}
}

// openBreaker starts a pipeline whose target is down for good and waits
// until its breaker opened with no probe due for an hour.
func openBreaker(t *testing.T, ctx context.Context) (*Pipeline, <-chan error, *memSource, *memSink, *switchTarget, *logWatch) {
	target := &switchTarget{t: t}
	target.down.Store(true)
	cfg := breakerConfig(newServer(t, target).URL)
	cfg.Replay.Breaker = BreakerConfig{Errors: 2, ProbeInterval: time.Hour}
	sink := &memSink{t: t}
	src := &memSource{batches: interleave([][][]byte{simple(t, 0, 20), simple(t, 1, 20), simple(t, 2, 20)}, 4), block: true}
	log, watch := newLogWatch(t)
	p, errc := startPipeline(t, ctx, cfg, src, sink, log)
	watch.wait(t, "replay breaker opened: the target keeps failing; replays wait, one probe per probe_interval", 1)
	return p, errc, src, sink, target, watch
}

func TestShutdownWhileBreakerOpen(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, errc, src, sink, target, _ := openBreaker(t, ctx)

	cancel()
	start := time.Now()
	if err := <-errc; err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v with the breaker open, want it prompt", d)
	}
	flushed, buffered := sink.results()
	if len(buffered) != 0 || len(flushed) >= 60 {
		t.Fatalf("%d flushed, %d buffered; want some of the 60 records flushed, none left buffered", len(flushed), len(buffered))
	}
	if got, want := src.committed(), countByPartition(flushed); !maps.Equal(got, want) {
		t.Errorf("committed %v, want %v: exactly the contiguous prefixes written", got, want)
	}
	s := p.Stats()
	// Every decoded record got a row or was abandoned (waiting for the
	// breaker when the shutdown came, unless the intake saw the shutdown
	// before decoding it).
	if s.Decoded-s.Replayed != s.Abandoned || s.InFlight != 0 || s.Replayed != target.resets.Load() || s.Breaker != BreakerOpen {
		t.Errorf("stats = %+v (target saw %d); want the waiting record abandoned, no slot held, a row per request sent", s, target.resets.Load())
	}
}

func TestRevokeWhileBreakerOpen(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, errc, src, sink, target, _ := openBreaker(t, ctx)

	// Nothing can be in flight for long: Revoke discards the record
	// waiting for the breaker and returns at once.
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	if err := p.Revoke(rctx, []schemas.TopicPartition{tp(0), tp(1), tp(2)}); err != nil {
		t.Fatalf("Revoke() = %v, want nil", err)
	}
	flushed, buffered := sink.results()
	if len(buffered) != 0 {
		t.Errorf("%d results buffered after Revoke, want all flushed", len(buffered))
	}
	if got, want := src.committed(), countByPartition(flushed); !maps.Equal(got, want) {
		t.Errorf("committed %v after Revoke, want %v", got, want)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run() = %v", err)
	}
	// The record the intake held when the revoke came was discarded
	// (waiting for the breaker) or ignored (not registered yet; or the
	// intake saw the shutdown first): it was neither sent nor written, and
	// nothing was left to abandon.
	if s := p.Stats(); s.Abandoned != 0 || s.InFlight != 0 || s.Replayed != target.resets.Load() {
		t.Errorf("stats = %+v (target saw %d)", s, target.resets.Load())
	}
	if after, _ := sink.results(); len(after) != len(flushed) {
		t.Errorf("%d results written after the revoke of every partition, want none", len(after)-len(flushed))
	}
}
