package sinks

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/replaykit/replay/schemas"
)

// withRunID returns results with every row's run ID set to runID.
func withRunID(results []*schemas.Result, runID string) []*schemas.Result {
	for _, r := range results {
		if r.Production != nil {
			r.Production.RunID = runID
		}
		if r.Replay != nil {
			r.Replay.RunID = runID
		}
		for _, c := range r.Copies {
			c.RunID = runID
		}
		if r.Baseline != nil {
			r.Baseline.RunID = runID
		}
		if r.DeadLetter != nil {
			r.DeadLetter.RunID = runID
		}
	}

	return results
}

// addUnchecked buffers the rows of results as Add does but without its
// checks: what a run ID that got past the first wall (config.Validate,
// OpenIceberg, Add) would hand the commit path.
func addUnchecked(s *Iceberg, results []*schemas.Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range results {
		if r.Production != nil {
			tb := s.byName[schemas.TableProduction]
			_ = tb.builder.(*schemas.ProductionBuilder).Append(r.Production)
			tb.runIDs[r.Production.RunID] = struct{}{}
		}
		if r.Replay != nil {
			tb := s.byName[schemas.TableReplay]
			for _, row := range append([]*schemas.ReplayRow{r.Replay}, r.Copies...) {
				_ = tb.builder.(*schemas.ReplayBuilder).Append(row)
				tb.runIDs[row.RunID] = struct{}{}
			}
		}
		if r.Baseline != nil {
			tb := s.byName[schemas.TableBaseline]
			_ = tb.builder.(*schemas.ReplayBuilder).Append(r.Baseline)
			tb.runIDs[r.Baseline.RunID] = struct{}{}
		}
		if r.DeadLetter != nil {
			tb := s.byName[schemas.TableDeadLetters]
			_ = tb.builder.(*schemas.DeadLetterBuilder).Append(r.DeadLetter)
			tb.runIDs[r.DeadLetter.RunID] = struct{}{}
		}
		s.next[r.Source.TP()] = r.Source.Offset + 1
		s.covered[r.Source.TP()] = struct{}{}
	}
}

// The second wall: rows whose run ID escapes the table's directory are
// written nowhere the table reads (iceberg-go writes no data file for them),
// and a flush must fail rather than commit their offsets, whatever let them
// in. Hostile run IDs that stay inside the table are stored whole.
func TestFlushFailsWhenTheTableWouldNotHoldTheRows(t *testing.T) {
	for _, c := range []struct {
		runID string
		lost  bool // the writer loses the rows: the flush must fail
	}{
		{"../../x", true},
		{"../../../../outside", true},
		{"a/../../../../../../outside", true},
		{"../x", false},
		{"/abs", false},
	} {
		t.Run(c.runID, func(t *testing.T) {
			s, _ := openTest(t, t.TempDir())
			results, wants := makeResults(20, 0)
			addUnchecked(s, withRunID(results, c.runID))
			offsets, err := s.Flush(t.Context())
			if err == nil {
				held := countAll(t, s, c.runID)
				want := count(wants, func(w want) bool { return w.production }) + count(wants, func(w want) bool { return w.replay }) +
					count(wants, func(w want) bool { return w.baseline }) + count(wants, func(w want) bool { return w.deadLetter })
				if held != want {
					t.Fatalf("Flush committed the rows of run %q and returned offsets %v, but the tables hold %d of its %d rows",
						c.runID, offsets, held, want)
				}
				if c.lost {
					t.Fatalf("Flush of run %q succeeded; this run ID was expected to lose its rows", c.runID)
				}
				return
			}
			t.Log(err)
			if !errors.Is(err, ErrRowsNotStored) || offsets != nil {
				t.Fatalf("Flush = %v, %v; want no offsets and ErrRowsNotStored", offsets, err)
			}
			for _, part := range []string{"expected 18 rows", c.runID, s.TableLocation(schemas.TableProduction)} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error does not say %q: %v", part, err)
				}
			}
			for _, name := range schemas.TableNames() {
				got, err := s.CommittedOffsets(t.Context(), name, testGroup)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) > 0 {
					t.Errorf("%s records offsets %v for rows it does not hold", name, got)
				}
			}
		})
	}
}

