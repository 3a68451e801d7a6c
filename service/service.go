// Package service assembles one replay process from a config.Config: it
// opens the source and the Iceberg sink, runs the pipeline between them, and
// closes everything in order, logging each step. cmd/replay and the demo both
// run replay through it, so the demo exercises exactly what production runs.
//
// When admin.listen is set it also runs the admin HTTP server (package
// admin) for the life of the run: started before the pipeline, stopped after
// it. The server observes every replay, flush and commit
// (Pipeline.SetObserver), controls the pipeline (Pipeline.UpdateControl),
// reads the Kafka source's lag, and is ready while the pipeline runs, the
// target answers (the breaker is closed), commits succeed (none has been
// failing for longer than sink.flush.interval) and the brokers and the
// catalog answer (their Ping methods). It is live unless the pipeline is
// wedged (Pipeline.Wedged, bounded by wedgedAfter).
//
// The pipeline gets the normalize rules of compare.normalize, so that it
// names endpoints as batch compare does and, with live_compare.enabled,
// compares each pair with the same rules as it is replayed.
//
// Before it creates anything (catalog, namespace, tables, a group member) it
// runs every check that can refuse the run: the pipeline's configuration
// and production guard (pipeline.Check), the capture file opens, the
// brokers answer and the topics exist (sources.ProbeKafka). Then it binds
// the run id to its group (sinks.Iceberg.BindRun): a run id written by
// another group is refused before a record is read.
//
// The group of a run (Group) is the Kafka consumer group, or "file:" and
// the run id for a capture file: a file has no consumer group, its
// position in the tables belongs to the run. A file run resumes where the
// tables end for it (sinks.Iceberg.Resume on the file's partition, the
// source skipping the lines below), so a re-run sends nothing again; a new
// run id reads the file from its first line; source.file.fresh (--fresh)
// deletes the run's rows and offsets first (sinks.Iceberg.ResetRun) and
// replays the whole file, so the tables hold each row once, from the
// fresh replay. Result.AlreadyWritten counts the records skipped because
// the tables held them (Kafka: between the group's offset, or the start,
// and the tables').
//
// It holds wiring only; behaviour lives in sources, pipeline, sinks and admin.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/conc"

	"github.com/replaykit/replay/admin"
	"github.com/replaykit/replay/config"
	"github.com/replaykit/replay/normalize"
	"github.com/replaykit/replay/pipeline"
	"github.com/replaykit/replay/schemas"
	"github.com/replaykit/replay/sinks"
	"github.com/replaykit/replay/sources"
)

// Result is what a finished run reports.
type Result struct {
	Stats pipeline.Stats
	// AlreadyWritten counts the records this run did not read because the
	// tables already held them when it started (it resumed past them).
	AlreadyWritten int64
	// Sink is still open so callers can read the tables back; Close it.
	Sink *sinks.Iceberg
}

type closingSource interface {
	pipeline.Source
	Close()
}

