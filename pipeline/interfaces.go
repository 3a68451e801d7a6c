package pipeline

import (
	"context"

	"github.com/replaykit/replay/schemas"
)

// Source delivers raw records and takes back the offsets that are durable.
// Records of one partition arrive in offset order.
type Source interface {
	// Poll blocks until at least one record is available and returns them. It
	// returns io.EOF once a finite source is exhausted, and ctx.Err() when ctx
	// ends.
	Poll(ctx context.Context) ([]schemas.Record, error)
	// Commit tells the source that every record below offsets (next offset
	// per partition) is durably stored.
	Commit(ctx context.Context, offsets schemas.Offsets) error
}

// Sink stores results. The pipeline calls it from one goroutine only, with
// results in offset order per partition.
type Sink interface {
	// Add buffers the rows of one result.
	Add(r *schemas.Result) error
	// Buffered reports the rows and approximate bytes added since the last
	// flush.
	Buffered() (rows int, bytes int64)
	// Flush durably commits everything added so far and returns, per
	// partition, the next offset after the last result it covers. Offsets are
	// empty when nothing was buffered.
	Flush(ctx context.Context) (schemas.Offsets, error)
}

// ReplayHolder is implemented by a Sink that can tell, before a record is
// replayed, that it already holds that record's replay row (written by an
// earlier run that crashed before committing its offsets). For such a
// record the pipeline sends no request and hands the sink a Result without
// a Replay row; the sink drops the rows it already holds itself. The
// record counts in Stats.SkippedHeld.
//
// Unlike the Sink methods, HoldsReplay is called from the intake
// goroutine, concurrently with Add and Flush: it must be safe for
// concurrent use, and cheap, since it is asked once per selected record.
type ReplayHolder interface {
	HoldsReplay(c schemas.Coordinates) bool
}
