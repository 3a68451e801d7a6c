package compare_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/replaykit/replay/compare"
	"github.com/replaykit/replay/sinks"
)

// noiseBody is a title with a request ID the service makes up per request
// and a year.
func noiseBody(id int, requestID string, year int) string {
	return fmt.Sprintf(`{"id":%d,"requestId":%q,"year":%d}`, id, requestID, year)
}

// baselineScenario returns the compared run ("cand") and the baseline run
// ("base": the same capture replayed to the old version), all on titles:
//
//   - t-00..t-19 have a baseline row. By i%5: 0 equal everywhere; 1 the
//     candidate and the baseline differ at $.requestId (noise); 2 the
//     candidate differs at $.year, the baseline equals production (a
//     defect); 3 the candidate differs at both, the baseline at
//     $.requestId (a mismatch at $.year); 4 only the baseline differs, at
//     $.requestId (matched).
//   - t-20..t-24 have none and are compared as without a baseline: 21
//     differs at $.requestId, 22 at $.year, 23 at both; 20 and 24 match.
//   - t-lin has a baseline row but differing lineage: lineage mismatch.
//   - t-prod was never replayed (its baseline row changes nothing), b-only
//     is only in the baseline (ignored).
func baselineScenario() (cand, base []exchange) {
	for i := range 25 {
		cid := fmt.Sprintf("t-%02d", i)
		prod := noiseBody(i, "p-"+cid, 2000)
		x := exchange{
			cid: cid, method: "GET", path: fmt.Sprintf("/v1/titles/%d", i),
			prod: true, replay: true, prodStatus: 200, replayStatus: 200,
			prodBody: prod, replayBody: prod, prodLatency: 10, replayLatency: 12,
		}
		b := exchange{cid: cid, method: "GET", path: x.path, replay: true, replayStatus: 200, replayBody: prod, replayLatency: 11}
		switch i % 5 {
		case 1:
			x.replayBody = noiseBody(i, "c-"+cid, 2000)
			b.replayBody = noiseBody(i, "b-"+cid, 2000)
		case 2:
			x.replayBody = noiseBody(i, "p-"+cid, 2001)
		case 3:
			x.replayBody = noiseBody(i, "c-"+cid, 2001)
			b.replayBody = noiseBody(i, "b-"+cid, 2000)
		case 4:
			b.replayBody = noiseBody(i, "b-"+cid, 2000)
		}
		cand = append(cand, x)
		if i < 20 {
			base = append(base, b)
		}
	}
	cand = append(cand,
		exchange{
			cid: "t-lin", method: "GET", path: "/v1/titles/500", prod: true, replay: true, prodStatus: 200, replayStatus: 200,
			prodBody: noiseBody(500, "p", 2000), replayBody: noiseBody(500, "c", 2000),
			prodLineage: map[string]string{"catalog": "v1"}, replayLineage: map[string]string{"catalog": "v2"},
		},
		exchange{cid: "t-prod", method: "GET", path: "/v1/titles/501", prod: true, prodStatus: 200, prodBody: noiseBody(501, "p", 2000)},
	)
	base = append(base,
		exchange{cid: "t-lin", method: "GET", path: "/v1/titles/500", replay: true, replayStatus: 200, replayBody: noiseBody(500, "b", 2000)},
		exchange{cid: "t-prod", method: "GET", path: "/v1/titles/501", replay: true, replayStatus: 200, replayBody: noiseBody(501, "b", 2000)},
		exchange{cid: "b-only", method: "GET", path: "/v1/titles/502", replay: true, replayStatus: 200, replayBody: noiseBody(502, "b", 2000)},
	)

	return cand, base
}

func runWith(t testing.TB, s *sinks.Iceberg, cfg compare.Config, opts compare.Options) *compare.Summary {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	opts.Logger, opts.Allocator = testLogger(t), mem
	sum, err := compare.Run(context.Background(), cfg, s, opts)
	if err != nil {
		t.Fatalf("compare run %s (baseline %q): %v", opts.RunID, opts.BaselineRunID, err)
	}
	mem.AssertSize(t, 0)
	if entries, err := os.ReadDir(cfg.SpillDir); err != nil || len(entries) != 0 {
		t.Errorf("spill dir holds %v after the run (err %v), want nothing", entries, err)
	}

	return sum
}

