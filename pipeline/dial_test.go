package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/replaykit/replay/schemas"
)

func TestDialBucketIsStable(t *testing.T) {
	// XXH64 with seed 0 is specified: these buckets are the same in every
	// process, on every machine, in every version. A change here re-dials
	// every running deployment.
	for key, want := range map[string]uint64{
		"":                                     6921, // XXH64("") = 0xef46db3751d8e999
		"d-19":                                 9496,
		"device-42":                            7937,
		"7f7c0a2e-1b9d-4c5e-9f00-3a2b1c0d9e8f": 2447,
	} {
		if got := dialBucket(key); got != want {
			t.Errorf("dialBucket(%q) = %d, want %d", key, got, want)
		}
	}
}

func TestDialIsStickyAndMonotonic(t *testing.T) {
	const n = 20_000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("device-%d", i)
	}
	percents := []float64{0, 0.5, 1, 5, 10, 20, 33.3, 50, 90, 99.99, 100}
	prev := map[string]bool{}
	for _, pct := range percents {
		in := map[string]bool{}
		for _, k := range keys {
			if dialedIn(k, pct) {
				in[k] = true
			}
			// The same key always gets the same answer.
			if dialedIn(k, pct) != in[k] {
				t.Fatalf("dialedIn(%q, %v) changed between calls", k, pct)
			}
		}
		for k := range prev {
			if !in[k] {
				t.Fatalf("%q is in at the previous percent but out at %v%%: raising the dial must only add keys", k, pct)
			}
		}
		got := 100 * float64(len(in)) / n
		// Binomial standard deviation at 50% over 20,000 keys is 0.35
		// points; 1.5 points is more than four of them.
		if diff := got - pct; diff > 1.5 || diff < -1.5 {
			t.Errorf("at %v%%, %.2f%% of the keys are in", pct, got)
		}
		if pct == 0 && len(in) != 0 || pct == 100 && len(in) != n {
			t.Errorf("at %v%%, %d of %d keys are in", pct, len(in), n)
		}
		prev = in
	}
}

// attrEnvelope encodes a GET exchange with attributes.
func attrEnvelope(t *testing.T, cid, path string, attrs map[string]string) []byte {
	t.Helper()
	b, err := json.Marshal(schemas.Envelope{
		CorrelationID: cid,
		CapturedAt:    capturedAt,
		Request:       &schemas.EnvelopeRequest{Method: "GET", Scheme: "https", Host: "api.example.com", Path: path},
		Response:      &schemas.EnvelopeResponse{Status: 200, Body: "prod", LatencyMS: 3},
		Attributes:    attrs,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// addSignal returns a memSink hook and a function that waits until n more
// results were added.
func addSignal(t *testing.T) (func(*schemas.Result), func(n int)) {
	added := make(chan struct{}, 100_000)
	wait := func(n int) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for range n {
			select {
			case <-added:
			case <-timeout:
				t.Fatalf("timed out waiting for %d results to reach the sink", n)
			}
		}
	}
	return func(*schemas.Result) { added <- struct{}{} }, wait
}

func TestDialChangedLiveChangesWhatReachesTheTarget(t *testing.T) {
	target := &recorder{}
	cfg := validConfig()
	cfg.Replay.Target = newServer(t, target).URL
	cfg.Dial = DialConfig{Key: "attribute:device_id", Percent: 10}
	onAdd, waitAdded := addSignal(t)
	sink := &memSink{t: t, onAdd: onAdd}
	src := newChanSource()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, errc := startPipeline(t, ctx, cfg, src, sink, nil)

	const devices, perDevice = 200, 3
	// phase sends perDevice records of every device, spread over two
	// partitions, and returns the correlation IDs per device.
	offsets := map[int32]int64{}
	phase := func(name string) map[string][]string {
		ids := map[string][]string{}
		var batch []schemas.Record
		for i := range perDevice {
			for d := range devices {
				dev := fmt.Sprintf("d-%d", d)
				cid := fmt.Sprintf("%s-%s-%d", name, dev, i)
				ids[dev] = append(ids[dev], cid)
				part := int32(d % 2)
				batch = append(batch, schemas.Record{
					Coordinates: schemas.Coordinates{Topic: topic, Partition: part, Offset: offsets[part]},
					Value:       attrEnvelope(t, cid, "/v1/devices/"+dev, map[string]string{"device_id": dev, "region": "eu"}),
				})
				offsets[part]++
			}
		}
		src.batches <- batch
		waitAdded(len(batch))
		return ids
	}
	// check asserts that exactly the devices dialed in at pct reached the
	// target, each with all its requests, and returns them.
	check := func(ids map[string][]string, pct float64) map[string]bool {
		t.Helper()
		in := map[string]bool{}
		for dev, cids := range ids {
			got := 0
			for _, cid := range cids {
				if _, ok := target.get(cid); ok {
					got++
				}
			}
			switch {
			case got == 0:
			case got == len(cids):
				in[dev] = true
			default:
				t.Errorf("at %v%%: %d of %s's %d requests reached the target; want all or none", pct, got, dev, len(cids))
			}
			if want := dialedIn(dev, pct); in[dev] != want {
				t.Errorf("at %v%%: %s reached the target = %v, want %v (bucket %d)", pct, dev, in[dev], want, dialBucket(dev))
			}
		}
		return in
	}

	in10 := check(phase("a"), 10)
	if len(in10) == 0 || len(in10) > devices/5 {
		t.Fatalf("%d of %d devices dialed in at 10%%", len(in10), devices)
	}
	if _, err := p.UpdateControl(ControlUpdate{DialPercent: ptr(20.0)}, "test"); err != nil {
		t.Fatal(err)
	}
	in20 := check(phase("b"), 20)
	for dev := range in10 {
		if !in20[dev] {
			t.Errorf("%s was replayed at 10%% but not at 20%%", dev)
		}
	}
	if len(in20) <= len(in10) {
		t.Errorf("raising the dial from 10%% to 20%% did not add devices: %d → %d", len(in10), len(in20))
	}
	if _, err := p.UpdateControl(ControlUpdate{DialPercent: ptr(0.0)}, "test"); err != nil {
		t.Fatal(err)
	}
	check(phase("c"), 0)

	close(src.batches)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	flushed, buffered := sink.results()
	all := append(flushed, buffered...)
	if want := 3 * devices * perDevice; len(all) != want {
		t.Fatalf("%d results, want %d", len(all), want)
	}
	replayed := 0
	for _, r := range all {
		if r.Production == nil {
			t.Errorf("%s has no production row", r.Source)
		}
		if r.Replay != nil {
			replayed++
			if _, ok := target.get(r.Replay.CorrelationID); !ok {
				t.Errorf("replay row %s was never sent", r.Replay.CorrelationID)
			}
		}
	}
	st := p.Stats()
	if want := int64(perDevice * (len(in10) + len(in20))); st.Replayed != want || int64(replayed) != want {
		t.Errorf("Replayed = %d, replay rows = %d, want %d", st.Replayed, replayed, want)
	}
	if want := int64(len(all) - replayed); st.DialedOut != want {
		t.Errorf("DialedOut = %d, want %d", st.DialedOut, want)
	}
}

func ptr[T any](v T) *T { return &v }
