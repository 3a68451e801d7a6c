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
// replay_responses rows by correlation ID, classifies every pair (matched,
// mismatched, lineage mismatch, only one side), normalizes and diffs the
// joined pairs on cfg.Workers goroutines, and writes the result to
// comparison_summary (one row per endpoint and one for the whole run) and
// comparison_mismatches (one row per mismatched pair), replacing what an
// earlier compare of the run wrote. It returns the summary; its Report field
// is the caller's to fill.
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

	prodSize, err := sink.RunSize(ctx, schemas.TableProduction, runID)
	if err != nil {
		return nil, err
	}
	replaySize, err := sink.RunSize(ctx, schemas.TableReplay, runID)
	if err != nil {
		return nil, err
	}
	if prodSize.Rows == 0 && replaySize.Rows == 0 {
		return nil, fmt.Errorf("%w: run %q in %s and %s; check the run ID", ErrEmptyRun, runID,
			sink.QualifiedName(schemas.TableProduction), sink.QualifiedName(schemas.TableReplay))
	}
	logger.Info("comparing run", "run_id", runID, "production_rows", prodSize.Rows, "replay_rows", replaySize.Rows,
		"replay_file_bytes", replaySize.Bytes, "memory_budget", cfg.MemoryBudget, "workers", cfg.workers())

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
		cfg:    cfg,
		sink:   sink,
		runID:  runID,
		norm:   norm,
		logger: logger,
		dir:    dir,
		agg:    newAggregator(mw),
		prog:   newProgress(opts.Progress, opts.Logger, runID, prodSize.Rows+replaySize.Rows),
		stream: stream.New().WithMaxGoroutines(cfg.workers()),
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
		"only_production", sum.Overall.OnlyProduction, "only_replay", sum.Overall.OnlyReplay,
		"match_rate", sum.MatchRate, "endpoints", len(sum.Endpoints), "spilled", sum.Spilled,
		"duration", time.Since(start))

	return sum, nil
}

