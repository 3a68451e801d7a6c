package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/replaykit/replay/schemas"
	"github.com/replaykit/replay/sinks"
)

// sinkResults returns n results as the pipeline hands them to the sink:
// the production row of a generated capture (bodies of the given sizes)
// and its replay row, the request as replay sends it and the fast
// target's answer.
func sinkResults(runID string, n int, sizes Sizes) []*schemas.Result {
	out := make([]*schemas.Result, n)
	replayedAt := time.Now().UTC()
	for i := range out {
		x := exchange(i, sizes)
		x.Source = schemas.Coordinates{Topic: "captures", Partition: int32(i % 12), Offset: int64(i / 12)}
		x.Request.Headers["Authorization"] = []string{"REDACTED"}
		sent := x.Request
		sent.Scheme, sent.Host = "http", "127.0.0.1:8080"
		sent.Headers = map[string][]string{"Accept": {"application/json"}, "Accept-Language": {"en-US,en;q=0.9"},
			"User-Agent": x.Request.Headers["User-Agent"], "Authorization": {"REDACTED"},
			"X-Request-Id": x.Request.Headers["X-Request-Id"], "X-Replay-Id": {x.CorrelationID}}
		out[i] = &schemas.Result{
			Source:     x.Source,
			Production: &schemas.ProductionRow{RunID: runID, Exchange: &x},
			Replay: &schemas.ReplayRow{
				RunID: runID, CorrelationID: x.CorrelationID, CapturedAt: x.CapturedAt, ReplayedAt: replayedAt,
				Target: "http://127.0.0.1:8080", Source: x.Source, Request: sent, Attempts: 1,
				Response: &schemas.Response{Status: 200, LatencyMS: 0.3 + float64(i%100)/100, Body: smallJSON,
					Headers: map[string][]string{"Content-Type": {"application/json"}, "Content-Length": {"101"},
						"Date": {"Sun, 30 Nov 2026 10:00:00 GMT"}}},
			},
		}
	}
	return out
}

// sinkResult is what one sink run measured.
type sinkResult struct {
	rows    int64         // rows written, both tables
	elapsed time.Duration // adding and flushing
	bytes   int64         // data files written
	cuts    []int         // results index after which each flush happened
}

func (r sinkResult) rate() float64 { return float64(r.rows) / r.elapsed.Seconds() }

// sinkOurs adds results to an Iceberg sink in a fresh warehouse under dir
// and flushes as the pipeline would with cfg's flush bounds: whenever the
// rows or bytes buffered reach them, and at the end. Every flush commits
// one snapshot to each of replay's tables.
func sinkOurs(ctx context.Context, cfg sinks.IcebergConfig, dir string, results []*schemas.Result) (sinkResult, error) {
	cfg.Catalog.URI = filepath.Join(dir, "catalog.db")
	cfg.Catalog.Warehouse = filepath.Join(dir, "warehouse")
	cfg.Group = "bench-sink"
	s, err := sinks.OpenIceberg(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return sinkResult{}, err
	}
	defer s.Close()
	var res sinkResult
	start := time.Now()
	for i, r := range results {
		if err := s.Add(r); err != nil {
			return res, err
		}
		res.rows += 2
		if rows, bytes := s.Buffered(); rows >= cfg.Flush.Rows || bytes >= cfg.Flush.Bytes || i == len(results)-1 {
			if _, err := s.Flush(ctx); err != nil {
				return res, err
			}
			res.cuts = append(res.cuts, i+1)
		}
	}
	res.elapsed = time.Since(start)
	res.bytes = dataFileBytes(cfg.Catalog.Warehouse)
	return res, nil
}

// sinkBare is the baseline: the same rows, built into the same Arrow
// records (not timed), written with pqarrow to one local Parquet file per
// table and flush, with the same codec, level and dictionary columns.
func sinkBare(ctx context.Context, cfg sinks.IcebergConfig, dir string, results []*schemas.Result, cuts []int) (sinkResult, error) {
	mem := memory.DefaultAllocator
	type batch struct {
		table string
		rec   arrow.RecordBatch
	}
	var batches []batch
	defer func() {
		for _, b := range batches {
			b.rec.Release()
		}
	}()
	prod, rep := schemas.NewProductionBuilder(mem), schemas.NewReplayBuilder(mem)
	defer prod.Release()
	defer rep.Release()
	from := 0
	for _, to := range cuts {
		for _, r := range results[from:to] {
			if err := prod.Append(r.Production); err != nil {
				return sinkResult{}, err
			}
			if err := rep.Append(r.Replay); err != nil {
				return sinkResult{}, err
			}
		}
		batches = append(batches, batch{schemas.TableProduction, prod.NewRecord()}, batch{schemas.TableReplay, rep.NewRecord()})
		from = to
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sinkResult{}, err
	}
	var res sinkResult
	start := time.Now()
	for i, b := range batches {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		name := filepath.Join(dir, fmt.Sprintf("%s-%05d.parquet", b.table, i))
		if err := writeParquet(name, b.rec, parquetProperties(cfg, b.table)); err != nil {
			return res, err
		}
		res.rows += b.rec.NumRows()
	}
	res.elapsed = time.Since(start)
	res.bytes = dataFileBytes(dir)
	return res, nil
}

func writeParquet(name string, rec arrow.RecordBatch, props *parquet.WriterProperties) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	w, err := pqarrow.NewFileWriter(rec.Schema(), f, props, pqarrow.DefaultWriterProps())
	if err != nil {
		f.Close()
		return fmt.Errorf("parquet writer for %s: %w", name, err)
	}
	if err := w.Write(rec); err != nil {
		w.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := w.Close(); err != nil { // closes f
		return fmt.Errorf("close %s: %w", name, err)
	}
	return nil
}

// parquetProperties are the writer properties the sink's table properties
// give iceberg-go's writer: codec and level, data page v2, and the same
// columns dictionary-encoded.
func parquetProperties(cfg sinks.IcebergConfig, tableName string) *parquet.WriterProperties {
	codecs := map[string]compress.Compression{
		"zstd": compress.Codecs.Zstd, "snappy": compress.Codecs.Snappy, "gzip": compress.Codecs.Gzip,
		"brotli": compress.Codecs.Brotli, "lz4": compress.Codecs.Lz4, "lz4raw": compress.Codecs.Lz4Raw,
		"uncompressed": compress.Codecs.Uncompressed,
	}
	opts := []parquet.WriterProperty{
		parquet.WithCompression(codecs[cfg.Compression]), parquet.WithCompressionLevel(cfg.CompressionLevel),
		parquet.WithDataPageVersion(parquet.DataPageV2), parquet.WithDictionaryDefault(cfg.Dictionary != sinks.DictionaryNone),
	}
	if cfg.Dictionary == sinks.DictionaryRepeated {
		for _, col := range schemas.DistinctColumns(tableName) {
			opts = append(opts, parquet.WithDictionaryFor(col, false))
		}
	}
	return parquet.NewWriterProperties(opts...)
}

// dataFileBytes is the size of the Parquet files under dir.
func dataFileBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(path) == ".parquet" {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
