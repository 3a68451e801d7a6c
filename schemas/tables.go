package schemas

import (
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// Names of the tables replay writes. Every table lives in the configured
// namespace (default "replay").
const (
	TableProduction = "production_responses"
	TableReplay     = "replay_responses"
	// TableBaseline holds the same requests replayed to replay.baseline, a
	// second copy of the old version, when it is set; its schema is
	// replay_responses'.
	TableBaseline    = "baseline_responses"
	TableDeadLetters = "dead_letters"
)

// TableNames returns the names of the tables the replay sink writes, in the
// order it commits them.
func TableNames() []string {
	return []string{TableProduction, TableReplay, TableBaseline, TableDeadLetters}
}

// Field IDs shared by every table. The identifier fields (run_id,
// correlation_id) and the partition source (captured_at) sit at the same IDs
// in all of them.
const (
	fieldRunID         = 1
	fieldCorrelationID = 2
	fieldCapturedAt    = 3
)

// The schemas below are the single definition of each table: the Arrow
// schemas and the row builders are derived from them.
//
// Field IDs are fixed and numbered depth first (a map's key and value, and a
// list's element, take the IDs right after their column). That is exactly the
// numbering iceberg-go assigns when it creates a table (CreateTable reassigns
// IDs with iceberg.AssignFreshSchemaIDs), so a created table carries these
// same IDs; TestFieldIDsSurviveTableCreation holds us to it. Never renumber a
// field: add new ones at the end with the next free IDs.

var (
	typeString = iceberg.PrimitiveTypes.String
	typeBinary = iceberg.PrimitiveTypes.Binary
	typeInt    = iceberg.PrimitiveTypes.Int32
	typeLong   = iceberg.PrimitiveTypes.Int64
	typeDouble = iceberg.PrimitiveTypes.Float64
	typeTsTz   = iceberg.PrimitiveTypes.TimestampTz // microseconds, UTC
)

// Map values and list elements are optional although replay never writes a
// null one. With required map values, iceberg-go v0.7.0 scans return a
// schema whose maps have non-nullable items but record batches whose maps
// have nullable ones, and Scan.ToArrowTable panics ("mismatch data type
// map<…, items_nullable> vs map<…, items_non_nullable>"). Required list
// elements do not trip it; they are optional here for uniformity.

// headersType is map<string, list<string>> with the given field IDs: the map
// takes id, key id+1, value id+2, list element id+3.
func headersType(id int) *iceberg.MapType {
	return &iceberg.MapType{
		KeyID:     id + 1,
		KeyType:   typeString,
		ValueID:   id + 2,
		ValueType: &iceberg.ListType{ElementID: id + 3, Element: typeString},
	}
}

// stringMapType is map<string, string>: the map takes id, key id+1, value id+2.
func stringMapType(id int) *iceberg.MapType {
	return &iceberg.MapType{KeyID: id + 1, KeyType: typeString, ValueID: id + 2, ValueType: typeString}
}

func req(id int, name string, t iceberg.Type, doc string) iceberg.NestedField {
	return iceberg.NestedField{ID: id, Name: name, Type: t, Required: true, Doc: doc}
}

func opt(id int, name string, t iceberg.Type, doc string) iceberg.NestedField {
	return iceberg.NestedField{ID: id, Name: name, Type: t, Doc: doc}
}

func identifiedSchema(fields ...iceberg.NestedField) *iceberg.Schema {
	return iceberg.NewSchemaWithIdentifiers(0, []int{fieldRunID, fieldCorrelationID}, fields...)
}

func productionSchema() *iceberg.Schema {
	return identifiedSchema(
		req(fieldRunID, "run_id", typeString, "migration run the row belongs to"),
		req(fieldCorrelationID, "correlation_id", typeString, "joins production and replay rows"),
		req(fieldCapturedAt, "captured_at", typeTsTz, "when production served the exchange"),
		opt(4, "source_topic", typeString, "capture log topic (or file name)"),
		opt(5, "source_partition", typeInt, "capture log partition"),
		opt(6, "source_offset", typeLong, "capture log offset (or line number)"),
		opt(7, "request_method", typeString, ""),
		opt(8, "request_scheme", typeString, ""),
		opt(9, "request_host", typeString, ""),
		opt(10, "request_path", typeString, ""),
		opt(11, "request_query", typeString, "raw query string, without the leading ?"),
		opt(12, "request_headers", headersType(12), "secrets redacted"),
		opt(16, "request_body", typeBinary, ""),
		opt(17, "response_status", typeInt, "null when the log carried no response"),
		opt(18, "response_headers", headersType(18), "secrets redacted"),
		opt(22, "response_body", typeBinary, ""),
		opt(23, "response_latency_ms", typeDouble, ""),
		opt(24, "lineage", stringMapType(24), "service versions that produced the response"),
		opt(27, "attributes", stringMapType(27), "captured attributes: device, region, ..."),
	)
}

func replaySchema() *iceberg.Schema {
	return identifiedSchema(
		req(fieldRunID, "run_id", typeString, "migration run the row belongs to"),
		req(fieldCorrelationID, "correlation_id", typeString, "joins production and replay rows"),
		req(fieldCapturedAt, "captured_at", typeTsTz, "when production served the original exchange"),
		opt(4, "replayed_at", typeTsTz, "when the replayed request was sent"),
		opt(5, "target", typeString, "scheme://host:port the request went to"),
		opt(6, "source_topic", typeString, "capture log topic (or file name)"),
		opt(7, "source_partition", typeInt, "capture log partition"),
		opt(8, "source_offset", typeLong, "capture log offset (or line number)"),
		opt(9, "request_method", typeString, "as sent, after rewrite"),
		opt(10, "request_path", typeString, "as sent, after rewrite"),
		opt(11, "request_query", typeString, "as sent, after rewrite"),
		opt(12, "request_headers", headersType(12), "as sent, after rewrite; secrets redacted"),
		opt(16, "request_body", typeBinary, "as sent, after rewrite"),
		opt(17, "response_status", typeInt, "null when the replay got no response"),
		opt(18, "response_headers", headersType(18), "secrets redacted"),
		opt(22, "response_body", typeBinary, ""),
		opt(23, "response_latency_ms", typeDouble, ""),
		opt(24, "error_kind", typeString, "timeout, refused, reset, tls, dns, other, body_too_large; null on a complete response"),
		opt(25, "error_message", typeString, ""),
		opt(26, "attempts", typeInt, "requests sent, retries included"),
		opt(27, "lineage", stringMapType(27), "service versions read from the replay response"),
		opt(30, "amplified_from", typeString, "extra copy of a replayed record (evacuation multipliers): the record's correlation ID; null for the record's own replay"),
	)
}

func deadLetterSchema() *iceberg.Schema {
	return identifiedSchema(
		req(fieldRunID, "run_id", typeString, "migration run the row belongs to"),
		req(fieldCorrelationID, "correlation_id", typeString, "derived from the source coordinates"),
		req(fieldCapturedAt, "captured_at", typeTsTz, "record timestamp, or received_at when unknown"),
		opt(4, "received_at", typeTsTz, "when replay read the record"),
		opt(5, "source_topic", typeString, "capture log topic (or file name)"),
		opt(6, "source_partition", typeInt, "capture log partition"),
		opt(7, "source_offset", typeLong, "capture log offset (or line number)"),
		opt(8, "key", typeBinary, "record key"),
		opt(9, "raw", typeBinary, "record value, exactly as read"),
		opt(10, "reason", typeString, "short stable reason, e.g. bad_json"),
		opt(11, "error", typeString, "the decode error"),
	)
}

var schemaFuncs = map[string]func() *iceberg.Schema{
	TableProduction:  productionSchema,
	TableReplay:      replaySchema,
	TableBaseline:    replaySchema,
	TableDeadLetters: deadLetterSchema,
}

// arrowSchemas are derived once from the Iceberg schemas, with field IDs in
// the field metadata (PARQUET:field_id) so iceberg-go maps columns by ID.
var arrowSchemas = deriveArrowSchemas(schemaFuncs)

// deriveArrowSchemas derives the Arrow schema of every table in funcs, once.
func deriveArrowSchemas(funcs map[string]func() *iceberg.Schema) map[string]*arrow.Schema {
	out := make(map[string]*arrow.Schema, len(funcs))
	for name, f := range funcs {
		sc, err := table.SchemaToArrowSchema(f(), nil, true, false)
		if err != nil {
			panic(fmt.Sprintf("schemas: derive the Arrow schema of %s: %v", name, err))
		}
		out[name] = sc
	}

	return out
}

// IcebergSchema returns the Iceberg schema of the named table, or nil for a
// name that is not one of the Table constants. Each call returns a new
// schema.
func IcebergSchema(name string) *iceberg.Schema {
	f, ok := schemaFuncs[name]
	if !ok {
		return nil
	}

	return f()
}

// ArrowSchema returns the Arrow schema of the named table, derived from its
// Iceberg schema (timestamptz is timestamp[us, UTC]; field IDs in the field
// metadata), or nil for an unknown name. The schema is shared: don't modify
// it.
func ArrowSchema(name string) *arrow.Schema {
	return arrowSchemas[name]
}

// PartitionSpec returns the partition spec of the named table:
// identity(run_id), day(captured_at). It returns nil for an unknown name.
func PartitionSpec(name string) *iceberg.PartitionSpec {
	sc := IcebergSchema(name)
	if sc == nil {
		return nil
	}
	return partitionSpec(name, sc, true)
}

// partitionSpec is identity(run_id), plus day(captured_at) when byDay.
// Partition field IDs start at 1000, as iceberg-go assigns them.
func partitionSpec(name string, sc *iceberg.Schema, byDay bool) *iceberg.PartitionSpec {
	runIDField, dayField := 1000, 1001
	opts := []iceberg.PartitionOption{
		iceberg.AddPartitionFieldBySourceID(fieldRunID, "run_id", iceberg.IdentityTransform{}, sc, &runIDField),
	}
	if byDay {
		opts = append(opts, iceberg.AddPartitionFieldBySourceID(fieldCapturedAt, "captured_at_day", iceberg.DayTransform{}, sc, &dayField))
	}
	spec, err := iceberg.NewPartitionSpecOpts(opts...)
	if err != nil {
		panic(fmt.Sprintf("schemas: partition spec of %s: %v", name, err))
	}

	return &spec
}

// SortOrder returns the sort order of the named table: correlation_id
// ascending. iceberg-go sorts each appended batch by it before writing. It
// returns table.UnsortedSortOrder for an unknown name.
func SortOrder(name string) table.SortOrder {
	if _, ok := schemaFuncs[name]; !ok {
		return table.UnsortedSortOrder
	}

	return ascendingBy(name, fieldCorrelationID)
}

// ascendingBy sorts a table by one column, ascending, nulls first.
func ascendingBy(name string, fieldID int) table.SortOrder {
	order, err := table.NewSortOrder(1, []table.SortField{{
		SourceIDs: []int{fieldID},
		Transform: iceberg.IdentityTransform{},
		Direction: table.SortASC,
		NullOrder: table.NullsFirst,
	}})
	if err != nil {
		panic(fmt.Sprintf("schemas: sort order of %s: %v", name, err))
	}

	return order
}

// distinctColumns are, per table, the top-level columns whose values are
// nearly all distinct from row to row (correlation IDs, offsets,
// timestamps, latencies) or large (bodies, raw records, error messages).
var distinctColumns = map[string][]string{
	TableProduction:           {"correlation_id", "captured_at", "source_offset", "request_body", "response_body", "response_latency_ms"},
	TableReplay:               {"correlation_id", "captured_at", "replayed_at", "source_offset", "request_body", "response_body", "response_latency_ms", "error_message", "amplified_from"},
	TableBaseline:             {"correlation_id", "captured_at", "replayed_at", "source_offset", "request_body", "response_body", "response_latency_ms", "error_message", "amplified_from"},
	TableDeadLetters:          {"correlation_id", "captured_at", "received_at", "source_offset", "key", "raw", "error"},
	TableComparisonMismatches: {"correlation_id", "patch", "production_body", "replay_body", "production_raw", "replay_raw"},
}

// DistinctColumns returns the top-level columns of the named table (one
// of replay's or a comparison table) whose
// values are nearly all distinct from row to row or large: a Parquet
// dictionary of them only costs time (the writer fills it, gives up at its
// size limit and falls back to plain encoding). The other columns repeat
// their values (methods, hosts, paths, header names and values, statuses,
// lineage, attributes) and compress well as dictionaries. It returns nil
// for an unknown name.
func DistinctColumns(name string) []string {
	return slices.Clone(distinctColumns[name])
}
