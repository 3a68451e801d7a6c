package compare_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sourcegraph/conc/pool"

	"github.com/replaykit/replay/compare"
	"github.com/replaykit/replay/sinks"
)

// benchPairs is the run size of BenchmarkCompareRun.
const benchPairs = 20_000

// benchBody returns a JSON object of about 1.5 KiB: a catalog title with
// nested objects and arrays, the shape of a typical API response.
func benchBody(i int, variant string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"id":%d,"type":"title","name":"Title number %d","rating":4.%d,"year":%d,`, i, i, i%10, 1950+i%70)
	fmt.Fprintf(&b, `"synopsis":"%s","genres":["drama","thriller","mystery"],`, strings.Repeat("A story about a migration. ", 12))
	b.WriteString(`"cast":[`)
	for c := range 8 {
		if c > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"person":%d,"name":"Actor %d","role":"Role %d","order":%d}`, i*10+c, c, c, c)
	}
	fmt.Fprintf(&b, `],"availability":{"regions":["us","eu","apac"],"from":"2026-01-01","until":"2027-01-01","variant":%q},`, variant)
	b.WriteString(`"images":{"poster":"https://img.example.com/p/1.jpg","backdrop":"https://img.example.com/b/1.jpg"}}`)

	return b.String()
}

// benchRun holds the input of the benchmark, written once.
func benchRun(b *testing.B) (*sinks.Iceberg, [][2][]byte) {
	b.Helper()
	s := openSink(b, b.TempDir())
	xs := make([]exchange, 0, benchPairs)
	bodies := make([][2][]byte, 0, benchPairs)
	for i := range benchPairs {
		prod, replay := benchBody(i, "a"), benchBody(i, "a")
		if i%10 == 0 { // 10% real differences
			replay = benchBody(i, "b")
		}
		xs = append(xs, exchange{
			cid: fmt.Sprintf("c-%06d", i), method: "GET", path: fmt.Sprintf("/v1/titles/%d", i),
			prod: true, replay: true, prodStatus: 200, replayStatus: 200,
			prodBody: prod, replayBody: replay, prodLatency: float64(i % 300), replayLatency: float64(i % 250),
			prodLineage: map[string]string{"catalog-service": "v1"}, replayLineage: map[string]string{"catalog-service": "v1"},
		})
		bodies = append(bodies, [2][]byte{[]byte(prod), []byte(replay)})
	}
	write(b, s, "bench", xs)

	return s, bodies
}

// decodeAll is the baseline: decoding both bodies of every pair with
// encoding/json into any, the least any comparison must do, on as many
// goroutines as the job's default Workers (GOMAXPROCS), so the ratio
// compares like with like.
func decodeAll(bodies [][2][]byte) error {
	p := pool.New().WithErrors().WithMaxGoroutines(runtime.GOMAXPROCS(0))
	for chunk := range slices.Chunk(bodies, 256) {
		p.Go(func() error {
			for _, pair := range chunk {
				for _, body := range pair {
					var v any
					if err := json.Unmarshal(body, &v); err != nil {
						return err
					}
				}
			}

			return nil
		})
	}

	return p.Wait()
}

// BenchmarkCompareRun measures the whole job (scan both tables, join,
// normalize and diff, aggregate, replace both comparison tables) on 20,000
// pairs of ~1.5 KiB JSON bodies, 10% of them different, against the
// baseline of decoding the same bodies on the same number of goroutines.
// The run sub-benchmark reports pairs/s and x_decode: how many times slower
// than the bare decode of the same bytes, measured in the same process.
func BenchmarkCompareRun(b *testing.B) {
	s, bodies := benchRun(b)
	var bytes int64
	for _, p := range bodies {
		bytes += int64(len(p[0]) + len(p[1]))
	}

	var decodeRate float64 // pairs/s of the baseline
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(bytes)
		for b.Loop() {
			if err := decodeAll(bodies); err != nil {
				b.Fatal(err)
			}
		}
		decodeRate = float64(b.N) * benchPairs / b.Elapsed().Seconds()
		b.ReportMetric(decodeRate, "pairs/s")
	})
	b.Run("run", func(b *testing.B) {
		if decodeRate == 0 { // run filtered alone: measure the baseline here
			start := time.Now()
			if err := decodeAll(bodies); err != nil {
				b.Fatal(err)
			}
			decodeRate = benchPairs / time.Since(start).Seconds()
		}
		cfg := compare.DefaultConfig()
		cfg.Normalize = testNormalize()
		cfg.SpillDir = b.TempDir()
		b.ReportAllocs()
		b.SetBytes(bytes)
		for b.Loop() {
			sum, err := compare.Run(context.Background(), cfg, s, compare.Options{RunID: "bench", Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			if sum.Overall.Joined != benchPairs || sum.Overall.Mismatched != benchPairs/10 {
				b.Fatalf("summary = %+v", sum.Overall)
			}
		}
		rate := float64(b.N) * benchPairs / b.Elapsed().Seconds()
		b.ReportMetric(rate, "pairs/s")
		b.ReportMetric(decodeRate/rate, "x_decode")
	})
}