// job is the state of one Run.
type job struct {
	cfg     Config
	sink    *sinks.Iceberg
	runID   string
	norm    *normalize.Normalizer
	logger  *slog.Logger
	dir     string
	seeds   []maphash.Seed // per depth of partitioning
	agg     *aggregator
	prog    *progress
	stream  *stream.Stream
	chunk   []pair
	spilled bool
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

// scan calls fn for every row of one side of the run, with the reader of
// its batch.
func (j *job) scan(ctx context.Context, tableName string, fn func(br *batchReader, i int) error) error {
	columns, withErrorKind := productionColumns, false
	if tableName == schemas.TableReplay {
		columns, withErrorKind = replayColumns, true
	}
	batches, err := j.sink.ScanRunBatches(ctx, tableName, j.runID, columns...)
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
			br, err := newBatchReader(rec, withErrorKind)
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

// join reads both sides and emits every pair. The replay side is the build
// side: a run's replay rows are usually a subset of its production rows (not
// every request is replayed). While they fit cfg.MemoryBudget, they are held
// in a hash table and the production side streams past it. Once they do not,
// the join becomes a grace hash join: the rows held so far and all that
// follow go to cfg.Partitions spill files by hash of the correlation ID, the
// production side is partitioned the same way, and each partition is then
// joined in memory on its own. Within a partition rows keep their scan
// order, so both paths pair the same rows.
func (j *job) join(ctx context.Context) error {
	table := buildTable{}
	var (
		held        int64
		replayParts *partitionFiles
	)
	defer func() {
		if replayParts != nil {
			_ = replayParts.close()
		}
	}()
	j.prog.setPhase("reading " + schemas.TableReplay)
	err := j.scan(ctx, schemas.TableReplay, func(br *batchReader, i int) error {
		r := br.row(i)
		if replayParts != nil {
			return replayParts.writers[j.partition(r.cid)].write(r)
		}
		table.insert(r)
		held += r.size()
		if held <= j.cfg.MemoryBudget {
			return nil
		}
		j.spilled = true
		j.logger.Info("replay rows exceed the memory budget; spilling the join to disk", "run_id", j.runID,
			"held_bytes", held, "memory_budget", j.cfg.MemoryBudget, "partitions", j.cfg.Partitions, "dir", j.dir)
		j.prog.setPhase("partitioning " + schemas.TableReplay)
		var err error
		if replayParts, err = createPartitions(j.dir, "replay", j.cfg.Partitions); err != nil {
			return err
		}
		for cid, head := range table {
			w := replayParts.writers[j.partition(cid)]
			for r := head; r != nil; r = r.next {
				if err := w.write(r); err != nil {
					return err
				}
			}
		}
		table = nil

		return nil
	})
	if err != nil {
		return err
	}

	if replayParts == nil {
		j.prog.setPhase("comparing")
		err := j.scan(ctx, schemas.TableProduction, func(br *batchReader, i int) error {
			// A production row without a replay row needs no body.
			if r := table.pop(br.cid.Value(i)); r != nil {
				return j.emit(pair{production: br.row(i), replay: r})
			}

			return j.emit(pair{production: br.light(i)})
		})
		if err != nil {
			return err
		}

		return table.drain(j.emit)
	}

	if err := replayParts.close(); err != nil {
		return err
	}
	j.prog.setPhase("partitioning " + schemas.TableProduction)
	prodParts, err := createPartitions(j.dir, "production", j.cfg.Partitions)
	if err != nil {
		return err
	}
	err = j.scan(ctx, schemas.TableProduction, func(br *batchReader, i int) error {
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
		if err := j.joinPartition(replayParts.paths[i], prodParts.paths[i], 0); err != nil {
			return fmt.Errorf("join partition %d of %d: %w", i, j.cfg.Partitions, err)
		}
	}
	if j.overBudget > 0 {
		j.logger.Warn("spill partitions still over the memory budget after splitting were joined in memory; raise partitions or memory_budget",
			"run_id", j.runID, "partitions", j.overBudget, "largest_bytes", j.overBudgetMax, "memory_budget", j.cfg.MemoryBudget)
	}

	return nil
}

// maxSpillDepth bounds how often a partition over the memory budget is
// split again. Past it (a correlation ID with a great many rows, or a budget
// far too small for the rows) the partition is joined in memory anyway.
const maxSpillDepth = 3

// errOverBudget stops reading a partition that does not fit the budget.
var errOverBudget = errors.New("partition over the memory budget")

// joinPartition joins one partition's spill files, then removes them. A
// partition whose replay rows do not fit the memory budget is split into
// cfg.Partitions smaller ones by another hash of the correlation ID, and
// each of those is joined in turn.
func (j *job) joinPartition(replayPath, prodPath string, depth int) error {
	table := buildTable{}
	var held int64
	err := readSpill(replayPath, func(r *sideRow) error {
		table.insert(r)
		held += r.size()
		if held > j.cfg.MemoryBudget && depth < maxSpillDepth && j.cfg.Partitions > 1 {
			return errOverBudget
		}

		return nil
	})
	if errors.Is(err, errOverBudget) {
		return j.splitPartition(replayPath, prodPath, depth+1)
	}
	if err != nil {
		return err
	}
	if held > j.cfg.MemoryBudget {
		j.overBudget++
		j.overBudgetMax = max(j.overBudgetMax, held)
	}
	err = readSpill(prodPath, func(p *sideRow) error {
		return j.emit(pair{production: p, replay: table.pop(p.cid)})
	})
	if err != nil {
		return err
	}
	if err := table.drain(j.emit); err != nil {
		return err
	}

	return errors.Join(os.Remove(replayPath), os.Remove(prodPath))
}

// splitPartition re-partitions both files of a partition with the hash of
// the given depth, removes them, and joins the parts.
func (j *job) splitPartition(replayPath, prodPath string, depth int) error {
	split := func(path string) ([]string, error) {
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
	replayParts, err := split(replayPath)
	if err != nil {
		return err
	}
	prodParts, err := split(prodPath)
	if err != nil {
		return err
	}
	for i := range replayParts {
		if err := j.joinPartition(replayParts[i], prodParts[i], depth); err != nil {
			return err
		}
	}

	return nil
}
