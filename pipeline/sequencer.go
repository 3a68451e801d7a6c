package pipeline

import (
	"context"
	"sync"

	"github.com/replaykit/replay/schemas"
)

// sequencer puts results back in offset order per partition, and keeps the
// state of each partition: which records are registered, whether the
// partition was revoked, which old records are fenced off.
//
// Records are registered in arrival order (one goroutine: the intake),
// completed in any order (workers), and released in registration order per
// partition to out, which the one sink goroutine reads. A registered record
// that will never complete (revoked before it was dispatched, abandoned at
// shutdown) is discarded together with every record behind it in its
// partition: only a suffix of a partition is ever discarded, so what is
// released stays a contiguous prefix and no offset passes a record that was
// not written.
//
// out has room for every registered record: a record is registered only
// after it took an in-flight slot, and its slot is freed only after the
// sink goroutine took it off out, or when it is discarded (never sent to
// out). So a send on out never blocks, which is why it can happen under mu.
type sequencer struct {
	mu    sync.Mutex
	parts map[schemas.TopicPartition]*partition
	out   chan *ticket
	batch uint64 // number of the last poll batch

	// Broadcast channels, made when someone waits and closed (then
	// cleared) when what they wait for may have happened.
	revoked chan struct{} // a partition was revoked
	emptied chan struct{} // a partition's queue became empty
}

type ticketState uint8

const (
	ticketPending    ticketState = iota // registered, replay not started
	ticketDispatched                    // replay in flight (at least one of its requests)
	ticketDone                          // result set, waiting for earlier records
	ticketDiscarded                     // never written
)

// ticket is one registered record.
type ticket struct {
	tp     schemas.TopicPartition
	epoch  uint64 // of its partition when registered
	state  ticketState
	result *schemas.Result // set when done
}

// partition is the sequencer's state of one partition.
type partition struct {
	items []*ticket // registration order; items[0] is the oldest unreleased

	// epoch counts revocations. Records registered before a revocation
	// keep the old epoch.
	epoch uint64
	// revoked is set by Revoke and cleared by Assign: records are ignored
	// meanwhile.
	revoked bool
	// staleUpTo is the last poll batch returned before the last revoke or
	// assign: records of those batches are ignored for good, since the
	// source re-reads the partition from its committed offset.
	staleUpTo uint64
	// fencedBelow: results of epochs below it are dropped, not written
	// (Revoke gave up waiting for them).
	fencedBelow uint64
	// commitFenced keeps the partition out of Source.Commit: it was
	// revoked and is not assigned again.
	commitFenced bool
	// abandoned is set for the rest of the run when a record could not be
	// finished (shutdown, worker panic): no later record may be released
	// past it.
	abandoned bool
}

// refusal says why a record was not registered.
type refusal uint8

const (
	admitted       refusal = iota
	refusedRevoked         // its partition is revoked, or its batch is stale
	refusedBlocked         // a record before it in its partition was abandoned
)

func newSequencer(capacity int) *sequencer {
	return &sequencer{
		parts: map[schemas.TopicPartition]*partition{},
		out:   make(chan *ticket, capacity),
	}
}

func (s *sequencer) part(tp schemas.TopicPartition) *partition {
	p := s.parts[tp]
	if p == nil {
		p = &partition{}
		s.parts[tp] = p
	}
	return p
}

// newBatch numbers a batch the source just returned.
func (s *sequencer) newBatch() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batch++
	return s.batch
}

func (p *partition) admits(batch uint64) refusal {
	switch {
	case p.abandoned:
		return refusedBlocked
	case p.revoked || batch <= p.staleUpTo:
		return refusedRevoked
	}
	return admitted
}

// admits says whether a record of tp from batch is to be processed:
// refusedRevoked once tp was revoked, until it is assigned again, and
// always for batches returned before the revocation; refusedBlocked after
// a record of tp was abandoned.
func (s *sequencer) admits(tp schemas.TopicPartition, batch uint64) refusal {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.parts[tp]; p != nil {
		return p.admits(batch)
	}
	return admitted
}

// register appends a pending record of tp from batch; call in arrival
// order. It returns nil and the reason when tp does not admit the batch.
func (s *sequencer) register(tp schemas.TopicPartition, batch uint64) (*ticket, refusal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.part(tp)
	if why := p.admits(batch); why != admitted {
		return nil, why
	}
	t := &ticket{tp: tp, epoch: p.epoch}
	p.items = append(p.items, t)
	return t, admitted
}

// registerDone registers a record whose result is already known (dead
// letter, not selected, already held by the sink), unless tp does not
// admit the batch.
func (s *sequencer) registerDone(tp schemas.TopicPartition, batch uint64, r *schemas.Result) refusal {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.part(tp)
	if why := p.admits(batch); why != admitted {
		return why
	}
	t := &ticket{tp: tp, epoch: p.epoch, state: ticketDone, result: r}
	p.items = append(p.items, t)
	s.releaseLocked(p)
	return admitted
}

// dispatch marks t in flight, for one of its requests (a record replayed
// more than once is dispatched once per request; from the first on it is
// in flight, and a revoke no longer discards it). It returns false when t
// was discarded meanwhile (its partition was revoked while it was
// pending, or a request of it was abandoned): the request must not be
// sent.
func (s *sequencer) dispatch(t *ticket) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.state != ticketPending && t.state != ticketDispatched {
		return false
	}
	t.state = ticketDispatched
	return true
}

