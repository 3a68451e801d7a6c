package schemas_test

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/replaykit/replay/schemas"
)

func TestTableDefinitions(t *testing.T) {
	for _, name := range schemas.TableNames() {
		t.Run(name, func(t *testing.T) {
			sc := schemas.IcebergSchema(name)
			if sc == nil {
				t.Fatal("no Iceberg schema")
			}
			for id, want := range map[int]string{1: "run_id", 2: "correlation_id", 3: "captured_at"} {
				f, ok := sc.FindFieldByID(id)
				if !ok || f.Name != want || !f.Required {
					t.Errorf("field %d = %+v (found %v), want required %s", id, f, ok, want)
				}
			}
			if !slices.Equal(sc.IdentifierFieldIDs, []int{1, 2}) {
				t.Errorf("identifier fields = %v, want [1 2] (run_id, correlation_id)", sc.IdentifierFieldIDs)
			}

			spec := schemas.PartitionSpec(name)
			var transforms []string
			for _, f := range spec.Fields() {
				transforms = append(transforms, f.Transform.String()+"("+strconv.Itoa(f.SourceID())+")")
			}
			if want := []string{"identity(1)", "day(3)"}; !slices.Equal(transforms, want) {
				t.Errorf("partition spec = %v, want %v", transforms, want)
			}

			order := schemas.SortOrder(name)
			if order.Len() != 1 || order.Field(0).SourceID() != 2 || order.Field(0).Direction != table.SortASC {
				t.Errorf("sort order = %v, want correlation_id (2) asc", order)
			}

			// Arrow is derived from Iceberg: same columns, same order,
			// nullability from required, field IDs in the metadata.
			as := schemas.ArrowSchema(name)
			if as.NumFields() != sc.NumFields() {
				t.Fatalf("arrow has %d fields, iceberg %d", as.NumFields(), sc.NumFields())
			}
			for i, f := range sc.Fields() {
				af := as.Field(i)
				id, _ := af.Metadata.GetValue("PARQUET:field_id")
				if af.Name != f.Name || af.Nullable == f.Required || id != strconv.Itoa(f.ID) {
					t.Errorf("arrow field %d = %s nullable=%v id=%s, want %s nullable=%v id=%d",
						i, af.Name, af.Nullable, id, f.Name, !f.Required, f.ID)
				}
			}
			ts := as.Field(as.FieldIndices("captured_at")[0]).Type.(*arrow.TimestampType)
			if ts.Unit != arrow.Microsecond || ts.TimeZone != "UTC" {
				t.Errorf("captured_at is %v, want timestamp[us, tz=UTC]", ts)
			}
		})
	}

	if schemas.IcebergSchema("nope") != nil || schemas.ArrowSchema("nope") != nil || schemas.PartitionSpec("nope") != nil {
		t.Error("an unknown table name must give nil")
	}
	if !schemas.SortOrder("nope").IsUnsorted() {
		t.Error("an unknown table name must give the unsorted order")
	}
}