// Run opens the source and sink cfg describes and runs the pipeline until ctx
// ends (graceful drain) or a finite source is exhausted. The returned
// Result's Sink is open when err is nil; the caller closes it.
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger) (*Result, error) {
	started := time.Now()
	// The pipeline names endpoints, and live comparison judges pairs, with
	// the rules batch compare uses, so the two agree.
	norm, err := normalize.Compile(cfg.Compare.Normalize)
	if err != nil {
		return nil, fmt.Errorf("compile compare.normalize for the pipeline: %w", err)
	}
	pcfg := cfg.Pipeline
	pcfg.RunID = cfg.RunID
	pcfg.Flush = pipeline.FlushPolicy{Rows: cfg.Sink.Flush.Rows, Bytes: cfg.Sink.Flush.Bytes, Interval: cfg.Sink.Flush.Interval}
	// Every check that can refuse the run comes before anything is
	// created: no catalog, namespace or table, no group member, no file.
	if err := preflight(ctx, cfg, pcfg); err != nil {
		return nil, err
	}
	// A taken admin port refuses the run too: bind it before anything is
	// created. The listener is the admin server's (startAdmin).
	var adminLn net.Listener
	if cfg.Admin.Enabled() {
		if adminLn, err = admin.Listen(ctx, cfg.Admin); err != nil {
			return nil, err
		}
	}
	closeAdmin := func() {
		if adminLn != nil {
			_ = adminLn.Close()
		}
	}
	sinkCfg := cfg.Sink
	sinkCfg.RunID = cfg.RunID
	sinkCfg.Group = Group(cfg)
	var sinkOpts []sinks.Option
	if cfg.Pipeline.Replay.Baseline != "" {
		sinkOpts = append(sinkOpts, sinks.WithBaseline())
	}
	sink, err := sinks.OpenIceberg(ctx, sinkCfg, logger, sinkOpts...)
	if err != nil {
		closeAdmin()
		return nil, err
	}
	// Refused before the group is joined or a line read: one run, one group.
	if err := sink.BindRun(ctx, cfg.RunID); err != nil {
		closeAdmin()
		_ = sink.Close()
		return nil, err
	}
	src, err := openSource(ctx, cfg, sink, logger)
	if err != nil {
		closeAdmin()
		_ = sink.Close()
		return nil, err
	}
	p, err := pipeline.New(pcfg, src, sink, logger)
	if err != nil {
		closeAdmin()
		src.Close()
		_ = sink.Close()
		return nil, fmt.Errorf("build pipeline: %w", err)
	}
	p.SetNormalizer(norm)
	if lc := cfg.Pipeline.LiveCompare; lc.Enabled {
		logger.Info("live comparison on", "run_id", cfg.RunID, "sample_percent", lc.SamplePercent, "max_endpoints", lc.MaxEndpoints)
	}
	if k, ok := src.(*sources.Kafka); ok {
		wireGroupHooks(k, p, sink, logger)
	}
	var running atomic.Bool
	stopAdmin, err := startAdmin(ctx, cfg, adminLn, p, src, sink, &running, started, logger)
	if err != nil {
		src.Close()
		_ = sink.Close()
		return nil, err
	}
	logger.Info("replay run starting", "run_id", cfg.RunID, "source", cfg.Source.Type, "target", cfg.Pipeline.Replay.Target,
		"baseline", cfg.Pipeline.Replay.Baseline, "catalog", cfg.Sink.Catalog.Type, "namespace", cfg.Sink.Namespace)
	running.Store(true)
	runErr := p.Run(ctx)
	running.Store(false)

	t := time.Now()
	src.Close()
	logger.Info("source closed", "took", time.Since(t).Round(time.Millisecond))
	stats := p.Stats()
	stopAdmin()
	if runErr != nil {
		_ = sink.Close()
		return &Result{Stats: stats}, runErr
	}
	var already int64
	if aw, ok := src.(alreadyWriter); ok {
		already = aw.AlreadyWritten()
	}
	attrs := []any{"run_id", cfg.RunID, "took", time.Since(started).Round(time.Millisecond),
		"consumed", stats.Consumed, "replayed", stats.Replayed, "dead_lettered", stats.DeadLettered,
		"duplicate_ids", stats.DuplicateIDs, "already_written", already}
	if stats.Live != nil {
		attrs = append(attrs, "live_matched", stats.LiveTotal.Matched, "live_mismatched", stats.LiveTotal.Mismatched,
			"live_lineage_excluded", stats.LiveTotal.Lineage)
	}
	if already > 0 {
		logger.Info("records found already written in the tables were not read again", "run_id", cfg.RunID,
			"group", sinkCfg.Group, "already_written", already)
	}
	logger.Info("replay run finished", attrs...)
	return &Result{Stats: stats, Sink: sink, AlreadyWritten: already}, nil
}

// alreadyWriter is a source that counts the records it skipped because
// the tables held them.
type alreadyWriter interface{ AlreadyWritten() int64 }