// The baseline comes from another run (--baseline-run) or from the run's
// own baseline_responses rows (replay.baseline); the same rows give the same
// result either way.
func TestBaselineNoiseCancellation(t *testing.T) {
	for _, c := range []struct {
		name   string
		write  func(t *testing.T, s *sinks.Iceberg, cand, base []exchange)
		opts   compare.Options
		source string
		table  string
		runID  string
	}{
		{"baseline run", func(t *testing.T, s *sinks.Iceberg, cand, base []exchange) {
			write(t, s, "cand", cand)
			write(t, s, "base", base)
		}, compare.Options{RunID: "cand", BaselineRunID: "base"}, compare.BaselineFromRun, "replay.replay_responses", "base"},
		{"baseline_responses of the run", func(t *testing.T, s *sinks.Iceberg, cand, base []exchange) {
			writeWithBaseline(t, s, "cand", cand, base)
		}, compare.Options{RunID: "cand"}, compare.BaselineFromTable, "replay.baseline_responses", "cand"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := openSink(t, t.TempDir())
			cand, base := baselineScenario()
			c.write(t, s, cand, base)
			sum := runWith(t, s, testConfig(t), c.opts)
			if sum.BaselineSource != c.source || sum.BaselineRunID != c.runID || sum.BaselineTable != c.table {
				t.Errorf("baseline source %q, run %q, table %q; want %q, %q, %q", sum.BaselineSource, sum.BaselineRunID,
					sum.BaselineTable, c.source, c.runID, c.table)
			}
			checkBaselineScenario(t, s, sum)
		})
	}
}

// checkBaselineScenario checks the comparison of baselineScenario's run
// with its baseline.
func checkBaselineScenario(t *testing.T, s *sinks.Iceberg, sum *compare.Summary) {
	t.Helper()
	if sum.BaselineJoined != 20 {
		t.Errorf("BaselineJoined = %d, want 20", sum.BaselineJoined)
	}
	o := sum.Overall
	type counts struct{ prod, replay, joined, onlyProd, onlyReplay, matched, mismatched, noise, lineage int64 }
	want := counts{prod: 27, replay: 26, joined: 26, onlyProd: 1, matched: 10, mismatched: 11, noise: 4, lineage: 1}
	got := func(c compare.Counts) counts {
		return counts{c.ProductionTotal, c.ReplayTotal, c.Joined, c.OnlyProduction, c.OnlyReplay, c.Matched, c.Mismatched, c.NoiseExcluded, c.LineageExcluded}
	}
	if g := got(o); g != want {
		t.Errorf("overall = %+v, want %+v", g, want)
	}
	if len(sum.Endpoints) != 1 || sum.Endpoints[0].Endpoint != titles {
		t.Fatalf("endpoints = %+v, want only %s", sum.Endpoints, titles)
	}
	if g := got(sum.Endpoints[0]); g != want {
		t.Errorf("%s = %+v, want %+v", titles, g, want)
	}
	if sum.MatchRate == nil || *sum.MatchRate != 10.0/21 {
		t.Errorf("MatchRate = %v, want 10/21", sum.MatchRate)
	}
	table := readSummary(t, s, "cand")
	if g := got(table[compare.EndpointAll]); g != want {
		t.Errorf("comparison_summary * = %+v, want %+v", g, want)
	}
	if g := got(table[titles]); g != want {
		t.Errorf("comparison_summary %s = %+v, want %+v", titles, g, want)
	}

	wantNoisy := []compare.PathCount{{Path: "$.requestId", Count: 12, Samples: []string{"t-01", "t-03", "t-04", "t-06", "t-08"}}}
	if !reflect.DeepEqual(sum.NoisyPaths, wantNoisy) {
		t.Errorf("NoisyPaths = %+v, want %+v", sum.NoisyPaths, wantNoisy)
	}
	wantTop := []compare.PathCount{
		{Path: "$.year", Count: 10, Samples: []string{"t-02", "t-03", "t-07", "t-08", "t-12"}},
		{Path: "$.requestId", Count: 2, Samples: []string{"t-21", "t-23"}},
	}
	if !reflect.DeepEqual(sum.TopPaths, wantTop) {
		t.Errorf("TopPaths = %+v, want %+v", sum.TopPaths, wantTop)
	}

	rows := readMismatches(t, s, "cand")
	wantPaths := map[string][]string{
		"t-21": {"$.requestId"}, "t-22": {"$.year"}, "t-23": {"$.requestId", "$.year"},
	}
	for i := range 20 {
		if i%5 == 2 || i%5 == 3 {
			wantPaths[fmt.Sprintf("t-%02d", i)] = []string{"$.year"}
		}
	}
	if len(rows) != len(wantPaths) {
		t.Errorf("comparison_mismatches has %d rows (%v), want %d", len(rows), slices.Sorted(maps.Keys(rows)), len(wantPaths))
	}
	for cid, paths := range wantPaths {
		r, ok := rows[cid]
		if !ok {
			t.Errorf("no mismatch row for %s", cid)

			continue
		}
		if !slices.Equal(r.paths, paths) {
			t.Errorf("%s: paths = %v, want %v", cid, r.paths, paths)
		}
	}
	// A mismatch that is partly noise keeps its whole patch.
	if r := rows["t-03"]; !strings.Contains(r.patch, "/requestId") || !strings.Contains(r.patch, "/year") {
		t.Errorf("t-03 patch = %s, want both /requestId and /year", r.patch)
	}
}

