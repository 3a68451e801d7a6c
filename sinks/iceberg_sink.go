package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net/url"
	pathpkg "path"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	// with commas, sorted. A snapshot without rows (a claim, an empty
	// append) carries the sink's IcebergConfig.RunID, so every snapshot
	// replay writes names its run; only a sink opened without a run ID
	// (one that reads) leaves it out.
	PropRunID = "replay.run-id"
	// PropOffsetPrefix starts one property per partition the commit covers:
	// replay.offset.<topic>.<partition> = next offset to read. Topic names
	// may contain dots; the partition is what follows the last one.
	PropOffsetPrefix = "replay.offset."
	// PropCommitID identifies one commit attempt, so a retry after a commit
	// whose outcome is unknown can tell whether it landed.
	PropCommitID = "replay.commit-id"
	// PropWriter identifies the process (one sink, opened once) that made
	// the commit.
	PropWriter = "replay.writer"
	// PropOwnerPrefix starts one property per partition the writer owns:
	// replay.owner.<topic>.<partition> = its replay.writer. Resume claims
	// the partitions it is given with an empty snapshot carrying them, and
	// every commit repeats them for the partitions it covers; a commit
	// finding another writer's claim on a partition is fenced out of it.
	PropOwnerPrefix = "replay.owner."
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
	mem      memory.Allocator
	baseline bool
}

// WithAllocator makes the sink allocate Arrow memory (row builders, records,
// scans, writes) from mem instead of memory.DefaultAllocator. Tests pass a
// memory.CheckedAllocator to prove every buffer is released.
func WithAllocator(mem memory.Allocator) Option {
	return func(o *options) { o.mem = mem }
}

// WithBaseline says the pipeline replays every selected record to a
// baseline target too (replay.baseline is set), so a record's replay is
// complete only with its rows in both replay_responses and
// baseline_responses: HoldsReplay then requires both. Without it
// baseline_responses is still created and committed with every flush (it
// stays empty), so its offsets keep pace with the other tables and the
// baseline can be turned on later without a gap.
func WithBaseline() Option {
	return func(o *options) { o.baseline = true }
}

// Iceberg writes results into replay's Iceberg tables, exactly once per
// table across crashes, restarts, rebalances and concurrent writers.
//
// Add, Buffered, Flush and Close are called from one goroutine (the
// pipeline's). Resume, HoldsReplay and Forget may be called from any
// goroutine (Resume from the Kafka client's assignment callback);
// CommittedOffsets, ScanRun, CountRows and TableLocation only read the
// catalog and may be called from any goroutine too. None may be called after
// Close.
//
// How exactly-once works: every flush commits one snapshot to every table,
// even a table that got no rows (an empty append), and each snapshot records
// in its summary the next offset of every partition the flush covers, so the
// tables' offsets advance together. Resume reads them back for newly
// assigned partitions and returns the lowest, where the source restarts; Add
// then drops rows a table already holds (HoldsReplay lets the pipeline skip
// the request altogether). Each table commit is fenced: it re-reads the
// table's offsets, drops buffered rows below them (another writer, or an
// earlier attempt of ours whose outcome was unknown, stored them), and
// requires the table's main branch to be unchanged since that read, retrying
// from the read on any failure.
type Iceberg struct {
	cfg      IcebergConfig
	logger   *slog.Logger
	mem      memory.Allocator
	baseline bool   // WithBaseline
	readOnly bool   // OpenIcebergReadOnly: no tables buffered, Add and Resume refuse
	writer   string // PropWriter of this process's commits
	ns       table.Identifier
	byName   map[string]*tableBuffer // immutable after OpenIceberg
	// runIDOK is the last run ID Add found valid (rows of a run share
	// it), so it is checked once; only Add's goroutine touches it.
	runIDOK string

	mu sync.Mutex
	// cat and tables are set by OpenIceberg and cleared by Close.
	cat    catalog.Catalog
	tables []*tableBuffer // in schemas.TableNames order: the commit order
	// next is, per partition, the offset after the last result added.
	next schemas.Offsets
	// covered are the partitions with results added since the last
	// successful flush.
	covered map[schemas.TopicPartition]struct{}
	// held is, per table, the offsets Resume read for the partitions
	// assigned to this process: rows below them are already in the table.
	held map[string]schemas.Offsets
	// claimed are the partitions Resume claimed for this writer and no
	// fence or Forget took back: commits record this writer as their owner.
	claimed map[schemas.TopicPartition]struct{}

	health commitHealth // failed commits, for readiness (iceberg_health.go)
}

// tableBuffer is one table's identity and the rows waiting for it. Only the
// pipeline's goroutine touches the buffers (builder, runIDs, pending,
// skipped).
type tableBuffer struct {
	name     string
	ident    table.Identifier
	full     string // ident joined with dots, for messages
	location string

	builder interface {
		Len() int
		Bytes() int64
		NewRecord() arrow.RecordBatch
		Release()
	}
	runIDs map[string]struct{} // of the rows in builder

	// pending are records built for a commit that has not succeeded yet.
	pending []pendingBatch
	// written are the data files of pending, once an attempt wrote them;
	// later attempts commit them again instead of rewriting the rows, until
	// pending changes.
	written []iceberg.DataFile
	// skipped counts the rows Add dropped since the last successful flush
	// because the table already held them.
	skipped int64
}

type pendingBatch struct {
	rec    arrow.RecordBatch
	bytes  int64
	runIDs map[string]struct{}
}

// OpenIceberg loads the configured catalog and makes sure the namespace and
// the tables of schemas.TableNames exist, creating them with their partition spec, sort
// order, identifier fields and compression if missing. Opening an existing
// warehouse again changes nothing, except the compression property when the
// configuration changed it, and the columns this version added to a table
// an earlier version created (see addColumns). A table whose schema does
// not match this version's otherwise is an error.
func OpenIceberg(ctx context.Context, cfg IcebergConfig, logger *slog.Logger, opts ...Option) (*Iceberg, error) {
	s, o, err := newIceberg(cfg, logger, opts)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	cat, warehouse, err := loadCatalog(ctx, cfg.Catalog, cfg.S3, false)
	if err != nil {
		return nil, err
	}
	s.cat = cat
	if err := s.open(ctx); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	s.logger.Info("iceberg sink open", "writer", s.writer, "catalog", cfg.Catalog.Type, "uri", RedactURI(cfg.Catalog.URI),
		"warehouse", warehouse, "namespace", cfg.Namespace, "baseline", o.baseline, "duration", time.Since(start))

	return s, nil
}

// newIceberg validates cfg, applies opts and returns a sink with no catalog
// yet, for OpenIceberg and OpenIcebergReadOnly.
func newIceberg(cfg IcebergConfig, logger *slog.Logger, opts []Option) (*Iceberg, options, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, options{}, fmt.Errorf("invalid sink configuration: %w", errors.Join(errs...))
	}
	o := options{mem: memory.DefaultAllocator}
	for _, opt := range opts {
		opt(&o)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Iceberg{
		cfg:      cfg,
		logger:   logger,
		mem:      o.mem,
		baseline: o.baseline,
		writer:   uuid.NewString(),
		ns:       catalog.ToIdentifier(cfg.Namespace),
		byName:   map[string]*tableBuffer{},
		next:     schemas.Offsets{},
		covered:  map[schemas.TopicPartition]struct{}{},
		held:     map[string]schemas.Offsets{},
		claimed:  map[schemas.TopicPartition]struct{}{},
	}, o, nil
}

