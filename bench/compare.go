package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/sourcegraph/conc/pool"

	"github.com/replaykit/replay/compare"
	"github.com/replaykit/replay/normalize"
	"github.com/replaykit/replay/sinks"
)

// compareResult is the compare line: the whole batch job over a run
// against decoding the same bodies.
type compareResult struct {
	pairs         int
	elapsed       time.Duration // compare.Run: scan, join, normalize, diff, write both tables and the report
	decode        time.Duration // decoding both bodies of every pair with encoding/json on GOMAXPROCS goroutines
	matched, mism int64
	bodyBytes     int64
}

// runCompare writes n pairs (1–2 KiB title bodies; the replay side equal
// once normalized, but with another updatedAt, and in one pair of ten
// another rating) into a fresh warehouse under dir, then times
// compare.Run over them and, right after, the baseline: decoding the
// same bodies.
func runCompare(ctx context.Context, dir string, n int) (compareResult, error) {
	cfg := sinks.DefaultIcebergConfig()
	cfg.Catalog.URI, cfg.Catalog.Warehouse = filepath.Join(dir, "catalog.db"), filepath.Join(dir, "warehouse")
	cfg.Group = "bench-compare"
	s, err := sinks.OpenIceberg(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return compareResult{}, err
	}
	defer s.Close()
	const runID = "bench-compare"
	results := sinkResults(runID, n, Sizes{Min: 1024, Max: 2048})
	bodies := make([][2][]byte, n)
	for i, r := range results {
		prod := r.Production.Exchange.Response.Body
		rep := bytes.Replace(prod, []byte(`"updatedAt":"2026-11-`), []byte(`"updatedAt":"2027-01-`), 1)
		if i%10 == 0 {
			rep = bytes.Replace(rep, []byte(`"rating":`), []byte(`"rating":1`), 1)
		}
		r.Replay.Response.Body = rep
		bodies[i] = [2][]byte{prod, rep}
		if err := s.Add(r); err != nil {
			return compareResult{}, err
		}
		if rows, _ := s.Buffered(); rows >= 20_000 {
			if _, err := s.Flush(ctx); err != nil {
				return compareResult{}, err
			}
		}
	}
	if _, err := s.Flush(ctx); err != nil {
		return compareResult{}, err
	}
	ccfg := compare.DefaultConfig()
	ccfg.Normalize = normalize.Config{Rules: normalize.Rules{IgnorePaths: []string{"$.updatedAt"}}}
	ccfg.SpillDir = dir
	ccfg.Report = filepath.Join(dir, "report.html")
	start := time.Now()
	sum, err := compare.Run(ctx, ccfg, s, compare.Options{RunID: runID, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return compareResult{}, fmt.Errorf("compare: %w", err)
	}
	res := compareResult{pairs: n, elapsed: time.Since(start), matched: sum.Overall.Matched, mism: sum.Overall.Mismatched}
	if res.matched+res.mism != int64(n) || res.mism != int64((n+9)/10) {
		return res, fmt.Errorf("compare: matched %d and mismatched %d of %d pairs, want %d mismatched", res.matched, res.mism, n, (n+9)/10)
	}
	for _, b := range bodies {
		res.bodyBytes += int64(len(b[0]) + len(b[1]))
	}
	start = time.Now()
	if err := decodeAll(bodies); err != nil {
		return res, err
	}
	res.decode = time.Since(start)
	return res, nil
}

// decodeAll decodes both bodies of every pair with encoding/json into
// any, the least any comparison must do, on as many goroutines as
// compare's default workers (GOMAXPROCS).
func decodeAll(bodies [][2][]byte) error {
	p := pool.New().WithErrors().WithMaxGoroutines(runtime.GOMAXPROCS(0))
	for chunk := range slices.Chunk(bodies, 256) {
		p.Go(func() error {
			for _, pair := range chunk {
				for _, body := range pair {
					var v any
					if err := json.Unmarshal(body, &v); err != nil {
						return fmt.Errorf("decode baseline: %w", err)
					}
				}
			}
			return nil
		})
	}
	return p.Wait()
}
