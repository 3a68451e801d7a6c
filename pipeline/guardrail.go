package pipeline

import (
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replaykit/replay/schemas"
)

// guardrail watches the target over a sliding window of finished replays
// and trips when its error rate or p99 latency crosses a limit (see
// GuardrailConfig): in ramp mode with action step_back it steps the ramp
// back one stage and holds it there; otherwise it pauses. A trip starts a
// fresh window: it judges only replays sent after the trip (ReplayedAt at
// or after it), so the replies of requests sent under the load that
// tripped it, still arriving, cannot trip it again, and one overload steps
// back exactly one stage; a further trip judges the lower load only. It
// lifts when an operator resumes, or after the cool-down.
//
// The window is a ring of buckets, each a count, an error count and a
// log-scale latency histogram, with running totals, so judging the window
// after every replay costs a scan of the histogram's bins and no
// allocation; p99 is the upper bound of the bin holding the 99th
// percentile (within 19% of the true value), which is what a guardrail
// needs.
type guardrail struct {
	cfg      GuardrailConfig
	enabled  bool
	log      *slog.Logger
	runID    string
	onChange func() // tells the pacer; called without the lock held

	mu         sync.Mutex
	width      time.Duration // of one bucket
	buckets    []windowBucket
	total      windowBucket // the sums of buckets
	state      string
	reason     string
	since      time.Time
	tripped    time.Time // zero when ok
	pausedByUs bool      // tripped into a pause, not a step back
	ramp       bool      // the pacer is ramping
	rampStage  int       // the stage the pacer runs (set by the pacer)
	steppedTo  int       // the stage a step back asked for; -1: none
	errorRate  float64   // at the last evaluation
	p99        time.Duration
	requests   int
	tripped1   chan struct{} // closed at the next trip; for tests
	trips      atomic.Int64
	stepBacks  atomic.Int64

	// fresh is when the window last started afresh (the last trip): a
	// replay sent before it is not judged. Zero before the first trip.
	fresh time.Time
}

const (
	guardBuckets = 10
	latencyBins  = 80
)

type windowBucket struct {
	index    int64 // which bucket of time it holds: unix nanos / width
	n, errs  int
	latency  [latencyBins]uint32
	occupied bool
}

// latencyBin returns the histogram bin of d: bin i holds latencies up to
// 0.5ms·2^(i/4).
func latencyBin(d time.Duration) int {
	ms := float64(d) / float64(time.Millisecond)
	if ms <= 0.5 {
		return 0
	}
	i := int(math.Ceil(4 * math.Log2(ms/0.5)))
	return min(i, latencyBins-1)
}

func binUpper(i int) time.Duration {
	return time.Duration(0.5 * math.Pow(2, float64(i)/4) * float64(time.Millisecond))
}

func newGuardrail(cfg GuardrailConfig, log *slog.Logger, runID string) *guardrail {
	g := &guardrail{cfg: cfg, log: log, runID: runID, state: GuardrailOK, since: time.Now().UTC(),
		enabled: cfg.MaxErrorRate > 0 || cfg.MaxP99 > 0, steppedTo: -1, tripped1: make(chan struct{}),
		onChange: func() {}}
	g.width = max(cfg.Window/guardBuckets, 10*time.Millisecond)
	g.buckets = make([]windowBucket, guardBuckets)
	return g
}

// failed reports whether a replay row counts as an error: a connection
// failure (any error kind but a truncated body) or a 5xx response.
func failed(row *schemas.ReplayRow) bool {
	if row.ErrorKind != "" && row.ErrorKind != schemas.ErrorBodyTooLarge {
		return true
	}
	return row.Response != nil && row.Response.Status >= 500
}

// report adds one finished replay. Called from workers. A replay sent
// before the last trip is not counted: its latency or failure belongs to
// the load that tripped it.
func (g *guardrail) report(now time.Time, row *schemas.ReplayRow) {
	if !g.enabled {
		return
	}
	var latency time.Duration
	if row.Response != nil {
		latency = time.Duration(row.Response.LatencyMS * float64(time.Millisecond))
	} else {
		latency = now.Sub(row.ReplayedAt)
	}
	g.mu.Lock()
	if row.ReplayedAt.Before(g.fresh) {
		g.mu.Unlock()
		return
	}
	idx := now.UnixNano() / int64(g.width)
	g.expireLocked(idx)
	b := &g.buckets[idx%guardBuckets]
	if !b.occupied {
		*b = windowBucket{index: idx, occupied: true}
	}
	bin := latencyBin(latency)
	b.n++
	g.total.n++
	if failed(row) {
		b.errs++
		g.total.errs++
	}
	b.latency[bin]++
	g.total.latency[bin]++
	changed := false
	// Judged while ok, and while holding a stepped-back ramp (still too
	// much: step back again, or pause); not while paused.
	if !(g.state == GuardrailTripped && g.pausedByUs) {
		changed = g.evaluateLocked(now)
	}
	g.mu.Unlock()
	if changed {
		g.onChange()
	}
}

// expireLocked drops the buckets that fell out of the window ending at
// bucket idx from the ring and the totals.
func (g *guardrail) expireLocked(idx int64) {
	for i := range g.buckets {
		b := &g.buckets[i]
		if b.occupied && b.index <= idx-guardBuckets {
			g.total.n -= b.n
			g.total.errs -= b.errs
			for j, c := range b.latency {
				g.total.latency[j] -= c
			}
			*b = windowBucket{}
		}
	}
}