func (s *Iceberg) open(ctx context.Context) error {
	if err := ensureNamespace(ctx, s.cat, s.ns); err != nil {
		return fmt.Errorf("create namespace %q: %w; check %snamespace and the catalog's permissions", s.cfg.Namespace, err, configPath)
	}
	for _, name := range schemas.TableNames() {
		ident := append(slices.Clone(s.ns), name)
		tb := &tableBuffer{name: name, ident: ident, full: strings.Join(ident, "."), runIDs: map[string]struct{}{}}
		tbl, err := s.ensureTable(ctx, tb.ident)
		if err != nil {
			return err
		}
		tb.location = tbl.Location()
		switch name {
		case schemas.TableProduction:
			tb.builder = schemas.NewProductionBuilder(s.mem)
		case schemas.TableReplay:
			tb.builder = schemas.NewReplayBuilder(s.mem)
		case schemas.TableBaseline:
			tb.builder = schemas.NewBaselineBuilder(s.mem)
		case schemas.TableDeadLetters:
			tb.builder = schemas.NewDeadLetterBuilder(s.mem)
		}
		s.tables = append(s.tables, tb)
		s.byName[name] = tb
		s.held[name] = schemas.Offsets{}
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
			catalog.WithProperties(s.cfg.tableProperties(name)),
		)
		if errors.Is(err, catalog.ErrTableAlreadyExists) || isCreateRace(err) { // created concurrently
			tbl, err = s.cat.LoadTable(ctx, ident)
		} else if err == nil {
			s.logger.Info("created table", "table", full, "location", tbl.Location())
		}
	}
	if err != nil {
		return nil, fmt.Errorf("load or create table %s in %s: %w; check %scatalog and %snamespace, or the %s", full, s.describeCatalog(), err, configPath, configPath, describeStorage(s.cfg))
	}
	if tbl, err = s.addColumns(ctx, s.cat, tbl, ident, schemas.IcebergSchema(name)); err != nil {
		return nil, err
	}
	if err := checkSchema(tbl.Schema(), schemas.IcebergSchema(name)); err != nil {
		return nil, fmt.Errorf("table %s at %s: %w; it was not created by a compatible replay, use another namespace", full, tbl.Location(), err)
	}
	return s.setProperties(ctx, tbl, full, s.cfg.tableProperties(name))
}

