package sinks

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go/catalog"

	"github.com/replaykit/replay/schemas"
)

// Tests of the read and replace helpers compare uses (iceberg_read.go,
// iceberg_replace.go).

func TestScanRunBatchesStreamsOneRun(t *testing.T) {
	s, _ := openTest(t, t.TempDir())
	results, wants := makeResults(60, 0)
	addAll(t, s, results)
	other := &schemas.Result{
		Source: schemas.Coordinates{Topic: testTopic, Partition: 0, Offset: 1000},
		Production: &schemas.ProductionRow{RunID: "another-run", Exchange: &schemas.Exchange{
			CorrelationID: "x", CapturedAt: time.Now(), Request: schemas.Request{Method: "GET", Path: "/"},
		}},
	}
	addAll(t, s, []*schemas.Result{other})
	if _, err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}

	batches, err := s.ScanRunBatches(t.Context(), schemas.TableProduction, testRun, "correlation_id", "response_status")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for rec, err := range batches {
		if err != nil {
			t.Fatal(err)
		}
		if got := rec.Schema().NumFields(); got != 2 {
			t.Errorf("batch has %d columns, want the 2 selected: %v", got, rec.Schema())
		}
		cids := col[*array.String](rec, "correlation_id")
		statuses := col[*array.Int32](rec, "response_status")
		for i := range cids.Len() {
			id := cids.Value(i)
			ids = append(ids, id)
			if got, want := int32OrZero(statuses, i), wants[id].status; got != want {
				t.Errorf("%s: status %d, want %d", id, got, want)
			}
		}
		rec.Release()
	}
	want := int(count(wants, func(w want) bool { return w.production }))
	if len(ids) != want || slices.Contains(ids, "x") {
		t.Errorf("scanned %d rows (%v), want the run's %d production rows", len(ids), ids, want)
	}

	// Stopping early releases what the scan holds (the checked allocator
	// of openTest finds any leak).
	batches, err = s.ScanRunBatches(t.Context(), schemas.TableReplay, testRun)
	if err != nil {
		t.Fatal(err)
	}
	for rec, err := range batches {
		if err != nil {
			t.Fatal(err)
		}
		rec.Release()

		break
	}

	size, err := s.RunSize(t.Context(), schemas.TableProduction, testRun)
	if err != nil {
		t.Fatal(err)
	}
	if size.Rows != int64(want) || size.Files < 1 || size.Bytes <= 0 {
		t.Errorf("run size = %+v, want %d rows in at least one file", size, want)
	}
	if size, err := s.RunSize(t.Context(), schemas.TableProduction, "no-such-run"); err != nil || size != (RunSize{}) {
		t.Errorf("run size of an unknown run = %+v, %v", size, err)
	}

	if _, err := s.ScanRunBatches(t.Context(), "nope", testRun); err == nil || !strings.Contains(err.Error(), "unknown table") {
		t.Errorf("unknown table: err = %v", err)
	}
	_, err = s.ScanRunBatches(t.Context(), schemas.TableComparisonSummary, testRun)
	if !errors.Is(err, catalog.ErrNoSuchTable) {
		t.Errorf("comparison table not created yet: err = %v, want ErrNoSuchTable", err)
	}
}

// summaryRows builds comparison_summary rows: one per endpoint, every
// optional column null but matched, which holds n.
func summaryRows(t *testing.T, mem memory.Allocator, runID string, n int64, endpoints ...string) arrow.RecordBatch {
	t.Helper()
	b := array.NewRecordBuilder(mem, schemas.ComparisonArrowSchema(schemas.TableComparisonSummary))
	defer b.Release()
	for _, ep := range endpoints {
		for i, f := range b.Schema().Fields() {
			switch f.Name {
			case "run_id":
				b.Field(i).(*array.StringBuilder).Append(runID)
			case "endpoint":
				b.Field(i).(*array.StringBuilder).Append(ep)
			case "compared_at":
				b.Field(i).(*array.TimestampBuilder).Append(arrow.Timestamp(time.Now().UnixMicro()))
			case "matched":
				b.Field(i).(*array.Int64Builder).Append(n)
			default:
				b.Field(i).AppendNull()
			}
		}
	}

	return b.NewRecordBatch()
}

func rowsOf(rec arrow.RecordBatch) func() (array.RecordReader, error) {
	return func() (array.RecordReader, error) {
		return array.NewRecordReader(rec.Schema(), []arrow.RecordBatch{rec})
	}
}

// summaryContent returns endpoint → matched of one run.
func summaryContent(t *testing.T, s *Iceberg, runID string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	batches, err := s.ScanRunBatches(t.Context(), schemas.TableComparisonSummary, runID)
	if err != nil {
		t.Fatal(err)
	}
	for rec, err := range batches {
		if err != nil {
			t.Fatal(err)
		}
		eps, matched := col[*array.String](rec, "endpoint"), col[*array.Int64](rec, "matched")
		for i := range eps.Len() {
			if _, dup := out[eps.Value(i)]; dup {
				t.Errorf("run %s holds %s twice", runID, eps.Value(i))
			}
			out[eps.Value(i)] = matched.Value(i)
		}
		rec.Release()
	}

	return out
}

