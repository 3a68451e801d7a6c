package sources

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/replaykit/replay/schemas"
)

// startFaultCluster is startCluster that also returns the cluster, to inject
// faults.
func startFaultCluster(t *testing.T, opts ...kfake.Opt) (*kfake.Cluster, string) {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()[0]
}

// TestKafkaSurvivesTransientFetchErrors: failed fetches are retried by the
// client and logged; every record still arrives exactly once.
func TestKafkaSurvivesTransientFetchErrors(t *testing.T) {
	ctx := testContext(t)
	c, addr := startFaultCluster(t, kfake.SeedTopics(3, "t"))
	var rs []*kgo.Record
	for i := range 60 {
		rs = append(rs, &kgo.Record{Topic: "t", Partition: int32(i % 3), Value: fmt.Appendf(nil, "v%d", i)})
	}
	produce(t, ctx, addr, rs)
	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: "t", Partitions: []int32{1}, Err: kerr.UnknownServerError, Count: 4})
	k := newKafka(t, ctx, testConfig(addr, "g", "t"))
	got := drain(t, ctx, k)
	want := map[schemas.TopicPartition][]schemas.Record{}
	for _, r := range rs {
		want[schemas.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = append(want[schemas.TopicPartition{Topic: r.Topic, Partition: r.Partition}], toRecord(r))
	}
	assertRecords(t, got, want)
	if h.Hits() == 0 {
		t.Fatal("the fetch fault never hit")
	}
}

// TestKafkaPersistentFetchErrorsEndThePoll: a partition that fails every
// fetch for fetch_error_timeout ends the run with an error naming it.
func TestKafkaPersistentFetchErrorsEndThePoll(t *testing.T) {
	ctx := testContext(t)
	c, addr := startFaultCluster(t, kfake.SeedTopics(1, "t"))
	produce(t, ctx, addr, []*kgo.Record{{Topic: "t", Value: []byte("x")}})
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: "t", Err: kerr.UnknownServerError, Count: -1})
	cfg := testConfig(addr, "g", "t")
	cfg.FetchErrorTimeout = 300 * time.Millisecond
	k := newKafka(t, ctx, cfg)
	for {
		recs, err := k.Poll(ctx)
		if len(recs) > 0 {
			t.Fatalf("got records through a partition failing every fetch: %v", recs)
		}
		if err == nil {
			continue
		}
		if errors.Is(err, ctx.Err()) && ctx.Err() != nil {
			t.Fatalf("Poll never gave up: %v", err)
		}
		if !strings.Contains(err.Error(), "fetch_error_timeout") || !strings.Contains(err.Error(), "partition 0") {
			t.Fatalf("error %q does not name the partition and fetch_error_timeout", err)
		}
		return
	}
}
