package admin

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/replaykit/replay/pipeline"
)

// maxEndpoints caps the distinct endpoint label values of the per-endpoint
// metrics: the first maxEndpoints endpoints seen get their own series, every
// later one is counted under otherEndpoint. Endpoints are path templates
// ("GET /users/{id}"), but a service with free-form paths could still make
// them unbounded.
const (
	maxEndpoints  = 200
	otherEndpoint = "other"
)

// Histogram buckets, in seconds.
var (
	latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	flushBuckets   = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	commitBuckets  = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
)

// statusClasses are the values of the status_class label: the response's
// status class, or "error" for a replay without a response.
var statusClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx", "error"}

// Observer is told about every finished replay, flush and commit (it is a
// pipeline.Observer and a pipeline.FlushObserver: set it with
// Pipeline.SetObserver before Run). It feeds the per-endpoint latency
// histograms and response counters of /metrics, the flush and commit
// duration histograms, and the last-minute numbers and per-second series of
// /v1/status, /v1/series and the live page. Safe for concurrent use; an
// observation costs a few map lookups under short locks.
type Observer struct {
	now       func() time.Time
	endpoints *endpointLabels

	latency   *prometheus.HistogramVec // side, endpoint
	responses *prometheus.CounterVec   // endpoint, status_class
	flush     prometheus.Histogram
	commit    *prometheus.HistogramVec // result

	window *window
}

var (
	_ pipeline.Observer      = (*Observer)(nil)
	_ pipeline.FlushObserver = (*Observer)(nil)
)

// newObserver builds an Observer reading the time from now.
func newObserver(now func() time.Time, endpoints *endpointLabels) *Observer {
	return &Observer{
		now:       now,
		endpoints: endpoints,
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "replay_latency_seconds",
			Help:    "Latency of replayed exchanges by side: replay (the candidate's response time) and production (the captured latency of the same exchanges). Endpoints beyond the first 200 are counted as \"other\".",
			Buckets: latencyBuckets,
		}, []string{"side", "endpoint"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replay_replayed_by_status_total",
			Help: "Replays by endpoint and status class of the candidate's response (1xx to 5xx, or error when there was none). Endpoints beyond the first 200 are counted as \"other\".",
		}, []string{"endpoint", "status_class"}),
		flush: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "replay_flush_duration_seconds",
			Help:    "Duration of successful sink flushes (one Iceberg commit per table).",
			Buckets: flushBuckets,
		}),
		commit: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "replay_commit_duration_seconds",
			Help:    "Duration of source offset commits, by result (ok or error).",
			Buckets: commitBuckets,
		}, []string{"result"}),
		window: newWindow(now()),
	}
}

func (o *Observer) collectors() []prometheus.Collector {
	return []prometheus.Collector{o.latency, o.responses, o.flush, o.commit}
}

// ObserveReplay records one finished replay.
func (o *Observer) ObserveReplay(ob pipeline.Observation) {
	m := o.endpoints.metrics(ob.Endpoint, o)
	var c counts
	c.replayed = 1
	productionMS, replayMS := -1.0, -1.0
	if x := ob.Production; x != nil && x.Response != nil {
		productionMS = x.Response.LatencyMS
		m.production.Observe(productionMS / 1000)
	}
	class := len(statusClasses) - 1 // error
	if row := ob.Replay; row != nil && row.Response != nil {
		replayMS = row.Response.LatencyMS
		m.replay.Observe(replayMS / 1000)
		if k := row.Response.Status / 100; k >= 1 && k <= 5 {
			class = k - 1
		}
		if row.ErrorKind != "" || row.Response.Status >= 500 {
			c.errors = 1
		}
	} else {
		c.errors = 1
	}
	m.classes[class].Inc()
	switch ob.Verdict {
	case pipeline.VerdictMatch:
		c.matched = 1
	case pipeline.VerdictMismatch:
		c.mismatched = 1
	case pipeline.VerdictLineage:
		c.lineage = 1
	}
	o.window.observe(o.now(), c, productionMS, replayMS)
}

// ObserveFlush records the duration of a successful flush.
func (o *Observer) ObserveFlush(_ int, d time.Duration) { o.flush.Observe(d.Seconds()) }

// ObserveCommit records the duration of an offset commit.
func (o *Observer) ObserveCommit(d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	o.commit.WithLabelValues(result).Observe(d.Seconds())
}

// endpointMetrics are one endpoint label's metric children, looked up
// once.
type endpointMetrics struct {
	replay, production prometheus.Observer
	classes            [len(statusClasses)]prometheus.Counter
}

// endpointLabels maps endpoints to label values, capped at maxEndpoints
// (then otherEndpoint), and caches each label's metric children. The
// mapping never changes once made, so counters stay monotonic.
type endpointLabels struct {
	mu       sync.RWMutex
	labels   map[string]string // endpoint → label
	children map[string]*endpointMetrics
}

func newEndpointLabels() *endpointLabels {
	return &endpointLabels{labels: map[string]string{}, children: map[string]*endpointMetrics{}}
}

// label returns the label value of endpoint, assigning one if new.
func (e *endpointLabels) label(endpoint string) string {
	if endpoint == "" {
		endpoint = "unknown"
	}
	e.mu.RLock()
	l, ok := e.labels[endpoint]
	e.mu.RUnlock()
	if ok {
		return l
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if l, ok := e.labels[endpoint]; ok {
		return l
	}
	l = endpoint
	if len(e.labels) >= maxEndpoints {
		l = otherEndpoint
	}
	e.labels[endpoint] = l
	return l
}

// metrics returns the metric children of endpoint's label in o.
func (e *endpointLabels) metrics(endpoint string, o *Observer) *endpointMetrics {
	l := e.label(endpoint)
	e.mu.RLock()
	m := e.children[l]
	e.mu.RUnlock()
	if m != nil {
		return m
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if m := e.children[l]; m != nil {
		return m
	}
	m = &endpointMetrics{
		replay:     o.latency.WithLabelValues("replay", l),
		production: o.latency.WithLabelValues("production", l),
	}
	for i, c := range statusClasses {
		m.classes[i] = o.responses.WithLabelValues(l, c)
	}
	e.children[l] = m
	return m
}
