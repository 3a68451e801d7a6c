package compare_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/replaykit/replay/compare"
	"github.com/replaykit/replay/internal/testinfra"
	"github.com/replaykit/replay/normalize"
	"github.com/replaykit/replay/schemas"
	"github.com/replaykit/replay/sinks"
)

// The tests write their input with the real sink into a SQLite catalog and
// a local warehouse, run compare, and read the comparison tables back.

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))

	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// openSink opens a sink on a fresh warehouse and checks at the end that it
// is closed and every Arrow buffer it allocated was released.
func openSink(t testing.TB, dir string) *sinks.Iceberg {
	t.Helper()
	cfg := sinks.DefaultIcebergConfig()
	cfg.Catalog.URI = filepath.Join(dir, "catalog.db")
	cfg.Catalog.Warehouse = filepath.Join(dir, "warehouse")
	cfg.Group = "compare-test"
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	s, err := sinks.OpenIceberg(context.Background(), cfg, testLogger(t), sinks.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		mem.AssertSize(t, 0)
	})

	return s
}

// exchange describes one correlation ID of a test run.
type exchange struct {
	cid            string
	method, path   string
	prod, replay   bool // which rows exist
	prodStatus     int  // 0: no response
	replayStatus   int  // 0: failed replay (errKind)
	errKind        string
	prodBody       string
	replayBody     string
	prodLatency    float64
	replayLatency  float64
	prodLineage    map[string]string
	replayLineage  map[string]string
	replayRewrites string // replay request path, when it differs
	// copies are amplified copies of the replay (<cid>#2, …), each with
	// copyBody and copyErrKind.
	copies      int
	copyBody    string
	copyErrKind string
}

var captured = time.Date(2026, 11, 21, 10, 15, 2, 0, time.UTC)

var jsonHeaders = map[string][]string{"Content-Type": {"application/json"}}

// write stores the exchanges of one run with the real sink.
func write(t testing.TB, s *sinks.Iceberg, runID string, xs []exchange) {
	t.Helper()
	writeWithBaseline(t, s, runID, xs, nil)
}

