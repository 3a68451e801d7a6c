package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"

	"github.com/replaykit/replay/schemas"
)

// Snapshot summary properties written on every commit.
const (
	// PropGroup is the consumer group whose offsets the snapshot records.
	PropGroup = "replay.group"
	// PropRunID is the run ID of the rows committed; several are joined
	// with commas, sorted.
	PropRunID = "replay.run-id"
	// PropOffsetPrefix starts one property per partition the commit covers:
	// replay.offset.<topic>.<partition> = next offset to read. Topic names
	// may contain dots; the partition is what follows the last one.
	PropOffsetPrefix = "replay.offset."
	// PropCommitID identifies one commit attempt, so a retry after a commit
	// whose outcome is unknown can tell whether it landed.
	PropCommitID = "replay.commit-id"
)

// Compile-time check that *Iceberg is a pipeline.Sink. The interface is
// spelled out because sinks must not import pipeline.
var _ interface {
	Add(r *schemas.Result) error
	Buffered() (rows int, bytes int64)
	Flush(ctx context.Context) (schemas.Offsets, error)
} = (*Iceberg)(nil)

// Option adjusts OpenIceberg.
type Option func(*options)

type options struct {
	mem memory.Allocator
}

// WithAllocator makes the sink allocate Arrow memory (row builders, records,
// scans, writes) from mem instead of memory.DefaultAllocator. Tests pass a
// memory.CheckedAllocator to prove every buffer is released.
func WithAllocator(mem memory.Allocator) Option {
	return func(o *options) { o.mem = mem }
}

// Iceberg writes results into replay's Iceberg tables. Add, Buffered, Flush
// and Close are called from one goroutine (the pipeline's); CommittedOffsets,
// ScanRun, CountRows and TableLocation only read the catalog and may be
// called from any goroutine.
type Iceberg struct {
	cfg    IcebergConfig
	logger *slog.Logger
	mem    memory.Allocator
	cat    catalog.Catalog
	ns     table.Identifier
	tables []*tableBuffer // in schemas.TableNames order
	byName map[string]*tableBuffer

	// next is, per partition, the offset after the last result added.
	next schemas.Offsets
	// covered are the partitions with results added since the last
	// successful flush.
	covered map[schemas.TopicPartition]struct{}
}

// tableBuffer is one table's handle and the rows waiting for it.
type tableBuffer struct {
	name     string
	ident    table.Identifier
	location string
	tbl      *table.Table // refreshed by each commit

	builder interface {
		Len() int
		Bytes() int64
		NewRecord() arrow.RecordBatch
		Release()
	}
	runIDs map[string]struct{} // of the rows in builder

	// pending are records built for a commit that has not succeeded yet.
	pending []pendingBatch
	// unsure is set after a failed commit: its ID and how many of pending
	// it carried. The next flush checks whether it landed after all.
	unsure *unsureCommit
}

type pendingBatch struct {
	rec    arrow.RecordBatch
	bytes  int64
	runIDs map[string]struct{}
}

type unsureCommit struct {
	id      string
	batches int
}

// OpenIceberg loads the configured catalog and makes sure the namespace and
// the three tables exist, creating them with their partition spec, sort
// order, identifier fields and compression if missing. Opening an existing
// warehouse again changes nothing, except the compression property when the
// configuration changed it. A table whose schema does not match this
// version's is an error.
func OpenIceberg(ctx context.Context, cfg IcebergConfig, logger *slog.Logger, opts ...Option) (*Iceberg, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("invalid sink configuration: %w", errors.Join(errs...))
	}
	o := options{mem: memory.DefaultAllocator}
	for _, opt := range opts {
		opt(&o)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	start := time.Now()
	cat, warehouse, err := loadCatalog(ctx, cfg.Catalog)
	if err != nil {
		return nil, err
	}
	s := &Iceberg{
		cfg:     cfg,
		logger:  logger,
		mem:     o.mem,
		cat:     cat,
		ns:      catalog.ToIdentifier(cfg.Namespace),
		byName:  map[string]*tableBuffer{},
		next:    schemas.Offsets{},
		covered: map[schemas.TopicPartition]struct{}{},
	}
	if err := s.open(ctx); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	logger.Info("iceberg sink open", "catalog", cfg.Catalog.Type, "uri", cfg.Catalog.URI,
		"warehouse", warehouse, "namespace", cfg.Namespace, "duration", time.Since(start))

	return s, nil
}

