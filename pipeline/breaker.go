package pipeline

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Breaker states, as reported in Stats.Breaker.
const (
	BreakerClosed   = "closed"
	BreakerOpen     = "open"
	BreakerHalfOpen = "half-open"
)

// outcome is what one replay says about the target's health.
type outcome uint8

const (
	// outcomeResponse: a complete response came back, whatever its status.
	outcomeResponse outcome = iota
	// outcomeFailed: the replay failed at the connection level after its
	// retries (timeout, refused, reset, tls, dns, other transport errors).
	outcomeFailed
	// outcomeNeutral: the replay says nothing about the target: the
	// request could not be built, or the replay was abandoned at shutdown.
	outcomeNeutral
)

// breaker is the circuit breaker of BreakerConfig. The dispatchers (the
// intake goroutine, and a worker starting the next request of an ordering
// key) ask it before starting each replay; workers report each replay's
// outcome.
//
// closed → open after threshold consecutive failed replays; open →
// half-open when probeInterval has passed, by letting one replay through
// (the probe); half-open → closed on a response, → open on a failure. A
// response from any replay (a straggler started before the breaker opened)
// closes it too: the target answered.
type breaker struct {
	threshold int // 0 disables
	interval  time.Duration
	log       *slog.Logger
	runID     string

	mu          sync.Mutex
	state       string
	consecutive int
	openedAt    time.Time
	probeAt     time.Time     // when open: the next probe may start
	changed     chan struct{} // closed on every state change; nil when nobody waits

	opens atomic.Int64
}

func newBreaker(cfg BreakerConfig, log *slog.Logger, runID string) *breaker {
	return &breaker{threshold: cfg.Errors, interval: cfg.ProbeInterval, log: log, runID: runID, state: BreakerClosed}
}

// acquire asks whether a replay may start now. When ok, probe says the
// replay is the half-open probe: its outcome decides the state, and if it
// is never started or is abandoned, cancelProbe must be called. When not
// ok, the caller waits for wake or, if after > 0, that long, and asks
// again.
func (b *breaker) acquire(now time.Time) (ok, probe bool, wake <-chan struct{}, after time.Duration) {
	if b.threshold == 0 {
		return true, false, nil, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case BreakerClosed:
		return true, false, nil, 0
	case BreakerOpen:
		if !now.Before(b.probeAt) {
			b.setState(BreakerHalfOpen)
			b.log.Info("replay breaker half-open: sending one probe", "run_id", b.runID, "state", BreakerHalfOpen,
				"consecutive_errors", b.consecutive, "open_for", now.Sub(b.openedAt).Round(time.Millisecond))
			return true, true, nil, 0
		}
		return false, false, b.wakeLocked(), b.probeAt.Sub(now)
	default: // half-open: the probe is in flight
		return false, false, b.wakeLocked(), 0
	}
}

func (b *breaker) wakeLocked() <-chan struct{} {
	if b.changed == nil {
		b.changed = make(chan struct{})
	}
	return b.changed
}

func (b *breaker) setState(s string) {
	b.state = s
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
}

// cancelProbe gives back a probe that was granted but not started, or was
// abandoned: the next replay to ask becomes the probe.
func (b *breaker) cancelProbe() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == BreakerHalfOpen {
		b.probeAt = time.Time{}
		b.setState(BreakerOpen)
	}
}

// report records the outcome of one replay; probe says it was the probe.
func (b *breaker) report(probe bool, o outcome) {
	if b.threshold == 0 {
		return
	}
	if o == outcomeNeutral {
		if probe {
			b.cancelProbe()
		}
		return
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if o == outcomeResponse {
		b.consecutive = 0
		if b.state != BreakerClosed {
			b.log.Info("replay breaker closed: the target answered", "run_id", b.runID, "state", BreakerClosed,
				"open_for", now.Sub(b.openedAt).Round(time.Millisecond))
			b.setState(BreakerClosed)
		}
		return
	}
	b.consecutive++
	switch {
	case b.state == BreakerClosed && b.consecutive >= b.threshold:
		b.openedAt, b.probeAt = now, now.Add(b.interval)
		b.opens.Add(1)
		b.log.Warn("replay breaker opened: the target keeps failing; replays wait, one probe per probe_interval",
			"run_id", b.runID, "state", BreakerOpen, "consecutive_errors", b.consecutive, "probe_interval", b.interval)
		b.setState(BreakerOpen)
	case b.state == BreakerHalfOpen && probe:
		b.probeAt = now.Add(b.interval)
		b.log.Info("replay breaker stays open: the probe failed", "run_id", b.runID, "state", BreakerOpen,
			"consecutive_errors", b.consecutive, "open_for", now.Sub(b.openedAt).Round(time.Millisecond))
		b.setState(BreakerOpen)
	}
}

// health returns the state, since when the breaker is not closed (zero
// when it is) and the consecutive failed replays, for readiness.
func (b *breaker) health() (state string, openedAt time.Time, consecutive int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == BreakerClosed {
		return b.state, time.Time{}, b.consecutive
	}
	return b.state, b.openedAt, b.consecutive
}

// current returns the state for Stats.
func (b *breaker) current() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}