// writeWithBaseline stores the exchanges of one run and, in the same
// results, the baseline rows of base (replay.baseline's answers, for
// baseline_responses): each with the result of its correlation ID, or a
// result of its own when xs has none.
func writeWithBaseline(t testing.TB, s *sinks.Iceberg, runID string, xs, base []exchange) {
	t.Helper()
	var results []*schemas.Result
	byCID := map[string]*schemas.Result{}
	for i, x := range xs {
		src := schemas.Coordinates{Topic: "captures-" + runID, Partition: 0, Offset: int64(i)}
		res := &schemas.Result{Source: src}
		if x.prod {
			ex := &schemas.Exchange{
				Source: src, CorrelationID: x.cid, CapturedAt: captured,
				Request: schemas.Request{Method: x.method, Scheme: "https", Host: "api.example.com", Path: x.path},
				Lineage: x.prodLineage,
			}
			if x.prodStatus != 0 {
				ex.Response = &schemas.Response{Status: x.prodStatus, Headers: jsonHeaders, Body: []byte(x.prodBody), LatencyMS: x.prodLatency}
			}
			res.Production = &schemas.ProductionRow{RunID: runID, Exchange: ex}
		}
		if x.replay {
			row := replayRow(runID, src, x)
			res.Replay = row
			for n := 2; n <= x.copies+1; n++ {
				c := *row
				c.CorrelationID, c.AmplifiedFrom = fmt.Sprintf("%s#%d", x.cid, n), x.cid
				c.ErrorKind, c.ErrorMessage, c.Response = x.copyErrKind, "", nil
				if x.copyErrKind == "" {
					c.Response = &schemas.Response{Status: 200, Headers: jsonHeaders, Body: []byte(x.copyBody), LatencyMS: 1}
				}
				res.Copies = append(res.Copies, &c)
			}
		}
		results = append(results, res)
		byCID[x.cid] = res
	}
	for _, b := range base {
		res := byCID[b.cid]
		if res == nil {
			res = &schemas.Result{Source: schemas.Coordinates{Topic: "captures-" + runID, Partition: 0, Offset: int64(len(results))}}
			results = append(results, res)
		}
		res.Baseline = replayRow(runID, res.Source, b)
	}
	for _, res := range results {
		if err := s.Add(res); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// replayRow is the replay side of x, as a replay row of runID.
func replayRow(runID string, src schemas.Coordinates, x exchange) *schemas.ReplayRow {
	path := x.path
	if x.replayRewrites != "" {
		path = x.replayRewrites
	}
	row := &schemas.ReplayRow{
		RunID: runID, CorrelationID: x.cid, CapturedAt: captured, ReplayedAt: captured.Add(time.Hour),
		Target: "http://new:8080", Source: src, Request: schemas.Request{Method: x.method, Path: path},
		ErrorKind: x.errKind, Attempts: 1, Lineage: x.replayLineage,
	}
	if x.errKind != "" {
		row.ErrorMessage = "dial tcp: " + x.errKind
	}
	if x.replayStatus != 0 {
		row.Response = &schemas.Response{Status: x.replayStatus, Headers: jsonHeaders, Body: []byte(x.replayBody), LatencyMS: x.replayLatency}
	}
	return row
}

func titleBody(id int, rating string) string {
	return fmt.Sprintf(`{"id":%d,"name":"title %d","rating":%s,"tags":["drama","new"]}`, id, id, rating)
}

func userBody(id int, name string) string {
	return fmt.Sprintf(`{"user":%d,"name":%q,"plan":"premium"}`, id, name)
}

const (
	titles = "GET /v1/titles/{id}"
	users  = "GET /v1/users/{user}"
)

func testNormalize() normalize.Config {
	return normalize.Config{Routes: []string{titles, users}}
}

// scenario is a run with known differences:
//
//   - titles: 100 pairs; 10 (i%10 == 3) differ at $.rating; 5 (i%20 == 7)
//     have differing lineage (and a differing body, which must not count);
//     8 production rows were never replayed.
//   - users: 40 pairs; 3 (i%15 == 1) differ at $.name; 2 replays timed out;
//     1 replay answered 500 with the same body; 1 replay row has no
//     production row.
func scenario() []exchange {
	var xs []exchange
	lineage := map[string]string{"catalog-service": "v1", "pricing": "p7"}
	for i := range 100 {
		x := exchange{
			cid: fmt.Sprintf("t-%03d", i), method: "GET", path: fmt.Sprintf("/v1/titles/%d", i),
			prod: true, replay: true, prodStatus: 200, replayStatus: 200,
			prodBody: titleBody(i, "4.5"), replayBody: titleBody(i, "4.5"),
			prodLatency: float64(10 + i), replayLatency: float64(20 + i),
			prodLineage: lineage, replayLineage: map[string]string{"catalog-service": "v1"},
		}
		switch {
		case i%10 == 3:
			x.replayBody = titleBody(i, "3.5")
		case i%20 == 7:
			x.replayLineage = map[string]string{"catalog-service": "v2"}
			x.replayBody = titleBody(i, "1")
		}
		xs = append(xs, x)
	}
	for i := range 8 {
		xs = append(xs, exchange{
			cid: fmt.Sprintf("t-p%d", i), method: "GET", path: fmt.Sprintf("/v1/titles/%d", 1000+i),
			prod: true, prodStatus: 404, prodBody: `{"error":"not found"}`, prodLatency: 3,
		})
	}
	for i := range 40 {
		x := exchange{
			cid: fmt.Sprintf("u-%03d", i), method: "GET", path: fmt.Sprintf("/v1/users/%d", i),
			prod: true, replay: true, prodStatus: 200, replayStatus: 200,
			prodBody: userBody(i, "ann"), replayBody: userBody(i, "ann"),
			prodLatency: 5, replayLatency: 6,
		}
		switch {
		case i%15 == 1:
			x.replayBody = userBody(i, "bob")
		case i == 10 || i == 20:
			x.replayStatus, x.errKind, x.replayBody = 0, schemas.ErrorTimeout, ""
		case i == 30:
			x.replayStatus = 500
		}
		xs = append(xs, x)
	}
	xs = append(xs, exchange{
		cid: "u-r", method: "GET", path: "/v1/users/99", replay: true, replayStatus: 200,
		replayBody: userBody(99, "ann"), replayLatency: 7,
	})

	return xs
}

func testConfig(t testing.TB) compare.Config {
	cfg := compare.DefaultConfig()
	cfg.Normalize = testNormalize()
	cfg.SpillDir = t.TempDir()
	cfg.Workers = 4

	return cfg
}

func run(t testing.TB, s *sinks.Iceberg, cfg compare.Config, runID string) *compare.Summary {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	sum, err := compare.Run(context.Background(), cfg, s, compare.Options{RunID: runID, Logger: testLogger(t), Allocator: mem})
	if err != nil {
		t.Fatalf("compare run %s: %v", runID, err)
	}
	mem.AssertSize(t, 0)
	if entries, err := os.ReadDir(cfg.SpillDir); err != nil || len(entries) != 0 {
		t.Errorf("spill dir holds %v after the run (err %v), want nothing", entries, err)
	}

	return sum
}

func TestRunKnownDifferences(t *testing.T) {
	s := openSink(t, t.TempDir())
	write(t, s, "r1", scenario())
	sum := run(t, s, testConfig(t), "r1")

	wantTitles := compare.Counts{
		Endpoint: titles, ProductionTotal: 108, ReplayTotal: 100, Joined: 100, OnlyProduction: 8,
		Matched: 85, Mismatched: 10, LineageExcluded: 5,
		ProductionPassing: 100, ProductionFailing: 8, ReplayPassing: 100,
		// Latencies of joined pairs: 10..109 and 20..119 ms, nearest rank.
		ProductionP50: 59, ProductionP90: 99, ProductionP99: 108,
		ReplayP50: 69, ReplayP90: 109, ReplayP99: 118,
	}
	wantUsers := compare.Counts{
		Endpoint: users, ProductionTotal: 40, ReplayTotal: 41, Joined: 40, OnlyReplay: 1,
		Matched: 34, Mismatched: 6,
		ProductionPassing: 40, ReplayPassing: 38, ReplayFailing: 3,
		ProductionP50: 5, ProductionP90: 5, ProductionP99: 5,
		ReplayP50: 6, ReplayP90: 6, ReplayP99: 6,
	}
	if len(sum.Endpoints) != 2 {
		t.Fatalf("endpoints = %+v, want 2", sum.Endpoints)
	}
	// Impact order: titles has more mismatches.
	if got := sum.Endpoints[0]; got != wantTitles {
		t.Errorf("titles:\n got  %+v\n want %+v", got, wantTitles)
	}
	if got := sum.Endpoints[1]; got != wantUsers {
		t.Errorf("users:\n got  %+v\n want %+v", got, wantUsers)
	}
	o := sum.Overall
	wantOverall := compare.Counts{
		Endpoint: compare.EndpointAll, ProductionTotal: 148, ReplayTotal: 141, Joined: 140, OnlyProduction: 8,
		OnlyReplay: 1, Matched: 119, Mismatched: 16, LineageExcluded: 5,
		ProductionPassing: 140, ProductionFailing: 8, ReplayPassing: 138, ReplayFailing: 3,
	}
	o.ProductionP50, o.ProductionP90, o.ProductionP99, o.ReplayP50, o.ReplayP90, o.ReplayP99 = 0, 0, 0, 0, 0, 0
	if o != wantOverall {
		t.Errorf("overall:\n got  %+v\n want %+v", o, wantOverall)
	}
	if want := 119.0 / 135; sum.MatchRate == nil || *sum.MatchRate != want || *sum.Overall.MatchRate() != want {
		t.Errorf("match rate = %v, want %v", sum.MatchRate, want)
	}
	if sum.RunID != "r1" || sum.Spilled || sum.ComparedAt.IsZero() ||
		sum.SummaryTable != "replay.comparison_summary" || sum.MismatchesTable != "replay.comparison_mismatches" {
		t.Errorf("summary header = %q spilled=%v at=%v tables %q %q", sum.RunID, sum.Spilled, sum.ComparedAt,
			sum.SummaryTable, sum.MismatchesTable)
	}
	if want := map[string]int64{schemas.ErrorTimeout: 2}; !maps.Equal(sum.ErrorKinds, want) {
		t.Errorf("error kinds = %v, want %v", sum.ErrorKinds, want)
	}
	wantMatrix := []compare.StatusCell{{Production: 200, Replay: 0, Count: 2}, {Production: 200, Replay: 200, Count: 137},
		{Production: 200, Replay: 500, Count: 1}}
	if !slices.Equal(sum.StatusMatrix, wantMatrix) {
		t.Errorf("status matrix = %v, want %v", sum.StatusMatrix, wantMatrix)
	}

	// Top paths: the rating of 10 titles, then the name of 3 users.
	if len(sum.TopPaths) < 2 {
		t.Fatalf("top paths = %+v", sum.TopPaths)
	}
	rating, name := sum.TopPaths[0], sum.TopPaths[1]
	if rating.Path != ratingPath || rating.Count != 10 ||
		!slices.Equal(rating.Samples, []string{"t-003", "t-013", "t-023", "t-033", "t-043"}) {
		t.Errorf("top path 0 = %+v, want %s × 10 with the 5 first samples", rating, ratingPath)
	}
	if name.Path != namePath || name.Count != 3 || !slices.Equal(name.Samples, []string{"u-001", "u-016", "u-031"}) {
		t.Errorf("top path 1 = %+v, want %s × 3", name, namePath)
	}

	// Top mismatches: titles first (the endpoint with most mismatches), by
	// correlation ID.
	var top []string
	for _, m := range sum.TopMismatches {
		top = append(top, m.CorrelationID)
	}
	wantTop := []string{"t-003", "t-013", "t-023", "t-033", "t-043", "t-053", "t-063", "t-073", "t-083", "t-093",
		"u-001", "u-010", "u-016", "u-020", "u-030", "u-031"}
	if !slices.Equal(top, wantTop) {
		t.Errorf("top mismatches = %v, want %v", top, wantTop)
	}
	first := sum.TopMismatches[0]
	if first.Endpoint != titles || first.ProductionStatus != 200 || first.ReplayStatus != 200 ||
		!slices.Equal(first.Paths, []string{ratingPath}) || string(first.ProductionRaw) != titleBody(3, "4.5") ||
		string(first.ReplayRaw) != titleBody(3, "3.5") || len(first.ProductionBody) == 0 || first.BodyMode != "json" {
		t.Errorf("top mismatch 0 = %+v", first)
	}

	// comparison_mismatches holds exactly the mismatched pairs.
	rows := readMismatches(t, s, "r1")
	var ids []string
	for id := range rows {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, wantTop) {
		t.Fatalf("comparison_mismatches holds %v, want %v", ids, wantTop)
	}
	for id, r := range rows {
		switch {
		case strings.HasPrefix(id, "t-"):
			checkPatch(t, r, ratingPath, "replace", 3.5)
			if r.bodyMode != "json" {
				t.Errorf("%s: body_mode = %q, want json", id, r.bodyMode)
			}
		case id == "u-001" || id == "u-016" || id == "u-031":
			checkPatch(t, r, namePath, "replace", "bob")
		case id == "u-010" || id == "u-020":
			if r.replayStatus != 0 || r.errKind != schemas.ErrorTimeout || r.prodStatus != 200 || r.bodyMode != "" ||
				!slices.Equal(r.paths, []string{"status"}) || r.patch != "" {
				t.Errorf("%s: failed replay row = %+v", id, r)
			}
		case id == "u-030":
			if r.replayStatus != 500 || r.errKind != "" {
				t.Errorf("%s: 500 row = %+v", id, r)
			}
		}
		if r.endpoint == "" || !r.comparedAt.Equal(sum.ComparedAt) {
			t.Errorf("%s: endpoint %q compared_at %v, want %v", id, r.endpoint, r.comparedAt, sum.ComparedAt)
		}
	}
	if r := rows["t-003"]; r.prodLineage["pricing"] != "p7" || r.replayLineage["catalog-service"] != "v1" {
		t.Errorf("t-003 lineage = %v / %v", r.prodLineage, r.replayLineage)
	}

	// comparison_summary: the run's row and one per endpoint.
	got := readSummary(t, s, "r1")
	want := map[string]compare.Counts{compare.EndpointAll: sum.Overall, titles: wantTitles, users: wantUsers}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("comparison_summary =\n %+v\nwant\n %+v", got, want)
	}
}

// ratingPath and namePath are how normalize names the differing members.
var (
	ratingPath = "$.rating"
	namePath   = "$.name"
)

// checkPatch checks that the row's patch is a valid RFC 6902 JSON Patch of
// one operation at the member the path names, with the given value.
func checkPatch(t *testing.T, r mismatchRow, path, op string, value any) {
	t.Helper()
	if !slices.Equal(r.paths, []string{path}) {
		t.Errorf("%s: paths = %v, want [%s]", r.cid, r.paths, path)
	}
	var patch []map[string]any
	if err := json.Unmarshal([]byte(r.patch), &patch); err != nil {
		t.Fatalf("%s: patch %q is not a JSON Patch: %v", r.cid, r.patch, err)
	}
	pointer := "/" + strings.TrimPrefix(path, "$.")
	if len(patch) != 1 || patch[0]["op"] != op || patch[0]["path"] != pointer || patch[0]["value"] != value {
		t.Errorf("%s: patch = %s, want one %s of %s with %v", r.cid, r.patch, op, pointer, value)
	}
	for _, o := range patch {
		if !slices.Contains([]string{"add", "remove", "replace", "move", "copy", "test"}, fmt.Sprint(o["op"])) {
			t.Errorf("%s: patch op %v is not an RFC 6902 operation", r.cid, o["op"])
		}
	}
}

// mismatchRow is one comparison_mismatches row as read back.
type mismatchRow struct {
	cid, endpoint              string
	prodStatus, replayStatus   int
	errKind, patch             string
	paths                      []string
	prodBody, replayBody       []byte
	prodRaw, replayRaw         []byte
	prodLineage, replayLineage map[string]string
	comparedAt                 time.Time
	bodyMode                   string
}

func readMismatches(t testing.TB, s *sinks.Iceberg, runID string) map[string]mismatchRow {
	t.Helper()
	out := map[string]mismatchRow{}
	forEachRow(t, s, schemas.TableComparisonMismatches, runID, func(rec arrow.RecordBatch, i int) {
		r := mismatchRow{
			cid:        str(rec, "correlation_id", i),
			endpoint:   str(rec, "endpoint", i),
			errKind:    str(rec, "replay_error_kind", i),
			patch:      str(rec, "patch", i),
			prodBody:   bin(rec, "production_body", i),
			replayBody: bin(rec, "replay_body", i),
			prodRaw:    bin(rec, "production_raw", i),
			replayRaw:  bin(rec, "replay_raw", i),
			bodyMode:   str(rec, "body_mode", i),
			comparedAt: col[*array.Timestamp](rec, "compared_at").Value(i).ToTime(arrow.Microsecond),
		}
		if st := col[*array.Int32](rec, "production_status"); st.IsValid(i) {
			r.prodStatus = int(st.Value(i))
		}
		if st := col[*array.Int32](rec, "replay_status"); st.IsValid(i) {
			r.replayStatus = int(st.Value(i))
		}
		paths := col[*array.List](rec, "paths")
		start, end := paths.ValueOffsets(i)
		for j := start; j < end; j++ {
			r.paths = append(r.paths, paths.ListValues().(*array.String).Value(int(j)))
		}
		r.prodLineage = strMap(rec, "production_lineage", i)
		r.replayLineage = strMap(rec, "replay_lineage", i)
		if _, dup := out[r.cid]; dup {
			t.Errorf("comparison_mismatches holds %s twice", r.cid)
		}
		out[r.cid] = r
	})

	return out
}

func readSummary(t testing.TB, s *sinks.Iceberg, runID string) map[string]compare.Counts {
	t.Helper()
	out := map[string]compare.Counts{}
	forEachRow(t, s, schemas.TableComparisonSummary, runID, func(rec arrow.RecordBatch, i int) {
		l := func(name string) int64 { return col[*array.Int64](rec, name).Value(i) }
		d := func(name string) float64 { return col[*array.Float64](rec, name).Value(i) }
		c := compare.Counts{
			Endpoint: str(rec, "endpoint", i), ProductionTotal: l("production_total"), ReplayTotal: l("replay_total"),
			Joined: l("joined"), OnlyProduction: l("only_production"), OnlyReplay: l("only_replay"),
			Matched: l("matched"), Mismatched: l("mismatched"), LineageExcluded: l("lineage_excluded"),
			NoiseExcluded: l("noise_excluded"), ProductionPassing: l("production_passing"),
			ProductionFailing: l("production_failing"), ReplayPassing: l("replay_passing"),
			ReplayFailing: l("replay_failing"), ReplayAmplified: l("replay_amplified"), Duplicates: l("duplicates"),
			ProductionP50: d("production_p50_ms"),
			ProductionP90: d("production_p90_ms"), ProductionP99: d("production_p99_ms"),
			ReplayP50: d("replay_p50_ms"), ReplayP90: d("replay_p90_ms"), ReplayP99: d("replay_p99_ms"),
		}
		if r := col[*array.Float64](rec, "match_rate"); r.IsNull(i) != (c.MatchRate() == nil) || (r.IsValid(i) && r.Value(i) != *c.MatchRate()) {
			t.Errorf("%s: match_rate = %v, want %v", c.Endpoint, r.ValueStr(i), c.MatchRate())
		}
		if _, dup := out[c.Endpoint]; dup {
			t.Errorf("comparison_summary holds %s twice", c.Endpoint)
		}
		out[c.Endpoint] = c
	})

	return out
}

func forEachRow(t testing.TB, s *sinks.Iceberg, table, runID string, fn func(arrow.RecordBatch, int)) {
	t.Helper()
	batches, err := s.ScanRunBatches(context.Background(), table, runID)
	if err != nil {
		t.Fatal(err)
	}
	for rec, err := range batches {
		if err != nil {
			t.Fatal(err)
		}
		for i := range int(rec.NumRows()) {
			if got := str(rec, "run_id", i); got != runID {
				t.Errorf("%s: row of run %q in a scan of %q", table, got, runID)
			}
			fn(rec, i)
		}
		rec.Release()
	}
}

func col[T arrow.Array](rec arrow.RecordBatch, name string) T {
	return rec.Column(rec.Schema().FieldIndices(name)[0]).(T)
}

func str(rec arrow.RecordBatch, name string, i int) string {
	a := col[*array.String](rec, name)
	if a.IsNull(i) {
		return ""
	}

	return strings.Clone(a.Value(i))
}

func bin(rec arrow.RecordBatch, name string, i int) []byte {
	a := col[*array.Binary](rec, name)
	if a.IsNull(i) {
		return nil
	}

	return bytes.Clone(a.Value(i))
}

func strMap(rec arrow.RecordBatch, name string, i int) map[string]string {
	m := col[*array.Map](rec, name)
	if m.IsNull(i) {
		return nil
	}
	out := map[string]string{}
	start, end := m.ValueOffsets(i)
	for j := int(start); j < int(end); j++ {
		out[m.Keys().(*array.String).Value(j)] = m.Items().(*array.String).Value(j)
	}

	return out
}

func countRows(t testing.TB, s *sinks.Iceberg, table, runID string) int {
	n := 0
	forEachRow(t, s, table, runID, func(arrow.RecordBatch, int) { n++ })

	return n
}

func TestRerunReplacesTheRunsRows(t *testing.T) {
	s := openSink(t, t.TempDir())
	write(t, s, "r1", scenario())
	other := scenario()[:30] // another run in the same tables
	write(t, s, "r2", other)
	cfg := testConfig(t)

	first := run(t, s, cfg, "r1")
	run(t, s, cfg, "r2")
	second := run(t, s, cfg, "r1")
	third := run(t, s, cfg, "r1")

	for _, c := range []struct {
		table, run string
		want       int
	}{
		{schemas.TableComparisonSummary, "r1", 3},
		{schemas.TableComparisonMismatches, "r1", 16},
		{schemas.TableComparisonSummary, "r2", 2},
		{schemas.TableComparisonMismatches, "r2", 3},
	} {
		if got := countRows(t, s, c.table, c.run); got != c.want {
			t.Errorf("%s holds %d rows of %s after re-runs, want %d", c.table, got, c.run, c.want)
		}
	}
	// readMismatches and readSummary fail on a duplicate key.
	readMismatches(t, s, "r1")
	got := readSummary(t, s, "r1")
	if got[compare.EndpointAll] != third.Overall || first.Overall != second.Overall {
		t.Errorf("summary after re-run = %+v, want %+v", got[compare.EndpointAll], third.Overall)
	}
	if !third.ComparedAt.After(first.ComparedAt) {
		t.Errorf("compared_at did not move: %v then %v", first.ComparedAt, third.ComparedAt)
	}
	forEachRow(t, s, schemas.TableComparisonSummary, "r1", func(rec arrow.RecordBatch, i int) {
		if at := col[*array.Timestamp](rec, "compared_at").Value(i).ToTime(arrow.Microsecond); !at.Equal(third.ComparedAt) {
			t.Errorf("summary row of %v survived the re-run at %v", at, third.ComparedAt)
		}
	})

	// New rules that ignore the differing members: the re-run keeps only
	// the status mismatches.
	cfg.Normalize.IgnorePaths = []string{"$.rating", "$.name"}
	fewer := run(t, s, cfg, "r1")
	if fewer.Overall.Mismatched != 3 {
		t.Errorf("mismatched with the members ignored = %d, want 3", fewer.Overall.Mismatched)
	}
	var ids []string
	for id := range readMismatches(t, s, "r1") {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if want := []string{"u-010", "u-020", "u-030"}; !slices.Equal(ids, want) {
		t.Errorf("comparison_mismatches holds %v after the re-run, want %v", ids, want)
	}

	// A run without a single mismatch.
	var same []exchange
	for _, x := range scenario() {
		if x.prod && x.replay && x.prodBody == x.replayBody && x.prodStatus == x.replayStatus && x.errKind == "" {
			same = append(same, x)
		}
	}
	write(t, s, "r3", same)
	clean := run(t, s, cfg, "r3")
	if clean.Overall.Mismatched != 0 || clean.MatchRate == nil || *clean.MatchRate != 1 || len(clean.TopMismatches) != 0 || clean.TopMismatches == nil {
		t.Errorf("clean run = %+v", clean)
	}
	if n := countRows(t, s, schemas.TableComparisonMismatches, "r3"); n != 0 {
		t.Errorf("comparison_mismatches holds %d rows of a clean run", n)
	}
	if n := countRows(t, s, schemas.TableComparisonSummary, "r3"); n != 3 {
		t.Errorf("comparison_summary holds %d rows of a clean run, want 3", n)
	}
}

// stable drops what differs between two runs of the same input.
// assertSameResults checks a spilled run against the in-memory run of the
// same input: the same summary and the same mismatch rows.
func assertSameResults(t *testing.T, inMemory, spilled *compare.Summary, memRows, spillRows map[string]mismatchRow) {
	t.Helper()
	if !spilled.Spilled {
		t.Fatal("the run did not spill")
	}
	if a, b := stable(inMemory), stable(spilled); !reflect.DeepEqual(a, b) {
		t.Errorf("summaries differ:\n in memory %+v\n spilled   %+v", a, b)
	}
	if len(memRows) != len(spillRows) {
		t.Fatalf("mismatch rows: %d in memory, %d spilled", len(memRows), len(spillRows))
	}
	for id, a := range memRows {
		b := spillRows[id]
		a.comparedAt, b.comparedAt = time.Time{}, time.Time{}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s differs:\n in memory %+v\n spilled   %+v", id, a, b)
		}
	}
}

func stable(s *compare.Summary) compare.Summary {
	c := *s
	c.ComparedAt, c.Duration, c.Spilled = time.Time{}, 0, false

	return c
}

func TestSpilledJoinGivesTheSameResult(t *testing.T) {
	s := openSink(t, t.TempDir())
	write(t, s, "r1", scenario())

	inMemory := run(t, s, testConfig(t), "r1")
	memRows := readMismatches(t, s, "r1")
	if inMemory.Spilled {
		t.Fatal("the in-memory run spilled")
	}

	for _, c := range []struct {
		name       string
		budget     int64
		partitions int
	}{
		{"1 KiB", 1 << 10, 7},   // partitions split once or twice
		{"1 byte", 1, 3},        // split to the maximum depth, then joined over the budget
		{"one partition", 1, 1}, // nothing to split into
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.MemoryBudget = c.budget
			cfg.Partitions = c.partitions
			spilled := run(t, s, cfg, "r1") // checks the spill dir is empty afterwards
			spillRows := readMismatches(t, s, "r1")
			assertSameResults(t, inMemory, spilled, memRows, spillRows)
		})
	}
}

