package schemas

import (
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// Names of the tables the compare job writes, in the namespace of the
// replay tables. They are not in TableNames: the replay sink never commits
// to them; compare replaces one run's rows at a time.
const (
	TableComparisonSummary    = "comparison_summary"
	TableComparisonMismatches = "comparison_mismatches"
)

// ComparisonTableNames returns the names of the tables compare writes, in
// the order it writes them: mismatches first, so that a summary row is never
// visible without its mismatch rows.
func ComparisonTableNames() []string {
	return []string{TableComparisonMismatches, TableComparisonSummary}
}

// The comparison tables follow the rules of tables.go: fixed field IDs
// numbered depth first, run_id at ID 1 and the second identifier field at
// ID 2, optional map values and list elements. They are partitioned by
// identity(run_id) only (one run is replaced as a whole) and have no
// captured_at.

func comparisonSummarySchema() *iceberg.Schema {
	return identifiedSchema(
		req(fieldRunID, "run_id", typeString, "migration run compared"),
		req(2, "endpoint", typeString, `normalized endpoint, e.g. "GET /v1/titles/{id}"; "*" is the whole run`),
		req(3, "compared_at", typeTsTz, "when compare ran"),
		opt(4, "match_rate", typeDouble, "matched / (matched + mismatched); null when nothing was compared"),
		opt(5, "production_total", typeLong, "production rows"),
		opt(6, "replay_total", typeLong, "replay rows"),
		opt(7, "joined", typeLong, "correlation IDs with both rows"),
		opt(8, "only_production", typeLong, "production rows without a replay row"),
		opt(9, "only_replay", typeLong, "replay rows without a production row"),
		opt(10, "matched", typeLong, "joined pairs equal after normalization"),
		opt(11, "mismatched", typeLong, "joined pairs that differ after normalization"),
		opt(12, "lineage_excluded", typeLong, "joined pairs whose sides' lineage differs on a shared key; not compared"),
		opt(13, "noise_excluded", typeLong, "joined pairs whose difference is known noise; not counted"),
		opt(14, "production_passing", typeLong, "production responses 2xx or 3xx"),
		opt(15, "production_failing", typeLong, "production responses 4xx, 5xx or none"),
		opt(16, "replay_passing", typeLong, "replay responses 2xx or 3xx"),
		opt(17, "replay_failing", typeLong, "replay responses 4xx, 5xx or none"),
		opt(18, "production_p50_ms", typeDouble, "production latency percentile of joined pairs"),
		opt(19, "production_p90_ms", typeDouble, ""),
		opt(20, "production_p99_ms", typeDouble, ""),
		opt(21, "replay_p50_ms", typeDouble, "replay latency percentile of joined pairs"),
		opt(22, "replay_p90_ms", typeDouble, ""),
		opt(23, "replay_p99_ms", typeDouble, ""),
		opt(24, "replay_amplified", typeLong, "replay rows of amplified copies (evacuation multipliers); not joined, not in the other counts"),
		opt(25, "duplicates", typeLong, "production rows whose correlation ID a record at lower source coordinates also carries; set aside with their replay rows, not joined, not in the other counts"),
	)
}

func comparisonMismatchesSchema() *iceberg.Schema {
	return identifiedSchema(
		req(fieldRunID, "run_id", typeString, "migration run compared"),
		req(fieldCorrelationID, "correlation_id", typeString, "the pair's correlation ID"),
		req(3, "endpoint", typeString, "normalized endpoint of the production request"),
		opt(4, "production_status", typeInt, "null when production had no response"),
		opt(5, "replay_status", typeInt, "null when the replay got no response"),
		opt(6, "replay_error_kind", typeString, "why the replay failed; null on a complete response"),
		opt(7, "patch", typeString, "RFC 6902 JSON Patch turning the normalized production body into the replay one"),
		opt(8, "paths", &iceberg.ListType{ElementID: 9, Element: typeString}, "JSON paths that differ"),
		opt(10, "production_body", typeBinary, "production body after normalization"),
		opt(11, "replay_body", typeBinary, "replay body after normalization"),
		opt(12, "production_raw", typeBinary, "production body as stored"),
		opt(13, "replay_raw", typeBinary, "replay body as stored"),
		opt(14, "production_lineage", stringMapType(14), "service versions of the production response"),
		opt(17, "replay_lineage", stringMapType(17), "service versions of the replay response"),
		req(20, "compared_at", typeTsTz, "when compare ran"),
		opt(21, "body_mode", typeString, "how the bodies were compared: json, text or bytes; null when they were not"),
	)
}

var comparisonSchemaFuncs = map[string]func() *iceberg.Schema{
	TableComparisonSummary:    comparisonSummarySchema,
	TableComparisonMismatches: comparisonMismatchesSchema,
}

// comparisonSortColumn is the column each comparison table is sorted by.
var comparisonSortColumn = map[string]int{
	TableComparisonSummary:    2, // endpoint
	TableComparisonMismatches: fieldCorrelationID,
}

var comparisonArrowSchemas = deriveArrowSchemas(comparisonSchemaFuncs)

// IsComparisonTable reports whether name is one of the comparison tables.
func IsComparisonTable(name string) bool {
	return slices.Contains(ComparisonTableNames(), name)
}

// ComparisonSchema returns the Iceberg schema of the named comparison
// table, or nil for another name. Each call returns a new schema.
func ComparisonSchema(name string) *iceberg.Schema {
	f, ok := comparisonSchemaFuncs[name]
	if !ok {
		return nil
	}

	return f()
}

// ComparisonArrowSchema returns the Arrow schema of the named comparison
// table, derived from its Iceberg schema, or nil for another name. The
// schema is shared: don't modify it.
func ComparisonArrowSchema(name string) *arrow.Schema {
	return comparisonArrowSchemas[name]
}

// ComparisonPartitionSpec returns the partition spec of the named comparison
// table, identity(run_id), or nil for another name.
func ComparisonPartitionSpec(name string) *iceberg.PartitionSpec {
	sc := ComparisonSchema(name)
	if sc == nil {
		return nil
	}
	return partitionSpec(name, sc, false)
}

// ComparisonSortOrder returns the sort order of the named comparison table:
// endpoint for the summary, correlation_id for the mismatches, ascending. It
// returns table.UnsortedSortOrder for another name.
func ComparisonSortOrder(name string) table.SortOrder {
	id, ok := comparisonSortColumn[name]
	if !ok {
		return table.UnsortedSortOrder
	}
	return ascendingBy(name, id)
}
