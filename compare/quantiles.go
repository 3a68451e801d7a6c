package compare

import (
	"maps"
	"math"
	"slices"
)

// Latency percentiles, per endpoint and side.
//
// Up to exactLimit values are kept as they are and a percentile is exact:
// the nearest-rank value, the ⌈q·n⌉-th smallest. Past that the values move
// into a log-bucketed sketch in the manner of DDSketch: bucket i holds the
// values in (γ^(i-1), γ^i] with γ = (1+α)/(1-α), and a percentile is the
// bucket of the nearest rank, reported as 2γ^i/(γ+1), within α (1%) of the
// true value. A bucket is a map entry, so a sketch of latencies from 1 µs to
// an hour holds at most about 1,100 of them whatever the run's size. Both
// forms depend only on the values, not their order, so the result is the
// same however the pairs were joined and scheduled.

const (
	// exactLimit is the values kept exactly per endpoint and side.
	exactLimit = 2048
	// sketchAccuracy is the sketch's relative accuracy α.
	sketchAccuracy = 0.01
	// minSketchValue: values at or below it (0 ms included) count in one
	// bucket reported as 0.
	minSketchValue = 1e-6
)

var (
	sketchGamma    = (1 + sketchAccuracy) / (1 - sketchAccuracy)
	sketchLogGamma = math.Log(sketchGamma)
)

// quantiles accumulates values for percentiles.
type quantiles struct {
	n       int64
	exact   []float64       // the values while n ≤ exactLimit
	buckets map[int32]int64 // past exactLimit: the sketch
	zeros   int64           // past exactLimit: values ≤ minSketchValue
}

func (q *quantiles) add(v float64) {
	if math.IsNaN(v) {
		return
	}
	q.n++
	if q.buckets == nil {
		if len(q.exact) < exactLimit {
			q.exact = append(q.exact, v)

			return
		}
		q.buckets = map[int32]int64{}
		for _, e := range q.exact {
			q.addSketch(e)
		}
		q.exact = nil
	}
	q.addSketch(v)
}

func (q *quantiles) addSketch(v float64) {
	if v <= minSketchValue {
		q.zeros++

		return
	}
	q.buckets[bucketOf(v)]++
}

func bucketOf(v float64) int32 {
	return int32(math.Ceil(math.Log(v) / sketchLogGamma))
}

func bucketValue(i int32) float64 {
	return 2 * math.Pow(sketchGamma, float64(i)) / (sketchGamma + 1)
}

// rank is the nearest rank of quantile p among n values, 1-based.
func rank(p float64, n int64) int64 {
	k := int64(math.Ceil(p * float64(n)))

	return min(max(k, 1), n)
}

// percentiles returns the values at each of ps (0 < p ≤ 1); zeros when
// nothing was added.
func (q *quantiles) percentiles(ps ...float64) []float64 {
	out := make([]float64, len(ps))
	if q.n == 0 {
		return out
	}
	if q.buckets == nil {
		sorted := slices.Clone(q.exact)
		slices.Sort(sorted)
		for i, p := range ps {
			out[i] = sorted[rank(p, q.n)-1]
		}

		return out
	}
	keys := slices.Sorted(maps.Keys(q.buckets))
	for i, p := range ps {
		k := rank(p, q.n)
		if k <= q.zeros {
			continue // 0
		}
		seen := q.zeros
		for _, b := range keys {
			seen += q.buckets[b]
			if seen >= k {
				out[i] = bucketValue(b)

				break
			}
		}
	}

	return out
}
