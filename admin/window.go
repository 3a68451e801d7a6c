package admin

import (
	"math"
	"sync"
	"time"

	"github.com/replaykit/replay/schemas"
)

// The live view keeps two rings, both in memory and bounded:
//
//   - windowSeconds one-second slots with counters and a latency sketch per
//     side, for the "last minute" numbers of /v1/status;
//   - seriesSeconds one-second samples (counters, percentiles, lag, the
//     requested rate), for /v1/series and the charts of the live page.
//
// A latency sketch is a fixed array of log-spaced buckets, in the manner of
// DDSketch: bucket i holds the values in (minMS·γ^(i-1), minMS·γ^i] with
// γ = (1+α)/(1-α), and a percentile is reported as the bucket's midpoint
// 2·minMS·γ^i/(γ+1), within α of the true value. A fixed array (rather than
// a map) keeps an observation to one index computation and an increment.
const (
	windowSeconds = 60
	seriesSeconds = 300
	rateSeconds   = 10 // the current rate is averaged over this many complete seconds

	sketchAlpha = 0.02      // relative accuracy of a percentile
	sketchMinMS = 0.01      // values at or below land in bucket 0
	sketchMaxMS = 120_000.0 // values above land in the last bucket
)

var (
	sketchGamma    = (1 + sketchAlpha) / (1 - sketchAlpha)
	sketchLogGamma = math.Log(sketchGamma)
	sketchBuckets  = int(math.Ceil(math.Log(sketchMaxMS/sketchMinMS)/sketchLogGamma)) + 1
)

// sketch counts latencies in log-spaced buckets.
type sketch struct {
	n      int64
	counts []uint32 // len sketchBuckets, allocated on first add
}

func (s *sketch) add(ms float64) {
	if math.IsNaN(ms) || ms < 0 {
		return
	}
	if s.counts == nil {
		s.counts = make([]uint32, sketchBuckets)
	}
	i := 0
	if ms > sketchMinMS {
		i = min(sketchBuckets-1, int(math.Ceil(math.Log(ms/sketchMinMS)/sketchLogGamma)))
	}
	s.counts[i]++
	s.n++
}

func (s *sketch) reset() {
	s.n = 0
	clear(s.counts)
}

func (s *sketch) merge(o *sketch) {
	if o.n == 0 {
		return
	}
	if s.counts == nil {
		s.counts = make([]uint32, sketchBuckets)
	}
	for i, c := range o.counts {
		s.counts[i] += c
	}
	s.n += o.n
}

// quantile returns the nearest-rank q-quantile in milliseconds; 0 when
// empty.
func (s *sketch) quantile(q float64) float64 {
	if s.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(s.n)))
	rank = max(1, min(rank, s.n))
	var seen int64
	for i, c := range s.counts {
		seen += int64(c)
		if seen >= rank {
			if i == 0 {
				return sketchMinMS
			}
			return 2 * sketchMinMS * math.Pow(sketchGamma, float64(i)) / (sketchGamma + 1)
		}
	}
	return sketchMaxMS
}

// Percentiles are latency percentiles in milliseconds over Count values.
type Percentiles struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
}

func (s *sketch) percentiles() Percentiles {
	return Percentiles{Count: s.n, P50: round3(s.quantile(0.50)), P90: round3(s.quantile(0.90)), P99: round3(s.quantile(0.99))}
}

// round3 and round6 round to 3 and 6 decimals, so JSON numbers stay
// short: milliseconds and requests per second to the microsecond and the
// thousandth, ratios to a ten-thousandth of a percent.
func round3(v float64) float64 { return math.Round(v*1e3) / 1e3 }
func round6(v float64) float64 { return math.Round(v*1e6) / 1e6 }

// counts are what one second (or a window of them) saw.
type counts struct {
	replayed   int64 // replay rows
	errors     int64 // replays without a response, or with a 5xx
	matched    int64 // live comparison verdicts
	mismatched int64
	lineage    int64
}

func (c *counts) add(o counts) {
	c.replayed += o.replayed
	c.errors += o.errors
	c.matched += o.matched
	c.mismatched += o.mismatched
	c.lineage += o.lineage
}

// slot is one second of the window ring.
type slot struct {
	sec              int64 // unix second; 0 = never used
	counts           counts
	production, play sketch
}

// Sample is one second of /v1/series.
type Sample struct {
	// T is the second, as Unix seconds.
	T          int64 `json:"t"`
	Replayed   int64 `json:"replayed"`
	Errors     int64 `json:"errors"`
	Matched    int64 `json:"matched"`
	Mismatched int64 `json:"mismatched"`
	// Production and Replay are the latency percentiles of the replays
	// finished in that second; absent when none finished.
	Production *Percentiles `json:"production,omitempty"`
	Replay     *Percentiles `json:"replay,omitempty"`
	// Lag is the consumer lag summed over partitions, sampled at the end of
	// the second; absent without a Kafka source.
	Lag *int64 `json:"lag,omitempty"`
	// TargetRate is the rate requested then (the control's effective
	// rate; 0 = unlimited or pacing by capture time); Paused whether
	// replaying was paused.
	TargetRate float64 `json:"target_rate"`
	Paused     bool    `json:"paused"`
}

// sampleExtras are what a sample takes from outside the observer.
type sampleExtras struct {
	lag        *int64
	targetRate float64
	paused     bool
}