// iceberg-go's CreateTable renumbers field IDs (AssignFreshSchemaIDs). Our IDs
// must be the ones it would assign, or the table would not carry them.
func TestFieldIDsSurviveTableCreation(t *testing.T) {
	for _, name := range schemas.TableNames() {
		sc := schemas.IcebergSchema(name)
		fresh, err := iceberg.AssignFreshSchemaIDs(sc, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !fresh.Equals(sc) {
			t.Errorf("%s: iceberg-go would renumber the schema:\n got  %v\n want %v", name, fresh, sc)
		}
		meta, err := table.NewMetadata(sc, schemas.PartitionSpec(name), schemas.SortOrder(name), "file:///tmp/x", nil)
		if err != nil {
			t.Fatalf("%s: new table metadata: %v", name, err)
		}
		if !meta.CurrentSchema().Equals(sc) {
			t.Errorf("%s: created table schema differs:\n got  %v\n want %v", name, meta.CurrentSchema(), sc)
		}
		spec := meta.PartitionSpec()
		if !spec.Equals(*schemas.PartitionSpec(name)) {
			t.Errorf("%s: created partition spec %v, want %v", name, spec, schemas.PartitionSpec(name))
		}
	}
}

var (
	captured = time.Date(2026, 11, 21, 10, 15, 2, 123456000, time.UTC)
	binBody  = []byte{0xff, 0xfe, 0x00, 0x80, 'o', 'k', 0xc3} // not UTF-8
)

func productionRows() []*schemas.ProductionRow {
	full := &schemas.Exchange{
		Source:        schemas.Coordinates{Topic: "captures", Partition: 2, Offset: 40},
		CorrelationID: "c-1",
		CapturedAt:    captured,
		Request: schemas.Request{
			Method: "POST", Scheme: "https", Host: "api.example.com", Path: "/v1/titles/42", Query: "lang=en&x=1",
			Headers: map[string][]string{"Accept": {"application/json", "text/plain"}, "X-Empty": nil},
			Body:    binBody,
		},
		Response: &schemas.Response{
			Status:    201,
			Headers:   map[string][]string{"Set-Cookie": {"a=1", "b=2", "c=3"}},
			Body:      []byte(`{"id":42}`),
			LatencyMS: 12.7,
		},
		Lineage:    map[string]string{"catalog-service": "v8812"},
		Attributes: map[string]string{"device_type": "tv", "region": "us-east-1"},
	}
	bare := &schemas.Exchange{
		Source:        schemas.Coordinates{Topic: "captures", Partition: 0, Offset: 7},
		CorrelationID: "c-2",
		CapturedAt:    captured.Add(time.Hour),
		Request:       schemas.Request{Method: "GET", Path: "/", Body: []byte{}},
		Lineage:       map[string]string{},
	}

	return []*schemas.ProductionRow{{RunID: "run-1", Exchange: full}, {RunID: "run-1", Exchange: bare}}
}

func TestProductionBuilderRoundTrip(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)

	b := schemas.NewProductionBuilder(mem)
	defer b.Release()
	rows := productionRows()
	for _, r := range rows {
		if err := b.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	if b.Len() != 2 || b.Bytes() <= int64(len(binBody)) {
		t.Fatalf("Len=%d Bytes=%d, want 2 rows and more than the bodies", b.Len(), b.Bytes())
	}
	rec := b.NewRecord()
	defer rec.Release()
	if b.Len() != 0 || b.Bytes() != 0 {
		t.Errorf("after NewRecord Len=%d Bytes=%d, want 0 0", b.Len(), b.Bytes())
	}
	if !rec.Schema().Equal(schemas.ArrowSchema(schemas.TableProduction)) {
		t.Errorf("record schema differs from ArrowSchema")
	}
	if rec.NumRows() != 2 {
		t.Fatalf("rows = %d, want 2", rec.NumRows())
	}

	c := cols{t, rec}
	for i, r := range rows {
		x := r.Exchange
		c.str("run_id", i, r.RunID)
		c.str("correlation_id", i, x.CorrelationID)
		c.time("captured_at", i, x.CapturedAt)
		c.str("source_topic", i, x.Source.Topic)
		c.int32("source_partition", i, x.Source.Partition)
		c.int64("source_offset", i, x.Source.Offset)
		c.str("request_method", i, x.Request.Method)
		c.str("request_scheme", i, x.Request.Scheme)
		c.str("request_host", i, x.Request.Host)
		c.str("request_path", i, x.Request.Path)
		c.str("request_query", i, x.Request.Query)
		c.headers("request_headers", i, x.Request.Headers)
		c.bytes("request_body", i, x.Request.Body)
		c.stringMap("lineage", i, x.Lineage)
		c.stringMap("attributes", i, x.Attributes)
	}
	// Row 0 has a response; row 1 has none: all four response columns null.
	c.int32("response_status", 0, 201)
	c.headers("response_headers", 0, rows[0].Exchange.Response.Headers)
	c.bytes("response_body", 0, rows[0].Exchange.Response.Body)
	if got := rec.Column(c.idx("response_latency_ms")).(*array.Float64).Value(0); got != 12.7 {
		t.Errorf("latency = %v, want 12.7", got)
	}
	for _, name := range []string{"response_status", "response_headers", "response_body", "response_latency_ms", "attributes"} {
		if !rec.Column(c.idx(name)).IsNull(1) {
			t.Errorf("%s of the row without a response is not null", name)
		}
	}
	// An empty non-nil map and an empty non-nil body stay empty, not null.
	if rec.Column(c.idx("lineage")).IsNull(1) || rec.Column(c.idx("request_body")).IsNull(1) {
		t.Error("an empty map or body must be stored empty, not null")
	}
}

func TestReplayBuilderRoundTrip(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)

	b := schemas.NewReplayBuilder(mem)
	defer b.Release()
	ok := &schemas.ReplayRow{
		RunID: "run-1", CorrelationID: "c-1", CapturedAt: captured, ReplayedAt: captured.Add(24 * time.Hour),
		Target: "http://new:8080", Source: schemas.Coordinates{Topic: "captures", Partition: 1, Offset: 9},
		Request:  schemas.Request{Method: "GET", Path: "/v2/titles/42", Query: "lang=en", Headers: map[string][]string{"Accept": {"a", "b"}}, Body: binBody},
		Response: &schemas.Response{Status: 200, Body: binBody, LatencyMS: 3.5},
		Attempts: 1, Lineage: map[string]string{"catalog-service": "v9000"},
	}
	failed := &schemas.ReplayRow{
		RunID: "run-1", CorrelationID: "c-2", CapturedAt: captured, ReplayedAt: captured,
		Request:   schemas.Request{Method: "GET", Path: "/"},
		ErrorKind: schemas.ErrorTimeout, ErrorMessage: "context deadline exceeded", Attempts: 3,
	}
	amplified := *ok
	amplified.CorrelationID, amplified.AmplifiedFrom = "c-1#2", "c-1"
	for _, r := range []*schemas.ReplayRow{ok, failed, &amplified} {
		if err := b.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	rec := b.NewRecord()
	defer rec.Release()

	c := cols{t, rec}
	c.time("replayed_at", 0, ok.ReplayedAt)
	c.str("target", 0, ok.Target)
	c.str("request_path", 0, "/v2/titles/42")
	c.headers("request_headers", 0, ok.Request.Headers)
	c.bytes("request_body", 0, binBody)
	c.int32("response_status", 0, 200)
	c.bytes("response_body", 0, binBody)
	c.int32("attempts", 0, 1)
	c.int32("attempts", 1, 3)
	c.str("error_kind", 1, schemas.ErrorTimeout)
	c.str("error_message", 1, "context deadline exceeded")
	c.stringMap("lineage", 0, ok.Lineage)
	for _, name := range []string{"error_kind", "error_message", "amplified_from"} {
		if !rec.Column(c.idx(name)).IsNull(0) {
			t.Errorf("%s of a row with a response, not a copy, is not null", name)
		}
	}
	c.str("correlation_id", 2, "c-1#2")
	c.str("amplified_from", 2, "c-1")
	for _, name := range []string{"response_status", "response_body", "request_body", "request_headers", "lineage"} {
		if !rec.Column(c.idx(name)).IsNull(1) {
			t.Errorf("%s of the failed row is not null", name)
		}
	}
}

// baseline_responses holds the baseline target's replay rows: exactly the
// replay_responses schema, spec and order, built by the same builder.
func TestBaselineTableIsTheReplayTable(t *testing.T) {
	if !slices.Contains(schemas.TableNames(), schemas.TableBaseline) {
		t.Fatalf("TableNames() = %v lacks %s", schemas.TableNames(), schemas.TableBaseline)
	}
	if b, r := schemas.IcebergSchema(schemas.TableBaseline), schemas.IcebergSchema(schemas.TableReplay); !b.Equals(r) {
		t.Errorf("baseline schema\n%v\nwant the replay schema\n%v", b, r)
	}
	if b, r := schemas.ArrowSchema(schemas.TableBaseline), schemas.ArrowSchema(schemas.TableReplay); !b.Equal(r) {
		t.Errorf("baseline arrow schema %v, want %v", b, r)
	}
	if !schemas.PartitionSpec(schemas.TableBaseline).Equals(*schemas.PartitionSpec(schemas.TableReplay)) ||
		!schemas.SortOrder(schemas.TableBaseline).Equals(schemas.SortOrder(schemas.TableReplay)) {
		t.Error("baseline partition spec or sort order differs from replay_responses'")
	}

	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	b := schemas.NewBaselineBuilder(mem)
	defer b.Release()
	row := &schemas.ReplayRow{RunID: "run-1", CorrelationID: "c-1", CapturedAt: captured, Target: "http://old-copy:8080",
		Request: schemas.Request{Method: "GET", Path: "/v1/titles/42"}, Response: &schemas.Response{Status: 200, Body: binBody}, Attempts: 1}
	if err := b.Append(row); err != nil {
		t.Fatal(err)
	}
	rec := b.NewRecord()
	defer rec.Release()
	if !rec.Schema().Equal(schemas.ArrowSchema(schemas.TableBaseline)) {
		t.Errorf("baseline record schema %v", rec.Schema())
	}
	c := cols{t, rec}
	c.str("target", 0, row.Target)
	c.int32("response_status", 0, 200)
	c.bytes("response_body", 0, binBody)
}

func TestDeadLetterBuilderRoundTrip(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)

	b := schemas.NewDeadLetterBuilder(mem)
	defer b.Release()
	received := captured.Add(time.Minute)
	row := &schemas.DeadLetterRow{
		RunID: "run-1", CorrelationID: "d-1", ReceivedAt: received,
		Source: schemas.Coordinates{Topic: "captures", Partition: 4, Offset: 1 << 40},
		Raw:    binBody, Reason: "bad_json", Error: "invalid character",
	}
	if err := b.Append(row); err != nil {
		t.Fatal(err)
	}
	rec := b.NewRecord()
	defer rec.Release()

	c := cols{t, rec}
	c.time("captured_at", 0, received) // zero CapturedAt falls back to ReceivedAt
	c.time("received_at", 0, received)
	c.int64("source_offset", 0, 1<<40)
	c.bytes("raw", 0, binBody)
	c.str("reason", 0, "bad_json")
	c.str("error", 0, "invalid character")
	if !rec.Column(c.idx("key")).IsNull(0) {
		t.Error("a nil key must be null")
	}
}

