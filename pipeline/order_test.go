package pipeline

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replaykit/replay/schemas"
)

// orderTarget records, per ordering key, the order requests arrive in, and
// checks that no two requests of one key are in flight at once with a
// per-key in-flight counter. The first request of each key waits until
// the first requests of all keys are in flight together, which proves
// that different keys run in parallel.
type orderTarget struct {
	keyOf func(replayID string) string // "" for unordered requests
	keys  int                          // keys whose first requests meet

	mu       sync.Mutex
	inFlight map[string]int
	arrivals map[string][]string
	overlaps []string // requests that arrived while another of their key was in flight
	met      map[string]bool
	allMet   chan struct{}
	noMeet   bool
	hold     map[string]chan struct{} // replay ID → held until closed
	arrived  map[string]chan struct{} // replay ID → closed when it arrives
}

func newOrderTarget(keys int, keyOf func(string) string) *orderTarget {
	return &orderTarget{
		keyOf: keyOf, keys: keys, inFlight: map[string]int{}, arrivals: map[string][]string{},
		met: map[string]bool{}, allMet: make(chan struct{}), hold: map[string]chan struct{}{}, arrived: map[string]chan struct{}{},
	}
}

func (o *orderTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-Replay-Id")
	key := o.keyOf(id)
	o.mu.Lock()
	hold, arrived := o.hold[id], o.arrived[id]
	first := false
	if key != "" {
		o.inFlight[key]++
		if o.inFlight[key] > 1 {
			o.overlaps = append(o.overlaps, id)
		}
		o.arrivals[key] = append(o.arrivals[key], id)
		if !o.met[key] && o.keys > 0 {
			first = true
			o.met[key] = true
			if len(o.met) == o.keys {
				close(o.allMet)
			}
		}
	}
	o.mu.Unlock()
	if arrived != nil {
		close(arrived)
	}
	switch {
	case first:
		select {
		case <-o.allMet:
		case <-time.After(10 * time.Second):
			o.mu.Lock()
			o.noMeet = true
			o.mu.Unlock()
		}
	case hold != nil:
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	case key != "":
		// Widen the window in which a second request of the key would
		// overlap this one; the assertion is the in-flight counter.
		time.Sleep(time.Millisecond)
	}
	if key != "" {
		o.mu.Lock()
		o.inFlight[key]-- // before the response: the next request of the key can only follow it
		o.mu.Unlock()
	}
	fmt.Fprintf(w, "replayed %s", id)
}

// holdUntil makes the request with replay ID id wait for release, and
// returns a channel closed when it arrives.
func (o *orderTarget) holdUntil(id string, release chan struct{}) <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.hold[id] = release
	ch := make(chan struct{})
	o.arrived[id] = ch
	return ch
}

func (o *orderTarget) seen() map[string][]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string][]string{}
	for k, v := range o.arrivals {
		out[k] = slices.Clone(v)
	}
	return out
}

