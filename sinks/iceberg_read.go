package sinks

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/replaykit/replay/schemas"
)

// Read helpers for the batch compare job: streaming scans of one run and
// the size of a run before reading it. They work on replay's tables
// and on the comparison tables (see schemas.ComparisonTableNames), and only
// read the catalog, so they may be called from any goroutine.

// scanBatchRows is the rows per record batch ScanRunBatches asks for: large
// enough to amortize per-batch work, small enough that a batch of 1.5 KiB
// bodies stays around 10 MiB.
const scanBatchRows = 8192

// ScanRunBatches streams the rows of one run from the named table as Arrow
// record batches, with the given columns (all when none), without holding
// the table in memory: iceberg-go decodes the run's data files a few at a
// time (see table.Scan.ReadTasks for what it holds while decoding in
// parallel) and yields their batches in file order.
//
// Range over the sequence once. Each batch yielded is the caller's to
// release; stopping early is fine. An error while reading ends the sequence
// with that error. Columns are returned as string and binary (not large or
// view types), timestamps as timestamp[us, UTC].
func (s *Iceberg) ScanRunBatches(ctx context.Context, tableName, runID string, columns ...string) (iter.Seq2[arrow.RecordBatch, error], error) {
	scan, full, err := s.runScan(ctx, tableName, runID, columns, table.WithArrowBatchSize(scanBatchRows))
	if err != nil {
		return nil, err
	}
	_, recs, err := scan.ToArrowRecords(compute.WithAllocator(ctx, s.mem))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("scan run %q of %s: %w", runID, full, err), scan.Close())
	}

	return func(yield func(arrow.RecordBatch, error) bool) {
		defer scan.Close()
		for rec, err := range recs {
			if err != nil {
				yield(nil, fmt.Errorf("read run %q of %s: %w", runID, full, err))

				return
			}
			if !yield(rec, nil) {
				return
			}
		}
	}, nil
}

// RunSize is what a table's metadata says about one run, without reading
// its data files.
type RunSize struct {
	Files int   // data files holding the run's rows
	Rows  int64 // rows in those files: exact for replay's tables, which have no delete files
	Bytes int64 // size of those files on storage (compressed)
}

// RunSize plans a scan of one run of the named table and sums its data
// files' record counts and sizes. Every table replay writes is partitioned by
// run_id, so the files hold that run's rows only.
func (s *Iceberg) RunSize(ctx context.Context, tableName, runID string) (RunSize, error) {
	tbl, full, err := s.loadReadTable(ctx, tableName)
	if err != nil {
		return RunSize{}, err
	}
	scan := tbl.Scan(table.WithRowFilter(iceberg.EqualTo(iceberg.Reference("run_id"), runID)))
	defer scan.Close()
	tasks, err := scan.PlanFiles(ctx)
	if err != nil {
		return RunSize{}, fmt.Errorf("plan a scan of run %q of %s: %w", runID, full, err)
	}
	out := RunSize{Files: len(tasks)}
	for _, t := range tasks {
		out.Rows += t.File.Count()
		out.Bytes += t.File.FileSizeBytes()
	}

	return out, nil
}

// runScan plans a scan of one run of the named table (replay's or a
// comparison table) with the given columns (all when none). The caller
// closes the scan.
func (s *Iceberg) runScan(ctx context.Context, tableName, runID string, columns []string, opts ...table.ScanOption) (*table.Scan, string, error) {
	tbl, full, err := s.loadReadTable(ctx, tableName)
	if err != nil {
		return nil, "", err
	}
	opts = append([]table.ScanOption{
		table.WithRowFilter(iceberg.EqualTo(iceberg.Reference("run_id"), runID)),
		table.WithSelectedFields(columns...),
	}, opts...)

	return tbl.Scan(opts...), full, nil
}

// QualifiedName returns the named table with its namespace: replay.comparison_summary.
func (s *Iceberg) QualifiedName(tableName string) string {
	return strings.Join(append(slices.Clone(s.ns), tableName), ".")
}

// loadReadTable loads one of replay's tables or a comparison table. A
// comparison table that does not exist yet is an error wrapping
// catalog.ErrNoSuchTable.
func (s *Iceberg) loadReadTable(ctx context.Context, name string) (*table.Table, string, error) {
	if _, ok := s.byName[name]; ok {
		tbl, err := s.loadTable(ctx, name)

		return tbl, s.QualifiedName(name), err
	}
	if !schemas.IsComparisonTable(name) {
		names := append(schemas.TableNames(), schemas.ComparisonTableNames()...)

		return nil, "", fmt.Errorf("unknown table %q; use one of %s", name, strings.Join(names, ", "))
	}
	cat, err := s.catalog()
	if err != nil {
		return nil, "", fmt.Errorf("load table %s: %w", s.QualifiedName(name), err)
	}
	ident := append(slices.Clone(s.ns), name)
	tbl, err := cat.LoadTable(ctx, ident)
	if err != nil {
		return nil, "", fmt.Errorf("load table %s: %w", s.QualifiedName(name), err)
	}

	return tbl, s.QualifiedName(name), nil
}

// catalog returns the open catalog, or an error once the sink is closed.
func (s *Iceberg) catalog() (catalog.Catalog, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cat == nil {
		return nil, errors.New("the iceberg sink is closed")
	}

	return s.cat, nil
}

// Commit is one snapshot of one of replay's tables as the sink sees it: who
// wrote it and what it records for a consumer group.
type Commit struct {
	SnapshotID int64
	// Writer is the replay.writer of the process that committed it.
	Writer string
	// Owners are the partitions it claims for its writer (replay.owner.*).
	Owners []schemas.TopicPartition
	// Offsets are the next offsets it records (replay.offset.*).
	Offsets schemas.Offsets
	// AddedRows is the rows it appended (0 for a claim or an empty commit).
	AddedRows int64
}

// History returns the commits of the named table for the consumer group,
// oldest first, following the main branch back from its current snapshot
// (snapshots already expired are not there). It reads the catalog afresh.
// Tests use it to check who committed what; an operator can too.
func (s *Iceberg) History(ctx context.Context, tableName, group string) ([]Commit, error) {
	tbl, err := s.loadTable(ctx, tableName)
	if err != nil {
		return nil, err
	}
	meta := tbl.Metadata()
	var out []Commit
	for snap := meta.CurrentSnapshot(); snap != nil; {
		if snap.Summary != nil && snap.Summary.Properties[PropGroup] == group {
			c := Commit{SnapshotID: snap.SnapshotID, Writer: snap.Summary.Properties[PropWriter], Offsets: schemas.Offsets{}}
			for k, v := range snap.Summary.Properties {
				if tp, offset, ok := parseOffsetProp(k, v); ok {
					c.Offsets[tp] = offset
				} else if tp, ok := parsePartitionProp(k, PropOwnerPrefix); ok {
					c.Owners = append(c.Owners, tp)
				}
			}
			slices.SortFunc(c.Owners, compareTP)
			c.AddedRows, _ = strconv.ParseInt(snap.Summary.Properties["added-records"], 10, 64)
			out = append(out, c)
		}
		if snap.ParentSnapshotID == nil {
			break
		}
		snap = meta.SnapshotByID(*snap.ParentSnapshotID)
	}
	slices.Reverse(out)

	return out, nil
}