// evaluateLocked measures the window and trips when a limit is crossed.
// It reports whether it tripped.
func (g *guardrail) evaluateLocked(now time.Time) bool {
	n := g.total.n
	g.requests = n
	if n == 0 {
		g.errorRate, g.p99 = 0, 0
		return false
	}
	g.errorRate = float64(g.total.errs) / float64(n)
	rank := uint64(math.Ceil(0.99 * float64(n)))
	var seen uint64
	for j, c := range g.total.latency {
		seen += uint64(c)
		if seen >= rank {
			g.p99 = binUpper(j)
			break
		}
	}
	if n < g.cfg.MinRequests {
		return false
	}
	var reason string
	switch {
	case g.cfg.MaxErrorRate > 0 && g.errorRate > g.cfg.MaxErrorRate:
		reason = fmt.Sprintf("error rate %.1f%% over the last %v (%d replays) is above max_error_rate %.1f%%",
			100*g.errorRate, g.cfg.Window, n, 100*g.cfg.MaxErrorRate)
	case g.cfg.MaxP99 > 0 && g.p99 > g.cfg.MaxP99:
		reason = fmt.Sprintf("p99 latency %v over the last %v (%d replays) is above max_p99 %v",
			g.p99, g.cfg.Window, n, g.cfg.MaxP99)
	default:
		return false
	}
	g.tripLocked(now, reason)
	return true
}

func (g *guardrail) tripLocked(now time.Time, reason string) {
	g.state, g.reason, g.since, g.tripped = GuardrailTripped, reason, now.UTC(), now
	// The fresh window judges requests sent from now on. ReplayedAt is
	// wall-clock time (UTC, no monotonic reading): compare with the same.
	g.fresh = now.Round(0)
	g.trips.Add(1)
	for i := range g.buckets {
		g.buckets[i] = windowBucket{}
	}
	g.total = windowBucket{}
	action := "paused"
	if g.cfg.Action == GuardrailStepBack && g.ramp && g.rampStage > 0 {
		g.steppedTo = g.rampStage - 1
		g.pausedByUs = false
		g.stepBacks.Add(1)
		action = fmt.Sprintf("stepped the ramp back to stage %d and holding it", g.steppedTo)
	} else {
		g.pausedByUs = true
	}
	lift := "until an operator resumes (replay ctl resume)"
	if g.cfg.Cooldown > 0 {
		lift = fmt.Sprintf("for the cool-down of %v", g.cfg.Cooldown)
	}
	g.log.Warn("guardrail tripped: "+action+" "+lift, "run_id", g.runID, "reason", reason,
		"error_rate", g.errorRate, "p99", g.p99, "requests", g.requests)
	close(g.tripped1)
	g.tripped1 = make(chan struct{})
}

// refreshLocked lifts a trip whose cool-down has elapsed.
func (g *guardrail) refreshLocked(now time.Time) {
	if g.state == GuardrailTripped && g.cfg.Cooldown > 0 && !now.Before(g.tripped.Add(g.cfg.Cooldown)) {
		g.log.Info("guardrail lifted after its cool-down", "run_id", g.runID, "cooldown", g.cfg.Cooldown)
		g.liftLocked(now)
	}
}

func (g *guardrail) liftLocked(now time.Time) {
	g.state, g.reason, g.since, g.tripped = GuardrailOK, "", now.UTC(), time.Time{}
	g.pausedByUs = false
}

// lift ends a trip (an operator resumed). It reports whether one was
// in force.
func (g *guardrail) lift(who string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state != GuardrailTripped {
		return false
	}
	g.log.Info("guardrail lifted by an operator", "run_id", g.runID, "by", who, "reason_was", g.reason)
	g.liftLocked(time.Now())
	return true
}

// paused reports whether the guardrail pauses replaying now, and when a
// trip in force (a pause or a held ramp stage) lifts by itself (zero: only
// an operator lifts it, or nothing is tripped). One lock for both: the
// pacer asks once per request.
func (g *guardrail) paused(now time.Time) (paused bool, liftsAt time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refreshLocked(now)
	return g.state == GuardrailTripped && g.pausedByUs, g.liftsAtLocked()
}

// holding reports whether the guardrail holds the ramp at its stage.
func (g *guardrail) holding(now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refreshLocked(now)
	return g.state == GuardrailTripped
}

func (g *guardrail) liftsAtLocked() time.Time {
	if g.state != GuardrailTripped || g.cfg.Cooldown <= 0 {
		return time.Time{}
	}
	return g.tripped.Add(g.cfg.Cooldown)
}

// setStage tells the guardrail what the pacer runs: ramping, at stage i.
func (g *guardrail) setStage(ramp bool, i int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ramp, g.rampStage = ramp, i
	if g.steppedTo == i {
		g.steppedTo = -1
	}
}

// stage returns the stage the pacer should run: a step back's, else the
// one it runs.
func (g *guardrail) stage() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.steppedTo >= 0 {
		return g.steppedTo
	}
	return g.rampStage
}

// status returns the guardrail's state for ControlStatus.
func (g *guardrail) status(now time.Time) GuardrailStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refreshLocked(now)
	return GuardrailStatus{
		State: g.state, Reason: g.reason, Since: g.since,
		ErrorRate: g.errorRate, P99MS: float64(g.p99) / float64(time.Millisecond), Requests: g.requests,
		ResumeAt: g.liftsAtLocked(), Trips: g.trips.Load(),
	}
}

// nextTrip returns a channel closed at the next trip; for tests.
func (g *guardrail) nextTrip() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tripped1
}
