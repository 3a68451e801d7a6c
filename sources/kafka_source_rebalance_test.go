package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/replaykit/replay/schemas"
)

// produceEach writes n records to each of partitions partitions of topic and
// returns them per partition.
func produceEach(t *testing.T, ctx context.Context, addr, topic string, partitions int32, n int) map[schemas.TopicPartition][]schemas.Record {
	t.Helper()
	var rs []*kgo.Record
	for p := range partitions {
		for i := range n {
			rs = append(rs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(fmt.Sprintf("%d-%d", p, i))})
		}
	}
	out := make(map[schemas.TopicPartition][]schemas.Record)
	for _, r := range produce(t, ctx, addr, rs) {
		rec := toRecord(r)
		out[rec.TP()] = append(out[rec.TP()], rec)
	}
	return out
}

// commitGroup commits offsets for group as an admin would, with no member.
func commitGroup(t *testing.T, ctx context.Context, addr, group string, offsets schemas.Offsets) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var os kadm.Offsets
	for tp, at := range offsets {
		os.Add(kadm.Offset{Topic: tp.Topic, Partition: tp.Partition, At: at, LeaderEpoch: -1})
	}
	resp, err := kadm.NewClient(cl).CommitOffsets(ctx, group, os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("commit group offsets: %v", err)
	}
}

func TestKafkaSetResumeStartsAtSinkOffsets(t *testing.T) {
	const topic, group = "captures", "resume-from-sink"
	addr := startCluster(t, kfake.SeedTopics(4, topic))
	ctx := testContext(t)
	all := produceEach(t, ctx, addr, topic, 4, 10)
	tp := func(p int32) schemas.TopicPartition { return schemas.TopicPartition{Topic: topic, Partition: p} }

	// The group says 2, 3, 4 and nothing for partition 3; the sink says 6
	// for partition 0 (ahead of the group), the end for partition 2, and
	// knows nothing of 1 and 3.
	commitGroup(t, ctx, addr, group, schemas.Offsets{tp(0): 2, tp(1): 3, tp(2): 4})
	var (
		mu     sync.Mutex
		called []schemas.TopicPartition
	)
	src := newKafka(t, ctx, testConfig(addr, group, topic))
	src.SetResume(func(_ context.Context, tps []schemas.TopicPartition) (schemas.Offsets, error) {
		mu.Lock()
		defer mu.Unlock()
		called = append(called, tps...)
		return schemas.Offsets{tp(0): 6, tp(2): 10}, nil
	})

	got := drain(t, ctx, src) // stop at end: partition 2 counts as done
	assertRecords(t, got, map[schemas.TopicPartition][]schemas.Record{
		tp(0): all[tp(0)][6:], // from iceberg
		tp(1): all[tp(1)][3:], // from the group
		tp(3): all[tp(3)],     // from the start
	})
	mu.Lock()
	defer mu.Unlock()
	if want := []schemas.TopicPartition{tp(0), tp(1), tp(2), tp(3)}; !slices.Equal(called, want) {
		t.Errorf("resume called with %v, want %v", called, want)
	}
}

// TestKafkaStopAtEndDoneFromSinkOffsets: the group has no committed
// offsets (deleted, or expired by the broker) and the sink's offsets are at
// the end of every partition: the first Poll, which waits for records while
// the assignment finds nothing left to read, must return io.EOF, and the
// source counts every record as already written.
func TestKafkaStopAtEndDoneFromSinkOffsets(t *testing.T) {
	const topic, group = "captures", "sink-at-end"
	addr := startCluster(t, kfake.SeedTopics(3, topic))
	ctx := testContext(t)
	produceEach(t, ctx, addr, topic, 3, 10)
	src := newKafka(t, ctx, testConfig(addr, group, topic))
	src.SetResume(func(_ context.Context, tps []schemas.TopicPartition) (schemas.Offsets, error) {
		out := schemas.Offsets{}
		for _, tp := range tps {
			out[tp] = 10
		}
		return out, nil
	})
	recs, err := src.Poll(ctx)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("Poll = %d records, %v; want io.EOF", len(recs), err)
	}
	if n := src.AlreadyWritten(); n != 30 {
		t.Errorf("AlreadyWritten = %d, want 30", n)
	}
}