// setProperties sets on tbl (named full) the properties of want whose
// values it does not have yet, in one commit, and logs what changed.
func (s *Iceberg) setProperties(ctx context.Context, tbl *table.Table, full string, want iceberg.Properties) (*table.Table, error) {
	have := tbl.Properties()
	changed := iceberg.Properties{}
	var attrs []any
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if v, ok := have[k]; !ok || v != want[k] {
			changed[k] = want[k]
			attrs = append(attrs, k, fmt.Sprintf("%s → %s", have.Get(k, "(unset)"), want[k]))
		}
	}
	if len(changed) == 0 {
		return tbl, nil
	}
	txn := tbl.NewTransaction()
	err := txn.SetProperties(changed)
	if err == nil {
		tbl, err = txn.Commit(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("set the Parquet properties of table %s: %w; check %scompression, %scompression_level, %srow_group_bytes and %sdictionary",
			full, err, configPath, configPath, configPath, configPath)
	}
	s.logger.Info("changed table properties", append([]any{"table", full}, attrs...)...)

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

// addColumns evolves the schema of tbl (named ident) to want by adding the
// columns of want it lacks. Versions of replay add columns only at the end
// of a table, optional and with the next free field IDs, so a table an
// earlier version created gets them here, in one schema update, and its
// earlier rows read as null in them. A missing column that is required, or
// whose field ID is not the next the table assigns (something else changed
// the table), is not added: checkSchema reports it. When another process
// added the columns first, the table it committed is used.
func (s *Iceberg) addColumns(ctx context.Context, cat catalog.Catalog, tbl *table.Table, ident table.Identifier, want *iceberg.Schema) (*table.Table, error) {
	have := tbl.Schema()
	next := tbl.Metadata().LastColumnID() + 1
	var names []string
	txn := tbl.NewTransaction()
	update := txn.UpdateSchema(true, false)
	for _, f := range want.Fields() {
		if _, ok := have.FindFieldByID(f.ID); ok {
			continue
		}
		if f.Required || f.ID != next {
			break
		}
		update.AddColumn([]string{f.Name}, f.Type, f.Doc, false, nil)
		names = append(names, f.Name)
		next = iceberg.NewSchema(0, f).HighestFieldID() + 1
	}
	if len(names) == 0 {
		return tbl, nil
	}
	full := strings.Join(ident, ".")
	err := update.Commit()
	var evolved *table.Table
	if err == nil {
		evolved, err = txn.Commit(ctx)
	}
	if err != nil {
		// Another replay process may have added them meanwhile.
		if reloaded, lerr := cat.LoadTable(ctx, ident); lerr == nil && checkSchema(reloaded.Schema(), want) == nil {
			return reloaded, nil
		}
		return nil, fmt.Errorf("add columns %s to table %s: %w; check the catalog's permissions, or add them with another Iceberg client (optional, at the end, in this order)",
			strings.Join(names, ", "), full, err)
	}
	s.logger.Info("added columns to table", "table", full, "columns", strings.Join(names, ","),
		"schema_id", evolved.Schema().ID)

	return evolved, nil
}

// Add buffers the rows of one result and notes its offset. Results of a
// partition must come in offset order; a result at or below an offset
// already added is an error. An invalid row is an error and nothing of the
// result is buffered.
//
// A row for a table that already holds its record (the record's offset is
// below what Resume read from that table for the partition) is dropped and
// counted; the other tables still get theirs. The offset is noted either way,
// so the next flush records it in every table.
func (s *Iceberg) Add(r *schemas.Result) error {
	if r == nil {
		return errors.New("add result: nil result")
	}
	if s.readOnly {
		return fmt.Errorf("add result %s: %w", r.Source, ErrReadOnly)
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
	if r.Baseline != nil {
		if err := r.Baseline.Check(); err != nil {
			return fmt.Errorf("add result %s: %s row: %w", r.Source, schemas.TableBaseline, err)
		}
	}
	if len(r.Copies) > 0 && r.Replay == nil {
		return fmt.Errorf("add result %s: %w: %d amplified copies without the record's replay row", r.Source, schemas.ErrInvalidRow, len(r.Copies))
	}
	for _, c := range r.Copies {
		if err := c.Check(); err != nil {
			return fmt.Errorf("add result %s: amplified copy: %w", r.Source, err)
		}
	}
	if r.DeadLetter != nil {
		if err := r.DeadLetter.Check(); err != nil {
			return fmt.Errorf("add result %s: %w", r.Source, err)
		}
	}

	if err := s.checkRunIDs(r); err != nil {
		return fmt.Errorf("add result %s: %w", r.Source, err)
	}

	tp := r.Source.TP()
	s.mu.Lock()
	defer s.mu.Unlock()
	if next, ok := s.next[tp]; ok && r.Source.Offset < next {
		return fmt.Errorf("add result %s: out of order, results up to offset %d were already added", r.Source, next-1)
	}
	// Append cannot fail once Check passed.
	if r.Production != nil {
		if tb := s.byName[schemas.TableProduction]; !s.heldLocked(tb, r.Source, 1) {
			_ = tb.builder.(*schemas.ProductionBuilder).Append(r.Production)
			tb.runIDs[r.Production.RunID] = struct{}{}
		}
	}
	if r.Replay != nil {
		// The record's copies share its coordinates: they are written,
		// committed and skipped together with its replay row.
		if tb := s.byName[schemas.TableReplay]; !s.heldLocked(tb, r.Source, 1+len(r.Copies)) {
			b := tb.builder.(*schemas.ReplayBuilder)
			for _, row := range append([]*schemas.ReplayRow{r.Replay}, r.Copies...) {
				_ = b.Append(row)
				tb.runIDs[row.RunID] = struct{}{}
			}
		}
	}
	if r.Baseline != nil {
		if tb := s.byName[schemas.TableBaseline]; !s.heldLocked(tb, r.Source, 1) {
			_ = tb.builder.(*schemas.ReplayBuilder).Append(r.Baseline)
			tb.runIDs[r.Baseline.RunID] = struct{}{}
		}
	}
	if r.DeadLetter != nil {
		if tb := s.byName[schemas.TableDeadLetters]; !s.heldLocked(tb, r.Source, 1) {
			_ = tb.builder.(*schemas.DeadLetterBuilder).Append(r.DeadLetter)
			tb.runIDs[r.DeadLetter.RunID] = struct{}{}
		}
	}
	s.next[tp] = r.Source.Offset + 1
	s.covered[tp] = struct{}{}

	return nil
}

// checkRunIDs reports a row of r whose run ID schemas.CheckName refuses: the
// run ID is a partition value, so a directory of the warehouse, and a
// snapshot property. config.Validate refuses such a run_id before a run
// starts; this is the same wall where rows enter the sink.
func (s *Iceberg) checkRunIDs(r *schemas.Result) error {
	rows := []struct{ table, runID string }{}
	if r.Production != nil {
		rows = append(rows, struct{ table, runID string }{schemas.TableProduction, r.Production.RunID})
	}
	if r.Replay != nil {
		rows = append(rows, struct{ table, runID string }{schemas.TableReplay, r.Replay.RunID})
	}
	for _, c := range r.Copies {
		rows = append(rows, struct{ table, runID string }{schemas.TableReplay, c.RunID})
	}
	if r.Baseline != nil {
		rows = append(rows, struct{ table, runID string }{schemas.TableBaseline, r.Baseline.RunID})
	}
	if r.DeadLetter != nil {
		rows = append(rows, struct{ table, runID string }{schemas.TableDeadLetters, r.DeadLetter.RunID})
	}
	for _, row := range rows {
		if row.runID == s.runIDOK {
			continue
		}
		if err := schemas.CheckName(row.runID); err != nil {
			return fmt.Errorf("%w for %s: run_id: %w", schemas.ErrInvalidRow, row.table, err)
		}
		s.runIDOK = row.runID
	}

	return nil
}

// heldLocked reports whether tb already holds the rows of the record at c,
// counting them (rows) as skipped when it does. s.mu is held.
func (s *Iceberg) heldLocked(tb *tableBuffer, c schemas.Coordinates, rows int) bool {
	if s.holdsLocked(tb.name, c) {
		tb.skipped += int64(rows)

		return true
	}

	return false
}

// holdsLocked reports whether the named table held the row of the record at
// c as of the last Resume of its partition. s.mu is held.
func (s *Iceberg) holdsLocked(table string, c schemas.Coordinates) bool {
	held, ok := s.held[table][c.TP()]

	return ok && c.Offset < held
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

// commitStats is what one table's commit in a flush did.
type commitStats struct {
	rows       int64 // rows written
	duplicates int64 // buffered rows dropped because the table already held them
	attempts   int
	snapshotID int64 // 0 when no commit was needed
	// fenced are the partitions of the flush another writer has claimed
	// since this one did: their rows were dropped, their offsets not
	// recorded.
	fenced map[schemas.TopicPartition]string // partition -> the owner's writer ID
	// duration is the time the table's commit took, retries included.
	duration time.Duration
	// conflicts are the attempts lost to a concurrent commit.
	conflicts int
}

// Flush commits what was added since the last successful flush: one
// snapshot per table, in the order production_responses, replay_responses,
// baseline_responses, dead_letters, each recording in its summary the consumer group, the run
// IDs of its rows, a commit ID and, per partition the flush covers, the next
// offset to read. A table that got no rows gets an empty snapshot with the
// same summary, so the offsets of every table advance together (a table
// is skipped only when it already records at least these offsets and has
// nothing to write). It returns the offsets, or empty offsets when nothing
// was added since the last flush.
//
// Each table's commit is fenced and retried by the sink itself, up to
// sink.commit_retry.attempts with exponential backoff and jitter:
//
//  1. reload the table from the catalog;
//  2. read the offsets the table records for the group (walking back from
//     its current snapshot) for the partitions of the flush;
//  3. read who owns those partitions (replay.owner.*): a partition another
//     writer claimed since this one did (it was moved to another replica
//     while this one was paused or cut off: a zombie) is fenced, its
//     buffered rows dropped and its offset left out;
//  4. drop buffered rows below the offsets: another writer (a replica that
//     took the partition over) or an earlier attempt of ours that was
//     applied though it reported an error already stored them;
//  5. write the rest as data files, once: a retry commits the files an
//     earlier attempt wrote, unless steps 3 or 4 dropped rows since; the
//     files must hold exactly the rows and lie under the table's location
//     (a run ID that escaped it makes iceberg-go write none), or the flush
//     fails with ErrRowsNotStored, not retried, before anything is
//     committed;
//  6. append them, recording per partition the larger of the flush's offset
//     and the table's, and this writer as its owner, with the requirement
//     that the table's main branch still points at the snapshot read in
//     step 1, so nothing (another commit, a claim) landed in between;
//  7. read the committed snapshot back: its added-records must be the rows
//     of step 5 (else ErrRowsNotStored);
//  8. on any other error, back off and go back to step 1. A previous
//     attempt found in the history by its replay.commit-id counts as done.
//
// The offsets returned leave out fenced partitions, whose state this sink
// forgets (like Forget): their new owner commits them.
//
// iceberg-go's own commit retry (table property commit.retry.num-retries) is
// left at its default of 0: its refresh-and-replay would rebase our append
// onto a snapshot whose offsets we never read, and the SQL catalog reports a
// requirement that failed on a stale read as a plain error rather than
// table.ErrCommitFailed, so it would not retry that case anyway. Even if a
// table sets it, the pinned branch requirement makes iceberg-go fail fast
// instead of rebasing.
//
// A failed flush loses nothing: rows whose commit failed stay buffered and go
// out with the next Flush, whose offsets then cover them too; tables that
// committed commit again next time, fenced like any other commit.
func (s *Iceberg) Flush(ctx context.Context) (schemas.Offsets, error) {
	s.mu.Lock()
	offsets := make(schemas.Offsets, len(s.covered))
	for tp := range s.covered {
		offsets[tp] = s.next[tp]
	}
	cat := s.cat
	s.mu.Unlock()
	if len(offsets) == 0 {
		if rows, _ := s.Buffered(); rows == 0 {
			return schemas.Offsets{}, nil
		}
	}
	if cat == nil {
		return nil, errors.New("flush: the iceberg sink is closed")
	}

	start := time.Now()
	ctx = compute.WithAllocator(ctx, s.mem)
	attrs := []any{"partitions", len(offsets)}
	var skipped []any
	fenced := map[schemas.TopicPartition]string{}
	for _, tb := range s.tables {
		st, err := s.commitTable(ctx, cat, tb, offsets)
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, slog.Group(tb.name, "rows", st.rows, "duplicates", st.duplicates+tb.skipped,
			"attempts", st.attempts, "conflicts", st.conflicts, "snapshot_id", st.snapshotID, "duration", st.duration))
		if tb.skipped > 0 {
			skipped = append(skipped, tb.name, tb.skipped)
		}
		maps.Copy(fenced, st.fenced)
	}
	for _, tb := range s.tables {
		tb.skipped = 0
	}
	s.mu.Lock()
	for tp := range offsets {
		delete(s.covered, tp)
	}
	for tp := range fenced {
		delete(offsets, tp)
		delete(s.next, tp)
		delete(s.claimed, tp)
		for _, held := range s.held {
			delete(held, tp)
		}
	}
	s.mu.Unlock()
	if len(skipped) > 0 {
		s.logger.Info("skipped rows the tables already held after a resume", skipped...)
	}
	if len(fenced) > 0 {
		s.logger.Warn("fenced: partitions claimed by another replica since this one resumed them; their rows were dropped, the new owner writes them",
			"owners", formatOwners(fenced))
	}
	s.logger.Info("flushed", append(attrs, "offsets", formatOffsets(offsets), "duration", time.Since(start))...)

	return offsets, nil
}

// attempt is what a failed commit attempt leaves for the next: the ID it
// wrote and the snapshot it required, to find it if it was applied anyway.
type attempt struct {
	commitID string
	base     int64 // snapshot ID required on main; 0 when the table had none
	rows     int64
}

// commitTable commits tb's buffered rows and offsets in one snapshot,
// retrying as Flush describes.
func (s *Iceberg) commitTable(ctx context.Context, cat catalog.Catalog, tb *tableBuffer, offsets schemas.Offsets) (commitStats, error) {
	if tb.builder.Len() > 0 {
		tb.pending = append(tb.pending, pendingBatch{bytes: tb.builder.Bytes(), rec: tb.builder.NewRecord(), runIDs: tb.runIDs})
		tb.runIDs = map[string]struct{}{}
		tb.written = nil // files of a failed flush lack these rows
	}
	retry := s.cfg.CommitRetry
	var (
		st    commitStats
		prev  *attempt
		start = time.Now()
	)
	var conflicts int
	for n := 1; ; n++ {
		st.attempts = n
		failed, err := s.commitOnce(ctx, cat, tb, offsets, prev, &st)
		if err == nil {
			s.health.succeeded()
			st.conflicts = conflicts
			st.duration = time.Since(start)
			return st, nil
		}
		if cause := context.Cause(ctx); cause != nil {
			if errors.Is(err, cause) {
				return st, fmt.Errorf("commit to table %s stopped after %d attempts: %w", tb.full, n, err)
			}

			return st, fmt.Errorf("commit to table %s stopped after %d attempts: %w; last error: %w", tb.full, n, cause, err)
		}
		if errors.Is(err, ErrRowsNotStored) {
			return st, fmt.Errorf("commit to table %s: %w", tb.full, err)
		}
		conflict := isConflict(err)
		if conflict {
			conflicts++
		}
		if n-conflicts >= retry.Attempts || conflicts >= maxConflicts(retry) {
			return st, fmt.Errorf("commit to table %s gave up after %d attempts (%d lost to concurrent commits); last error: %w; check the catalog, or raise %scommit_retry",
				tb.full, n, conflicts, err, configPath)
		}
		if failed != nil {
			prev = failed
		}
		wait := retryWait(retry, n, conflict, conflicts)
		if conflict {
			s.logger.Debug("commit lost to a concurrent commit; retrying", "table", tb.full, "attempt", n, "backoff", wait, "err", err)
		} else {
			s.health.failed(tb.full, n, err)
			s.logger.Warn("commit failed; retrying", "table", tb.full, "attempt", n, "backoff", wait, "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()

			return st, fmt.Errorf("commit to table %s stopped after %d attempts: %w; last error: %w", tb.full, n, context.Cause(ctx), err)
		case <-t.C:
		}
	}
}

// isConflict reports whether a commit failed because another commit landed
// on the table since it was read (the branch requirement failed, or the
// catalog's compare-and-swap did), rather than for a reason of its own.
// iceberg-go's catalogs wrap table.ErrCommitFailed for the swap; the SQL
// catalog reports the requirement check ("…has changed…") as a plain error.
func isConflict(err error) bool {
	return errors.Is(err, table.ErrCommitFailed) || strings.Contains(err.Error(), "has changed: expected")
}

// maxConflicts bounds the commits a flush may lose to concurrent ones: ten
// times commit_retry.attempts. Every lost race is another writer's progress,
// so they do not count against the attempts, but a bound keeps a writer that
// never wins from retrying forever.
func maxConflicts(cfg CommitRetryConfig) int { return 10 * cfg.Attempts }

// retryWait is the wait before the next attempt. After a failure it is
// backoff(n-conflicts). After a lost race it grows with the run of races
// lost, with full jitter (from a quarter of MinBackoff up), so that writers
// contending for one table spread out instead of colliding again in step.
func retryWait(cfg CommitRetryConfig, n int, conflict bool, conflicts int) time.Duration {
	if !conflict {
		return backoff(cfg, max(1, n-conflicts))
	}
	d := cfg.MaxBackoff
	if conflicts-1 < 32 {
		d = min(cfg.MinBackoff<<(conflicts-1), cfg.MaxBackoff)
	}
	if d <= 0 {
		d = cfg.MaxBackoff
	}
	lo := cfg.MinBackoff / 4

	return lo + rand.N(max(d-lo, 0)+1)
}

// backoff returns the wait after the n-th failed attempt: MinBackoff·2^(n-1)
// capped at MaxBackoff, of which a random half is jitter.
func backoff(cfg CommitRetryConfig, n int) time.Duration {
	d := cfg.MaxBackoff
	if n-1 < 32 {
		d = min(cfg.MinBackoff<<(n-1), cfg.MaxBackoff)
	}
	if d <= 0 { // overflow
		d = cfg.MaxBackoff
	}
	half := d / 2

	return half + rand.N(d-half+1)
}

// commitOnce makes one fenced commit attempt (steps 1 to 4 of Flush). On
// failure it returns the attempt when a commit reached the catalog, so the
// next attempt can look for it.
func (s *Iceberg) commitOnce(ctx context.Context, cat catalog.Catalog, tb *tableBuffer, offsets schemas.Offsets,
	prev *attempt, st *commitStats,
) (*attempt, error) {
	tbl, err := cat.LoadTable(ctx, tb.ident)
	if err != nil {
		return nil, fmt.Errorf("load table: %w", err)
	}
	meta := tbl.Metadata()
	var base int64
	if head := meta.CurrentSnapshot(); head != nil {
		base = head.SnapshotID
	}

	if prev != nil {
		if snap := findCommit(meta, prev.commitID, prev.base); snap != nil {
			if added, err := summaryCount(snap.Summary.Properties, "added-records"); err != nil || added != prev.rows {
				return nil, fmt.Errorf("%w: snapshot %d (commit %s, reported as failed but applied) of table at %s: added-records %q, expected %d; its summary records offsets for rows the table lacks: do not resume this run, replay it again under a new run_id",
					ErrRowsNotStored, snap.SnapshotID, prev.commitID, tbl.Location(), snap.Summary.Properties["added-records"], prev.rows)
			}
			s.logger.Warn("a commit reported as failed had been applied; not writing its rows again",
				"table", tb.full, "commit_id", prev.commitID, "snapshot_id", snap.SnapshotID)
			tb.releasePending()
			st.rows, st.snapshotID = prev.rows, snap.SnapshotID

			return nil, nil
		}
	}

	want := make(map[schemas.TopicPartition]struct{}, len(offsets))
	for tp := range offsets {
		want[tp] = struct{}{}
	}
	// Fence: drop the partitions another writer claimed, as if that
	// writer had committed every offset of theirs.
	committed := groupOffsets(meta, s.cfg.Group, want)
	for tp, owner := range groupOwners(meta, s.cfg.Group, want) {
		if owner != s.writer {
			if st.fenced == nil {
				st.fenced = map[schemas.TopicPartition]string{}
			}
			st.fenced[tp] = owner
			committed[tp] = math.MaxInt64
		}
	}
	dropped, err := tb.dropBelow(ctx, s.mem, committed)
	if err != nil {
		return nil, fmt.Errorf("drop rows the table already holds: %w", err)
	}
	if dropped > 0 {
		tb.written = nil
		s.logger.Info("dropped buffered rows another commit already wrote or a fence excludes", "table", tb.full, "rows", dropped,
			"committed", formatOffsets(committed))
	}
	for tp := range st.fenced {
		delete(committed, tp)
	}
	st.duplicates += dropped

	recs, rows, runIDs := tb.pendingRecords()
	record := make(schemas.Offsets, len(offsets))
	advances := false
	for tp, next := range offsets {
		if _, out := st.fenced[tp]; out {
			continue
		}
		c, ok := committed[tp]
		if !ok || next > c {
			advances = true
		}
		record[tp] = max(next, c)
	}
	if rows == 0 && !advances {
		return nil, nil // the table already records every offset, and nothing is left to write
	}

	if rows > 0 && tb.written == nil {
		files, err := writeDataFiles(ctx, tbl, recs)
		if err != nil {
			return nil, fmt.Errorf("write %d rows: %w", rows, err)
		}
		// Nothing is committed, so the table's offsets do not move past
		// rows it would not hold.
		if err := checkDataFiles(files, rows, runIDs, tb.location); err != nil {
			return nil, err
		}
		tb.written = files
	}
	commitID := uuid.NewString()
	props := s.summary(commitID, runIDs)
	s.mu.Lock()
	for tp, next := range record {
		props[offsetProp(tp)] = strconv.FormatInt(next, 10)
		if _, ok := s.claimed[tp]; ok {
			props[ownerProp(tp)] = s.writer
		}
	}
	s.mu.Unlock()
	start := time.Now()
	committedTbl, err := commitSnapshot(ctx, tbl, tb.written, props)
	if err != nil {
		return &attempt{commitID: commitID, base: base, rows: rows}, fmt.Errorf("append %d rows: %w", rows, err)
	}
	snap, err := checkCommitted(committedTbl, commitID, rows, len(tb.written))
	if err != nil {
		return nil, err
	}
	tb.releasePending()
	st.rows = rows
	st.snapshotID = snap.SnapshotID
	s.logger.Debug("committed", "table", tb.full, "rows", rows, "snapshot_id", st.snapshotID,
		"offsets", formatOffsets(record), "duration", time.Since(start))

	return nil, nil
}

// ErrRowsNotStored is wrapped by the error of a flush whose table would not
// hold, or does not hold, the rows it buffered: the data files written
// hold fewer rows than buffered or lie outside the table's location, or the
// snapshot committed reports fewer rows added. Retrying cannot help, so the
// flush fails at once and returns no offsets.
var ErrRowsNotStored = errors.New("the table does not hold the rows buffered")

// checkDataFiles reports files that do not hold exactly rows rows (of the
// runs runIDs), or one that lies outside location (the table's), after
// resolving escapes and ".." as the storage would: a partition value that
// escaped the table's directory, or a writer that dropped rows.
func checkDataFiles(files []iceberg.DataFile, rows int64, runIDs map[string]struct{}, location string) error {
	var held int64
	var outside []string
	paths := make([]string, len(files))
	for i, df := range files {
		held += df.Count()
		paths[i] = df.FilePath()
		if !underLocation(df.FilePath(), location) {
			outside = append(outside, df.FilePath())
		}
	}
	runs := strings.Join(slices.Sorted(maps.Keys(runIDs)), ", ")
	switch {
	case len(outside) > 0:
		return fmt.Errorf("%w: expected %d rows of run %s under the table's location %s, but %d of the %d data files written are outside it: %s; not committing, so no offset moves past these rows; check the run_id (%s) and the table's write.data.path",
			ErrRowsNotStored, rows, runs, location, len(outside), len(files), strings.Join(outside, ", "), schemas.NamePattern)
	case held != rows:
		return fmt.Errorf("%w: expected %d rows of run %s in data files under %s, found %d in the %d files written [%s]; not committing, so no offset moves past these rows; check the run_id (%s)",
			ErrRowsNotStored, rows, runs, location, held, len(files), strings.Join(paths, ", "), schemas.NamePattern)
	}

	return nil
}

// underLocation reports whether the file at path (a URL or a local path)
// lies under the directory location, comparing the scheme, the host and the
// unescaped, cleaned paths. A path with a ".." element is not under it,
// whatever it resolves to.
func underLocation(path, location string) bool {
	f, err1 := url.Parse(path)
	l, err2 := url.Parse(location)
	if err1 != nil || err2 != nil || f.Opaque != "" || l.Opaque != "" {
		return false
	}
	if !strings.EqualFold(f.Scheme, l.Scheme) || !strings.EqualFold(f.Host, l.Host) {
		return false
	}
	if slices.Contains(strings.Split(f.Path, "/"), "..") {
		return false
	}
	dir := strings.TrimSuffix(pathpkg.Clean(l.Path), "/") + "/"

	return strings.HasPrefix(pathpkg.Clean(f.Path), dir)
}

// checkCommitted reads back the snapshot a commit made: the current snapshot
// of committed must carry commitID and report rows records and (unless
// files is negative: not known) files data files added. It returns the
// snapshot.
//
// A mismatch means the commit's offsets now stand in the table for rows it
// does not hold; the error says so, and what to do, since a restart resumes
// from those offsets.
func checkCommitted(committed *table.Table, commitID string, rows int64, files int) (*table.Snapshot, error) {
	snap := committed.CurrentSnapshot()
	if snap == nil || snap.Summary == nil || snap.Summary.Properties[PropCommitID] != commitID {
		return nil, fmt.Errorf("%w: the table's current snapshot after the commit is not the commit %s; check the catalog", ErrRowsNotStored, commitID)
	}
	props := snap.Summary.Properties
	added, err := summaryCount(props, "added-records")
	if err == nil && added == rows {
		var n int64
		n, err = summaryCount(props, "added-data-files")
		if err == nil && files >= 0 && n != int64(files) {
			err = fmt.Errorf("added-data-files is %d, expected %d", n, files)
		}
	} else if err == nil {
		err = fmt.Errorf("added-records is %d, expected %d", added, rows)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: snapshot %d (commit %s) of table at %s: %w; its summary records offsets for rows the table lacks: do not resume this run, replay it again under a new run_id",
			ErrRowsNotStored, snap.SnapshotID, commitID, committed.Location(), err)
	}

	return snap, nil
}

// summaryCount parses a count of a snapshot summary; absent is 0.
func summaryCount(props map[string]string, key string) (int64, error) {
	v, ok := props[key]
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s is %q, not a count", key, v)
	}

	return n, nil
}

// summary returns the properties every snapshot this sink commits carries:
// the group, the commit ID, the writer, and the run IDs of its rows (sorted,
// joined with commas), or for a snapshot without rows the configured run
// ID. Callers add the offsets and owners.
func (s *Iceberg) summary(commitID string, runIDs map[string]struct{}) iceberg.Properties {
	props := iceberg.Properties{PropGroup: s.cfg.Group, PropCommitID: commitID, PropWriter: s.writer}
	switch {
	case len(runIDs) > 0:
		props[PropRunID] = strings.Join(slices.Sorted(maps.Keys(runIDs)), ",")
	case s.cfg.RunID != "":
		props[PropRunID] = s.cfg.RunID
	}

	return props
}

// writeDataFiles writes recs as Parquet data files of tbl (partitioned,
// with the table's codec) without committing them. recs stay the caller's.
func writeDataFiles(ctx context.Context, tbl *table.Table, recs []arrow.RecordBatch) ([]iceberg.DataFile, error) {
	seq := func(yield func(arrow.RecordBatch, error) bool) {
		for _, r := range recs {
			r.Retain() // WriteRecords releases what it consumes
			if !yield(r, nil) {
				r.Release()
				return
			}
		}
	}
	var files []iceberg.DataFile
	for df, err := range table.WriteRecords(ctx, tbl, recs[0].Schema(), seq) {
		if err != nil {
			return nil, err
		}
		files = append(files, df)
	}

	return files, nil
}

// commitSnapshot appends files (none: an empty snapshot) to tbl with the
// summary properties props, requiring that tbl's main branch is still at the
// snapshot tbl was loaded with.
//
// An empty append is iceberg-go's AddFiles with no files: its fast-append
// producer commits a snapshot with no new data file that keeps every existing
// file and carries the summary properties (see iceberg-go's
// TestAddFilesEmptyCommitsEmptySnapshot). ignoreDuplicates skips a scan of
// every data file for duplicates of the files added, of which there are none.
// AddDataFiles, by contrast, returns without a snapshot when given no files.
// Files this sink wrote are new, so their duplicate check is skipped too;
// the table's name mapping is left as it is (Append would not set one).
func commitSnapshot(ctx context.Context, tbl *table.Table, files []iceberg.DataFile, props iceberg.Properties) (*table.Table, error) {
	txn := tbl.NewTransaction()
	// The fence. Transaction.Commit already asserts the branch head it
	// read, but iceberg-go rewrites that assertion to the fresh head when it
	// retries; a pinned assertion is never rewritten.
	if err := txn.AssertRefSnapshotID(table.MainBranch); err != nil {
		return nil, err
	}
	if len(files) == 0 {
		if err := txn.AddFiles(ctx, nil, props, true); err != nil {
			return nil, err
		}
	} else if err := txn.AddDataFiles(ctx, files, props, table.WithoutDuplicateCheck(), table.WithoutAutoNameMapping()); err != nil {
		return nil, err
	}

	return txn.Commit(ctx)
}

// findCommit returns the snapshot carrying commitID among those committed
// after the snapshot base (0: since the table's first), or nil.
func findCommit(meta table.Metadata, commitID string, base int64) *table.Snapshot {
	for snap := meta.CurrentSnapshot(); snap != nil && snap.SnapshotID != base; {
		if snap.Summary != nil && snap.Summary.Properties[PropCommitID] == commitID {
			return snap
		}
		if snap.ParentSnapshotID == nil {
			break
		}
		snap = meta.SnapshotByID(*snap.ParentSnapshotID)
	}

	return nil
}

// pendingRecords returns the records waiting for a commit, their rows and
// their run IDs.
func (tb *tableBuffer) pendingRecords() ([]arrow.RecordBatch, int64, map[string]struct{}) {
	recs := make([]arrow.RecordBatch, len(tb.pending))
	runIDs := map[string]struct{}{}
	var rows int64
	for i, p := range tb.pending {
		recs[i] = p.rec
		rows += p.rec.NumRows()
		maps.Copy(runIDs, p.runIDs)
	}

	return recs, rows, runIDs
}

// dropBelow removes from the pending records every row whose source offset
// is below committed's offset for its partition, and returns how many.
func (tb *tableBuffer) dropBelow(ctx context.Context, mem memory.Allocator, committed schemas.Offsets) (int64, error) {
	if len(committed) == 0 {
		return 0, nil
	}
	var dropped int64
	kept := tb.pending[:0]
	for i, p := range tb.pending {
		rec, n, err := filterBelow(ctx, mem, p.rec, committed)
		if err != nil {
			// Keep this batch and the ones not looked at yet.
			kept = append(kept, tb.pending[i:]...)
			tb.pending = kept

			return dropped, err
		}
		dropped += n
		switch {
		case n == 0:
			kept = append(kept, p)
		case rec == nil: // every row dropped
			p.rec.Release()
		default:
			total := p.rec.NumRows()
			p.rec.Release()
			kept = append(kept, pendingBatch{rec: rec, bytes: p.bytes * rec.NumRows() / total, runIDs: runIDsOf(rec)})
		}
	}
	clear(tb.pending[len(kept):])
	tb.pending = kept

	return dropped, nil
}

// filterBelow returns rec without the rows whose source offset is below
// committed's offset for their partition, and the number dropped. With none
// dropped it returns nil, 0; with all dropped nil, NumRows. Rows without
// source coordinates are kept.
func filterBelow(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch, committed schemas.Offsets) (arrow.RecordBatch, int64, error) {
	topics, ok1 := column(rec, "source_topic").(*array.String)
	parts, ok2 := column(rec, "source_partition").(*array.Int32)
	offs, ok3 := column(rec, "source_offset").(*array.Int64)
	if !ok1 || !ok2 || !ok3 {
		return nil, 0, fmt.Errorf("record has no source_topic, source_partition and source_offset columns: %v", rec.Schema())
	}
	n := int(rec.NumRows())
	drop := func(i int) bool {
		if topics.IsNull(i) || parts.IsNull(i) || offs.IsNull(i) {
			return false
		}
		c, ok := committed[schemas.TopicPartition{Topic: topics.Value(i), Partition: parts.Value(i)}]

		return ok && offs.Value(i) < c
	}
	var dropped int64
	for i := range n {
		if drop(i) {
			dropped++
		}
	}
	if dropped == 0 || dropped == int64(n) {
		return nil, dropped, nil
	}

	mask := array.NewBooleanBuilder(mem)
	defer mask.Release()
	mask.Reserve(n)
	for i := range n {
		mask.UnsafeAppend(!drop(i))
	}
	filter := mask.NewBooleanArray()
	defer filter.Release()
	out, err := compute.FilterRecordBatch(compute.WithAllocator(ctx, mem), rec, filter, compute.DefaultFilterOptions())
	if err != nil {
		return nil, 0, fmt.Errorf("filter %d rows: %w", n, err)
	}

	return out, dropped, nil
}

func column(rec arrow.RecordBatch, name string) arrow.Array {
	idx := rec.Schema().FieldIndices(name)
	if len(idx) != 1 {
		return nil
	}

	return rec.Column(idx[0])
}

// runIDsOf returns the distinct run IDs of rec's run_id column.
func runIDsOf(rec arrow.RecordBatch) map[string]struct{} {
	out := map[string]struct{}{}
	ids, ok := column(rec, "run_id").(*array.String)
	if !ok {
		return out
	}
	for i := range ids.Len() {
		if ids.IsValid(i) {
			// Value aliases the record's buffer, which is released.
			out[strings.Clone(ids.Value(i))] = struct{}{}
		}
	}

	return out
}

func (tb *tableBuffer) releasePending() {
	for _, p := range tb.pending {
		p.rec.Release()
	}
	clear(tb.pending)
	tb.pending = tb.pending[:0]
	tb.written = nil
}

func offsetProp(tp schemas.TopicPartition) string {
	return PropOffsetPrefix + tp.Topic + "." + strconv.Itoa(int(tp.Partition))
}

func ownerProp(tp schemas.TopicPartition) string {
	return PropOwnerPrefix + tp.Topic + "." + strconv.Itoa(int(tp.Partition))
}

// parsePartitionProp parses the <topic>.<partition> that follows prefix in
// key.
func parsePartitionProp(key, prefix string) (schemas.TopicPartition, bool) {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return schemas.TopicPartition{}, false
	}
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 {
		return schemas.TopicPartition{}, false
	}
	partition, err := strconv.ParseInt(rest[i+1:], 10, 32)
	if err != nil {
		return schemas.TopicPartition{}, false
	}

	return schemas.TopicPartition{Topic: rest[:i], Partition: int32(partition)}, true
}

