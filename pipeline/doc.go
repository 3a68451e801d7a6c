// Package pipeline is the replay runtime: it polls raw records from a
// Source, decodes them (undecodable → dead-letter row), selects the ones to
// replay (filter.go), rewrites them for the new cluster (rewrite.go), paces
// them (golang.org/x/time/rate), sends them through a bounded worker pool
// (sourcegraph/conc) with one HTTP client (replayer.go), puts the results
// back in offset order per partition (sequencer.go), hands them to the Sink
// from one goroutine, flushes by policy and only then commits offsets to the
// Source (pipeline.go).
//
// Memory is bounded by Limits.MaxInFlight: a record holds a slot from poll
// until the sink took it, and polling stops while no slot is free.
//
// It owns no I/O but the HTTP requests to the target: it does not know
// Kafka, files or Iceberg, only the Source and Sink interfaces in
// interfaces.go. conc was chosen for pools that own their goroutines and
// bound them; x/time/rate for a token bucket whose rate can change live.
package pipeline