// Group is the group a run's rows and offsets are recorded under in the
// tables (sinks.IcebergConfig.Group): the Kafka consumer group, or, for a
// capture file, "file:" and the run id. A file has no consumer group; its
// position belongs to the run, so a re-run of the run resumes where the
// tables end and a new run id reads the file from its first line.
func Group(cfg config.Config) string {
	if cfg.Source.Type == "file" {
		return sinks.FileGroupPrefix + cfg.RunID
	}
	return cfg.Source.Kafka.Group
}

// preflight returns the error of any check that refuses cfg without
// creating anything: the pipeline's (fields, production target), then the
// source's (the capture file opens; the brokers answer and the topics
// exist, asked by a client that joins no group).
func preflight(ctx context.Context, cfg config.Config, pcfg pipeline.Config) error {
	if err := pipeline.Check(pcfg); err != nil {
		return err
	}
	if cfg.Source.Type == "kafka" {
		// Before the tables exist and before the group is joined: an
		// unreachable cluster or a missing topic leaves nothing behind.
		if err := sources.ProbeKafka(ctx, cfg.Source.Kafka); err != nil {
			return err
		}
	}
	if cfg.Source.Type == "file" {
		// NewFile opens it only after the tables are resumed.
		f, err := os.Open(cfg.Source.File.Path)
		if err != nil {
			return fmt.Errorf("open capture file %q: %w; check source.file.path", cfg.Source.File.Path, err)
		}
		_ = f.Close()
	}
	return nil
}

// readyTimeout bounds one /readyz check: the broker and catalog pings run
// concurrently within it.
const readyTimeout = 2 * time.Second

// wedgedAfter is how long the pipeline's sink goroutine may spend in one
// step (a flush with its commit retries) before /healthz calls the process
// wedged: ten flush intervals, and at least twice the longest the sink's
// commit retries can take (attempts × max_backoff), and at least a minute.
func wedgedAfter(cfg config.Config) time.Duration {
	r := cfg.Sink.CommitRetry
	return max(10*cfg.Sink.Flush.Interval, 2*time.Duration(r.Attempts)*r.MaxBackoff, time.Minute)
}

// pinger is a source or sink that can tell whether what it talks to
// answers.
type pinger interface {
	Ping(ctx context.Context) error
}

// startAdmin starts the admin server on ln, which Run bound before it
// created anything (nil when admin.listen is empty: no server), and returns
// once it serves. It sets the
// server's observer on p, so it must run before p.Run. The server outlives
// ctx (it keeps answering while the pipeline drains after a signal) until
// stop, called after the pipeline stopped, shuts it down and waits for it.
// It is ready while running is true (the pipeline has started and not yet
// stopped) and the source's brokers and the sink's catalog answer.
func startAdmin(ctx context.Context, cfg config.Config, ln net.Listener, p *pipeline.Pipeline, src closingSource, sink *sinks.Iceberg,
	running *atomic.Bool, startedAt time.Time, logger *slog.Logger) (stop func(), err error) {
	if ln == nil {
		return func() {}, nil
	}
	interval := cfg.Sink.Flush.Interval
	pipelineCheck := admin.Check{Name: "pipeline", Ping: func(context.Context) error {
		if !running.Load() {
			return errors.New("the replay pipeline is not running")
		}
		return p.Unready(time.Now())
	}}
	commitCheck := admin.Check{Name: "catalog", Ping: func(context.Context) error {
		return sink.CommitFailing(time.Now(), interval)
	}}
	checks := []admin.Check{pipelineCheck}
	if ps, ok := src.(pinger); ok {
		checks = append(checks, admin.Check{Name: cfg.Source.Type, Ping: ps.Ping})
	}
	checks = append(checks, admin.Check{Name: "catalog", Ping: func(ctx context.Context) error {
		if err := commitCheck.Ping(ctx); err != nil {
			return err
		}
		return sink.Ping(ctx)
	}})
	wedged := wedgedAfter(cfg)
	deps := admin.Deps{
		Stats:     p,
		Control:   p,
		Readiness: admin.Checks{Timeout: readyTimeout, List: checks},
		Health:    admin.Checks{List: []admin.Check{pipelineCheck, commitCheck}},
		Liveness: admin.ReadinessFunc(func(context.Context) error {
			return p.Wedged(time.Now(), wedged)
		}),
		RunID:     cfg.RunID,
		Target:    cfg.Pipeline.Replay.Target,
		Baseline:  cfg.Pipeline.Replay.Baseline,
		StartedAt: startedAt,
	}
	if k, ok := src.(*sources.Kafka); ok {
		deps.Lag = k
	}
	srv := admin.New(cfg.Admin, deps, logger)
	p.SetObserver(srv.Observer())
	adminCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	var wg conc.WaitGroup
	wg.Go(func() { done <- srv.Serve(adminCtx, ln) })
	select {
	case <-srv.Started():
	case err := <-done:
		cancel()
		wg.Wait()
		return nil, err
	}
	return func() {
		cancel()
		wg.Wait()
		if err := <-done; err != nil {
			// The run's outcome does not depend on the admin server.
			logger.Warn("admin server failed", "run_id", cfg.RunID, "err", err)
		}
	}, nil
}

