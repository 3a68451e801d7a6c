package admin

import (
	"fmt"
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
	breakerStates   = []string{pipeline.BreakerClosed, pipeline.BreakerOpen, pipeline.BreakerHalfOpen}
	controlModes    = []string{pipeline.ModeRate, pipeline.ModePace, pipeline.ModeRamp, pipeline.ModeMax}
	guardrailStates = []string{pipeline.GuardrailOK, pipeline.GuardrailTripped}
)

// statsCollector turns one pipeline.Stats snapshot per scrape, and the
// control status and consumer lag when the server has them, into replay_*
// metrics. Counters are the pipeline's own monotonic counters, so a restart
// resets them as Prometheus expects.
type statsCollector struct {
	src       StatsSource
	control   Controller // nil: no control metrics
	lag       LagSource  // nil: no lag metrics
	endpoints *endpointLabels

	consumed, decoded, deadLettered, filtered    *prometheus.Desc
	dialedOut, amplified, keyQueued              *prometheus.Desc
	replayed, replayErrors, retries, rowsWritten *prometheus.Desc
	flushes, commits, commitErrors, inFlight     *prometheus.Desc
	breakerState, breakerOpens                   *prometheus.Desc
	deadLetters, duplicateIDs                    *prometheus.Desc

	effectiveRate, effectivePace, dialPercent, paused, mode, rampStage *prometheus.Desc
	guardrailState, guardrailTrips, guardrailErrorRate, guardrailP99   *prometheus.Desc
	liveCompared, consumerLag, partitionsAssigned                      *prometheus.Desc
}

var _ prometheus.Collector = (*statsCollector)(nil)

func newStatsCollector(src StatsSource, control Controller, lag LagSource, endpoints *endpointLabels) *statsCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &statsCollector{
		src:          src,
		control:      control,
		lag:          lag,
		endpoints:    endpoints,
		consumed:     d("replay_records_consumed_total", "Records polled from the source, ignored ones included."),
		decoded:      d("replay_records_decoded_total", "Records decoded into an exchange."),
		deadLettered: d("replay_records_dead_lettered_total", "Records that could not be decoded (written to dead_letters)."),
		filtered:     d("replay_records_filtered_total", "Decoded records not selected for replay."),
		dialedOut:    d("replay_records_dialed_out_total", "Selected records the sticky dial left out (not replayed)."),
		amplified:    d("replay_amplified_total", "Replays of amplified copies (<id>#2, …) of evacuation multipliers."),
		keyQueued:    d("replay_key_queued_total", "Requests queued behind an earlier request with the same ordering key."),
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
		deadLetters:  d("replay_dead_letters_total", "Records written to dead_letters, by reason (a fixed set: bad_json, missing_request, invalid_field, bad_body_encoding, body_too_large, decode_error).", "reason"),
		duplicateIDs: d("replay_duplicate_ids_total", "Decoded records whose correlation ID a distinct earlier record within decode.duplicate_window carried; replay compare counts every one."),

		effectiveRate:      d("replay_control_effective_rate", "Replay rate requested now, in requests per second (rate mode or a rate ramp stage); 0 when unlimited or pacing by capture time."),
		effectivePace:      d("replay_control_effective_pace", "Multiple of the captured pace in force now (pace mode or a pace ramp stage); 0 otherwise."),
		dialPercent:        d("replay_control_dial_percent", "Share of dial keys replayed, 0 to 100."),
		paused:             d("replay_control_paused", "1 while replaying is paused (by an operator or a guardrail), else 0."),
		mode:               d("replay_control_mode", "Pacing mode: 1 for the current mode, 0 for the others.", "mode"),
		rampStage:          d("replay_control_ramp_stage", "Index of the current ramp stage (ramp mode)."),
		guardrailState:     d("replay_guardrail_state", "Guardrail state: 1 for the current state (ok or tripped), 0 for the other.", "state"),
		guardrailTrips:     d("replay_guardrail_trips_total", "Times the guardrail tripped (stepped a ramp back or paused)."),
		guardrailErrorRate: d("replay_guardrail_error_rate", "The candidate's error rate over the guardrail window."),
		guardrailP99:       d("replay_guardrail_p99_seconds", "The candidate's p99 latency over the guardrail window."),
		liveCompared:       d("replay_live_compared_total", "Pairs compared live, by endpoint and verdict (match, mismatch, lineage_mismatch). Endpoints beyond the first 200 are counted as \"other\".", "endpoint", "verdict"),
		consumerLag:        d("replay_consumer_lag_records", "Records of a partition assigned to this member not yet written and committed: its end offset minus the group's committed offset (minus the log start offset when nothing is committed), asked of the brokers every source.kafka.lag_interval.", "topic", "partition"),
		partitionsAssigned: d("replay_consumer_partitions_assigned", "Partitions assigned to this member of the consumer group."),
	}
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.consumed, c.decoded, c.deadLettered, c.filtered, c.dialedOut, c.amplified, c.keyQueued, c.replayed, c.replayErrors, c.retries,
		c.rowsWritten, c.flushes, c.commits, c.commitErrors, c.inFlight, c.breakerState, c.breakerOpens, c.deadLetters, c.duplicateIDs,
		c.effectiveRate, c.effectivePace, c.dialPercent, c.paused, c.mode, c.rampStage,
		c.guardrailState, c.guardrailTrips, c.guardrailErrorRate, c.guardrailP99, c.liveCompared, c.consumerLag, c.partitionsAssigned,
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
	// Every reason, zero included, so an alert sees the series before the
	// first dead letter; the set is fixed (pipeline.DeadLetterReasons).
	for _, reason := range pipeline.DeadLetterReasons() {
		counter(c.deadLetters, s.DeadLetters[reason], reason)
	}
	counter(c.duplicateIDs, s.DuplicateIDs)
	counter(c.dialedOut, s.DialedOut)
	counter(c.amplified, s.Amplified)
	counter(c.keyQueued, s.KeyQueued)
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
	c.collectLive(s, counter)
	if c.control != nil {
		c.collectControl(c.control.Control(), gauge, counter)
	}
	if c.lag != nil {
		ls := c.lag.Lag()
		for _, l := range ls {
			gauge(c.consumerLag, float64(l.Lag), l.Topic, fmt.Sprint(l.Partition))
		}
		gauge(c.partitionsAssigned, float64(len(ls)))
	}
}

