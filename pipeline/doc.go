// Package pipeline is the replay runtime: it polls raw records from a
// Source, decodes them (undecodable → dead-letter row), selects the ones to
// replay (filter.go, then the sticky dial of dial.go), replays some more
// than once (evacuation multipliers, amplify.go: each copy a request of its
// own, the record complete when all are), rewrites them for the new cluster
// (rewrite.go), dispatches each request through a worker budget, the pacer
// (golang.org/x/time/rate) and the circuit breaker (breaker.go) to a
// bounded pool (sourcegraph/conc) with one HTTP client that retries
// connection failures (replayer.go), keeps the requests of one ordering key
// one at a time without blocking the intake (order.go), puts the results
// back in offset order per partition (sequencer.go), hands them to the Sink
// from one goroutine, flushes by policy and only then commits offsets to
// the Source (pipeline.go). Key expressions (keyexpr.go) name what the
// dial, the multipliers and the ordering key on. The dial percent and the
// multipliers are live (control.go): read for every record. Revoke and Assign (revoke.go) are the barrier a consumer
// group's rebalance callbacks call; production_guard.go refuses to replay
// into production; redact.go keeps secrets (headers, JSON body fields) out
// of every row.
//
// Memory is bounded by Limits.MaxInFlight: a record holds a slot from poll
// until the sink took it (its amplified copies share it: at most 100 rows
// per slot), and polling stops while no slot is free, or while the record
// at hand waits for a worker, the pacer or an open breaker; a record
// queued behind its ordering key holds its slot but not the intake.
//
// Offsets never pass a record that was not written: results are released
// to the sink as a contiguous prefix of each partition, one Result per
// record with all its replay rows, and a record that will not be written
// (revoked before dispatch, abandoned at shutdown, some of its copies never
// sent) is dropped together with every record behind it in its partition,
// so the source delivers them again.
//
// It owns no I/O but the HTTP requests to the target (and the DNS lookups
// of the production check in New): it does not know Kafka, files or
// Iceberg, only the interfaces in interfaces.go. conc was chosen for pools
// that own their goroutines and bound them; x/time/rate for a token bucket
// whose rate can change live; github.com/ohler55/ojg/jp for JSONPath,
// since it can replace the values a path selects (Modify) without adding
// missing ones, including recursive descent ($..token);
// github.com/cespare/xxhash/v2 (XXH64, already in the module graph through
// prometheus) for the dial's and the multipliers' hashes, which must be
// the same in every process and version, as hash/maphash's are not.
package pipeline
