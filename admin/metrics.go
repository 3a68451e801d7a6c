package admin

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/replaykit/replay/pipeline"
	"github.com/replaykit/replay/schemas"
)

// replayErrorKinds and breakerStates are always exported, zero included, so
// dashboards and alerts see the series before the first error or state
// change.
var (
	replayErrorKinds = []string{
		schemas.ErrorTimeout, schemas.ErrorRefused, schemas.ErrorReset, schemas.ErrorTLS,
		schemas.ErrorDNS, schemas.ErrorOther, schemas.ErrorBodyTooLarge,
	}
	breakerStates = []string{pipeline.BreakerClosed, pipeline.BreakerOpen, pipeline.BreakerHalfOpen}
)

// statsCollector turns one pipeline.Stats snapshot per scrape into replay_*
// metrics. Counters are the pipeline's own monotonic counters, so a restart
// resets them as Prometheus expects.
type statsCollector struct {
	src StatsSource

	consumed, decoded, deadLettered, filtered    *prometheus.Desc
	replayed, replayErrors, retries, rowsWritten *prometheus.Desc
	flushes, commits, commitErrors, inFlight     *prometheus.Desc
	breakerState, breakerOpens                   *prometheus.Desc
}

var _ prometheus.Collector = (*statsCollector)(nil)

func newStatsCollector(src StatsSource) *statsCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &statsCollector{
		src:          src,
		consumed:     d("replay_records_consumed_total", "Records polled from the source, ignored ones included."),
		decoded:      d("replay_records_decoded_total", "Records decoded into an exchange."),
		deadLettered: d("replay_records_dead_lettered_total", "Records that could not be decoded (written to dead_letters)."),
		filtered:     d("replay_records_filtered_total", "Decoded records not selected for replay."),
		replayed:     d("replay_replayed_total", "Replay rows produced, failed replays included."),
		replayErrors: d("replay_replay_errors_total", "Replay rows with an error, by error kind.", "kind"),
		retries:      d("replay_retries_total", "Requests sent again after a connection failure."),
		rowsWritten:  d("replay_rows_written_total", "Rows in batches the sink flushed successfully, by table.", "table"),
		flushes:      d("replay_flushes_total", "Successful sink flushes."),
		commits:      d("replay_commits_total", "Successful source offset commits."),
		commitErrors: d("replay_commit_errors_total", "Failed source offset commits (retried with the next flush)."),
		inFlight:     d("replay_in_flight", "Records holding an in-flight slot now."),
		breakerState: d("replay_breaker_state", "Circuit breaker state: 1 for the current state, 0 for the others.", "state"),
		breakerOpens: d("replay_breaker_opens_total", "Times the circuit breaker opened."),
	}
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.consumed, c.decoded, c.deadLettered, c.filtered, c.replayed, c.replayErrors, c.retries,
		c.rowsWritten, c.flushes, c.commits, c.commitErrors, c.inFlight, c.breakerState, c.breakerOpens,
	} {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(c.consumed, s.Consumed)
	counter(c.decoded, s.Decoded)
	counter(c.deadLettered, s.DeadLettered)
	counter(c.filtered, s.Filtered)
	counter(c.replayed, s.Replayed)
	for _, kind := range replayErrorKinds {
		counter(c.replayErrors, s.ReplayErrors[kind], kind)
	}
	for kind, n := range s.ReplayErrors {
		if !slices.Contains(replayErrorKinds, kind) { // a kind added to pipeline later
			counter(c.replayErrors, n, kind)
		}
	}
	counter(c.retries, s.Retries)
	counter(c.rowsWritten, s.RowsWritten.Production, schemas.TableProduction)
	counter(c.rowsWritten, s.RowsWritten.Replay, schemas.TableReplay)
	counter(c.rowsWritten, s.RowsWritten.Baseline, schemas.TableBaseline)
	counter(c.rowsWritten, s.RowsWritten.DeadLetter, schemas.TableDeadLetters)
	counter(c.flushes, s.Flushes)
	counter(c.commits, s.Commits)
	counter(c.commitErrors, s.CommitErrors)
	gauge(c.inFlight, float64(s.InFlight))
	current := s.Breaker
	if current == "" {
		current = pipeline.BreakerClosed
	}
	for _, state := range breakerStates {
		v := 0.0
		if state == current {
			v = 1
		}
		gauge(c.breakerState, v, state)
	}
	if !slices.Contains(breakerStates, current) {
		gauge(c.breakerState, 1, current)
	}
	counter(c.breakerOpens, s.BreakerOpens)
}

// newRegistry builds the private registry /metrics serves.
func newRegistry(src StatsSource) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newStatsCollector(src),
	)
	return reg
}