// window holds both rings. Its methods take the time explicitly, so tests
// can drive it with any clock.
type window struct {
	mu     sync.Mutex
	start  int64 // the second the window was created in
	slots  [windowSeconds]slot
	series []Sample // ring of seriesSeconds samples, in order from head
	head   int      // index of the oldest sample once the ring is full
	sealed int64    // last second turned into a sample
}

func newWindow(now time.Time) *window {
	sec := now.Unix()
	return &window{start: sec, sealed: sec - 1, series: make([]Sample, 0, seriesSeconds)}
}

// slotFor returns the slot of second sec, reset if it held an older second.
// w.mu is held.
func (w *window) slotFor(sec int64) *slot {
	s := &w.slots[sec%windowSeconds]
	if s.sec != sec {
		s.sec = sec
		s.counts = counts{}
		s.production.reset()
		s.play.reset()
	}
	return s
}

// observe adds one finished replay at now. productionMS or replayMS < 0
// means that side had no latency.
func (w *window) observe(now time.Time, c counts, productionMS, replayMS float64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.slotFor(now.Unix())
	s.counts.add(c)
	if productionMS >= 0 {
		s.production.add(productionMS)
	}
	if replayMS >= 0 {
		s.play.add(replayMS)
	}
}

// seal turns every complete second not yet sealed into a sample. Seconds
// older than the window ring (a clock jump) become empty samples, and at
// most seriesSeconds are added at once.
func (w *window) seal(now time.Time, x sampleExtras) {
	w.mu.Lock()
	defer w.mu.Unlock()
	last := now.Unix() - 1
	from := max(w.sealed+1, last-seriesSeconds+1)
	for sec := from; sec <= last; sec++ {
		smp := Sample{T: sec, Lag: x.lag, TargetRate: x.targetRate, Paused: x.paused}
		if s := &w.slots[sec%windowSeconds]; s.sec == sec {
			smp.Replayed, smp.Errors = s.counts.replayed, s.counts.errors
			smp.Matched, smp.Mismatched = s.counts.matched, s.counts.mismatched
			if s.production.n > 0 {
				p := s.production.percentiles()
				smp.Production = &p
			}
			if s.play.n > 0 {
				p := s.play.percentiles()
				smp.Replay = &p
			}
		}
		if len(w.series) < seriesSeconds {
			w.series = append(w.series, smp)
		} else {
			w.series[w.head] = smp
			w.head = (w.head + 1) % seriesSeconds
		}
	}
	w.sealed = max(w.sealed, last)
}

// samples returns the samples after second since, oldest first.
func (w *window) samples(since int64) []Sample {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Sample, 0, len(w.series))
	for i := range w.series {
		if s := w.series[(w.head+i)%len(w.series)]; s.T > since {
			out = append(out, s)
		}
	}
	return out
}

// WindowStatus is what the last minute saw, in /v1/status.
type WindowStatus struct {
	// Seconds is how many seconds the window covers: 60, or less in the
	// first minute of the run. The current, incomplete second is included.
	Seconds int `json:"seconds"`
	// Replayed counts replays finished in the window, and Rate is their
	// average per second over it.
	Replayed int64   `json:"replayed"`
	Rate     float64 `json:"rate"`
	// CurrentRate is the replays per second over the last 10 complete
	// seconds.
	CurrentRate float64 `json:"current_rate"`
	// Errors are replays without a response or with a 5xx; ErrorRate is
	// Errors / Replayed (0 when nothing was replayed).
	Errors    int64   `json:"errors"`
	ErrorRate float64 `json:"error_rate"`
	// Matched, Mismatched and Lineage are the live comparison's verdicts;
	// MatchRate is Matched / (Matched + Mismatched), null when neither.
	Matched    int64    `json:"matched"`
	Mismatched int64    `json:"mismatched"`
	Lineage    int64    `json:"lineage_mismatch"`
	MatchRate  *float64 `json:"match_rate"`
	// Production is the captured latency of the replayed exchanges, Replay
	// the candidate's.
	Production Percentiles `json:"production"`
	Replay     Percentiles `json:"replay"`
}

// summary sums the window ending at now.
func (w *window) summary(now time.Time) WindowStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	cur := now.Unix()
	seconds := int(min(windowSeconds, max(1, cur-w.start+1)))
	var c counts
	var recent int64
	var prod, play sketch
	for sec := cur - int64(seconds) + 1; sec <= cur; sec++ {
		s := &w.slots[sec%windowSeconds]
		if s.sec != sec {
			continue
		}
		c.add(s.counts)
		prod.merge(&s.production)
		play.merge(&s.play)
		if sec >= cur-rateSeconds && sec < cur {
			recent += s.counts.replayed
		}
	}
	complete := min(rateSeconds, max(1, cur-w.start)) // complete seconds since the start, up to 10
	out := WindowStatus{
		Seconds: seconds, Replayed: c.replayed, Rate: round3(float64(c.replayed) / float64(seconds)),
		CurrentRate: round3(float64(recent) / float64(complete)),
		Errors:      c.errors, Matched: c.matched, Mismatched: c.mismatched, Lineage: c.lineage,
		Production: prod.percentiles(), Replay: play.percentiles(),
	}
	if c.replayed > 0 {
		out.ErrorRate = round6(float64(c.errors) / float64(c.replayed))
	}
	if r := schemas.MatchRate(c.matched, c.mismatched); r != nil {
		rounded := round6(*r)
		out.MatchRate = &rounded
	}
	return out
}
