// Package sinks stores what the pipeline produces. It owns the Iceberg sink:
// the catalog connection (catalog.go), the configuration of catalog,
// warehouse, namespace, flush bounds and compression, the creation of
// replay's tables, the batching of rows into Arrow records per table, the
// commits, and the Kafka offsets each commit records in its snapshot summary
// (replay.group, replay.run-id, replay.offset.<topic>.<partition>) so that a
// restart can resume exactly where the tables end (CommittedOffsets). It also
// has the read helpers the demo, the tests and compare use (ScanRun,
// CountRows).
//
// It must not import pipeline or sources (data flows one way: the pipeline
// calls the sink through its own Sink interface, asserted here at compile
// time), must not decide when to flush (the pipeline does, from the bounds in
// FlushConfig), must not acknowledge anything to Kafka, and must not define
// table schemas: those live once in package schemas.
//
// A flush commits each table separately; iceberg-go retries a commit that
// loses an optimistic-concurrency race with another replica. Rows whose
// commit failed stay buffered for the next flush, and a commit whose outcome
// is unknown is found again by its replay.commit-id before anything is
// rewritten.
//
// Dependencies, chosen:
//
//   - github.com/apache/iceberg-go: the Apache project's Go implementation;
//     it writes partitioned, sorted Parquet data files from Arrow records,
//     commits snapshots with summary properties, scans with row filters, and
//     speaks every catalog replay supports (SQL, REST, Glue, Hive, Hadoop)
//     and S3. It builds on arrow-go/v18, which replay uses for its rows.
//   - modernc.org/sqlite: a pure Go SQLite, so the embedded default (a SQL
//     catalog in ./replay-data/catalog.db) needs neither cgo nor a server.
//     It runs in WAL mode with a busy timeout. Another database needs its
//     driver linked into the binary and catalog.properties sql.driver and
//     sql.dialect set.
package sinks
