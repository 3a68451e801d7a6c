package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/replaykit/replay/schemas"
)

var (
	regexpCount      = regexp.MustCompile(`Bad inputs tried: \*\*\d+\*\*, each with its outcome\.`)
	regexpFuzzTarget = regexp.MustCompile(`(?m)^\s*(\./[\w/]+):(Fuzz\w+)`)
	regexpFuzzFunc   = regexp.MustCompile(`(?m)^func (Fuzz\w+)\(f \*testing\.F\)`)
)

var update = flag.Bool("update", false, "rewrite the Bad inputs tables of docs/operations.md from the hostile-input suite")

// The records layer of the hostile-input suite (docs/operations.md, "Bad
// inputs"): records a capture log may hold, put on a kfake broker over TCP
// among good ones, replayed by the built binary into a local warehouse,
// and read back.

// badRecord is one hostile record and what replay must make of it.
type badRecord struct {
	name  string
	key   []byte
	value []byte // nil: a tombstone (a record without a value)
	// reason is the dead_letters reason; empty when the record decodes.
	reason string
	// shape, for a dead letter, is what it looks like (schemas.SniffShape):
	// the run counts its dead letters by shape to name the likely cause.
	shape string
	// replayError, for a record that decodes, is a substring of its
	// replay row's error_message: the request could not be sent.
	replayError string
	// status, for a record that decodes and is sent, is the status its
	// replay row holds.
	status int
	// duplicate: the record carries the correlation id of the first good
	// record (corr-0000). Both are kept and the run counts it in
	// duplicate_ids.
	duplicate bool
}

const hostileMaxBody = 1024 // decode.max_body_bytes of the run

func env(request string, rest ...string) []byte {
	s := `{"correlation_id":"CID","captured_at":"2026-11-21T10:00:00Z","request":` + request
	for _, r := range rest {
		s += "," + r
	}
	return []byte(s + "}")
}

