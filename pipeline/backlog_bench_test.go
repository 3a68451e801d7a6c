package pipeline

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replaykit/replay/schemas"
)

// lazyBacklog is a source with a backlog of total records, generated as they
// are polled, so the benchmark measures the pipeline's memory, not the
// backlog's.
type lazyBacklog struct {
	total, next int
}

func (s *lazyBacklog) Poll(ctx context.Context) ([]schemas.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.next >= s.total {
		return nil, io.EOF
	}
	n := min(500, s.total-s.next)
	recs := make([]schemas.Record, n)
	for i := range recs {
		seq := s.next + i
		p, off := int32(seq%12), int64(seq/12)
		recs[i] = schemas.Record{
			Coordinates: schemas.Coordinates{Topic: "captures", Partition: p, Offset: off},
			Value: fmt.Appendf(nil, `{"correlation_id":"b-%d","captured_at":"2026-11-21T10:15:02Z",`+
				`"request":{"method":"GET","path":"/v1/items/%d"},"response":{"status":200,"body":"%01024d"}}`, seq, seq, 0),
		}
	}
	s.next += n
	return recs, nil
}

func (s *lazyBacklog) Commit(context.Context, schemas.Offsets) error { return nil }

// discardSink counts results and forgets them at each flush.
type discardSink struct {
	added atomic.Int64
	rows  int
	bytes int64
	next  schemas.Offsets
	done  chan struct{}
	want  int64
}

func (s *discardSink) Add(r *schemas.Result) error {
	s.rows++
	if r.Production != nil {
		s.bytes += int64(len(r.Production.Exchange.Response.Body))
	}
	s.next[r.Source.TP()] = r.Source.Offset + 1
	if s.added.Add(1) == s.want {
		close(s.done)
	}
	return nil
}

func (s *discardSink) Buffered() (int, int64) { return s.rows, s.bytes }

func (s *discardSink) Flush(context.Context) (schemas.Offsets, error) {
	s.rows, s.bytes = 0, 0
	out := s.next
	s.next = schemas.Offsets{}
	return out, nil
}

// BenchmarkBacklogSlowTarget replays a large backlog against a target that
// takes 5 ms per request with the default budgets, and reports the peak Go
// heap and the process's peak RSS: memory must not grow with the backlog.
// One op is one record replayed and handed to the sink.
func BenchmarkBacklogSlowTarget(b *testing.B) {
	for _, backlog := range []int{200_000, 1_000_000} {
		b.Run(fmt.Sprintf("backlog=%d", backlog), func(b *testing.B) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(5 * time.Millisecond) // the slow target being measured
				_, _ = w.Write([]byte(`{"ok":true}`))
			}))
			defer srv.Close()
			cfg := DefaultConfig()
			cfg.RunID = "bench"
			cfg.Replay.Target = srv.URL
			cfg.Flush = FlushPolicy{Rows: 10_000, Bytes: 64 << 20, Interval: time.Second}
			want := int64(min(b.N, backlog))
			sink := &discardSink{next: schemas.Offsets{}, done: make(chan struct{}), want: want}
			p, err := New(cfg, &lazyBacklog{total: backlog}, sink, nil)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			peakHeap := samplePeakHeap(ctx)
			b.ResetTimer()
			errc := make(chan error, 1)
			go func() { errc <- p.Run(ctx) }()
			select {
			case <-sink.done:
			case err := <-errc:
				b.Fatalf("run ended early: %v", err)
			}
			b.StopTimer()
			cancel()
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(peakHeap())/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(peakRSS())/(1<<20), "peak-rss-MiB")
		})
	}
}

// samplePeakHeap samples the live heap every 10 ms until ctx ends and
// returns a function giving the peak seen.
func samplePeakHeap(ctx context.Context) func() uint64 {
	var peak atomic.Uint64
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return peak.Load
}

// peakRSS is the process's high-water resident set (VmHWM), 0 where /proc
// is not available.
func peakRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
