package pipeline

import "sync"

// Per-key ordering (replay.ordering.mode: key) keeps the requests of one
// ordering key one at a time, in admission order, while other keys run in
// parallel, without ever blocking the intake on a busy key:
//
//   - A request whose key is free takes the key and is dispatched like any
//     other (dispatch: worker token, pacer, breaker). A request whose key
//     is taken is queued on the key and the intake moves on; while queued
//     it holds only its record's in-flight slot: no worker token, no pacer
//     reservation.
//   - When the request holding the key finishes, the worker that ran it
//     keeps its worker token, takes the next queued request of the key,
//     waits for that one's pacer reservation and the breaker, and runs it
//     (work, passKey). So a key's requests run one after another, each
//     paced and counted against the rate like any request, and the
//     requests in flight never outnumber the workers; a worker waiting on
//     the pacer for a follower holds its token meanwhile, as the intake
//     would.
//   - The amplified copies of a keyed record carry the record's key: they
//     queue behind it, in copy order.
//   - A queued request whose record was discarded meanwhile (its partition
//     revoked while it was pending; a request of its record abandoned) is
//     skipped and the key passes on. When dispatching stops (shutdown, a
//     fatal error), the requests still queued are abandoned like records
//     waiting for dispatch: not written, no offset committed past them. At
//     the end of a finite input they still run: the run drains them with
//     the requests in flight.
//
// Limits: the order is the order this process admitted the records, which
// is log order within a partition; records of one key in different
// partitions are ordered as the source interleaved them, and across
// replicas of a consumer group there is no order at all. A hot key runs
// at one request per response time, and its queued records hold in-flight
// slots: a key with a long backlog can fill limits.max_in_flight and stall
// polling for every key. A revoke discards a queued request of the
// revoked partition with every record behind it in the partition (only a
// suffix of a partition can be discarded), including records of other
// keys already in flight, whose results are then dropped: the partition's
// next owner replays them.

// keyLanes holds, per ordering key, whether a request holds the key and
// the requests queued behind it. A key is in lanes exactly while some
// request holds it; the holder, when done, hands the key to the next
// queued request (next), so every queued request is eventually started,
// skipped or abandoned by a holder.
type keyLanes struct {
	mu    sync.Mutex
	lanes map[string][]*replayJob // held keys → requests queued behind the holder, in admission order
}

func newKeyLanes() *keyLanes {
	return &keyLanes{lanes: map[string][]*replayJob{}}
}

// enter gives j its key and returns true when the key is free; otherwise
// it queues j behind the key's other requests and returns false: the
// holder starts it.
func (l *keyLanes) enter(j *replayJob) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	q, held := l.lanes[j.key]
	if !held {
		l.lanes[j.key] = nil
		return true
	}
	l.lanes[j.key] = append(q, j)
	return false
}

// next hands key on from its holder: it returns the first queued request,
// which now holds the key, or frees the key and returns nil when none is
// queued.
func (l *keyLanes) next(key string) *replayJob {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.lanes[key]
	if len(q) == 0 {
		delete(l.lanes, key)
		return nil
	}
	j := q[0]
	q[0] = nil
	l.lanes[key] = q[1:]
	return j
}

// passKey hands key on from a request that held it (finished, or
// discarded before it started) to the next queued request that can start:
// it waits for that one's worker token (unless the caller holds one), the
// pacer and the breaker, skipping requests whose record was discarded
// meanwhile. It returns that request, ready to run, and whether it is the
// breaker's probe. It returns nil when the key is free (nothing queued),
// or when stop was closed first: the key's queued requests are then
// abandoned.
func (p *Pipeline) passKey(stop <-chan struct{}, r *run, key string, haveToken bool) (*replayJob, bool) {
	for {
		j := r.lanes.next(key)
		if j == nil {
			return nil, false
		}
		switch w, probe := p.await(stop, r, j.t, j.x.CapturedAt, haveToken); w {
		case waitReady:
			return j, probe
		case waitStopped:
			p.abandon(r, j.t)
			p.abandonKey(r, key)
			return nil, false
		}
		// waitDiscarded: its record is gone; the key passes on.
	}
}

// abandonKey abandons the records of every request queued on key, whose
// holder gave up, and frees the key.
func (p *Pipeline) abandonKey(r *run, key string) {
	for j := r.lanes.next(key); j != nil; j = r.lanes.next(key) {
		p.abandon(r, j.t)
	}
}
