// Package pipeline is the replay runtime: it polls raw records from a
// Source, decodes them (undecodable → dead-letter row), selects the ones to
// replay (filter.go), rewrites them for the new cluster (rewrite.go),
// dispatches each through a worker budget, the pacer
// (golang.org/x/time/rate) and the circuit breaker (breaker.go) to a
// bounded pool (sourcegraph/conc) with one HTTP client that retries
// connection failures (replayer.go), puts the results back in offset order
// per partition (sequencer.go), hands them to the Sink from one goroutine,
// flushes by policy and only then commits offsets to the Source
// (pipeline.go). Revoke and Assign (revoke.go) are the barrier a consumer
// group's rebalance callbacks call; production_guard.go refuses to replay
// into production; redact.go keeps secrets (headers, JSON body fields) out
// of every row.
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
// It owns no I/O but the HTTP requests to the target (and the DNS lookups
// of the production check in New): it does not know Kafka, files or
// Iceberg, only the interfaces in interfaces.go. conc was chosen for pools
// that own their goroutines and bound them; x/time/rate for a token bucket
// whose rate can change live; github.com/ohler55/ojg/jp for JSONPath,
// since it can replace the values a path selects (Modify) without adding
// missing ones, including recursive descent ($..token).
package pipeline