func TestAppendRejectsInvalidRows(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)

	pb := schemas.NewProductionBuilder(mem)
	defer pb.Release()
	rb := schemas.NewReplayBuilder(mem)
	defer rb.Release()
	db := schemas.NewDeadLetterBuilder(mem)
	defer db.Release()

	for name, err := range map[string]error{
		"nil exchange":       pb.Append(&schemas.ProductionRow{RunID: "r"}),
		"no run id":          pb.Append(&schemas.ProductionRow{Exchange: &schemas.Exchange{CorrelationID: "c"}}),
		"no correlation id":  rb.Append(&schemas.ReplayRow{RunID: "r"}),
		"dead letter no run": db.Append(&schemas.DeadLetterRow{CorrelationID: "c"}),
	} {
		if !errors.Is(err, schemas.ErrInvalidRow) {
			t.Errorf("%s: err = %v, want ErrInvalidRow", name, err)
		}
	}
	if pb.Len()+rb.Len()+db.Len() != 0 {
		t.Error("a rejected row must append nothing")
	}
}

// A builder released with rows still in it frees them.
func TestReleaseWithPendingRows(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)

	b := schemas.NewProductionBuilder(mem)
	for _, r := range productionRows() {
		if err := b.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	b.Release()
}

func BenchmarkProductionAppend(b *testing.B) {
	rows := productionRows()
	bld := schemas.NewProductionBuilder(memory.NewGoAllocator())
	defer bld.Release()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := bld.Append(rows[i%2]); err != nil {
			b.Fatal(err)
		}
		if bld.Len() == 4096 {
			b.SetBytes(bld.Bytes() / 4096)
			bld.NewRecord().Release()
		}
	}
}

