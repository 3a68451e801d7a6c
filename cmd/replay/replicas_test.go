//go:build integration

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replaykit/replay/internal/testinfra"
	"github.com/replaykit/replay/schemas"
	"github.com/replaykit/replay/sinks"
)

// writeReplicaConfig writes the config of a consumer-group member on a
// PostgreSQL catalog (dsn) with a local warehouse: several replicas share
// both, and read the log until stopped.
func writeReplicaConfig(t *testing.T, dir, runID, broker, topic, target, dsn string) string {
	t.Helper()
	cfgFile := writeRunConfig(t, dir, runID, broker, topic, target, "")
	rewriteConfig(t, cfgFile, "stop_at_end: true", "stop_at_end: false")
	rewriteConfig(t, cfgFile, "uri: "+filepath.Join(dir, "catalog.db"), "uri: "+dsn)
	// Several members commit to the same tables: flush less often than the
	// single-member tests.
	rewriteConfig(t, cfgFile, "interval: 100ms", "interval: 300ms")
	return cfgFile
}

// assertOwnedCommits checks, in every table's history, that each commit
// recording an offset of a partition was made by the writer that had last
// claimed it: no replica wrote rows for a partition another had taken.
// It returns the commits checked.
func assertOwnedCommits(t *testing.T, ctx context.Context, cfgFile, group string) int {
	t.Helper()
	s := openSinkFromConfig(t, ctx, cfgFile)
	defer s.Close()
	checked := 0
	for _, name := range schemas.TableNames() {
		owner := map[schemas.TopicPartition]string{}
		for _, c := range history(t, ctx, s, name, group) {
			for tp := range c.Offsets {
				if owner[tp] != c.Writer {
					t.Errorf("%s: snapshot %d by writer %s records %s/%d, claimed by %q", name, c.SnapshotID, c.Writer, tp.Topic, tp.Partition, owner[tp])
				}
				checked++
			}
			claim(owner, c)
		}
	}
	return checked
}

func history(t *testing.T, ctx context.Context, s *sinks.Iceberg, table, group string) []sinks.Commit {
	t.Helper()
	hist, err := s.History(ctx, table, group)
	if err != nil {
		t.Fatal(err)
	}
	return hist
}

// claim applies the claims of commit c to owner.
func claim(owner map[schemas.TopicPartition]string, c sinks.Commit) {
	for _, tp := range c.Owners {
		owner[tp] = c.Writer
	}
}

// TestReplicasCrashRestartExactlyOnce runs three replica processes of one
// consumer group on a PostgreSQL catalog, SIGKILLs one at random points and
// restarts it, then lets them finish: every table holds every record
// exactly once, and every commit was made by its partition's owner.
func TestReplicasCrashRestartExactlyOnce(t *testing.T) {
	const (
		records  = 20_000
		garbage  = 23
		replicas = 3
		kills    = 6
	)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	bin := replayBinary(t)
	dsn := testinfra.PostgresDatabaseT(t)
	_, brokers := startFaultyBroker(t, "captures", 12)
	want := produceCaptures(t, ctx, brokers, "captures", records, garbage)
	tgt, srv := newCountingTarget(t)
	dir := t.TempDir()
	cfgFile := writeReplicaConfig(t, dir, "replicas-1", brokers[0], "captures", srv.URL, dsn)

	seed := uint64(time.Now().UnixNano())
	t.Logf("kill points seeded with %d", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	logOf := func(i int) string { return filepath.Join(dir, fmt.Sprintf("replica-%d.log", i)) }
	procs := make([]*process, replicas)
	for i := range procs {
		procs[i] = startReplay(t, bin, cfgFile, logOf(i))
	}
	for k := range kills {
		at := tgt.count() + 500 + r.Int64N(3000)
		if !tgt.await(at, ctx.Done()) {
			t.Fatalf("the target never reached %d requests before kill %d", at, k+1)
		}
		i := r.IntN(replicas)
		select {
		case <-procs[i].done:
			t.Fatalf("replica %d exited on its own (code %d); log tail:\n%s", i, procs[i].exitCode(), logTail(logOf(i)))
		default:
		}
		if err := procs[i].cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if code := procs[i].exitCode(); code != -1 {
			t.Fatalf("kill %d: replica %d exited %d before the SIGKILL landed", k+1, i, code)
		}
		procs[i] = startReplay(t, bin, cfgFile, logOf(i))
	}
	waitForRows(t, ctx, cfgFile, "replicas-1", want)
	for _, p := range procs {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range procs {
		if code := p.exitCode(); code != 0 {
			t.Errorf("replica %d: SIGTERM exit %d, want 0; log tail:\n%s", i, code, logTail(logOf(i)))
		}
	}
	prod, rep, dead := assertExactlyOnce(t, ctx, cfgFile, "replicas-1", want)
	commits := assertOwnedCommits(t, ctx, cfgFile, "crash")
	t.Logf("replicas test: %d records (%d undecodable) on 12 partitions, %d replicas, %d SIGKILLs, %d target requests; rows: production %d, replay %d, dead letters %d; %d partition commits checked for ownership",
		records+garbage, garbage, replicas, kills, tgt.count(), prod, rep, dead, commits)
}

var writerRE = regexp.MustCompile(`msg="iceberg sink open" writer=(\S+)`)

// writerOf returns the replay.writer a replica's log announces.
func writerOf(t *testing.T, logFile string) string {
	t.Helper()
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	m := writerRE.FindAllSubmatch(b, -1)
	if len(m) == 0 {
		t.Fatalf("%s announces no writer", logFile)
	}
	return string(m[len(m)-1][1])
}

// waitOwner polls the catalog until every partition of topic is claimed
// by writer in every table. The catalog is the signal: claims are commits.
func waitOwner(t *testing.T, ctx context.Context, cfgFile, group, writer string, partitions int) {
	t.Helper()
	s := openSinkFromConfig(t, ctx, cfgFile)
	defer s.Close()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		owned := partitions * len(schemas.TableNames())
		for _, name := range schemas.TableNames() {
			owner := map[schemas.TopicPartition]string{}
			for _, c := range history(t, ctx, s, name, group) {
				claim(owner, c)
			}
			for _, w := range owner {
				if w == writer {
					owned--
				}
			}
		}
		if owned == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("writer %s never owned all %d partitions in every table", writer, partitions)
		case <-tick.C:
		}
	}
}

