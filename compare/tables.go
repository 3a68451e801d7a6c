package compare

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/replaykit/replay/schemas"
)

// The rows compare writes: comparison_summary (built in memory, one row per
// endpoint) and comparison_mismatches (one row per mismatched pair, however
// many: they go to an Arrow IPC stream file in the spill directory as they
// are found, and the sink reads that file back to write the table). The IPC
// stream is the natural format here, unlike the join's spill files: the rows
// are already Arrow records, the sink takes an array.RecordReader, and
// ipc.NewReader is one.

// Flush a batch of mismatch rows to the file at whichever bound comes first.
const (
	mismatchBatchRows  = 1024
	mismatchBatchBytes = 16 << 20
)

// builderField returns the typed builder of the named column.
func builderField[T array.Builder](b *array.RecordBuilder, name string) T {
	idx := b.Schema().FieldIndices(name)
	if len(idx) != 1 {
		panic(fmt.Sprintf("compare: no column %q in %v", name, b.Schema()))
	}

	return b.Field(idx[0]).(T)
}

// mismatchWriter turns mismatches into comparison_mismatches rows in an
// Arrow IPC stream file.
type mismatchWriter struct {
	runID      string
	comparedAt arrow.Timestamp
	mem        memory.Allocator
	path       string
	f          *os.File
	bw         *bufio.Writer
	w          *ipc.Writer
	b          *array.RecordBuilder

	runIDs, cid, endpoint      *array.StringBuilder
	prodStatus, replayStatus   *array.Int32Builder
	errKind, patch             *array.StringBuilder
	paths                      *array.ListBuilder
	prodBody, replayBody       *array.BinaryBuilder
	prodRaw, replayRaw         *array.BinaryBuilder
	prodLineage, replayLineage *array.MapBuilder
	comparedAtCol              *array.TimestampBuilder
	bodyMode                   *array.StringBuilder
	rows                       int
	bytes                      int64
	total                      int64
}

func newMismatchWriter(path, runID string, comparedAt time.Time, mem memory.Allocator) (*mismatchWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create mismatch spill file: %w", err)
	}
	sc := schemas.ComparisonArrowSchema(schemas.TableComparisonMismatches)
	bw := bufio.NewWriterSize(f, 1<<20)
	b := array.NewRecordBuilder(mem, sc)
	m := &mismatchWriter{
		runID:      runID,
		comparedAt: arrow.Timestamp(comparedAt.UnixMicro()),
		mem:        mem,
		path:       path,
		f:          f,
		bw:         bw,
		w:          ipc.NewWriter(bw, ipc.WithSchema(sc), ipc.WithAllocator(mem)),
		b:          b,

		runIDs:        builderField[*array.StringBuilder](b, "run_id"),
		cid:           builderField[*array.StringBuilder](b, "correlation_id"),
		endpoint:      builderField[*array.StringBuilder](b, "endpoint"),
		prodStatus:    builderField[*array.Int32Builder](b, "production_status"),
		replayStatus:  builderField[*array.Int32Builder](b, "replay_status"),
		errKind:       builderField[*array.StringBuilder](b, "replay_error_kind"),
		patch:         builderField[*array.StringBuilder](b, "patch"),
		paths:         builderField[*array.ListBuilder](b, "paths"),
		prodBody:      builderField[*array.BinaryBuilder](b, "production_body"),
		replayBody:    builderField[*array.BinaryBuilder](b, "replay_body"),
		prodRaw:       builderField[*array.BinaryBuilder](b, "production_raw"),
		replayRaw:     builderField[*array.BinaryBuilder](b, "replay_raw"),
		prodLineage:   builderField[*array.MapBuilder](b, "production_lineage"),
		replayLineage: builderField[*array.MapBuilder](b, "replay_lineage"),
		comparedAtCol: builderField[*array.TimestampBuilder](b, "compared_at"),
		bodyMode:      builderField[*array.StringBuilder](b, "body_mode"),
	}

	return m, nil
}

