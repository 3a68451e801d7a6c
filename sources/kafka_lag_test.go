package sources

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/replaykit/replay/schemas"
)

func TestKafkaLagFollowsPollsAndCommits(t *testing.T) {
	const topic = "captures"
	addr := startCluster(t, kfake.SeedTopics(2, topic))
	ctx := testContext(t)
	put := func(n int) {
		var rs []*kgo.Record
		for i := range n {
			rs = append(rs, &kgo.Record{Topic: topic, Partition: 0, Value: fmt.Appendf(nil, "v%d", i)})
		}
		produce(t, ctx, addr, rs)
	}
	put(10)

	cfg := testConfig(addr, "lag", topic)
	cfg.StopAtEnd = false
	cfg.MaxPollRecords = 4
	k := newKafka(t, ctx, cfg)
	if lag := k.Lag(); len(lag) != 0 {
		t.Fatalf("Lag before any poll = %+v, want none", lag)
	}
	pollUntil := func(next int64) {
		t.Helper()
		var got int64
		for got < next {
			recs, err := k.Poll(ctx)
			if err != nil {
				t.Fatalf("Poll: %v", err)
			}
			for _, r := range recs {
				got = max(got, r.Offset+1)
			}
		}
	}
	one := func() PartitionLag {
		t.Helper()
		lag := k.Lag()
		if len(lag) != 1 || lag[0].Topic != topic || lag[0].Partition != 0 {
			t.Fatalf("Lag = %+v, want partition 0 of %s only (partition 1 is empty)", lag, topic)
		}
		return lag[0]
	}

	pollUntil(4)
	if l := one(); l.HighWatermark != 10 || l.Next < 4 || l.Committed != -1 || l.Lag != 10-l.Next {
		t.Errorf("after polling 4 of 10: %+v, want high watermark 10, lag = 10 - next", l)
	}
	if err := k.Commit(ctx, schemas.Offsets{{Topic: topic, Partition: 0}: 3}); err != nil {
		t.Fatal(err)
	}
	if l := one(); l.Committed != 3 || l.Lag != 7 {
		t.Errorf("after committing 3: %+v, want committed 3, lag 7", l)
	}

	put(5)
	pollUntil(15)
	if l := one(); l.HighWatermark != 15 || l.Next != 15 || l.Lag != 12 {
		t.Errorf("after polling all 15: %+v, want high watermark 15, next 15, lag 12 (15 - committed 3)", l)
	}
	if err := k.Commit(ctx, schemas.Offsets{{Topic: topic, Partition: 0}: 15}); err != nil {
		t.Fatal(err)
	}
	if l := one(); l.Lag != 0 {
		t.Errorf("after committing everything: %+v, want lag 0", l)
	}
}