// TestAmplifiedCopiesAreCountedNotJoined: replay rows of amplified copies
// (amplified_from set) have no production row; they are counted in
// ReplayAmplified, per endpoint and overall, and nowhere else: not
// only-replay, not in the replay totals, statuses or error kinds, and
// their bodies are not compared.
func TestAmplifiedCopiesAreCountedNotJoined(t *testing.T) {
	s := openSink(t, t.TempDir())
	var xs []exchange
	for i := range 30 {
		x := exchange{
			cid: fmt.Sprintf("t-%03d", i), method: "GET", path: fmt.Sprintf("/v1/titles/%d", i),
			prod: true, replay: true, prodStatus: 200, replayStatus: 200,
			prodBody: titleBody(i, "4.5"), replayBody: titleBody(i, "4.5"), prodLatency: 10, replayLatency: 12,
			copyBody: titleBody(i, "0"), // would be a mismatch if compared
		}
		switch i % 3 {
		case 0:
			x.copies = 1
		case 1:
			x.copies, x.copyErrKind = 2, schemas.ErrorTimeout
		}
		if i == 7 {
			x.replayBody = titleBody(i, "1")
		}
		xs = append(xs, x)
	}
	for i := range 10 {
		xs = append(xs, exchange{
			cid: fmt.Sprintf("u-%03d", i), method: "GET", path: fmt.Sprintf("/v1/users/%d", i),
			prod: true, replay: true, prodStatus: 200, replayStatus: 200,
			prodBody: userBody(i, "ann"), replayBody: userBody(i, "ann"), prodLatency: 5, replayLatency: 6,
		})
	}
	write(t, s, "amp", xs)

	for _, budget := range []int64{compare.DefaultConfig().MemoryBudget, 1} {
		cfg := testConfig(t)
		cfg.MemoryBudget = budget
		sum := run(t, s, cfg, "amp")
		if sum.Spilled != (budget == 1) {
			t.Fatalf("budget %d: spilled = %v", budget, sum.Spilled)
		}
		o := sum.Overall
		if o.ReplayAmplified != 30 || o.OnlyReplay != 0 || o.ReplayTotal != 40 || o.Joined != 40 ||
			o.Matched != 39 || o.Mismatched != 1 || o.ReplayFailing != 0 || o.ReplayPassing != 40 {
			t.Errorf("budget %d: overall %+v; want 30 amplified, 40 joined, 39 matched, 1 mismatched, no only-replay", budget, o)
		}
		if len(sum.ErrorKinds) != 0 {
			t.Errorf("budget %d: error kinds %v; the copies' timeouts must not count", budget, sum.ErrorKinds)
		}
		var cells int64
		for _, c := range sum.StatusMatrix {
			cells += c.Count
		}
		if cells != 40 {
			t.Errorf("budget %d: the status matrix holds %d pairs, want 40", budget, cells)
		}
		got := readSummary(t, s, "amp")
		if got[titles].ReplayAmplified != 30 || got[users].ReplayAmplified != 0 || got[compare.EndpointAll].ReplayAmplified != 30 {
			t.Errorf("budget %d: comparison_summary replay_amplified: titles %d, users %d, all %d; want 30, 0, 30", budget,
				got[titles].ReplayAmplified, got[users].ReplayAmplified, got[compare.EndpointAll].ReplayAmplified)
		}
		if got[compare.EndpointAll] != o {
			t.Errorf("budget %d: comparison_summary row %+v, want %+v", budget, got[compare.EndpointAll], o)
		}
		if rows := readMismatches(t, s, "amp"); len(rows) != 1 || rows["t-007"].cid == "" {
			t.Errorf("budget %d: mismatches %v, want only t-007", budget, slices.Collect(maps.Keys(rows)))
		}
	}
}