func TestReplaceRunReplacesOneRun(t *testing.T) {
	s, mem := openTest(t, t.TempDir())
	ctx := t.Context()
	const table = schemas.TableComparisonSummary

	a1 := summaryRows(t, mem, "a", 1, "*", "GET /x", "GET /y")
	defer a1.Release()
	b1 := summaryRows(t, mem, "b", 1, "*", "GET /x")
	defer b1.Release()
	a2 := summaryRows(t, mem, "a", 2, "*")
	defer a2.Release()
	empty := summaryRows(t, mem, "a", 0)
	defer empty.Release()

	for n, step := range []struct {
		run   string
		rows  arrow.RecordBatch
		wantA map[string]int64
	}{
		{"a", a1, map[string]int64{"*": 1, "GET /x": 1, "GET /y": 1}}, // creates the table
		{"b", b1, map[string]int64{"*": 1, "GET /x": 1, "GET /y": 1}},
		{"a", a2, map[string]int64{"*": 2}},
		{"a", a2, map[string]int64{"*": 2}}, // idempotent
		{"a", empty, map[string]int64{}},    // no rows: the run's rows are gone
	} {
		if err := s.ReplaceRun(ctx, table, step.run, rowsOf(step.rows)); err != nil {
			t.Fatal(err)
		}
		if got := summaryContent(t, s, "a"); !mapsEqual(got, step.wantA) {
			t.Errorf("step %d, after replacing %s: run a = %v, want %v", n, step.run, got, step.wantA)
		}
		if got, want := summaryContent(t, s, "b"), map[string]int64{"*": 1, "GET /x": 1}; n > 0 && !mapsEqual(got, want) {
			t.Errorf("step %d, after replacing %s: run b = %v, want %v", n, step.run, got, want)
		}
	}

	tbl, _, err := s.loadReadTable(ctx, table)
	if err != nil {
		t.Fatal(err)
	}
	snap := tbl.CurrentSnapshot()
	if snap == nil || snap.Summary.Properties[PropRunID] != "a" || snap.Summary.Properties[PropOperation] != "replace-run" {
		t.Errorf("last snapshot = %+v", snap)
	}
	if spec := tbl.Spec(); spec.NumFields() != 1 || spec.Field(0).Name != "run_id" {
		t.Errorf("partition spec = %v, want identity(run_id)", spec)
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}

	return true
}

func TestReplaceRunRetriesAConflict(t *testing.T) {
	s, mem := openTest(t, t.TempDir())
	ctx := t.Context()
	const table = schemas.TableComparisonSummary
	a := summaryRows(t, mem, "a", 7, "*")
	defer a.Release()
	b := summaryRows(t, mem, "b", 1, "*")
	defer b.Release()
	if err := s.ReplaceRun(ctx, table, "b", rowsOf(b)); err != nil {
		t.Fatal(err)
	}

	// The first attempt's rows are opened after the table was loaded; a
	// concurrent compare of run b commits in between, so that attempt's
	// commit fails and the next one succeeds.
	opens := 0
	err := s.ReplaceRun(ctx, table, "a", func() (array.RecordReader, error) {
		opens++
		if opens == 1 {
			if err := s.ReplaceRun(ctx, table, "b", rowsOf(b)); err != nil {
				return nil, err
			}
		}

		return rowsOf(a)()
	})
	if err != nil {
		t.Fatal(err)
	}
	if opens != 2 {
		t.Errorf("rows opened %d times, want 2 (one conflict, one retry)", opens)
	}
	if got := summaryContent(t, s, "a"); !mapsEqual(got, map[string]int64{"*": 7}) {
		t.Errorf("run a = %v", got)
	}
	if got := summaryContent(t, s, "b"); !mapsEqual(got, map[string]int64{"*": 1}) {
		t.Errorf("run b = %v", got)
	}
}

func TestReplaceRunRejects(t *testing.T) {
	s, mem := openTest(t, t.TempDir())
	ctx := t.Context()
	rows := summaryRows(t, mem, "a", 1, "*")
	defer rows.Release()

	if err := s.ReplaceRun(ctx, schemas.TableProduction, "a", rowsOf(rows)); err == nil ||
		!strings.Contains(err.Error(), "only the comparison tables") {
		t.Errorf("replay table: err = %v", err)
	}
	if err := s.ReplaceRun(ctx, schemas.TableComparisonSummary, "", rowsOf(rows)); err == nil {
		t.Error("empty run ID: no error")
	}
	// The run ID is the comparison tables' partition value: a directory.
	if err := s.ReplaceRun(ctx, schemas.TableComparisonSummary, "../../x", rowsOf(rows)); err == nil ||
		!strings.Contains(err.Error(), `run_id: "../../x" contains ".."`) {
		t.Errorf("run ID escaping the table: err = %v", err)
	}

	// A row of another run is refused at once (no retry) and nothing is
	// committed.
	opens := 0
	err := s.ReplaceRun(ctx, schemas.TableComparisonSummary, "b", func() (array.RecordReader, error) {
		opens++

		return rowsOf(rows)()
	})
	if err == nil || !strings.Contains(err.Error(), `run_id "a", want "b"`) || opens != 1 {
		t.Errorf("row of another run: err = %v after %d opens", err, opens)
	}
	if got := summaryContent(t, s, "a"); len(got) != 0 {
		t.Errorf("run a = %v after a refused replace", got)
	}

	// Rows of another table's schema.
	mb := array.NewRecordBuilder(mem, schemas.ComparisonArrowSchema(schemas.TableComparisonMismatches))
	wrong := mb.NewRecordBatch()
	mb.Release()
	defer wrong.Release()
	if err := s.ReplaceRun(ctx, schemas.TableComparisonSummary, "a", rowsOf(wrong)); err == nil ||
		!strings.Contains(err.Error(), "schema") {
		t.Errorf("wrong schema: err = %v", err)
	}

	// The reader cannot be opened.
	boom := errors.New("boom")
	err = s.ReplaceRun(ctx, schemas.TableComparisonSummary, "a", func() (array.RecordReader, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Errorf("open error: err = %v", err)
	}

	// A cancelled context stops it.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.ReplaceRun(cctx, schemas.TableComparisonSummary, "a", rowsOf(rows)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
}