// add appends the row of one mismatched pair, writing a batch to the file
// when one is full.
func (m *mismatchWriter) add(o *outcome) error {
	p, r, res := o.production, o.replay, &o.result
	n := int64(128)
	m.runIDs.Append(m.runID)
	m.cid.Append(p.cid)
	m.endpoint.Append(o.endpoint)
	appendStatus(m.prodStatus, p.status)
	appendStatus(m.replayStatus, r.status)
	schemas.AppendOptString(m.errKind, r.errKind)
	if len(res.Patch) == 0 {
		m.patch.AppendNull()
	} else {
		m.patch.BinaryBuilder.Append(res.Patch)
	}
	m.paths.Append(true)
	values := m.paths.ValueBuilder().(*array.StringBuilder)
	for _, path := range res.Paths {
		values.Append(path)
		n += int64(len(path)) + 4
	}
	n += schemas.AppendBinary(m.prodBody, res.Production)
	n += schemas.AppendBinary(m.replayBody, res.Replay)
	n += schemas.AppendBinary(m.prodRaw, p.body)
	n += schemas.AppendBinary(m.replayRaw, r.body)
	n += schemas.AppendStringMap(m.prodLineage, p.lineage)
	n += schemas.AppendStringMap(m.replayLineage, r.lineage)
	m.comparedAtCol.Append(m.comparedAt)
	schemas.AppendOptString(m.bodyMode, res.BodyMode)
	m.rows++
	m.total++
	m.bytes += n + int64(len(p.cid)+len(o.endpoint)+len(res.Patch))
	if m.rows >= mismatchBatchRows || m.bytes >= mismatchBatchBytes {
		return m.flush()
	}

	return nil
}

func appendStatus(b *array.Int32Builder, status int) {
	if status == 0 {
		b.AppendNull()

		return
	}
	b.Append(int32(status))
}

// flush writes the rows built so far as one batch.
func (m *mismatchWriter) flush() error {
	if m.rows == 0 {
		return nil
	}
	rec := m.b.NewRecordBatch()
	defer rec.Release()
	m.rows, m.bytes = 0, 0
	if err := m.w.Write(rec); err != nil {
		return fmt.Errorf("write mismatch spill file %s: %w", m.path, err)
	}

	return nil
}

// close writes what is left and closes the file; the builder is released
// either way.
func (m *mismatchWriter) close() error {
	err := m.flush()
	if err == nil {
		err = m.w.Close()
	}
	if err == nil {
		err = m.bw.Flush()
	}
	if cerr := m.f.Close(); err == nil {
		err = cerr
	}
	m.b.Release()
	if err != nil {
		return fmt.Errorf("close mismatch spill file %s: %w", m.path, err)
	}

	return nil
}

// discard releases the builder and closes the file after a failure.
func (m *mismatchWriter) discard() {
	m.b.Release()
	_ = m.w.Close()
	_ = m.f.Close()
}

// open returns a reader of the mismatch rows written. Releasing the reader
// closes the file.
func openMismatches(path string, mem memory.Allocator) (array.RecordReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open mismatch spill file: %w", err)
	}
	rdr, err := ipc.NewReader(bufio.NewReaderSize(f, 1<<20), ipc.WithAllocator(mem))
	if err != nil {
		_ = f.Close()

		return nil, fmt.Errorf("read mismatch spill file %s: %w", path, err)
	}
	out := &fileRecordReader{Reader: rdr, f: f}
	out.refs.Store(1)

	return out, nil
}

// fileRecordReader is an IPC reader that closes its file on its last
// Release.
type fileRecordReader struct {
	*ipc.Reader
	f    *os.File
	refs atomic.Int64
}

func (r *fileRecordReader) Retain() { r.refs.Add(1) }

func (r *fileRecordReader) Release() {
	if r.refs.Add(-1) == 0 {
		r.Reader.Release()
		_ = r.f.Close()
	}
}

