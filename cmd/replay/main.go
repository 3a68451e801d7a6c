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

// Exit codes of every command, listed in the root command's help, README.md
// (Commands) and docs/operations.md (Exit codes). Keep them here, in one
// place.
const (
	exitOK    = 0
	exitError = 1 // a runtime failure: unreachable broker, catalog or admin server, failed commit
	// exitConfig is a usage error: an unknown command, a bad flag or
	// argument, a bad configuration (file, REPLAY_* or --set).
	exitConfig = 2
	// exitBelowThreshold is compare's gate: the match rate is below
	// --min-match-rate.
	exitBelowThreshold = 3
)

// exitCodesHelp explains the exit codes in --help.
const exitCodesHelp = `Exit status (every command):
  0  success
  1  a runtime failure: an unreachable broker, catalog or admin server, a
     failed commit
  2  a usage error: an unknown command, a bad flag or argument, a bad
     configuration (the message names every bad field and the fix); for
     ctl also a value the server rejects, a refused token, or an address
     where something other than replay's admin API answers
  3  compare: the match rate is below --min-match-rate`

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

Start with 'replay demo' to see the whole flow on this machine.

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newRunCommand(stderr), newCompareCommand(stdout, stderr), newDemoCommand(stdout, stderr), newCtlCommand(stdout),
		newVersionCommand(stdout))
	root.SetHelpCommand(newHelpCommand())
	root.InitDefaultCompletionCmd()
	strictUsage(root)
	return root
}

// strictUsage makes every usage mistake exit 2 with a message, in root and
// every command below it: a wrong number of arguments, an unknown command
// (cobra would print the help of a command group and exit 0, or exit 1),
// and a command group or the root run without a command.
func strictUsage(c *cobra.Command) {
	for _, sub := range c.Commands() {
		strictUsage(sub)
	}
	if args := c.Args; args != nil {
		c.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				if strings.HasPrefix(err.Error(), "unknown command") { // cobra.NoArgs
					err = fmt.Errorf("%s takes no arguments, got %q; see %s --help", cmd.CommandPath(), strings.Join(a, " "), cmd.CommandPath())
				}
				return usageError{err}
			}
			return nil
		}
	}
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2
	}
	if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(cmd *cobra.Command, args []string) error {
			var names []string
			for _, s := range cmd.Commands() {
				if s.IsAvailableCommand() {
					names = append(names, s.Name())
				}
			}
			if len(args) == 0 {
				cmd.SetOut(cmd.ErrOrStderr())
				_ = cmd.Usage()
				return usageError{fmt.Errorf("%s needs a command: %s", cmd.CommandPath(), strings.Join(names, ", "))}
			}
			hint := "the commands are " + strings.Join(names, ", ")
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				hint = "did you mean " + strings.Join(s, " or ") + "?"
			}
			return usageError{fmt.Errorf("unknown command %q for %q; %s (see %s --help)", args[0], cmd.CommandPath(), hint, cmd.CommandPath())}
		}
	}
}

// newHelpCommand is cobra's help command, except that an unknown topic is
// a usage error (cobra's prints the usage and exits 0).
func newHelpCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil || cmd == nil || len(rest) > 0 && len(args) > 0 {
				return usageError{fmt.Errorf("unknown help topic %q; the commands are listed by replay --help", strings.Join(args, " "))}
			}
			return cmd.Help()
		},
	}
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
