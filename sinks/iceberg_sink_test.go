package sinks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/iceberg-go/table"

	"github.com/replaykit/replay/schemas"
)

const (
	testTopic = "captures.v1" // a dot, to exercise the offset property parsing
	testRun   = "run-42"
	testGroup = "replay-test"
)

func testConfig(dir string) IcebergConfig {
	cfg := DefaultIcebergConfig()
	cfg.Catalog.URI = filepath.Join(dir, "catalog.db")
	cfg.Catalog.Warehouse = filepath.Join(dir, "warehouse")
	cfg.Group = testGroup

	return cfg
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))

	return len(p), nil
}

// openTest opens a sink on dir with a checked allocator and registers the
// checks that it is closed and every Arrow buffer released.
func openTest(t *testing.T, dir string) (*Iceberg, *memory.CheckedAllocator) {
	t.Helper()

	return openTestConfig(t, testConfig(dir))
}

// openTestConfig is openTest with a configuration and options of the
// caller's.
func openTestConfig(t *testing.T, cfg IcebergConfig, opts ...Option) (*Iceberg, *memory.CheckedAllocator) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	s, err := OpenIceberg(t.Context(), cfg, testLogger(t), append(opts, WithAllocator(mem))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		mem.AssertSize(t, 0)
	})

	return s, mem
}

// want is what one result should have written.
type want struct {
	production, replay, deadLetter bool
	baseline                       bool  // replayed to the baseline target too
	status                         int32 // 0: null
	replayStatus                   int32 // 0: null
	baselineBody                   []byte
	reqBody, respBody              []byte
	reqHeaders                     map[string][]string
	raw                            []byte
	amplifiedFrom                  string // replay copies
}

// makeResults returns n results spread over two partitions, starting at
// offset first: every 10th a dead letter, every 3rd without a production
// response, every 2nd replayed (every 4th of those failing, every 3rd
// amplified with two copies) to the target and to the baseline target,
// bodies with bytes that are not UTF-8.
func makeResults(n int, first int64) ([]*schemas.Result, map[string]want) {
	base := time.Date(2026, 11, 21, 23, 59, 0, 0, time.UTC) // crosses a day boundary
	wants := map[string]want{}
	var out []*schemas.Result
	for i := range n {
		src := schemas.Coordinates{Topic: testTopic, Partition: int32(i % 2), Offset: first + int64(i/2)}
		id := fmt.Sprintf("c-%d-%d", src.Partition, src.Offset)
		at := base.Add(time.Duration(i) * time.Second)
		r := &schemas.Result{Source: src}
		if i%10 == 9 {
			raw := []byte{'{', 0xff, byte(i), 0x00}
			r.DeadLetter = &schemas.DeadLetterRow{
				RunID: testRun, CorrelationID: id, CapturedAt: at, ReceivedAt: at.Add(time.Millisecond),
				Source: src, Key: []byte("k"), Raw: raw, Reason: "bad_json", Error: "invalid character",
			}
			wants[id] = want{deadLetter: true, raw: raw}
			out = append(out, r)

			continue
		}
		w := want{
			production: true,
			reqBody:    []byte{0xde, 0xad, 0xbe, 0xef, byte(i), 0xc3},
			reqHeaders: map[string][]string{"Accept": {"application/json", "text/html"}, "X-Request": {id}},
		}
		x := &schemas.Exchange{
			Source: src, CorrelationID: id, CapturedAt: at,
			Request: schemas.Request{Method: "POST", Scheme: "https", Host: "api.example.com",
				Path: "/v1/titles/" + id, Headers: w.reqHeaders, Body: w.reqBody},
			Lineage: map[string]string{"svc": "v1"},
		}
		if i%3 != 0 {
			w.status = int32(200 + i%5)
			w.respBody = []byte(fmt.Sprintf(`{"i":%d,"bin":"%s"}`, i, []byte{0xfe}))
			x.Response = &schemas.Response{Status: int(w.status), Body: w.respBody, LatencyMS: float64(i),
				Headers: map[string][]string{"Content-Type": {"application/json"}}}
		}
		r.Production = &schemas.ProductionRow{RunID: testRun, Exchange: x}
		if i%2 == 0 {
			w.replay = true
			rr := &schemas.ReplayRow{RunID: testRun, CorrelationID: id, CapturedAt: at, ReplayedAt: at.Add(time.Hour),
				Target: "http://new:8080", Source: src, Request: x.Request, Attempts: 1}
			if i%4 == 0 {
				rr.ErrorKind, rr.ErrorMessage, rr.Attempts = schemas.ErrorTimeout, "deadline exceeded", 3
			} else {
				w.replayStatus = 200
				rr.Response = &schemas.Response{Status: 200, Body: w.respBody}
			}
			r.Replay = rr
			w.baseline, w.baselineBody = true, fmt.Appendf(nil, `{"i":%d,"baseline":true}`, i)
			r.Baseline = &schemas.ReplayRow{RunID: testRun, CorrelationID: id, CapturedAt: at, ReplayedAt: at.Add(time.Hour),
				Target: "http://old-copy:8080", Source: src, Request: x.Request, Attempts: 1,
				Response: &schemas.Response{Status: 200, Body: w.baselineBody}}
			if i%6 == 2 { // amplified: two extra copies
				for n := 2; n <= 3; n++ {
					cp := *rr
					cp.CorrelationID, cp.AmplifiedFrom = fmt.Sprintf("%s#%d", id, n), id
					r.Copies = append(r.Copies, &cp)
					wants[cp.CorrelationID] = want{replay: true, replayStatus: w.replayStatus, respBody: w.respBody, amplifiedFrom: id}
				}
			}
		}
		wants[id] = w
		out = append(out, r)
	}

	return out, wants
}

