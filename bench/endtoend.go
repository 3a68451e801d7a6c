package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/replaykit/replay/config"
	"github.com/replaykit/replay/pipeline"
	"github.com/replaykit/replay/service"
)

// serviceRun is one measured `replay run` in this process: the capture
// topic read to its end (stop_at_end) by a fresh consumer group, every
// record replayed to the target, both sides committed to Iceberg tables
// in a fresh local warehouse.
type serviceRun struct {
	records  int
	elapsed  time.Duration // from the first request the target saw to the last commit
	total    time.Duration // the whole run, start-up included
	stats    pipeline.Stats
	cpu      map[string]time.Duration // by stage; nil unless profiled
	rawCPU   []byte                   // the CPU profile, when profiled
	dataSize int64                    // bytes of the warehouse after the run
}

func (r serviceRun) rate() float64 { return float64(r.records) / r.elapsed.Seconds() }

// runConfig is the configuration of a measured run: the embedded default
// with the broker, topic, target and a warehouse under dir, then sets
// (field.path=value, as replay's --set takes them) applied.
func runConfig(brokers []string, t *topic, group, targetURL, dir string, workers int, sets []string) (config.Config, error) {
	cfg := config.Default()
	cfg.RunID = group
	cfg.Log.Level = "warn"
	cfg.Source.Kafka.Brokers = brokers
	cfg.Source.Kafka.Topics = []string{t.name}
	cfg.Source.Kafka.Group = group
	cfg.Source.Kafka.StopAtEnd = true
	cfg.Pipeline.Replay.Target = targetURL
	cfg.Pipeline.Replay.Workers = workers
	cfg.Sink.Catalog.URI = filepath.Join(dir, "catalog.db")
	cfg.Sink.Catalog.Warehouse = filepath.Join(dir, "warehouse")
	for _, kv := range sets {
		k, v, _ := strings.Cut(kv, "=")
		if err := config.Set(&cfg, k, v); err != nil {
			return cfg, fmt.Errorf("-set %s: %w", kv, err)
		}
	}
	return cfg, nil
}

// runService replays topic t to tgt through service.Run, as `replay run`
// does, and checks every record was replayed and written. With profile
// set it records a CPU profile of the run and splits it by stage.
func runService(ctx context.Context, cfg config.Config, t *topic, tgt *target, profile bool) (serviceRun, error) {
	if err := cfg.Validate(); err != nil {
		return serviceRun{}, err
	}
	tgt.reset()
	var prof *cpuProfile
	if profile {
		var err error
		if prof, err = startCPUProfile(); err != nil {
			return serviceRun{}, err
		}
	}
	start := time.Now()
	var (
		res *service.Result
		err error
	)
	// franz-go's goroutines start inside service.Run and keep this label;
	// the pipeline's own goroutines label themselves by stage.
	pprof.Do(ctx, pprof.Labels(stageLabel, stageKafkaClient), func(ctx context.Context) {
		res, err = service.Run(ctx, cfg, slog.New(slog.DiscardHandler))
	})
	end := time.Now()
	out := serviceRun{records: t.records, total: end.Sub(start)}
	if prof != nil {
		cpu, perr := prof.stop()
		if err == nil && perr != nil {
			err = perr
		}
		out.cpu, out.rawCPU = cpu, prof.buf.Bytes()
	}
	if err != nil {
		return out, fmt.Errorf("replay run of %s: %w", t.name, err)
	}
	if cerr := res.Sink.Close(); cerr != nil {
		return out, fmt.Errorf("close sink: %w", cerr)
	}
	out.stats = res.Stats
	out.elapsed = end.Sub(time.Unix(0, tgt.first.Load()))
	if got := res.Stats.RowsWritten; got.Production != int64(t.records) || got.Replay != int64(t.records) || res.Stats.Replayed != int64(t.records) {
		return out, fmt.Errorf("replay run of %s: wrote %d production and %d replay rows and replayed %d, want %d each",
			t.name, got.Production, got.Replay, res.Stats.Replayed, t.records)
	}
	if n := tgt.hits.Load(); n != int64(t.records) {
		return out, fmt.Errorf("replay run of %s: the target saw %d requests, want %d", t.name, n, t.records)
	}
	out.dataSize = dirSize(cfg.Sink.Catalog.Warehouse)
	return out, nil
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
