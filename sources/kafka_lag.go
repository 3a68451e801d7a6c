package sources

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/replaykit/replay/schemas"
)

// This file owns the consumer lag: how far the group's committed position
// is behind the end of the log, for every partition assigned to this
// member. It is measured the way Kafka's consumer-group tools measure it
// (kadm's Lag, kafka-consumer-groups.sh): the end offset as the brokers
// list it, minus the offset committed for the group, both asked of the
// brokers on a timer, not taken from fetches. A fetched record is not
// processed: the pipeline holds up to its in-flight budget of fetched
// records, and the client buffers more, so a lag counted from fetches
// reads a fraction of the real backlog.

// PartitionLag is how far one assigned partition's committed position is
// behind its log.
type PartitionLag struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// HighWatermark is the partition's end offset (the offset the next
	// produced record gets), as listed by the brokers at the last
	// refresh; -1 before the first.
	HighWatermark int64 `json:"high_watermark"`
	// LogStart is the partition's first offset still in the log, as of
	// the last refresh; -1 before the first.
	LogStart int64 `json:"log_start"`
	// Next is the offset after the last record this member fetched; -1
	// before the first. Records between Committed and Next are fetched
	// but not yet written and committed.
	Next int64 `json:"next"`
	// Committed is the group's committed offset (the next offset a restart
	// reads): the larger of what the brokers answered at the last refresh
	// and what this member committed since; -1 when the group has none.
	Committed int64 `json:"committed"`
	// Lag is HighWatermark - Committed, or HighWatermark - LogStart when
	// nothing is committed: the records not yet written and committed, as
	// Kafka's consumer-group tools count them. 0 before the first refresh.
	Lag int64 `json:"lag"`
}

// lagTracker keeps, per partition, what the last refresh listed (end and
// start offsets, the group's committed offset), the offsets this member
// committed since, and the next offset to fetch.
type lagTracker struct {
	mu    sync.Mutex
	parts map[schemas.TopicPartition]*PartitionLag
	// refreshed is when the last refresh succeeded; zero before.
	refreshed time.Time
}

func (l *lagTracker) entry(tp schemas.TopicPartition) *PartitionLag {
	if l.parts == nil {
		l.parts = map[schemas.TopicPartition]*PartitionLag{}
	}
	e := l.parts[tp]
	if e == nil {
		e = &PartitionLag{Topic: tp.Topic, Partition: tp.Partition, HighWatermark: -1, LogStart: -1, Next: -1, Committed: -1}
		l.parts[tp] = e
	}
	return e
}

// fetched notes the positions of a poll's fetches.
func (l *lagTracker) fetched(fetches kgo.Fetches) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if p.Err != nil || len(p.Records) == 0 {
			return
		}
		e := l.entry(schemas.TopicPartition{Topic: p.Topic, Partition: p.Partition})
		e.Next = max(e.Next, p.Records[len(p.Records)-1].Offset+1)
	})
}

// committed notes offsets this member committed for the group.
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

// forget drops what is known of partitions this member lost: their next
// owner commits them, and a later assignment starts afresh.
func (l *lagTracker) forget(tps []schemas.TopicPartition) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, tp := range tps {
		delete(l.parts, tp)
	}
}

// refresh lists the end and start offsets of the topics and the group's
// committed offsets, and records them for the partitions in owned.
func (l *lagTracker) refresh(ctx context.Context, adm *kadm.Client, group string, topics []string, owned []schemas.TopicPartition) error {
	if len(owned) == 0 {
		return nil
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return err
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return err
	}
	commits, err := adm.FetchOffsets(ctx, group)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, tp := range owned {
		e := l.entry(tp)
		if o, ok := ends.Lookup(tp.Topic, tp.Partition); ok && o.Err == nil {
			e.HighWatermark = o.Offset
		}
		if o, ok := starts.Lookup(tp.Topic, tp.Partition); ok && o.Err == nil {
			e.LogStart = o.Offset
		}
		if o, ok := commits.Lookup(tp.Topic, tp.Partition); ok && o.Err == nil && o.At >= 0 {
			e.Committed = max(e.Committed, o.At)
		}
	}
	l.refreshed = time.Now()
	return nil
}

// Lag returns the lag of every partition assigned to this member, sorted
// by topic and partition; a partition assigned since the last refresh has
// HighWatermark -1 and Lag 0 until the next one. End offsets and the
// group's offsets are refreshed every KafkaConfig.LagInterval, and right
// after an assignment. Safe to call from any goroutine.
func (k *Kafka) Lag() []PartitionLag {
	owned := k.ownedPartitions()
	k.lag.mu.Lock()
	out := make([]PartitionLag, 0, len(owned))
	for _, tp := range owned {
		pl := PartitionLag{Topic: tp.Topic, Partition: tp.Partition, HighWatermark: -1, LogStart: -1, Next: -1, Committed: -1}
		if e := k.lag.parts[tp]; e != nil {
			pl = *e
		}
		switch {
		case pl.HighWatermark < 0:
		case pl.Committed >= 0:
			pl.Lag = max(0, pl.HighWatermark-pl.Committed)
		case pl.LogStart >= 0:
			pl.Lag = max(0, pl.HighWatermark-pl.LogStart)
		}
		out = append(out, pl)
	}
	k.lag.mu.Unlock()
	return out
}

// ownedPartitions returns the partitions assigned to this member, sorted.
func (k *Kafka) ownedPartitions() []schemas.TopicPartition {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []schemas.TopicPartition
	for tp, st := range k.parts {
		if st.owned {
			out = append(out, tp)
		}
	}
	slices.SortFunc(out, compareTPs)
	return out
}
