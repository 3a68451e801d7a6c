package pipeline

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replaykit/replay/schemas"
)

// gappedSource is a finite source of n records whose captured_at are
// gap(i) apart.
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

// stamps is a target that records when each request arrived.
type stamps struct {
	next  atomic.Int64
	times []time.Time
}

func (s *stamps) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	if i := s.next.Add(1) - 1; int(i) < len(s.times) {
		s.times[i] = time.Now()
	}
	_, _ = w.Write([]byte(`{"ok":true}`))
}

// replayStamps replays src through a pipeline in cfg's pacing mode and
// returns the arrival times at the target, sorted.
func replayStamps(b *testing.B, n int, src Source, mode func(*Config)) []time.Time {
	b.Helper()
	target := &stamps{times: make([]time.Time, n)}
	srv := httptest.NewServer(target)
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.RunID = "bench"
	cfg.Replay.Target = srv.URL
	cfg.Replay.Workers = 16
	cfg.Flush = FlushPolicy{Rows: 10_000, Interval: time.Second}
	mode(&cfg)
	sink := &discardSink{next: schemas.Offsets{}, done: make(chan struct{}), want: int64(n)}
	p, err := New(cfg, src, sink, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	if err := p.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	got := target.times[:min(int(target.next.Load()), n)]
	slices.SortFunc(got, func(a, b time.Time) int { return a.Compare(b) })
	return got
}

// BenchmarkRateAccuracy replays b.N records at fixed rates (burst 1) to a
// fast local target and reports the achieved rate over the requested one
// (goal: within 1%) and the p99 of the error of the gaps between
// consecutive arrivals against 1/rate, in µs.
func BenchmarkRateAccuracy(b *testing.B) {
	for _, rps := range []float64{1000, 5000, 10000} {
		b.Run(fmt.Sprintf("rate=%.0f", rps), func(b *testing.B) {
			n := max(b.N, 100)
			src := &gappedSource{n: n, at: capturedAt, gap: func(int) time.Duration { return 0 }}
			got := replayStamps(b, n, src, func(c *Config) {
				c.Replay.Mode, c.Replay.Rate, c.Replay.Burst = ModeRate, rps, 1
			})
			if len(got) < 2 {
				b.Fatalf("target saw %d requests", len(got))
			}
			span := got[len(got)-1].Sub(got[0]).Seconds()
			b.ReportMetric(float64(len(got)-1)/span/rps, "achieved/requested")
			want := time.Duration(float64(time.Second) / rps)
			errs := make([]float64, 0, len(got)-1)
			for i := 1; i < len(got); i++ {
				errs = append(errs, math.Abs(float64(got[i].Sub(got[i-1])-want))/float64(time.Microsecond))
			}
			slices.Sort(errs)
			b.ReportMetric(errs[len(errs)*99/100], "p99-gap-error-µs")
		})
	}
}

// BenchmarkPaceFidelity replays b.N records captured with irregular gaps
// (bursts of ten 100µs apart, then a 10ms pause) at 4× pace and reports
// the replayed span over the captured span scaled (goal 1.0) and the
// median absolute error of each arrival against its scaled capture
// offset, in µs.
func BenchmarkPaceFidelity(b *testing.B) {
	const pace = 4
	gap := func(i int) time.Duration {
		if i%10 == 0 {
			return 10 * time.Millisecond
		}
		return 100 * time.Microsecond
	}
	n := max(b.N, 100)
	var captured []time.Duration // offsets from the first record
	var off time.Duration
	for i := range n {
		if i > 0 {
			off += gap(i)
		}
		captured = append(captured, off)
	}
	src := &gappedSource{n: n, at: capturedAt, gap: gap}
	got := replayStamps(b, n, src, func(c *Config) { c.Replay.Mode, c.Replay.Pace = ModePace, pace })
	if len(got) != n {
		b.Fatalf("target saw %d requests, want %d", len(got), n)
	}
	span := got[n-1].Sub(got[0])
	b.ReportMetric(float64(span)/float64(captured[n-1]/pace), "replayed/captured-span")
	errs := make([]float64, n)
	for i := range n {
		errs[i] = math.Abs(float64(got[i].Sub(got[0])-captured[i]/pace)) / float64(time.Microsecond)
	}
	slices.Sort(errs)
	b.ReportMetric(errs[n/2], "median-offset-error-µs")
	b.ReportMetric(errs[n*99/100], "p99-offset-error-µs")
}