// countAll counts the rows of run in every table.
func countAll(t *testing.T, s *Iceberg, runID string) int64 {
	t.Helper()
	var n int64
	for _, name := range schemas.TableNames() {
		c, err := s.CountRows(t.Context(), name, runID)
		if err != nil {
			t.Fatal(err)
		}
		n += c
	}

	return n
}

// The first wall where values enter the sink without config.Validate:
// OpenIceberg refuses a run ID, group or namespace that is not a name, and
// Add a row whose run ID is not.
func TestOpenAndAddRefuseNamesThatAreNotNames(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		change func(*IcebergConfig)
		want   string
	}{
		{func(c *IcebergConfig) { c.RunID = "../x" }, `run_id: "../x" contains ".."`},
		{func(c *IcebergConfig) { c.Group = "g/../../h" }, `group (the consumer group, source.kafka.group): "g/../../h" contains ".."`},
		{func(c *IcebergConfig) { c.Namespace = "replay.../x" }, `namespace: "replay.../x" has an empty level`},
		{func(c *IcebergConfig) { c.Namespace = "re/play" }, `namespace: level "re/play" has characters outside`},
	} {
		cfg := testConfig(dir)
		c.change(&cfg)
		s, err := OpenIceberg(t.Context(), cfg, testLogger(t))
		if err == nil {
			_ = s.Close()
			t.Errorf("OpenIceberg opened a sink with %s", c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("OpenIceberg: %v; want it to say %s", err, c.want)
		}
	}
	if entries, err := filepath.Glob(filepath.Join(dir, "*")); err != nil || len(entries) > 0 {
		t.Errorf("refused opens left %v (%v) behind", entries, err)
	}

	s, _ := openTest(t, dir)
	for _, runID := range []string{"../../x", "a/b", "a,b"} {
		results, _ := makeResults(4, 0)
		for _, r := range withRunID(results, runID) {
			err := s.Add(r)
			if !errors.Is(err, schemas.ErrInvalidRow) || !strings.Contains(err.Error(), "run_id: ") {
				t.Errorf("Add of a row of run %q: %v, want ErrInvalidRow naming run_id", runID, err)
			}
		}
	}
	if rows, _ := s.Buffered(); rows != 0 {
		t.Errorf("refused results left %d rows buffered", rows)
	}
}

func TestUnderLocation(t *testing.T) {
	const loc = "file:///w/replay.db/production_responses"
	for _, c := range []struct {
		path string
		want bool
	}{
		{loc + "/data/run_id=r1/captured_at_day=2026-11-21/00000-0.parquet", true},
		{loc + "/data/run_id=..%2Fx/00000-0.parquet", true}, // a directory named "run_id=..", inside
		{loc + "/data/run_id=..%2F..%2F..%2Fx/00000-0.parquet", false},
		{loc + "/data/../../other/00000-0.parquet", false},
		{loc + "_copy/data/00000-0.parquet", false},
		{loc, false},
		{"file:///w/replay.db/other/data/00000-0.parquet", false},
		{"s3://bucket/w/replay.db/production_responses/data/00000-0.parquet", false},
		{"file://otherhost/w/replay.db/production_responses/data/00000-0.parquet", false},
	} {
		if got := underLocation(c.path, loc); got != c.want {
			t.Errorf("underLocation(%q) = %v, want %v", c.path, got, c.want)
		}
	}
	if !underLocation("s3://bucket/t/data/f.parquet", "s3://bucket/t") {
		t.Error("an s3 data file under its table is not under it")
	}
}