// cancelOn is a slog handler that cancels a context when it sees a message.
type cancelOn struct {
	slog.Handler
	msg    string
	cancel context.CancelFunc
}

func (h cancelOn) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.msg) {
		h.cancel()
	}

	return h.Handler.Handle(ctx, r)
}

func TestSpillFilesAreRemovedOnError(t *testing.T) {
	s := openSink(t, t.TempDir())
	write(t, s, "r1", scenario())
	cfg := testConfig(t)
	cfg.MemoryBudget = 1 << 10
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := slog.New(cancelOn{Handler: testLogger(t).Handler(), msg: "spilling", cancel: cancel})
	_, err := compare.Run(ctx, cfg, s, compare.Options{RunID: "r1", Logger: logger})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(cfg.SpillDir); len(entries) != 0 {
		t.Errorf("spill dir holds %v after a failed run", entries)
	}
}

func TestLatencyPercentilesAndFailures(t *testing.T) {
	s := openSink(t, t.TempDir())
	var xs []exchange
	// Production 1..200 ms in a shuffled order, replay twice as slow.
	for i := range 200 {
		ms := float64((i*67)%200 + 1)
		xs = append(xs, exchange{
			cid: fmt.Sprintf("c-%03d", i), method: "GET", path: "/v1/titles/1", prod: true, replay: true,
			prodStatus: 200, replayStatus: 200, prodBody: `{}`, replayBody: `{}`, prodLatency: ms, replayLatency: 2 * ms,
		})
	}
	// Failed replays: no latency, no status, an error kind each.
	for i, kind := range []string{schemas.ErrorTimeout, schemas.ErrorRefused, schemas.ErrorRefused, schemas.ErrorReset} {
		xs = append(xs, exchange{
			cid: fmt.Sprintf("f-%d", i), method: "GET", path: "/v1/titles/2", prod: true, replay: true,
			prodStatus: 503, prodBody: `{}`, prodLatency: 5000, errKind: kind,
		})
	}
	write(t, s, "lat", xs)
	sum := run(t, s, testConfig(t), "lat")

	o := sum.Overall
	// Nearest rank over 204 production values (1..200 and four 5000s) and
	// 200 replay values (2..400).
	got := []float64{o.ProductionP50, o.ProductionP90, o.ProductionP99, o.ReplayP50, o.ReplayP90, o.ReplayP99}
	want := []float64{102, 184, 5000, 200, 360, 396}
	if !slices.Equal(got, want) {
		t.Errorf("overall percentiles = %v, want %v", got, want)
	}
	if want := map[string]int64{"timeout": 1, "refused": 2, "reset": 1}; !maps.Equal(sum.ErrorKinds, want) {
		t.Errorf("error kinds = %v, want %v", sum.ErrorKinds, want)
	}
	wantMatrix := []compare.StatusCell{{Production: 200, Replay: 200, Count: 200}, {Production: 503, Replay: 0, Count: 4}}
	if !slices.Equal(sum.StatusMatrix, wantMatrix) {
		t.Errorf("status matrix = %v, want %v", sum.StatusMatrix, wantMatrix)
	}
	if o.ProductionFailing != 4 || o.ReplayFailing != 4 || o.ReplayPassing != 200 {
		t.Errorf("passing/failing = %+v", o)
	}
	h := sum.Latency
	if len(h.Production) != len(h.BoundsMS)+1 || len(h.Replay) != len(h.BoundsMS)+1 {
		t.Fatalf("histogram shape = %+v", h)
	}
	var prodN, replayN int64
	for i := range h.Production {
		prodN += h.Production[i]
		replayN += h.Replay[i]
	}
	if prodN != 204 || replayN != 200 {
		t.Errorf("histogram holds %d production and %d replay latencies, want 204 and 200", prodN, replayN)
	}
	// Buckets (…, 100, 200, 500, …]: production 101..200 in ≤200, 5000 in ≤5000.
	bucket := func(bound float64) int { return slices.Index(h.BoundsMS, bound) }
	if h.Production[bucket(200)] != 100 || h.Production[bucket(5000)] != 4 || h.Replay[bucket(500)] != 100 {
		t.Errorf("histogram = %+v", h)
	}
}

