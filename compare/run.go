package compare

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go/catalog"
	"github.com/sourcegraph/conc/panics"
	"github.com/sourcegraph/conc/stream"

	"github.com/replaykit/replay/normalize"
	"github.com/replaykit/replay/schemas"
	"github.com/replaykit/replay/sinks"
)

// Options are the per-invocation settings of Run.
type Options struct {
	// RunID is the run to compare. Required.
	RunID string
	// BaselineRunID, when set, is a run that replayed the same capture log
	// to a second copy of the old version (the baseline). Its
	// replay_responses rows are joined by correlation ID alongside RunID's:
	// a JSON path that also differs between production and the baseline is
	// the service's own non-determinism, noise rather than a defect of the
	// candidate (see classify).
	//
	// Empty: when RunID has rows in baseline_responses (it ran with
	// replay.baseline set), those are the baseline; otherwise there is
	// none. A BaselineRunID wins over baseline_responses.
	BaselineRunID string
	// Progress receives progress (stderr, usually): a bar when it is a
	// terminal; otherwise an info line every few seconds and at the end,
	// on Logger when set, else as text lines on Progress. Nil: no progress.
	Progress io.Writer
	// Logger gets one line per lifecycle event (start, spill, tables
	// written, done). Nil discards them.
	Logger *slog.Logger
	// Allocator is where the Arrow memory of the rows compare writes comes
	// from; nil is memory.DefaultAllocator. Tests pass a
	// memory.CheckedAllocator.
	Allocator memory.Allocator
}

// chunkSize is the pairs one worker task classifies: enough to make the
// stream's per-task cost (about half a microsecond) negligible, few enough
// that the pairs in flight stay small next to the memory budget.
const chunkSize = 64

// Run compares one run: it joins the run's production_responses and
// replay_responses rows by correlation ID (amplified copies aside: they are
// only counted), classifies every pair (matched, mismatched, lineage
// mismatch, only one side), normalizes and diffs the
// joined pairs on cfg.Workers goroutines, and writes the result to
// comparison_summary (one row per endpoint and one for the whole run) and
// comparison_mismatches (one row per mismatched pair), replacing what an
// earlier compare of the run wrote. With a baseline (opts.BaselineRunID's
// replay rows, else the run's own baseline_responses rows when it has
// any), the baseline rows are joined too and differences the baseline
// shows as well are noise (see classify). It returns the summary; its
// Report field is the caller's to fill.
//
// Memory is bounded by cfg.MemoryBudget (see Config), plus the pairs in
// flight and the summary's aggregates, whose size depends on the number of
// endpoints and differing paths, not on the number of rows.
func Run(ctx context.Context, cfg Config, sink *sinks.Iceberg, opts Options) (*Summary, error) {
	sum, err := run(ctx, cfg, sink, opts)
	if err != nil {
		return nil, fmt.Errorf("compare run %q: %w", opts.RunID, err)
	}

	return sum, nil
}