// Without a baseline the same run is compared as before, and a baseline
// run wins over the run's own baseline_responses rows.
func TestBaselineChoice(t *testing.T) {
	s := openSink(t, t.TempDir())
	cand, base := baselineScenario()
	write(t, s, "cand", cand)

	plain := runWith(t, s, testConfig(t), compare.Options{RunID: "cand"})
	o := plain.Overall
	if o.Matched != 10 || o.Mismatched != 15 || o.NoiseExcluded != 0 || o.LineageExcluded != 1 {
		t.Errorf("without a baseline: overall = %+v", o)
	}
	if plain.BaselineSource != "" || plain.BaselineRunID != "" || plain.BaselineTable != "" || plain.BaselineJoined != 0 || len(plain.NoisyPaths) != 0 {
		t.Errorf("without a baseline: baseline %q %q %q, joined %d, noisy paths %v", plain.BaselineSource, plain.BaselineRunID,
			plain.BaselineTable, plain.BaselineJoined, plain.NoisyPaths)
	}
	if n := len(readMismatches(t, s, "cand")); n != 15 {
		t.Errorf("without a baseline: %d mismatch rows, want 15", n)
	}

	// A run with baseline_responses rows, and a baseline run that agrees
	// with production everywhere: the baseline run wins, so nothing is
	// noise.
	var quiet []exchange
	for _, x := range cand {
		if x.replay {
			quiet = append(quiet, exchange{cid: x.cid, method: x.method, path: x.path, replay: true, replayStatus: 200, replayBody: x.prodBody})
		}
	}
	writeWithBaseline(t, s, "both", cand, base)
	write(t, s, "quiet", quiet)
	sum := runWith(t, s, testConfig(t), compare.Options{RunID: "both", BaselineRunID: "quiet"})
	if sum.BaselineSource != compare.BaselineFromRun || sum.BaselineRunID != "quiet" || sum.BaselineJoined != 25 || len(sum.NoisyPaths) != 0 {
		t.Errorf("baseline run and baseline_responses: source %q, run %q, joined %d, noisy %v; want the run, 25 pairs, no noise",
			sum.BaselineSource, sum.BaselineRunID, sum.BaselineJoined, sum.NoisyPaths)
	}
	if o := sum.Overall; o.Matched != 10 || o.Mismatched != 15 || o.NoiseExcluded != 0 {
		t.Errorf("baseline run and baseline_responses: overall = %+v", o)
	}
	own := runWith(t, s, testConfig(t), compare.Options{RunID: "both"})
	if own.BaselineSource != compare.BaselineFromTable || own.Overall.NoiseExcluded != 4 {
		t.Errorf("baseline_responses alone: source %q, noise %d; want %s, 4", own.BaselineSource, own.Overall.NoiseExcluded, compare.BaselineFromTable)
	}
}

