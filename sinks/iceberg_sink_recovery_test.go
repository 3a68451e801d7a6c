package sinks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/replaykit/replay/schemas"
)

var (
	p0 = schemas.TopicPartition{Topic: testTopic, Partition: 0}
	p1 = schemas.TopicPartition{Topic: testTopic, Partition: 1}
)

// fault is what faultCatalog does to one CommitTable call.
type fault int

const (
	passThrough fault = iota
	// failBefore returns an error without committing.
	failBefore
	// failAfter commits, then returns an error: a commit whose outcome
	// the caller cannot know (a timeout after the catalog applied it).
	failAfter
	// landOther commits another writer's empty snapshot first, so the
	// caller's commit races a concurrent one and must lose.
	landOther
)

var errInjected = errors.New("injected catalog failure")

// faultCatalog decorates the sink's real catalog to inject failures into
// CommitTable. Tables it loads commit through it.
type faultCatalog struct {
	catalog.Catalog

	mu    sync.Mutex
	calls map[string]int // CommitTable calls per table name
	fault func(tableName string, call int) fault
	// errs are the errors the real catalog returned.
	errs []error
}

// wrapCatalog puts a faultCatalog between s and its catalog.
func wrapCatalog(s *Iceberg) *faultCatalog {
	s.mu.Lock()
	defer s.mu.Unlock()
	fc := &faultCatalog{Catalog: s.cat, calls: map[string]int{}}
	s.cat = fc

	return fc
}

func (c *faultCatalog) setFault(f func(tableName string, call int) fault) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fault = f
	clear(c.calls)
}

func (c *faultCatalog) callsTo(tableName string) int {
	c.mu.Lock()
	defer c.mu.Unlock()

	return c.calls[tableName]
}

func (c *faultCatalog) catalogErrors() []error {
	c.mu.Lock()
	defer c.mu.Unlock()

	return append([]error(nil), c.errs...)
}

func (c *faultCatalog) LoadTable(ctx context.Context, ident table.Identifier) (*table.Table, error) {
	tbl, err := c.Catalog.LoadTable(ctx, ident)
	if err != nil {
		return nil, err
	}

	return table.New(tbl.Identifier(), tbl.Metadata(), tbl.MetadataLocation(), tbl.FS, c), nil
}

func (c *faultCatalog) CommitTable(ctx context.Context, ident table.Identifier, reqs []table.Requirement, updates []table.Update) (table.Metadata, string, error) {
	name := catalog.TableNameFromIdent(ident)
	c.mu.Lock()
	c.calls[name]++
	n, f := c.calls[name], passThrough
	if c.fault != nil {
		f = c.fault(name, n)
	}
	c.mu.Unlock()

	switch f {
	case failBefore:
		return nil, "", fmt.Errorf("%w: commit %d to %s refused", errInjected, n, name)
	case landOther:
		other, err := c.Catalog.LoadTable(ctx, ident) // commits straight to the real catalog
		if err != nil {
			return nil, "", err
		}
		if _, err := commitSnapshot(ctx, other, nil, iceberg.Properties{PropGroup: "another-group"}); err != nil {
			return nil, "", fmt.Errorf("land another writer's commit: %w", err)
		}
	}
	meta, loc, err := c.Catalog.CommitTable(ctx, ident, reqs, updates)
	if err != nil {
		c.mu.Lock()
		c.errs = append(c.errs, err)
		c.mu.Unlock()

		return nil, "", err
	}
	if f == failAfter {
		return nil, "", fmt.Errorf("%w: commit %d to %s applied, then the connection dropped", errInjected, n, name)
	}

	return meta, loc, nil
}

func (c *faultCatalog) Close() error {
	if cl, ok := c.Catalog.(catalog.Closer); ok {
		return cl.Close()
	}

	return nil
}

// fastRetry returns cfg with quick commit retries, so tests that fail
// commits on purpose take milliseconds.
func fastRetry(cfg IcebergConfig, attempts int) IcebergConfig {
	cfg.CommitRetry = CommitRetryConfig{Attempts: attempts, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}

	return cfg
}

