package pipeline

import (
	"context"
	"fmt"
	"maps"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/replaykit/replay/schemas"
)

func TestCopiesOf(t *testing.T) {
	const n = 20_000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("7f7c-%d", i)
	}
	for _, f := range []float64{1, 2, 3, 100} {
		for _, id := range ids {
			if got := copiesOf(f, id); got != int(f) {
				t.Fatalf("copiesOf(%v, %q) = %d, want exactly %v", f, id, got, f)
			}
		}
	}
	for _, f := range []float64{1.5, 1.8, 1.3, 2.05, 99.9} {
		total := 0
		for _, id := range ids {
			got := copiesOf(f, id)
			u := amplifyDraw(id)
			if u < 0 || u >= 1 {
				t.Fatalf("amplifyDraw(%q) = %v, not in [0, 1)", id, u)
			}
			want := int(math.Floor(f))
			if f-math.Floor(f) > u {
				want++
			}
			if got != want || copiesOf(f, id) != got {
				t.Fatalf("copiesOf(%v, %q) = %d, want %d (u = %v), the same every time", f, id, got, want, u)
			}
			total += got
		}
		// The fractional part is a Bernoulli draw per record: standard
		// deviation at most 0.5/sqrt(n) = 0.0035 of the mean.
		if mean := float64(total) / n; math.Abs(mean-f) > 0.02 {
			t.Errorf("factor %v: %v copies per record on average", f, mean)
		}
	}
	// The draw does not follow the dial: among correlation IDs dialed in
	// at 10%, a factor of 1.5 still averages 1.5.
	in, total := 0, 0
	for _, id := range ids {
		if dialedIn(id, 10) {
			in++
			total += copiesOf(1.5, id)
		}
	}
	if mean := float64(total) / float64(in); math.Abs(mean-1.5) > 0.06 {
		t.Errorf("among the %d IDs dialed in at 10%%, factor 1.5 gives %v copies on average", in, mean)
	}
}

// countTarget counts requests by X-Replay-Id.
type countTarget struct {
	mu   sync.Mutex
	seen map[string]int
}

func (c *countTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	if c.seen == nil {
		c.seen = map[string]int{}
	}
	c.seen[r.Header.Get("X-Replay-Id")]++
	c.mu.Unlock()
	fmt.Fprintf(w, "replayed %s", r.URL.Path)
}

func (c *countTarget) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.seen))
	for k, v := range c.seen {
		out[k] = v
	}
	return out
}

