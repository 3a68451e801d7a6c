package pipeline

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/replaykit/replay/schemas"
)

// Stats is a snapshot of a pipeline's counters since New.
type Stats struct {
	Consumed     int64 // records polled from the source, ignored ones included
	Decoded      int64 // records decoded into an exchange
	DeadLettered int64 // records that could not be decoded
	// DeadLetters counts DeadLettered by reason (one of
	// DeadLetterReasons), and DeadLetterShapes by what the records look
	// like (one of schemas.Shapes); reasons and shapes never seen are
	// absent.
	DeadLetters      map[string]int64
	DeadLetterShapes map[string]int64
	// DuplicateIDs counts decoded records whose correlation ID an earlier,
	// distinct record (other coordinates) within the last
	// Decode.DuplicateWindow IDs carried. Both are written; replay compare
	// counts every duplicate of the run, however far apart.
	DuplicateIDs int64
	Filtered     int64 // decoded records not selected for replay by the filter
	// DialedOut counts records the filter selected but the sticky dial
	// left out (their dial key's bucket is at or above the dial percent);
	// like filtered records they get a production row only.
	DialedOut int64
	// SkippedHeld counts selected records not replayed because the sink
	// already holds their replay row (ReplayHolder).
	SkippedHeld int64
	Replayed    int64 // replay rows produced, failed replays and amplified copies included
	// Amplified counts the replay rows of amplified copies (<id>#2, …),
	// which Replayed includes.
	Amplified int64
	// KeyQueued counts requests (amplified copies included) that were
	// queued behind an earlier request of their ordering key instead of
	// being dispatched at once (replay.ordering.mode: key).
	KeyQueued int64
	// Retries counts requests sent again after a connection failure: a
	// replay row with Attempts n adds n-1.
	Retries int64
	// ReplayErrors counts replay rows with an error, by error kind
	// (schemas.ErrorTimeout, …, schemas.ErrorBodyTooLarge); kinds never
	// seen are absent.
	ReplayErrors map[string]int64
	// Discarded counts records polled but never written because their
	// partition was revoked: waiting to be dispatched (or queued behind
	// their ordering key) at the revoke, or behind such a record in their
	// partition, polled after it, or (after a Revoke that timed out)
	// finished too late. The partition's next owner reads them again.
	Discarded int64
	// Abandoned counts records left unwritten at shutdown, with no offset
	// committed past them: replays cancelled when the grace period elapsed
	// or while waiting to retry, records waiting to be dispatched or queued
	// behind their ordering key (and records some of whose amplified
	// copies were not sent), and the records behind them in their
	// partitions. They are replayed after a restart.
	Abandoned    int64
	RowsWritten  TableRows // rows in batches the sink flushed successfully
	Flushes      int64     // successful sink flushes
	Commits      int64     // successful Source.Commit calls
	CommitErrors int64     // failed Source.Commit calls (retried with the next flush)
	InFlight     int64     // records holding an in-flight slot now
	// Breaker is the circuit breaker's state: BreakerClosed ("closed", also
	// when disabled), BreakerOpen ("open": no replay starts) or
	// BreakerHalfOpen ("half-open": one probe in flight).
	Breaker string
	// BreakerOpens counts how often the breaker opened (closed → open).
	BreakerOpens int64
	// Committed is, per partition, the last offset committed to the source
	// (the next offset to read).
	Committed schemas.Offsets
	// Live are the live comparison's counts by endpoint ("GET
	// /users/{id}", named like batch compare names it; LiveOther past
	// live_compare.max_endpoints), and LiveTotal their sum, since New.
	// Live is nil and LiveTotal zero when live comparison is off; when it
	// is on, Live is not nil, even before the first pair.
	Live      map[string]LiveCounts
	LiveTotal LiveCounts
}

// LiveCounts are the live comparison's counts of the pairs it classified
// (see Observation.Verdict for which).
type LiveCounts struct {
	Compared   int64 // pairs classified: Matched + Mismatched + Lineage
	Matched    int64 // equal after normalization
	Mismatched int64 // differ after normalization, failed replays included
	Lineage    int64 // lineage differs on a shared key: excluded from the match rate
}

