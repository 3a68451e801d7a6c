package pipeline

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/replaykit/replay/schemas"
)

const revokeWaiting = "revoke: dispatch stopped; waiting for in-flight replays"

// addedSignal returns an onAdd hook that closes the channel it returns
// for each coordinate in want once that result was added.
func addedSignal(want ...schemas.Coordinates) (func(*schemas.Result), map[schemas.Coordinates]chan struct{}) {
	chans := map[schemas.Coordinates]chan struct{}{}
	for _, c := range want {
		chans[c] = make(chan struct{})
	}
	return func(r *schemas.Result) {
		if ch, ok := chans[r.Source]; ok {
			close(ch)
		}
	}, chans
}

func coord(p int32, off int64) schemas.Coordinates {
	return schemas.Coordinates{Topic: topic, Partition: p, Offset: off}
}

func TestRevokeBarrier(t *testing.T) {
	arrived := make(chan string, 2)
	release := make(chan struct{})
	target := &recorder{before: func(r *http.Request) {
		switch r.URL.Path {
		case "/v1/p0/2", "/v1/p0/3":
			arrived <- r.URL.Path
			<-release
		}
	}}
	cfg := validConfig()
	cfg.Replay.Target = newServer(t, target).URL
	cfg.Replay.Workers = 2 // both held by p0/2 and p0/3: p0/4 waits to be dispatched
	cfg.Limits.MaxInFlight = 16
	cfg.Flush = FlushPolicy{Rows: 1000} // only Revoke and shutdown flush
	onAdd, added := addedSignal(coord(1, 2), coord(0, 6))
	sink := &memSink{t: t, onAdd: onAdd}
	src := newChanSource()
	log, watch := newLogWatch(t)
	p, errc := startPipeline(t, context.Background(), cfg, &commitCheck{chanSource: src}, sink, log)

	src.batches <- []schemas.Record{rec(t, 0, 0), rec(t, 0, 1), rec(t, 0, 2), rec(t, 0, 3), rec(t, 0, 4), rec(t, 0, 5), rec(t, 1, 0), rec(t, 1, 1)}
	<-arrived
	<-arrived

	revoked := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		revoked <- p.Revoke(ctx, []schemas.TopicPartition{tp(0)})
	}()
	watch.wait(t, revokeWaiting, 1)
	select {
	case err := <-revoked:
		t.Fatalf("Revoke returned %v while two replays of the partition were in flight", err)
	default:
	}
	close(release)
	if err := <-revoked; err != nil {
		t.Fatalf("Revoke() = %v", err)
	}

	// The barrier: everything dispatched before the revoke is flushed and
	// committed; what waited for dispatch was dropped unsent.
	flushed, buffered := sink.results()
	if n := countByPartition(flushed)[tp(0)]; n != 4 || countByPartition(buffered)[tp(0)] != 0 {
		t.Fatalf("%d results of partition 0 flushed, %d buffered, when Revoke returned; want 0..3 flushed", n, countByPartition(buffered)[tp(0)])
	}
	if off := src.committed()[tp(0)]; off != 4 {
		t.Fatalf("partition 0 committed at %d when Revoke returned, want 4", off)
	}
	for _, id := range []string{"p0-o4", "p0-o5"} {
		if _, ok := target.get(id); ok {
			t.Errorf("%s was replayed although it had not been dispatched at the revoke", id)
		}
	}

	// Records of the revoked partition the source still returns are
	// ignored until Assign; other partitions go on.
	src.batches <- []schemas.Record{rec(t, 0, 6), rec(t, 0, 7), rec(t, 1, 2)}
	<-added[coord(1, 2)]
	if _, ok := target.get("p0-o6"); ok {
		t.Error("a record of the revoked partition was replayed before Assign")
	}

	// Assigned again, the source re-reads from the committed offset.
	p.Assign([]schemas.TopicPartition{tp(0)})
	src.batches <- []schemas.Record{rec(t, 0, 4), rec(t, 0, 5), rec(t, 0, 6), rec(t, 1, 3)}
	<-added[coord(0, 6)]
	close(src.batches)
	if err := <-errc; err != nil {
		t.Fatalf("Run() = %v", err)
	}
	if got, want := src.committed(), (schemas.Offsets{tp(0): 7, tp(1): 4}); !maps.Equal(got, want) {
		t.Errorf("committed %v, want %v", got, want)
	}
	if s := p.Stats(); s.Discarded != 4 || s.InFlight != 0 || s.Replayed != 11 {
		t.Errorf("stats = %+v; want 4 discarded (p0/4-5 at the revoke, p0/6-7 before Assign), 11 replayed", s)
	}
}

