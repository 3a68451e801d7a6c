package sources

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/replaykit/replay/internal/testinfra"
)

// TestKafkaLogsWhileWaitingForPartitions: a member that gets no partition
// (the group's only partition is another member's) says so, naming the
// group, its state and members, and the static-membership hint.
func TestKafkaLogsWhileWaitingForPartitions(t *testing.T) {
	const topic = "captures"
	addr := startCluster(t, kfake.SeedTopics(1, topic))
	ctx := testContext(t)
	produce(t, ctx, addr, []*kgo.Record{{Topic: topic, Value: []byte("v")}})
	cfg := testConfig(addr, "waiting", topic)
	cfg.StopAtEnd = false
	first := newKafka(t, ctx, cfg)
	for len(first.ownedPartitions()) == 0 {
		if _, err := first.Poll(ctx); err != nil && ctx.Err() != nil {
			t.Fatal(err)
		}
		if len(first.ownedPartitions()) == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	var logs testinfra.SyncBuffer
	second, err := NewKafka(ctx, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	for !strings.Contains(logs.String(), "waiting for partition assignment from group waiting") {
		select {
		case <-ctx.Done():
			t.Fatalf("no waiting line; logs:\n%s", logs.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	line := logs.String()[strings.Index(logs.String(), "waiting for partition assignment"):]
	line = line[:strings.IndexByte(line, '\n')]
	t.Log(line)
	for _, want := range []string{"group_state=", "members=", "session_timeout=45s", "hint=", "source.kafka.instance_id"} {
		if !strings.Contains(line, want) {
			t.Errorf("waiting line lacks %q: %s", want, line)
		}
	}
}
