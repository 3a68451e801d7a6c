package pipeline

import (
	"log/slog"
	"sync"
	"time"
)

// pacer decides when each replay may start, from the live Control and the
// guardrail:
//
//   - rate: an absolute schedule, one start every 1/Rate (Rate 0 is
//     unlimited). A dispatcher woken late (Go's timers wake about a
//     millisecond late on Linux, more on a busy machine) is not charged
//     for it: the requests whose slots passed start at once, so the mean
//     rate holds; at most max(Burst, catchUp's worth) of them start
//     together after an idle spell. A token bucket with a small burst
//     would instead lose every late wake-up for good (measured: 87% of
//     1000/s with burst 1).
//   - pace: a request captured at c is due at w0 + (c − c0)/Pace, where
//     (c0, w0) is an anchor: the first request's capture time and the wall
//     time it was paced at. The anchor is reset whenever the pacing
//     changes (a control update, a ramp stage, a pause), so a new pace
//     applies from now instead of re-timing the past. A request already
//     late (a slow target, an older partition) is due at once.
//   - ramp: the stages in turn, each paced as above; the last is held.
//   - max: always now.
//
// Paused (by an operator or the guardrail) nothing is due. The dispatcher
// (the intake goroutine) reserves one start per request; workers report
// outcomes to the guardrail; the control API reads the status. Every
// change of pacing closes the channel returned with the reservation, so a
// dispatcher waiting on an old reservation reserves again.
type pacer struct {
	ctl   *controller
	guard *guardrail
	log   *slog.Logger
	runID string

	mu      sync.Mutex
	notify  chan struct{} // closed on every pacing change
	seen    Control       // the control the state below was built for
	seenCh  <-chan struct{}
	started bool // seen is set

	// anchored: the state below belongs to the pacing in force; a change
	// of pacing clears it.
	anchored bool
	// pace mode and pace stages: the anchor
	anchorCaptured, anchorStart time.Time
	// rate mode and rate stages: the start time of the next request
	next time.Time

	// ramp mode
	stage      int
	stageStart time.Time
	held       bool // the guardrail held the stage at the last sync
}

func newPacer(ctl *controller, guard *guardrail, log *slog.Logger, runID string) *pacer {
	return &pacer{ctl: ctl, guard: guard, log: log, runID: runID, notify: make(chan struct{})}
}

// catchUp is the least lateness a rate schedule makes up at once: a few
// timer granularities.
const catchUp = 10 * time.Millisecond

// pacing is one reservation: when the request may start.
type pacing struct {
	// paused: nothing may start; wait for notify (or recheck).
	paused bool
	// readyAt is when the request may start (when not paused).
	readyAt time.Time
	// recheck, when not zero, is when the pacing changes by itself (a ramp
	// stage ends, a guardrail cool-down ends): reserve again then.
	recheck time.Time
	// notify is closed when the pacing changes: reserve again.
	notify <-chan struct{}
	// cancel gives back an unused token of the bucket; nil when none.
	cancel func()
}

// poke tells waiting dispatchers that the pacing changed.
func (pc *pacer) poke() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.pokeLocked()
}

func (pc *pacer) pokeLocked() {
	close(pc.notify)
	pc.notify = make(chan struct{})
	pc.anchored = false
}

// sync brings the pacer up to date with the control and the clock: a new
// control resets the anchor and the ramp; an elapsed stage advances the
// ramp unless the guardrail holds it.
func (pc *pacer) syncLocked(now time.Time) Control {
	c, ch := pc.ctl.get()
	if !pc.started || ch != pc.seenCh {
		rampChanged := !pc.started || c.Mode != pc.seen.Mode || !sameStages(c.Ramp, pc.seen.Ramp)
		pc.seen, pc.seenCh, pc.started = c, ch, true
		if rampChanged {
			pc.stage, pc.stageStart = 0, now
			pc.guard.setStage(c.Mode == ModeRamp, 0)
		}
		pc.anchored = false
	}
	if c.Mode == ModeRamp {
		if st := pc.guard.stage(); st != pc.stage { // the guardrail stepped back
			pc.stage, pc.stageStart, pc.anchored = st, now, false
			pc.guard.setStage(true, st)
		}
		holding := pc.guard.holding(now)
		if pc.held && !holding { // lifted: the held stage runs its full duration from now
			pc.stageStart = now
		}
		pc.held = holding
		for !holding && pc.stage < len(c.Ramp)-1 && !now.Before(pc.stageStart.Add(c.Ramp[pc.stage].Duration)) {
			pc.stageStart = pc.stageStart.Add(c.Ramp[pc.stage].Duration)
			pc.stage++
			pc.anchored = false
			pc.guard.setStage(true, pc.stage)
			s := c.Ramp[pc.stage]
			pc.log.Info("ramp stage started", "run_id", pc.runID, "stage", pc.stage, "rate", s.Rate, "pace", s.Pace,
				"duration", s.Duration)
		}
	}
	return c
}

