// Package schemas owns the shapes of replay's data: the capture envelope read
// from the log (Go types here, JSON Schema in envelope.schema.json), the raw
// record a source hands to the pipeline, the rows written for each table, and
// the Iceberg and Arrow schemas of those tables, defined once and used by the
// sinks and by compare.
//
// It must not do I/O beyond decoding bytes it is given: no Kafka, no HTTP, no
// catalog access. Everything else in replay imports it; it imports only the
// standard library, arrow-go, iceberg-go, google/uuid (derived correlation
// IDs) and github.com/go-json-experiment/json: the envelope decoder uses its
// v1 API, encoding/json's semantics in one pass over the bytes (the
// prototype of encoding/json/v2, by its authors; when v2 leaves
// GOEXPERIMENT the import moves to the standard library). It decodes a
// capture in two thirds of encoding/json's time with half the
// allocations (BenchmarkDecode); FuzzDecodeAgreesWithEncodingJSON holds
// it to encoding/json's results.
package schemas