func run(ctx context.Context, cfg Config, sink *sinks.Iceberg, opts Options) (*Summary, error) {
	start := time.Now()
	if opts.RunID == "" {
		return nil, fmt.Errorf("%w: run_id is empty", ErrInvalidConfig)
	}
	if sink == nil {
		return nil, errors.New("no iceberg sink")
	}
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	norm, err := normalize.Compile(cfg.Normalize)
	if err != nil {
		return nil, fmt.Errorf("%w: normalize: %w", ErrInvalidConfig, err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	mem := opts.Allocator
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	runID := opts.RunID
	baselineID := opts.BaselineRunID
	if baselineID == runID {
		return nil, fmt.Errorf("%w: the baseline run is the run compared (%q)", ErrInvalidConfig, runID)
	}

	prodSize, err := sink.RunSize(ctx, schemas.TableProduction, runID)
	if err != nil {
		return nil, err
	}
	replaySize, err := sink.RunSize(ctx, schemas.TableReplay, runID)
	if err != nil {
		return nil, err
	}
	if prodSize.Rows == 0 && replaySize.Rows == 0 {
		return nil, fmt.Errorf("%w: run %q in %s and %s of the %s; check the run ID", ErrEmptyRun, runID,
			sink.QualifiedName(schemas.TableProduction), sink.QualifiedName(schemas.TableReplay), sink.CatalogDescription())
	}
	base, err := findBaseline(ctx, sink, runID, baselineID)
	if err != nil {
		return nil, err
	}
	attrs := []any{"run_id", runID, "production_rows", prodSize.Rows, "replay_rows", replaySize.Rows,
		"replay_file_bytes", replaySize.Bytes, "memory_budget", cfg.MemoryBudget, "workers", cfg.workers()}
	if base.source != "" {
		attrs = append(attrs, "baseline_source", base.source, "baseline_run_id", base.runID,
			"baseline_table", sink.QualifiedName(base.table), "baseline_rows", base.rows)
	}
	logger.Info("comparing run", attrs...)

	spillDir := cfg.spillDir()
	if err := os.MkdirAll(spillDir, 0o755); err != nil {
		return nil, fmt.Errorf("create spill directory %q: %w; check compare.spill_dir", spillDir, err)
	}
	dir, err := os.MkdirTemp(spillDir, "replay-compare-")
	if err != nil {
		return nil, fmt.Errorf("create a directory in %q: %w; check compare.spill_dir", spillDir, err)
	}
	defer func() {
		if err := os.RemoveAll(dir); err != nil {
			logger.Warn("cannot remove the spill directory; remove it by hand", "run_id", runID, "dir", dir, "err", err)
		}
	}()

	comparedAt := start.UTC().Truncate(time.Microsecond)
	mismatchPath := filepath.Join(dir, "mismatches.arrows")
	mw, err := newMismatchWriter(mismatchPath, runID, comparedAt, mem)
	if err != nil {
		return nil, err
	}
	j := &job{
		cfg:      cfg,
		sink:     sink,
		runID:    runID,
		baseline: base,
		norm:     norm,
		logger:   logger,
		dir:      dir,
		agg:      newAggregator(mw),
		prog:     newProgress(opts.Progress, opts.Logger, runID, prodSize.Rows+replaySize.Rows),
		stream:   stream.New().WithMaxGoroutines(cfg.workers()),
	}
	if j.dups, err = j.findDuplicates(ctx); err != nil {
		mw.discard()

		return nil, err
	}
	joinErr := j.join(ctx)
	if joinErr == nil {
		j.flushChunk()
	}
	j.stream.Wait() // always: the workers end before Run returns
	j.prog.finish()
	if err := errors.Join(joinErr, j.err()); err != nil {
		mw.discard()

		return nil, err
	}
	if err := mw.close(); err != nil {
		return nil, err
	}

	sum := j.agg.summary()
	if n := j.agg.otherPaths; n > 0 {
		logger.Warn("too many distinct differing paths; the top paths leave some out", "run_id", runID,
			"tracked_paths", maxTrackedPaths, "differences_not_tracked", n)
	}
	sum.RunID = runID
	sum.Duplicates = summarizeDuplicates(j.dups)
	if d := sum.Duplicates; d.IDs > 0 {
		logger.Warn("correlation ids carried by more than one record: the lowest source coordinates joined, the others set aside",
			"run_id", runID, "duplicate_ids", d.IDs, "rows_set_aside", d.Rows, "first", d.Examples[0].CorrelationID,
			"joined", d.Examples[0].Joined, "set_aside", strings.Join(d.Examples[0].SetAside, ","))
	}
	if base.source != "" {
		sum.BaselineSource, sum.BaselineRunID, sum.BaselineTable = base.source, base.runID, sink.QualifiedName(base.table)
	}
	sum.ComparedAt = comparedAt
	sum.Spilled = j.spilled
	sum.SummaryTable = sink.QualifiedName(schemas.TableComparisonSummary)
	sum.MismatchesTable = sink.QualifiedName(schemas.TableComparisonMismatches)
	if sum.TopMismatches, err = topMismatches(mismatchPath, mem, endpointRanks(sum), topMismatchesLimit); err != nil {
		return nil, err
	}

	// Mismatches first: a summary is never visible without its mismatch
	// rows.
	err = sink.ReplaceRun(ctx, schemas.TableComparisonMismatches, runID, func() (array.RecordReader, error) {
		return openMismatches(mismatchPath, mem)
	})
	if err != nil {
		return nil, err
	}
	rec := summaryRecord(mem, runID, comparedAt, append([]Counts{sum.Overall}, sum.Endpoints...))
	defer rec.Release()
	if err := sink.ReplaceRun(ctx, schemas.TableComparisonSummary, runID, recordReaderOf(rec)); err != nil {
		return nil, err
	}

	sum.Duration = time.Since(start).Seconds()
	logger.Info("compared run", "run_id", runID, "joined", sum.Overall.Joined, "matched", sum.Overall.Matched,
		"mismatched", sum.Overall.Mismatched, "lineage_excluded", sum.Overall.LineageExcluded,
		"noise_excluded", sum.Overall.NoiseExcluded,
		"only_production", sum.Overall.OnlyProduction, "only_replay", sum.Overall.OnlyReplay,
		"replay_amplified", sum.Overall.ReplayAmplified,
		"match_rate", RateLogValue(sum.MatchRate), "endpoints", len(sum.Endpoints), "spilled", sum.Spilled,
		"duration", time.Since(start))

	return sum, nil
}

// InputTables are the tables Run reads and requires: the caller opens the
// sink with sinks.OpenIcebergReadOnly(…, InputTables()). baseline_responses
// is read when it exists. Run creates only its output tables
// (schemas.ComparisonTableNames), through ReplaceRun.
func InputTables() []string {
	return []string{schemas.TableProduction, schemas.TableReplay}
}

// baseline is where a comparison's baseline rows are: the rows of runID in
// table. The zero value is no baseline.
type baseline struct {
	source string // BaselineFromRun, BaselineFromTable, or "" for none
	table  string
	runID  string
	rows   int64
}

// findBaseline decides the baseline of runID: the replay_responses rows of
// baselineRunID when it is set (an error when there are none), else
// runID's own baseline_responses rows when there are any, else none.
func findBaseline(ctx context.Context, sink *sinks.Iceberg, runID, baselineRunID string) (baseline, error) {
	if baselineRunID != "" {
		size, err := sink.RunSize(ctx, schemas.TableReplay, baselineRunID)
		if err != nil {
			return baseline{}, err
		}
		if size.Rows == 0 {
			return baseline{}, fmt.Errorf("%w: baseline run %q in %s; check the baseline run ID", ErrEmptyRun, baselineRunID,
				sink.QualifiedName(schemas.TableReplay))
		}
		return baseline{source: BaselineFromRun, table: schemas.TableReplay, runID: baselineRunID, rows: size.Rows}, nil
	}
	size, err := sink.RunSize(ctx, schemas.TableBaseline, runID)
	if errors.Is(err, catalog.ErrNoSuchTable) {
		// A warehouse older than baseline_responses, opened read-only.
		return baseline{}, nil
	}
	if err != nil {
		return baseline{}, err
	}
	if size.Rows == 0 {
		return baseline{}, nil
	}
	return baseline{source: BaselineFromTable, table: schemas.TableBaseline, runID: runID, rows: size.Rows}, nil
}

// job is the state of one Run.
type job struct {
	cfg   Config
	sink  *sinks.Iceberg
	runID string
	// baseline is where the baseline rows are; its source is "" without
	// one.
	baseline baseline
	norm     *normalize.Normalizer
	logger   *slog.Logger
	dir      string
	seeds    []maphash.Seed // per depth of partitioning
	agg      *aggregator
	prog     *progress
	stream   *stream.Stream
	chunk    []pair
	spilled  bool
	// dups are the correlation IDs carried by more than one record
	// (duplicates.go); their rows but the lowest record's are set aside.
	dups map[string]*dupGroup
	// overBudget counts partitions joined over the memory budget (at
	// maxSpillDepth); overBudgetMax is the largest.
	overBudget    int
	overBudgetMax int64

	mu       sync.Mutex
	firstErr error // of a worker or the aggregator
}

func (j *job) fail(err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.firstErr == nil {
		j.firstErr = err
	}
}

func (j *job) err() error {
	j.mu.Lock()
	defer j.mu.Unlock()

	return j.firstErr
}

// emit queues one pair for classification.
func (j *job) emit(p pair) error {
	j.chunk = append(j.chunk, p)
	if len(j.chunk) >= chunkSize {
		j.flushChunk()
	}

	return j.err()
}

// flushChunk hands the queued pairs to a worker. Workers classify chunks
// concurrently; the stream runs their callbacks, which fold the outcomes
// into the aggregator, one at a time in submission order.
func (j *job) flushChunk() {
	if len(j.chunk) == 0 {
		return
	}
	chunk := j.chunk
	j.chunk = make([]pair, 0, chunkSize)
	j.stream.Go(func() stream.Callback {
		outs := make([]outcome, 0, len(chunk))
		if r := panics.Try(func() {
			for _, p := range chunk {
				outs = append(outs, classify(j.norm, p))
			}
		}); r != nil {
			err := fmt.Errorf("normalizing a pair panicked: %w", r.AsError())

			return func() { j.fail(err) }
		}

		return func() {
			if j.err() != nil {
				return
			}
			if r := panics.Try(func() {
				for i := range outs {
					if err := j.agg.add(&outs[i]); err != nil {
						j.fail(err)

						return
					}
					n := int64(1)
					if outs[i].production != nil && outs[i].replay != nil {
						n = 2
					}
					j.prog.add(n)
				}
			}); r != nil {
				j.fail(fmt.Errorf("aggregating a pair panicked: %w", r.AsError()))
			}
		}
	})
}

// partition returns the spill partition of a correlation ID.
func (j *job) partition(cid string) int { return j.partitionAt(0, cid) }

// partitionAt returns the partition of a correlation ID at a depth of
// splitting: each depth hashes with a seed of its own, so a partition split
// again spreads over all the new parts.
func (j *job) partitionAt(depth int, cid string) int {
	for len(j.seeds) <= depth {
		j.seeds = append(j.seeds, maphash.MakeSeed())
	}

	return int(maphash.String(j.seeds[depth], cid) % uint64(j.cfg.Partitions))
}

// scan calls fn for every row of one side of a run (production, replay,
// or the baseline), with the reader of its batch.
func (j *job) scan(ctx context.Context, tableName, runID string, fn func(br *batchReader, i int) error) error {
	columns, replaySide := productionColumns, false
	if tableName != schemas.TableProduction { // replay_responses or baseline_responses
		columns, replaySide = replayColumns, true
	}
	columns = append(append([]string(nil), columns...), coordColumns...)
	batches, err := j.sink.ScanRunBatches(ctx, tableName, runID, columns...)
	if err != nil {
		return err
	}
	for rec, err := range batches {
		if err != nil {
			return err
		}
		err = func() error {
			defer rec.Release()
			if err := context.Cause(ctx); err != nil {
				return err
			}
			br, err := newBatchReader(rec, replaySide)
			if err != nil {
				return fmt.Errorf("read %s: %w", j.sink.QualifiedName(tableName), err)
			}
			for i := range int(rec.NumRows()) {
				if err := fn(br, i); err != nil {
					return err
				}
			}

			return nil
		}()
		if err != nil {
			return err
		}
	}

	return nil
}

// buildTable is the build side of the hash join: replay rows by
// correlation ID, duplicates chained in scan order.
type buildTable map[string]*sideRow

func (t buildTable) insert(r *sideRow) {
	head := t[r.cid]
	if head == nil {
		t[r.cid] = r

		return
	}
	for head.next != nil {
		head = head.next
	}
	head.next = r
}

// pop removes and returns the first row of cid, or nil.
func (t buildTable) pop(cid string) *sideRow {
	head := t[cid]
	if head == nil {
		return nil
	}
	if head.next == nil {
		delete(t, cid)
	} else {
		t[cid] = head.next
		head.next = nil
	}

	return head
}

// drain emits every row left: replay rows without a production row.
func (t buildTable) drain(emit func(pair) error) error {
	for cid, head := range t {
		delete(t, cid)
		for r := head; r != nil; {
			next := r.next
			r.next = nil
			if err := emit(pair{replay: r}); err != nil {
				return err
			}
			r = next
		}
	}

	return nil
}

// buildSides are the build sides of the join: the replay rows, and the
// baseline run's replay rows when there is a baseline (nil otherwise).
type buildSides struct {
	replay, baseline buildTable
}

// probe pairs one production row with the first replay and baseline rows of
// its correlation ID. Baseline rows are popped for every production row,
// replayed or not, so duplicates pair up in scan order on both paths.
func (b buildSides) probe(p *sideRow) pair {
	pr := pair{production: p, replay: b.replay.pop(p.cid)}
	if b.baseline != nil {
		pr.baseline = b.baseline.pop(p.cid)
	}

	return pr
}

// join reads both sides and emits every pair. The replay side is the build
// side: a run's replay rows are usually a subset of its production rows (not
// every request is replayed). With a baseline run its replay rows (status,
// headers and body only) are a second build side, and count against the
// same budget. While the build sides fit cfg.MemoryBudget, they are held
// in hash tables and the production side streams past them. Once they do
// not, the join becomes a grace hash join: the rows held so far and all that
// follow go to cfg.Partitions spill files per build side by hash of the
// correlation ID, the production side is partitioned the same way, and each
// partition is then joined in memory on its own. Within a partition rows
// keep their scan order, so both paths pair the same rows.
func (j *job) join(ctx context.Context) error {
	tables := buildSides{replay: buildTable{}}
	if j.baseline.source != "" {
		tables.baseline = buildTable{}
	}
	var (
		held                       int64
		replayParts, baselineParts *partitionFiles
	)
	defer func() {
		if replayParts != nil {
			_ = replayParts.close()
		}
		if baselineParts != nil {
			_ = baselineParts.close()
		}
	}()
	// spill moves both build tables to partition files.
	spill := func(reading string) error {
		j.spilled = true
		j.logger.Info("build rows exceed the memory budget; spilling the join to disk", "run_id", j.runID,
			"reading", reading, "held_bytes", held, "memory_budget", j.cfg.MemoryBudget, "partitions", j.cfg.Partitions, "dir", j.dir)
		j.prog.setPhase("partitioning " + schemas.TableReplay)
		var err error
		if replayParts, err = createPartitions(j.dir, "replay", j.cfg.Partitions); err != nil {
			return err
		}
		if tables.baseline != nil {
			if baselineParts, err = createPartitions(j.dir, "baseline", j.cfg.Partitions); err != nil {
				return err
			}
		}
		for _, side := range []struct {
			table buildTable
			parts *partitionFiles
		}{{tables.replay, replayParts}, {tables.baseline, baselineParts}} {
			for cid, head := range side.table {
				w := side.parts.writers[j.partition(cid)]
				for r := head; r != nil; r = r.next {
					if err := w.write(r); err != nil {
						return err
					}
				}
			}
		}
		tables = buildSides{}

		return nil
	}
	// build holds r in table, or writes it to its partition once spilled.
	build := func(r *sideRow, reading string, table func() buildTable, parts func() *partitionFiles) error {
		if replayParts != nil {
			return parts().writers[j.partition(r.cid)].write(r)
		}
		table().insert(r)
		held += r.size()
		if held <= j.cfg.MemoryBudget {
			return nil
		}

		return spill(reading)
	}

	j.prog.setPhase("reading " + schemas.TableReplay)
	err := j.scan(ctx, schemas.TableReplay, j.runID, func(br *batchReader, i int) error {
		if br.isAmplified(i) {
			// An extra replay of a record: no production row to join.
			return j.emit(pair{replay: br.light(i)})
		}
		if j.setAside(br.cid.Value(i), br.coordAt(i)) {
			return j.emit(pair{replay: br.light(i), duplicate: true})
		}
		return build(br.row(i), "replay", func() buildTable { return tables.replay }, func() *partitionFiles { return replayParts })
	})
	if err != nil {
		return err
	}
	if j.baseline.source != "" {
		j.prog.setPhase("reading baseline " + j.baseline.table)
		err := j.scan(ctx, j.baseline.table, j.baseline.runID, func(br *batchReader, i int) error {
			if br.isAmplified(i) {
				return nil // the baseline's copies say nothing more than its own replay
			}
			if j.setAside(br.cid.Value(i), br.coordAt(i)) {
				return nil // the baseline of a record set aside
			}
			return build(br.baseline(i), "baseline", func() buildTable { return tables.baseline }, func() *partitionFiles { return baselineParts })
		})
		if err != nil {
			return err
		}
	}

	if replayParts == nil {
		j.prog.setPhase("comparing")
		err := j.scan(ctx, schemas.TableProduction, j.runID, func(br *batchReader, i int) error {
			// A production row without a replay row needs no body.
			cid := br.cid.Value(i)
			if j.setAside(cid, br.coordAt(i)) {
				return j.emit(pair{production: br.light(i), duplicate: true})
			}
			if _, ok := tables.replay[cid]; ok {
				return j.emit(tables.probe(br.row(i)))
			}

			return j.emit(tables.probe(br.light(i)))
		})
		if err != nil {
			return err
		}

		return tables.replay.drain(j.emit)
	}

	if err := errors.Join(replayParts.close(), closeParts(baselineParts)); err != nil {
		return err
	}
	j.prog.setPhase("partitioning " + schemas.TableProduction)
	prodParts, err := createPartitions(j.dir, "production", j.cfg.Partitions)
	if err != nil {
		return err
	}
	err = j.scan(ctx, schemas.TableProduction, j.runID, func(br *batchReader, i int) error {
		if j.setAside(br.cid.Value(i), br.coordAt(i)) {
			return j.emit(pair{production: br.light(i), duplicate: true})
		}
		p := br.row(i)

		return prodParts.writers[j.partition(p.cid)].write(p)
	})
	if err = errors.Join(err, prodParts.close()); err != nil {
		return err
	}

	j.prog.setPhase("comparing partitions")
	for i := range j.cfg.Partitions {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		part := partition{replay: replayParts.paths[i], production: prodParts.paths[i]}
		if baselineParts != nil {
			part.baseline = baselineParts.paths[i]
		}
		if err := j.joinPartition(part, 0); err != nil {
			return fmt.Errorf("join partition %d of %d: %w", i, j.cfg.Partitions, err)
		}
	}
	if j.overBudget > 0 {
		j.logger.Warn("spill partitions still over the memory budget after splitting were joined in memory; raise partitions or memory_budget",
			"run_id", j.runID, "partitions", j.overBudget, "largest_bytes", j.overBudgetMax, "memory_budget", j.cfg.MemoryBudget)
	}

	return nil
}

// closeParts closes p when there is one.
func closeParts(p *partitionFiles) error {
	if p == nil {
		return nil
	}

	return p.close()
}

// partition is the spill files of one partition; baseline is "" without a
// baseline run.
type partition struct {
	replay, baseline, production string
}

// maxSpillDepth bounds how often a partition over the memory budget is
// split again. Past it (a correlation ID with a great many rows, or a budget
// far too small for the rows) the partition is joined in memory anyway.
const maxSpillDepth = 3

// errOverBudget stops reading a partition that does not fit the budget.
var errOverBudget = errors.New("partition over the memory budget")

// joinPartition joins one partition's spill files, then removes them. A
// partition whose build rows (replay and baseline) do not fit the memory
// budget is split into cfg.Partitions smaller ones by another hash of the
// correlation ID, and each of those is joined in turn.
func (j *job) joinPartition(part partition, depth int) error {
	tables := buildSides{replay: buildTable{}}
	var held int64
	load := func(path string, table buildTable) error {
		return readSpill(path, func(r *sideRow) error {
			table.insert(r)
			held += r.size()
			if held > j.cfg.MemoryBudget && depth < maxSpillDepth && j.cfg.Partitions > 1 {
				return errOverBudget
			}

			return nil
		})
	}
	err := load(part.replay, tables.replay)
	if err == nil && part.baseline != "" {
		tables.baseline = buildTable{}
		err = load(part.baseline, tables.baseline)
	}
	if errors.Is(err, errOverBudget) {
		return j.splitPartition(part, depth+1)
	}
	if err != nil {
		return err
	}
	if held > j.cfg.MemoryBudget {
		j.overBudget++
		j.overBudgetMax = max(j.overBudgetMax, held)
	}
	err = readSpill(part.production, func(p *sideRow) error {
		return j.emit(tables.probe(p))
	})
	if err != nil {
		return err
	}
	if err := tables.replay.drain(j.emit); err != nil {
		return err
	}
	err = errors.Join(os.Remove(part.replay), os.Remove(part.production))
	if part.baseline != "" {
		err = errors.Join(err, os.Remove(part.baseline))
	}

	return err
}

// splitPartition re-partitions the files of a partition with the hash of
// the given depth, removes them, and joins the parts.
func (j *job) splitPartition(part partition, depth int) error {
	split := func(path string) ([]string, error) {
		if path == "" {
			return make([]string, j.cfg.Partitions), nil
		}
		parts, err := createPartitions(filepath.Dir(path), strings.TrimSuffix(filepath.Base(path), ".spill"), j.cfg.Partitions)
		if err != nil {
			return nil, err
		}
		err = readSpill(path, func(r *sideRow) error {
			return parts.writers[j.partitionAt(depth, r.cid)].write(r)
		})
		if err = errors.Join(err, parts.close()); err != nil {
			return nil, err
		}

		return parts.paths, os.Remove(path)
	}
	replayParts, err := split(part.replay)
	if err != nil {
		return err
	}
	baselineParts, err := split(part.baseline)
	if err != nil {
		return err
	}
	prodParts, err := split(part.production)
	if err != nil {
		return err
	}
	for i := range replayParts {
		if err := j.joinPartition(partition{replay: replayParts[i], baseline: baselineParts[i], production: prodParts[i]}, depth); err != nil {
			return err
		}
	}

	return nil
}
