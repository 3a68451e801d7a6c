// Package admin owns replay's live-operations room: the admin HTTP server
// of a running replay and the client replay ctl uses to talk to it.
//
// Routes (server.go): /healthz (liveness), /readyz (the pipeline runs and
// the broker and catalog answer: Checks, readiness.go), /metrics
// (Prometheus), and behind the optional bearer token /v1/status (status.go),
// /v1/series (window.go), GET and PUT /v1/control (control.go); / is the
// live page (page.go, live.html). service starts one Server per process
// when admin.listen is set.
//
// It must not hold pipeline logic. It reads the run through the small
// interfaces in Deps (a Stats snapshot, the consumer lag, a readiness
// check) and changes exactly one thing, the live control, through
// Controller (Pipeline.UpdateControl, which validates and applies it). It
// learns about every finished replay, flush and commit as the pipeline's
// Observer (observer.go): per-endpoint latency histograms of both sides and
// responses by status class for /metrics, and a ring of one-second slots
// (window.go) for the last-minute numbers and the five-minute series of the
// status and the live page. Percentiles come from a fixed-size log-bucket
// sketch (2% relative accuracy), so memory stays bounded whatever the
// traffic: about 200 KB for the window plus 300 samples.
//
// Per-endpoint series are capped: the first 200 endpoints seen get their
// own label values, later ones are counted as "other" (observer.go).
//
// Metrics use github.com/prometheus/client_golang, the reference Prometheus
// client: it renders the exposition format (text and protobuf, content
// negotiation, compression), provides histograms and the Go runtime and
// process collectors, which would be error-prone to hand-write. Everything
// is registered in a private registry, so nothing leaks into or out of
// prometheus.DefaultRegisterer. The pipeline's counters are derived from one
// pipeline.Stats snapshot per scrape by a custom prometheus.Collector, so
// the pipeline's hot path keeps its plain atomic counters and knows nothing
// of Prometheus; only the Observer, which the pipeline calls through its
// own interface, observes histograms.
//
// The live page is one HTML file embedded in the binary, with its CSS and
// JavaScript inline and its charts drawn as inline SVG by a hundred lines
// of plain JavaScript. No framework or chart library: the page has six
// line and bar charts and a few tables to refresh every two seconds, which
// does not need one, and a framework would mean a build step, a bundled
// dependency to keep patched and code served to operators' browsers that
// nobody here reviews. The page asks for the token when the API answers 401
// and keeps it in sessionStorage; its Content-Security-Policy allows only
// its own script and style (by hash) and requests to the admin server.
//
// Client (client.go) is the other side of the API, for replay ctl; ParseRamp
// reads ctl's compact ramp syntax and WriteSummary renders a status for a
// terminal.
package admin
