package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/replaykit/replay/config"
	"github.com/replaykit/replay/internal/testinfra"
	"github.com/replaykit/replay/schemas"
	"github.com/replaykit/replay/sinks"
)

// target is a real HTTP server standing in for the new cluster. It records
// every request it receives and answers with a body derived from it.
type target struct {
	mu   sync.Mutex
	seen map[string]seenRequest // by X-Replay-Id
	dups int
}

type seenRequest struct {
	Method, Path, Query, Host string
	Header                    http.Header
	Body                      []byte
}

func (t *target) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id := r.Header.Get("X-Replay-Id")
	t.mu.Lock()
	if _, ok := t.seen[id]; ok {
		t.dups++
	}
	t.seen[id] = seenRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Header: r.Header.Clone(), Body: body}
	t.mu.Unlock()
	status := http.StatusOK
	if strings.HasSuffix(r.URL.Path, "/fail") {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("X-Lineage-Catalog", "v2")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"replayed":%q,"path":%q}`, id, r.URL.Path)
}

func (t *target) expectedBody(id, path string) []byte {
	return fmt.Appendf(nil, `{"replayed":%q,"path":%q}`, id, path)
}

// produced is what the test put on the topic, by correlation id.
type produced struct {
	env      schemas.Envelope
	replayed bool
}

func envelope(i int, method, path string) schemas.Envelope {
	x := schemas.Exchange{
		CorrelationID: fmt.Sprintf("corr-%04d", i),
		CapturedAt:    time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second),
		Request: schemas.Request{Method: method, Host: "api.example.com", Path: path, Query: "lang=en&debug=1",
			Headers: map[string][]string{"Accept": {"application/json"}, "Authorization": {"Bearer s3cret"}, "X-Drop": {"x"}},
			Body:    []byte(fmt.Sprintf(`{"n":%d}`, i))},
		Response: &schemas.Response{Status: 200 + i%3, Headers: map[string][]string{"Content-Type": {"application/json"}},
			Body: append([]byte{0xff, 0x00, byte(i)}, fmt.Sprintf("prod-%d", i)...), LatencyMS: float64(i) / 10},
		Lineage:    map[string]string{"catalog": "v1"},
		Attributes: map[string]string{"device_type": "tv"},
	}
	return x.Envelope()
}

func startBroker(t *testing.T, topic string, partitions int32) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// TestEndToEndKafkaToIceberg runs the end-to-end test on the embedded
// default: a SQLite catalog and a local warehouse.
func TestEndToEndKafkaToIceberg(t *testing.T) {
	testEndToEnd(t, func(dir string) string { return localCatalogYAML(dir) })
}

// TestEndToEndPostgresS3 runs the same end-to-end test with the catalog in
// a real PostgreSQL and the warehouse on a real S3 server (versitygw), the
// secret key read from the environment.
func TestEndToEndPostgresS3(t *testing.T) {
	testEndToEnd(t, func(string) string { return postgresS3CatalogYAML(t) })
}

// localCatalogYAML is the sink.catalog section of the embedded default,
// under dir.
func localCatalogYAML(dir string) string {
	return fmt.Sprintf("  catalog:\n    uri: %s\n    warehouse: %s\n", filepath.Join(dir, "catalog.db"), filepath.Join(dir, "warehouse"))
}

// postgresS3CatalogYAML starts PostgreSQL and an S3 server for the test and
// returns the sink.catalog and sink.s3 sections that use them.
func postgresS3CatalogYAML(t *testing.T) string {
	t.Helper()
	dsn := testinfra.PostgresDatabaseT(t)
	s3 := testinfra.S3T(t, "lake")
	t.Setenv("REPLAY_E2E_S3_SECRET", s3.SecretKey)
	return fmt.Sprintf(`  catalog:
    uri: %s
    warehouse: s3://lake/replay
  s3:
    endpoint: %s
    region: %s
    access_key_id: %s
    secret_access_key: ${REPLAY_E2E_S3_SECRET}
    path_style: true
