package compare

import (
	"cmp"
	"maps"
	"slices"
	"sort"
)

// Bounds of what the summary keeps.
const (
	// topPathsLimit is the number of differing paths in Summary.TopPaths.
	topPathsLimit = 50
	// pathSamples is the correlation IDs kept per path: the smallest, so
	// the choice does not depend on the order pairs were compared in.
	pathSamples = 5
	// maxTrackedPaths bounds the distinct paths counted. Differences at
	// paths past it (a run whose diffs name array indices, say) are only
	// counted, in a warning Run logs; which paths made it in then depends
	// on the order of comparison.
	maxTrackedPaths = 100_000
	// topMismatchesLimit is the number of Summary.TopMismatches.
	topMismatchesLimit = 20
	// displayBodyLimit truncates the bodies of Summary.TopMismatches.
	displayBodyLimit = 4 << 10
)

// latencyBoundsMS are the upper bounds of Summary.Latency's buckets.
var latencyBoundsMS = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000}

// percentilePoints are the percentiles of Counts: p50, p90, p99.
var percentilePoints = []float64{0.50, 0.90, 0.99}

// endpointStats accumulates one endpoint's row (or the whole run's).
type endpointStats struct {
	counts             Counts
	production, replay quantiles // latencies of joined pairs
}

type pathStat struct {
	count   int64
	samples []string // sorted, at most pathSamples
}

type statusKey struct{ production, replay int }

// aggregator folds outcomes into the summary. It is used from one goroutine
// (the stream's callbacks), and every figure it keeps is independent of the
// order outcomes arrive in, so the summary is the same whether the join ran
// in memory or spilled and however the workers were scheduled.
type aggregator struct {
	all        endpointStats
	endpoints  map[string]*endpointStats
	paths      map[string]*pathStat
	otherPaths int64
	// noisy counts the paths production and the baseline differ at, over
	// baselineJoined pairs.
	noisy          map[string]*pathStat
	baselineJoined int64
	status         map[statusKey]int64
	errorKinds     map[string]int64
	production     []int64 // latency histogram of joined pairs
	replay         []int64
	mismatches     *mismatchWriter
}

func newAggregator(mw *mismatchWriter) *aggregator {
	return &aggregator{
		all:        endpointStats{counts: Counts{Endpoint: EndpointAll}},
		endpoints:  map[string]*endpointStats{},
		paths:      map[string]*pathStat{},
		noisy:      map[string]*pathStat{},
		status:     map[statusKey]int64{},
		errorKinds: map[string]int64{},
		production: make([]int64, len(latencyBoundsMS)+1),
		replay:     make([]int64, len(latencyBoundsMS)+1),
		mismatches: mw,
	}
}

// add folds one outcome in; a mismatch also becomes a comparison_mismatches
// row.
func (a *aggregator) add(o *outcome) error {
	ep := a.endpoints[o.endpoint]
	if ep == nil {
		ep = &endpointStats{counts: Counts{Endpoint: o.endpoint}}
		a.endpoints[o.endpoint] = ep
	}
	for _, st := range []*endpointStats{&a.all, ep} {
		st.add(o)
	}
	if o.class == ClassAmplified || o.class == ClassDuplicate {
		return nil // counted, nothing else
	}
	p, r := o.production, o.replay
	if r != nil && r.errKind != "" {
		a.errorKinds[r.errKind]++
	}
	if p != nil && r != nil {
		a.status[statusKey{p.status, r.status}]++
		if p.hasLatency {
			a.production[bucketIndex(p.latency)]++
		}
		if r.hasLatency {
			a.replay[bucketIndex(r.latency)]++
		}
	}
	if o.withBaseline {
		a.baselineJoined++
		for _, path := range o.noisy {
			a.addPath(a.noisy, path, p.cid)
		}
	}
	if o.class != ClassMismatched {
		return nil
	}
	for _, path := range o.result.Paths {
		a.addPath(a.paths, path, p.cid)
	}

	return a.mismatches.add(o)
}

func (st *endpointStats) add(o *outcome) {
	c := &st.counts
	if o.class == ClassAmplified {
		c.ReplayAmplified++

		return
	}
	if o.class == ClassDuplicate {
		if o.production != nil {
			c.Duplicates++
		}

		return
	}
	p, r := o.production, o.replay
	if p != nil {
		c.ProductionTotal++
		if passing(p.status) {
			c.ProductionPassing++
		} else {
			c.ProductionFailing++
		}
	}
	if r != nil {
		c.ReplayTotal++
		if passing(r.status) {
			c.ReplayPassing++
		} else {
			c.ReplayFailing++
		}
	}
	if p != nil && r != nil {
		c.Joined++
		if p.hasLatency {
			st.production.add(p.latency)
		}
		if r.hasLatency {
			st.replay.add(r.latency)
		}
	}
	switch o.class {
	case ClassOnlyProduction:
		c.OnlyProduction++
	case ClassOnlyReplay:
		c.OnlyReplay++
	case ClassMatched:
		c.Matched++
	case ClassMismatched:
		c.Mismatched++
	case ClassLineageMismatch:
		c.LineageExcluded++
	case ClassNoise:
		c.NoiseExcluded++
	}
}