var badRecords = []badRecord{
	{name: "empty value", value: []byte{}, reason: "bad_json"},
	{name: "tombstone (no value)", value: nil, reason: "bad_json"},
	{name: "NUL bytes", value: []byte("\x00\x00\x00"), reason: "bad_json"},
	{name: "invalid UTF-8", value: []byte("\xff\xfe\xfd"), reason: "bad_json"},
	{name: "a raw HTTP request", value: []byte("GET /v1/x HTTP/1.1\r\nHost: a\r\n\r\n"), reason: "bad_json"},
	{name: "truncated JSON", value: []byte(`{"request":{"method":"GET"`), reason: "bad_json"},
	{name: "two JSON documents", value: []byte(`{"request":{"method":"GET"}} {"request":{"method":"GET"}}`), reason: "bad_json"},
	{name: "a byte order mark", value: append([]byte("\xef\xbb\xbf"), env(`{"method":"GET","path":"/"}`)...), reason: "bad_json"},
	{name: "a JSON array", value: []byte(`[{"request":{"method":"GET"}}]`), reason: "bad_json"},
	{name: "JSON null", value: []byte(`null`), reason: "missing_request"},
	{name: "an empty object", value: []byte(`{}`), reason: "missing_request"},
	{name: "a HAR log", value: []byte(`{"log":{"version":"1.2","entries":[{"request":{"method":"GET","url":"http://h/p","headers":[]},"response":{"status":200}}]}}`), reason: "missing_request", shape: schemas.ShapeHARLog},
	{name: "nesting 100,000 deep", value: []byte(strings.Repeat("[", 100000) + strings.Repeat("]", 100000)), reason: "bad_json"},
	{name: "request not an object", value: env(`"GET /v1/x"`), reason: "bad_json"},
	{name: "request.method missing", value: env(`{"path":"/v1/x"}`), reason: "invalid_field"},
	{name: "request.method a number", value: env(`{"method":1,"path":"/"}`), reason: "bad_json"},
	{name: "request.path relative", value: env(`{"method":"GET","path":"v1/x"}`), reason: "invalid_field"},
	{name: "request.path a full URL", value: env(`{"method":"GET","path":"http://other/x"}`), reason: "invalid_field"},
	{name: "request.path a number", value: env(`{"method":"GET","path":7}`), reason: "bad_json"},
	{name: "request.headers values not a list", value: env(`{"method":"GET","path":"/","headers":{"Accept":"*/*"}}`), reason: "bad_json"},
	{name: "request.body bad base64", value: env(`{"method":"POST","path":"/","body":"a%b=","body_encoding":"base64"}`), reason: "bad_body_encoding"},
	{name: "request.body_encoding unknown", value: env(`{"method":"POST","path":"/","body":"x","body_encoding":"gzip"}`), reason: "bad_body_encoding"},
	{name: "request.body over decode.max_body_bytes", value: env(`{"method":"POST","path":"/","body":"` + strings.Repeat("x", hostileMaxBody+1) + `"}`), reason: "body_too_large"},
	{name: "response not an object", value: env(`{"method":"GET","path":"/"}`, `"response":"200 OK"`), reason: "bad_json"},
	{name: "response.status out of range", value: env(`{"method":"GET","path":"/"}`, `"response":{"status":42}`), reason: "invalid_field"},
	{name: "response.status a string", value: env(`{"method":"GET","path":"/"}`, `"response":{"status":"200"}`), reason: "bad_json"},
	{name: "response.status 1e309", value: env(`{"method":"GET","path":"/"}`, `"response":{"status":1e309}`), reason: "bad_json"},
	{name: "response.status past int64", value: env(`{"method":"GET","path":"/"}`, `"response":{"status":99999999999999999999}`), reason: "bad_json"},
	{name: "response.latency_ms a string", value: env(`{"method":"GET","path":"/"}`, `"response":{"status":200,"latency_ms":"fast"}`), reason: "bad_json"},
	{name: "response.body bad base64", value: env(`{"method":"GET","path":"/"}`, `"response":{"status":200,"body":"@@","body_encoding":"base64"}`), reason: "bad_body_encoding"},
	{name: "response.body over decode.max_body_bytes", value: env(`{"method":"GET","path":"/"}`, `"response":{"status":200,"body":"`+strings.Repeat("y", hostileMaxBody+1)+`"}`), reason: "body_too_large"},
	{name: "captured_at not a time", value: env(`{"method":"GET","path":"/"}`, `"captured_at":"yesterday"`), reason: "bad_json"},
	{name: "captured_at a number", value: env(`{"method":"GET","path":"/"}`, `"captured_at":1700000000`), reason: "bad_json"},
	{name: "lineage not an object", value: env(`{"method":"GET","path":"/"}`, `"lineage":["v1"]`), reason: "bad_json"},
	{name: "attributes values not strings", value: env(`{"method":"GET","path":"/"}`, `"attributes":{"device":1}`), reason: "bad_json"},
	{name: "binary key, bad value", key: []byte{0, 0xff, '\n', 'k'}, value: []byte("{"), reason: "bad_json"},
	// Records that decode but cannot be sent: a replay row with the error.
	{name: "request.path with a NUL", value: env(`{"method":"GET","path":"/a\u0000b"}`), replayError: "invalid control character"},
	{name: "request.query with CR LF", value: env(`{"method":"GET","path":"/","query":"a=1\r\nX: y"}`), replayError: "invalid control character"},
	{name: "request.method not a token", value: env(`{"method":"G ET","path":"/"}`), replayError: "invalid method"},
	{name: "request.headers value with CR LF", value: env(`{"method":"GET","path":"/","headers":{"X-A":["v\r\nInjected: 1"]}}`), replayError: "invalid header field value"},
	{name: "request.headers name with a space", value: env(`{"method":"GET","path":"/","headers":{"Bad Name":["v"]}}`), replayError: "invalid header field name"},
	// Records that look hostile but are valid: sent as captured.
	{name: "request.path climbing with ..", value: env(`{"method":"GET","path":"/v1/../../etc/passwd"}`), status: 200},
	{name: "request.body invalid UTF-8 in utf8 encoding", value: env("{\"method\":\"POST\",\"path\":\"/\",\"body\":\"\xff\xfe\"}"), status: 200},
	{name: "correlation_id of an earlier record", value: []byte(`{"correlation_id":"corr-0000","captured_at":"2026-11-21T10:00:00Z","request":{"method":"GET","path":"/v1/again"}}`), status: 200, duplicate: true},
	{name: "correlation_id of 10,000 characters", value: []byte(`{"correlation_id":"` + strings.Repeat("c", 10000) + `","request":{"method":"GET","path":"/"}}`), status: 200},
}

