package bench

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/replaykit/replay/sinks"
)

// BenchmarkSinkSettings writes the same 20,000 results (1–2 KiB production
// bodies) through the Iceberg sink with each candidate Parquet setting, in
// rounds of one write per setting, and logs each setting's fastest write
// (rows/s, so that load from other processes, which only slows a write
// down, weighs on none) and the bytes of data files per row: the
// measurement behind sinks.DefaultIcebergConfig's codec, level and
// dictionary. Run it with -benchtime Nx for N rounds.
func BenchmarkSinkSettings(b *testing.B) {
	results := sinkResults("bench-settings", 20_000, Sizes{Min: 1024, Max: 2048})
	type setting struct {
		codec    string
		level    int
		dict     string
		rowGroup int64 // MiB
	}
	settings := []setting{
		{"zstd", -1, sinks.DictionaryAll, 128}, // the earlier default
		{"zstd", -1, sinks.DictionaryRepeated, 128},
		{"zstd", 1, sinks.DictionaryRepeated, 128},
		{"zstd", 1, sinks.DictionaryNone, 128},
		{"zstd", 1, sinks.DictionaryNone, 4},
		{"zstd", 7, sinks.DictionaryNone, 128},
		{"snappy", -1, sinks.DictionaryNone, 128},
		{"lz4raw", -1, sinks.DictionaryNone, 128},
		{"uncompressed", -1, sinks.DictionaryNone, 128},
	}
	best := make([]time.Duration, len(settings))
	bytes := make([]int64, len(settings))
	var rows int64
	for b.Loop() {
		for i, s := range settings {
			cfg := sinks.DefaultIcebergConfig()
			cfg.Compression, cfg.CompressionLevel, cfg.Dictionary, cfg.RowGroupBytes = s.codec, s.level, s.dict, s.rowGroup<<20
			r, err := sinkOurs(b.Context(), cfg, b.TempDir(), results)
			if err != nil {
				b.Fatal(err)
			}
			if best[i] == 0 || r.elapsed < best[i] {
				best[i] = r.elapsed
			}
			bytes[i], rows = r.bytes, r.rows
		}
	}
	def := sinks.DefaultIcebergConfig()
	var lines []string
	for i, s := range settings {
		mark := ""
		if s.codec == def.Compression && s.level == def.CompressionLevel && s.dict == def.Dictionary && s.rowGroup<<20 == def.RowGroupBytes {
			mark = "  (default)"
			b.ReportMetric(float64(rows)/best[i].Seconds(), "rows/s")
		}
		lines = append(lines, fmt.Sprintf("%-56s %8.0f rows/s %6.0f B/row%s",
			fmt.Sprintf("%s level %d, dictionary %s, row groups ≤ %d MiB", s.codec, s.level, s.dict, s.rowGroup), float64(rows)/best[i].Seconds(),
			float64(bytes[i])/float64(rows), mark))
	}
	b.Logf("fastest of %d rounds, %d rows each:\n%s", b.N, rows, strings.Join(lines, "\n"))
}