// expected returns, per table, the correlation IDs results put there.
func expected(results []*schemas.Result) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, name := range schemas.TableNames() {
		out[name] = map[string]bool{}
	}
	for _, r := range results {
		if r.Production != nil {
			out[schemas.TableProduction][r.Production.Exchange.CorrelationID] = true
		}
		if r.Replay != nil {
			out[schemas.TableReplay][r.Replay.CorrelationID] = true
		}
		if r.Baseline != nil {
			out[schemas.TableBaseline][r.Baseline.CorrelationID] = true
		}
		for _, c := range r.Copies {
			out[schemas.TableReplay][c.CorrelationID] = true
		}
		if r.DeadLetter != nil {
			out[schemas.TableDeadLetters][r.DeadLetter.CorrelationID] = true
		}
	}

	return out
}

// assertExactlyOnce checks that every table holds each row of results once
// and nothing else.
func assertExactlyOnce(t *testing.T, s *Iceberg, results []*schemas.Result) {
	t.Helper()
	for name, ids := range expected(results) {
		tbl, err := s.ScanRun(t.Context(), name, testRun, "correlation_id")
		if err != nil {
			t.Fatal(err)
		}
		counts := map[string]int{}
		eachRow(t, tbl, func(rec arrow.RecordBatch, i int) {
			counts[strings.Clone(col[*array.String](rec, "correlation_id").Value(i))]++
		})
		tbl.Release()
		var missing, doubled, extra int
		for id := range ids {
			switch counts[id] {
			case 0:
				missing++
			case 1:
			default:
				doubled++
			}
		}
		for id := range counts {
			if !ids[id] {
				extra++
			}
		}
		if missing+doubled+extra > 0 {
			t.Errorf("%s: %d rows missing, %d written more than once, %d unexpected (of %d)", name, missing, doubled, extra, len(ids))
		}
	}
}

// assertOffsets checks the offsets every table records for the group.
func assertOffsets(t *testing.T, s *Iceberg, want schemas.Offsets) {
	t.Helper()
	for _, name := range schemas.TableNames() {
		got, err := s.CommittedOffsets(t.Context(), name, testGroup)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, want) {
			t.Errorf("%s records offsets %v, want %v", name, got, want)
		}
	}
}