// TestHostileRecords produces every row of badRecords among good records
// and checks each outcome in the tables.
func TestHostileRecords(t *testing.T) {
	replayBinary(t) // built before the clock starts
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const topic, good = "hostile", 300
	_, brokers := startFaultyBroker(t, topic, 1) // writeRunConfig's 2s session timeout
	tgt := &target{seen: map[string]seenRequest{}}
	srv := httptest.NewServer(tgt)
	defer srv.Close()

	// One partition, so a record's offset is its place in this list: the
	// good records before and after the hostile ones.
	var recs []*kgo.Record
	for i := range good / 2 {
		raw, _ := json.Marshal(envelope(i, "GET", fmt.Sprintf("/v1/good/%d", i)))
		recs = append(recs, &kgo.Record{Value: raw})
	}
	first := len(recs)
	for i, r := range badRecords {
		v := bytes.ReplaceAll(r.value, []byte(`"CID"`), fmt.Appendf(nil, `"hostile-%d"`, i))
		recs = append(recs, &kgo.Record{Key: r.key, Value: v})
	}
	for i := good / 2; i < good; i++ {
		raw, _ := json.Marshal(envelope(i, "GET", fmt.Sprintf("/v1/good/%d", i)))
		recs = append(recs, &kgo.Record{Value: raw})
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchMaxBytes(4<<20))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	cl.Close()

	dir := t.TempDir()
	cfgFile := writeRunConfig(t, dir, "hostile-records", brokers[0], topic, srv.URL, fmt.Sprintf(`decode:
  max_body_bytes: %d
filter:
  methods: ["*"]
`, hostileMaxBody))
	cmd := replayCommand(ctx, t, dir, "run", "--config", cfgFile)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("replay run: %v\n%s", err, tailOf(out))
	}
	// The run's log counts the duplicate ids and the dead letters by shape.
	dups, shapes := 0, map[string]int{}
	for _, r := range badRecords {
		if r.duplicate {
			dups++
		}
		if r.shape != "" {
			shapes[r.shape]++
		}
	}
	if dups > 0 {
		for _, w := range []string{fmt.Sprintf("duplicate_ids=%d", dups), "correlation_id=corr-0000"} {
			if !bytes.Contains(out, []byte(w)) {
				t.Errorf("the run's log does not say %s:\n%s", w, tailOf(out))
			}
		}
	}
	for shape, n := range shapes {
		if w := fmt.Sprintf("%s=%d", shape, n); !regexp.MustCompile(`by_shape="[^"]*\b` + w + `\b`).Match(out) {
			t.Errorf("the run's dead letters by_shape does not say %s:\n%s", w, tailOf(out))
		}
	}

	sink := openSinkFromConfig(t, ctx, cfgFile)
	defer sink.Close()
	dead := map[int64]row{}
	for _, r := range scanRows(t, ctx, sink, schemas.TableDeadLetters, "hostile-records") {
		dead[r.int("source_offset")] = r
	}
	replayed := map[int64]row{}
	for _, r := range scanRows(t, ctx, sink, schemas.TableReplay, "hostile-records") {
		replayed[r.int("source_offset")] = r
	}
	production := map[int64]bool{}
	for _, r := range scanRows(t, ctx, sink, schemas.TableProduction, "hostile-records") {
		production[r.int("source_offset")] = true
	}
	for i, want := range badRecords {
		off := int64(first + i)
		rec := recs[first+i]
		t.Run(want.name, func(t *testing.T) {
			checkHostileRecord(t, want, rec, dead[off], replayed[off], production[off])
			if want.duplicate && (!production[0] || replayed[0] == nil) {
				t.Errorf("the first record with its correlation id lost its production (%v) or replay (%v) row", production[0], replayed[0] != nil)
			}
		})
	}
	if n := len(production); n != good+countDecoded() {
		t.Errorf("production_responses holds %d records, want %d good and %d hostile that decode", n, good, countDecoded())
	}
}

