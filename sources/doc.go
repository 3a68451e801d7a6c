// Package sources owns reading raw capture records: a Kafka consumer group
// (Kafka) for deployments and newline-delimited files (File) for local runs
// and tests. A source hands out schemas.Record values with their coordinates
// (topic, partition, offset) in offset order per partition, and takes back the
// offsets the pipeline has made durable.
//
// It must not decode, filter or transform records, and it must not decide
// what is durable: it commits exactly the offsets it is given, after the
// sinks have committed the rows they cover. It imports only schemas; the
// Source interface it satisfies lives with its consumer in pipeline.
//
// The Kafka source is built on franz-go (github.com/twmb/franz-go): a pure Go
// client with no cgo, an explicit per-partition consumer-group API (manual
// synchronous commits, assignment callbacks, per-partition pause and offset
// adjustment) on which exactly-once resume from Iceberg can be layered, an
// admin client (kadm) for end offsets and group offsets, and an in-process
// Kafka-protocol broker (kfake) that the tests and the demo run against over
// real TCP.
//
// Files:
//
//	kafka_source.go  KafkaConfig, NewKafka: consumer group, stop-at-end snapshot, commits,
//	                 start offsets from the sink on assignment (SetResume), hand-back of
//	                 revoked partitions (SetRevoke); ProbeKafka: the start checks
//	                 without joining the group
//	kafka_lag.go     Kafka.Lag: per-partition lag from the fetches' high watermarks, the
//	                 polled position and the committed offsets
//	file_source.go   FileConfig, NewFile: NDJSON lines as records, from the line the
//	                 tables end at (FileStartAt)
//	ping.go          Ping for readiness checks: a broker answers (Kafka); always (File)
package sources
