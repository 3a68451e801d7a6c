package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/replaykit/replay/schemas"
)

// errRunOver ends a wait of Revoke when the sink goroutine has finished.
var errRunOver = errors.New("the pipeline run is over")

// flushRequest asks the sink goroutine to add every released result, flush
// and commit, on behalf of Revoke.
type flushRequest struct {
	// ctx is the Revoke call's and bounds the commit. A request lives only
	// as long as that call, like an *http.Request, so it carries it.
	ctx   context.Context
	reply chan error // buffered, so the sink goroutine never waits on it
}

// Revoke is the barrier a consumer group's revoke callback calls before the
// partitions tps go to another consumer. It may be called from any
// goroutine while Run runs; it is a no-op returning nil before Run started
// and after it returned. It:
//
//  1. stops dispatching records of tps: records waiting for a worker, the
//     pacer or the breaker, or queued behind their ordering key, are
//     discarded with every record behind them (only a suffix of each
//     partition, so with per-key ordering records behind a queued one may
//     be in flight already: their results are dropped), freeing their
//     in-flight slots; they are not written, so the new owner reads them
//     again (a record whose first request was sent is in flight: its
//     amplified copies are still sent, and waited for);
//  2. ignores the records of tps the source returns from then on, and
//     those of poll batches already returned, until Assign names the
//     partitions again (for batches returned after that call);
//  3. waits for the replays of tps already in flight, and hands their
//     results to the sink;
//  4. has the sink flush everything it buffered and commits the flushed
//     offsets to the source;
//
// and returns nil only then. From then on, until Assign, no offset of tps is
// committed again by this pipeline.
//
// When ctx ends first, Revoke returns an error wrapping ctx.Err(): results
// of tps that reach the sink goroutine afterwards are dropped, not
// written, and no offset of tps is committed by this pipeline afterwards
// (until Assign); a commit already under way is cancelled through ctx.
// Rows of tps the sink buffered before may still be flushed to it later.
//
// A flush failure fails Run and is returned; a commit failure is returned,
// and the run goes on.
func (p *Pipeline) Revoke(ctx context.Context, tps []schemas.TopicPartition) error {
	r := p.active.Load()
	if r == nil || len(tps) == 0 {
		return nil
	}
	r.revokeMu.Lock()
	defer r.revokeMu.Unlock()
	start := time.Now()

	discarded, epochs := r.seq.revoke(tps)
	p.release(r, discarded)
	p.stats.discarded.Add(int64(discarded))
	p.log.Debug("revoke: dispatch stopped; waiting for in-flight replays", "run_id", p.cfg.RunID,
		"partitions", len(tps), "discarded", discarded)

	err := p.revokeBarrier(ctx, r, tps)
	r.seq.fence(tps, epochs)
	switch {
	case err == nil:
		p.log.Info("partitions revoked: in-flight replays written and committed", "run_id", p.cfg.RunID,
			"partitions", len(tps), "discarded", discarded, "duration", time.Since(start))
		return nil
	case errors.Is(err, errRunOver):
		// Run ended meanwhile; its final flush and commit covered what was
		// written.
		if r.sinkErr != nil {
			return fmt.Errorf("revoke %d partitions: the pipeline stopped: %w", len(tps), r.sinkErr)
		}
		return nil
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		p.log.Warn("revoke gave up waiting; the partitions' remaining results will not be written or committed by this process",
			"run_id", p.cfg.RunID, "partitions", len(tps), "discarded", discarded, "duration", time.Since(start), "error", err)
		return fmt.Errorf("revoke %d partitions: in-flight replays, the flush or the commit did not finish in time: %w", len(tps), err)
	default:
		return fmt.Errorf("revoke %d partitions: %w", len(tps), err)
	}
}

// revokeBarrier waits for the in-flight records of tps, then has the sink
// goroutine flush and commit.
func (p *Pipeline) revokeBarrier(ctx context.Context, r *run, tps []schemas.TopicPartition) error {
	if err := r.seq.waitEmpty(ctx, tps, r.sinkDone); err != nil {
		return err
	}
	req := flushRequest{ctx: ctx, reply: make(chan error, 1)}
	select {
	case r.flushReqs <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-r.sinkDone:
		return errRunOver
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Assign tells the pipeline that tps are assigned to it (again) after a
// Revoke: records of them from poll batches returned after this call are
// processed, and their offsets committed, again. The source calls it from
// its assign callback, before it returns records of tps. Partitions that
// were never revoked (or were assigned since) are left alone, so calling it
// with every assigned partition is fine. It is a no-op outside Run.
func (p *Pipeline) Assign(tps []schemas.TopicPartition) {
	r := p.active.Load()
	if r == nil || len(tps) == 0 {
		return
	}
	r.revokeMu.Lock()
	defer r.revokeMu.Unlock()
	if n := r.seq.assign(tps); n > 0 {
		p.log.Info("revoked partitions assigned again", "run_id", p.cfg.RunID, "partitions", n)
	}
}
