// Package pipeline is the replay runtime: it polls raw records from a
// Source, decodes them (undecodable → dead-letter row), selects the ones to
// replay (filter.go, then the sticky dial of dial.go), replays some more
// than once (evacuation multipliers, amplify.go: each copy a request of its
// own, the record complete when all are), rewrites them for the new cluster
// (rewrite.go), dispatches each request through a worker budget, the pacer
// (pacer.go: rate, pace, ramp or max, paused by an operator or the
// guardrails of guardrail.go) and the circuit breaker (breaker.go) to a
// bounded pool (sourcegraph/conc) with one HTTP client that retries
// connection failures (replayer.go; baseline.go sends the record's own
// request to the baseline target too), keeps the requests of one ordering
// key one at a time without blocking the intake (order.go), puts the
// results back in offset order per partition (sequencer.go), hands them to
// the Sink from one goroutine, flushes by policy and only then commits
// offsets to the Source (pipeline.go). Key expressions (keyexpr.go) name
// what the dial, the multipliers and the ordering key on. The live control
// (control.go: Control, UpdateControl, the Observer of finished replays) is
// what the admin API reads and changes; the dial percent and the
// multipliers are read for every record, and every change is validated as
// a whole and logged with who made it. Revoke and Assign (revoke.go) are the barrier a consumer
// group's rebalance callbacks call; production_guard.go refuses to replay
// into production; redact.go keeps secrets (headers, JSON body fields) out
// of every row. With replay.baseline set, baseline.go sends each selected
// record to a second copy of the old version too, from the same worker and
// at the same time, with a client of its own; the result then carries a
// baseline row as well.
//
// Live comparison (live.go, on with LiveCompare.Enabled): each worker,
// after a replay, classifies the pair as batch compare will (lineage
// mismatch by normalize.LineageDiffers, else normalize.Compare of the
// responses as they are written, redacted) with the Normalizer given to
// SetNormalizer, and counts the verdict per endpoint in lock-free
// counters (Stats.Live), for a sample of the pairs and up to
// LiveCompare.MaxEndpoints endpoints. The Observer (control.go) gets the
// verdict with each finished replay. The pipeline imports normalize for
// this and for endpoint names; it must not import compare.
//
// Undecodable records are reported (deadletters.go): counted by reason and
// by shape (schemas.SniffShape), logged at the first and then at most once
// per Decode.DeadLetterLogInterval, summarized when Run ends, and Run
// fails with ErrDeadLetters, naming the likely format, when they are over
// Decode.MaxDeadLetterRatio. Correlation IDs seen on two distinct records
// are noticed within the last Decode.DuplicateWindow IDs (duplicates.go),
// counted in Stats.DuplicateIDs and logged with both coordinates.
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
// Its goroutines carry the pprof label "stage" (stages.go: poll, decode,
// rewrite, http, append, flush), so a CPU profile of a running replay,
// or replay-bench's, splits the CPU by stage.
//
// It owns no I/O but the HTTP requests to the targets (and the DNS lookups
// of the production check in New): it does not know Kafka, files or
// Iceberg, only the interfaces in interfaces.go. conc was chosen for pools
// that own their goroutines and bound them; the rate pacer is a few lines
// of absolute schedule rather than x/time/rate's token bucket, which loses
// every late timer wake-up for good at small bursts (measured in
// BenchmarkRateAccuracy); github.com/ohler55/ojg/jp for JSONPath,
// since it can replace the values a path selects (Modify) without adding
// missing ones, including recursive descent ($..token);
// github.com/cespare/xxhash/v2 (XXH64, already in the module graph through
// prometheus) for the dial's and the multipliers' hashes, which must be
// the same in every process and version, as hash/maphash's are not.
package pipeline