func countDecoded() int {
	n := 0
	for _, r := range badRecords {
		if r.reason == "" {
			n++
		}
	}
	return n
}

func checkHostileRecord(t *testing.T, want badRecord, rec *kgo.Record, dead, replayed row, inProduction bool) {
	t.Helper()
	if want.reason != "" {
		if dead == nil {
			t.Fatalf("not in dead_letters (in production_responses: %v)", inProduction)
		}
		if got := dead.str("reason"); got != want.reason {
			t.Errorf("reason %q, want %q (error: %s)", got, want.reason, dead.str("error"))
		}
		if want.shape != "" && schemas.SniffShape(rec.Value) != want.shape {
			t.Errorf("shape %q, want %q", schemas.SniffShape(rec.Value), want.shape)
		}
		if !bytes.Equal(dead.bytes("raw"), rec.Value) {
			t.Errorf("raw is %d bytes %.40q, want the record's %d bytes %.40q", len(dead.bytes("raw")), dead.bytes("raw"), len(rec.Value), rec.Value)
		}
		if !bytes.Equal(dead.bytes("key"), rec.Key) {
			t.Errorf("key %q, want %q", dead.bytes("key"), rec.Key)
		}
		if inProduction || replayed != nil {
			t.Errorf("a dead letter also has a production (%v) or replay (%v) row", inProduction, replayed != nil)
		}
		return
	}
	if dead != nil {
		t.Fatalf("dead-lettered (%s: %s), want it decoded", dead.str("reason"), dead.str("error"))
	}
	if !inProduction || replayed == nil {
		t.Fatalf("production row %v, replay row %v; want both", inProduction, replayed != nil)
	}
	if want.replayError != "" {
		if msg := replayed.str("error_message"); !strings.Contains(msg, want.replayError) {
			t.Errorf("replay row error %q (%s), want it to contain %q", msg, replayed.str("error_kind"), want.replayError)
		}
		return
	}
	if got := replayed.int("response_status"); got != int64(want.status) || replayed.str("error_kind") != "" {
		t.Errorf("replay row status %d, error %q; want status %d", got, replayed.str("error_message"), want.status)
	}
}

// replayCommand is the built binary with args, run in dir, with no REPLAY_*
// variables of the test's environment.
func replayCommand(ctx context.Context, t *testing.T, dir string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, replayBinary(t), args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REPLAY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	return cmd
}

func tailOf(b []byte) []byte {
	if len(b) > 4000 {
		return b[len(b)-4000:]
	}
	return b
}

func (r badRecord) outcome() string {
	switch {
	case r.reason != "" && r.shape != "":
		return "dead letter `" + r.reason + "`, counted as shape `" + r.shape + "` (the likely cause), exact bytes kept"
	case r.reason != "":
		return "dead letter `" + r.reason + "`, exact bytes kept"
	case r.duplicate:
		return fmt.Sprintf("replayed as captured (status %d), and so is the earlier record: both kept, counted in the run's `duplicate_ids`", r.status)
	case r.replayError != "":
		return "replay row with error `" + r.replayError + "`; production row written"
	default:
		return fmt.Sprintf("replayed as captured (status %d)", r.status)
	}
}

