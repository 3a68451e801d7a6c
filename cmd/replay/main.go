// Command replay validates a backend migration with real production traffic:
// it replays a Kafka capture log against a new cluster and records both
// sides in Apache Iceberg tables. See README.md.
//
// This file wires flags and configuration to the packages that do the work;
// it holds no logic of its own. The CLI is built with spf13/cobra, the most
// widely used Go CLI library, for its per-command --help and flag handling.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/replaykit/replay/config"
	"github.com/replaykit/replay/pipeline"
	"github.com/replaykit/replay/sinks"
)

// Exit codes.
const (
	exitOK     = 0
	exitError  = 1
	exitConfig = 2
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the CLI and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signalContext(stderr)
	defer stop()

	root := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "replay:", err)
	var ce *config.Error
	var ue usageError
	var te thresholdError
	switch {
	case errors.As(err, &te):
		return exitBelowThreshold
	case errors.As(err, &ce), errors.As(err, &ue),
		// Refused before anything was sent: the configuration must change.
		errors.Is(err, pipeline.ErrProductionTarget), errors.Is(err, sinks.ErrRunOfAnotherGroup):
		return exitConfig
	default:
		return exitError
	}
}

// usageError marks a bad flag or argument (exit 2, like bad config).
type usageError struct{ error }

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "replay",
		Short: "Replay captured production traffic against a new cluster and record both sides in Iceberg",
		Long: `replay validates backend migrations with real production traffic.

It consumes the capture log a production service writes to Kafka (one
request/response exchange per record), rewrites each request for the new
cluster, replays it at a controlled rate through a bounded worker pool, and
writes the production response and the replay response as rows of Apache
Iceberg tables keyed by correlation ID, for comparison.

Start with 'replay demo' to see the whole flow on this machine.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newRunCommand(stderr), newCompareCommand(stdout, stderr), newDemoCommand(stdout, stderr), newCtlCommand(stdout),
		newVersionCommand(stdout))
	return root
}

func newVersionCommand(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the replay version and build information",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintf(stdout, "replay %s\n", buildVersion())
			if bi, ok := debug.ReadBuildInfo(); ok {
				fmt.Fprintf(stdout, "go %s\n", strings.TrimPrefix(bi.GoVersion, "go"))
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" || s.Key == "vcs.time" || s.Key == "vcs.modified" {
						fmt.Fprintf(stdout, "%s %s\n", s.Key, s.Value)
					}
				}
			}
			return nil
		},
	}
}

func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}

// signalContext returns a context cancelled by the first SIGINT or SIGTERM
// (graceful: stop polling, drain, flush, commit). A second signal exits at
// once.
func signalContext(stderr io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			fmt.Fprintf(stderr, "replay: %v: stopping: draining in-flight requests, flushing and committing (send again to exit now)\n", s)
			cancel()
		case <-done:
			return
		}
		select {
		case s := <-ch:
			fmt.Fprintf(stderr, "replay: %v again: exiting without draining; uncommitted records will be replayed on restart\n", s)
			os.Exit(exitError)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel()
	}
}
