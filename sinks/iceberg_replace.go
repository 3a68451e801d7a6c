package sinks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"

	"github.com/replaykit/replay/schemas"
)

// PropOperation names, in a snapshot summary, the replay operation that
// committed it; ReplaceRun writes "replace-run", with replay.run-id,
// replay.commit-id, replay.writer and, when the sink has one, replay.group.
const PropOperation = "replay.operation"

// ReplaceRun makes rows the whole content of one run in the named
// comparison table (see schemas.ComparisonTableNames), creating the table if
// it is missing: one transaction that deletes every row of the run and
// appends the new ones (an Iceberg overwrite filtered on run_id), so readers
// see either the old rows or the new ones, never both or neither. With no
// rows it just removes the run's. Other runs' rows are untouched: the tables
// are partitioned by run_id, so whole files are dropped, none rewritten.
//
// open returns the rows to write; every row must carry runID (a row of
// another run would not be replaced next time). It is called once per
// attempt: a commit that fails (a concurrent compare of another run moved
// the table, or the catalog failed) is retried from a fresh load of the
// table, up to sink.commit_retry attempts with backoff. Replacing is
// idempotent, so an attempt that was applied although it reported an error
// does no harm. ReplaceRun releases each reader open returns.
//
// Only comparison tables can be replaced: replay's own tables carry the
// Kafka offsets that make them exactly once, and rewriting them would break
// that.
func (s *Iceberg) ReplaceRun(ctx context.Context, tableName, runID string, open func() (array.RecordReader, error)) error {
	if !schemas.IsComparisonTable(tableName) {
		return fmt.Errorf("replace run %q of %s: only the comparison tables (%v) can be replaced",
			runID, tableName, schemas.ComparisonTableNames())
	}
	if err := schemas.CheckName(runID); err != nil {
		return fmt.Errorf("replace run of %s: run_id: %w", tableName, err)
	}
	full := s.QualifiedName(tableName)
	start := time.Now()
	retry := s.cfg.CommitRetry
	for n := 1; ; n++ {
		rows, snapshotID, err := s.replaceOnce(ctx, tableName, runID, open)
		if err == nil {
			s.logger.Info("replaced run rows", "table", full, "run_id", runID, "rows", rows,
				"snapshot_id", snapshotID, "attempts", n, "duration", time.Since(start))

			return nil
		}
		if cause := context.Cause(ctx); cause != nil {
			return fmt.Errorf("replace run %q of %s stopped after %d attempts: %w; last error: %w", runID, full, n, cause, err)
		}
		var bad *badRowsError
		if errors.As(err, &bad) || n >= retry.Attempts {
			return fmt.Errorf("replace run %q of %s gave up after %d attempts: %w", runID, full, n, err)
		}
		wait := backoff(retry, n)
		s.logger.Warn("replacing run rows failed; retrying", "table", full, "run_id", runID, "attempt", n,
			"backoff", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()

			return fmt.Errorf("replace run %q of %s stopped after %d attempts: %w; last error: %w", runID, full, n, context.Cause(ctx), err)
		case <-t.C:
		}
	}
}

// badRowsError is a problem with the rows themselves: retrying cannot help.
type badRowsError struct{ err error }

func (e *badRowsError) Error() string { return e.err.Error() }
func (e *badRowsError) Unwrap() error { return e.err }