func TestProgressLinesWhenNotATerminal(t *testing.T) {
	s := openSink(t, t.TempDir())
	write(t, s, "r1", scenario())
	var out testinfra.SyncBuffer
	if _, err := compare.Run(context.Background(), testConfig(t), s, compare.Options{RunID: "r1", Progress: &out}); err != nil {
		t.Fatal(err)
	}
	// 148 production rows + 141 replay rows.
	if !strings.Contains(out.String(), "compare progress done") || !strings.Contains(out.String(), "rows=289 total=289") {
		t.Errorf("progress output = %q", out.String())
	}
}

func TestRunErrors(t *testing.T) {
	s := openSink(t, t.TempDir())
	cfg := testConfig(t)
	if _, err := compare.Run(context.Background(), cfg, s, compare.Options{RunID: "nope"}); !errors.Is(err, compare.ErrEmptyRun) {
		t.Errorf("empty run: err = %v, want ErrEmptyRun", err)
	}
	if _, err := compare.Run(context.Background(), cfg, s, compare.Options{}); !errors.Is(err, compare.ErrInvalidConfig) {
		t.Errorf("no run ID: err = %v, want ErrInvalidConfig", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	write(t, s, "r1", scenario()[:5])
	bad := cfg
	bad.SpillDir = filepath.Join(file, "spill")
	if _, err := compare.Run(context.Background(), bad, s, compare.Options{RunID: "r1"}); err == nil ||
		!strings.Contains(err.Error(), "compare.spill_dir") {
		t.Errorf("spill dir below a file: err = %v, want one naming compare.spill_dir", err)
	}
	cfg.SpillDir = filepath.Join(t.TempDir(), "created", "on", "demand")
	if _, err := compare.Run(context.Background(), cfg, s, compare.Options{RunID: "r1"}); err != nil {
		t.Errorf("missing spill dir: %v", err)
	}
	// The machine-dependent defaults: $TMPDIR and one worker per CPU.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	cfg.SpillDir, cfg.Workers = "", 0
	if _, err := compare.Run(context.Background(), cfg, s, compare.Options{RunID: "r1"}); err != nil {
		t.Errorf("default spill dir and workers: %v", err)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("$TMPDIR holds %v after the run", entries)
	}
	cfg.Workers = -1
	if _, err := compare.Run(context.Background(), cfg, s, compare.Options{RunID: "x"}); !errors.Is(err, compare.ErrInvalidConfig) ||
		!strings.Contains(err.Error(), "workers:") {
		t.Errorf("bad config: err = %v, want ErrInvalidConfig naming workers", err)
	}
}

func TestConfigValidate(t *testing.T) {
	def := compare.DefaultConfig()
	if errs := def.Validate(); len(errs) != 0 {
		t.Fatalf("default config: %v", errs)
	}
	if def.MemoryBudget != 256<<20 || def.Partitions != 64 || def.Workers != 0 || def.SpillDir != "" {
		t.Errorf("defaults = %+v", def)
	}
	if got := def.ReportPath("try-1"); got != "./replay-data/reports/try-1/report.html" {
		t.Errorf("report path = %q", got)
	}
	for _, c := range []struct {
		name string
		edit func(*compare.Config)
		want string
	}{
		{"budget", func(c *compare.Config) { c.MemoryBudget = 0 }, "memory_budget: must be ≥ 1 byte, got 0"},
		{"partitions", func(c *compare.Config) { c.Partitions = 0 }, "partitions: must be between 1 and 4096, got 0"},
		{"report", func(c *compare.Config) { c.Report = "" }, "report: is empty"},
		{"rate", func(c *compare.Config) { c.MinMatchRate = 1.5 }, "min_match_rate: must be between 0 and 1, got 1.5"},
		{"workers", func(c *compare.Config) { c.Workers = -1 }, "workers: must be ≥ 0 (0: one per CPU), got -1"},
		{"normalize", func(c *compare.Config) { c.Normalize.Routes = []string{"GET /a", ""} }, "normalize.routes[1]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := compare.DefaultConfig()
			c.edit(&cfg)
			errs := cfg.Validate()
			if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), c.want) {
				t.Errorf("errors = %v, want one starting with %q", errs, c.want)
			}
		})
	}
}