// BenchmarkReplayAppend appends replay rows as the sink does for every
// replayed record: the rewritten request's headers, a small JSON answer.
func BenchmarkReplayAppend(b *testing.B) {
	row := &schemas.ReplayRow{
		RunID: "run-1", CorrelationID: "bench-00000042", CapturedAt: captured, ReplayedAt: captured.Add(time.Hour),
		Target: "http://127.0.0.1:8080", Source: schemas.Coordinates{Topic: "captures", Partition: 3, Offset: 1042},
		Request: schemas.Request{Method: "GET", Path: "/v1/titles/1042", Query: "lang=en&region=us", Headers: map[string][]string{
			"Accept": {"application/json"}, "Accept-Language": {"en-US,en;q=0.9"}, "User-Agent": {"catalog-app/8.12 (tv; android 14)"},
			"Authorization": {"REDACTED"}, "X-Request-Id": {"req-5f2b9c1a"}, "X-Replay-Id": {"bench-00000042"}}},
		Response: &schemas.Response{Status: 200, LatencyMS: 0.4, Body: []byte(`{"id":1042,"type":"movie","title":"Title 1042","status":"ok"}`),
			Headers: map[string][]string{"Content-Type": {"application/json"}, "Content-Length": {"61"}, "Date": {"Sun, 30 Nov 2026 10:00:00 GMT"}}},
		Attempts: 1, Lineage: map[string]string{"catalog-service": "v9000"},
	}
	bld := schemas.NewReplayBuilder(memory.NewGoAllocator())
	defer bld.Release()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := bld.Append(row); err != nil {
			b.Fatal(err)
		}
		if bld.Len() == 4096 {
			b.SetBytes(bld.Bytes() / 4096)
			bld.NewRecord().Release()
		}
	}
}