// groupOwners returns the writer that owns each partition of want for
// group: walking back from the current snapshot, the first replay.owner
// value found. Partitions never claimed (or whose claims were expired) are
// absent.
func groupOwners(meta table.Metadata, group string, want map[schemas.TopicPartition]struct{}) map[schemas.TopicPartition]string {
	out := map[schemas.TopicPartition]string{}
	for snap := meta.CurrentSnapshot(); snap != nil && len(out) < len(want); {
		if snap.Summary != nil && snap.Summary.Properties[PropGroup] == group {
			for k, v := range snap.Summary.Properties {
				tp, ok := parsePartitionProp(k, PropOwnerPrefix)
				if !ok {
					continue
				}
				if _, seen := out[tp]; seen {
					continue
				}
				if _, wanted := want[tp]; wanted {
					out[tp] = v
				}
			}
		}
		if snap.ParentSnapshotID == nil {
			break
		}
		snap = meta.SnapshotByID(*snap.ParentSnapshotID)
	}

	return out
}

// parseOffsetProp reverses offsetProp.
func parseOffsetProp(key, value string) (schemas.TopicPartition, int64, bool) {
	tp, ok := parsePartitionProp(key, PropOffsetPrefix)
	if !ok {
		return schemas.TopicPartition{}, 0, false
	}
	offset, err := strconv.ParseInt(value, 10, 64)
	if err != nil {
		return schemas.TopicPartition{}, 0, false
	}

	return tp, offset, true
}

