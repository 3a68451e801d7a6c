// Package compare is the batch comparison job: for one run it joins
// production_responses and replay_responses by correlation ID, classifies
// every pair, normalizes and diffs the joined ones with package normalize,
// and writes comparison_summary and comparison_mismatches plus the
// report.html the summary renders to.
//
// Files by role:
//
//   - run.go: Run, the job's lifecycle, and the join: an in-memory hash join
//     while the replay rows (the build side, with the baseline's rows) fit
//     Config.MemoryBudget, a grace hash join through spill files otherwise
//     (partitions over the budget are split again, up to three times).
//   - rows.go: the projection of a table row compare works on (sideRow) and
//     reading it out of Arrow record batches.
//   - spill.go: the join's spill files, a length-prefixed binary encoding of
//     sideRows (why not Arrow IPC or gob: see the file).
//   - duplicates.go: correlation IDs carried by more than one record,
//     found by a pass over the run's production IDs and coordinates
//     before the join (spilled past the budget); the record at the lowest
//     source coordinates is joined, the others set aside as
//     ClassDuplicate, counted and listed in Summary.Duplicates.
//   - classify.go: one pair's class (matched, mismatched, lineage mismatch,
//     noise, only one side, amplified copy), run on Config.Workers
//     goroutines.
//
// Amplified copies (replay rows with amplified_from set: the extra replays
// <id>#2, … of evacuation multipliers) have no production row. They are
// not joined: read with the replay side, they go straight to the
// aggregator as ClassAmplified and are counted in ReplayAmplified only,
// not as only-replay nor in any other count; a baseline's copies are
// skipped (baseline_responses holds none: copies are replayed to the
// candidate only).
//   - aggregate.go, quantiles.go: the summary, folded from the classified
//     pairs in an order-independent way, so it is the same however the join
//     ran and the workers were scheduled; latency percentiles exact up to
//     2,048 values per endpoint and side, a 1%-accurate log-bucket sketch
//     past that.
//   - tables.go: the rows of both comparison tables; mismatch rows stream to
//     an Arrow IPC file as they are found and the sink reads it back, so no
//     mismatch is held in memory beyond the 20 shown in the report.
//   - progress.go: a progress bar on a terminal, info lines otherwise.
//   - summary.go: the Summary contract shared with the report and the CLI.
//   - report.go, report.html.tmpl: report.html.
//
// Baseline noise cancellation: replies of a second copy of the old version
// to the same requests are a second build side of the join (status, headers
// and body only; they count against the same memory budget and spill to
// partition files of their own). They come from one of two places
// (Summary.BaselineSource):
//
//   - Options.BaselineRunID (--baseline-run): the replay_responses rows of
//     another run that replayed the same capture log to the old version;
//   - otherwise the compared run's own baseline_responses rows, which a
//     run with replay.baseline set writes (each selected request replayed
//     to the candidate and to the old version at once), when it has any.
//
// A baseline run, when given, wins: the run's baseline_responses rows are
// then not read. A joined pair with a baseline row is also compared
// production against baseline; the paths that differ there are noise. A
// pair whose every differing path is noise is ClassNoise (NoiseExcluded,
// outside the match rate, no comparison_mismatches row); a mismatch that
// differs at noisy paths and others keeps only the others in its Paths,
// while its Patch stays the whole production → replay patch. Summary
// counts the noisy paths over BaselineJoined pairs (NoisyPaths). A lineage
// mismatch takes precedence; a pair without a baseline row is compared as
// without a baseline.
//
// It must not write replay's own tables (sinks.Iceberg.ReplaceRun refuses
// them), must not hold a run's rows in memory beyond the budget, and must not
// decide the exit status: the compare command does, from Summary.MatchRate
// and Config.MinMatchRate.
//
// Derived numbers are computed once: a match rate by Counts.MatchRate (that
// is schemas.MatchRate, which the live comparison uses too), undefined (nil)
// over 0 compared pairs. The JSON summary (null), report.html ("n/a") and
// comparison_summary (NULL) render that one value, so they cannot disagree.
//
// Dependencies, chosen: github.com/sourcegraph/conc (its stream runs the
// workers and hands their results to one aggregating goroutine in submission
// order, with panics caught), github.com/schollz/progressbar/v3 (the
// terminal bar) with golang.org/x/term (is it a terminal), and, through
// package sinks, iceberg-go and arrow-go.
package compare