func TestPerKeyOrderingUnderConcurrency(t *testing.T) {
	const users, perUser, partitions = 6, 20, 3
	user := map[string]string{} // correlation ID → user; absent: no user attribute
	keyOf := func(id string) string {
		base, _, _ := strings.Cut(id, "#")
		return user[base]
	}
	target := newOrderTarget(users, keyOf)
	cfg := validConfig()
	cfg.Replay.Target = newServer(t, target).URL
	cfg.Replay.Workers = 16
	cfg.Replay.Ordering = OrderingConfig{Mode: OrderingKey, Key: "attribute:user"}
	cfg.Amplify = AmplifyConfig{Key: "attribute:device_type", Factors: map[string]float64{"tv": 2}, Default: 1}

	// Records in admission order: each user's records spread over the
	// partitions, every 5th a tv (replayed twice), and unkeyed records in
	// between.
	want := map[string][]string{} // user → replay IDs in log order
	offsets := map[int32]int64{}
	var all []schemas.Record
	add := func(cid string, attrs map[string]string) {
		part := int32(len(all) % partitions)
		all = append(all, schemas.Record{
			Coordinates: schemas.Coordinates{Topic: topic, Partition: part, Offset: offsets[part]},
			Value:       attrEnvelope(t, cid, "/v1/"+cid, attrs),
		})
		offsets[part]++
	}
	for i := range users * perUser {
		u := fmt.Sprintf("u%d", (i/partitions)%users)
		cid := fmt.Sprintf("r%03d", i)
		attrs := map[string]string{"user": u}
		user[cid] = u
		want[u] = append(want[u], cid)
		if i%5 == 0 {
			attrs["device_type"] = "tv"
			want[u] = append(want[u], cid+"#2")
		}
		add(cid, attrs)
		if i%4 == 0 {
			add(fmt.Sprintf("n%03d", i), map[string]string{"region": "eu"})
		}
	}
	var batches [][]schemas.Record
	for len(all) > 0 {
		n := min(7, len(all))
		batches = append(batches, all[:n])
		all = all[n:]
	}
	src := &memSource{batches: batches}
	sink := &memSink{t: t}
	p, errc := startPipeline(t, context.Background(), cfg, src, sink, nil)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}

	target.mu.Lock()
	overlaps, noMeet := target.overlaps, target.noMeet
	target.mu.Unlock()
	if len(overlaps) > 0 {
		t.Errorf("requests that arrived while another of their key was in flight: %v", overlaps)
	}
	if noMeet {
		t.Errorf("the first requests of the %d keys were never in flight together: keys did not run in parallel", users)
	}
	got := target.seen()
	if !maps.EqualFunc(got, want, slices.Equal) {
		for u := range want {
			if !slices.Equal(got[u], want[u]) {
				t.Errorf("%s: arrival order\n %v\nwant log order\n %v", u, got[u], want[u])
			}
		}
	}
	flushed, _ := sink.results()
	var replays int
	for _, r := range flushed {
		if r.Replay != nil {
			replays += 1 + len(r.Copies)
		}
	}
	st := p.Stats()
	if want := users*perUser*6/5 + users*perUser/4; replays != want || st.Replayed != int64(want) {
		t.Errorf("replay rows %d, Stats.Replayed %d, want %d", replays, st.Replayed, want)
	}
	if st.KeyQueued == 0 || st.InFlight != 0 {
		t.Errorf("Stats: KeyQueued %d, InFlight %d; want requests queued behind their key, none in flight", st.KeyQueued, st.InFlight)
	}
}

// keyedRecord is the record at offset off of partition p, for user u ("":
// no user attribute).
func keyedRecord(t *testing.T, p int32, off int64, u string) schemas.Record {
	attrs := map[string]string{}
	if u != "" {
		attrs["user"] = u
	}
	cid := fmt.Sprintf("p%d-o%d", p, off)
	return schemas.Record{
		Coordinates: schemas.Coordinates{Topic: topic, Partition: p, Offset: off},
		Value:       attrEnvelope(t, cid, "/v1/"+cid, attrs),
	}
}

func orderedConfig(t *testing.T, target http.Handler) Config {
	cfg := validConfig()
	cfg.Replay.Target = newServer(t, target).URL
	cfg.Replay.Workers = 4
	cfg.Replay.Ordering = OrderingConfig{Mode: OrderingKey, Key: "attribute:user"}
	return cfg
}

func TestRevokeDiscardsRequestsQueuedBehindTheirKey(t *testing.T) {
	users := map[string]string{"p0-o0": "a", "p1-o0": "a", "p1-o1": "b", "p0-o1": "c"}
	target := newOrderTarget(0, func(id string) string { return users[id] })
	release := make(chan struct{})
	leaderArrived := target.holdUntil("p0-o0", release)
	behindArrived := target.holdUntil("p1-o1", nil) // not held: arrives once the intake passed the queued follower
	cfg := orderedConfig(t, target)
	src := newChanSource()
	sink := &memSink{t: t}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, errc := startPipeline(t, ctx, cfg, src, sink, nil)

	src.batches <- []schemas.Record{
		keyedRecord(t, 0, 0, "a"), // holds key a at the target
		keyedRecord(t, 1, 0, "a"), // queued behind it
		keyedRecord(t, 1, 1, "b"),
		keyedRecord(t, 0, 1, "c"),
	}
	<-leaderArrived
	<-behindArrived
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	// The queued follower is discarded, with the record behind it: Revoke
	// does not wait for the key's holder in another partition.
	if err := p.Revoke(rctx, []schemas.TopicPartition{tp(1)}); err != nil {
		t.Fatal(err)
	}
	close(release)
	close(src.batches)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got := target.seen()["a"]; !slices.Equal(got, []string{"p0-o0"}) {
		t.Errorf("key a reached the target as %v; the follower of the revoked partition must not be sent", got)
	}
	if got, want := src.committed(), (schemas.Offsets{tp(0): 2}); !maps.Equal(got, want) {
		t.Errorf("committed %v, want %v", got, want)
	}
	if s := p.Stats(); s.Discarded != 2 || s.KeyQueued != 1 || s.Abandoned != 0 {
		t.Errorf("Stats: Discarded %d, KeyQueued %d, Abandoned %d; want 2, 1, 0", s.Discarded, s.KeyQueued, s.Abandoned)
	}
}