// current returns the rate (0 = unlimited) or pace (> 0) in force, and
// when it ends by itself (zero: it does not).
func (pc *pacer) currentLocked(c Control, now time.Time) (rps, pace float64, ends time.Time) {
	switch c.Mode {
	case ModeRate:
		return c.Rate, 0, time.Time{}
	case ModePace:
		return 0, c.Pace, time.Time{}
	case ModeRamp:
		s := c.Ramp[pc.stage]
		if pc.stage < len(c.Ramp)-1 && !pc.guard.holding(now) {
			ends = pc.stageStart.Add(s.Duration)
		}
		if s.Pace > 0 {
			return 0, s.Pace, ends
		}
		return s.Rate, 0, ends
	default:
		return 0, 0, time.Time{}
	}
}

// reserve reserves a start for a request captured at captured.
func (pc *pacer) reserve(now, captured time.Time) pacing {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	c := pc.syncLocked(now)
	out := pacing{notify: pc.notify}
	guardPaused, until := pc.guard.paused(now)
	if c.Paused || guardPaused {
		out.paused, out.recheck = true, until
		pc.anchored = false
		return out
	}
	rps, pace, ends := pc.currentLocked(c, now)
	out.recheck = ends
	if !until.IsZero() && (out.recheck.IsZero() || until.Before(out.recheck)) {
		out.recheck = until
	}
	switch {
	case pace > 0:
		if !pc.anchored {
			pc.anchored, pc.anchorCaptured, pc.anchorStart = true, captured, now
		}
		due := pc.anchorStart.Add(time.Duration(float64(captured.Sub(pc.anchorCaptured)) / pace))
		if due.Before(now) {
			due = now
		}
		out.readyAt = due
	case rps > 0 && c.Mode != ModeMax:
		iv := time.Duration(float64(time.Second) / rps)
		if !pc.anchored { // a new rate starts now
			pc.anchored, pc.next = true, now
		}
		// Idle (or late) for longer than the burst: only a burst's worth
		// of starts is due at once.
		if early := now.Add(-max(time.Duration(c.Burst-1)*iv, catchUp)); pc.next.Before(early) {
			pc.next = early
		}
		slot := pc.next
		pc.next = pc.next.Add(iv)
		out.readyAt = slot
		if slot.Before(now) {
			out.readyAt = now
		}
		out.cancel = func() {
			pc.mu.Lock()
			defer pc.mu.Unlock()
			if pc.anchored && pc.next.Equal(slot.Add(iv)) { // nobody reserved after it: give it back
				pc.next = slot
			}
		}
	default:
		out.readyAt = now
	}
	return out
}

// status fills the derived fields of st.
func (pc *pacer) status(st *ControlStatus, now time.Time) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	c := pc.syncLocked(now)
	rps, pace, ends := pc.currentLocked(c, now)
	st.EffectiveRate, st.EffectivePace = rps, pace
	if c.Mode == ModeRamp {
		st.RampStage, st.RampStageEndsAt = pc.stage, ends
	}
	st.Guardrail = pc.guard.status(now)
	guardPaused, _ := pc.guard.paused(now)
	switch {
	case c.Paused:
		st.PausedBy, st.Paused = "operator", true
	case guardPaused:
		st.PausedBy, st.Paused = "guardrail", true
	}
}

func sameStages(a, b []RampStage) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// pacerStatus fills the derived fields of st.
func (p *Pipeline) pacerStatus(st *ControlStatus) { p.pacer.status(st, time.Now()) }
