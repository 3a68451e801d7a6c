package pipeline

import (
	"context"

	"github.com/sourcegraph/conc"
	"github.com/sourcegraph/conc/panics"

	"github.com/replaykit/replay/schemas"
)

// The baseline target (replay.baseline) is a second copy of the old
// version. Each selected record is replayed to it as well as to the target,
// by the worker that runs the record: the same rewritten request (the
// rewrite rules, the replay ID header and the Host policy, with each
// target's own host under "target"), sent to both at once, so the record
// completes when the slower answer is in. Its row goes to
// baseline_responses; compare reads it to tell the service's own
// non-determinism from the candidate's defects.
//
// The baseline has a replayer of its own (its own HTTP client and
// connections) with the same timeouts and retries. The breaker and the
// pacer are the target's: a record is paced and dispatched once, and only
// the target's outcome opens or closes the breaker.

// newBaselineReplayer returns the replayer of the baseline target, or nil
// when replay.baseline is off.
func newBaselineReplayer(cfg Config, c *compiled) *replayer {
	if c.baseline == nil {
		return nil
	}
	bc := *c
	bc.target, bc.rewriter = c.baseline, c.baselineRewrite
	return newReplayer(cfg, &bc)
}

// replayTargets replays x to the target and, when a baseline is set, to
// the baseline concurrently, and returns both rows (base is nil without a
// baseline). o is the target's outcome alone, for the breaker. When either
// replay is abandoned (see replayer.replay) both rows are nil: the record
// is left for the next run whole, rather than written with one side
// missing.
func (p *Pipeline) replayTargets(ctx context.Context, stop <-chan struct{}, x *schemas.Exchange) (row, base *schemas.ReplayRow, o outcome) {
	if p.baseline == nil {
		row, o = p.replayer.replay(ctx, stop, x)
		return row, nil, o
	}
	var wg conc.WaitGroup
	wg.Go(func() { base, _ = p.baseline.replay(ctx, stop, x) })
	var pc panics.Catcher
	pc.Try(func() { row, o = p.replayer.replay(ctx, stop, x) })
	wg.Wait() // re-panics a panic of the baseline's replay
	pc.Repanic()
	if row == nil || base == nil {
		return nil, nil, o
	}
	return row, base, o
}
