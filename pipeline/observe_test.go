package pipeline

import (
	"context"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// flushRecorder is an Observer and a FlushObserver that keeps what it is
// told.
type flushRecorder struct {
	mu        sync.Mutex
	replays   []Observation
	flushes   []int // rows per flush
	commits   []error
	durations []time.Duration // of flushes and commits
}

func (f *flushRecorder) ObserveReplay(o Observation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replays = append(f.replays, o)
}

func (f *flushRecorder) ObserveFlush(rows int, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flushes = append(f.flushes, rows)
	f.durations = append(f.durations, d)
}

func (f *flushRecorder) ObserveCommit(d time.Duration, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commits = append(f.commits, err)
	f.durations = append(f.durations, d)
}

func TestFlushObserverSeesFlushesAndCommits(t *testing.T) {
	srv := httptest.NewServer(&recorder{})
	t.Cleanup(srv.Close)
	cfg := validConfig()
	cfg.Replay.Target = srv.URL
	cfg.Flush = FlushPolicy{Rows: 2}
	src := &memSource{batches: interleave([][][]byte{simple(t, 0, 5)}, 1), failCommits: 1}
	p, err := New(cfg, src, &memSink{t: t}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	obs := &flushRecorder{}
	p.SetObserver(obs)
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	rows := 0
	for _, n := range obs.flushes {
		rows += n
	}
	s := p.Stats()
	if rows != 5 || int64(len(obs.flushes)) != s.Flushes {
		t.Errorf("observed flushes %v (%d rows), stats %d flushes; want 5 rows in as many flushes as counted", obs.flushes, rows, s.Flushes)
	}
	var failed int
	for _, err := range obs.commits {
		if err != nil {
			failed++
		}
	}
	if failed != 1 || int64(len(obs.commits)-failed) != s.Commits {
		t.Errorf("observed commits %v; want one failure and %d successes", obs.commits, s.Commits)
	}
	if len(obs.durations) != len(obs.flushes)+len(obs.commits) || slices.Min(obs.durations) < 0 {
		t.Errorf("durations %v, want one ≥ 0 per flush and commit", obs.durations)
	}
	if len(obs.replays) != 5 || obs.replays[0].Endpoint != "GET /v1/p0/{id}" {
		t.Errorf("observed %d replays (first %+v), want 5 of GET /v1/p0/{id}", len(obs.replays), obs.replays)
	}
}
