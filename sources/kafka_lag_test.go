package sources

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/replaykit/replay/schemas"
)

// TestKafkaLagCountsFromCommittedOffsets: the lag is the end offset minus
// the group's committed offset for every assigned partition, an empty one
// included, whatever was fetched.
func TestKafkaLagCountsFromCommittedOffsets(t *testing.T) {
	const topic = "captures"
	addr := startCluster(t, kfake.SeedTopics(2, topic))
	ctx := testContext(t)
	var rs []*kgo.Record
	for i := range 10 {
		rs = append(rs, &kgo.Record{Topic: topic, Partition: 0, Value: fmt.Appendf(nil, "v%d", i)})
	}
	produce(t, ctx, addr, rs)

	cfg := testConfig(addr, "lag", topic)
	cfg.StopAtEnd = false
	cfg.MaxPollRecords = 4
	cfg.LagInterval = 50 * time.Millisecond
	k := newKafka(t, ctx, cfg)
	var polled int64
	for polled < 10 {
		recs, err := k.Poll(ctx)
		if err != nil {
			t.Fatalf("Poll: %v", err)
		}
		for _, r := range recs {
			polled = max(polled, r.Offset+1)
		}
	}
	if err := k.Commit(ctx, schemas.Offsets{{Topic: topic, Partition: 0}: 3}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		lag := k.Lag()
		if len(lag) == 2 && lag[0].HighWatermark == 10 && lag[0].Committed == 3 && lag[0].Lag == 7 &&
			lag[1].HighWatermark == 0 && lag[1].Lag == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Lag = %+v, want partition 0: end 10, committed 3, lag 7 (all 10 fetched); partition 1: end 0, lag 0", lag)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