// cols reads values back out of a record by column name.
type cols struct {
	t   *testing.T
	rec arrow.RecordBatch
}

func (c cols) idx(name string) int {
	c.t.Helper()
	idx := c.rec.Schema().FieldIndices(name)
	if len(idx) != 1 {
		c.t.Fatalf("no column %q", name)
	}

	return idx[0]
}

func (c cols) str(name string, row int, want string) {
	c.t.Helper()
	if got := c.rec.Column(c.idx(name)).(*array.String).Value(row); got != want {
		c.t.Errorf("%s[%d] = %q, want %q", name, row, got, want)
	}
}

func (c cols) int32(name string, row int, want int32) {
	c.t.Helper()
	if got := c.rec.Column(c.idx(name)).(*array.Int32).Value(row); got != want {
		c.t.Errorf("%s[%d] = %d, want %d", name, row, got, want)
	}
}

func (c cols) int64(name string, row int, want int64) {
	c.t.Helper()
	if got := c.rec.Column(c.idx(name)).(*array.Int64).Value(row); got != want {
		c.t.Errorf("%s[%d] = %d, want %d", name, row, got, want)
	}
}

func (c cols) time(name string, row int, want time.Time) {
	c.t.Helper()
	got := c.rec.Column(c.idx(name)).(*array.Timestamp).Value(row).ToTime(arrow.Microsecond)
	if !got.Equal(want.Truncate(time.Microsecond)) {
		c.t.Errorf("%s[%d] = %v, want %v", name, row, got, want)
	}
}

