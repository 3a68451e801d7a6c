package compare

import (
	"encoding/json"
	"log/slog"
	"time"

	"github.com/replaykit/replay/schemas"
)

// Classes of a joined pair.
const (
	ClassMatched         = "matched"
	ClassMismatched      = "mismatched"
	ClassLineageMismatch = "lineage_mismatch" // shared lineage key differs: excluded from the match rate
	ClassOnlyProduction  = "only_production"  // no replay row (not selected, or not replayed yet)
	ClassOnlyReplay      = "only_replay"
	// ClassNoise: every path the pair differs at also differs between
	// production and the baseline (see Summary.BaselineSource); counted in
	// NoiseExcluded, excluded from the match rate.
	ClassNoise = "noise"
	// ClassAmplified: a replay row of an amplified copy (amplified_from
	// set: an extra replay of a record, <id>#2, …, made by evacuation
	// multipliers). It has no production row of its own: it is not
	// joined, and counted only in ReplayAmplified.
	ClassAmplified = "amplified"
	// ClassDuplicate: a row whose correlation ID a record at lower source
	// coordinates (topic, partition, offset) also carries. The record at
	// the lowest coordinates is the one joined; the others, production and
	// replay rows, are set aside: counted in Duplicates (production rows)
	// and listed in Summary.Duplicates, not joined.
	ClassDuplicate = "duplicate"
)

// Where a comparison's baseline came from (Summary.BaselineSource).
const (
	// BaselineFromRun: Options.BaselineRunID (--baseline-run), another run's
	// replay_responses rows.
	BaselineFromRun = "baseline_run"
	// BaselineFromTable: the compared run's own baseline_responses rows,
	// written by a run with replay.baseline set.
	BaselineFromTable = "baseline_responses"
)

// EndpointAll is the Endpoint of the summary row for the whole run.
const EndpointAll = "*"

// Summary is the result of comparing one run: what is written to
// comparison_summary, printed as JSON and rendered in report.html.
type Summary struct {
	RunID      string      `json:"run_id"`
	ComparedAt time.Time   `json:"compared_at"`
	Duration   float64     `json:"duration_seconds"`
	Overall    Counts      `json:"overall"`
	Endpoints  []Counts    `json:"endpoints"` // sorted by impact: mismatched desc, then total desc
	TopPaths   []PathCount `json:"top_paths"` // differing JSON paths over all mismatches, most frequent first
	// BaselineSource says where the baseline (the same capture replayed to
	// the old version, which tells noise from defects) came from:
	// BaselineFromRun, BaselineFromTable, or empty without a baseline.
	BaselineSource string `json:"baseline_source,omitempty"`
	// BaselineRunID and BaselineTable name the baseline rows: the run
	// (Options.BaselineRunID, or RunID itself for BaselineFromTable) and the
	// table, with its namespace, they were read from.
	BaselineRunID string `json:"baseline_run_id,omitempty"`
	BaselineTable string `json:"baseline_table,omitempty"`
	// BaselineJoined is the number of pairs compared with a baseline row
	// too (joined, not lineage-excluded): the denominator of a noisy
	// path's rate.
	BaselineJoined int64 `json:"baseline_joined"`
	// NoisyPaths are the paths where production and the baseline differed,
	// over the BaselineJoined pairs, most frequent first. A mismatch loses
	// these from its Paths; one that differs only at them is noise.
	NoisyPaths   []PathCount      `json:"noisy_paths"`
	StatusMatrix []StatusCell     `json:"status_matrix"` // production status × replay status (0 = no response)
	ErrorKinds   map[string]int64 `json:"error_kinds"`   // replay error kinds
	Latency      LatencyHistogram `json:"latency"`
	// TopMismatches are the first mismatches by impact, for the report's
	// side-by-side diffs (bodies truncated for display).
	TopMismatches []Mismatch `json:"top_mismatches"`
	// Duplicates are the correlation IDs carried by more than one record
	// of the run (see ClassDuplicate).
	Duplicates DuplicateSummary `json:"duplicates"`
	// MatchRate is Overall.MatchRate(), repeated for scripts: null when
	// no pair was compared.
	MatchRate *float64 `json:"match_rate"`
	// Spilled reports whether the join spilled to disk (memory budget).
	Spilled bool `json:"spilled"`
	// Tables and Report say where the results are.
	SummaryTable    string `json:"summary_table"`
	MismatchesTable string `json:"mismatches_table"`
	Report          string `json:"report,omitempty"`
}