// checkCommitted reads the snapshot a commit made back and compares it with
// what the commit meant to add.
func TestCheckCommittedComparesTheSnapshotSummary(t *testing.T) {
	s, _ := openTest(t, t.TempDir())
	results, _ := makeResults(20, 0)
	addAll(t, s, results)
	flush(t, s)
	tbl, err := s.loadTable(t.Context(), schemas.TableProduction)
	if err != nil {
		t.Fatal(err)
	}
	snap := tbl.CurrentSnapshot()
	commitID := snap.Summary.Properties[PropCommitID]
	rows, err := summaryCount(snap.Summary.Properties, "added-records")
	if err != nil || rows == 0 {
		t.Fatalf("added-records = %d, %v", rows, err)
	}
	files, _ := summaryCount(snap.Summary.Properties, "added-data-files")

	if _, err := checkCommitted(tbl, commitID, rows, int(files)); err != nil {
		t.Errorf("the snapshot as committed: %v", err)
	}
	for _, c := range []struct {
		name     string
		commitID string
		rows     int64
		files    int
		want     string
	}{
		{"more rows buffered than added", commitID, rows + 1, int(files), fmt.Sprintf("added-records is %d, expected %d", rows, rows+1)},
		{"other files", commitID, rows, int(files) + 1, "added-data-files"},
		{"another commit", "other", rows, int(files), "is not the commit other"},
	} {
		_, err := checkCommitted(tbl, c.commitID, c.rows, c.files)
		if !errors.Is(err, ErrRowsNotStored) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrRowsNotStored saying %q", c.name, err, c.want)
		}
	}
}

// Every snapshot replay writes carries the same summary keys: claims,
// appends with rows and empty appends, from every writer.
func TestEverySnapshotCarriesTheSummaryKeys(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.RunID = testRun
	a, _ := openTestConfig(t, cfg)
	results, _ := makeResults(40, 0)
	if _, err := a.Resume(t.Context(), []schemas.TopicPartition{p0, p1}); err != nil { // claims
		t.Fatal(err)
	}
	addAll(t, a, results[:20])
	flush(t, a) // rows in every table
	var productionOnly []*schemas.Result
	for _, r := range results[20:30] {
		if r.DeadLetter == nil {
			productionOnly = append(productionOnly, &schemas.Result{Source: r.Source, Production: r.Production})
		}
	}
	addAll(t, a, productionOnly)
	flush(t, a) // empty appends to replay_responses, baseline_responses, dead_letters

	b, _ := openTestConfig(t, cfg) // a second writer takes partition 1 over
	if _, err := b.Resume(t.Context(), []schemas.TopicPartition{p1}); err != nil {
		t.Fatal(err)
	}
	var p1Rest []*schemas.Result
	for _, r := range results[30:] {
		if r.Source.Partition == 1 {
			p1Rest = append(p1Rest, r)
		}
	}
	addAll(t, b, p1Rest)
	flush(t, b)

	commitIDs := map[string]string{}
	for _, name := range schemas.TableNames() {
		sums, err := a.SnapshotSummaries(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		if len(sums) < 4 {
			t.Errorf("%s has %d snapshots, want claims, two flushes, a claim and a flush", name, len(sums))
		}
		for i, props := range sums {
			for _, key := range []string{PropGroup, PropRunID, PropCommitID, PropWriter} {
				if props[key] == "" {
					t.Errorf("%s snapshot %d lacks %s: %v", name, i, key, props)
				}
			}
			if props[PropGroup] != testGroup || props[PropRunID] != testRun {
				t.Errorf("%s snapshot %d: group %q, run %q; want %q, %q", name, i, props[PropGroup], props[PropRunID], testGroup, testRun)
			}
			partitions := 0
			for k := range props {
				if strings.HasPrefix(k, PropOffsetPrefix) || strings.HasPrefix(k, PropOwnerPrefix) {
					partitions++
				}
			}
			if partitions == 0 {
				t.Errorf("%s snapshot %d records no offset and no owner: %v", name, i, props)
			}
			if other, dup := commitIDs[props[PropCommitID]]; dup {
				t.Errorf("%s snapshot %d repeats the commit ID of %s", name, i, other)
			}
			commitIDs[props[PropCommitID]] = fmt.Sprintf("%s snapshot %d", name, i)
		}
	}
}
