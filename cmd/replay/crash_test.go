package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/replaykit/replay/config"
	"github.com/replaykit/replay/sinks"
)

// startFaultyBroker starts kfake on a loopback port with a short minimum
// session timeout, so a killed member's partitions move on quickly.
func startFaultyBroker(t *testing.T, topic string, partitions int32) (*kfake.Cluster, []string) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic),
		kfake.GroupMinSessionTimeout(500*time.Millisecond),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()
}

func writeRunConfig(t *testing.T, dir, runID, broker, topic, target string, extra string) string {
	t.Helper()
	f := filepath.Join(dir, "replay.yaml")
	writeFile(t, f, fmt.Sprintf(`
run_id: %s
source:
  kafka:
    brokers: [%s]
    topics: [%s]
    group: crash
    stop_at_end: true
    session_timeout: 2s
replay:
  target: %s
  workers: 8
sink:
  catalog:
    uri: %s
    warehouse: %s
  flush:
    rows: 1000
    interval: 100ms
log:
  level: info
%s`, runID, broker, topic, target, filepath.Join(dir, "catalog.db"), filepath.Join(dir, "warehouse"), extra))
	return f
}

func openSinkFromConfig(t *testing.T, ctx context.Context, cfgFile string) *sinks.Iceberg {
	t.Helper()
	cfg, err := config.Load(cfgFile, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sinks.OpenIceberg(ctx, cfg.Sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCrashRestartExactlyOnce SIGKILLs the replay binary at random points,
// restarting it each time, then lets it finish, and checks that every table
// holds every record exactly once. The run has a baseline target too, so
// baseline_responses is one of those tables.
func TestCrashRestartExactlyOnce(t *testing.T) {
	const (
		records = 50_000
		garbage = 37
		kills   = 6
	)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	bin := replayBinary(t)
	_, brokers := startFaultyBroker(t, "captures", 12)
	want := produceCaptures(t, ctx, brokers, "captures", records, garbage)
	tgt, srv := newCountingTarget(t)
	baseTgt, baseSrv := newCountingTarget(t)
	dir := t.TempDir()
	cfgFile := writeRunConfig(t, dir, "crash-1", brokers[0], "captures", srv.URL, "")
	rewriteConfig(t, cfgFile, "  workers: 8\n", "  workers: 8\n  baseline: "+baseSrv.URL+"\n")
	logFile := filepath.Join(dir, "replay.log")

	seed := uint64(time.Now().UnixNano())
	t.Logf("kill points seeded with %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	killed := 0
	for killed < kills {
		p := startReplay(t, bin, cfgFile, logFile)
		at := tgt.count() + 1 + r.Int64N(4000)
		if !tgt.await(at, p.done) {
			t.Fatalf("replay exited (code %d) before kill %d of %d at %d target requests; log tail:\n%s",
				p.exitCode(), killed+1, kills, at, logTail(logFile))
		}
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if code := p.exitCode(); code != -1 {
			t.Fatalf("kill %d: process exited %d before the SIGKILL landed", killed+1, code)
		}
		killed++
	}
	p := startReplay(t, bin, cfgFile, logFile)
	if code := p.exitCode(); code != 0 {
		t.Fatalf("final run exited %d; log tail:\n%s", code, logTail(logFile))
	}
	prod, rep, dead := assertExactlyOnce(t, ctx, cfgFile, "crash-1", want)
	t.Logf("crash test: %d records (%d undecodable) on 12 partitions, %d SIGKILLs, %d target and %d baseline requests; rows: production_responses %d, replay_responses and baseline_responses %d each, dead_letters %d",
		records+garbage, garbage, killed, tgt.count(), baseTgt.count(), prod, rep, dead)
}

// TestSIGTERMDrainsAndRestartCompletes stops the binary with SIGTERM mid-run:
// it must exit 0 having committed only what it wrote; a restart completes
// the run with every record exactly once.
func TestSIGTERMDrainsAndRestartCompletes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := replayBinary(t)
	_, brokers := startFaultyBroker(t, "captures", 6)
	want := produceCaptures(t, ctx, brokers, "captures", 20_000, 5)
	tgt, srv := newCountingTarget(t)
	dir := t.TempDir()
	cfgFile := writeRunConfig(t, dir, "term-1", brokers[0], "captures", srv.URL, "")
	logFile := filepath.Join(dir, "replay.log")

	p := startReplay(t, bin, cfgFile, logFile)
	if !tgt.await(3000, p.done) {
		t.Fatalf("replay exited %d before 3000 requests", p.exitCode())
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.exitCode(); code != 0 {
		t.Fatalf("SIGTERM: exit %d, want 0; log tail:\n%s", code, logTail(logFile))
	}
	// Whatever was written so far is there once; then finish the run.
	s := openSinkFromConfig(t, ctx, cfgFile)
	prod := scan(t, ctx, s, "production_responses", "term-1")
	_ = s.Close()
	if len(prod) == 0 || len(prod) >= len(want.production) {
		t.Fatalf("after SIGTERM production_responses has %d rows; want some but not all of %d", len(prod), len(want.production))
	}
	p = startReplay(t, bin, cfgFile, logFile)
	if code := p.exitCode(); code != 0 {
		t.Fatalf("restart exited %d; log tail:\n%s", code, logTail(logFile))
	}
	assertExactlyOnce(t, ctx, cfgFile, "term-1", want)
}

// logTail returns the last lines of a replay log for a failure message.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	const n = 6000
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
