package bench

import (
	"fmt"
	"testing"

	"github.com/replaykit/replay/sinks"
)

// BenchmarkSinkSettings writes the same 20,000 results (1–2 KiB production
// bodies) through the Iceberg sink with each candidate Parquet setting and
// reports rows/s and the bytes of data files per row: the measurement
// behind sinks.DefaultIcebergConfig's codec, level and dictionary.
func BenchmarkSinkSettings(b *testing.B) {
	results := sinkResults("bench-settings", 20_000, Sizes{Min: 1024, Max: 2048})
	for _, s := range []struct {
		codec string
		level int
		dict  string
	}{
		{"zstd", -1, sinks.DictionaryAll},
		{"zstd", -1, sinks.DictionaryRepeated},
		{"zstd", 1, sinks.DictionaryRepeated},
		{"zstd", 7, sinks.DictionaryRepeated},
		{"snappy", -1, sinks.DictionaryRepeated},
		{"lz4raw", -1, sinks.DictionaryRepeated},
		{"gzip", -1, sinks.DictionaryRepeated},
		{"uncompressed", -1, sinks.DictionaryRepeated},
		{"zstd", 1, sinks.DictionaryNone},
	} {
		b.Run(fmt.Sprintf("%s/level=%d/dictionary=%s", s.codec, s.level, s.dict), func(b *testing.B) {
			cfg := sinks.DefaultIcebergConfig()
			cfg.Compression, cfg.CompressionLevel, cfg.Dictionary = s.codec, s.level, s.dict
			var rows, bytes int64
			var secs float64
			for b.Loop() {
				r, err := sinkOurs(b.Context(), cfg, b.TempDir(), results)
				if err != nil {
					b.Fatal(err)
				}
				rows, bytes, secs = rows+r.rows, bytes+r.bytes, secs+r.elapsed.Seconds()
			}
			b.ReportMetric(float64(rows)/secs, "rows/s")
			b.ReportMetric(float64(bytes)/float64(rows), "bytes/row")
		})
	}
}
