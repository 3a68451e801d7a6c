// Package pipeline is the replay runtime: it polls raw records from a
// Source, decodes them (undecodable → dead-letter row), selects the ones to
// replay (filter.go), rewrites them for the new cluster (rewrite.go),
// dispatches each through a worker budget, the pacer (pacer.go: rate,
// pace, ramp or max, paused by an operator or the guardrails of
// guardrail.go) and the circuit breaker (breaker.go) to a
// bounded pool (sourcegraph/conc) with one HTTP client that retries
// connection failures (replayer.go), puts the results back in offset order
// per partition (sequencer.go), hands them to the Sink from one goroutine,
// flushes by policy and only then commits offsets to the Source
// (pipeline.go). The live control (control.go: Control, UpdateControl,
// the Observer of finished replays) is what the admin API reads and
// changes; every change is validated as a whole and logged with who made
// it. Revoke and Assign (revoke.go) are the barrier a consumer
// group's rebalance callbacks call; production_guard.go refuses to replay
// into production; redact.go keeps secrets (headers, JSON body fields) out
// of every row. With replay.baseline set, baseline.go sends each selected
// record to a second copy of the old version too, from the same worker and
// at the same time, with a client of its own; the result then carries a
// baseline row as well.
//
// Memory is bounded by Limits.MaxInFlight: a record holds a slot from poll
// until the sink took it, and polling stops while no slot is free, or
// while the record at hand waits for a worker, the pacer or an open
// breaker.
//
// Offsets never pass a record that was not written: results are released
// to the sink as a contiguous prefix of each partition, and a record that
// will not be written (revoked before dispatch, abandoned at shutdown) is
// dropped together with every record behind it in its partition, so the
// source delivers them again.
//
// It owns no I/O but the HTTP requests to the targets (and the DNS lookups
// of the production check in New): it does not know Kafka, files or
// Iceberg, only the interfaces in interfaces.go. conc was chosen for pools
// that own their goroutines and bound them; the rate pacer is a few lines
// of absolute schedule rather than x/time/rate's token bucket, which loses
// every late timer wake-up for good at small bursts (measured in
// BenchmarkRateAccuracy); github.com/ohler55/ojg/jp for JSONPath,
// since it can replace the values a path selects (Modify) without adding
// missing ones, including recursive descent ($..token).
package pipeline
