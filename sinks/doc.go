// Package sinks stores what the pipeline produces. It owns the Iceberg sink:
// the catalog connection (catalog.go), the configuration of catalog,
// warehouse, namespace, flush bounds and Parquet settings (codec, level,
// row group size, dictionary columns: table properties set on every
// table, changed ones updated on open), the creation of replay's tables,
// the batching of rows into Arrow records per table, the commits, and the
// Kafka offsets each commit records in its snapshot summary
// (replay.group, replay.run-id, replay.commit-id, replay.writer,
// replay.offset.<topic>.<partition>) so that a
// restart can resume exactly where the tables end (CommittedOffsets). It also
// has the read helpers the demo, the tests and compare use (ScanRun,
// CountRows; ScanRunBatches and RunSize in iceberg_read.go; SnapshotSummaries
// in iceberg_snapshots.go), and
// ReplaceRun (iceberg_replace.go), which replaces one run's rows of a
// comparison table in one overwrite transaction. Ping (ping.go) checks the
// catalog and the warehouse answer, for readiness. OpenIcebergReadOnly
// (iceberg_readonly.go) opens an existing catalog, namespace and tables for
// a command that reads them (compare), creating nothing: a mistyped catalog
// path, namespace or table is an error wrapping ErrNotFound that names it,
// never a new empty catalog.
//
// It must not import pipeline or sources (data flows one way: the pipeline
// calls the sink through its own Sink interface, asserted here at compile
// time), must not decide when to flush (the pipeline does, from the bounds in
// FlushConfig), must not acknowledge anything to Kafka, and must not define
// table schemas: those live once in package schemas.
//
// Exactly once into every table: each flush commits one snapshot to each of
// replay's tables (production_responses, replay_responses,
// baseline_responses, dead_letters), an empty one for a table that got no
// rows, so their offsets advance together. baseline_responses takes the
// rows a baseline target answered (replay.baseline) and is committed like
// the others even while it gets none. Resume reads the offsets back when
// partitions are assigned (the Kafka source restarts each partition at the
// lowest of them) and Add then drops rows a table already holds;
// HoldsReplay lets the pipeline skip requests whose replay row (and, with
// WithBaseline, baseline row) is already stored. Every table
// commit is fenced and retried by the sink (sink.commit_retry): reload the
// table, re-read its offsets, drop buffered rows another writer (a replica
// that took the partition over, or an earlier attempt whose outcome was
// unknown) already committed, and append the rest requiring that the main
// branch has not moved since the read. The data files are written once per
// flush and committed again as they are by a retry. Rows whose commit gave
// up stay buffered for the next flush.
//
// A flush never returns offsets for rows its table does not hold: before a
// commit it checks that the data files written hold exactly the rows
// buffered and lie under the table's location, and after it reads the
// committed snapshot's added-records back; a mismatch is ErrRowsNotStored,
// not retried. Names that reach the warehouse (the run ID of every row, the
// namespace's levels, the group) are checked against schemas.NamePattern in
// IcebergConfig.Validate, OpenIceberg and Add, as config.Validate checks
// them before a run. Every snapshot the sink commits (rows, empty appends,
// claims) carries replay.group, replay.run-id (IcebergConfig.RunID for
// snapshots without rows), replay.commit-id and replay.writer.
//
// Zombies are fenced through the same optimistic concurrency: Resume claims
// the partitions it is given in every table (an empty snapshot recording
// replay.owner.<topic>.<partition> = this process's replay.writer, committed
// only if the table did not move since the offsets were read), and a commit
// that finds another writer's claim on a partition drops its rows and leaves
// its offset out. A replica paused past its session timeout whose
// partitions moved on therefore writes nothing for them when it wakes up,
// whether it flushes on its timer or when its client learns they were lost.
//
// One run, one group: BindRun (iceberg_run.go) records, at start, the group
// that writes a run id in the table property replay.run.<run-id>.group of
// production_responses (set with an empty snapshot, on the condition that
// the table did not move, so two groups racing for one run cannot both
// win), and refuses any other group with ErrRunOfAnotherGroup naming the
// first. A table property survives snapshot expiry; runs written before
// bindings existed are recognized by their snapshot summaries while those
// are kept. Two groups under one run id would each write every row (the
// offsets are kept per group). A capture file's group is "file:" and the
// run id (set by the service), so a file run resumes only itself, and
// ResetRun starts one over: in one snapshot per table, every row of the run
// is deleted and its offsets are set back to 0.
//
// Limits: the offsets live in snapshot summaries, so expiring snapshots must
// keep, per partition and group, the newest snapshot that records it (every
// flush records the partitions it covers in every table, so keeping a
// few of the newest flushes of every replica is enough); a partition whose
// offsets were expired from a table is read again from the consumer group's
// committed offset and its rows may be written twice.
//
// A warehouse written by a version without baseline_responses gets the
// table on the next open. Until a flush has recorded a partition in it,
// Resume knows that partition from no table-wide offset and the source
// starts it at the consumer group's committed offset (never ahead of the
// tables); the other tables drop the rows they already hold.
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
//     It runs in WAL mode with a busy timeout.
//   - github.com/jackc/pgx/v5 (its database/sql driver, stdlib, registered
//     as "pgx"): the PostgreSQL catalog replicas share. A postgres:// or
//     postgresql:// catalog.uri selects it and iceberg-go's postgres
//     dialect (bun's pgdialect) by itself. Chosen over lib/pq, which is in
//     maintenance mode: pgx is actively developed, pure Go, parses both URL
//     and key=value DSNs and reads the libpq environment (PGPASSWORD,
//     PGSSLMODE, ~/.pgpass) as operators expect. Another database needs its
//     driver linked into the binary and catalog.properties sql.driver and
//     sql.dialect set.
//
// S3 warehouses go through iceberg-go's gocloud FileIO; sink.s3 (S3Config)
// becomes its s3.* properties, and empty fields leave the AWS SDK's
// standard credential and region sources in charge. Messages about an
// unreachable catalog or warehouse name the URI (password redacted) or the
// S3 endpoint tried, and the fields to check.
package sinks