// topMismatches reads the mismatch rows back and returns the first limit by
// endpoint impact (the endpoint's place in ranks), then correlation ID, with
// bodies truncated for display. It holds at most limit rows.
func topMismatches(path string, mem memory.Allocator, ranks map[string]int, limit int) ([]Mismatch, error) {
	rdr, err := openMismatches(path, mem)
	if err != nil {
		return nil, err
	}
	defer rdr.Release()
	type ranked struct {
		rank int
		m    Mismatch
	}
	less := func(rank int, cid string, x ranked) bool {
		if rank != x.rank {
			return rank < x.rank
		}

		return cid < x.m.CorrelationID
	}
	var top []ranked
	for rdr.Next() {
		rec := rdr.RecordBatch()
		mr, err := newMismatchReader(rec)
		if err != nil {
			return nil, err
		}
		for i := range int(rec.NumRows()) {
			ep, cid := mr.endpoint.Value(i), mr.cid.Value(i)
			rank, ok := ranks[ep]
			if !ok {
				rank = len(ranks)
			}
			if len(top) == limit && !less(rank, cid, top[len(top)-1]) {
				continue
			}
			at, _ := slices.BinarySearchFunc(top, ranked{rank: rank, m: Mismatch{CorrelationID: cid}}, func(x, t ranked) int {
				if x.rank != t.rank {
					return cmp.Compare(x.rank, t.rank)
				}

				return strings.Compare(x.m.CorrelationID, t.m.CorrelationID)
			})
			if len(top) == limit {
				top = top[:limit-1]
			}
			top = slices.Insert(top, at, ranked{rank: rank, m: mr.mismatch(i)})
		}
	}
	if err := rdr.Err(); err != nil {
		return nil, fmt.Errorf("read mismatch spill file %s: %w", path, err)
	}
	out := make([]Mismatch, len(top))
	for i, t := range top {
		out[i] = t.m
	}

	return out, nil
}

// mismatchReader reads Mismatch values out of comparison_mismatches
// records.
type mismatchReader struct {
	cid, endpoint, errKind, patch *array.String
	prodStatus, replayStatus      *array.Int32
	paths                         *array.List
	prodBody, replayBody          *array.Binary
	prodRaw, replayRaw            *array.Binary
	prodLineage, replayLineage    *array.Map
	bodyMode                      *array.String
}

func newMismatchReader(rec arrow.RecordBatch) (mr *mismatchReader, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unexpected comparison_mismatches columns %v: %v", rec.Schema(), r)
		}
	}()
	col := func(name string) arrow.Array {
		idx := rec.Schema().FieldIndices(name)
		if len(idx) != 1 {
			panic("no column " + name)
		}

		return rec.Column(idx[0])
	}

	return &mismatchReader{
		cid:           col("correlation_id").(*array.String),
		endpoint:      col("endpoint").(*array.String),
		errKind:       col("replay_error_kind").(*array.String),
		patch:         col("patch").(*array.String),
		prodStatus:    col("production_status").(*array.Int32),
		replayStatus:  col("replay_status").(*array.Int32),
		paths:         col("paths").(*array.List),
		prodBody:      col("production_body").(*array.Binary),
		replayBody:    col("replay_body").(*array.Binary),
		prodRaw:       col("production_raw").(*array.Binary),
		replayRaw:     col("replay_raw").(*array.Binary),
		prodLineage:   col("production_lineage").(*array.Map),
		replayLineage: col("replay_lineage").(*array.Map),
		bodyMode:      col("body_mode").(*array.String),
	}, nil
}