// collectLive exports the live comparison's counts per endpoint label,
// summing the endpoints beyond the cap into "other".
func (c *statsCollector) collectLive(s pipeline.Stats, counter func(*prometheus.Desc, int64, ...string)) {
	byLabel := map[string]pipeline.LiveCounts{}
	for endpoint, lc := range s.Live {
		l := c.endpoints.label(endpoint)
		sum := byLabel[l]
		sum.Matched += lc.Matched
		sum.Mismatched += lc.Mismatched
		sum.Lineage += lc.Lineage
		byLabel[l] = sum
	}
	for l, lc := range byLabel {
		counter(c.liveCompared, lc.Matched, l, pipeline.VerdictMatch)
		counter(c.liveCompared, lc.Mismatched, l, pipeline.VerdictMismatch)
		counter(c.liveCompared, lc.Lineage, l, pipeline.VerdictLineage)
	}
}

func (c *statsCollector) collectControl(st pipeline.ControlStatus, gauge func(*prometheus.Desc, float64, ...string),
	counter func(*prometheus.Desc, int64, ...string)) {
	oneOf := func(d *prometheus.Desc, values []string, current string) {
		for _, v := range values {
			gauge(d, boolFloat(v == current), v)
		}
		if !slices.Contains(values, current) && current != "" {
			gauge(d, 1, current)
		}
	}
	gauge(c.effectiveRate, st.EffectiveRate)
	gauge(c.effectivePace, st.EffectivePace)
	gauge(c.dialPercent, st.DialPercent)
	gauge(c.paused, boolFloat(st.Paused || st.PausedBy != ""))
	oneOf(c.mode, controlModes, st.Mode)
	gauge(c.rampStage, float64(st.RampStage))
	state := st.Guardrail.State
	if state == "" {
		state = pipeline.GuardrailOK
	}
	oneOf(c.guardrailState, guardrailStates, state)
	counter(c.guardrailTrips, st.Guardrail.Trips)
	gauge(c.guardrailErrorRate, st.Guardrail.ErrorRate)
	gauge(c.guardrailP99, st.Guardrail.P99MS/1000)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// newRegistry builds the private registry /metrics serves.
func newRegistry(stats *statsCollector, obs *Observer) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		stats,
	)
	reg.MustRegister(obs.collectors()...)
	return reg
}