// commitCheck fails the test when a commit carries an offset lower than
// an earlier one for the same partition.
type commitCheck struct {
	*chanSource
	last schemas.Offsets
}

func (c *commitCheck) Commit(ctx context.Context, o schemas.Offsets) error {
	if c.last == nil {
		c.last = schemas.Offsets{}
	}
	for tp, off := range o {
		if off < c.last[tp] {
			panic("offset went back")
		}
		c.last[tp] = off
	}
	return c.chanSource.Commit(ctx, o)
}

func TestRevokeTimeoutFencesThePartition(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	target := &recorder{before: func(r *http.Request) {
		if r.URL.Path == "/v1/p0/1" {
			close(arrived)
			<-release
		}
	}}
	cfg := validConfig()
	cfg.Replay.Target = newServer(t, target).URL
	cfg.Flush = FlushPolicy{Rows: 1000}
	onAdd, added := addedSignal(coord(0, 0), coord(1, 1))
	sink := &memSink{t: t, onAdd: onAdd}
	src := newChanSource()
	log, watch := newLogWatch(t)
	p, errc := startPipeline(t, context.Background(), cfg, src, sink, log)

	src.batches <- []schemas.Record{rec(t, 0, 0), rec(t, 0, 1), rec(t, 1, 0), rec(t, 1, 1)}
	<-arrived
	<-added[coord(0, 0)] // p0/0 reached the sink before the revoke
	<-added[coord(1, 1)]

	ctx, cancel := context.WithCancel(context.Background())
	revoked := make(chan error, 1)
	go func() { revoked <- p.Revoke(ctx, []schemas.TopicPartition{tp(0)}) }()
	watch.wait(t, revokeWaiting, 1)
	cancel() // the caller gives up while p0/1 is still in flight
	if err := <-revoked; !errors.Is(err, context.Canceled) {
		t.Fatalf("Revoke() = %v, want it to wrap context.Canceled", err)
	}

	close(release) // p0/1 finishes after Revoke gave up: it must not be written
	src.batches <- []schemas.Record{rec(t, 1, 2)}
	close(src.batches)
	if err := <-errc; err != nil {
		t.Fatalf("Run() = %v", err)
	}
	flushed, _ := sink.results()
	for _, r := range flushed {
		if r.Source == coord(0, 1) {
			t.Error("p0/1 was written after Revoke gave up on it")
		}
	}
	got := src.committed()
	if _, ok := got[tp(0)]; ok || got[tp(1)] != 3 {
		t.Errorf("committed %v; want partition 1 at 3 and nothing of the revoked partition 0", got)
	}
	if s := p.Stats(); s.Discarded != 1 || s.InFlight != 0 {
		t.Errorf("stats = %+v; want p0/1 counted as discarded", s)
	}
}

func TestRevokeOutsideRunIsANoOp(t *testing.T) {
	cfg := validConfig()
	p, err := New(cfg, &memSource{}, &memSink{t: t}, nil)
	if err != nil {
		t.Fatal(err)
	}
	all := []schemas.TopicPartition{tp(0)}
	if err := p.Revoke(context.Background(), all); err != nil {
		t.Fatalf("Revoke before Run = %v, want nil", err)
	}
	p.Assign(all)
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Revoke(ctx, all); err != nil {
		t.Fatalf("Revoke after Run = %v, want nil", err)
	}
	p.Assign(all)
}