// groupOffsets returns the offsets meta's snapshots record for group:
// walking back from the current snapshot, the first value found for each
// partition. With want, only those partitions, and the walk stops once all
// are found; without, every partition, walking the whole history. Partitions
// the group never committed are absent, as are those recorded only in
// snapshots that were expired.
func groupOffsets(meta table.Metadata, group string, want map[schemas.TopicPartition]struct{}) schemas.Offsets {
	out := schemas.Offsets{}
	for snap := meta.CurrentSnapshot(); snap != nil; {
		if snap.Summary != nil && snap.Summary.Properties[PropGroup] == group {
			for k, v := range snap.Summary.Properties {
				tp, offset, ok := parseOffsetProp(k, v)
				if !ok {
					continue
				}
				if _, seen := out[tp]; seen {
					continue
				}
				if _, wanted := want[tp]; want == nil || wanted {
					out[tp] = offset
				}
			}
			if want != nil && len(out) == len(want) {
				break
			}
		}
		if snap.ParentSnapshotID == nil {
			break
		}
		snap = meta.SnapshotByID(*snap.ParentSnapshotID) // nil once expired
	}

	return out
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

	return groupOffsets(tbl.Metadata(), group, nil), nil
}

// Resume reads, for the consumer group, the offsets each table records for
// tps, remembers them per table (for Add and HoldsReplay), and returns where
// the source should restart each partition: the lowest of the tables'
// offsets, so that every table gets every record it does not hold yet.
//
// A partition is absent from the result when any table records no offset
// for it: that table may be missing rows from wherever the partition was
// first read, which only the consumer group's committed offset (or the start
// policy) knows. Tables that do record it still drop what they hold.
//
// It is safe to call from any goroutine, concurrently with Add and Flush;
// the Kafka source calls it when partitions are assigned.
func (s *Iceberg) Resume(ctx context.Context, tps []schemas.TopicPartition) (schemas.Offsets, error) {
	if s.readOnly {
		return nil, fmt.Errorf("resume %d partitions: %w", len(tps), ErrReadOnly)
	}
	start := time.Now()
	s.mu.Lock()
	cat, tables := s.cat, s.tables
	s.mu.Unlock()
	if cat == nil {
		return nil, errors.New("resume: the iceberg sink is closed")
	}
	want := make(map[schemas.TopicPartition]struct{}, len(tps))
	for _, tp := range tps {
		want[tp] = struct{}{}
	}
	perTable := make([]schemas.Offsets, len(tables))
	attempts := 0
	for i, tb := range tables {
		offs, n, err := s.claim(ctx, cat, tb, want)
		if err != nil {
			return nil, fmt.Errorf("resume %d partitions: %w", len(tps), err)
		}
		perTable[i] = offs
		attempts += n
	}

	out := make(schemas.Offsets, len(tps))
	var unknown []string
	for tp := range want {
		lowest, known := int64(0), true
		for i, offs := range perTable {
			o, ok := offs[tp]
			if !ok {
				known = false
				break
			}
			if i == 0 || o < lowest {
				lowest = o
			}
		}
		if known {
			out[tp] = lowest
		} else {
			unknown = append(unknown, fmt.Sprintf("%s/%d", tp.Topic, tp.Partition))
		}
	}

	s.mu.Lock()
	for tp := range want {
		s.claimed[tp] = struct{}{}
	}
	for i, tb := range tables {
		held := s.held[tb.name]
		for tp := range want {
			if o, ok := perTable[i][tp]; ok {
				held[tp] = o
			} else {
				delete(held, tp)
			}
		}
	}
	s.mu.Unlock()

	attrs := []any{"group", s.cfg.Group, "partitions", len(tps), "offsets", formatOffsets(out), "claim_attempts", attempts}
	for i, tb := range tables {
		attrs = append(attrs, tb.name, formatOffsets(perTable[i]))
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		attrs = append(attrs, "unknown", strings.Join(unknown, " "))
	}
	s.logger.Info("resuming partitions from the iceberg tables", append(attrs, "duration", time.Since(start))...)

	return out, nil
}