// watch reports whether t was discarded, and returns a channel closed by
// the next revoke, after which the caller asks again.
func (s *sequencer) watch(t *ticket) (discarded bool, revoked <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.state == ticketDiscarded {
		return true, nil
	}
	if s.revoked == nil {
		s.revoked = make(chan struct{})
	}
	return false, s.revoked
}

// complete records t's result and releases every result of its partition
// that is now next in line. A discarded t is ignored.
func (s *sequencer) complete(t *ticket, r *schemas.Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.state == ticketDiscarded {
		return
	}
	t.state, t.result = ticketDone, r
	s.releaseLocked(s.parts[t.tp])
}

func (s *sequencer) releaseLocked(p *partition) {
	n := 0
	for n < len(p.items) && p.items[n].state == ticketDone {
		s.out <- p.items[n]
		p.items[n] = nil
		n++
	}
	if n == 0 {
		return
	}
	if n == len(p.items) {
		p.items = p.items[:0] // reuse the array: the common case drains fully
		s.signalEmptiedLocked()
	} else {
		p.items = p.items[n:]
	}
}

// discardFromLocked discards p.items[i:] and returns how many records that
// was; their slots are the caller's to free.
func (s *sequencer) discardFromLocked(p *partition, i int) int {
	n := len(p.items) - i
	if n <= 0 {
		return 0
	}
	for j := i; j < len(p.items); j++ {
		p.items[j].state = ticketDiscarded
		p.items[j] = nil
	}
	p.items = p.items[:i]
	if i == 0 {
		s.signalEmptiedLocked()
	}
	return n
}

// abandon discards t, which will never complete (shutdown, worker panic),
// and every record behind it in its partition, and refuses the
// partition's later records for the rest of the run. It returns how many
// records were discarded (0 when t already was); their slots are the
// caller's to free.
func (s *sequencer) abandon(t *ticket) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.state == ticketDiscarded {
		return 0
	}
	p := s.parts[t.tp]
	p.abandoned = true
	for i := len(p.items) - 1; i >= 0; i-- {
		if p.items[i] == t {
			return s.discardFromLocked(p, i)
		}
	}
	return 0
}

// revoke marks tps revoked: later records of them are ignored until
// assign, and records of batches already returned are ignored for good.
// Each partition's records not dispatched yet are discarded, with every
// record behind them. It returns the number discarded (their slots are the
// caller's to free) and each partition's epoch before the revocation.
func (s *sequencer) revoke(tps []schemas.TopicPartition) (discarded int, epochs []uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	epochs = make([]uint64, len(tps))
	for i, tp := range tps {
		p := s.part(tp)
		p.revoked = true
		p.staleUpTo = s.batch
		epochs[i] = p.epoch
		p.epoch++
		for j, t := range p.items {
			if t.state == ticketPending {
				discarded += s.discardFromLocked(p, j)
				break
			}
		}
	}
	if s.revoked != nil {
		close(s.revoked)
		s.revoked = nil
	}
	return discarded, epochs
}

func (s *sequencer) signalEmptiedLocked() {
	if s.emptied != nil {
		close(s.emptied)
		s.emptied = nil
	}
}

// waitEmpty waits until no record of tps is registered and unreleased: all
// were released to out or discarded. It returns ctx.Err() when ctx ends
// first, and errRunOver when done is closed first.
func (s *sequencer) waitEmpty(ctx context.Context, tps []schemas.TopicPartition, done <-chan struct{}) error {
	for {
		s.mu.Lock()
		empty := true
		for _, tp := range tps {
			if p := s.parts[tp]; p != nil && len(p.items) > 0 {
				empty = false
				break
			}
		}
		var ch chan struct{}
		if !empty {
			if s.emptied == nil {
				s.emptied = make(chan struct{})
			}
			ch = s.emptied
		}
		s.mu.Unlock()
		if empty {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			return errRunOver
		}
	}
}

// fence keeps tps out of later commits until assign, and drops results
// registered in an epoch up to the given one (in tps order) that have not
// reached the sink yet.
func (s *sequencer) fence(tps []schemas.TopicPartition, epochs []uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, tp := range tps {
		p := s.part(tp)
		p.commitFenced = true
		p.fencedBelow = max(p.fencedBelow, epochs[i]+1)
	}
}

// assign accepts records of revoked partitions among tps again, from
// batches returned after this call, and lets their offsets be committed
// again. Partitions not revoked are left alone: an assign callback may
// name partitions this member already reads, whose batches in hand must
// not become stale.
// It returns how many partitions it reopened.
func (s *sequencer) assign(tps []schemas.TopicPartition) (reopened int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tp := range tps {
		if p := s.parts[tp]; p != nil && p.revoked {
			p.revoked, p.commitFenced = false, false
			p.staleUpTo = s.batch
			reopened++
		}
	}
	return reopened
}

// writable reports whether t's result may go to the sink: false when its
// partition was revoked and Revoke gave up waiting for it.
func (s *sequencer) writable(t *ticket) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return t.epoch >= s.parts[t.tp].fencedBelow
}

// dropFenced removes the partitions that must not be committed from o.
func (s *sequencer) dropFenced(o schemas.Offsets) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for tp := range o {
		if p := s.parts[tp]; p != nil && p.commitFenced {
			delete(o, tp)
		}
	}
}

// close ends out once no more results will be completed, and returns how
// many registered records never got one (their worker panicked) and were
// therefore not released, with every record behind them.
func (s *sequencer) close() (stuck int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.parts {
		stuck += len(p.items)
	}
	close(s.out)
	return stuck
}