func TestAmplifiedCopiesReachTheTarget(t *testing.T) {
	target := &countTarget{}
	cfg := validConfig()
	cfg.Replay.Target = newServer(t, target).URL
	cfg.Replay.Workers = 6
	cfg.Amplify = AmplifyConfig{Key: "attribute:device_type", Factors: map[string]float64{"tv": 2, "android": 1.5}, Default: 1}
	onAdd, waitAdded := addSignal(t)
	sink := &memSink{t: t, onAdd: onAdd}
	src := newChanSource()
	p, errc := startPipeline(t, context.Background(), cfg, src, sink, nil)

	types := []string{"tv", "android", "web", ""} // "": no device_type attribute
	const perType = 150
	device := map[string]string{} // correlation ID → device type
	offsets := map[int32]int64{}
	// phase sends perType records of every device type over three
	// partitions, and returns how many requests each type should make
	// under factors, by the documented rule.
	phase := func(name string, factors map[string]float64, def float64) map[string]int {
		want := map[string]int{}
		var batch []schemas.Record
		for i := range perType {
			for k, typ := range types {
				cid := fmt.Sprintf("%s-%s-%d", name, typ, i)
				attrs := map[string]string{"region": "eu"}
				if typ != "" {
					attrs["device_type"] = typ
				}
				device[cid] = typ
				f, ok := factors[typ]
				if !ok {
					f = def
				}
				want[typ] += copiesOf(f, cid)
				part := int32((i + k) % 3)
				batch = append(batch, schemas.Record{
					Coordinates: schemas.Coordinates{Topic: topic, Partition: part, Offset: offsets[part]},
					Value:       attrEnvelope(t, cid, "/v1/titles/"+cid, attrs),
				})
				offsets[part]++
			}
		}
		src.batches <- batch
		waitAdded(len(batch))
		return want
	}
	// got counts the requests the target saw per device type for the
	// correlation IDs with prefix, checking that copy IDs are <id>#2 … and
	// each came once.
	got := func(prefix string) map[string]int {
		out := map[string]int{}
		for id, n := range target.counts() {
			if !strings.HasPrefix(id, prefix) {
				continue
			}
			if n != 1 {
				t.Errorf("%s reached the target %d times", id, n)
			}
			base, _, _ := strings.Cut(id, "#")
			typ, ok := device[base]
			if !ok {
				t.Errorf("unexpected request %s", id)
			}
			out[typ]++
		}
		return out
	}

	want1 := phase("a", cfg.Amplify.Factors, 1)
	if want1["tv"] != 2*perType || want1["web"] != perType || want1[""] != perType {
		t.Fatalf("integer factors must give exactly n·f requests: %v", want1)
	}
	// android: 1.5 per record on average; the rule decides each record.
	if a := float64(want1["android"]) / perType; a < 1.35 || a > 1.65 {
		t.Errorf("android ×1.5 predicts %d requests for %d records", want1["android"], perType)
	}
	if g := got("a-"); !maps.Equal(g, want1) {
		t.Errorf("requests per device type = %v, want %v", g, want1)
	}

	// The multipliers are live.
	if _, err := p.UpdateControl(ControlUpdate{Multipliers: map[string]float64{"android": 3, "tv": 1.25}, MultiplierDefault: ptr(2.0)}, "test"); err != nil {
		t.Fatal(err)
	}
	want2 := phase("b", map[string]float64{"android": 3, "tv": 1.25}, 2)
	if g := got("b-"); !maps.Equal(g, want2) {
		t.Errorf("after the update, requests per device type = %v, want %v", g, want2)
	}
	close(src.batches)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}

	flushed, buffered := sink.results()
	all := append(flushed, buffered...)
	var requests, copies int64
	for _, r := range all {
		if r.Replay == nil {
			t.Fatalf("%s has no replay row", r.Source)
		}
		id := r.Replay.CorrelationID
		requests += int64(1 + len(r.Copies))
		copies += int64(len(r.Copies))
		if r.Replay.AmplifiedFrom != "" {
			t.Errorf("%s: the record's own row is marked amplified from %q", id, r.Replay.AmplifiedFrom)
		}
		for i, c := range r.Copies {
			if c == nil || c.CorrelationID != fmt.Sprintf("%s#%d", id, i+2) || c.AmplifiedFrom != id || c.Source != r.Source ||
				c.Response == nil || c.Response.Status != http.StatusOK {
				t.Errorf("%s: copy %d = %+v", id, i+2, c)
			}
		}
	}
	total := 0
	for _, w := range []map[string]int{want1, want2} {
		for _, n := range w {
			total += n
		}
	}
	st := p.Stats()
	if requests != int64(total) || st.Replayed != requests || st.Amplified != copies || st.RowsWritten.Replay != requests {
		t.Errorf("requests %d (want %d); Stats: Replayed %d, Amplified %d (want %d), replay rows written %d",
			requests, total, st.Replayed, st.Amplified, copies, st.RowsWritten.Replay)
	}
}

func TestShutdownAbandonsARecordWhoseCopiesAreNotAllSent(t *testing.T) {
	firstArrived := make(chan struct{})
	release := make(chan struct{})
	target := &recorder{before: func(r *http.Request) {
		if r.Header.Get("X-Replay-Id") == "p0-o1" {
			close(firstArrived)
			<-release
		}
	}}
	cfg := validConfig()
	cfg.Replay.Target = newServer(t, target).URL
	cfg.Replay.Workers = 1 // copy #2 waits for the worker copy #1 holds
	cfg.Amplify = AmplifyConfig{Key: "attribute:device_type", Factors: map[string]float64{"tv": 2}, Default: 1}
	var values [][]byte
	for i := range 3 {
		typ := "web"
		if i == 1 {
			typ = "tv"
		}
		values = append(values, attrEnvelope(t, fmt.Sprintf("p0-o%d", i), fmt.Sprintf("/v1/p0/%d", i), map[string]string{"device_type": typ}))
	}
	src := &memSource{batches: interleave([][][]byte{values}, 3), block: true}
	sink := &memSink{t: t}
	log, intakeStopped := signalLogger(t, "shutdown: intake stopped")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, errc := startPipeline(t, ctx, cfg, src, sink, log)

	<-firstArrived
	cancel()
	<-intakeStopped // copy #2 gave up waiting for the worker
	close(release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	flushed, buffered := sink.results()
	if got := countByPartition(append(flushed, buffered...)); got[tp(0)] != 1 {
		t.Errorf("results of partition 0: %d, want only offset 0's (offset 1 lacks a copy)", got[tp(0)])
	}
	if got, want := src.committed(), (schemas.Offsets{tp(0): 1}); !maps.Equal(got, want) {
		t.Errorf("committed %v, want %v", got, want)
	}
	if _, sent := target.get("p0-o1#2"); sent {
		t.Error("copy #2 was sent after shutdown began")
	}
	if s := p.Stats(); s.Abandoned != 1 || s.Amplified != 0 {
		t.Errorf("Abandoned = %d, Amplified = %d; want 1 and 0", s.Abandoned, s.Amplified)
	}
}
