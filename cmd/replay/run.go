package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/replaykit/replay/config"
	"github.com/replaykit/replay/service"
)

// configFlags are the flags every command that loads a config shares.
type configFlags struct {
	file        string
	sets        []string
	runID       string
	target      string
	baseline    string
	brokers     string
	topics      string
	group       string
	workers     int
	rate        float64
	printConfig bool
	fresh       bool
}

// registerCommon adds the flags every config-loading command has.
func (f *configFlags) registerCommon(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVarP(&f.file, "config", "c", "", "YAML config file (see README.md, Configuration); without it the embedded default is used")
	fl.StringArrayVar(&f.sets, "set", nil, "override any config field: --set replay.workers=16 (repeatable; lists as a,b; maps as k=v,k=v)")
}

func (f *configFlags) register(cmd *cobra.Command) {
	f.registerCommon(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.runID, "run-id", "", "name of this migration run, written on every row (run_id)")
	fl.StringVar(&f.target, "target", "", "base URL of the new cluster, e.g. http://new-api:8080 (replay.target)")
	fl.StringVar(&f.baseline, "baseline", "", "base URL of a second copy of the old version; every selected request goes there too (replay.baseline)")
	fl.StringVar(&f.brokers, "brokers", "", "comma-separated Kafka brokers (source.kafka.brokers)")
	fl.StringVar(&f.topics, "topic", "", "comma-separated capture topics (source.kafka.topics)")
	fl.StringVar(&f.group, "group", "", "Kafka consumer group (source.kafka.group)")
	fl.IntVar(&f.workers, "workers", 0, "concurrent replay requests (replay.workers)")
	fl.Float64Var(&f.rate, "rate", 0, "replay requests per second, 0 = unlimited (replay.rate)")
	fl.BoolVar(&f.printConfig, "print-config", false, "print the effective configuration as YAML and exit")
	fl.BoolVar(&f.fresh, "fresh", false, "file source: replay the whole file again, replacing the rows the tables hold for this run (source.file.fresh)")
}

// load builds the config: defaults < file < REPLAY_* env < named flags < --set.
func (f *configFlags) load(cmd *cobra.Command) (config.Config, error) {
	var sets []string
	add := func(path, v string) { sets = append(sets, path+"="+v) }
	if f.runID != "" {
		add("run_id", f.runID)
	}
	if f.target != "" {
		add("replay.target", f.target)
	}
	if f.baseline != "" {
		add("replay.baseline", f.baseline)
	}
	if f.brokers != "" {
		add("source.kafka.brokers", f.brokers)
	}
	if f.topics != "" {
		add("source.kafka.topics", f.topics)
	}
	if f.group != "" {
		add("source.kafka.group", f.group)
	}
	if f.fresh {
		add("source.file.fresh", "true")
	}
	if cmd.Flags().Lookup("workers") != nil && cmd.Flags().Changed("workers") {
		add("replay.workers", fmt.Sprint(f.workers))
	}
	if cmd.Flags().Lookup("rate") != nil && cmd.Flags().Changed("rate") {
		add("replay.rate", fmt.Sprint(f.rate))
	}
	return config.Load(f.file, os.Environ(), append(sets, f.sets...))
}

func newRunCommand(stderr io.Writer) *cobra.Command {
	var flags configFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the replay pipeline: consume the capture log, replay, record both sides",
		Long: `Run the long-lived replay pipeline.

Reads captured exchanges from Kafka (or an NDJSON file), writes each one to the
production_responses table, replays the selected ones against replay.target and
writes what came back to replay_responses; undecodable records go to
dead_letters with their bytes and the reason. With replay.baseline (--baseline),
each selected request also goes to that second copy of the old version, and its
answers go to baseline_responses: compare uses them to cancel noise. Kafka offsets are committed only
after the Iceberg commits that hold those records.

Configuration comes from, lowest to highest precedence: the embedded default,
the --config file, REPLAY_* environment variables (replay.workers is
REPLAY_REPLAY_WORKERS), the named flags below, and --set. A bad configuration
exits with status 2 and names every bad field.

SIGINT or SIGTERM stops polling, drains in-flight requests, flushes, commits
and exits 0; a second signal exits at once.

Fields settable with --set and REPLAY_*:
  ` + strings.Join(config.Fields(), "\n  "),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := flags.load(cmd)
			if flags.printConfig {
				out, merr := cfg.Marshal()
				if merr != nil {
					return merr
				}
				_, _ = cmd.OutOrStdout().Write(out)
				return err
			}
			if err != nil {
				return err
			}
			logger := cfg.Log.Logger(stderr)
			res, err := service.Run(cmd.Context(), cfg, logger)
			if err != nil {
				return err
			}
			return res.Sink.Close()
		},
	}
	flags.register(cmd)
	return cmd
}
