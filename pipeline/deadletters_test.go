package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/replaykit/replay/internal/testinfra"
	"github.com/replaykit/replay/schemas"
)

func harEntry(i int) []byte {
	return fmt.Appendf(nil, `{"startedDateTime":"2026-11-21T10:00:00Z","request":{"method":"GET","url":"https://a.example/v1/%d",`+
		`"headers":[{"name":"Accept","value":"*/*"}]},"response":{"status":200,"headers":[],"content":{"text":"{}"}}}`, i)
}

// runDeadLetters runs a pipeline over vals (one partition) to the end of
// the input and returns Run's error, the sink and the log.
func runDeadLetters(t *testing.T, cfg Config, vals [][]byte) (*memSink, string, error) {
	t.Helper()
	srv := httptest.NewServer(&recorder{})
	t.Cleanup(srv.Close)
	cfg.Replay.Target = srv.URL
	var logs testinfra.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	sink := &memSink{t: t}
	p, err := New(cfg, &memSource{batches: interleave([][][]byte{vals}, 50)}, sink, log)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Run(context.Background())
	return sink, logs.String(), err
}

func TestRunOfHAREntriesFailsNamingTheShape(t *testing.T) {
	var vals [][]byte
	for i := range 2000 {
		vals = append(vals, harEntry(i))
	}
	sink, logs, err := runDeadLetters(t, validConfig(), vals)
	if !errors.Is(err, ErrDeadLetters) {
		t.Fatalf("Run = %v, want an error wrapping ErrDeadLetters", err)
	}
	for _, s := range []string{"0 of 2,000 records decoded", "HAR entries", "capture envelope", "dead_letters", "bad_json=2000"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("the error does not say %q: %v", s, err)
		}
	}
	flushed, _ := sink.results()
	if len(flushed) != 2000 {
		t.Errorf("the sink holds %d results, want every dead letter (2000) flushed before Run returned", len(flushed))
	}
	if !strings.Contains(logs, "dead letters by reason") || !strings.Contains(logs, `by_shape="har_entry=2000"`) {
		t.Errorf("no end-of-run summary by reason and shape in the log:\n%s", logs)
	}
	if n := strings.Count(logs, "dead letter: a record could not be decoded"); n != 1 {
		t.Errorf("the first dead letter was logged %d times, want once:\n%s", n, logs)
	}
}

func TestDeadLetterRatio(t *testing.T) {
	var vals [][]byte
	for i := range 100 {
		vals = append(vals, envelope(t, fmt.Sprintf("c%d", i), "GET", "/v1/x", "", nil))
		if i%10 == 0 {
			vals = append(vals, []byte("not json"))
		}
	}
	// 10 dead letters of 110 records: 9.1%.
	for _, tc := range []struct {
		ratio float64
		fail  bool
	}{{1, false}, {0.1, false}, {0.09, true}, {0, true}} {
		cfg := validConfig()
		cfg.Decode.MaxDeadLetterRatio = tc.ratio
		_, logs, err := runDeadLetters(t, cfg, vals)
		if got := errors.Is(err, ErrDeadLetters); got != tc.fail {
			t.Errorf("ratio %v: Run = %v, want failure %v", tc.ratio, err, tc.fail)
		}
		if tc.fail && (!strings.Contains(err.Error(), "100 of 110 records decoded") || !strings.Contains(err.Error(), "not JSON")) {
			t.Errorf("ratio %v: the error does not give the counts and the cause: %v", tc.ratio, err)
		}
		if !strings.Contains(logs, `by_reason="bad_json=10"`) {
			t.Errorf("ratio %v: no summary by reason in the log:\n%s", tc.ratio, logs)
		}
	}
}

func TestDeadLettersAreLoggedWhileTheyArrive(t *testing.T) {
	cfg := validConfig()
	cfg.Decode.DeadLetterLogInterval = time.Millisecond
	srv := httptest.NewServer(&recorder{})
	t.Cleanup(srv.Close)
	cfg.Replay.Target = srv.URL
	log, reported := signalLogger(t, "dead letters since the last report")
	src := &memSource{batches: interleave([][][]byte{{[]byte(`{"no":"request"}`), []byte("x")}}, 1), block: true}
	ctx, cancel := context.WithCancel(context.Background())
	p, errc := startPipeline(t, ctx, cfg, src, &memSink{t: t}, log)
	select {
	case <-reported:
	case err := <-errc:
		t.Fatalf("Run ended before reporting its dead letters: %v", err)
	}
	s := p.Stats()
	if s.DeadLetters[schemas.ReasonMissingRequest] != 1 || s.DeadLetters[schemas.ReasonBadJSON] != 1 ||
		s.DeadLetterShapes[schemas.ShapeJSONWithoutRequest] != 1 || s.DeadLetterShapes[schemas.ShapeNotJSON] != 1 {
		t.Errorf("Stats: dead letters %v, shapes %v", s.DeadLetters, s.DeadLetterShapes)
	}
	cancel()
	if err := <-errc; !errors.Is(err, ErrDeadLetters) {
		t.Errorf("a run stopped by its context with nothing decoded: Run = %v, want ErrDeadLetters", err)
	}
}

func TestDuplicateIDsWithinTheWindow(t *testing.T) {
	r := newRecentIDs(2)
	at := func(o int64) schemas.Coordinates { return schemas.Coordinates{Topic: "t", Offset: o} }
	steps := []struct {
		id   string
		off  int64
		dup  bool
		prev int64
	}{
		{"a", 0, false, 0},
		{"a", 0, false, 0}, // the same record read again
		{"b", 1, false, 0},
		{"a", 2, true, 0},  // a second record with a's ID
		{"c", 3, false, 0}, // a falls out of the window
		{"a", 4, false, 0},
		{"c", 5, true, 3},
	}
	for i, s := range steps {
		prev, dup := r.see(s.id, at(s.off))
		if dup != s.dup || dup && prev != at(s.prev) {
			t.Errorf("step %d (%s at %d): dup %v prev %v, want %v %v", i, s.id, s.off, dup, prev, s.dup, s.prev)
		}
	}
	if len(r.byID) != 2 || len(r.ring) != 2 {
		t.Errorf("the window holds %d ids (ring %d), want 2", len(r.byID), len(r.ring))
	}
	if newRecentIDs(0) != nil {
		t.Error("a window of 0 is not off")
	}

	// Through a run: counted, and logged with both coordinates.
	vals := [][]byte{envelope(t, "x", "GET", "/a", "", nil), envelope(t, "y", "GET", "/b", "", nil), envelope(t, "x", "GET", "/c", "", nil)}
	_, logs, err := runDeadLetters(t, validConfig(), vals)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs, "same correlation id") || !strings.Contains(logs, "first=capture/0@0") || !strings.Contains(logs, "second=capture/0@2") {
		t.Errorf("the duplicate is not logged with both coordinates:\n%s", logs)
	}
	if !strings.Contains(logs, "duplicate_ids=1") {
		t.Errorf("no end-of-run count of duplicates:\n%s", logs)
	}
}