// TestHostileRecordsDoc keeps the records table of docs/operations.md equal
// to badRecords (-update rewrites it).
func TestHostileRecordsDoc(t *testing.T) {
	var b strings.Builder
	fmt.Fprintf(&b, "Records: %d hostile records.\n\n| record | outcome |\n|---|---|\n", len(badRecords))
	for _, r := range badRecords {
		fmt.Fprintf(&b, "| %s | %s |\n", r.name, r.outcome())
	}
	syncDocSection(t, "../../docs/operations.md", "bad-inputs:records", b.String())
}

// syncDocSection checks (or with -update rewrites) the text between
// <!-- name:begin --> and <!-- name:end --> in the file at path.
func syncDocSection(t *testing.T, path, name, body string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	begin, end := "<!-- "+name+":begin -->\n", "<!-- "+name+":end -->"
	i := strings.Index(string(raw), begin)
	j := strings.Index(string(raw), end)
	if i < 0 || j < i {
		t.Fatalf("%s has no %s … %s section", path, begin, end)
	}
	i += len(begin)
	if string(raw[i:j]) == body {
		return
	}
	if !*update {
		t.Errorf("the %s section of %s is not the suite's table; run go test ./cmd/replay -run %s -update", name, path, t.Name())
		return
	}
	out := string(raw[:i]) + body + string(raw[j:])
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
}

// docTableRows counts the table rows (after the header) in a section.
func docTableRows(t *testing.T, doc, name string) int {
	t.Helper()
	begin, end := "<!-- "+name+":begin -->", "<!-- "+name+":end -->"
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("docs/operations.md has no %s section", name)
	}
	n := 0
	for _, line := range strings.Split(doc[i:j], "\n") {
		if strings.HasPrefix(line, "| ") {
			n++
		}
	}
	return n - 1 // the header row
}

// TestHostileDocCount: the count in docs/operations.md is the number of
// rows of the three tables, each of which its own test keeps equal to its
// suite (config/hostile_test.go, and the two files here).
func TestHostileDocCount(t *testing.T) {
	raw, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	total := 0
	for _, layer := range []string{"records", "cli", "config"} {
		total += docTableRows(t, doc, "bad-inputs:"+layer)
	}
	want := fmt.Sprintf("Bad inputs tried: **%d**, each with its outcome.", total)
	if strings.Contains(doc, want) {
		return
	}
	if *update {
		re := regexpCount.ReplaceAllString(doc, want)
		if err := os.WriteFile("../../docs/operations.md", []byte(re), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("docs/operations.md does not say %q; run go test ./cmd/replay -run TestHostileDocCount -update", want)
}

// TestMakefileFuzzesEveryTarget: FUZZ_TARGETS in the Makefile lists every
// func Fuzz… of the repository, as package:Target, and nothing else.
func TestMakefileFuzzesEveryTarget(t *testing.T) {
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, m := range regexpFuzzTarget.FindAllStringSubmatch(string(mk), -1) {
		listed[m[1]+":"+m[2]] = true
	}
	found := map[string]bool{}
	err = filepath.WalkDir("../..", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && p != "../.." {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range regexpFuzzFunc.FindAllStringSubmatch(string(src), -1) {
			found["./"+filepath.ToSlash(filepath.Dir(strings.TrimPrefix(p, "../../")))+":"+m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k := range found {
		if !listed[k] {
			t.Errorf("%s is not in FUZZ_TARGETS in the Makefile", k)
		}
	}
	for k := range listed {
		if !found[k] {
			t.Errorf("FUZZ_TARGETS lists %s, which does not exist", k)
		}
	}
	if len(found) == 0 {
		t.Error("found no fuzz targets")
	}
}
