// Package schemas owns the shapes of replay's data: the capture envelope read
// from the log (Go types here, JSON Schema in envelope.schema.json), the raw
// record a source hands to the pipeline, the rows written for each table, and
// the Iceberg and Arrow schemas of those tables, defined once and used by the
// sinks and by compare.
//
// It must not do I/O beyond decoding bytes it is given: no Kafka, no HTTP, no
// catalog access. Everything else in replay imports it; it imports only the
// standard library, arrow-go and iceberg-go.
package schemas
