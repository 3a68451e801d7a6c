package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"runtime/pprof"
	"slices"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/conc/pool"

	"github.com/replaykit/replay/pipeline"
	"github.com/replaykit/replay/schemas"
)

// gappedSource is a finite source of n small captures whose captured_at
// are gap(i) apart, generated as they are polled.
type gappedSource struct {
	n, next int
	at      time.Time
	gap     func(i int) time.Duration
}

func (s *gappedSource) Poll(ctx context.Context) ([]schemas.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.next >= s.n {
		return nil, io.EOF
	}
	k := min(500, s.n-s.next)
	recs := make([]schemas.Record, k)
	for i := range recs {
		seq := s.next + i
		if seq > 0 {
			s.at = s.at.Add(s.gap(seq))
		}
		recs[i] = schemas.Record{
			Coordinates: schemas.Coordinates{Topic: "captures", Partition: 0, Offset: int64(seq)},
			Value: fmt.Appendf(nil, `{"correlation_id":"g-%d","captured_at":%q,"request":{"method":"GET","path":"/v1/items/%d"},"response":{"status":200,"body":"ok"}}`,
				seq, s.at.Format(time.RFC3339Nano), seq),
		}
	}
	s.next += k
	return recs, nil
}

func (s *gappedSource) Commit(context.Context, schemas.Offsets) error { return nil }

// discardSink takes results and forgets them at each flush, so that a
// pacing measurement sees the pacer, not the sink.
type discardSink struct {
	rows int
	next schemas.Offsets
}

func (s *discardSink) Add(r *schemas.Result) error {
	s.rows++
	s.next[r.Source.TP()] = r.Source.Offset + 1
	return nil
}

func (s *discardSink) Buffered() (int, int64) { return s.rows, 0 }

func (s *discardSink) Flush(context.Context) (schemas.Offsets, error) {
	out := s.next
	s.rows, s.next = 0, schemas.Offsets{}
	return out, nil
}

// replayPaced replays n gapped captures through a pipeline configured by
// mode against tgt (which must stamp at least n arrivals) and returns the
// arrival times, sorted.
func replayPaced(ctx context.Context, tgt *target, workers, n int, gap func(int) time.Duration, mode func(*pipeline.Config)) ([]time.Time, error) {
	cfg := pipeline.DefaultConfig()
	cfg.RunID = "bench-pacing"
	cfg.Replay.Target = tgt.URL
	cfg.Replay.Workers = workers
	cfg.Flush = pipeline.FlushPolicy{Rows: 10_000, Interval: time.Second}
	mode(&cfg)
	src := &gappedSource{n: n, at: capturedAt, gap: gap}
	p, err := pipeline.New(cfg, src, &discardSink{next: schemas.Offsets{}}, nil)
	if err != nil {
		return nil, err
	}
	tgt.reset()
	if err := p.Run(ctx); err != nil {
		return nil, fmt.Errorf("paced replay: %w", err)
	}
	return arrivals(tgt, n)
}

// schedulePaced is the baseline of the pacing lines: workers goroutines
// sending request i at start+at(i) on their own, each sleeping until its
// request is due, with a bare net/http client.
func schedulePaced(ctx context.Context, tgt *target, workers, n int, at func(i int) time.Duration) ([]time.Time, error) {
	reqs, err := bareRequests(tgt.URL, 1, Sizes{Min: 16, Max: 16}, 0)
	if err != nil {
		return nil, err
	}
	cl := newBareClient(workers)
	defer cl.CloseIdleConnections()
	tgt.reset()
	var next atomic.Int64
	start := time.Now()
	pprof.Do(ctx, pprof.Labels(stageLabel, stageBare), func(ctx context.Context) {
		p := pool.New().WithErrors().WithContext(ctx)
		for range workers {
			p.Go(func(ctx context.Context) error {
				for {
					i := int(next.Add(1) - 1)
					if i >= n {
						return nil
					}
					time.Sleep(time.Until(start.Add(at(i))))
					if _, err := send(ctx, cl, reqs[0]); err != nil {
						return err
					}
				}
			})
		}
		err = p.Wait()
	})
	if err != nil {
		return nil, fmt.Errorf("scheduled bare pool: %w", err)
	}
	return arrivals(tgt, n)
}

func arrivals(tgt *target, n int) ([]time.Time, error) {
	if got := int(tgt.hits.Load()); got != n {
		return nil, fmt.Errorf("the target saw %d requests, want %d", got, n)
	}
	out := make([]time.Time, n)
	for i, ns := range tgt.stamps[:n] {
		out[i] = time.Unix(0, ns)
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out, nil
}

// rateStats are the rate-accuracy numbers of arrivals at a fixed rate.
type rateStats struct {
	achieved float64 // requests per second, first to last arrival
	p99Gap   time.Duration
}

func rateOf(got []time.Time, rps float64) rateStats {
	want := time.Duration(float64(time.Second) / rps)
	errs := make([]time.Duration, 0, len(got)-1)
	for i := 1; i < len(got); i++ {
		d := got[i].Sub(got[i-1]) - want
		errs = append(errs, max(d, -d))
	}
	slices.Sort(errs)
	return rateStats{
		achieved: float64(len(got)-1) / got[len(got)-1].Sub(got[0]).Seconds(),
		p99Gap:   errs[len(errs)*99/100],
	}
}

// paceStats are the pace-fidelity numbers: the replayed span over the
// captured span scaled, and the median and p99 error of each arrival's
// offset from the first against its scaled capture offset.
type paceStats struct {
	spanRatio         float64
	median, p99Offset time.Duration
}

func paceOf(got []time.Time, want func(i int) time.Duration) paceStats {
	n := len(got)
	errs := make([]time.Duration, n)
	for i := range got {
		d := got[i].Sub(got[0]) - want(i)
		errs[i] = max(d, -d)
	}
	span := got[n-1].Sub(got[0])
	slices.Sort(errs)
	return paceStats{spanRatio: float64(span) / float64(want(n-1)), median: errs[n/2], p99Offset: errs[n*99/100]}
}

// burstGap is the captured traffic of the pace line: bursts of ten
// requests 100 µs apart, then a 10 ms pause.
func burstGap(i int) time.Duration {
	if i%10 == 0 {
		return 10 * time.Millisecond
	}
	return 100 * time.Microsecond
}

// burstOffsets returns the captured offsets of n requests of burstGap from
// the first, divided by pace.
func burstOffsets(n int, pace float64) func(int) time.Duration {
	offs := make([]time.Duration, n)
	for i := 1; i < n; i++ {
		offs[i] = offs[i-1] + burstGap(i)
	}
	return func(i int) time.Duration { return time.Duration(math.Round(float64(offs[i]) / pace)) }
}
