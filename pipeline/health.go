package pipeline

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// This file owns what the pipeline tells readiness and liveness probes.
//
// Ready (Unready returns nil): Run runs, the breaker is closed, and
// committing offsets to the source has not failed for longer than the
// flush interval. Paused is ready: the pipeline does what it was told.
//
// Live (Wedged returns nil): the sink goroutine, which wakes at least once
// per flush interval even when nothing arrives, has finished a step
// recently. A sink goroutine stuck in one step (a flush, a commit) longer
// than the caller's bound is wedged; a restart is the only way out.

// health is the pipeline's record of its own progress.
type health struct {
	// beat is when the sink goroutine last began waiting for work (unix
	// nanos); 0 when no Run is in progress.
	beat atomic.Int64

	mu sync.Mutex
	// commitSince is the first failed source commit of the current run of
	// failures; zero after a success.
	commitSince time.Time
	commitErr   error
}

func (h *health) commitFailed(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.commitSince.IsZero() {
		h.commitSince = time.Now()
	}
	h.commitErr = err
}

func (h *health) committed() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.commitSince, h.commitErr = time.Time{}, nil
}

// Unready returns why the pipeline cannot do its job at now, or nil when it
// can: Run is not running (not started, or shutting down), the target
// keeps failing (the breaker is open or half-open), or committing offsets
// to the source has failed for longer than the flush interval. A paused
// pipeline is ready. Safe to call from any goroutine.
func (p *Pipeline) Unready(now time.Time) error {
	if p.active.Load() == nil {
		return errors.New("the replay pipeline is not running")
	}
	var errs []error
	if state, since, n := p.breaker.health(); state != BreakerClosed {
		errs = append(errs, fmt.Errorf("the target %s keeps failing: replay breaker %s for %s after %d consecutive failed replays (replay.breaker); replays wait, one probe every %s",
			p.cfg.Replay.Target, state, now.Sub(since).Round(100*time.Millisecond), n, p.cfg.Replay.Breaker.ProbeInterval))
	}
	p.health.mu.Lock()
	since, err := p.health.commitSince, p.health.commitErr
	p.health.mu.Unlock()
	if !since.IsZero() && now.Sub(since) >= p.cfg.Flush.Interval {
		errs = append(errs, fmt.Errorf("committing offsets to the source has failed for %s: %w", now.Sub(since).Round(100*time.Millisecond), err))
	}
	return errors.Join(errs...)
}

// Wedged returns an error when Run runs and its sink goroutine has not come
// back to wait for work for longer than after, else nil. With
// flush.interval 0 the goroutine wakes only for results, so an idle
// pipeline is never judged wedged. Safe to call from any goroutine.
func (p *Pipeline) Wedged(now time.Time, after time.Duration) error {
	beat := p.health.beat.Load()
	if beat == 0 || p.cfg.Flush.Interval <= 0 || after <= 0 {
		return nil
	}
	if d := now.Sub(time.Unix(0, beat)); d > after {
		return fmt.Errorf("the sink goroutine has made no progress for %s (more than %s): a flush or commit never returned", d.Round(time.Second), after)
	}
	return nil
}