func (s *Iceberg) open(ctx context.Context) error {
	if err := ensureNamespace(ctx, s.cat, s.ns); err != nil {
		return fmt.Errorf("create namespace %q: %w; check %snamespace and the catalog's permissions", s.cfg.Namespace, err, configPath)
	}
	for _, name := range schemas.TableNames() {
		tb := &tableBuffer{name: name, ident: append(slices.Clone(s.ns), name), runIDs: map[string]struct{}{}}
		tbl, err := s.ensureTable(ctx, tb.ident)
		if err != nil {
			return err
		}
		tb.tbl, tb.location = tbl, tbl.Location()
		switch name {
		case schemas.TableProduction:
			tb.builder = schemas.NewProductionBuilder(s.mem)
		case schemas.TableReplay:
			tb.builder = schemas.NewReplayBuilder(s.mem)
		case schemas.TableDeadLetters:
			tb.builder = schemas.NewDeadLetterBuilder(s.mem)
		}
		s.tables = append(s.tables, tb)
		s.byName[name] = tb
	}

	return nil
}

// ensureTable loads the table, creating it if missing, and checks its schema.
func (s *Iceberg) ensureTable(ctx context.Context, ident table.Identifier) (*table.Table, error) {
	name := catalog.TableNameFromIdent(ident)
	full := strings.Join(ident, ".")
	tbl, err := s.cat.LoadTable(ctx, ident)
	if errors.Is(err, catalog.ErrNoSuchTable) {
		tbl, err = s.cat.CreateTable(ctx, ident, schemas.IcebergSchema(name),
			catalog.WithPartitionSpec(schemas.PartitionSpec(name)),
			catalog.WithSortOrder(schemas.SortOrder(name)),
			catalog.WithProperties(iceberg.Properties{table.ParquetCompressionKey: s.cfg.Compression}),
		)
		if errors.Is(err, catalog.ErrTableAlreadyExists) { // created concurrently
			tbl, err = s.cat.LoadTable(ctx, ident)
		} else if err == nil {
			s.logger.Info("created table", "table", full, "location", tbl.Location())
		}
	}
	if err != nil {
		return nil, fmt.Errorf("load or create table %s: %w; check %scatalog and %snamespace", full, err, configPath, configPath)
	}
	if err := checkSchema(tbl.Schema(), schemas.IcebergSchema(name)); err != nil {
		return nil, fmt.Errorf("table %s at %s: %w; it was not created by a compatible replay, use another namespace", full, tbl.Location(), err)
	}
	if got := tbl.Properties().Get(table.ParquetCompressionKey, table.ParquetCompressionDefault); got != s.cfg.Compression {
		txn := tbl.NewTransaction()
		if err := txn.SetProperties(iceberg.Properties{table.ParquetCompressionKey: s.cfg.Compression}); err != nil {
			return nil, fmt.Errorf("set compression of %s to %s: %w", full, s.cfg.Compression, err)
		}
		if tbl, err = txn.Commit(ctx); err != nil {
			return nil, fmt.Errorf("set compression of %s to %s: %w", full, s.cfg.Compression, err)
		}
		s.logger.Info("changed table compression", "table", full, "from", got, "to", s.cfg.Compression)
	}

	return tbl, nil
}

// checkSchema reports a column of want that have is missing or has with
// another name, type or requiredness. Extra columns in have are fine.
func checkSchema(have, want *iceberg.Schema) error {
	for _, w := range want.Fields() {
		h, ok := have.FindFieldByID(w.ID)
		switch {
		case !ok:
			return fmt.Errorf("column %s (id %d) is missing", w.Name, w.ID)
		case h.Name != w.Name || !h.Type.Equals(w.Type) || h.Required != w.Required:
			return fmt.Errorf("column id %d is %s %s (required=%v), want %s %s (required=%v)",
				w.ID, h.Name, h.Type, h.Required, w.Name, w.Type, w.Required)
		}
	}

	return nil
}