func TestBaselineSpilledJoinGivesTheSameResult(t *testing.T) {
	s := openSink(t, t.TempDir())
	cand, base := baselineScenario()
	write(t, s, "cand", cand)
	write(t, s, "base", base)
	opts := compare.Options{RunID: "cand", BaselineRunID: "base"}

	inMemory := runWith(t, s, testConfig(t), opts)
	memRows := readMismatches(t, s, "cand")
	if inMemory.Spilled {
		t.Fatal("the in-memory run spilled")
	}
	for _, c := range []struct {
		name       string
		budget     int64
		partitions int
	}{
		{"spills during the baseline", 12 << 10, 5}, // the replay rows fit, the baseline's do not
		{"1 KiB", 1 << 10, 7},
		{"1 byte", 1, 3},
		{"one partition", 1, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.MemoryBudget = c.budget
			cfg.Partitions = c.partitions
			spilled := runWith(t, s, cfg, opts)
			spillRows := readMismatches(t, s, "cand")
			assertSameResults(t, inMemory, spilled, memRows, spillRows)
		})
	}

	// The run's own baseline_responses rows spill like a baseline run's.
	t.Run("baseline_responses", func(t *testing.T) {
		writeWithBaseline(t, s, "own", cand, base)
		own := compare.Options{RunID: "own"}
		inMemory := runWith(t, s, testConfig(t), own)
		memRows := readMismatches(t, s, "own")
		cfg := testConfig(t)
		cfg.MemoryBudget, cfg.Partitions = 1<<10, 7
		spilled := runWith(t, s, cfg, own)
		assertSameResults(t, inMemory, spilled, memRows, readMismatches(t, s, "own"))
		if spilled.BaselineSource != compare.BaselineFromTable || spilled.Overall.NoiseExcluded != 4 {
			t.Errorf("source %q, noise %d; want %s, 4", spilled.BaselineSource, spilled.Overall.NoiseExcluded, compare.BaselineFromTable)
		}
	})
}

func TestBaselineRunErrors(t *testing.T) {
	s := openSink(t, t.TempDir())
	cand, _ := baselineScenario()
	write(t, s, "cand", cand)
	for _, c := range []struct {
		baseline string
		want     error
	}{
		{"cand", compare.ErrInvalidConfig},
		{"nope", compare.ErrEmptyRun},
	} {
		_, err := compare.Run(context.Background(), testConfig(t), s, compare.Options{RunID: "cand", BaselineRunID: c.baseline, Logger: testLogger(t)})
		if !errors.Is(err, c.want) {
			t.Errorf("baseline %q: err = %v, want %v", c.baseline, err, c.want)
		}
	}
}

func TestBaselineReport(t *testing.T) {
	s := openSink(t, t.TempDir())
	cand, base := baselineScenario()
	write(t, s, "cand", cand)
	write(t, s, "base", base)
	sum := runWith(t, s, testConfig(t), compare.Options{RunID: "cand", BaselineRunID: "base"})
	var b strings.Builder
	if err := compare.WriteReport(&b, sum); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	for _, want := range []string{"Noise (baseline run base)", "of 20 pairs with a baseline row", "60.00%"} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}

	writeWithBaseline(t, s, "own", cand, base)
	own := runWith(t, s, testConfig(t), compare.Options{RunID: "own"})
	b.Reset()
	if err := compare.WriteReport(&b, own); err != nil {
		t.Fatal(err)
	}
	if want := "Noise (baseline from replay.baseline_responses)"; !strings.Contains(b.String(), want) {
		t.Errorf("report of a run with baseline_responses lacks %q", want)
	}

	plain := runWith(t, s, testConfig(t), compare.Options{RunID: "cand"})
	b.Reset()
	if err := compare.WriteReport(&b, plain); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), `id="noise"`) {
		t.Error("the report without a baseline shows the noise section")
	}
}