// Counts is one comparison_summary row: one endpoint, or EndpointAll.
type Counts struct {
	Endpoint        string `json:"endpoint"` // "GET /v1/titles/{id}" or "*"
	ProductionTotal int64  `json:"production_total"`
	ReplayTotal     int64  `json:"replay_total"` // amplified copies not included
	// ReplayAmplified counts the replay rows of amplified copies
	// (ClassAmplified): extra replays with no production row, kept out of
	// every other count.
	ReplayAmplified int64 `json:"replay_amplified"`
	// Duplicates counts production rows set aside because a record at
	// lower source coordinates carries their correlation ID
	// (ClassDuplicate); they are in no other count, nor are their replay
	// rows.
	Duplicates      int64 `json:"duplicates"`
	Joined          int64 `json:"joined"`
	OnlyProduction  int64 `json:"only_production"`
	OnlyReplay      int64 `json:"only_replay"`
	Matched         int64 `json:"matched"`
	Mismatched      int64 `json:"mismatched"`
	LineageExcluded int64 `json:"lineage_excluded"`
	NoiseExcluded   int64 `json:"noise_excluded"`
	// Passing/failing responses per side: 2xx and 3xx pass; 4xx, 5xx and
	// no response fail.
	ProductionPassing int64 `json:"production_passing"`
	ProductionFailing int64 `json:"production_failing"`
	ReplayPassing     int64 `json:"replay_passing"`
	ReplayFailing     int64 `json:"replay_failing"`
	// Latency percentiles in milliseconds per side.
	ProductionP50 float64 `json:"production_p50_ms"`
	ProductionP90 float64 `json:"production_p90_ms"`
	ProductionP99 float64 `json:"production_p99_ms"`
	ReplayP50     float64 `json:"replay_p50_ms"`
	ReplayP90     float64 `json:"replay_p90_ms"`
	ReplayP99     float64 `json:"replay_p99_ms"`
}

// MatchRate is matched / (matched + mismatched), computed by
// schemas.MatchRate; nil (undefined) when no pair was compared. Lineage-
// and noise-excluded pairs do not count. The JSON summary, report.html,
// comparison_summary and the compare command all take it from here.
func (c Counts) MatchRate() *float64 {
	return schemas.MatchRate(c.Matched, c.Mismatched)
}

// MarshalJSON writes the counts with their match_rate (null when no pair
// was compared). Decoding ignores match_rate: it is derived.
func (c Counts) MarshalJSON() ([]byte, error) {
	type plain Counts // without this method

	return json.Marshal(struct {
		plain
		MatchRate *float64 `json:"match_rate"`
	}{plain(c), c.MatchRate()})
}

// RateLogValue is a match rate for a log line: the number, or "n/a" when
// it is undefined.
func RateLogValue(r *float64) slog.Value {
	if r == nil {
		return slog.StringValue("n/a")
	}

	return slog.Float64Value(*r)
}

// PathCount is one differing JSON path and how often it differed.
type PathCount struct {
	Path    string   `json:"path"`
	Count   int64    `json:"count"`
	Samples []string `json:"samples"` // up to 5 correlation IDs
}

// StatusCell is one cell of the production × replay status matrix.
type StatusCell struct {
	Production int   `json:"production"` // 0: no response
	Replay     int   `json:"replay"`     // 0: no response (see ErrorKinds)
	Count      int64 `json:"count"`
}

// LatencyHistogram buckets joined pairs' latencies per side.
type LatencyHistogram struct {
	BoundsMS   []float64 `json:"bounds_ms"` // upper bounds; the last bucket is open
	Production []int64   `json:"production"`
	Replay     []int64   `json:"replay"`
}

// Mismatch is one comparison_mismatches row.
type Mismatch struct {
	CorrelationID     string            `json:"correlation_id"`
	Endpoint          string            `json:"endpoint"`
	ProductionStatus  int               `json:"production_status"`
	ReplayStatus      int               `json:"replay_status"`
	ReplayErrorKind   string            `json:"replay_error_kind,omitempty"`
	Patch             string            `json:"patch"` // RFC 6902 JSON Patch, production → replay
	Paths             []string          `json:"paths"`
	ProductionBody    []byte            `json:"-"` // normalized
	ReplayBody        []byte            `json:"-"` // normalized
	ProductionRaw     []byte            `json:"-"`
	ReplayRaw         []byte            `json:"-"`
	ProductionLineage map[string]string `json:"production_lineage,omitempty"`
	ReplayLineage     map[string]string `json:"replay_lineage,omitempty"`
	// BodyMode is how the bodies were compared: json, text or bytes; empty
	// when they were not (status only, or a side without a response).
	BodyMode string `json:"body_mode,omitempty"`
}