// claim makes this writer the owner of the partitions want in tb's table
// for the group: an empty snapshot recording replay.owner.<partition> for
// each, committed on the condition that the table has not moved since it was
// read, so the offsets read from that state are the ones the claim covers;
// from then on a writer that owned them before is fenced out of them (see
// Flush). It retries like a flush's commit and returns the offsets and the
// attempts made.
func (s *Iceberg) claim(ctx context.Context, cat catalog.Catalog, tb *tableBuffer, want map[schemas.TopicPartition]struct{}) (schemas.Offsets, int, error) {
	retry := s.cfg.CommitRetry
	conflicts := 0
	for n := 1; ; n++ {
		offs, err := func() (schemas.Offsets, error) {
			tbl, err := cat.LoadTable(ctx, tb.ident)
			if err != nil {
				return nil, fmt.Errorf("load table: %w", err)
			}
			meta := tbl.Metadata()
			offs := groupOffsets(meta, s.cfg.Group, want)
			owners := groupOwners(meta, s.cfg.Group, want)
			props := s.summary(uuid.NewString(), nil)
			claimed := 0
			for tp := range want {
				props[ownerProp(tp)] = s.writer
				if owners[tp] != s.writer {
					claimed++
				}
			}
			if claimed == 0 {
				return offs, nil // already ours: a retry after an applied claim
			}
			if _, err := commitSnapshot(ctx, tbl, nil, props); err != nil {
				return nil, fmt.Errorf("commit the claim: %w", err)
			}

			return offs, nil
		}()
		if err == nil {
			return offs, n, nil
		}
		conflict := isConflict(err)
		if conflict {
			conflicts++
		}
		if ctx.Err() != nil || n-conflicts >= retry.Attempts || conflicts >= maxConflicts(retry) {
			return nil, n, fmt.Errorf("claim %d partitions of table %s gave up after %d attempts (%d lost to concurrent commits): %w; check the catalog, or raise %scommit_retry",
				len(want), tb.full, n, conflicts, err, configPath)
		}
		t := time.NewTimer(retryWait(retry, n, conflict, conflicts))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, n, fmt.Errorf("claim %d partitions of table %s stopped after %d attempts: %w; last error: %w", len(want), tb.full, n, context.Cause(ctx), err)
		case <-t.C:
		}
	}
}