// wireGroupHooks makes partition moves exactly-once: an assigned partition
// resumes where the Iceberg tables say (the source of truth), and a revoked
// one is drained, flushed and committed before another member takes it.
func wireGroupHooks(k *sources.Kafka, p *pipeline.Pipeline, sink *sinks.Iceberg, logger *slog.Logger) {
	k.SetResume(func(ctx context.Context, tps []schemas.TopicPartition) (schemas.Offsets, error) {
		p.Assign(tps)
		return sink.Resume(ctx, tps)
	})
	k.SetRevoke(func(ctx context.Context, tps []schemas.TopicPartition) {
		if err := p.Revoke(ctx, tps); err != nil {
			// Nothing of tps is committed by this process any more; the
			// next owner resumes from what the tables hold.
			logger.Warn("revoked partitions were not fully flushed; the next owner replays what was not committed",
				"partitions", len(tps), "err", err)
		}
		sink.Forget(tps)
	})
}

func openSource(ctx context.Context, cfg config.Config, sink *sinks.Iceberg, logger *slog.Logger) (closingSource, error) {
	switch cfg.Source.Type {
	case "file":
		return openFile(ctx, cfg, sink, logger)
	default:
		return sources.NewKafka(ctx, cfg.Source.Kafka, logger)
	}
}

// openFile opens the capture file where the tables end for this run, like
// a Kafka partition resumed from the tables: lines already written are not
// replayed. With source.file.fresh the run's rows are deleted first, so the
// whole file is replayed and written once more.
func openFile(ctx context.Context, cfg config.Config, sink *sinks.Iceberg, logger *slog.Logger) (closingSource, error) {
	tp := schemas.TopicPartition{Topic: sources.FileTopic(cfg.Source.File.Path)}
	if cfg.Source.File.Fresh {
		if err := sink.ResetRun(ctx, cfg.RunID, []schemas.TopicPartition{tp}); err != nil {
			return nil, err
		}
	}
	offs, err := sink.Resume(ctx, []schemas.TopicPartition{tp})
	if err != nil {
		return nil, fmt.Errorf("resume capture file %q from the tables: %w", cfg.Source.File.Path, err)
	}
	at := offs[tp]
	f, err := sources.NewFile(cfg.Source.File, sources.FileStartAt(at))
	if err != nil {
		return nil, err
	}
	logger.Info("capture file starts", "run_id", cfg.RunID, "path", cfg.Source.File.Path, "group", Group(cfg),
		"offset", at, "fresh", cfg.Source.File.Fresh)
	return fileSource{f}, nil
}

type fileSource struct{ *sources.File }

func (f fileSource) Close() { _ = f.File.Close() }
