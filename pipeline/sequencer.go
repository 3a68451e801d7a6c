package pipeline

import (
	"sync"

	"github.com/replaykit/replay/schemas"
)

// sequencer puts results back in offset order per partition. Records are
// registered in arrival order (one goroutine: the intake), completed in any
// order (workers), and released in registration order per partition to out,
// which the one sink goroutine reads.
//
// out has room for every registered record: a record is registered only
// after it took an in-flight slot, and its slot is freed only after the sink
// goroutine took it off out. So a send on out never blocks, which is why it
// can happen under mu.
type sequencer struct {
	mu     sync.Mutex
	queues map[schemas.TopicPartition]*seqQueue
	out    chan *schemas.Result
}

// ticket is one registered record.
type ticket struct {
	tp     schemas.TopicPartition
	result *schemas.Result // set when done
}

type seqQueue struct {
	items []*ticket // registration order; items[0] is the oldest unreleased
}

func newSequencer(capacity int) *sequencer {
	return &sequencer{
		queues: map[schemas.TopicPartition]*seqQueue{},
		out:    make(chan *schemas.Result, capacity),
	}
}

// register appends a record of partition tp; call in arrival order.
func (s *sequencer) register(tp schemas.TopicPartition) *ticket {
	t := &ticket{tp: tp}
	s.mu.Lock()
	q := s.queues[tp]
	if q == nil {
		q = &seqQueue{}
		s.queues[tp] = q
	}
	q.items = append(q.items, t)
	s.mu.Unlock()
	return t
}

// complete records t's result and releases every result of its partition
// that is now next in line.
func (s *sequencer) complete(t *ticket, r *schemas.Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t.result = r
	q := s.queues[t.tp]
	n := 0
	for n < len(q.items) && q.items[n].result != nil {
		s.out <- q.items[n].result
		q.items[n] = nil
		n++
	}
	if n == len(q.items) {
		q.items = q.items[:0] // reuse the array: the common case drains fully
	} else {
		q.items = q.items[n:]
	}
}

// close ends out once no more results will be completed, and returns how
// many registered records never got one (abandoned at shutdown) and were
// therefore not released, with every record behind them.
func (s *sequencer) close() (stuck int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range s.queues {
		stuck += len(q.items)
	}
	close(s.out)
	return stuck
}
