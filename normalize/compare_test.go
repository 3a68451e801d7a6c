package normalize

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/ohler55/ojg/jp"
)

func TestDiffersOnlyIn(t *testing.T) {
	noise := map[string]bool{"$.generatedAt": true, "header:Date": true}
	tests := []struct {
		paths []string
		want  bool
	}{
		{nil, true},
		{[]string{"$.generatedAt"}, true},
		{[]string{"$.generatedAt", "header:Date"}, true},
		{[]string{"$.generatedAt", "$.year"}, false},
		{[]string{"status"}, false},
	}
	for _, tt := range tests {
		if got := (Result{Paths: tt.paths}).DiffersOnlyIn(noise); got != tt.want {
			t.Errorf("%q: got %v", tt.paths, got)
		}
	}
}

// TestPathsRoundTrip checks that every reported path, pasted into
// ignore_paths, makes the difference go away.
func TestPathsRoundTrip(t *testing.T) {
	prod := []byte(`{"a b": 1, "it's": {"x\\y": 2}, "list": [1, {"k": 2}], "deep": {"v": [0, 0, 3]}, "ok": 1, "9": 1, "_u": 1}`)
	rep := []byte(`{"a b": 2, "it's": {"x\\y": 3}, "list": [1, {"k": 3}, 9], "deep": {"v": [0, 0, 4]}, "ok": 1, "9": 2, "_u": 2}`)
	n, err := Compile(Config{})
	if err != nil {
		t.Fatal(err)
	}
	res := n.Compare("GET", "/x", Side{Status: 200, Body: prod}, Side{Status: 200, Body: rep})
	if res.Equal || len(res.Paths) != 7 {
		t.Fatalf("want 7 differing paths, got %q", res.Paths)
	}
	for _, p := range res.Paths {
		if _, err := jp.ParseString(p); err != nil {
			t.Errorf("path %s does not parse: %v", p, err)
		}
	}
	n, err = Compile(Config{Rules: Rules{IgnorePaths: res.Paths}})
	if err != nil {
		t.Fatalf("paths as ignore_paths: %v", err)
	}
	if res := n.Compare("GET", "/x", Side{Status: 200, Body: prod}, Side{Status: 200, Body: rep}); !res.Equal {
		t.Errorf("still differs in %q", res.Paths)
	}
}

// TestCompareKeepsConfigValues makes sure a value inserted by map_values is a
// copy: editing it in one document must not change the rule.
func TestCompareKeepsConfigValues(t *testing.T) {
	n, err := Compile(Config{Rules: Rules{
		Transforms:  []Transform{{MapValues: &MapValuesTransform{Path: "$.s", Values: map[string]any{"A": map[string]any{"x": 1, "drop": 2}}}}},
		IgnorePaths: []string{"$.s.drop"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		res := n.Compare("GET", "/", Side{Status: 200, Body: []byte(`{"s":"A"}`)}, Side{Status: 200, Body: []byte(`{"s":{"x":1,"drop":9}}`)})
		if !res.Equal {
			t.Fatalf("%q %s %s", res.Paths, res.Production, res.Replay)
		}
	}
}

// TestCompareConcurrent runs Compare from many goroutines over the same
// Normalizer (run with -race) and checks every result against the result of
// a sequential run.
func TestCompareConcurrent(t *testing.T) {
	n := benchNormalizer(t)
	prod, rep := benchBodies()
	type input struct {
		path      string
		prod, rep Side
	}
	var inputs []input
	for i := range 16 {
		r := rep
		if i%3 == 0 {
			r = bytes.Replace(rep, []byte(`"year":1995`), []byte(`"year":1996`), 1)
		}
		path := fmt.Sprintf("/v1/titles/%d", i)
		if i%4 == 0 {
			path = "/v1/users/u1/recommendations" // endpoint rules: merged and cached concurrently
		}
		inputs = append(inputs, input{path, Side{Status: 200, Headers: jsonHeaders, Body: prod}, Side{Status: 200, Headers: jsonHeaders, Body: r}})
	}
	want := make([]Result, len(inputs))
	for i, in := range inputs {
		want[i] = n.Compare("GET", in.path, in.prod, in.rep)
	}
	// Inputs 0 and 3 both change the year; only 0 is on the endpoint whose
	// rules ignore $.year.
	if !want[0].Equal || !slices.Equal(want[3].Paths, []string{"$.year"}) {
		t.Fatalf("endpoint rules: input 0 %q, input 3 %q; want [] and [$.year]", want[0].Paths, want[3].Paths)
	}
	n = benchNormalizer(t) // fresh: the endpoint cache fills concurrently
	var wg sync.WaitGroup
	errs := make(chan string, 8*len(inputs))
	for g := range 8 {
		wg.Go(func() {
			for k := range 50 {
				i := (g + k) % len(inputs)
				in := inputs[i]
				got := n.Compare("GET", in.path, in.prod, in.rep)
				if got.Equal != want[i].Equal || !slices.Equal(got.Paths, want[i].Paths) ||
					!bytes.Equal(got.Patch, want[i].Patch) || !bytes.Equal(got.Replay, want[i].Replay) {
					errs <- fmt.Sprintf("input %d: got %+v, want %+v", i, got, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// FuzzCompare checks, for any body, that a body equals itself and that the
// normalized body is canonical JSON that parses back to the same encoding.
func FuzzCompare(f *testing.F) {
	prod, rep := benchBodies()
	for _, s := range [][]byte{prod, rep, []byte(`{"a":[1,2.5e3,"\ud83d\ude00",null,true]}`), []byte(`12345678901234567890123.0`), []byte("not json"), {0xff, 0xfe}, []byte(`{"0":[{"":}]}`), []byte(`0.`)} {
		f.Add(s)
	}
	n, err := Compile(Config{Rules: Rules{
		IgnorePaths: []string{"$..traceId", "$.items[0]"},
		SortArrays:  []SortRule{{Path: "$..tags"}, {Path: "$.items", By: "id"}},
		Tolerances:  []Tolerance{{Path: "$..score", Absolute: 0.5}},
	}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		res := n.Compare("GET", "/f", Side{Status: 200, Body: body}, Side{Status: 200, Body: bytes.Clone(body)})
		if !res.Equal {
			t.Fatalf("a body differs from itself in %q", res.Paths)
		}
		if res.BodyMode == bodyJSON {
			doc, err := parseJSON(res.Production)
			if err != nil {
				t.Fatalf("normalized body %q does not parse: %v", res.Production, err)
			}
			if again := appendCanonical(nil, doc); !bytes.Equal(again, res.Production) {
				t.Fatalf("not canonical: %q → %q", res.Production, again)
			}
		}
	})
}