// replaceOnce is one attempt of ReplaceRun. It returns the rows written and
// the snapshot committed.
func (s *Iceberg) replaceOnce(ctx context.Context, tableName, runID string, open func() (array.RecordReader, error)) (int64, int64, error) {
	tbl, err := s.ensureComparisonTable(ctx, tableName)
	if err != nil {
		return 0, 0, err
	}
	rdr, err := open()
	if err != nil {
		return 0, 0, &badRowsError{fmt.Errorf("open the rows to write: %w", err)}
	}
	counted := &countingReader{RecordReader: rdr, runID: runID}
	defer rdr.Release()
	if want := schemas.ComparisonArrowSchema(tableName); !rdr.Schema().Equal(want) {
		return 0, 0, &badRowsError{fmt.Errorf("rows have schema %v, want %v", rdr.Schema(), want)}
	}

	txn := tbl.NewTransaction()
	if err := txn.AssertRefSnapshotID(table.MainBranch); err != nil {
		return 0, 0, err
	}
	commitID := uuid.NewString()
	props := iceberg.Properties{PropRunID: runID, PropOperation: "replace-run", PropCommitID: commitID, PropWriter: s.writer}
	if s.cfg.Group != "" {
		props[PropGroup] = s.cfg.Group
	}
	filter := iceberg.EqualTo(iceberg.Reference("run_id"), runID)
	ctx = compute.WithAllocator(ctx, s.mem)
	if err := txn.Overwrite(ctx, counted, props, table.WithOverwriteFilter(filter)); err != nil {
		if counted.err != nil {
			return 0, 0, &badRowsError{counted.err}
		}

		return 0, 0, fmt.Errorf("overwrite: %w", err)
	}
	if counted.err != nil {
		return 0, 0, &badRowsError{counted.err}
	}
	committed, err := txn.Commit(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("commit: %w", err)
	}
	var snapshotID int64
	if counted.rows > 0 {
		// The rows written are the rows the snapshot added, under the
		// table's location (the run ID is its partition value).
		snap, err := checkCommitted(committed, commitID, counted.rows, -1)
		if err != nil {
			return 0, 0, &badRowsError{err}
		}
		snapshotID = snap.SnapshotID
	} else if snap := committed.CurrentSnapshot(); snap != nil {
		snapshotID = snap.SnapshotID
	}

	return counted.rows, snapshotID, nil
}

// countingReader counts the rows read through it and checks that each
// carries the run being replaced.
type countingReader struct {
	array.RecordReader
	runID string
	rows  int64
	err   error // a reader error, or a row of another run
}

func (r *countingReader) Next() bool {
	if r.err != nil || !r.RecordReader.Next() {
		if r.err == nil {
			r.err = r.RecordReader.Err()
		}

		return false
	}
	rec := r.RecordReader.RecordBatch()
	if err := checkRunID(rec, r.runID); err != nil {
		r.err = err

		return false
	}
	r.rows += rec.NumRows()

	return true
}

func (r *countingReader) Err() error { return r.err }

// checkRunID reports a row of rec whose run_id is not runID.
func checkRunID(rec arrow.RecordBatch, runID string) error {
	ids, ok := column(rec, "run_id").(*array.String)
	if !ok {
		return fmt.Errorf("rows have no string run_id column: %v", rec.Schema())
	}
	for i := range ids.Len() {
		if ids.IsNull(i) || ids.Value(i) != runID {
			return fmt.Errorf("row %d has run_id %q, want %q", i, ids.ValueStr(i), runID)
		}
	}

	return nil
}

// ensureComparisonTable loads the named comparison table, creating it with
// its partition spec and sort order if missing, adds the columns this
// version has and it lacks (see addColumns), and checks its schema.
func (s *Iceberg) ensureComparisonTable(ctx context.Context, name string) (*table.Table, error) {
	cat, err := s.catalog()
	if err != nil {
		return nil, err
	}
	ident := append(slices.Clone(s.ns), name)
	full := s.QualifiedName(name)
	tbl, err := cat.LoadTable(ctx, ident)
	if errors.Is(err, catalog.ErrNoSuchTable) {
		tbl, err = cat.CreateTable(ctx, ident, schemas.ComparisonSchema(name),
			catalog.WithPartitionSpec(schemas.ComparisonPartitionSpec(name)),
			catalog.WithSortOrder(schemas.ComparisonSortOrder(name)),
			catalog.WithProperties(s.cfg.tableProperties(name)),
		)
		if errors.Is(err, catalog.ErrTableAlreadyExists) { // created concurrently
			tbl, err = cat.LoadTable(ctx, ident)
		} else if err == nil {
			s.logger.Info("created table", "table", full, "location", tbl.Location())
		}
	}
	if err != nil {
		return nil, fmt.Errorf("load or create table %s: %w; check %scatalog and %snamespace", full, err, configPath, configPath)
	}
	if tbl, err = s.addColumns(ctx, cat, tbl, ident, schemas.ComparisonSchema(name)); err != nil {
		return nil, err
	}
	if err := checkSchema(tbl.Schema(), schemas.ComparisonSchema(name)); err != nil {
		return nil, &badRowsError{fmt.Errorf("table %s at %s: %w; it was not created by a compatible replay, use another namespace", full, tbl.Location(), err)}
	}

	return s.setProperties(ctx, tbl, full, s.cfg.tableProperties(name))
}
