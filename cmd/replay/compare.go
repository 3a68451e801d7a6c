package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/replaykit/replay/compare"
	"github.com/replaykit/replay/sinks"
)

// thresholdError reports a match rate below the gate, or undefined (rate
// nil: no pair was compared), which does not pass it either.
type thresholdError struct {
	rate *float64
	min  float64
}

func (e thresholdError) Error() string {
	if e.rate == nil {
		return fmt.Sprintf("match rate is undefined: no pair was compared (all excluded, or without a replay or production row), so it cannot reach the minimum %.4f (compare.min_match_rate)", e.min)
	}
	return fmt.Sprintf("match rate %.4f is below the minimum %.4f (compare.min_match_rate)", *e.rate, e.min)
}

func newCompareCommand(stdout, stderr io.Writer) *cobra.Command {
	var flags configFlags
	var minRate float64
	var baselineRunID string
	cmd := &cobra.Command{
		Use:   "compare --run RUN_ID [--baseline-run RUN_ID]",
		Short: "Compare the production and replay sides of a run: summary, mismatches, report",
		Long: `Compare the two sides of one run.

Scans production_responses and replay_responses for the run, joins them by
correlation ID, normalizes both responses with the compare.normalize rules
(ignored paths and headers, unordered lists, intended changes, numeric
tolerance), diffs them, and writes:

  - comparison_summary: one row per endpoint and one for the whole run;
  - comparison_mismatches: every mismatch with its JSON Patch and both bodies;
  - report.html: one self-contained page (compare.report);
  - a JSON summary on stdout.

Pairs whose lineage differs on a shared key are lineage mismatches, excluded
from the match rate. With a baseline — the same requests replayed to a second
copy of the old version — a path that also differs between production and
that baseline is noise, not a defect (noise-excluded when a pair differs only
at such paths). The baseline is the run's own baseline_responses rows, written
when it ran with replay.baseline set; or, with --baseline-run, the
replay_responses rows of another run replayed to the old version, which wins
over baseline_responses. The summary's baseline_source says which was used.
Re-running compare for a run replaces its results. A run larger than
compare.memory_budget is joined in partitions spilled to disk.

compare opens the catalog read-only: the catalog (a SQLite file must
exist), the namespace, production_responses and replay_responses must be
there, or it fails naming what it looked for and where, having created
nothing. It creates only its own output tables, comparison_summary and
comparison_mismatches, when they are missing. A match rate over 0 compared
pairs is undefined: null in the JSON, n/a in the report, NULL in the table.

Exit status: 0, or 3 when the match rate is below --min-match-rate
(compare.min_match_rate) or undefined while a minimum is set, 2 for a bad
configuration, 1 for any other failure (a catalog, namespace, table or run
not found among them).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if flags.runID == "" {
				return usageError{fmt.Errorf("--run is required: the run_id to compare")}
			}
			if cmd.Flags().Changed("min-match-rate") {
				flags.sets = append(flags.sets, fmt.Sprintf("compare.min_match_rate=%v", minRate))
			}
			// compare needs no replay target: give the validator one.
			flags.sets = append([]string{"replay.target=http://compare.invalid"}, flags.sets...)
			cfg, err := flags.load(cmd)
			if err != nil {
				return err
			}
			logger := cfg.Log.Logger(stderr)
			// Read-only: a mistyped catalog path, namespace or table is an
			// error naming it, not a new empty catalog. Only compare's own
			// output tables are created (by ReplaceRun) once the run is found.
			sink, err := sinks.OpenIcebergReadOnly(cmd.Context(), cfg.Sink, logger, compare.InputTables())
			if err != nil {
				return err
			}
			defer sink.Close()
			sum, err := compare.Run(cmd.Context(), cfg.Compare, sink, compare.Options{RunID: cfg.RunID, BaselineRunID: baselineRunID, Progress: stderr, Logger: logger})
			if err != nil {
				return err
			}
			sum.Report = strings.ReplaceAll(cfg.Compare.Report, "<run_id>", cfg.RunID)
			if err := sum.WriteReportFile(sum.Report); err != nil {
				return fmt.Errorf("write report: %w", err)
			}
			logger.Info("comparison written", "run_id", cfg.RunID, "match_rate", compare.RateLogValue(sum.MatchRate), "report", sum.Report,
				"summary_table", sum.SummaryTable, "mismatches_table", sum.MismatchesTable)
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(sum); err != nil {
				return err
			}
			if m := cfg.Compare.MinMatchRate; m > 0 && (sum.MatchRate == nil || *sum.MatchRate < m) {
				return thresholdError{sum.MatchRate, m}
			}
			return nil
		},
	}
	flags.registerCommon(cmd)
	cmd.Flags().StringVar(&flags.runID, "run", "", "run_id to compare (required)")
	cmd.Flags().StringVar(&baselineRunID, "baseline-run", "", "run_id of a replay of the same capture log to the old version; paths differing there too are noise (wins over the run's own baseline_responses)")
	cmd.Flags().Float64Var(&minRate, "min-match-rate", 0, "exit 3 when the match rate is below this (0..1; compare.min_match_rate)")
	return cmd
}
