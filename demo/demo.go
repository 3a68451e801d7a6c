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
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"

	"github.com/replaykit/replay/compare"
	"github.com/replaykit/replay/config"
	"github.com/replaykit/replay/schemas"
	"github.com/replaykit/replay/service"
	"github.com/replaykit/replay/sinks"
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
	// Command is how the user runs replay from their working directory
	// (./bin/replay after make demo); the summary prints follow-up commands
	// with it. Default "replay".
	Command string
}

// ErrRunExists is returned (wrapped) when the run id already has rows in
// the demo's tables: a demo run captures new traffic, so it needs a run id
// of its own.
var ErrRunExists = errors.New("the run id already has rows in the demo's tables")

// CompareConfigFile is the name of the configuration the demo writes in its
// directory for running replay compare on its runs again.
const CompareConfigFile = "compare.yaml"

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
	// CompareConfig is the configuration file the demo wrote to run replay
	// compare on this directory again, and Command how to run replay.
	CompareConfig string
	Command       string
	Took          time.Duration
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
	if opts.Command == "" {
		opts.Command = "replay"
	}
	// The run id names directories and the demo's consumer group: refuse a
	// bad one before a broker starts or a directory is made.
	var problems []string
	if err := schemas.CheckName(opts.RunID); err != nil {
		problems = append(problems, fmt.Sprintf("--run-id: %v", err))
	} else if err := schemas.CheckName(demoGroup(opts.RunID)); err != nil {
		problems = append(problems, fmt.Sprintf("--run-id: the demo's consumer group %s: %v", demoGroupPrefix+"<run-id>", err))
	}
	if problems != nil {
		return nil, fmt.Errorf("demo configuration: %w", &config.Error{Problems: problems})
	}
	logger := opts.Log.Logger(logw)
	const topic = "captures"
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("demo directory %s: %w", opts.Dir, err)
	}
	sinkCfg := config.Default().Sink
	sinkCfg.Catalog.URI = filepath.Join(dir, "catalog.db")
	sinkCfg.Catalog.Warehouse = filepath.Join(dir, "warehouse")
	if err := refuseExistingRun(ctx, sinkCfg, opts.RunID, opts.Dir); err != nil {
		return nil, err
	}

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
	cfg.Source.Kafka.Group = demoGroup(opts.RunID)
	cfg.Source.Kafka.StopAtEnd = true
	cfg.Pipeline.Replay.Target = candURL
	cfg.Sink = sinkCfg
	if cfg.Compare, err = demoCompareConfig(dir); err != nil {
		return nil, err
	}
	compareFile := filepath.Join(dir, CompareConfigFile)
	if err := writeCompareConfig(compareFile, sinkCfg, cfg.Compare.Report); err != nil {
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
		CompareConfig: compareFile, Command: opts.Command,
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

// demoGroupPrefix starts the demo's consumer group, one per run id.
const demoGroupPrefix = "replay-"

func demoGroup(runID string) string { return demoGroupPrefix + runID }

// refuseExistingRun returns an error wrapping ErrRunExists when the tables
// in the demo directory already hold rows of runID: a second demo run under
// the same id would resume the first one's offsets on a new broker, replay
// nothing, and report the first run's rows as its own.
func refuseExistingRun(ctx context.Context, sinkCfg sinks.IcebergConfig, runID, dir string) error {
	if _, err := os.Stat(sinkCfg.Catalog.URI); errors.Is(err, fs.ErrNotExist) {
		return nil // a new directory
	}
	s, err := sinks.OpenIceberg(ctx, sinkCfg, nil)
	if err != nil {
		return fmt.Errorf("open the demo's tables in %s: %w", dir, err)
	}
	defer s.Close()
	n, err := s.CountRows(ctx, schemas.TableProduction, runID)
	if err != nil {
		return fmt.Errorf("read the demo's tables in %s: %w", dir, err)
	}
	if n > 0 {
		return fmt.Errorf("%w: run %s has %d rows in %s; every demo run captures new traffic and needs a run id of its own: "+
			"leave out --run-id (the default is demo-<UTC time>) or pick another", ErrRunExists, runID, n, sinkCfg.Catalog.Warehouse)
	}
	return nil
}

// writeCompareConfig writes the configuration that runs replay compare on
// the demo's tables from any directory: the demo's normalization rules, and
// the catalog, warehouse and report as absolute paths.
func writeCompareConfig(path string, sinkCfg sinks.IcebergConfig, report string) error {
	rules := string(compareRules)
	start := strings.Index(rules, "\ncompare:\n")
	if start < 0 {
		return errors.New("demo compare rules: no compare section")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by replay demo. Runs replay compare on the demo's runs again, from any directory:\n")
	fmt.Fprintf(&b, "#   replay compare --run <run id> --config %s\n", path)
	fmt.Fprintf(&b, "sink:\n  catalog:\n    uri: %s\n    warehouse: %s\n", strconv.Quote(sinkCfg.Catalog.URI), strconv.Quote(sinkCfg.Catalog.Warehouse))
	b.WriteString(strings.TrimRight(rules[start+1:], "\n"))
	fmt.Fprintf(&b, "\n  report: %s\n", strconv.Quote(report))
	// Check it says what it should before a user relies on it.
	var check struct {
		Sink    sinks.IcebergConfig `yaml:"sink"`
		Compare compare.Config      `yaml:"compare"`
	}
	dec := yaml.NewDecoder(strings.NewReader(b.String()))
	dec.KnownFields(true)
	if err := dec.Decode(&check); err != nil || check.Compare.Report != report || check.Sink.Catalog.URI != sinkCfg.Catalog.URI ||
		len(check.Compare.Normalize.Transforms) == 0 {
		return fmt.Errorf("render %s: %v", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create the demo directory: %w", err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
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