// finish fills the percentiles of the counts.
func (st *endpointStats) finish() Counts {
	c := st.counts
	pp := st.production.percentiles(percentilePoints...)
	rp := st.replay.percentiles(percentilePoints...)
	c.ProductionP50, c.ProductionP90, c.ProductionP99 = pp[0], pp[1], pp[2]
	c.ReplayP50, c.ReplayP90, c.ReplayP99 = rp[0], rp[1], rp[2]

	return c
}

func bucketIndex(ms float64) int {
	return sort.SearchFloat64s(latencyBoundsMS, ms) // first bound ≥ ms; len = the open bucket
}

// addPath counts one pair at path in paths (a.paths or a.noisy).
func (a *aggregator) addPath(paths map[string]*pathStat, path, cid string) {
	ps := paths[path]
	if ps == nil {
		if len(paths) >= maxTrackedPaths {
			a.otherPaths++

			return
		}
		ps = &pathStat{}
		paths[path] = ps
	}
	ps.count++
	i, found := slices.BinarySearch(ps.samples, cid)
	switch {
	case found:
	case len(ps.samples) < pathSamples:
		ps.samples = slices.Insert(ps.samples, i, cid)
	case i < pathSamples:
		ps.samples = slices.Insert(ps.samples[:pathSamples-1], i, cid)
	}
}

// byImpact orders endpoint rows: most mismatched first, then most
// exchanges, then by name.
func byImpact(a, b Counts) int {
	if c := cmp.Compare(b.Mismatched, a.Mismatched); c != 0 {
		return c
	}
	if c := cmp.Compare(total(b), total(a)); c != 0 {
		return c
	}

	return cmp.Compare(a.Endpoint, b.Endpoint)
}

// total is the number of exchanges of an endpoint: correlation IDs seen on
// either side.
func total(c Counts) int64 { return c.Joined + c.OnlyProduction + c.OnlyReplay }

// summary returns everything but what the caller fills: RunID, ComparedAt,
// Duration, TopMismatches, Spilled, the tables and the report.
func (a *aggregator) summary() *Summary {
	s := &Summary{
		Overall:    a.all.finish(),
		ErrorKinds: maps.Clone(a.errorKinds),
		Latency: LatencyHistogram{
			BoundsMS:   slices.Clone(latencyBoundsMS),
			Production: slices.Clone(a.production),
			Replay:     slices.Clone(a.replay),
		},
	}
	s.MatchRate = s.Overall.MatchRate()
	s.Endpoints = make([]Counts, 0, len(a.endpoints))
	for _, st := range a.endpoints {
		s.Endpoints = append(s.Endpoints, st.finish())
	}
	slices.SortFunc(s.Endpoints, byImpact)

	s.TopPaths = topPaths(a.paths)
	s.NoisyPaths = topPaths(a.noisy)
	s.BaselineJoined = a.baselineJoined

	s.StatusMatrix = make([]StatusCell, 0, len(a.status))
	for k, n := range a.status {
		s.StatusMatrix = append(s.StatusMatrix, StatusCell{Production: k.production, Replay: k.replay, Count: n})
	}
	slices.SortFunc(s.StatusMatrix, func(x, y StatusCell) int {
		if c := cmp.Compare(x.Production, y.Production); c != 0 {
			return c
		}

		return cmp.Compare(x.Replay, y.Replay)
	})

	return s
}

// topPaths returns the topPathsLimit most frequent paths of m, most
// frequent first, then by path.
func topPaths(m map[string]*pathStat) []PathCount {
	out := make([]PathCount, 0, min(len(m), topPathsLimit))
	for path, ps := range m {
		out = append(out, PathCount{Path: path, Count: ps.count, Samples: slices.Clone(ps.samples)})
	}
	slices.SortFunc(out, func(x, y PathCount) int {
		if c := cmp.Compare(y.Count, x.Count); c != 0 {
			return c
		}

		return cmp.Compare(x.Path, y.Path)
	})
	if len(out) > topPathsLimit {
		out = slices.Clip(out[:topPathsLimit])
	}

	return out
}

// endpointRanks maps each endpoint to its place in s.Endpoints.
func endpointRanks(s *Summary) map[string]int {
	out := make(map[string]int, len(s.Endpoints))
	for i, c := range s.Endpoints {
		out[c.Endpoint] = i
	}

	return out
}

// truncate returns b cut to n bytes for display.
func truncate(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}

	return b[:n:n]
}