func addAll(t *testing.T, s *Iceberg, results []*schemas.Result) {
	t.Helper()
	for _, r := range results {
		if err := s.Add(r); err != nil {
			t.Fatal(err)
		}
	}
}

// eachRecord calls fn for every record of tbl (a scan yields one or more per
// data file).
func eachRecord(t *testing.T, tbl arrow.Table, fn func(rec arrow.RecordBatch)) {
	t.Helper()
	rdr := array.NewTableReader(tbl, 0)
	defer rdr.Release()
	for rdr.Next() {
		fn(rdr.RecordBatch())
	}
	if err := rdr.Err(); err != nil {
		t.Fatal(err)
	}
}

// eachRow calls fn for every row of tbl with its record and row index.
func eachRow(t *testing.T, tbl arrow.Table, fn func(rec arrow.RecordBatch, i int)) {
	t.Helper()
	eachRecord(t, tbl, func(rec arrow.RecordBatch) {
		for i := range int(rec.NumRows()) {
			fn(rec, i)
		}
	})
}

func col[T arrow.Array](rec arrow.RecordBatch, name string) T {
	return rec.Column(rec.Schema().FieldIndices(name)[0]).(T)
}

func int32OrZero(a *array.Int32, i int) int32 {
	if a.IsNull(i) {
		return 0
	}

	return a.Value(i)
}

func bytesOrNil(a *array.Binary, i int) []byte {
	if a.IsNull(i) {
		return nil
	}

	return a.Value(i)
}

func headersAt(m *array.Map, row int) map[string][]string {
	if m.IsNull(row) {
		return nil
	}
	out := map[string][]string{}
	keys, lists := m.Keys().(*array.String), m.Items().(*array.List)
	values := lists.ListValues().(*array.String)
	start, end := m.ValueOffsets(row)
	for j := start; j < end; j++ {
		var vs []string
		v0, v1 := lists.ValueOffsets(int(j))
		for k := v0; k < v1; k++ {
			vs = append(vs, values.Value(int(k)))
		}
		out[keys.Value(int(j))] = vs
	}

	return out
}

