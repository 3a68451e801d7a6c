package pipeline

import (
	"context"
	"time"

	"github.com/replaykit/replay/schemas"
)

// FlushObserver is an optional interface of the Observer: when the
// observer set with SetObserver implements it, it is told how long every
// successful sink flush and every source commit took. Both are called from
// the pipeline's sink goroutine; they must be cheap and must not block.
type FlushObserver interface {
	// ObserveFlush reports a successful flush of rows rows that took d.
	ObserveFlush(rows int, d time.Duration)
	// ObserveCommit reports an offset commit to the source that took d and
	// ended with err (nil on success).
	ObserveCommit(d time.Duration, err error)
}

// observeFlush tells the observer, if it is a FlushObserver, about a flush.
func (p *Pipeline) observeFlush(rows int, d time.Duration) {
	if fo, ok := p.observer.(FlushObserver); ok {
		fo.ObserveFlush(rows, d)
	}
}

// commitSource commits offsets to the source and tells the observer, if it
// is a FlushObserver, how long it took.
func (p *Pipeline) commitSource(ctx context.Context, offsets schemas.Offsets) error {
	fo, ok := p.observer.(FlushObserver)
	if !ok {
		return p.src.Commit(ctx, offsets)
	}
	start := time.Now()
	err := p.src.Commit(ctx, offsets)
	fo.ObserveCommit(time.Since(start), err)
	return err
}