// HoldsReplay reports whether replay_responses already holds the row of the
// record at c, as of the last Resume of its partition, and with WithBaseline
// baseline_responses too: the pipeline need not send that request again. A
// record one of the two lacks is replayed to both targets; Add then drops
// the row the table that has it already holds. It is safe to call from any
// goroutine.
func (s *Iceberg) HoldsReplay(c schemas.Coordinates) bool {
	s.mu.Lock()
	defer s.mu.Unlock()

	return s.holdsLocked(schemas.TableReplay, c) && (!s.baseline || s.holdsLocked(schemas.TableBaseline, c))
}

// Forget drops what Resume remembered of tps, partitions revoked from this
// process after their results were flushed. It is safe to call from any
// goroutine. A partition with results not flushed yet keeps its place in the
// next flush.
func (s *Iceberg) Forget(tps []schemas.TopicPartition) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tp := range tps {
		delete(s.claimed, tp)
		for _, held := range s.held {
			delete(held, tp)
		}
		if _, pending := s.covered[tp]; !pending {
			delete(s.next, tp)
		}
	}
}

// formatOwners renders partition owners for a log line, sorted:
// "captures/0=<writer> captures/1=<writer>".
func formatOwners(owners map[schemas.TopicPartition]string) string {
	tps := slices.SortedFunc(maps.Keys(owners), compareTP)
	parts := make([]string, len(tps))
	for i, tp := range tps {
		parts[i] = fmt.Sprintf("%s/%d=%s", tp.Topic, tp.Partition, owners[tp])
	}

	return strings.Join(parts, " ")
}

