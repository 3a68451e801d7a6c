// Package admin owns replay's admin HTTP surface, the first slice of the
// live-operations room: liveness (/healthz), readiness (/readyz), Prometheus
// metrics (/metrics) and a JSON status (/v1/status, behind an optional bearer
// token). service starts one Server per process when admin.listen is set.
//
// It must not hold pipeline logic: it reads what it shows through the small
// interfaces in Deps (a Stats snapshot, a readiness check) and never changes
// the pipeline's state. Later slices that act on the run (e.g. SetRate) call
// exported pipeline methods through interfaces declared here, at the consumer.
//
// Metrics use github.com/prometheus/client_golang, the reference Prometheus
// client: it renders the exposition format (text and protobuf, content
// negotiation, compression) and provides the Go runtime and process
// collectors, which would be error-prone to hand-write. Everything is
// registered in a private registry, so nothing leaks into or out of
// prometheus.DefaultRegisterer. Replay's own metrics are derived from one
// pipeline.Stats snapshot per scrape by a custom prometheus.Collector, so the
// pipeline's hot path keeps its plain atomic counters and knows nothing of
// Prometheus.
package admin