// Add buffers the rows of one result and notes its offset. Results of a
// partition must come in offset order; a result at or below an offset
// already added is an error. An invalid row is an error and nothing of the
// result is buffered.
func (s *Iceberg) Add(r *schemas.Result) error {
	if r == nil {
		return errors.New("add result: nil result")
	}
	tp := r.Source.TP()
	if next, ok := s.next[tp]; ok && r.Source.Offset < next {
		return fmt.Errorf("add result %s: out of order, results up to offset %d were already added", r.Source, next-1)
	}
	// Check every row before appending any, so a result is all in or all out.
	if r.Production != nil {
		if err := r.Production.Check(); err != nil {
			return fmt.Errorf("add result %s: %w", r.Source, err)
		}
	}
	if r.Replay != nil {
		if err := r.Replay.Check(); err != nil {
			return fmt.Errorf("add result %s: %w", r.Source, err)
		}
	}
	if r.DeadLetter != nil {
		if err := r.DeadLetter.Check(); err != nil {
			return fmt.Errorf("add result %s: %w", r.Source, err)
		}
	}

	// Append cannot fail once Check passed.
	if r.Production != nil {
		tb := s.byName[schemas.TableProduction]
		_ = tb.builder.(*schemas.ProductionBuilder).Append(r.Production)
		tb.runIDs[r.Production.RunID] = struct{}{}
	}
	if r.Replay != nil {
		tb := s.byName[schemas.TableReplay]
		_ = tb.builder.(*schemas.ReplayBuilder).Append(r.Replay)
		tb.runIDs[r.Replay.RunID] = struct{}{}
	}
	if r.DeadLetter != nil {
		tb := s.byName[schemas.TableDeadLetters]
		_ = tb.builder.(*schemas.DeadLetterBuilder).Append(r.DeadLetter)
		tb.runIDs[r.DeadLetter.RunID] = struct{}{}
	}
	s.next[tp] = r.Source.Offset + 1
	s.covered[tp] = struct{}{}

	return nil
}

// Buffered reports the rows and approximate bytes not yet committed,
// including those kept from a failed flush.
func (s *Iceberg) Buffered() (rows int, bytes int64) {
	for _, tb := range s.tables {
		r, b := tb.buffered()
		rows += r
		bytes += b
	}

	return rows, bytes
}

func (tb *tableBuffer) buffered() (rows int, bytes int64) {
	rows, bytes = tb.builder.Len(), tb.builder.Bytes()
	for _, p := range tb.pending {
		rows += int(p.rec.NumRows())
		bytes += p.bytes
	}

	return rows, bytes
}