// TestZombieReplicaIsFenced pauses a replica with SIGSTOP past its session
// timeout while it holds rows not yet committed; its partitions move to the
// other replica, which claims them. Resumed with SIGCONT, the zombie must
// not commit rows for the partitions it lost: its flush is fenced. Every
// table then holds every record exactly once.
func TestZombieReplicaIsFenced(t *testing.T) {
	const records, partitions = 12_000, 6
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := replayBinary(t)
	dsn := testinfra.PostgresDatabaseT(t)
	_, brokers := startFaultyBroker(t, "captures", partitions)
	want := produceCaptures(t, ctx, brokers, "captures", records, 5)
	tgt, srv := newCountingTarget(t)
	dir := t.TempDir()
	cfgFile := writeReplicaConfig(t, dir, "zombie-1", brokers[0], "captures", srv.URL, dsn)
	// Rows stay buffered a while: the zombie has some when it is paused.
	rewriteConfig(t, cfgFile, "interval: 300ms", "interval: 2s")
	rewriteConfig(t, cfgFile, "  workers: 8\n", "  workers: 8\n  rate: 2000\n")
	zombieLog, ownerLog := filepath.Join(dir, "zombie.log"), filepath.Join(dir, "owner.log")

	zombie := startReplay(t, bin, cfgFile, zombieLog)
	if !tgt.await(1000, zombie.done) {
		t.Fatalf("the first replica exited %d; log tail:\n%s", zombie.exitCode(), logTail(zombieLog))
	}
	zombieWriter := writerOf(t, zombieLog)
	owner := startReplay(t, bin, cfgFile, ownerLog)
	if !tgt.await(tgt.count()+2000, owner.done) {
		t.Fatalf("the second replica exited %d; log tail:\n%s", owner.exitCode(), logTail(ownerLog))
	}
	ownerWriter := writerOf(t, ownerLog)

	if err := zombie.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// The session times out; the other replica takes every partition.
	waitOwner(t, ctx, cfgFile, "crash", ownerWriter, partitions)
	if err := zombie.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}

	waitForRows(t, ctx, cfgFile, "zombie-1", want)
	for _, p := range []*process{zombie, owner} {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for name, p := range map[string]*process{zombieLog: zombie, ownerLog: owner} {
		if code := p.exitCode(); code != 0 {
			t.Errorf("%s: SIGTERM exit %d, want 0; log tail:\n%s", name, code, logTail(name))
		}
	}
	b, err := os.ReadFile(zombieLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "fenced: partitions claimed by another replica") {
		t.Errorf("the zombie's log shows no fenced flush; log tail:\n%s", logTail(zombieLog))
	}
	assertExactlyOnce(t, ctx, cfgFile, "zombie-1", want)
	commits := assertOwnedCommits(t, ctx, cfgFile, "crash")
	t.Logf("zombie test: writers %s (paused) and %s; %d target requests; %d partition commits checked for ownership",
		zombieWriter, ownerWriter, tgt.count(), commits)
}
