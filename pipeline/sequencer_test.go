package pipeline

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/replaykit/replay/schemas"
)

// drain returns the offsets released to out so far.
func drain(s *sequencer) []int64 {
	var out []int64
	for {
		select {
		case t := <-s.out:
			out = append(out, t.result.Source.Offset)
		default:
			return out
		}
	}
}

func result(p int32, off int64) *schemas.Result {
	return &schemas.Result{Source: coord(p, off)}
}

func TestSequencerOrderAndDiscard(t *testing.T) {
	s := newSequencer(16)
	b1 := s.newBatch()
	t0, _ := s.register(tp(0), b1)
	t1, _ := s.register(tp(0), b1)
	if why := s.registerDone(tp(0), b1, result(0, 2)); why != admitted {
		t.Fatal("registerDone refused")
	}
	t3, _ := s.register(tp(0), b1)
	t4, _ := s.register(tp(0), b1)
	for _, tk := range []*ticket{t0, t1, t3, t4} {
		if !s.dispatch(tk) {
			t.Fatal("dispatch refused a pending ticket")
		}
	}
	s.complete(t1, result(0, 1))
	if got := drain(s); len(got) != 0 {
		t.Fatalf("released %v before offset 0 completed", got)
	}
	s.complete(t0, result(0, 0))
	if got := drain(s); len(got) != 3 || got[0] != 0 || got[2] != 2 {
		t.Fatalf("released %v, want [0 1 2]", got)
	}

	// Abandoning offset 3 discards it and offset 4 behind it, in flight or
	// not; a late completion of either is ignored.
	if n := s.abandon(t3); n != 2 {
		t.Fatalf("abandon discarded %d, want 2", n)
	}
	s.complete(t4, result(0, 4))
	s.complete(t3, result(0, 3))
	if got := drain(s); len(got) != 0 {
		t.Fatalf("released %v after abandoning them", got)
	}
	if n := s.abandon(t3); n != 0 {
		t.Fatalf("abandoning twice discarded %d more", n)
	}
	// Nothing may pass the abandoned record: later records of its
	// partition are refused for the rest of the run.
	if tk, why := s.register(tp(0), b1); tk != nil || why != refusedBlocked || s.registerDone(tp(0), b1, result(0, 5)) != refusedBlocked {
		t.Fatal("a record behind an abandoned one was registered")
	}
	if tk, _ := s.register(tp(1), b1); tk == nil {
		t.Fatal("abandoning in partition 0 blocked partition 1")
	}
	s.complete(mustRegister(t, s, tp(1), b1), result(1, 1))
	if stuck := s.close(); stuck != 2 {
		t.Fatalf("close() = %d stuck, want 2 (partition 1: the first record never completed, the second waits behind it)", stuck)
	}
}

func mustRegister(t *testing.T, s *sequencer, tp schemas.TopicPartition, batch uint64) *ticket {
	t.Helper()
	tk, why := s.register(tp, batch)
	if tk == nil {
		t.Fatalf("register refused: %d", why)
	}
	return tk
}

func TestSequencerRevokeAndAssign(t *testing.T) {
	s := newSequencer(16)
	b1 := s.newBatch()
	inFlight := mustRegister(t, s, tp(0), b1)
	s.dispatch(inFlight)
	waiting := mustRegister(t, s, tp(0), b1) // not dispatched yet
	s.registerDone(tp(0), b1, result(0, 2))  // behind the waiting one
	other := mustRegister(t, s, tp(1), b1)
	discarded, revoked := s.watch(waiting)
	if discarded {
		t.Fatal("watch reports a live ticket discarded")
	}

	n, epochs := s.revoke([]schemas.TopicPartition{tp(0)})
	if n != 2 || epochs[0] != 0 {
		t.Fatalf("revoke discarded %d (epoch %d), want the waiting record and the one behind it: 2 (epoch 0)", n, epochs[0])
	}
	select {
	case <-revoked:
	default:
		t.Fatal("revoke did not signal the dispatcher")
	}
	if d, _ := s.watch(waiting); !d || s.dispatch(waiting) {
		t.Fatal("the waiting record can still be dispatched after the revoke")
	}
	if tk, why := s.register(tp(0), b1); tk != nil || why != refusedRevoked || s.admits(tp(0), b1) != refusedRevoked ||
		s.registerDone(tp(0), b1, result(0, 3)) != refusedRevoked {
		t.Fatal("a revoked partition accepts records")
	}
	if s.admits(tp(1), b1) != admitted {
		t.Fatal("revoking partition 0 stopped partition 1")
	}

	// The revoke waits for the record in flight.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.waitEmpty(ctx, []schemas.TopicPartition{tp(0)}, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("waitEmpty with a record in flight = %v, want context.Canceled", err)
	}
	s.complete(inFlight, result(0, 0))
	if err := s.waitEmpty(context.Background(), []schemas.TopicPartition{tp(0)}, nil); err != nil {
		t.Fatalf("waitEmpty = %v", err)
	}
	if got := drain(s); len(got) != 1 || got[0] != 0 {
		t.Fatalf("released %v, want [0]", got)
	}

	// Fenced: no commit of partition 0, no result of its old epoch.
	s.fence([]schemas.TopicPartition{tp(0)}, epochs)
	o := schemas.Offsets{tp(0): 1, tp(1): 5}
	s.dropFenced(o)
	if !maps.Equal(o, schemas.Offsets{tp(1): 5}) {
		t.Fatalf("dropFenced left %v", o)
	}
	if s.writable(inFlight) || !s.writable(other) {
		t.Fatal("writable: want the old epoch of partition 0 fenced, partition 1 not")
	}

	// Records of batches returned before Assign stay ignored; later ones
	// are processed, in the new epoch, and committed again.
	b2 := s.newBatch()
	s.assign([]schemas.TopicPartition{tp(0)})
	if s.admits(tp(0), b1) != refusedRevoked || s.admits(tp(0), b2) != refusedRevoked {
		t.Fatal("a batch returned before Assign is accepted")
	}
	b3 := s.newBatch()
	fresh := mustRegister(t, s, tp(0), b3)
	if !s.writable(fresh) {
		t.Fatal("a record polled after Assign is refused")
	}
	o = schemas.Offsets{tp(0): 1}
	if s.dropFenced(o); len(o) != 1 {
		t.Fatal("partition 0 is still kept out of commits after Assign")
	}

	// Assigning a partition that was never revoked changes nothing: the
	// batch in hand stays valid.
	s.assign([]schemas.TopicPartition{tp(1), tp(7)})
	if s.admits(tp(1), b3) != admitted || s.admits(tp(7), b3) != admitted {
		t.Fatal("Assign of a partition never revoked made its batch in hand stale")
	}
}
