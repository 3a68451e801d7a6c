package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/pprof"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/replaykit/replay/schemas"
	"github.com/replaykit/replay/sources"
)

// consumeResult is how fast a topic was read: from the first record
// received to the last.
type consumeResult struct {
	records int
	elapsed time.Duration
	bytes   int64
}

func (r consumeResult) rate() float64 { return float64(r.records) / r.elapsed.Seconds() }

// consumeOurs reads topic t to its end with replay's Kafka source (a
// fresh consumer group, stop_at_end) and decodes every record, as the
// pipeline's intake does before it replays anything.
func consumeOurs(ctx context.Context, brokers []string, t *topic, group string) (consumeResult, error) {
	cfg := sources.DefaultKafkaConfig()
	cfg.Brokers, cfg.Topics, cfg.Group, cfg.StopAtEnd = brokers, []string{t.name}, group, true
	var (
		src *sources.Kafka
		err error
	)
	pprof.Do(ctx, pprof.Labels(stageLabel, stageKafkaClient), func(ctx context.Context) {
		src, err = sources.NewKafka(ctx, cfg, slog.New(slog.DiscardHandler))
	})
	if err != nil {
		return consumeResult{}, err
	}
	defer src.Close()
	var (
		res   consumeResult
		start time.Time
	)
	opts := schemas.DecodeOptions{MaxBodyBytes: 8 << 20}
	for {
		recs, err := src.Poll(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("consume %s: %w", t.name, err)
		}
		if start.IsZero() {
			start = time.Now()
		}
		for i := range recs {
			if _, err := schemas.Decode(recs[i].Value, recs[i].Coordinates, opts); err != nil {
				return res, fmt.Errorf("consume %s: %w", t.name, err)
			}
			res.bytes += int64(len(recs[i].Value))
		}
		res.records += len(recs)
	}
	res.elapsed = time.Since(start)
	if res.records != t.records {
		return res, fmt.Errorf("consume %s: read %d records, want %d", t.name, res.records, t.records)
	}
	return res, nil
}

// consumeBare is the baseline: a franz-go consumer in a fresh group that
// polls topic t and only counts the records.
func consumeBare(ctx context.Context, brokers []string, t *topic, group string) (consumeResult, error) {
	var (
		cl  *kgo.Client
		err error
	)
	pprof.Do(ctx, pprof.Labels(stageLabel, stageBare), func(context.Context) {
		cl, err = kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(t.name),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	})
	if err != nil {
		return consumeResult{}, fmt.Errorf("bare consumer: %w", err)
	}
	defer cl.Close()
	var (
		res   consumeResult
		start time.Time
	)
	for res.records < t.records {
		fs := cl.PollRecords(ctx, 1000)
		if err := fs.Err0(); err != nil {
			return res, fmt.Errorf("bare consumer: %w", err)
		}
		if start.IsZero() && fs.NumRecords() > 0 {
			start = time.Now()
		}
		fs.EachRecord(func(r *kgo.Record) { res.bytes += int64(len(r.Value)) })
		res.records += fs.NumRecords()
	}
	res.elapsed = time.Since(start)
	return res, nil
}
