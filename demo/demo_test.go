package demo

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/replaykit/replay/config"
	"github.com/replaykit/replay/schemas"
	"github.com/replaykit/replay/sinks"
)

// TestDemoRunsTwice runs the demo twice into the same directory, as a user
// typing `make demo` twice would, and checks what it read back.
func TestDemoRunsTwice(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	var logs bytes.Buffer
	for i, runID := range []string{"demo-a", "demo-b"} {
		sum, err := Run(ctx, Options{Dir: dir, Exchanges: 400, Garbage: 3, Partitions: 3, RunID: runID,
			Log: config.Log{Level: "warn", Format: "text"}}, &logs)
		if err != nil {
			t.Fatalf("demo run %d: %v\n%s", i+1, err, logs.String())
		}
		if sum.Captured != 400 || sum.Consumed != 403 || sum.DeadLettered != 3 {
			t.Errorf("run %d: captured %d consumed %d dead-lettered %d, want 400/403/3", i+1, sum.Captured, sum.Consumed, sum.DeadLettered)
		}
		if got := sum.Rows[schemas.TableProduction]; got != 400 {
			t.Errorf("run %d: production rows %d, want 400", i+1, got)
		}
		if got := sum.Rows[schemas.TableDeadLetters]; got != 3 {
			t.Errorf("run %d: dead letters %d, want 3", i+1, got)
		}
		replayRows := sum.Rows[schemas.TableReplay]
		if replayRows != sum.Replayed || replayRows >= 400 || replayRows < 300 {
			t.Errorf("run %d: replay rows %d, replayed %d: want equal, and POSTs (about 5%%) left out", i+1, replayRows, sum.Replayed)
		}
		if sum.ReplayStatus["2xx"] == 0 || sum.ReplayStatus["4xx"] == 0 || sum.ReplayStatus["error"] != 0 {
			t.Errorf("run %d: statuses %v: want 2xx and 4xx (unknown titles), no errors", i+1, sum.ReplayStatus)
		}
		checkComparison(t, ctx, dir, sum)
		var out bytes.Buffer
		sum.Print(&out)
		for _, want := range []string{runID, "production_responses", "replay_responses", "dead_letters", dir} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("summary does not mention %q:\n%s", want, out.String())
			}
		}
	}
}

// checkComparison derives from the captured traffic exactly which pairs must
// be mismatches (the candidate's year bug) and lineage mismatches (the newer
// dependency), and checks compare found those and nothing else.
func checkComparison(t *testing.T, ctx context.Context, dir string, sum *Summary) {
	t.Helper()
	cfg := sinks.DefaultIcebergConfig()
	cfg.Catalog.URI, cfg.Catalog.Warehouse = filepath.Join(dir, "catalog.db"), filepath.Join(dir, "warehouse")
	s, err := sinks.OpenIceberg(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tbl, err := s.ScanRun(ctx, schemas.TableReplay, sum.RunID, "correlation_id", "request_path")
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	wantMismatch := map[string]bool{}
	var lineage, joined int64
	ids := tbl.Column(tbl.Schema().FieldIndices("correlation_id")[0]).Data().Chunks()
	paths := tbl.Column(tbl.Schema().FieldIndices("request_path")[0]).Data().Chunks()
	for c := range ids {
		idc, pc := ids[c].(*array.String), paths[c].(*array.String)
		for i := range idc.Len() {
			joined++
			rest, ok := strings.CutPrefix(pc.Value(i), "/v1/titles/")
			if !ok {
				continue
			}
			n, err := strconv.Atoi(rest)
			if err != nil || n < 1 || n > catalogSize {
				continue
			}
			switch {
			case newerLineage(n):
				lineage++
			case buggyTitle(n):
				wantMismatch[idc.Value(i)] = true
			}
		}
	}
	c := sum.Comparison
	if c == nil {
		t.Fatal("the demo did not run compare")
	}
	o := c.Overall
	if o.Joined != joined || o.Mismatched != int64(len(wantMismatch)) || o.LineageExcluded != lineage ||
		o.Matched != joined-int64(len(wantMismatch))-lineage || o.OnlyReplay != 0 || o.OnlyProduction != sum.Rows[schemas.TableProduction]-joined {
		t.Errorf("comparison %+v: want joined %d, mismatched %d, lineage-excluded %d, the rest matched", o, joined, len(wantMismatch), lineage)
	}
	if len(wantMismatch) == 0 || lineage == 0 {
		t.Fatalf("the demo traffic has %d buggy titles and %d newer-lineage titles; both must be > 0", len(wantMismatch), lineage)
	}
	if len(c.TopPaths) == 0 || c.TopPaths[0].Path != "$.year" || c.TopPaths[0].Count != int64(len(wantMismatch)) {
		t.Errorf("top differing paths %+v, want $.year × %d", c.TopPaths, len(wantMismatch))
	}
	for _, m := range c.TopMismatches {
		if !wantMismatch[m.CorrelationID] || m.Endpoint != "GET /v1/titles/{id}" {
			t.Errorf("unexpected mismatch %s on %s: %v", m.CorrelationID, m.Endpoint, m.Paths)
		}
	}
	// Every mismatch is in comparison_mismatches, with the differing path.
	mt, err := s.ScanRun(ctx, schemas.TableComparisonMismatches, sum.RunID, "correlation_id", "paths")
	if err != nil {
		t.Fatal(err)
	}
	defer mt.Release()
	got := map[string]bool{}
	idCol := mt.Column(mt.Schema().FieldIndices("correlation_id")[0]).Data().Chunks()
	pathCol := mt.Column(mt.Schema().FieldIndices("paths")[0]).Data().Chunks()
	for c := range idCol {
		idc, lc := idCol[c].(*array.String), pathCol[c].(*array.List)
		vals := lc.ListValues().(*array.String)
		for i := range idc.Len() {
			got[idc.Value(i)] = true
			start, end := lc.ValueOffsets(i)
			if end-start != 1 || vals.Value(int(start)) != "$.year" {
				t.Errorf("mismatch %s: paths %v, want [$.year]", idc.Value(i), lc.ValueStr(i))
			}
		}
	}
	if len(got) != len(wantMismatch) {
		t.Errorf("comparison_mismatches has %d rows, want %d", len(got), len(wantMismatch))
	}
	for id := range wantMismatch {
		if !got[id] {
			t.Errorf("comparison_mismatches lacks %s", id)
		}
	}
	if _, err := os.Stat(c.Report); err != nil {
		t.Errorf("report: %v", err)
	}
	if c.MatchRate == nil || *c.MatchRate >= 1 || *c.MatchRate < 0.9 {
		t.Errorf("match rate %v", c.MatchRate)
	}
}
