package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/replaykit/replay/config"
	"github.com/replaykit/replay/demo"
)

func newDemoCommand(stdout, stderr io.Writer) *cobra.Command {
	var opts demo.Options
	var level string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole replay flow on this machine with nothing installed",
		Long: `Run the whole replay flow on this machine, with nothing installed.

The demo starts an in-process Kafka-protocol broker on a loopback port, a
production catalog service whose every exchange is captured to the broker, and
a candidate version of that service on a "new cluster" that differs the way
real migrations do: generatedAt timestamps, list order, a renamed field
(rating → score) and a real bug in about 3% of titles. It then runs the replay
pipeline exactly as 'replay run' does, into a local Iceberg warehouse, and
prints what it consumed, replayed and wrote, read back from the tables.

Each demo run has its own run_id, so running it again adds a new run beside
the previous ones in the same tables; a --run-id the tables already hold is
refused (exit 2). The summary ends with the command that runs compare on the
run again, from this directory: it uses compare.yaml, which the demo writes
in --dir with its normalization rules and the catalog, warehouse and report
paths.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := config.ParseLevel(level); err != nil {
				return usageError{fmt.Errorf("--log-level: %w", err)}
			}
			switch {
			case opts.Exchanges < 1:
				return usageError{fmt.Errorf("--exchanges %d: must be ≥ 1", opts.Exchanges)}
			case opts.Garbage < 0:
				return usageError{fmt.Errorf("--garbage %d: must be ≥ 0", opts.Garbage)}
			case opts.Partitions < 1:
				return usageError{fmt.Errorf("--partitions %d: must be ≥ 1", opts.Partitions)}
			case opts.Garbage == 0:
				opts.Garbage = -1 // demo.Options: negative is none, 0 the default
			}
			opts.Log = config.Log{Level: level, Format: "text"}
			opts.Command = invocation()
			sum, err := demo.Run(cmd.Context(), opts, stderr)
			if errors.Is(err, demo.ErrRunExists) {
				return usageError{fmt.Errorf("--run-id %s: %w", opts.RunID, err)}
			}
			if err != nil {
				return err
			}
			sum.Print(stdout)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Dir, "dir", "replay-data", "directory for the SQLite catalog and the warehouse")
	fl.IntVar(&opts.Exchanges, "exchanges", 3000, "production exchanges to serve and capture")
	fl.IntVar(&opts.Garbage, "garbage", 5, "undecodable records to put on the topic (shown in dead_letters)")
	fl.IntVar(&opts.Partitions, "partitions", 6, "partitions of the capture topic")
	fl.StringVar(&opts.RunID, "run-id", "", "run id (default demo-<UTC time>)")
	fl.StringVar(&level, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

// invocation is how the user runs this replay binary from the working
// directory, for the commands the demo prints: the name when the shell found
// it on $PATH, else its path from here (./bin/replay after make demo), or
// the absolute path when it lies outside.
func invocation() string {
	exe := os.Args[0]
	if !strings.ContainsRune(exe, filepath.Separator) {
		if _, err := exec.LookPath(exe); err == nil {
			return exe
		}
		if p, err := os.Executable(); err == nil {
			exe = p
		}
	}
	p := demo.FromHere(exe)
	if !filepath.IsAbs(p) && !strings.HasPrefix(p, "."+string(filepath.Separator)) {
		p = "." + string(filepath.Separator) + p // so that the shell does not look it up on $PATH
	}
	return demo.ShellQuote(p)
}
