package sources

import (
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/replaykit/replay/schemas"
)

// PartitionLag is how far one partition's consumer is behind its log.
type PartitionLag struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// HighWatermark is the partition's high watermark as of the latest
	// fetch that returned it (the offset the next produced record gets).
	HighWatermark int64 `json:"high_watermark"`
	// Next is the offset after the last record polled; -1 before the
	// first.
	Next int64 `json:"next"`
	// Committed is the last offset this member committed for the group
	// (the next offset to read after a restart); -1 before the first.
	Committed int64 `json:"committed"`
	// Lag is HighWatermark - Committed: the records a restart would read
	// again or have not read yet, as Kafka's consumer-group tools count
	// it. Before the first commit it is HighWatermark - Next.
	Lag int64 `json:"lag"`
}

// lagTracker keeps, per partition, the high watermark of the latest fetch,
// the next offset to poll and the last committed offset.
type lagTracker struct {
	mu    sync.Mutex
	parts map[schemas.TopicPartition]*PartitionLag
}

func (l *lagTracker) entry(tp schemas.TopicPartition) *PartitionLag {
	if l.parts == nil {
		l.parts = map[schemas.TopicPartition]*PartitionLag{}
	}
	e := l.parts[tp]
	if e == nil {
		e = &PartitionLag{Topic: tp.Topic, Partition: tp.Partition, Next: -1, Committed: -1}
		l.parts[tp] = e
	}
	return e
}

// fetched notes the high watermarks and positions of a poll's fetches.
func (l *lagTracker) fetched(fetches kgo.Fetches) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if p.Err != nil || p.HighWatermark < 0 {
			return
		}
		e := l.entry(schemas.TopicPartition{Topic: p.Topic, Partition: p.Partition})
		e.HighWatermark = p.HighWatermark
		if n := len(p.Records); n > 0 {
			e.Next = max(e.Next, p.Records[n-1].Offset+1)
		}
	})
}

// committed notes offsets committed for the group.
func (l *lagTracker) committed(offsets map[string]map[int32]kgo.EpochOffset) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for topic, ps := range offsets {
		for p, o := range ps {
			e := l.entry(schemas.TopicPartition{Topic: topic, Partition: p})
			e.Committed = max(e.Committed, o.Offset)
		}
	}
}

// Lag returns the lag of every partition assigned to this member that a
// fetch has returned so far, sorted by topic and partition. The high
// watermark comes with fetched records, so it is as fresh as the last poll:
// while the pipeline does not poll (paused, or its in-flight budget full)
// the log may grow unseen. Safe to call from any goroutine.
func (k *Kafka) Lag() []PartitionLag {
	k.mu.Lock()
	owned := make(map[schemas.TopicPartition]bool, len(k.parts))
	for tp, st := range k.parts {
		owned[tp] = st.owned
	}
	k.mu.Unlock()

	k.lag.mu.Lock()
	out := make([]PartitionLag, 0, len(k.lag.parts))
	for tp, e := range k.lag.parts {
		if !owned[tp] || (e.Next < 0 && e.Committed < 0) {
			continue
		}
		pl := *e
		switch {
		case pl.Committed >= 0:
			pl.Lag = max(0, pl.HighWatermark-pl.Committed)
		default:
			pl.Lag = max(0, pl.HighWatermark-pl.Next)
		}
		out = append(out, pl)
	}
	k.lag.mu.Unlock()
	slices.SortFunc(out, func(a, b PartitionLag) int {
		return compareTPs(schemas.TopicPartition{Topic: a.Topic, Partition: a.Partition},
			schemas.TopicPartition{Topic: b.Topic, Partition: b.Partition})
	})
	return out
}