var errCatalogDown = errors.New("catalog down")

func TestKafkaResumeErrorSurfacesFromPoll(t *testing.T) {
	const topic, group = "captures", "resume-fails"
	addr := startCluster(t, kfake.SeedTopics(2, topic))
	ctx := testContext(t)
	produceEach(t, ctx, addr, topic, 2, 5)

	cfg := testConfig(addr, group, topic)
	cfg.StopAtEnd = false
	src := newKafka(t, ctx, cfg)
	src.SetResume(func(context.Context, []schemas.TopicPartition) (schemas.Offsets, error) {
		return nil, errCatalogDown
	})
	recs, err := src.Poll(ctx)
	if len(recs) > 0 {
		t.Fatalf("Poll returned %d records from partitions it could not resume", len(recs))
	}
	if !errors.Is(err, errCatalogDown) {
		t.Fatalf("Poll = %v, want the resume error", err)
	}
	for _, want := range []string{"resume 2 partitions", group, "from the sink"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, again := src.Poll(ctx); !errors.Is(again, errCatalogDown) {
		t.Errorf("second Poll = %v, want the resume error again", again)
	}
}

// A second member joins: the first hands over half of the partitions
// through the revoke function, committing them while it runs, and never
// returns a record of theirs afterwards, though it had fetched some.
func TestKafkaSetRevokeOnRebalance(t *testing.T) {
	const topic, group, perPartition = "captures", "rebalance", 40
	addr := startCluster(t, kfake.SeedTopics(4, topic))
	ctx := testContext(t)
	all := produceEach(t, ctx, addr, topic, 4, perPartition)

	cfg := testConfig(addr, group, topic)
	cfg.StopAtEnd = false
	// One record per poll: a reads slowly while its client fetches ahead,
	// so most records are buffered when b joins.
	cfg.MaxPollRecords = 1
	a := newKafka(t, ctx, cfg)

	var (
		mu        sync.Mutex
		next      = schemas.Offsets{} // what a has returned, per partition
		calls     int
		commitErr error
		committed schemas.Offsets // by the revoke function
	)
	revoked := make(chan []schemas.TopicPartition, 8)
	release := make(chan struct{})
	a.SetRevoke(func(ctx context.Context, tps []schemas.TopicPartition) {
		mu.Lock()
		calls++
		first := calls == 1
		// What the pipeline would commit after flushing: what a returned,
		// or, for a partition it returned nothing of, a made-up 7.
		offsets := schemas.Offsets{}
		for _, tp := range tps {
			offsets[tp] = 7
			if n, ok := next[tp]; ok {
				offsets[tp] = n
			}
		}
		mu.Unlock()
		if first {
			err := a.Commit(ctx, offsets) // still accepted while the revoke runs
			mu.Lock()
			commitErr, committed = err, offsets
			mu.Unlock()
		}
		revoked <- tps
		if first {
			<-release
		}
	})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) }) // before a closes

	poll := func(src *Kafka) []schemas.Record {
		t.Helper()
		recs, err := src.Poll(ctx)
		if err != nil {
			t.Fatalf("Poll: %v", err)
		}
		return recs
	}
	// a reads a few records; the client fetches the rest of every partition
	// into its buffers.
	got := map[schemas.TopicPartition][]schemas.Record{}
	total, polled := 4*perPartition, 0
	for int(a.cl.BufferedFetchRecords())+polled < total {
		for _, r := range poll(a) {
			got[r.TP()] = append(got[r.TP()], r)
			polled++
			mu.Lock()
			next[r.TP()] = r.Offset + 1
			mu.Unlock()
		}
	}
	if polled > perPartition {
		t.Fatalf("a read %d records before its client had fetched them all; the test needs most of them buffered", polled)
	}

	b := newKafka(t, ctx, cfg) // joins the group
	var lost []schemas.TopicPartition
	select {
	case lost = <-revoked:
	case <-ctx.Done():
		t.Fatal("the revoke function was not called when a second member joined")
	}
	isLost := func(tp schemas.TopicPartition) bool { return slices.Contains(lost, tp) }
	if len(lost) != 2 {
		t.Fatalf("revoked %v, want 2 of the 4 partitions", lost)
	}
	mu.Lock()
	if commitErr != nil {
		t.Errorf("Commit during the revoke: %v", commitErr)
	}
	mu.Unlock()

	// The client dropped what it had buffered of the revoked partitions
	// before calling the revoke function.
	keptLeft := 0
	for tp, recs := range all {
		if !isLost(tp) {
			keptLeft += len(recs) - len(got[tp])
		}
	}
	if n := int(a.cl.BufferedFetchRecords()); n > keptLeft {
		t.Errorf("the client still buffers %d records during the revoke; its own partitions have only %d left", n, keptLeft)
	}

	// While the revoke runs, and after, a returns only its own partitions.
	check := func(recs []schemas.Record) {
		t.Helper()
		for _, r := range recs {
			if isLost(r.TP()) {
				t.Fatalf("a returned %s of a revoked partition", r.Coordinates)
			}
			got[r.TP()] = append(got[r.TP()], r)
		}
	}
	check(poll(a))
	releaseOnce.Do(func() { close(release) })
	done := func() bool {
		for tp, recs := range all {
			if !isLost(tp) && len(got[tp]) < len(recs) {
				return false
			}
		}
		return true
	}
	for !done() {
		check(poll(a))
	}
	for tp, recs := range all {
		if !isLost(tp) {
			assertRecords(t, map[schemas.TopicPartition][]schemas.Record{tp: got[tp]}, map[schemas.TopicPartition][]schemas.Record{tp: recs})
		}
	}
	// Nothing else arrives: the revoked partitions' buffered records are gone.
	quiet, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	recs, err := a.Poll(quiet)
	cancel()
	if len(recs) > 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a's last Poll = %d records, %v; want none", len(recs), err)
	}

	// The new member starts the revoked partitions where a committed them
	// during the revoke, and reads nothing else.
	want := map[schemas.TopicPartition][]schemas.Record{}
	for _, tp := range lost {
		want[tp] = all[tp][committed[tp]:]
	}
	fromB := map[schemas.TopicPartition][]schemas.Record{}
	for n := 0; n < len(want[lost[0]])+len(want[lost[1]]); {
		for _, r := range poll(b) {
			fromB[r.TP()] = append(fromB[r.TP()], r)
			n++
		}
	}
	assertRecords(t, fromB, want)
}

// A poll that took records out of the client's buffers just before a
// revoke returns them only if the partition is still owned and not being
// revoked.
func TestKafkaRecordsDropsPartitionsNotOwned(t *testing.T) {
	k := &Kafka{cfg: DefaultKafkaConfig(), logger: testLogger(t), parts: map[schemas.TopicPartition]*partitionState{
		{Topic: "t", Partition: 0}: {owned: true},
		{Topic: "t", Partition: 1}: {owned: true, revoking: true},
		{Topic: "t", Partition: 2}: {owned: false},
	}}
	var parts []kgo.FetchPartition
	for p := range int32(4) {
		parts = append(parts, kgo.FetchPartition{Partition: p, Records: []*kgo.Record{
			{Topic: "t", Partition: p, Offset: 10, Value: []byte("x")},
		}})
	}
	recs := k.records(kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "t", Partitions: parts}}}})
	if len(recs) != 1 || recs[0].Coordinates != (schemas.Coordinates{Topic: "t", Partition: 0, Offset: 10}) {
		t.Errorf("records = %v, want only t/0@10", recs)
	}
}
