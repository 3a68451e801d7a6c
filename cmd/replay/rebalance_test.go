package main

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/replaykit/replay/config"
	"github.com/replaykit/replay/schemas"
	"github.com/replaykit/replay/service"
)

// member is one in-process replay instance of a consumer group.
type member struct {
	cancel context.CancelFunc
	done   chan error
}

func startMember(t *testing.T, cfgFile string, logs *syncBuffer) *member {
	t.Helper()
	cfg, err := config.Load(cfgFile, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{cancel: cancel, done: make(chan error, 1)}
	go func() {
		res, err := service.Run(ctx, cfg, cfg.Log.Logger(logs))
		if err == nil {
			err = res.Sink.Close()
		}
		m.done <- err
	}()
	t.Cleanup(func() { cancel(); <-m.done })
	return m
}

func (m *member) stop(t *testing.T) {
	t.Helper()
	m.cancel()
	if err := <-m.done; err != nil {
		t.Errorf("member stopped with error: %v", err)
	}
	m.done <- nil // for the cleanup
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitForRows polls the tables until they hold the wanted row counts or the
// deadline passes. Polling is the signal here: rows become visible only
// through catalog commits.
func waitForRows(t *testing.T, ctx context.Context, cfgFile, runID string, want captureSet) {
	t.Helper()
	s := openSinkFromConfig(t, ctx, cfgFile)
	defer s.Close()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		p, err1 := s.CountRows(ctx, schemas.TableProduction, runID)
		r, err2 := s.CountRows(ctx, schemas.TableReplay, runID)
		d, err3 := s.CountRows(ctx, schemas.TableDeadLetters, runID)
		if err1 == nil && err2 == nil && err3 == nil &&
			p >= int64(len(want.production)) && r >= int64(len(want.replayed)) && d >= int64(len(want.garbage)) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("tables never filled: production %d/%d, replay %d/%d, dead letters %d/%d (%v %v %v)",
				p, len(want.production), r, len(want.replayed), d, len(want.garbage), err1, err2, err3)
		case <-tick.C:
		}
	}
}

// TestRebalanceExactlyOnce runs three instances in one group over a
// 12-partition topic; instances join and leave mid-run. Every table must
// still hold every record exactly once.
func TestRebalanceExactlyOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	_, brokers := startFaultyBroker(t, "captures", 12)
	want := produceCaptures(t, ctx, brokers, "captures", 30_000, 11)
	tgt, srv := newCountingTarget(t)
	dir := t.TempDir()
	cfgFile := writeRunConfig(t, dir, "rebalance-1", brokers[0], "captures", srv.URL, "")
	cfgFile = rewriteConfig(t, cfgFile, "stop_at_end: true", "stop_at_end: false")
	// Several members commit to the same tables: flush less often than the
	// single-member tests so optimistic-concurrency retries stay rare.
	cfgFile = rewriteConfig(t, cfgFile, "interval: 100ms", "interval: 400ms")
	var logs syncBuffer
	never := make(chan struct{})

	a := startMember(t, cfgFile, &logs)
	tgt.await(2000, never)
	b := startMember(t, cfgFile, &logs)
	tgt.await(6000, never)
	c := startMember(t, cfgFile, &logs)
	tgt.await(11000, never)
	a.stop(t) // leaves: its partitions are revoked and move to b and c
	tgt.await(16000, never)
	d := startMember(t, cfgFile, &logs)
	tgt.await(21000, never)
	b.stop(t)
	waitForRows(t, ctx, cfgFile, "rebalance-1", want)
	c.stop(t)
	d.stop(t)
	if t.Failed() {
		t.Logf("logs:\n%s", logs.String())
	}
	prod, rep, dead := assertExactlyOnce(t, ctx, cfgFile, "rebalance-1", want)
	t.Logf("rebalance test: rows production %d, replay %d, dead letters %d; %d target requests", prod, rep, dead, tgt.count())
}

// TestBrokerFaultsExactlyOnce runs replay while the broker fails fetches,
// offset commits, coordinator lookups and heartbeats (forcing rebalances).
func TestBrokerFaultsExactlyOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cluster, brokers := startFaultyBroker(t, "captures", 6)
	want := produceCaptures(t, ctx, brokers, "captures", 15_000, 7)
	_, srv := newCountingTarget(t)
	dir := t.TempDir()
	cfgFile := writeRunConfig(t, dir, "faults-1", brokers[0], "captures", srv.URL, "")

	faults := []*kfake.FaultHandle{
		cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: "captures", Partitions: []int32{0, 3}, Err: kerr.NotLeaderForPartition, Count: 3}),
		cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: "captures", Err: kerr.UnknownServerError, Count: 10}),
		cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Err: kerr.CoordinatorNotAvailable, Count: 5}),
		cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.FindCoordinator}, TopLevel: true, Err: kerr.CoordinatorLoadInProgress, Count: 3}),
		cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Heartbeat}, TopLevel: true, Err: kerr.RebalanceInProgress, Count: 2}),
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"run", "--config", cfgFile}, &stdout, &stderr); code != 0 {
		t.Fatalf("replay run under broker faults exited %d\n%s", code, stderr.String())
	}
	for i, f := range faults {
		if f.Hits() == 0 {
			t.Errorf("fault %d never hit: the test did not exercise it", i)
		}
	}
	assertExactlyOnce(t, ctx, cfgFile, "faults-1", want)
}
