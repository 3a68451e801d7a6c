package compare

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/replaykit/replay/normalize"
)

// RunIDPlaceholder in Config.Report is replaced by the run ID.
const RunIDPlaceholder = "<run_id>"

// Config configures the batch comparison of one run. DefaultConfig has a
// value for every field; Validate names every bad one.
type Config struct {
	// Normalize are the rules applied to both responses before they are
	// diffed: routes that name endpoints, JSON paths to ignore, arrays to
	// sort, transforms, per-endpoint overrides. See package normalize.
	Normalize normalize.Config `yaml:"normalize"`
	// MemoryBudget is the bytes of joined rows compare holds in memory:
	// the replay side of the run (the build side of the hash join; the
	// production side streams past it). A run whose replay rows take more
	// spills: both sides are partitioned to files under SpillDir and joined
	// one partition at a time. The results are the same either way.
	MemoryBudget int64 `yaml:"memory_budget"`
	// SpillDir holds the spill files of a join over the memory budget and
	// the mismatch rows on their way to comparison_mismatches; it is
	// created if missing. Empty: the system's temporary directory
	// (os.TempDir, $TMPDIR). Each run works in a directory of its own below
	// it and removes it at the end, on error too.
	SpillDir string `yaml:"spill_dir"`
	// Partitions is the number of partitions of a spilled join (grace hash
	// join): each holds about 1/Partitions of the replay rows, so raise it
	// when a run is many times the memory budget.
	Partitions int `yaml:"partitions"`
	// Report is where report.html is written; "<run_id>" is replaced by the
	// run ID.
	Report string `yaml:"report"`
	// MinMatchRate is the lowest acceptable match rate, 0 to 1: below it,
	// or when the rate is undefined because no pair was compared, the
	// compare command exits with status 3. 0 disables the gate.
	MinMatchRate float64 `yaml:"min_match_rate"`
	// Workers is the number of goroutines normalizing and diffing pairs;
	// 0 means one per CPU (GOMAXPROCS).
	Workers int `yaml:"workers"`
}

// DefaultConfig returns the default configuration: no normalization rules
// (status_only false, body auto),
// a 256 MiB memory budget, spill files in the system's temporary directory
// in 64 partitions, the report under ./replay-data/reports/<run_id>/, no
// match-rate gate, one worker per CPU. The machine-dependent defaults
// (SpillDir, Workers) are left empty and resolved when a run starts, so a
// printed configuration is the same on every machine.
func DefaultConfig() Config {
	statusOnly := false
	return Config{
		// The global rules' status_only and body as they act when unset, so
		// that --print-config shows what the README documents.
		Normalize:    normalize.Config{Rules: normalize.Rules{StatusOnly: &statusOnly, Body: "auto"}},
		MemoryBudget: 256 << 20,
		Partitions:   64,
		Report:       "./replay-data/reports/" + RunIDPlaceholder + "/report.html",
	}
}

// spillDir returns SpillDir, or the system's temporary directory.
func (c *Config) spillDir() string {
	if c.SpillDir == "" {
		return os.TempDir()
	}

	return c.SpillDir
}

// workers returns Workers, or GOMAXPROCS.
func (c *Config) workers() int {
	if c.Workers == 0 {
		return runtime.GOMAXPROCS(0)
	}

	return c.Workers
}

// maxPartitions bounds Partitions: each is two open files while spilling.
const maxPartitions = 4096

// Validate returns every problem with the configuration; it looks at the
// values only, not at the file system. Each message starts
// with the field path relative to Config, e.g. "partitions: must be
// between 1 and 4096, got 0"; problems of the normalization rules start with
// "normalize.".
func (c *Config) Validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if _, err := normalize.Compile(c.Normalize); err != nil {
		// Compile joins one error per problem, each starting with its
		// field path relative to normalize.Config.
		problems := []error{err}
		var joined interface{ Unwrap() []error }
		if errors.As(err, &joined) {
			problems = joined.Unwrap()
		}
		for _, p := range problems {
			add("normalize.%v", p)
		}
	}
	if c.MemoryBudget < 1 {
		add("memory_budget: must be ≥ 1 byte, got %d", c.MemoryBudget)
	}
	if c.Partitions < 1 || c.Partitions > maxPartitions {
		add("partitions: must be between 1 and %d, got %d", maxPartitions, c.Partitions)
	}
	if c.Report == "" {
		add("report: is empty; name the report file, e.g. ./replay-data/reports/%s/report.html", RunIDPlaceholder)
	}
	if c.MinMatchRate < 0 || c.MinMatchRate > 1 || c.MinMatchRate != c.MinMatchRate {
		add("min_match_rate: must be between 0 and 1, got %v", c.MinMatchRate)
	}
	if c.Workers < 0 {
		add("workers: must be ≥ 0 (0: one per CPU), got %d", c.Workers)
	}

	return errs
}

// ReportPath returns Report for the run: the placeholder replaced by runID.
func (c *Config) ReportPath(runID string) string {
	return strings.ReplaceAll(c.Report, RunIDPlaceholder, runID)
}
