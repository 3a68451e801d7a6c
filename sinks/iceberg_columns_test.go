package sinks

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"

	"github.com/replaykit/replay/schemas"
)

// createOlderTable creates the named table in cfg's warehouse with the
// schema an earlier version of replay gave it (want without its last
// columns), and writes rows into it with that schema, the way that version
// did.
func createOlderTable(t *testing.T, cfg IcebergConfig, name string, want *iceberg.Schema, dropped int, rows arrow.RecordBatch) {
	t.Helper()
	ctx := t.Context()
	cat, _, err := loadCatalog(ctx, cfg.Catalog, cfg.S3, false)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if c, ok := cat.(catalog.Closer); ok {
			if err := c.Close(); err != nil {
				t.Error(err)
			}
		}
	}()
	ns := catalog.ToIdentifier(cfg.Namespace)
	if err := ensureNamespace(ctx, cat, ns); err != nil {
		t.Fatal(err)
	}
	fields := want.Fields()
	older := iceberg.NewSchemaWithIdentifiers(0, want.IdentifierFieldIDs, fields[:len(fields)-dropped]...)
	opts := []catalog.CreateTableOpt{}
	if spec := schemas.PartitionSpec(name); spec != nil {
		opts = append(opts, catalog.WithPartitionSpec(spec))
	} else {
		opts = append(opts, catalog.WithPartitionSpec(schemas.ComparisonPartitionSpec(name)))
	}
	tbl, err := cat.CreateTable(ctx, append(slices.Clone(ns), name), older, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if rows == nil {
		return
	}
	sc := rows.Schema()
	old := array.NewRecordBatch(arrow.NewSchema(sc.Fields()[:sc.NumFields()-dropped], nil), rows.Columns()[:sc.NumFields()-dropped], rows.NumRows())
	defer old.Release()
	rdr, err := array.NewRecordReader(old.Schema(), []arrow.RecordBatch{old})
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Release()
	txn := tbl.NewTransaction()
	if err := txn.Append(ctx, rdr, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := txn.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestOpenAddsTheColumnsAnOlderTableLacks(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	old := &schemas.ReplayRow{RunID: testRun, CorrelationID: "old-1", CapturedAt: at, Attempts: 1,
		Request: schemas.Request{Method: "GET", Path: "/v1/a"}}
	b := schemas.NewReplayBuilder(memory.DefaultAllocator)
	if err := b.Append(old); err != nil {
		t.Fatal(err)
	}
	rec := b.NewRecord()
	b.Release()
	// replay_responses as the version before amplified_from wrote it.
	createOlderTable(t, cfg, schemas.TableReplay, schemas.IcebergSchema(schemas.TableReplay), 1, rec)
	rec.Release()

	s, _ := openTest(t, dir)
	tbl, err := s.loadTable(t.Context(), schemas.TableReplay)
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := tbl.Schema().FindFieldByName("amplified_from"); !ok || f.ID != 30 || f.Required {
		t.Fatalf("after open, amplified_from = %+v (found %v), want optional field 30", f, ok)
	}
	if err := checkSchema(tbl.Schema(), schemas.IcebergSchema(schemas.TableReplay)); err != nil {
		t.Fatal(err)
	}
	schemaID := tbl.Schema().ID

	src := schemas.Coordinates{Topic: testTopic, Partition: 0, Offset: 0}
	replay := &schemas.ReplayRow{RunID: testRun, CorrelationID: "new-1", CapturedAt: at, Source: src, Attempts: 1,
		Request: schemas.Request{Method: "GET", Path: "/v1/b"}, Response: &schemas.Response{Status: 200}}
	cp := *replay
	cp.CorrelationID, cp.AmplifiedFrom = "new-1#2", "new-1"
	addAll(t, s, []*schemas.Result{{Source: src, Replay: replay, Copies: []*schemas.ReplayRow{&cp}}})
	flush(t, s)

	got := map[string]string{}
	scanned, err := s.ScanRun(t.Context(), schemas.TableReplay, testRun, "correlation_id", "amplified_from")
	if err != nil {
		t.Fatal(err)
	}
	defer scanned.Release()
	eachRow(t, scanned, func(rec arrow.RecordBatch, i int) {
		from := col[*array.String](rec, "amplified_from")
		v := "<null>"
		if from.IsValid(i) {
			v = from.Value(i)
		}
		got[strings.Clone(col[*array.String](rec, "correlation_id").Value(i))] = v
	})
	want := map[string]string{"old-1": "<null>", "new-1": "<null>", "new-1#2": "new-1"}
	if !maps.Equal(got, want) {
		t.Errorf("replay_responses rows = %v, want %v", got, want)
	}

	// Opening again changes nothing.
	again, _ := openTest(t, dir)
	tbl, err = again.loadTable(t.Context(), schemas.TableReplay)
	if err != nil {
		t.Fatal(err)
	}
	if tbl.Schema().ID != schemaID {
		t.Errorf("opening again changed the schema from %d to %d", schemaID, tbl.Schema().ID)
	}
}

func TestOpenRefusesATableItCannotEvolve(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	// A replay_responses whose last column is something else: the missing
	// column would not get its field ID, so the table is refused, naming it.
	want := schemas.IcebergSchema(schemas.TableReplay)
	fields := want.Fields()
	other := fields[len(fields)-1]
	other.Name, other.Type = "something_else", iceberg.PrimitiveTypes.Int64
	sc := iceberg.NewSchemaWithIdentifiers(0, want.IdentifierFieldIDs, append(fields[:len(fields)-1:len(fields)-1], other)...)
	createOlderTable(t, cfg, schemas.TableReplay, sc, 0, nil)

	_, err := OpenIceberg(t.Context(), cfg, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "replay.replay_responses") || !strings.Contains(err.Error(), "amplified_from") {
		t.Fatalf("OpenIceberg = %v, want an error naming replay.replay_responses and amplified_from", err)
	}
}

func TestReplaceRunAddsTheColumnsAnOlderTableLacks(t *testing.T) {
	dir := t.TempDir()
	// comparison_summary as the version before replay_amplified and
	// duplicates wrote it, with a row of run "old".
	rows := summaryRows(t, memory.DefaultAllocator, "old", 3, "*")
	createOlderTable(t, testConfig(dir), schemas.TableComparisonSummary, schemas.ComparisonSchema(schemas.TableComparisonSummary), 2, rows)
	rows.Release()

	s, mem := openTest(t, dir)
	fresh := summaryRows(t, mem, "new", 5, "*")
	defer fresh.Release()
	if err := s.ReplaceRun(t.Context(), schemas.TableComparisonSummary, "new", rowsOf(fresh)); err != nil {
		t.Fatal(err)
	}
	if got := summaryContent(t, s, "old"); !maps.Equal(got, map[string]int64{"*": 3}) {
		t.Errorf("run old = %v, want its row kept", got)
	}
	if got := summaryContent(t, s, "new"); !maps.Equal(got, map[string]int64{"*": 5}) {
		t.Errorf("run new = %v", got)
	}
	tbl, _, err := s.loadReadTable(t.Context(), schemas.TableComparisonSummary)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkSchema(tbl.Schema(), schemas.ComparisonSchema(schemas.TableComparisonSummary)); err != nil {
		t.Error(err)
	}
}