// MatchRate is Matched / (Matched + Mismatched), by schemas.MatchRate,
// the definition batch compare uses too; nil (undefined) when nothing was
// compared.
func (c LiveCounts) MatchRate() *float64 {
	return schemas.MatchRate(c.Matched, c.Mismatched)
}

// TableRows counts rows per output table.
type TableRows struct {
	Production int64
	Replay     int64
	Baseline   int64 // baseline_responses: replays to replay.baseline
	DeadLetter int64
}

// errorKinds are the kinds counted in Stats.ReplayErrors.
var errorKinds = [...]string{
	schemas.ErrorTimeout, schemas.ErrorRefused, schemas.ErrorReset, schemas.ErrorTLS,
	schemas.ErrorDNS, schemas.ErrorOther, schemas.ErrorBodyTooLarge,
}

type stats struct {
	consumed, decoded, deadLettered, filtered, replayed atomic.Int64
	dialedOut, amplified, keyQueued                     atomic.Int64
	skippedHeld, retries, discarded, abandoned          atomic.Int64
	replayErrors                                        [len(errorKinds)]atomic.Int64
	written                                             struct{ production, replay, baseline, deadLetter atomic.Int64 }
	flushes, commits, commitErrors                      atomic.Int64
	duplicateIDs                                        atomic.Int64

	live liveTable // used when live comparison is on

	mu        sync.Mutex
	committed schemas.Offsets
}

func (s *stats) replayError(kind string) {
	i := slices.Index(errorKinds[:], kind)
	if i < 0 {
		i = slices.Index(errorKinds[:], schemas.ErrorOther)
	}
	s.replayErrors[i].Add(1)
}

func (s *stats) committedOffsets(o schemas.Offsets) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.committed == nil {
		s.committed = schemas.Offsets{}
	}
	maps.Copy(s.committed, o)
}

// Stats returns a snapshot of the counters. Safe to call concurrently with
// Run.
func (p *Pipeline) Stats() Stats {
	s := &p.stats
	out := Stats{
		Consumed:     s.consumed.Load(),
		Decoded:      s.decoded.Load(),
		DeadLettered: s.deadLettered.Load(),
		Filtered:     s.filtered.Load(),
		DialedOut:    s.dialedOut.Load(),
		SkippedHeld:  s.skippedHeld.Load(),
		Replayed:     s.replayed.Load(),
		Amplified:    s.amplified.Load(),
		KeyQueued:    s.keyQueued.Load(),
		Retries:      s.retries.Load(),
		ReplayErrors: map[string]int64{},
		Discarded:    s.discarded.Load(),
		Abandoned:    s.abandoned.Load(),
		RowsWritten: TableRows{
			Production: s.written.production.Load(),
			Replay:     s.written.replay.Load(),
			Baseline:   s.written.baseline.Load(),
			DeadLetter: s.written.deadLetter.Load(),
		},
		Flushes:      s.flushes.Load(),
		Commits:      s.commits.Load(),
		CommitErrors: s.commitErrors.Load(),
		InFlight:     p.inFlight.Load(),
		DuplicateIDs: s.duplicateIDs.Load(),
		Breaker:      p.breaker.current(),
		BreakerOpens: p.breaker.opens.Load(),
	}
	for i, k := range errorKinds {
		if n := s.replayErrors[i].Load(); n > 0 {
			out.ReplayErrors[k] = n
		}
	}
	out.DeadLetters, out.DeadLetterShapes, _ = p.deadLetters.snapshot()
	if out.DeadLetters == nil {
		out.DeadLetters, out.DeadLetterShapes = map[string]int64{}, map[string]int64{}
	}
	s.mu.Lock()
	out.Committed = maps.Clone(s.committed)
	s.mu.Unlock()
	if p.cfg.LiveCompare.Enabled {
		out.Live, out.LiveTotal = s.live.snapshot()
	}
	return out
}