func compareTP(a, b schemas.TopicPartition) int {
	if c := strings.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}

	return int(a.Partition) - int(b.Partition)
}

// formatOffsets renders offsets for a log line, sorted:
// "captures/0=17 captures/1=4".
func formatOffsets(o schemas.Offsets) string {
	tps := slices.SortedFunc(maps.Keys(o), compareTP)
	var b strings.Builder
	for i, tp := range tps {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s/%d=%d", tp.Topic, tp.Partition, o[tp])
	}

	return b.String()
}

// ScanRun reads the rows of one run from the named table (one of replay's
// tables or a comparison table), with the given columns (all when none). The
// caller releases the table.
func (s *Iceberg) ScanRun(ctx context.Context, tableName, runID string, columns ...string) (arrow.Table, error) {
	scan, full, err := s.runScan(ctx, tableName, runID, columns)
	if err != nil {
		return nil, err
	}
	defer scan.Close()
	out, err := scan.ToArrowTable(compute.WithAllocator(ctx, s.mem))
	if err != nil {
		return nil, fmt.Errorf("scan run %q of %s: %w", runID, full, err)
	}

	return out, nil
}

// CountRows returns the number of rows of one run in the named table. It
// reads only the run_id column.
func (s *Iceberg) CountRows(ctx context.Context, tableName, runID string) (int64, error) {
	scan, full, err := s.runScan(ctx, tableName, runID, []string{"run_id"})
	if err != nil {
		return 0, err
	}
	defer scan.Close()
	_, recs, err := scan.ToArrowRecords(compute.WithAllocator(ctx, s.mem))
	if err != nil {
		return 0, fmt.Errorf("count rows of run %q in %s: %w", runID, full, err)
	}
	var n int64
	for rec, err := range recs {
		if err != nil {
			return 0, fmt.Errorf("count rows of run %q in %s: %w", runID, full, err)
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
	s.mu.Lock()
	cat := s.cat
	s.mu.Unlock()
	if cat == nil {
		return nil, fmt.Errorf("load table %s: the iceberg sink is closed", tb.full)
	}
	tbl, err := cat.LoadTable(ctx, tb.ident)
	if err != nil {
		return nil, fmt.Errorf("load table %s: %w", strings.Join(tb.ident, "."), err)
	}

	return tbl, nil
}

// Close releases the row builders, any rows not flushed (logged as a
// warning: call Flush first) and the catalog. It is idempotent.
func (s *Iceberg) Close() error {
	s.mu.Lock()
	cat, tables := s.cat, s.tables
	s.cat, s.tables = nil, nil
	s.mu.Unlock()
	var rows int
	for _, tb := range tables {
		n, _ := tb.buffered()
		rows += n
	}
	if rows > 0 {
		s.logger.Warn("closing the iceberg sink with rows not flushed; they will be read again from the source", "rows", rows)
	}
	for _, tb := range tables {
		tb.releasePending()
		tb.builder.Release()
	}
	if c, ok := cat.(catalog.Closer); ok {
		if err := c.Close(); err != nil {
			return fmt.Errorf("close catalog: %w", err)
		}
	}

	return nil
}