func count(wants map[string]want, f func(want) bool) int64 {
	var n int64
	for _, w := range wants {
		if f(w) {
			n++
		}
	}

	return n
}

func TestOpenCreatesTablesAndIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	locations := map[string]string{}
	for _, name := range schemas.TableNames() {
		tbl, err := s.loadTable(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		locations[name] = tbl.MetadataLocation()
		if !tbl.Schema().Equals(schemas.IcebergSchema(name)) {
			t.Errorf("%s: schema\n%v\nwant\n%v", name, tbl.Schema(), schemas.IcebergSchema(name))
		}
		if spec := tbl.Spec(); !spec.Equals(*schemas.PartitionSpec(name)) {
			t.Errorf("%s: partition spec %v, want %v", name, spec, schemas.PartitionSpec(name))
		}
		if !tbl.SortOrder().Equals(schemas.SortOrder(name)) {
			t.Errorf("%s: sort order %v, want %v", name, tbl.SortOrder(), schemas.SortOrder(name))
		}
		for k, v := range testConfig(dir).tableProperties(name) {
			if got := tbl.Properties()[k]; got != v {
				t.Errorf("%s: property %s = %q, want %q", name, k, got, v)
			}
		}
		if loc := s.TableLocation(name); !strings.HasPrefix(loc, "file://"+filepath.ToSlash(dir)) {
			t.Errorf("%s: location %q is not under the warehouse in %s", name, loc, dir)
		}
		if tbl.CurrentSnapshot() != nil {
			t.Errorf("%s: a new table has a snapshot", name)
		}
	}

	// Open the same warehouse again: nothing is recreated or rewritten.
	again, _ := openTest(t, dir)
	for _, name := range schemas.TableNames() {
		tbl, err := again.loadTable(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		if tbl.MetadataLocation() != locations[name] {
			t.Errorf("%s: reopening rewrote the metadata: %s, was %s", name, tbl.MetadataLocation(), locations[name])
		}
	}
	if s.TableLocation("nope") != "" {
		t.Error("TableLocation of an unknown table must be empty")
	}
}

// TestOpenSetsChangedParquetProperties reopens a warehouse with other
// Parquet settings: every table gets them, the properties of a column
// dictionary included, and its data files are written with them.
func TestOpenSetsChangedParquetProperties(t *testing.T) {
	dir := t.TempDir()
	first, _ := openTest(t, dir)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(dir)
	cfg.Compression, cfg.CompressionLevel, cfg.RowGroupBytes, cfg.Dictionary = "gzip", 9, 1<<20, DictionaryRepeated
	s, _ := openTestConfig(t, cfg)
	for _, name := range schemas.TableNames() {
		tbl, err := s.loadTable(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		props := tbl.Properties()
		for k, v := range map[string]string{
			table.ParquetCompressionKey: "gzip", table.ParquetCompressionLevelKey: "9",
			table.ParquetRowGroupSizeBytesKey: "1048576", "parquet.enable.dictionary": "true",
			"write.parquet.dict-encoding-enabled.column.correlation_id": "false",
		} {
			if props[k] != v {
				t.Errorf("%s: property %s = %q, want %q", name, k, props[k], v)
			}
		}
	}
	results, _ := makeResults(20, 0)
	addAll(t, s, results)
	if _, err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(strings.TrimPrefix(s.TableLocation(schemas.TableReplay), "file://"), "data", "*", "*", "*.parquet"))
	if err != nil || len(files) != 1 {
		t.Fatalf("replay_responses data files: %v (%v), want one", files, err)
	}
	f, err := file.OpenParquetFile(files[0], false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rg := f.MetaData().RowGroup(0)
	for i := range rg.NumColumns() {
		c, err := rg.ColumnChunk(i)
		if err != nil {
			t.Fatal(err)
		}
		name := c.PathInSchema().String()
		if c.Compression() != compress.Codecs.Gzip {
			t.Errorf("column %s is compressed with %s, want gzip", name, c.Compression())
		}
		distinct := slices.Contains(schemas.DistinctColumns(schemas.TableReplay), name)
		if name == "correlation_id" || name == "request_method" {
			if c.HasDictionaryPage() == distinct {
				t.Errorf("column %s: dictionary page %v, want %v", name, c.HasDictionaryPage(), !distinct)
			}
		}
	}
}

func TestFlushWritesAndReadsBack(t *testing.T) {
	ctx := t.Context()
	s, _ := openTest(t, t.TempDir())

	results, wants := makeResults(300, 1000)
	addAll(t, s, results)
	rows, size := s.Buffered()
	wantRows := count(wants, func(w want) bool { return w.production }) +
		count(wants, func(w want) bool { return w.replay }) +
		count(wants, func(w want) bool { return w.baseline }) +
		count(wants, func(w want) bool { return w.deadLetter })
	if int64(rows) != wantRows || size <= 0 {
		t.Fatalf("Buffered() = %d rows, %d bytes; want %d rows", rows, size, wantRows)
	}

	offsets, err := s.Flush(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantOffsets := schemas.Offsets{{Topic: testTopic, Partition: 0}: 1150, {Topic: testTopic, Partition: 1}: 1150}
	if !maps.Equal(offsets, wantOffsets) {
		t.Errorf("Flush offsets = %v, want %v", offsets, wantOffsets)
	}
	if rows, size := s.Buffered(); rows != 0 || size != 0 {
		t.Errorf("after Flush, Buffered() = %d, %d", rows, size)
	}

	for name, f := range map[string]func(want) bool{
		schemas.TableProduction:  func(w want) bool { return w.production },
		schemas.TableReplay:      func(w want) bool { return w.replay },
		schemas.TableBaseline:    func(w want) bool { return w.baseline },
		schemas.TableDeadLetters: func(w want) bool { return w.deadLetter },
	} {
		n, err := s.CountRows(ctx, name, testRun)
		if err != nil {
			t.Fatal(err)
		}
		if want := count(wants, f); n != want {
			t.Errorf("CountRows(%s) = %d, want %d", name, n, want)
		}
		if n, err := s.CountRows(ctx, name, "another-run"); err != nil || n != 0 {
			t.Errorf("CountRows(%s, another-run) = %d, %v; want 0", name, n, err)
		}
		got, err := s.CommittedOffsets(ctx, name, testGroup)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, offsets) {
			t.Errorf("CommittedOffsets(%s) = %v, want %v", name, got, offsets)
		}
	}

	prod, err := s.ScanRun(ctx, schemas.TableProduction, testRun)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Release()
	seen := 0
	eachRow(t, prod, func(rec arrow.RecordBatch, i int) {
		id := col[*array.String](rec, "correlation_id").Value(i)
		w, ok := wants[id]
		if !ok || !w.production {
			t.Errorf("unexpected production row %s", id)
			return
		}
		seen++
		if got := int32OrZero(col[*array.Int32](rec, "response_status"), i); got != w.status {
			t.Errorf("%s: status %d, want %d", id, got, w.status)
		}
		if got := bytesOrNil(col[*array.Binary](rec, "request_body"), i); !bytes.Equal(got, w.reqBody) {
			t.Errorf("%s: request body %x, want %x", id, got, w.reqBody)
		}
		if got := bytesOrNil(col[*array.Binary](rec, "response_body"), i); !bytes.Equal(got, w.respBody) || (got == nil) != (w.respBody == nil) {
			t.Errorf("%s: response body %x, want %x", id, got, w.respBody)
		}
		got := headersAt(col[*array.Map](rec, "request_headers"), i)
		if !maps.EqualFunc(got, w.reqHeaders, slices.Equal) {
			t.Errorf("%s: request headers %v, want %v", id, got, w.reqHeaders)
		}
		if w.status == 0 && !col[*array.Map](rec, "response_headers").IsNull(i) {
			t.Errorf("%s: response headers of a missing response are not null", id)
		}
	})
	if want := count(wants, func(w want) bool { return w.production }); int64(seen) != want {
		t.Errorf("scanned %d production rows, want %d", seen, want)
	}

	// Each data file is sorted by correlation_id (the table's sort order).
	eachRecord(t, prod, func(rec arrow.RecordBatch) {
		ids := col[*array.String](rec, "correlation_id")
		for i := 1; i < ids.Len(); i++ {
			if ids.Value(i-1) > ids.Value(i) {
				t.Errorf("rows not sorted by correlation_id: %s before %s", ids.Value(i-1), ids.Value(i))
				return
			}
		}
	})

	// Selected columns only.
	rep, err := s.ScanRun(ctx, schemas.TableReplay, testRun, "correlation_id", "response_status", "error_kind", "response_body", "amplified_from")
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Release()
	if rep.NumCols() != 5 {
		t.Errorf("replay scan has %d columns, want 5", rep.NumCols())
	}
	copies := 0
	eachRow(t, rep, func(rec arrow.RecordBatch, i int) {
		id := col[*array.String](rec, "correlation_id").Value(i)
		w := wants[id]
		if from := col[*array.String](rec, "amplified_from"); from.IsValid(i) != (w.amplifiedFrom != "") || from.IsValid(i) && from.Value(i) != w.amplifiedFrom {
			t.Errorf("%s: amplified_from %q (valid %v), want %q", id, from.ValueStr(i), from.IsValid(i), w.amplifiedFrom)
		} else if from.IsValid(i) {
			copies++
		}
		if got := int32OrZero(col[*array.Int32](rec, "response_status"), i); got != w.replayStatus {
			t.Errorf("%s: replay status %d, want %d", id, got, w.replayStatus)
		}
		kind := col[*array.String](rec, "error_kind")
		if failed := w.replayStatus == 0; failed != kind.IsValid(i) || (failed && kind.Value(i) != schemas.ErrorTimeout) {
			t.Errorf("%s: error_kind valid=%v, want failed=%v", id, kind.IsValid(i), failed)
		}
		if got := bytesOrNil(col[*array.Binary](rec, "response_body"), i); w.replayStatus != 0 && !bytes.Equal(got, w.respBody) {
			t.Errorf("%s: replay body %x, want %x", id, got, w.respBody)
		}
	})

	// The baseline target's rows are in their own table, whole.
	base, err := s.ScanRun(ctx, schemas.TableBaseline, testRun, "correlation_id", "target", "response_body")
	if err != nil {
		t.Fatal(err)
	}
	defer base.Release()
	eachRow(t, base, func(rec arrow.RecordBatch, i int) {
		id := col[*array.String](rec, "correlation_id").Value(i)
		if got := col[*array.String](rec, "target").Value(i); got != "http://old-copy:8080" {
			t.Errorf("%s: baseline target %q", id, got)
		}
		if got := bytesOrNil(col[*array.Binary](rec, "response_body"), i); !bytes.Equal(got, wants[id].baselineBody) {
			t.Errorf("%s: baseline body %s, want %s", id, got, wants[id].baselineBody)
		}
	})
	if want := count(wants, func(w want) bool { return w.amplifiedFrom != "" }); int64(copies) != want || want == 0 {
		t.Errorf("%d amplified copies read back, want %d", copies, want)
	}

	dl, err := s.ScanRun(ctx, schemas.TableDeadLetters, testRun, "correlation_id", "raw")
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Release()
	eachRow(t, dl, func(rec arrow.RecordBatch, i int) {
		id := col[*array.String](rec, "correlation_id").Value(i)
		if got := col[*array.Binary](rec, "raw").Value(i); !bytes.Equal(got, wants[id].raw) {
			t.Errorf("%s: raw %x, want %x", id, got, wants[id].raw)
		}
	})

	// The day partition is real: rows from both sides of midnight landed in
	// two captured_at_day partitions.
	tbl, err := s.loadTable(ctx, schemas.TableProduction)
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	days := map[any]bool{}
	for _, task := range tasks {
		days[task.File.Partition()[1001]] = true
		if got := task.File.Partition()[1000]; got != testRun {
			t.Errorf("file %s has run_id partition %v, want %s", task.File.FilePath(), got, testRun)
		}
	}
	if len(days) != 2 {
		t.Errorf("production files span %d day partitions (%v), want 2", len(days), days)
	}
}

func TestTwoFlushesTwoSnapshots(t *testing.T) {
	ctx := t.Context()
	s, _ := openTest(t, t.TempDir())

	first, _ := makeResults(40, 0)
	addAll(t, s, first)
	off1, err := s.Flush(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The second flush covers partition 0 only.
	second, _ := makeResults(40, 100)
	for _, r := range second {
		if r.Source.Partition == 0 {
			if err := s.Add(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	off2, err := s.Flush(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p0, p1 := schemas.TopicPartition{Topic: testTopic, Partition: 0}, schemas.TopicPartition{Topic: testTopic, Partition: 1}
	if !maps.Equal(off1, schemas.Offsets{p0: 20, p1: 20}) || !maps.Equal(off2, schemas.Offsets{p0: 120}) {
		t.Errorf("offsets = %v then %v; want p0,p1 → 20 then p0 → 120", off1, off2)
	}

	tbl, err := s.loadTable(ctx, schemas.TableProduction)
	if err != nil {
		t.Fatal(err)
	}
	snaps := tbl.Metadata().Snapshots()
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots, want 2", len(snaps))
	}
	props := tbl.CurrentSnapshot().Summary.Properties
	if props[PropGroup] != testGroup || props[PropRunID] != testRun || props[PropOffsetPrefix+testTopic+".0"] != "120" {
		t.Errorf("current snapshot summary = %v", props)
	}
	if _, ok := props[PropOffsetPrefix+testTopic+".1"]; ok {
		t.Errorf("second snapshot records partition 1, which it did not cover: %v", props)
	}

	// The newest value per partition, found walking back through history.
	got, err := s.CommittedOffsets(ctx, schemas.TableProduction, testGroup)
	if err != nil {
		t.Fatal(err)
	}
	if want := (schemas.Offsets{p0: 120, p1: 20}); !maps.Equal(got, want) {
		t.Errorf("CommittedOffsets = %v, want %v", got, want)
	}
	if got, err := s.CommittedOffsets(ctx, schemas.TableProduction, "other-group"); err != nil || len(got) != 0 {
		t.Errorf("CommittedOffsets(other-group) = %v, %v; want none", got, err)
	}
	if n, err := s.CountRows(ctx, schemas.TableProduction, testRun); err != nil || n != 56 {
		t.Errorf("CountRows = %d, %v; want 56 (36, then the 20 of partition 0)", n, err)
	}

	// Nothing added: no commit, empty offsets.
	off3, err := s.Flush(ctx)
	if err != nil || len(off3) != 0 {
		t.Errorf("empty Flush = %v, %v; want no offsets", off3, err)
	}
	if err := tbl.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(tbl.Metadata().Snapshots()); n != 2 {
		t.Errorf("an empty flush made a snapshot: %d snapshots", n)
	}
}

func TestFailedFlushKeepsRows(t *testing.T) {
	s, _ := openTest(t, t.TempDir())
	results, wants := makeResults(60, 0)
	addAll(t, s, results[:30])

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Flush(cancelled); err == nil {
		t.Fatal("Flush with a cancelled context succeeded")
	}
	before, _ := s.Buffered()
	if before == 0 {
		t.Fatal("a failed flush dropped the buffered rows")
	}

	addAll(t, s, results[30:])
	offsets, err := s.Flush(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := (schemas.Offsets{{Topic: testTopic, Partition: 0}: 30, {Topic: testTopic, Partition: 1}: 30}); !maps.Equal(offsets, want) {
		t.Errorf("offsets = %v, want %v", offsets, want)
	}
	n, err := s.CountRows(t.Context(), schemas.TableProduction, testRun)
	if err != nil {
		t.Fatal(err)
	}
	if want := count(wants, func(w want) bool { return w.production }); n != want {
		t.Errorf("production rows = %d, want %d: rows lost or doubled across the failed flush", n, want)
	}
}

func TestAddRejects(t *testing.T) {
	s, _ := openTest(t, t.TempDir())
	results, _ := makeResults(4, 10)
	addAll(t, s, results)

	if err := s.Add(results[0]); err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Errorf("re-adding offset 10 = %v, want an out of order error", err)
	}
	before, _ := s.Buffered()
	bad := &schemas.Result{
		Source:     schemas.Coordinates{Topic: testTopic, Partition: 0, Offset: 50},
		Production: results[0].Production,
		Replay:     &schemas.ReplayRow{RunID: testRun}, // no correlation ID
	}
	if err := s.Add(bad); !errors.Is(err, schemas.ErrInvalidRow) {
		t.Errorf("Add(invalid replay row) = %v, want ErrInvalidRow", err)
	}
	bad.Replay, bad.Baseline = results[0].Replay, &schemas.ReplayRow{CorrelationID: "c"} // no run ID
	if err := s.Add(bad); !errors.Is(err, schemas.ErrInvalidRow) || !strings.Contains(err.Error(), schemas.TableBaseline) {
		t.Errorf("Add(invalid baseline row) = %v, want ErrInvalidRow naming %s", err, schemas.TableBaseline)
	}
	if after, _ := s.Buffered(); after != before {
		t.Errorf("a rejected result buffered %d rows", after-before)
	}
	if err := s.Add(nil); err == nil {
		t.Error("Add(nil) succeeded")
	}
}

func TestBadCatalogURINamesThePath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(dir)
	cfg.Catalog.URI = filepath.Join(file, "sub", "catalog.db") // under a regular file
	_, err := OpenIceberg(t.Context(), cfg, nil)
	if err == nil {
		t.Fatal("OpenIceberg succeeded with a catalog under a regular file")
	}
	for _, want := range []string{cfg.Catalog.URI, "sink.catalog.uri"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	cfg = testConfig(dir)
	cfg.Catalog.Warehouse = filepath.Join(file, "warehouse")
	if _, err := OpenIceberg(t.Context(), cfg, nil); err == nil || !strings.Contains(err.Error(), "sink.catalog.warehouse") {
		t.Errorf("warehouse under a file: err = %v, want one naming sink.catalog.warehouse", err)
	}

	cfg = testConfig(dir)
	cfg.Flush.Rows = 0
	if _, err := OpenIceberg(t.Context(), cfg, nil); err == nil || !strings.Contains(err.Error(), "flush.rows") {
		t.Errorf("invalid config: err = %v, want one naming flush.rows", err)
	}
}

func TestOffsetProperty(t *testing.T) {
	for _, tp := range []schemas.TopicPartition{{Topic: "t", Partition: 0}, {Topic: "a.b.c", Partition: 17}} {
		got, off, ok := parseOffsetProp(offsetProp(tp), "42")
		if !ok || got != tp || off != 42 {
			t.Errorf("round trip of %v = %v %d %v", tp, got, off, ok)
		}
	}
	for _, key := range []string{"replay.offset.", "replay.offset.t", "replay.offset.t.x", "replay.group", "replay.offset..1"} {
		if _, _, ok := parseOffsetProp(key, "1"); ok {
			t.Errorf("parseOffsetProp(%q) accepted it", key)
		}
	}
}