// Flush commits the buffered rows: one Iceberg append (one snapshot) per
// table that has rows, each recording in its snapshot summary the consumer
// group, the run IDs and the next offset of every partition the flush
// covers. Tables without rows get no commit. It returns those offsets, or
// empty offsets when nothing was added since the last flush.
//
// A failed flush loses nothing: rows whose commit failed stay buffered and
// go out with the next Flush, whose offsets then cover them too. Tables that
// committed are not committed twice. When a commit failed in a way that
// leaves its outcome unknown (the catalog may have applied it), the next
// Flush finds it by its replay.commit-id and does not write its rows again.
func (s *Iceberg) Flush(ctx context.Context) (schemas.Offsets, error) {
	if len(s.covered) == 0 {
		if rows, _ := s.Buffered(); rows == 0 {
			return schemas.Offsets{}, nil
		}
	}
	start := time.Now()
	ctx = compute.WithAllocator(ctx, s.mem)
	offsets := make(schemas.Offsets, len(s.covered))
	for tp := range s.covered {
		offsets[tp] = s.next[tp]
	}

	var errs []error
	attrs := []any{"partitions", len(offsets)}
	for _, tb := range s.tables {
		n, err := s.commit(ctx, tb, offsets)
		if err != nil {
			errs = append(errs, err)
		}
		attrs = append(attrs, tb.name, n)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	clear(s.covered)
	s.logger.Info("flushed", append(attrs, "duration", time.Since(start))...)

	return offsets, nil
}

// commit appends the table's buffered rows in one snapshot and returns the
// rows committed.
func (s *Iceberg) commit(ctx context.Context, tb *tableBuffer, offsets schemas.Offsets) (int64, error) {
	full := strings.Join(tb.ident, ".")
	if tb.unsure != nil {
		if err := s.resolveUnsure(ctx, tb); err != nil {
			return 0, fmt.Errorf("check the previous commit to %s: %w", full, err)
		}
	}
	if tb.builder.Len() > 0 {
		tb.pending = append(tb.pending, pendingBatch{bytes: tb.builder.Bytes(), rec: tb.builder.NewRecord(), runIDs: tb.runIDs})
		tb.runIDs = map[string]struct{}{}
	}
	if len(tb.pending) == 0 {
		return 0, nil
	}

	start := time.Now()
	recs := make([]arrow.RecordBatch, len(tb.pending))
	runIDs := map[string]struct{}{}
	var rows int64
	for i, p := range tb.pending {
		recs[i] = p.rec
		rows += p.rec.NumRows()
		maps.Copy(runIDs, p.runIDs)
	}
	commitID := uuid.NewString()
	props := iceberg.Properties{
		PropGroup:    s.cfg.Group,
		PropRunID:    strings.Join(slices.Sorted(maps.Keys(runIDs)), ","),
		PropCommitID: commitID,
	}
	for tp, next := range offsets {
		props[offsetProp(tp)] = strconv.FormatInt(next, 10)
	}

	tbl, err := appendRecords(ctx, tb.tbl, recs, props)
	if err != nil {
		tb.unsure = &unsureCommit{id: commitID, batches: len(tb.pending)}

		return 0, fmt.Errorf("append %d rows to %s: %w", rows, full, err)
	}
	tb.tbl = tbl
	tb.releasePending(len(tb.pending))
	var snapshotID int64
	if snap := tbl.CurrentSnapshot(); snap != nil {
		snapshotID = snap.SnapshotID
	}
	s.logger.Debug("committed", "table", full, "rows", rows, "snapshot_id", snapshotID, "duration", time.Since(start))

	return rows, nil
}

func appendRecords(ctx context.Context, tbl *table.Table, recs []arrow.RecordBatch, props iceberg.Properties) (*table.Table, error) {
	rdr, err := array.NewRecordReader(recs[0].Schema(), recs)
	if err != nil {
		return nil, err
	}
	defer rdr.Release()
	txn := tbl.NewTransaction()
	if err := txn.Append(ctx, rdr, props); err != nil {
		return nil, err
	}

	return txn.Commit(ctx)
}

// resolveUnsure reloads the table after a failed commit and drops the
// batches that commit carried if it landed after all.
func (s *Iceberg) resolveUnsure(ctx context.Context, tb *tableBuffer) error {
	tbl, err := s.cat.LoadTable(ctx, tb.ident)
	if err != nil {
		return err
	}
	tb.tbl = tbl
	landed := slices.ContainsFunc(tbl.Metadata().Snapshots(), func(snap table.Snapshot) bool {
		return snap.Summary != nil && snap.Summary.Properties[PropCommitID] == tb.unsure.id
	})
	if landed {
		s.logger.Warn("a commit reported as failed had landed; not writing its rows again",
			"table", strings.Join(tb.ident, "."), "commit_id", tb.unsure.id)
		tb.releasePending(tb.unsure.batches)
	}
	tb.unsure = nil

	return nil
}

func (tb *tableBuffer) releasePending(n int) {
	for _, p := range tb.pending[:n] {
		p.rec.Release()
	}
	tb.pending = slices.Delete(tb.pending, 0, n)
}

func offsetProp(tp schemas.TopicPartition) string {
	return PropOffsetPrefix + tp.Topic + "." + strconv.Itoa(int(tp.Partition))
}

// parseOffsetProp reverses offsetProp.
func parseOffsetProp(key, value string) (schemas.TopicPartition, int64, bool) {
	rest, ok := strings.CutPrefix(key, PropOffsetPrefix)
	if !ok {
		return schemas.TopicPartition{}, 0, false
	}
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 {
		return schemas.TopicPartition{}, 0, false
	}
	partition, err := strconv.ParseInt(rest[i+1:], 10, 32)
	if err != nil {
		return schemas.TopicPartition{}, 0, false
	}
	offset, err := strconv.ParseInt(value, 10, 64)
	if err != nil {
		return schemas.TopicPartition{}, 0, false
	}

	return schemas.TopicPartition{Topic: rest[:i], Partition: int32(partition)}, offset, true
}

// CommittedOffsets returns the offsets the named table has recorded for the
// consumer group: walking back from the current snapshot, the first value
// found for each partition. Partitions the group never committed to this
// table are absent. It reads the catalog afresh, so it sees other replicas'
// commits.
func (s *Iceberg) CommittedOffsets(ctx context.Context, tableName string, group string) (schemas.Offsets, error) {
	tbl, err := s.loadTable(ctx, tableName)
	if err != nil {
		return nil, err
	}
	out := schemas.Offsets{}
	meta := tbl.Metadata()
	for snap := meta.CurrentSnapshot(); snap != nil; {
		if snap.Summary != nil && snap.Summary.Properties[PropGroup] == group {
			for k, v := range snap.Summary.Properties {
				tp, offset, ok := parseOffsetProp(k, v)
				if _, seen := out[tp]; ok && !seen {
					out[tp] = offset
				}
			}
		}
		if snap.ParentSnapshotID == nil {
			break
		}
		snap = meta.SnapshotByID(*snap.ParentSnapshotID) // nil once expired
	}

	return out, nil
}

// ScanRun reads the rows of one run from the named table, with the given
// columns (all when none). The caller releases the table.
func (s *Iceberg) ScanRun(ctx context.Context, tableName, runID string, columns ...string) (arrow.Table, error) {
	tbl, err := s.loadTable(ctx, tableName)
	if err != nil {
		return nil, err
	}
	scan := tbl.Scan(
		table.WithRowFilter(iceberg.EqualTo(iceberg.Reference("run_id"), runID)),
		table.WithSelectedFields(columns...),
	)
	out, err := scan.ToArrowTable(compute.WithAllocator(ctx, s.mem))
	if err != nil {
		return nil, fmt.Errorf("scan run %q of %s: %w", runID, strings.Join(tbl.Identifier(), "."), err)
	}

	return out, nil
}

// CountRows returns the number of rows of one run in the named table. It
// reads only the run_id column.
func (s *Iceberg) CountRows(ctx context.Context, tableName, runID string) (int64, error) {
	tbl, err := s.loadTable(ctx, tableName)
	if err != nil {
		return 0, err
	}
	scan := tbl.Scan(
		table.WithRowFilter(iceberg.EqualTo(iceberg.Reference("run_id"), runID)),
		table.WithSelectedFields("run_id"),
	)
	_, recs, err := scan.ToArrowRecords(compute.WithAllocator(ctx, s.mem))
	if err != nil {
		return 0, fmt.Errorf("count rows of run %q in %s: %w", runID, strings.Join(tbl.Identifier(), "."), err)
	}
	var n int64
	for rec, err := range recs {
		if err != nil {
			return 0, fmt.Errorf("count rows of run %q in %s: %w", runID, strings.Join(tbl.Identifier(), "."), err)
		}
		n += rec.NumRows()
		rec.Release()
	}

	return n, nil
}

// TableLocation returns the storage location of the named table, or "" for
// a name that is not one of replay's tables.
func (s *Iceberg) TableLocation(name string) string {
	if tb, ok := s.byName[name]; ok {
		return tb.location
	}

	return ""
}

func (s *Iceberg) loadTable(ctx context.Context, name string) (*table.Table, error) {
	tb, ok := s.byName[name]
	if !ok {
		return nil, fmt.Errorf("unknown table %q; use one of %s", name, strings.Join(schemas.TableNames(), ", "))
	}
	tbl, err := s.cat.LoadTable(ctx, tb.ident)
	if err != nil {
		return nil, fmt.Errorf("load table %s: %w", strings.Join(tb.ident, "."), err)
	}

	return tbl, nil
}

// Close releases the row builders, any rows not flushed (logged as a
// warning: call Flush first) and the catalog.
func (s *Iceberg) Close() error {
	if rows, _ := s.Buffered(); rows > 0 {
		s.logger.Warn("closing the iceberg sink with rows not flushed; they will be read again from the source", "rows", rows)
	}
	for _, tb := range s.tables {
		tb.releasePending(len(tb.pending))
		tb.builder.Release()
	}
	s.tables, s.byName = nil, map[string]*tableBuffer{}
	if c, ok := s.cat.(catalog.Closer); ok && s.cat != nil {
		if err := c.Close(); err != nil {
			return fmt.Errorf("close catalog: %w", err)
		}
	}
	s.cat = nil

	return nil
}
