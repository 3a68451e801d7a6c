package pipeline

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replaykit/replay/schemas"
)

// genSource can deliver total records at once, spread round-robin over
// partitions, but builds each batch only when polled, so the test holds
// no more than the pipeline does. Every 64th record of a partition is a
// GET (replayed); the others are POSTs (not selected, complete at once,
// but held back in order behind the slow GETs of their partition). It
// measures, at every Poll, how many records were polled and not yet added
// to the sink.
type genSource struct {
	total, batch, partitions int
	added                    *atomic.Int64 // the sink's count

	next           int // only the intake polls
	polled         atomic.Int64
	maxOutstanding atomic.Int64

	mu      sync.Mutex
	commits []schemas.Offsets
}

func (s *genSource) observe() {
	out := s.polled.Load() - s.added.Load()
	for m := s.maxOutstanding.Load(); out > m && !s.maxOutstanding.CompareAndSwap(m, out); m = s.maxOutstanding.Load() {
	}
}

func (s *genSource) Poll(ctx context.Context) ([]schemas.Record, error) {
	s.observe()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.next >= s.total {
		return nil, io.EOF
	}
	n := min(s.batch, s.total-s.next)
	recs := make([]schemas.Record, n)
	for i := range recs {
		seq := s.next + i
		p, off := int32(seq%s.partitions), int64(seq/s.partitions)
		method := "POST"
		if off%64 == 0 {
			method = "GET"
		}
		recs[i] = schemas.Record{
			Coordinates: schemas.Coordinates{Topic: topic, Partition: p, Offset: off},
			Value: fmt.Appendf(nil, `{"correlation_id":"p%d-o%d","captured_at":"2026-11-21T10:15:02Z",`+
				`"request":{"method":"%s","host":"api.example.com","path":"/v1/p%d/%d","body":"%0512d"},`+
				`"response":{"status":200,"body":"%01024d"}}`, p, off, method, p, off, 0, 0),
		}
	}
	s.next += n
	s.polled.Add(int64(n))
	return recs, nil
}

func (s *genSource) Commit(_ context.Context, o schemas.Offsets) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commits = append(s.commits, maps.Clone(o))
	return nil
}

func (s *genSource) committed() schemas.Offsets {
	s.mu.Lock()
	defer s.mu.Unlock()
	return mergeCommits(s.commits)
}

// countingSink checks that each partition's results arrive contiguous from
// offset 0 and keeps only counts, never the results.
type countingSink struct {
	t     *testing.T
	check func() // called after each Add, from the sink goroutine

	added    atomic.Int64
	next     schemas.Offsets // per partition: offset after the last added
	buffered int
	flushed  schemas.Offsets // per partition: offset after the last flushed
}

func (s *countingSink) Add(r *schemas.Result) error {
	tp := r.Source.TP()
	if r.Source.Offset != s.next[tp] {
		s.t.Errorf("Add(%s): want offset %d next on this partition", r.Source, s.next[tp])
	}
	s.next[tp] = r.Source.Offset + 1
	s.buffered++
	s.added.Add(1)
	s.check()
	return nil
}

func (s *countingSink) Buffered() (int, int64) { return s.buffered, int64(s.buffered) * 2048 }

func (s *countingSink) Flush(context.Context) (schemas.Offsets, error) {
	s.buffered = 0
	out := schemas.Offsets{}
	for tp, off := range s.next {
		if off != s.flushed[tp] {
			out[tp] = off
			s.flushed[tp] = off
		}
	}
	return out, nil
}

func TestMemoryIsBoundedUnderASlowTarget(t *testing.T) {
	const (
		maxInFlight = 256
		batch       = 100
		total       = 200_000
	)
	var cur, peak atomic.Int64
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		defer cur.Add(-1)
		for m := peak.Load(); n > m && !peak.CompareAndSwap(m, n); m = peak.Load() {
		}
		select { // a slow target, not a synchronization
		case <-time.After(50 * time.Millisecond):
		case <-r.Context().Done():
		}
		w.Write([]byte("ok"))
	}))
	cfg := validConfig()
	cfg.Replay.Target = srv.URL
	cfg.Replay.Workers = 8
	cfg.Limits.MaxInFlight = maxInFlight
	cfg.Flush = FlushPolicy{Rows: 64}

	sink := &countingSink{t: t, next: schemas.Offsets{}, flushed: schemas.Offsets{}}
	src := &genSource{total: total, batch: batch, partitions: 4, added: &sink.added}
	var maxAtAdd atomic.Int64
	sink.check = func() {
		out := src.polled.Load() - sink.added.Load()
		for m := maxAtAdd.Load(); out > m && !maxAtAdd.CompareAndSwap(m, out); m = maxAtAdd.Load() {
		}
	}
	p, err := New(cfg, src, sink, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second) // ends the run
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatalf("Run() = %v", err)
	}

	polled, added := src.polled.Load(), sink.added.Load()
	t.Logf("polled %d of %d records, added %d, peak %d concurrent requests", polled, total, added, peak.Load())
	if added == 0 {
		t.Fatal("nothing was replayed in 2s")
	}
	if m := src.maxOutstanding.Load(); m > maxInFlight {
		t.Errorf("at a Poll, %d records were polled and not yet added, want ≤ %d", m, maxInFlight)
	} else if m < maxInFlight/2 {
		t.Errorf("at most %d records were outstanding at a Poll: the test did not reach the budget of %d", m, maxInFlight)
	}
	if m := maxAtAdd.Load(); m > maxInFlight+batch {
		t.Errorf("%d records were polled and not yet added, want ≤ %d (the budget plus one poll batch)", m, maxInFlight+batch)
	}
	if polled > added+maxInFlight+batch {
		t.Errorf("polled %d records but added only %d: the source kept being polled past the budget", polled, added)
	}
	if n := peak.Load(); n > int64(cfg.Replay.Workers) {
		t.Errorf("the target saw %d concurrent requests, want ≤ %d", n, cfg.Replay.Workers)
	}
	// Shutdown flushed and committed exactly the contiguous prefixes added.
	if sink.buffered != 0 {
		t.Errorf("%d results added but not flushed", sink.buffered)
	}
	if got := src.committed(); !maps.Equal(got, sink.next) {
		t.Errorf("committed %v, want the prefixes added %v", got, sink.next)
	}
	if s := p.Stats(); s.InFlight != 0 || s.RowsWritten.Production != added || s.Replayed == 0 || s.Filtered == 0 {
		t.Errorf("stats = %+v", s)
	}
}
