// Package demo runs replay's whole story on one machine with nothing
// installed: an in-process Kafka-protocol broker (franz-go's kfake, listening
// on a loopback port), a production catalog service whose traffic is captured
// to the broker, a candidate "new cluster" version that differs the way real
// migrations do, the replay pipeline exactly as `replay run` wires it, and a
// summary read back from the Iceberg tables.
package demo

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"

	"github.com/replaykit/replay/compare"
	"github.com/replaykit/replay/config"
	"github.com/replaykit/replay/schemas"
	"github.com/replaykit/replay/service"
)

// Options configure a demo run.
type Options struct {
	// Dir holds the catalog and the warehouse (default ./replay-data).
	Dir string
	// Exchanges is how many requests the production service serves and
	// captures (default 3000).
	Exchanges int
	// Garbage is how many undecodable records are put on the topic to show
	// the dead-letter table: 0 means the default, 5; a negative value none.
	Garbage int
	// Partitions of the capture topic (default 6).
	Partitions int
	// RunID names the run (default demo-<UTC time>).
	RunID string
	// Log is the config's log section (default info, text).
	Log config.Log
}

// Summary is what the demo reports.
type Summary struct {
	RunID         string
	Captured      int
	Garbage       int
	Consumed      int64
	DeadLettered  int64
	Replayed      int64
	ReplayStatus  map[string]int64 // "2xx", "4xx", "5xx", "error"
	Rows          map[string]int64 // per table, read back from Iceberg
	CatalogURI    string
	Warehouse     string
	TableLocation map[string]string
	// Comparison is the result of `replay compare` on the run.
	Comparison *compare.Summary
	Took       time.Duration
}

// compareRules are the demo's normalization rules, shown to users as YAML.
//
//go:embed compare.yaml
var compareRules []byte

// demoCompareConfig returns the compare configuration with the demo's rules.
func demoCompareConfig(dir string) (compare.Config, error) {
	file := struct {
		Compare compare.Config `yaml:"compare"`
	}{Compare: compare.DefaultConfig()}
	dec := yaml.NewDecoder(bytes.NewReader(compareRules))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		return file.Compare, fmt.Errorf("demo compare rules: %w", err)
	}
	file.Compare.Report = filepath.Join(dir, "reports", "<run_id>", "report.html")
	return file.Compare, nil
}

// Run runs the demo and returns its summary. Logs go to logw.
func Run(ctx context.Context, opts Options, logw io.Writer) (*Summary, error) {
	started := time.Now()
	if opts.Dir == "" {
		opts.Dir = "replay-data"
	}
	if opts.Exchanges <= 0 {
		opts.Exchanges = 3000
	}
	if opts.Garbage < 0 {
		opts.Garbage = 0
	} else if opts.Garbage == 0 {
		opts.Garbage = 5
	}
	if opts.Partitions <= 0 {
		opts.Partitions = 6
	}
	if opts.RunID == "" {
		opts.RunID = "demo-" + time.Now().UTC().Format("20060102-150405.000")
	}
	if opts.Log.Level == "" {
		opts.Log = config.Log{Level: "info", Format: "text"}
	}
	logger := opts.Log.Logger(logw)
	const topic = "captures"

	// 1. A Kafka-protocol broker on a loopback port.
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(opts.Partitions), topic),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }))
	if err != nil {
		return nil, fmt.Errorf("start in-process Kafka broker: %w", err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	logger.Info("demo broker listening", "brokers", brokers, "topic", topic, "partitions", opts.Partitions)

	// 2. Production serves traffic and captures every exchange to the topic.
	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return nil, fmt.Errorf("create capture producer: %w", err)
	}
	defer producer.Close()
	capt := &capture{next: newService(false, time.Now), client: producer, topic: topic}
	prodURL, stopProd, err := serve(capt)
	if err != nil {
		return nil, err
	}
	defer stopProd()
	if err := traffic(ctx, prodURL, opts.Exchanges, 8, uint64(len(opts.RunID))); err != nil {
		return nil, fmt.Errorf("send demo traffic to the production service: %w", err)
	}
	for i := range opts.Garbage {
		producer.Produce(ctx, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, `{"captured_at": "not a time", "garbage": %d`, i)}, nil)
	}
	captured, err := capt.flush(ctx)
	if err != nil {
		return nil, err
	}
	logger.Info("production traffic captured", "exchanges", captured, "garbage_records", opts.Garbage)

	// 3. The candidate on the "new cluster".
	candURL, stopCand, err := serve(newService(true, time.Now))
	if err != nil {
		return nil, err
	}
	defer stopCand()

	// 4. The replay pipeline, configured as a user would.
	cfg := config.Default()
	cfg.RunID = opts.RunID
	cfg.Log = opts.Log
	cfg.Source.Kafka.Brokers = brokers
	cfg.Source.Kafka.Topics = []string{topic}
	cfg.Source.Kafka.Group = "replay-" + opts.RunID
	cfg.Source.Kafka.StopAtEnd = true
	cfg.Pipeline.Replay.Target = candURL
	cfg.Sink.Catalog.URI = filepath.Join(opts.Dir, "catalog.db")
	cfg.Sink.Catalog.Warehouse = filepath.Join(opts.Dir, "warehouse")
	if cfg.Compare, err = demoCompareConfig(opts.Dir); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("demo configuration: %w", err)
	}
	res, err := service.Run(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	defer res.Sink.Close()

	// 5. Read the tables back.
	sum := &Summary{
		RunID: opts.RunID, Captured: captured, Garbage: opts.Garbage,
		Consumed: res.Stats.Consumed, DeadLettered: res.Stats.DeadLettered, Replayed: res.Stats.Replayed,
		ReplayStatus: map[string]int64{}, Rows: map[string]int64{}, TableLocation: map[string]string{},
		CatalogURI: cfg.Sink.Catalog.URI, Warehouse: cfg.Sink.Catalog.Warehouse,
	}
	for _, name := range []string{schemas.TableProduction, schemas.TableReplay, schemas.TableDeadLetters} {
		n, err := res.Sink.CountRows(ctx, name, opts.RunID)
		if err != nil {
			return nil, err
		}
		sum.Rows[name] = n
		sum.TableLocation[name] = res.Sink.TableLocation(name)
	}
	if err := countStatuses(ctx, res, opts.RunID, sum.ReplayStatus); err != nil {
		return nil, err
	}

	// 6. Compare the two sides, as `replay compare --run` does.
	cmp, err := compare.Run(ctx, cfg.Compare, res.Sink, compare.Options{RunID: opts.RunID, Logger: logger})
	if err != nil {
		return nil, err
	}
	cmp.Report = strings.ReplaceAll(cfg.Compare.Report, "<run_id>", opts.RunID)
	if err := cmp.WriteReportFile(cmp.Report); err != nil {
		return nil, fmt.Errorf("write the demo report: %w", err)
	}
	sum.Comparison = cmp
	sum.Took = time.Since(started)
	return sum, nil
}

func serve(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listen for a demo service: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("demo service stopped", "err", err)
		}
	}()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}