func flush(t *testing.T, s *Iceberg) schemas.Offsets {
	t.Helper()
	offsets, err := s.Flush(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	return offsets
}

func currentSnapshot(t *testing.T, s *Iceberg, name string) *table.Snapshot {
	t.Helper()
	tbl, err := s.loadTable(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}

	return tbl.CurrentSnapshot()
}

func TestEveryFlushAdvancesEveryTable(t *testing.T) {
	s, _ := openTest(t, t.TempDir())
	all, _ := makeResults(80, 0)
	var results []*schemas.Result // no dead letters at all
	for _, r := range all {
		if r.DeadLetter == nil {
			results = append(results, r)
		}
	}
	var first, second []*schemas.Result
	for _, r := range results {
		switch {
		case r.Source.Offset < 20:
			first = append(first, r)
		case r.Source.Partition == 0: // the second flush covers partition 0 only
			second = append(second, r)
		}
	}

	addAll(t, s, first)
	flush(t, s)
	// Every dead letter was in partition 1, the last at offset 19: the
	// flush covers partition 1 up to the last result added, offset 18.
	assertOffsets(t, s, schemas.Offsets{p0: 20, p1: 19})
	snap := currentSnapshot(t, s, schemas.TableDeadLetters)
	if snap == nil {
		t.Fatal("dead_letters has no snapshot after a flush without dead letters")
	}
	props := snap.Summary.Properties
	if snap.Summary.Operation != table.OpAppend || props["total-data-files"] != "0" || props[PropGroup] != testGroup ||
		props[PropCommitID] == "" {
		t.Errorf("empty snapshot of dead_letters: operation %s, summary %v", snap.Summary.Operation, props)
	}
	if _, ok := props[PropRunID]; ok {
		t.Errorf("an empty snapshot names run IDs: %v", props)
	}

	addAll(t, s, second)
	flush(t, s)
	assertOffsets(t, s, schemas.Offsets{p0: 40, p1: 19})
	assertExactlyOnce(t, s, append(first, second...))
	for _, name := range schemas.TableNames() {
		tbl, err := s.loadTable(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(tbl.Metadata().Snapshots()); n != 2 {
			t.Errorf("%s has %d snapshots after two flushes, want 2", name, n)
		}
	}

	// Resuming reads the same offsets from every table.
	got, err := s.Resume(t.Context(), []schemas.TopicPartition{p0, p1, {Topic: "other", Partition: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if want := (schemas.Offsets{p0: 40, p1: 19}); !maps.Equal(got, want) {
		t.Errorf("Resume = %v, want %v (a partition no table knows is absent)", got, want)
	}
}

// A crash between two table commits of a flush leaves the tables at
// different offsets; a new sink resumes at the lowest, and each table ends
// with every row once. The results carry baseline rows: the restarted sink
// runs with WithBaseline, so a record is held only when both
// replay_responses and baseline_responses have it.
func TestResumeAfterCrashBetweenCommits(t *testing.T) {
	for _, tc := range []struct {
		name     string
		table    string // whose commit fails
		fault    fault
		attempts int
		// offsets the tables record after the crash, in TableNames order:
		// production, replay, baseline, dead_letters
		after [4]int64
	}{
		{"replay commit refused", schemas.TableReplay, failBefore, 2, [4]int64{30, 20, 20, 20}},
		{"replay commit applied but reported failed", schemas.TableReplay, failAfter, 1, [4]int64{30, 30, 20, 20}},
		{"baseline commit refused", schemas.TableBaseline, failBefore, 2, [4]int64{30, 30, 20, 20}},
		{"baseline commit applied but reported failed", schemas.TableBaseline, failAfter, 1, [4]int64{30, 30, 30, 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			results, _ := makeResults(80, 0) // offsets 0..39 of two partitions
			crashed, _ := openTestConfig(t, fastRetry(testConfig(dir), tc.attempts), WithBaseline())
			fc := wrapCatalog(crashed)
			addAll(t, crashed, results[:40]) // offsets 0..19
			flush(t, crashed)

			fc.setFault(func(name string, _ int) fault {
				if name == tc.table {
					return tc.fault
				}

				return passThrough
			})
			addAll(t, crashed, results[40:60]) // offsets 20..29
			_, err := crashed.Flush(t.Context())
			if err == nil {
				t.Fatalf("Flush succeeded with the %s commit failing", tc.table)
			}
			for _, want := range []string{"replay." + tc.table, fmt.Sprintf("gave up after %d attempts", tc.attempts), errInjected.Error()} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if n := fc.callsTo(tc.table); n != tc.attempts {
				t.Errorf("%d %s commits tried, want %d", n, tc.table, tc.attempts)
			}
			if n := fc.callsTo(schemas.TableDeadLetters); n != 0 {
				t.Errorf("dead_letters was committed after %s failed (%d commits)", tc.table, n)
			}
			if err := crashed.Close(); err != nil { // the crash
				t.Fatal(err)
			}

			s, _ := openTestConfig(t, testConfig(dir), WithBaseline())
			for i, name := range schemas.TableNames() {
				got, err := s.CommittedOffsets(t.Context(), name, testGroup)
				if err != nil {
					t.Fatal(err)
				}
				if want := (schemas.Offsets{p0: tc.after[i], p1: tc.after[i]}); !maps.Equal(got, want) {
					t.Fatalf("after the crash %s records %v, want %v", name, got, want)
				}
			}
			if s.HoldsReplay(schemas.Coordinates{Topic: testTopic, Partition: 0, Offset: 0}) {
				t.Error("HoldsReplay is true before Resume")
			}
			at := func(o int64) schemas.Coordinates {
				return schemas.Coordinates{Topic: testTopic, Partition: 1, Offset: o}
			}
			// Held: in replay_responses and in baseline_responses.
			holds := func(s *Iceberg, want int64) {
				t.Helper()
				if !s.HoldsReplay(at(want-1)) || s.HoldsReplay(at(want)) {
					t.Errorf("HoldsReplay(%d), HoldsReplay(%d) = %v, %v; want true, false", want-1, want,
						s.HoldsReplay(at(want-1)), s.HoldsReplay(at(want)))
				}
			}
			// Without a baseline target, replay_responses alone decides. (It
			// resumes first: the last Resume owns the partitions.)
			plain, _ := openTest(t, dir)
			if _, err := plain.Resume(t.Context(), []schemas.TopicPartition{p0, p1}); err != nil {
				t.Fatal(err)
			}
			holds(plain, tc.after[1])

			got, err := s.Resume(t.Context(), []schemas.TopicPartition{p0, p1})
			if err != nil {
				t.Fatal(err)
			}
			if want := (schemas.Offsets{p0: 20, p1: 20}); !maps.Equal(got, want) {
				t.Fatalf("Resume = %v, want the lowest of the tables, %v", got, want)
			}
			holds(s, min(tc.after[1], tc.after[2]))

			// The source re-delivers from offset 20.
			addAll(t, s, results[40:])
			if rows, _ := s.Buffered(); rows == 0 {
				t.Fatal("nothing buffered")
			}
			if got := flush(t, s); !maps.Equal(got, schemas.Offsets{p0: 40, p1: 40}) {
				t.Errorf("Flush = %v, want 40 for both partitions", got)
			}
			assertOffsets(t, s, schemas.Offsets{p0: 40, p1: 40})
			assertExactlyOnce(t, s, results)
		})
	}
}

// A zombie (the previous owner of a partition, still flushing) and the new
// owner write overlapping ranges of the same partitions at the same time.
// The fence makes each row land once, and the tables end at the last offset.
func TestConcurrentWritersOverlapExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.CommitRetry = CommitRetryConfig{Attempts: 100, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	results, _ := makeResults(400, 0) // offsets 0..199 of two partitions

	zombie, _ := openTestConfig(t, cfg)
	if _, err := zombie.Resume(t.Context(), []schemas.TopicPartition{p0, p1}); err != nil {
		t.Fatal(err)
	}
	addAll(t, zombie, results[:100]) // offsets 0..49
	flush(t, zombie)

	// The partitions move; the new owner resumes where the tables end.
	owner, _ := openTestConfig(t, cfg)
	got, err := owner.Resume(t.Context(), []schemas.TopicPartition{p0, p1})
	if err != nil {
		t.Fatal(err)
	}
	if want := (schemas.Offsets{p0: 50, p1: 50}); !maps.Equal(got, want) {
		t.Fatalf("Resume = %v, want %v", got, want)
	}

	// The zombie goes on with offsets 50..149, the owner with 50..199,
	// each flushing every few results.
	run := func(s *Iceberg, results []*schemas.Result, every int) error {
		for i, r := range results {
			if err := s.Add(r); err != nil {
				return err
			}
			if (i+1)%every == 0 || i == len(results)-1 {
				if _, err := s.Flush(t.Context()); err != nil {
					return err
				}
			}
		}

		return nil
	}
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, 2)
	)
	wg.Go(func() { <-start; errs[0] = run(zombie, results[100:300], 40) })
	wg.Go(func() { <-start; errs[1] = run(owner, results[100:], 60) })
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	assertOffsets(t, owner, schemas.Offsets{p0: 200, p1: 200})
	assertExactlyOnce(t, owner, results)
}

func TestHoldsReplayAndAddSkipsHeldRows(t *testing.T) {
	dir := t.TempDir()
	results, _ := makeResults(60, 0) // offsets 0..29 of two partitions
	first, _ := openTest(t, dir)
	addAll(t, first, results[:40]) // offsets 0..19
	flush(t, first)

	s, _ := openTest(t, dir)
	other := schemas.TopicPartition{Topic: "other", Partition: 0}
	got, err := s.Resume(t.Context(), []schemas.TopicPartition{p0, p1, other})
	if err != nil {
		t.Fatal(err)
	}
	if want := (schemas.Offsets{p0: 20, p1: 20}); !maps.Equal(got, want) {
		t.Fatalf("Resume = %v, want %v", got, want)
	}
	for _, tc := range []struct {
		c    schemas.Coordinates
		want bool
	}{
		{schemas.Coordinates{Topic: testTopic, Partition: 0, Offset: 0}, true},
		{schemas.Coordinates{Topic: testTopic, Partition: 0, Offset: 19}, true},
		{schemas.Coordinates{Topic: testTopic, Partition: 0, Offset: 20}, false},
		{schemas.Coordinates{Topic: testTopic, Partition: 7, Offset: 1}, false},
		{schemas.Coordinates{Topic: "other", Partition: 0, Offset: 1}, false},
	} {
		if got := s.HoldsReplay(tc.c); got != tc.want {
			t.Errorf("HoldsReplay(%s) = %v, want %v", tc.c, got, tc.want)
		}
	}

	// The source re-delivers offsets 10..29: the rows of 10..19 are
	// dropped in Add, table by table, and counted.
	addAll(t, s, results[20:])
	for _, tb := range s.tables {
		want := int64(0)
		for _, r := range results[20:40] {
			switch tb.name {
			case schemas.TableProduction:
				want += int64(boolInt(r.Production != nil))
			case schemas.TableReplay:
				want += int64(boolInt(r.Replay != nil) + len(r.Copies))
			case schemas.TableBaseline:
				want += int64(boolInt(r.Baseline != nil))
			case schemas.TableDeadLetters:
				want += int64(boolInt(r.DeadLetter != nil))
			}
		}
		if tb.skipped != want {
			t.Errorf("%s: %d rows skipped, want %d", tb.name, tb.skipped, want)
		}
	}
	flush(t, s)
	assertOffsets(t, s, schemas.Offsets{p0: 30, p1: 30})
	assertExactlyOnce(t, s, results)

	s.Forget([]schemas.TopicPartition{p0})
	if s.HoldsReplay(schemas.Coordinates{Topic: testTopic, Partition: 0, Offset: 5}) {
		t.Error("HoldsReplay is true for a forgotten partition")
	}
	if !s.HoldsReplay(schemas.Coordinates{Topic: testTopic, Partition: 1, Offset: 5}) {
		t.Error("Forget of partition 0 forgot partition 1")
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}

	return 0
}

// The fence: a commit based on a read of the table that another commit has
// since moved past fails, and leaves the table as the other commit left it.
func TestCommitFailsWhenAnotherCommitLandedSinceTheRead(t *testing.T) {
	ctx := t.Context()
	s, _ := openTest(t, t.TempDir())
	results, _ := makeResults(20, 0)
	addAll(t, s, results[:10])
	flush(t, s)

	ident := s.byName[schemas.TableReplay].ident
	stale, err := s.cat.LoadTable(ctx, ident)
	if err != nil {
		t.Fatal(err)
	}
	addAll(t, s, results[10:])
	flush(t, s) // another commit lands
	head := currentSnapshot(t, s, schemas.TableReplay)

	props := iceberg.Properties{PropGroup: testGroup, PropOffsetPrefix + testTopic + ".0": "999"}
	if _, err := commitSnapshot(ctx, stale, nil, props); err == nil {
		t.Fatal("a commit on a stale read of the table succeeded")
	} else if !errors.Is(err, table.ErrCommitFailed) && !strings.Contains(err.Error(), "requirement failed") {
		t.Errorf("stale commit failed with %v; want a failed requirement", err)
	}
	if now := currentSnapshot(t, s, schemas.TableReplay); now.SnapshotID != head.SnapshotID {
		t.Errorf("the failed commit moved the table from snapshot %d to %d", head.SnapshotID, now.SnapshotID)
	}

	// On a fresh read the same empty commit succeeds and keeps every file.
	fresh, err := s.cat.LoadTable(ctx, ident)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := commitSnapshot(ctx, fresh, nil, props)
	if err != nil {
		t.Fatal(err)
	}
	snap := tbl.CurrentSnapshot()
	if snap.SnapshotID == head.SnapshotID || snap.Summary.Properties[PropOffsetPrefix+testTopic+".0"] != "999" ||
		snap.Summary.Properties["total-data-files"] != head.Summary.Properties["total-data-files"] {
		t.Errorf("empty commit: snapshot %d (was %d), summary %v", snap.SnapshotID, head.SnapshotID, snap.Summary.Properties)
	}
}

func TestCommitRetries(t *testing.T) {
	t.Run("a lost race is retried from a fresh read", func(t *testing.T) {
		s, _ := openTestConfig(t, fastRetry(testConfig(t.TempDir()), 3))
		fc := wrapCatalog(s)
		fc.setFault(func(name string, call int) fault {
			if name == schemas.TableProduction && call == 1 {
				return landOther
			}

			return passThrough
		})
		results, _ := makeResults(40, 0)
		addAll(t, s, results)
		flush(t, s)
		if n := fc.callsTo(schemas.TableProduction); n != 2 {
			t.Errorf("%d production commits, want 2: the lost one and its retry", n)
		}
		errs := fc.catalogErrors()
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "requirement failed") {
			t.Errorf("the catalog returned %v; want one failed requirement", errs)
		}
		assertExactlyOnce(t, s, results)
		assertOffsets(t, s, schemas.Offsets{p0: 20, p1: 20})
	})

	t.Run("a commit applied but reported failed is found by its ID", func(t *testing.T) {
		s, _ := openTestConfig(t, fastRetry(testConfig(t.TempDir()), 3))
		fc := wrapCatalog(s)
		fc.setFault(func(name string, call int) fault {
			if name == schemas.TableReplay && call == 1 {
				return failAfter
			}

			return passThrough
		})
		results, _ := makeResults(40, 0)
		addAll(t, s, results)
		flush(t, s)
		if n := fc.callsTo(schemas.TableReplay); n != 1 {
			t.Errorf("%d replay commits, want 1: the retry must find the applied one", n)
		}
		tbl, err := s.loadTable(t.Context(), schemas.TableReplay)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(tbl.Metadata().Snapshots()); n != 1 {
			t.Errorf("replay_responses has %d snapshots, want 1", n)
		}
		assertExactlyOnce(t, s, results)
	})

	t.Run("a persistent failure gives up after the configured attempts", func(t *testing.T) {
		s, _ := openTestConfig(t, fastRetry(testConfig(t.TempDir()), 3))
		fc := wrapCatalog(s)
		fc.setFault(func(name string, _ int) fault {
			if name == schemas.TableDeadLetters {
				return failBefore
			}

			return passThrough
		})
		results, _ := makeResults(40, 0)
		addAll(t, s, results[:20])
		_, err := s.Flush(t.Context())
		if err == nil {
			t.Fatal("Flush succeeded with every dead_letters commit failing")
		}
		for _, want := range []string{"table replay.dead_letters", "gave up after 3 attempts", "last error", "commit 3 to dead_letters refused"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		if !errors.Is(err, errInjected) {
			t.Errorf("error %v does not wrap the catalog's", err)
		}
		if n := fc.callsTo(schemas.TableDeadLetters); n != 3 {
			t.Errorf("%d dead_letters commits, want 3", n)
		}
		if rows, _ := s.Buffered(); rows == 0 {
			t.Error("the rows of the failed flush were dropped")
		}

		// The catalog recovers: the next flush writes everything once.
		fc.setFault(nil)
		addAll(t, s, results[20:])
		flush(t, s)
		assertExactlyOnce(t, s, results)
		assertOffsets(t, s, schemas.Offsets{p0: 20, p1: 20})
	})

	t.Run("a cancelled flush stops retrying", func(t *testing.T) {
		s, _ := openTestConfig(t, fastRetry(testConfig(t.TempDir()), 1000))
		fc := wrapCatalog(s)
		ctx, cancel := context.WithCancel(t.Context())
		fc.setFault(func(_ string, call int) fault {
			if call == 3 {
				cancel()
			}

			return failBefore
		})
		results, _ := makeResults(10, 0)
		addAll(t, s, results)
		_, err := s.Flush(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Flush = %v, want context.Canceled", err)
		}
		if n := fc.callsTo(schemas.TableProduction); n != 3 {
			t.Errorf("%d commits after the cancel, want 3", n)
		}
	})
}

func TestBackoff(t *testing.T) {
	cfg := CommitRetryConfig{Attempts: 10, MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 6: 3200 * time.Millisecond, 7: 5 * time.Second, 80: 5 * time.Second} {
		for range 20 {
			if got := backoff(cfg, n); got < want/2 || got > want {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", n, got, want/2, want)
			}
		}
	}
}

// A batch that partly overlaps what another writer committed is filtered
// down to the rest, and the rows kept are written intact.
func TestCommitDropsRowsAnotherWriterCommitted(t *testing.T) {
	dir := t.TempDir()
	results, wants := makeResults(60, 0) // offsets 0..29 of two partitions
	slow, _ := openTest(t, dir)
	addAll(t, slow, results) // offsets 0..29, not flushed yet

	fast, _ := openTest(t, dir)
	addAll(t, fast, results[:40]) // offsets 0..19
	flush(t, fast)

	if got := flush(t, slow); !maps.Equal(got, schemas.Offsets{p0: 30, p1: 30}) {
		t.Errorf("Flush = %v, want 30 for both partitions", got)
	}
	assertOffsets(t, slow, schemas.Offsets{p0: 30, p1: 30})
	assertExactlyOnce(t, slow, results)

	prod, err := slow.ScanRun(t.Context(), schemas.TableProduction, testRun)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Release()
	eachRow(t, prod, func(rec arrow.RecordBatch, i int) {
		id := col[*array.String](rec, "correlation_id").Value(i)
		w := wants[id]
		if got := bytesOrNil(col[*array.Binary](rec, "request_body"), i); !bytes.Equal(got, w.reqBody) {
			t.Errorf("%s: request body %x, want %x", id, got, w.reqBody)
		}
		if got := headersAt(col[*array.Map](rec, "request_headers"), i); !maps.EqualFunc(got, w.reqHeaders, slices.Equal) {
			t.Errorf("%s: request headers %v, want %v", id, got, w.reqHeaders)
		}
		if got := int32OrZero(col[*array.Int32](rec, "response_status"), i); got != w.status {
			t.Errorf("%s: status %d, want %d", id, got, w.status)
		}
	})
}

// TestZombieIsFencedOutOfClaimedPartitions: a writer that resumed two
// partitions and lost one of them to another writer (which claimed it with
// its own Resume) while it was paused commits only the partition it still
// owns; the new owner writes the other one.
func TestZombieIsFencedOutOfClaimedPartitions(t *testing.T) {
	dir := t.TempDir()
	results, _ := makeResults(80, 0) // offsets 0..39 of two partitions
	zombie, _ := openTest(t, dir)
	if _, err := zombie.Resume(t.Context(), []schemas.TopicPartition{p0, p1}); err != nil {
		t.Fatal(err)
	}
	addAll(t, zombie, results[:40]) // offsets 0..19 of both, not flushed

	owner, _ := openTest(t, dir)
	got, err := owner.Resume(t.Context(), []schemas.TopicPartition{p0})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("Resume = %v, want nothing recorded yet", got)
	}

	// The zombie wakes up and flushes: p0 is fenced.
	if got, want := flush(t, zombie), (schemas.Offsets{p1: 20}); !maps.Equal(got, want) {
		t.Fatalf("zombie Flush = %v, want only the partition it still owns, %v", got, want)
	}
	for _, name := range schemas.TableNames() {
		snap := currentSnapshot(t, zombie, name)
		props := snap.Summary.Properties
		if props[PropWriter] != zombie.writer || props[offsetProp(p0)] != "" || props[ownerProp(p0)] != "" || props[ownerProp(p1)] != zombie.writer {
			t.Errorf("%s: the zombie's snapshot records %v; want p1 only, owned by the zombie", name, props)
		}
	}
	// Its later results of p0 are dropped the same way, without error.
	addAll(t, zombie, results[40:42]) // offset 20 of both
	if got, want := flush(t, zombie), (schemas.Offsets{p1: 21}); !maps.Equal(got, want) {
		t.Fatalf("second zombie Flush = %v, want %v", got, want)
	}

	// The owner writes p0 from the start.
	for _, r := range results[:60] {
		if r.Source.Partition == 0 {
			if err := owner.Add(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got, want := flush(t, owner), (schemas.Offsets{p0: 30}); !maps.Equal(got, want) {
		t.Fatalf("owner Flush = %v, want %v", got, want)
	}
	var want []*schemas.Result
	for _, r := range results[:60] {
		if r.Source.Partition == 0 || r.Source.Offset <= 20 {
			want = append(want, r)
		}
	}
	assertExactlyOnce(t, owner, want)
	assertOffsets(t, owner, schemas.Offsets{p0: 30, p1: 21})
}

// TestCommitRetryReusesDataFiles: a commit that lost a race is retried
// with the data files the first attempt wrote, not with new ones.
func TestCommitRetryReusesDataFiles(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTestConfig(t, fastRetry(testConfig(dir), 3))
	fc := wrapCatalog(s)
	fc.setFault(func(name string, call int) fault {
		if name == schemas.TableReplay && call <= 2 {
			return landOther
		}
		return passThrough
	})
	results, _ := makeResults(200, 0)
	addAll(t, s, results)
	flush(t, s)
	if n := fc.callsTo(schemas.TableReplay); n != 3 {
		t.Fatalf("%d replay commits, want 3", n)
	}
	snap := currentSnapshot(t, s, schemas.TableReplay)
	var onDisk int
	err := filepath.WalkDir(filepath.Join(dir, "warehouse"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(path, "replay_responses") && strings.HasSuffix(path, ".parquet") {
			onDisk++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if files := snap.Summary.Properties["total-data-files"]; files != strconv.Itoa(onDisk) || onDisk == 0 {
		t.Errorf("replay_responses has %s data files and %d parquet files on disk; want the same, nonzero", files, onDisk)
	}
	assertExactlyOnce(t, s, results)
}

// TestLostRacesDoNotExhaustAttempts: commits lost to concurrent commits are
// other writers' progress; they are retried beyond commit_retry.attempts
// (which bounds failures of the commit's own), up to ten times as many.
func TestLostRacesDoNotExhaustAttempts(t *testing.T) {
	s, _ := openTestConfig(t, fastRetry(testConfig(t.TempDir()), 2))
	fc := wrapCatalog(s)
	fc.setFault(func(name string, call int) fault {
		if name == schemas.TableProduction && call <= 4 {
			return landOther
		}
		return passThrough
	})
	results, _ := makeResults(40, 0)
	addAll(t, s, results)
	flush(t, s)
	if n := fc.callsTo(schemas.TableProduction); n != 5 {
		t.Errorf("%d production commits, want 5: four lost races and the one that won", n)
	}
	assertExactlyOnce(t, s, results)

	// A writer that never wins gives up at ten times the attempts.
	fc.setFault(func(name string, _ int) fault {
		if name == schemas.TableReplay {
			return landOther
		}
		return passThrough
	})
	more, _ := makeResults(40, 20)
	addAll(t, s, more)
	_, err := s.Flush(t.Context())
	if err == nil || !strings.Contains(err.Error(), "gave up after 20 attempts (20 lost to concurrent commits)") {
		t.Errorf("Flush error = %v, want it to give up after 20 lost races", err)
	}
}