// TestDuplicateIDsJoinTheLowestCoordinates: two distinct records with the
// same correlation ID. The one at the lowest source coordinates is joined
// (its replay matches), the other is set aside with its replay row
// (which would mismatch), counted in Duplicates and named with its
// coordinates; in memory and spilled alike.
func TestDuplicateIDsJoinTheLowestCoordinates(t *testing.T) {
	s := openSink(t, t.TempDir())
	same := func(cid, body string) exchange {
		return exchange{cid: cid, method: "GET", path: "/v1/titles/1", prod: true, replay: true, prodStatus: 200, replayStatus: 200,
			prodBody: body, replayBody: body}
	}
	differs := same("d1", `{"a":1}`)
	differs.replayBody = `{"a":2}`
	xs := []exchange{same("d1", `{"a":1}`), same("u1", `{"b":1}`), differs, same("u2", `{"c":1}`), same("d1", `{"a":3}`)}
	write(t, s, "dup", xs)

	check := func(t *testing.T, sum *compare.Summary) {
		t.Helper()
		o := sum.Overall
		if o.Duplicates != 2 || o.Joined != 3 || o.Matched != 3 || o.Mismatched != 0 || o.ProductionTotal != 3 || o.ReplayTotal != 3 {
			t.Errorf("overall %+v; want 3 joined and matched, 2 duplicates", o)
		}
		want := compare.DuplicateSummary{IDs: 1, Rows: 2, Rule: compare.DuplicateRule, Examples: []compare.DuplicateID{
			{CorrelationID: "d1", Records: 3, Joined: "captures-dup/0@0", SetAside: []string{"captures-dup/0@2", "captures-dup/0@4"}}}}
		if !reflect.DeepEqual(sum.Duplicates, want) {
			t.Errorf("duplicates %+v, want %+v", sum.Duplicates, want)
		}
		if got := readSummary(t, s, "dup")[compare.EndpointAll].Duplicates; got != 2 {
			t.Errorf("comparison_summary duplicates %d, want 2", got)
		}
	}
	t.Run("in memory", func(t *testing.T) { check(t, run(t, s, testConfig(t), "dup")) })
	t.Run("spilled", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.MemoryBudget, cfg.Partitions = 1, 3
		sum := run(t, s, cfg, "dup")
		if !sum.Spilled {
			t.Error("the join did not spill")
		}
		check(t, sum)
	})
}