func TestShutdownAbandonsRequestsQueuedBehindTheirKey(t *testing.T) {
	users := map[string]string{"p0-o0": "a", "p0-o1": "a", "p0-o2": "b", "p1-o0": "a", "p1-o1": "c"}
	target := newOrderTarget(0, func(id string) string { return users[id] })
	release := make(chan struct{})
	leaderArrived := target.holdUntil("p0-o0", release)
	bArrived := target.holdUntil("p0-o2", nil)
	cArrived := target.holdUntil("p1-o1", nil)
	cfg := orderedConfig(t, target)
	src := &memSource{batches: [][]schemas.Record{{
		keyedRecord(t, 0, 0, "a"), // holds key a at the target
		keyedRecord(t, 0, 1, "a"), // queued
		keyedRecord(t, 1, 0, "a"), // queued
		keyedRecord(t, 0, 2, "b"),
		keyedRecord(t, 1, 1, "c"),
	}}, block: true}
	sink := &memSink{t: t}
	log, intakeStopped := signalLogger(t, "shutdown: intake stopped")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, errc := startPipeline(t, ctx, cfg, src, sink, log)

	<-leaderArrived
	<-bArrived
	<-cArrived
	cancel()
	<-intakeStopped
	close(release) // the leader finishes; its followers must not start
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got := target.seen()["a"]; !slices.Equal(got, []string{"p0-o0"}) {
		t.Errorf("key a reached the target as %v; queued requests must not start after shutdown began", got)
	}
	flushed, buffered := sink.results()
	if got, want := countByPartition(append(flushed, buffered...)), (schemas.Offsets{tp(0): 1}); !maps.Equal(got, want) {
		t.Errorf("results per partition %v, want %v", got, want)
	}
	if got, want := src.committed(), (schemas.Offsets{tp(0): 1}); !maps.Equal(got, want) {
		t.Errorf("committed %v, want %v", got, want)
	}
	if s := p.Stats(); s.Abandoned != 4 || s.KeyQueued != 2 || s.InFlight != 0 {
		t.Errorf("Stats: Abandoned %d, KeyQueued %d, InFlight %d; want 4, 2, 0", s.Abandoned, s.KeyQueued, s.InFlight)
	}
}

func TestEndOfInputDrainsRequestsQueuedBehindTheirKey(t *testing.T) {
	users := map[string]string{}
	var recs []schemas.Record
	for off := range int64(12) {
		recs = append(recs, keyedRecord(t, 0, off, "a"))
		users[fmt.Sprintf("p0-o%d", off)] = "a"
	}
	target := newOrderTarget(0, func(id string) string { return users[id] })
	cfg := orderedConfig(t, target)
	src := &memSource{batches: [][]schemas.Record{recs}} // then io.EOF
	sink := &memSink{t: t}
	p, errc := startPipeline(t, context.Background(), cfg, src, sink, nil)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got := len(target.seen()["a"]); got != 12 {
		t.Errorf("%d of key a's 12 requests reached the target", got)
	}
	if got, want := src.committed(), (schemas.Offsets{tp(0): 12}); !maps.Equal(got, want) {
		t.Errorf("committed %v, want %v", got, want)
	}
	if s := p.Stats(); s.Abandoned != 0 || s.KeyQueued == 0 {
		t.Errorf("Stats: Abandoned %d, KeyQueued %d; want 0 and requests queued", s.Abandoned, s.KeyQueued)
	}
}