func (c cols) bytes(name string, row int, want []byte) {
	c.t.Helper()
	col := c.rec.Column(c.idx(name)).(*array.Binary)
	if want == nil {
		if !col.IsNull(row) {
			c.t.Errorf("%s[%d] is not null", name, row)
		}

		return
	}
	if col.IsNull(row) || !bytes.Equal(col.Value(row), want) {
		c.t.Errorf("%s[%d] = %x, want %x", name, row, col.Value(row), want)
	}
}

func (c cols) headers(name string, row int, want map[string][]string) {
	c.t.Helper()
	got := mapOfLists(c.rec.Column(c.idx(name)).(*array.Map), row)
	if !maps.EqualFunc(got, want, func(a, b []string) bool { return slices.Equal(a, b) }) {
		c.t.Errorf("%s[%d] = %v, want %v", name, row, got, want)
	}
}

func (c cols) stringMap(name string, row int, want map[string]string) {
	c.t.Helper()
	col := c.rec.Column(c.idx(name)).(*array.Map)
	if want == nil {
		if !col.IsNull(row) {
			c.t.Errorf("%s[%d] is not null", name, row)
		}

		return
	}
	got := map[string]string{}
	keys, items := col.Keys().(*array.String), col.Items().(*array.String)
	start, end := col.ValueOffsets(row)
	for j := start; j < end; j++ {
		got[keys.Value(int(j))] = items.Value(int(j))
	}
	if !maps.Equal(got, want) {
		c.t.Errorf("%s[%d] = %v, want %v", name, row, got, want)
	}
}

// mapOfLists reads a map<string, list<string>> value; nil for null.
func mapOfLists(col *array.Map, row int) map[string][]string {
	if col.IsNull(row) {
		return nil
	}
	out := map[string][]string{}
	keys, lists := col.Keys().(*array.String), col.Items().(*array.List)
	values := lists.ListValues().(*array.String)
	start, end := col.ValueOffsets(row)
	for j := start; j < end; j++ {
		var vs []string
		vs0, vs1 := lists.ValueOffsets(int(j))
		for k := vs0; k < vs1; k++ {
			vs = append(vs, values.Value(int(k)))
		}
		out[keys.Value(int(j))] = vs
	}

	return out
}

// TestDistinctColumns checks that the columns left out of Parquet
// dictionaries are top-level columns of their tables.
func TestDistinctColumns(t *testing.T) {
	for _, name := range append(schemas.TableNames(), schemas.TableComparisonMismatches) {
		sc := schemas.IcebergSchema(name)
		if sc == nil {
			sc = schemas.ComparisonSchema(name)
		}
		cols := schemas.DistinctColumns(name)
		if len(cols) == 0 {
			t.Errorf("%s: no distinct columns", name)
		}
		for _, c := range cols {
			f, ok := sc.FindFieldByName(c)
			if _, nested := f.Type.(iceberg.NestedType); !ok || nested {
				t.Errorf("%s: distinct column %s is not a top-level primitive column of the table", name, c)
			}
		}
	}
	if schemas.DistinctColumns("nope") != nil {
		t.Error("DistinctColumns of an unknown table must be nil")
	}
}

// TestNewRecordReservesTheRoomItTook fills a builder twice with the same
// rows: filling the second record allocates nothing, since NewRecord
// reserved the room the first one took, and the two records are equal.
func TestNewRecordReservesTheRoomItTook(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	b := schemas.NewProductionBuilder(mem)
	defer b.Release()
	fill := func() {
		for range 50 {
			for _, r := range productionRows() {
				if err := b.Append(r); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	fill()
	first := b.NewRecord()
	defer first.Release()
	room := mem.CurrentAlloc()
	fill()
	if grew := mem.CurrentAlloc() - room; grew != 0 {
		t.Errorf("filling the second record allocated %d bytes", grew)
	}
	second := b.NewRecord()
	defer second.Release()
	if !array.RecordEqual(first, second) {
		t.Error("the second record differs from the first")
	}
}
