package sources

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/replaykit/replay/schemas"
)

// TestKafkaCommitRefusals: a commit the group refuses because this member
// is no longer in it (UNKNOWN_MEMBER_ID, as after a session expiry under
// load) is skipped, not an error: the tables hold the rows and the next
// owner resumes from them. Any other refusal is an error that names the
// topic, partition and offset; OffsetCommit v10 answers by topic ID, which
// the error once showed as an empty topic and offset 0.
func TestKafkaCommitRefusals(t *testing.T) {
	const topic = "captures"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	addr := cluster.ListenAddrs()[0]
	ctx := testContext(t)
	var rs []*kgo.Record
	for i := range 5 {
		rs = append(rs, &kgo.Record{Topic: topic, Partition: 0, Value: fmt.Appendf(nil, "v%d", i)})
	}
	produce(t, ctx, addr, rs)
	cfg := testConfig(addr, "refusals", topic)
	cfg.StopAtEnd = false
	k := newKafka(t, ctx, cfg)
	if _, err := k.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	at := schemas.Offsets{{Topic: topic, Partition: 0}: 5}

	cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Err: kerr.UnknownMemberID, Count: 1})
	if err := k.Commit(ctx, at); err != nil {
		t.Errorf("commit refused with UNKNOWN_MEMBER_ID = %v, want nil (skipped: the member left the group)", err)
	}

	cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Err: kerr.OffsetMetadataTooLarge, Count: 1})
	err = k.Commit(ctx, at)
	if err == nil || !strings.Contains(err.Error(), "commit offset 5 of topic captures partition 0") {
		t.Errorf("commit refused with OFFSET_METADATA_TOO_LARGE = %v, want an error naming offset 5 of topic captures partition 0", err)
	}
}
