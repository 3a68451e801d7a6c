package compare

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

func TestQuantilesExact(t *testing.T) {
	var q quantiles
	if got := q.percentiles(0.5, 0.99); !slices.Equal(got, []float64{0, 0}) {
		t.Errorf("empty = %v, want zeros", got)
	}
	// 1..1000 in a shuffled order: nearest rank is exact.
	for _, v := range rand.New(rand.NewPCG(1, 2)).Perm(1000) {
		q.add(float64(v + 1))
	}
	if got, want := q.percentiles(0.5, 0.9, 0.99, 1), []float64{500, 900, 990, 1000}; !slices.Equal(got, want) {
		t.Errorf("percentiles = %v, want %v", got, want)
	}
	var one quantiles
	one.add(7)
	if got := one.percentiles(0.01, 0.5, 0.99); !slices.Equal(got, []float64{7, 7, 7}) {
		t.Errorf("one value = %v", got)
	}
}

func TestQuantilesSketchPastTheExactLimit(t *testing.T) {
	// 100,000 values, log-uniform from 0.01 ms to 100 s, plus zeros: past
	// exactLimit the sketch answers within its relative accuracy, and the
	// answer does not depend on the order of the values.
	r := rand.New(rand.NewPCG(3, 4))
	values := make([]float64, 100_000)
	for i := range values {
		values[i] = math.Pow(10, -2+7*r.Float64())
	}
	for i := range 500 {
		values[i] = 0
	}
	var a, b quantiles
	for _, v := range values {
		a.add(v)
	}
	r.Shuffle(len(values), func(i, j int) { values[i], values[j] = values[j], values[i] })
	for _, v := range values {
		b.add(v)
	}
	if a.exact != nil || a.buckets == nil {
		t.Fatal("the sketch did not take over past exactLimit")
	}
	if len(a.buckets) > 1200 {
		t.Errorf("the sketch holds %d buckets", len(a.buckets))
	}
	ps := []float64{0.001, 0.5, 0.9, 0.99, 0.999}
	got := a.percentiles(ps...)
	if other := b.percentiles(ps...); !slices.Equal(got, other) {
		t.Errorf("order changed the percentiles: %v vs %v", got, other)
	}
	slices.Sort(values)
	for i, p := range ps {
		want := values[rank(p, int64(len(values)))-1]
		if want == 0 {
			if got[i] != 0 {
				t.Errorf("p%v = %v, want 0", p, got[i])
			}

			continue
		}
		if rel := math.Abs(got[i]-want) / want; rel > sketchAccuracy {
			t.Errorf("p%v = %v, want %v within %v (off by %.4f)", p, got[i], want, sketchAccuracy, rel)
		}
	}
}

func TestSpillRoundTrip(t *testing.T) {
	rows := []*sideRow{
		{cid: "a", method: "GET", path: "/v1/x", status: 200, latency: 12.5, hasLatency: true,
			headers: map[string][]string{"Content-Type": {"application/json"}, "X-Empty": {}},
			body:    []byte(`{"a":1}`), lineage: map[string]string{"svc": "v1"}},
		{cid: "b", errKind: "timeout"}, // no response at all
		{cid: "c", status: 204, body: []byte{}, headers: map[string][]string{}, lineage: map[string]string{}},
		{cid: "ü/\x00", body: []byte{0xff, 0x00, 0xfe}, latency: math.Inf(1), hasLatency: true},
	}
	path := filepath.Join(t.TempDir(), "p.spill")
	w, err := createSpill(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := w.write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	var got []*sideRow
	if err := readSpill(path, func(r *sideRow) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, rows) {
		t.Errorf("read back\n %+v\nwant\n %+v", got, rows)
	}

	// A corrupt payload is an error, not a panic.
	payload := appendRow(nil, rows[0])
	for n := range len(payload) {
		if _, err := decodeRow(payload[:n]); err == nil {
			t.Fatalf("a payload cut to %d of %d bytes decoded", n, len(payload))
		}
	}
}

func FuzzDecodeRow(f *testing.F) {
	f.Add(appendRow(nil, &sideRow{cid: "a", headers: map[string][]string{"k": {"v"}}, lineage: map[string]string{"x": "y"}}))
	f.Fuzz(func(t *testing.T, payload []byte) {
		r, err := decodeRow(payload)
		if err != nil {
			return
		}
		again, err := decodeRow(appendRow(nil, r))
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Errorf("re-encoding %+v gave %+v, %v", r, again, err)
		}
	})
}

func TestPathSamplesAreTheSmallestIDs(t *testing.T) {
	a := newAggregator(nil)
	ids := []string{"k", "c", "x", "a", "m", "b", "c", "z", "d"}
	for _, id := range ids {
		a.addPath(a.paths, "$.x", id)
	}
	ps := a.paths["$.x"]
	if ps.count != int64(len(ids)) || !slices.Equal(ps.samples, []string{"a", "b", "c", "d", "k"}) {
		t.Errorf("path stat = %+v", ps)
	}
}

func TestBuildTableKeepsDuplicatesInOrder(t *testing.T) {
	tbl := buildTable{}
	a1, a2, b := &sideRow{cid: "a", path: "1"}, &sideRow{cid: "a", path: "2"}, &sideRow{cid: "b"}
	tbl.insert(a1)
	tbl.insert(b)
	tbl.insert(a2)
	if got := tbl.pop("a"); got != a1 {
		t.Errorf("first pop = %+v, want a1", got)
	}
	if got := tbl.pop("nope"); got != nil {
		t.Errorf("pop of a missing id = %+v", got)
	}
	var left []*sideRow
	if err := tbl.drain(func(p pair) error { left = append(left, p.replay); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 || !slices.Contains(left, a2) || !slices.Contains(left, b) || len(tbl) != 0 {
		t.Errorf("drained %+v, table %v", left, tbl)
	}
}