// mismatch copies row i out, bodies truncated to displayBodyLimit.
func (mr *mismatchReader) mismatch(i int) Mismatch {
	m := Mismatch{
		CorrelationID:     strings.Clone(mr.cid.Value(i)),
		Endpoint:          strings.Clone(mr.endpoint.Value(i)),
		ProductionStatus:  int(mr.prodStatus.Value(i)),
		ReplayStatus:      int(mr.replayStatus.Value(i)),
		ReplayErrorKind:   optString(mr.errKind, i),
		Patch:             optString(mr.patch, i),
		ProductionBody:    displayBody(mr.prodBody, i),
		ReplayBody:        displayBody(mr.replayBody, i),
		ProductionRaw:     displayBody(mr.prodRaw, i),
		ReplayRaw:         displayBody(mr.replayRaw, i),
		ProductionLineage: readStringMap(mr.prodLineage, i),
		ReplayLineage:     readStringMap(mr.replayLineage, i),
		BodyMode:          optString(mr.bodyMode, i),
	}
	if mr.prodStatus.IsNull(i) {
		m.ProductionStatus = 0
	}
	if mr.replayStatus.IsNull(i) {
		m.ReplayStatus = 0
	}
	m.Paths = []string{}
	if mr.paths.IsValid(i) {
		values := mr.paths.ListValues().(*array.String)
		start, end := mr.paths.ValueOffsets(i)
		for j := int(start); j < int(end); j++ {
			m.Paths = append(m.Paths, strings.Clone(values.Value(j)))
		}
	}

	return m
}

func displayBody(a *array.Binary, i int) []byte {
	if a.IsNull(i) {
		return nil
	}

	return bytes.Clone(truncate(a.Value(i), displayBodyLimit))
}

// summaryRecord builds the comparison_summary rows: the whole run, then one
// per endpoint in impact order.
func summaryRecord(mem memory.Allocator, runID string, comparedAt time.Time, rows []Counts) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, schemas.ComparisonArrowSchema(schemas.TableComparisonSummary))
	defer b.Release()
	str := func(name string) *array.StringBuilder { return builderField[*array.StringBuilder](b, name) }
	long := func(name string) *array.Int64Builder { return builderField[*array.Int64Builder](b, name) }
	dbl := func(name string) *array.Float64Builder { return builderField[*array.Float64Builder](b, name) }
	ts := builderField[*array.TimestampBuilder](b, "compared_at")
	for _, c := range rows {
		str("run_id").Append(runID)
		str("endpoint").Append(c.Endpoint)
		ts.Append(arrow.Timestamp(comparedAt.UnixMicro()))
		if r := c.MatchRate(); r != nil {
			dbl("match_rate").Append(*r)
		} else {
			dbl("match_rate").AppendNull() // undefined: no pair compared
		}
		for name, v := range map[string]int64{
			"production_total": c.ProductionTotal, "replay_total": c.ReplayTotal, "joined": c.Joined,
			"only_production": c.OnlyProduction, "only_replay": c.OnlyReplay, "matched": c.Matched,
			"mismatched": c.Mismatched, "lineage_excluded": c.LineageExcluded, "noise_excluded": c.NoiseExcluded,
			"production_passing": c.ProductionPassing, "production_failing": c.ProductionFailing,
			"replay_passing": c.ReplayPassing, "replay_failing": c.ReplayFailing, "replay_amplified": c.ReplayAmplified,
			"duplicates": c.Duplicates,
		} {
			long(name).Append(v)
		}
		for name, v := range map[string]float64{
			"production_p50_ms": c.ProductionP50, "production_p90_ms": c.ProductionP90, "production_p99_ms": c.ProductionP99,
			"replay_p50_ms": c.ReplayP50, "replay_p90_ms": c.ReplayP90, "replay_p99_ms": c.ReplayP99,
		} {
			dbl(name).Append(v)
		}
	}

	return b.NewRecordBatch()
}

// recordReaderOf returns a function opening a new reader of rec, for the
// sink's retries.
func recordReaderOf(rec arrow.RecordBatch) func() (array.RecordReader, error) {
	return func() (array.RecordReader, error) {
		return array.NewRecordReader(rec.Schema(), []arrow.RecordBatch{rec})
	}
}