`, dsn, s3.Endpoint, s3.Region, s3.AccessKey)
}

func testEndToEnd(t *testing.T, catalogYAML func(dir string) string) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatal("kcat is required for the end-to-end test as an independent Kafka client: apt-get install -y kcat")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const topic = "captures"
	brokers := startBroker(t, topic, 4)

	tgt := &target{seen: map[string]seenRequest{}}
	srv := httptest.NewServer(tgt)
	defer srv.Close()

	want := map[string]*produced{}
	// 1. Records produced by franz-go.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range 300 {
		method, path := "GET", fmt.Sprintf("/v1/titles/%d", i)
		switch {
		case i%10 == 3:
			method = "POST" // not selected by the default filter
		case i%25 == 0:
			path = "/v1/titles/fail"
		case i%50 == 7:
			path = "/internal/metrics" // excluded by path
		}
		env := envelope(i, method, path)
		raw, _ := json.Marshal(env)
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprint(i % 17)), Value: raw})
		want[env.CorrelationID] = &produced{env: env, replayed: method == "GET" && path != "/internal/metrics"}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce with kgo: %v", err)
	}

	// 2. Records produced by kcat, an independent client: envelopes and garbage.
	var kcatIn bytes.Buffer
	for i := 300; i < 400; i++ {
		env := envelope(i, "GET", fmt.Sprintf("/v1/users/%d", i))
		raw, _ := json.Marshal(env)
		fmt.Fprintf(&kcatIn, "k%d\t%s\n", i, raw)
		want[env.CorrelationID] = &produced{env: env, replayed: true}
	}
	garbage := []string{`{"request": `, `not json at all`, `{"captured_at":"2026-11-21T10:00:00Z","request":{"method":"GET","body":"%%","body_encoding":"base64"}}`}
	for i, g := range garbage {
		fmt.Fprintf(&kcatIn, "g%d\t%s\n", i, g)
	}
	kcat := exec.CommandContext(ctx, "kcat", "-b", strings.Join(brokers, ","), "-t", topic, "-P", "-K", "\t")
	kcat.Stdin = &kcatIn
	if out, err := kcat.CombinedOutput(); err != nil {
		t.Fatalf("produce with kcat: %v\n%s", err, out)
	}

	// 3. replay run, through the CLI, with a config file.
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "replay.yaml")
	writeFile(t, cfgFile, fmt.Sprintf(`
run_id: e2e-1
source:
  type: kafka
  kafka:
    brokers: [%s]
    topics: [%s]
    group: e2e
    stop_at_end: true
filter:
  exclude_paths: ["^/internal/"]
rewrite:
  - path: {match: "^/v1/", replace: "/v2/"}
  - query: {set: {replayed: "true"}, remove: [debug]}
  - header: {set: {X-Env: candidate}, remove: [X-Drop]}
replay:
  target: %s
  workers: 4
sink:
%s  flush:
    rows: 64
log:
  level: warn
`, brokers[0], topic, srv.URL, catalogYAML(dir)))

	var stdout, stderr bytes.Buffer
	if code := run([]string{"run", "--config", cfgFile}, &stdout, &stderr); code != 0 {
		t.Fatalf("replay run exited %d\n%s", code, stderr.String())
	}

	// 4. Read the tables back with iceberg-go scans.
	cfg, err := config.Load(cfgFile, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := sinks.OpenIceberg(ctx, cfg.Sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()

	prod := scan(t, ctx, sink, schemas.TableProduction, "e2e-1")
	if len(prod) != len(want) {
		t.Errorf("production_responses has %d rows, want %d", len(prod), len(want))
	}
	for id, row := range prod {
		w, ok := want[id]
		if !ok {
			t.Errorf("production row for unknown correlation id %q", id)
			continue
		}
		if row.int("response_status") != int64(w.env.Response.Status) {
			t.Errorf("%s: production status %d, want %d", id, row.int("response_status"), w.env.Response.Status)
		}
		wantBody := decodeBody(t, w.env.Response.Body, w.env.Response.BodyEncoding)
		if !bytes.Equal(row.bytes("response_body"), wantBody) {
			t.Errorf("%s: production body %q, want %q", id, row.bytes("response_body"), wantBody)
		}
		if got := row.str("request_path"); got != w.env.Request.Path {
			t.Errorf("%s: production request_path %q, want %q", id, got, w.env.Request.Path)
		}
	}

	rep := scan(t, ctx, sink, schemas.TableReplay, "e2e-1")
	tgt.mu.Lock() // the handlers' writes happened over the network: make them visible to the race detector
	wantReplayed := 0
	for id, w := range want {
		if !w.replayed {
			if _, ok := rep[id]; ok {
				t.Errorf("%s (%s %s) was replayed but should have been filtered", id, w.env.Request.Method, w.env.Request.Path)
			}
			continue
		}
		wantReplayed++
		row, ok := rep[id]
		if !ok {
			t.Errorf("%s: no replay row", id)
			continue
		}
		wantPath := strings.Replace(w.env.Request.Path, "/v1/", "/v2/", 1)
		wantStatus := int64(200)
		if strings.HasSuffix(wantPath, "/fail") {
			wantStatus = 503
		}
		if row.int("response_status") != wantStatus {
			t.Errorf("%s: replay status %d, want %d", id, row.int("response_status"), wantStatus)
		}
		if !bytes.Equal(row.bytes("response_body"), tgt.expectedBody(id, wantPath)) {
			t.Errorf("%s: replay body %q", id, row.bytes("response_body"))
		}
		if row.str("request_path") != wantPath {
			t.Errorf("%s: replay request_path %q, want %q", id, row.str("request_path"), wantPath)
		}
		// What the target actually received.
		seen, ok := tgt.seen[id]
		if !ok {
			t.Errorf("%s: the target never saw it", id)
			continue
		}
		if seen.Method != "GET" || seen.Path != wantPath || seen.Query != "lang=en&replayed=true" {
			t.Errorf("%s: target saw %s %s?%s, want GET %s?lang=en&replayed=true", id, seen.Method, seen.Path, seen.Query, wantPath)
		}
		if seen.Header.Get("X-Env") != "candidate" || seen.Header.Get("X-Drop") != "" || seen.Header.Get("Authorization") != "Bearer s3cret" {
			t.Errorf("%s: target saw headers %v", id, seen.Header)
		}
	}
	if len(rep) != wantReplayed {
		t.Errorf("replay_responses has %d rows, want %d", len(rep), wantReplayed)
	}
	if tgt.dups != 0 {
		t.Errorf("the target saw %d correlation ids twice", tgt.dups)
	}
	tgt.mu.Unlock()

	dead := scanRows(t, ctx, sink, schemas.TableDeadLetters, "e2e-1")
	if len(dead) != len(garbage) {
		t.Fatalf("dead_letters has %d rows, want %d", len(dead), len(garbage))
	}
	gotRaw := map[string]bool{}
	for _, d := range dead {
		gotRaw[string(d.bytes("raw"))] = true
		if d.str("reason") == "" || d.str("error") == "" {
			t.Errorf("dead letter without reason: %+v", d)
		}
	}
	for _, g := range garbage {
		if !gotRaw[g] {
			t.Errorf("dead_letters is missing the raw bytes %q", g)
		}
	}

	// 5. A restart in the same group finds the offsets committed and adds nothing.
	if code := run([]string{"run", "--config", cfgFile}, &stdout, &stderr); code != 0 {
		t.Fatalf("second replay run exited %d\n%s", code, stderr.String())
	}
	if n, err := sink.CountRows(ctx, schemas.TableProduction, "e2e-1"); err != nil || n != int64(len(want)) {
		t.Errorf("after a restart production_responses has %d rows (%v), want %d", n, err, len(want))
	}
	// Claims (both runs), appends with rows and empty appends alike.
	assertSnapshotKeys(t, ctx, sink, "e2e-1", "e2e")
}

func TestRunBadConfigExits2(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "bad.yaml")
	writeFile(t, f, "run_id: x\nreplay:\n  target: not-a-url\n  workers: 0\n")
	var stdout, stderr bytes.Buffer
	code := run([]string{"run", "--config", f}, &stdout, &stderr)
	if code != exitConfig {
		t.Fatalf("exit %d, want %d\n%s", code, exitConfig, stderr.String())
	}
	for _, field := range []string{"replay.target", "replay.workers"} {
		if !strings.Contains(stderr.String(), field) {
			t.Errorf("error output does not name %s:\n%s", field, stderr.String())
		}
	}
	writeFile(t, f, "run_id: x\nreplay:\n  tagret: http://x\n")
	stderr.Reset()
	if code := run([]string{"run", "--config", f}, &stdout, &stderr); code != exitConfig || !strings.Contains(stderr.String(), "tagret") {
		t.Errorf("unknown field: exit %d, output %s", code, stderr.String())
	}
}

func TestRunUnreachableCatalogNamesIt(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	writeFile(t, blocker, "")
	var stdout, stderr bytes.Buffer
	// A source that is there: the source is checked before the catalog.
	code := run([]string{"run", "--run-id", "x", "--target", "http://127.0.0.1:1",
		"--set", "source.type=file", "--set", "source.file.path=../../testdata/captures/sample.ndjson",
		"--set", "sink.catalog.uri=" + filepath.Join(blocker, "catalog.db"),
		"--set", "sink.catalog.warehouse=" + filepath.Join(dir, "warehouse")}, &stdout, &stderr) // not ./replay-data in the package directory
	if code != exitError || !strings.Contains(stderr.String(), blocker) {
		t.Fatalf("exit %d, want %d with the catalog path in the error:\n%s", code, exitError, stderr.String())
	}
}

func TestVersionAndHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"version"}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "replay ") {
		t.Fatalf("version: exit %d, %q", code, stdout.String())
	}
	for _, cmd := range []string{"run", "demo"} {
		stdout.Reset()
		if code := run([]string{cmd, "--help"}, &stdout, &stderr); code != 0 {
			t.Fatalf("%s --help: exit %d", cmd, code)
		}
		if !strings.Contains(stdout.String(), "Flags:") {
			t.Errorf("%s --help does not list flags:\n%s", cmd, stdout.String())
		}
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func decodeBody(t *testing.T, s, enc string) []byte {
	t.Helper()
	b, err := schemas.Decode(fmt.Appendf(nil, `{"request":{"method":"GET","body":%q,"body_encoding":%q}}`, s, enc), schemas.Coordinates{}, schemas.DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return b.Request.Body
}

// row is one table row read back, by column name.
type row map[string]any

func (r row) str(c string) string {
	s, _ := r[c].(string)
	return s
}
func (r row) bytes(c string) []byte {
	b, _ := r[c].([]byte)
	return b
}
func (r row) int(c string) int64 {
	switch v := r[c].(type) {
	case int32:
		return int64(v)
	case int64:
		return v
	}
	return -1
}

func scan(t *testing.T, ctx context.Context, s *sinks.Iceberg, table, runID string) map[string]row {
	t.Helper()
	out := map[string]row{}
	for _, r := range scanRows(t, ctx, s, table, runID) {
		id := r.str("correlation_id")
		if _, dup := out[id]; dup {
			t.Errorf("%s: correlation id %q appears twice", table, id)
		}
		out[id] = r
	}
	return out
}

func scanRows(t *testing.T, ctx context.Context, s *sinks.Iceberg, table, runID string) []row {
	t.Helper()
	tbl, err := s.ScanRun(ctx, table, runID)
	if err != nil {
		t.Fatalf("scan %s: %v", table, err)
	}
	defer tbl.Release()
	rows := make([]row, tbl.NumRows())
	for i := range rows {
		rows[i] = row{}
	}
	for c := range int(tbl.NumCols()) {
		name := tbl.Schema().Field(c).Name
		i := 0
		for _, chunk := range tbl.Column(c).Data().Chunks() {
			for j := range chunk.Len() {
				rows[i][name] = value(chunk, j)
				i++
			}
		}
	}
	return rows
}

func value(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case interface{ Value(int) string }:
		return a.Value(i)
	case interface{ Value(int) []byte }:
		return bytes.Clone(a.Value(i))
	case interface{ Value(int) int32 }:
		return a.Value(i)
	case interface{ Value(int) int64 }:
		return a.Value(i)
	}
	return a.ValueStr(i)
}

// TestRunFromNDJSONFile replays the sample capture file in testdata through
// `replay run` with source.type file.
func TestRunFromNDJSONFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tgt := &target{seen: map[string]seenRequest{}}
	srv := httptest.NewServer(tgt)
	defer srv.Close()
	dir := t.TempDir()
	args := []string{"run", "--run-id", "file-1", "--target", srv.URL,
		"--set", "source.type=file", "--set", "source.file.path=../../testdata/captures/sample.ndjson",
		"--set", "sink.catalog.uri=" + filepath.Join(dir, "catalog.db"), "--set", "sink.catalog.warehouse=" + filepath.Join(dir, "wh"),
		"--set", "log.level=warn"}
	var stdout, stderr bytes.Buffer
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("replay run exited %d\n%s", code, stderr.String())
	}
	cfg := config.Default()
	cfg.Sink.Catalog.URI, cfg.Sink.Catalog.Warehouse = filepath.Join(dir, "catalog.db"), filepath.Join(dir, "wh")
	sink, err := sinks.OpenIceberg(ctx, cfg.Sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	// 20 envelopes (4 of them POSTs), 2 undecodable lines, 1 blank line.
	prod := scan(t, ctx, sink, schemas.TableProduction, "file-1")
	rep := scan(t, ctx, sink, schemas.TableReplay, "file-1")
	dead := scanRows(t, ctx, sink, schemas.TableDeadLetters, "file-1")
	if len(prod) != 20 || len(rep) != 16 || len(dead) != 2 {
		t.Fatalf("rows: production %d, replay %d, dead letters %d; want 20, 16, 2", len(prod), len(rep), len(dead))
	}
	if got := prod["file-007"].bytes("response_body"); !bytes.Equal(got, []byte{0, 1, 2, 255}) {
		t.Errorf("base64 body did not round-trip: %v", got)
	}
	for _, d := range dead {
		if !strings.HasPrefix(d.str("source_topic"), "file:") || d.int("source_offset") < 0 {
			t.Errorf("dead letter coordinates: %v/%v", d["source_topic"], d["source_offset"])
		}
	}
}
