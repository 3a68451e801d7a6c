package normalize

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

var jsonHeaders = map[string][]string{"Content-Type": {"application/json"}}

// benchBodies returns a realistic pair (about 1.5 KiB each): a title detail
// response from the old and the new service, equal once normalized (key
// order, shuffled cast and genres, timestamps, trace ids, a price off by a
// cent, a renamed member).
func benchBodies() (production, replay []byte) {
	production = compact(`{
	"id": 4242, "type": "movie", "title": "Heat", "originalTitle": "Heat", "year": 1995, "runtime": 170,
	"rating": 8.3, "certification": "R", "generatedAt": "2026-11-21T10:15:02.123Z", "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
	"genres": ["crime", "drama", "thriller", "action"],
	"overview": "Obsessive master thief Neil McCauley leads a top-notch crew on various daring heists throughout Los Angeles while determined detective Vincent Hanna pursues him without rest.",
	"cast": [
		{"id": 1158, "name": "Al Pacino", "character": "Lt. Vincent Hanna", "order": 0},
		{"id": 380, "name": "Robert De Niro", "character": "Neil McCauley", "order": 1},
		{"id": 5576, "name": "Val Kilmer", "character": "Chris Shiherlis", "order": 2},
		{"id": 10127, "name": "Jon Voight", "character": "Nate", "order": 3},
		{"id": 3197, "name": "Tom Sizemore", "character": "Michael Cheritto", "order": 4},
		{"id": 6200, "name": "Diane Venora", "character": "Justine Hanna", "order": 5}
	],
	"offers": [
		{"region": "US", "type": "svod", "provider": "streamco", "price": 0, "currency": "USD", "traceId": "a1"},
		{"region": "US", "type": "tvod", "provider": "rentco", "price": 3.99, "currency": "USD", "traceId": "a2"},
		{"region": "GB", "type": "tvod", "provider": "rentco", "price": 3.49, "currency": "GBP", "traceId": "a3"}
	],
	"images": {"poster": "https://img.example.com/p/4242.jpg", "backdrop": "https://img.example.com/b/4242.jpg"},
	"links": {"self": "/v1/titles/4242", "credits": "/v1/titles/4242/credits", "similar": "/v1/titles/4242/similar"}
}`)
	replay = compact(`{
	"type": "movie", "id": 4242, "year": 1995, "title": "Heat", "originalTitle": "Heat", "runtime": 170,
	"score": 8.3, "certification": "R", "traceId": "00f067aa0ba902b74bf92f3577b34da6", "generatedAt": "2026-11-21T10:15:09.871Z",
	"genres": ["action", "crime", "drama", "thriller"],
	"overview": "Obsessive master thief Neil McCauley leads a top-notch crew on various daring heists throughout Los Angeles while determined detective Vincent Hanna pursues him without rest.",
	"cast": [
		{"id": 380, "name": "Robert De Niro", "character": "Neil McCauley", "order": 1},
		{"id": 1158, "name": "Al Pacino", "character": "Lt. Vincent Hanna", "order": 0},
		{"id": 3197, "name": "Tom Sizemore", "character": "Michael Cheritto", "order": 4},
		{"id": 5576, "name": "Val Kilmer", "character": "Chris Shiherlis", "order": 2},
		{"id": 6200, "name": "Diane Venora", "character": "Justine Hanna", "order": 5},
		{"id": 10127, "name": "Jon Voight", "character": "Nate", "order": 3}
	],
	"offers": [
		{"region": "US", "type": "svod", "provider": "streamco", "price": 0.0, "currency": "USD", "traceId": "b1"},
		{"region": "US", "type": "tvod", "provider": "rentco", "price": 4.0, "currency": "USD", "traceId": "b2"},
		{"region": "GB", "type": "tvod", "provider": "rentco", "price": 3.49, "currency": "GBP", "traceId": "b3"}
	],
	"images": {"backdrop": "https://img.example.com/b/4242.jpg", "poster": "https://img.example.com/p/4242.jpg"},
	"links": {"credits": "/v1/titles/4242/credits", "self": "/v1/titles/4242", "similar": "/v1/titles/4242/similar"}
}`)
	return production, replay
}

func compact(s string) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		panic(err)
	}
	return b.Bytes()
}

func benchNormalizer(tb testing.TB) *Normalizer {
	n, err := Compile(Config{
		Routes: []string{"/v1/users/{user}/recommendations"},
		Rules: Rules{
			IgnorePaths: []string{"$.generatedAt", "$..traceId"},
			SortArrays:  []SortRule{{Path: "$.genres"}, {Path: "$.cast", By: "id"}},
			Transforms:  []Transform{{Rename: &RenameTransform{Path: "$.rating", To: "score"}}},
			Tolerances:  []Tolerance{{Path: "$.offers[*].price", Absolute: 0.01}},
		},
		Endpoints: []EndpointRules{{Match: "/v1/users/{user}/recommendations", Rules: Rules{IgnorePaths: []string{"$.year"}}}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// decodeRatio returns how many times longer compare takes than decoding
// both bodies with encoding/json into any. The two are timed in interleaved
// blocks, so that load from other processes weighs on both alike.
func decodeRatio(tb testing.TB, compare func(), production, replay []byte) float64 {
	const rounds, block = 20, 100
	var compareTime, decodeTime time.Duration
	for range rounds {
		start := time.Now()
		for range block {
			compare()
		}
		compareTime += time.Since(start)
		start = time.Now()
		for range block {
			var p, r any
			if json.Unmarshal(production, &p) != nil || json.Unmarshal(replay, &r) != nil {
				tb.Fatal("decode")
			}
		}
		decodeTime += time.Since(start)
	}
	return float64(compareTime) / float64(decodeTime)
}

// BenchmarkCompare compares the realistic pair. x-decode is Compare's time
// over the time of merely decoding both bodies with encoding/json, measured
// in the same run (see decodeRatio).
func BenchmarkCompare(b *testing.B) {
	n := benchNormalizer(b)
	prod, rep := benchBodies()
	ps := Side{Status: 200, Headers: jsonHeaders, Body: prod}
	rs := Side{Status: 200, Headers: jsonHeaders, Body: rep}
	compare := func() { n.Compare("GET", "/v1/titles/4242", ps, rs) }
	if res := n.Compare("GET", "/v1/titles/4242", ps, rs); !res.Equal {
		b.Fatalf("bench pair differs in %q", res.Paths)
	}
	b.SetBytes(int64(len(prod) + len(rep)))
	b.ReportAllocs()
	for b.Loop() {
		compare()
	}
	b.ReportMetric(decodeRatio(b, compare, prod, rep), "x-decode")
}

// BenchmarkCompareDiff is BenchmarkCompare with a real difference, which
// adds the path walk and the JSON Patch.
func BenchmarkCompareDiff(b *testing.B) {
	n := benchNormalizer(b)
	prod, rep := benchBodies()
	rep = bytes.Replace(rep, []byte(`"year":1995`), []byte(`"year":1996`), 1)
	ps := Side{Status: 200, Headers: jsonHeaders, Body: prod}
	rs := Side{Status: 200, Headers: jsonHeaders, Body: rep}
	compare := func() { n.Compare("GET", "/v1/titles/4242", ps, rs) }
	if res := n.Compare("GET", "/v1/titles/4242", ps, rs); len(res.Paths) != 1 || res.Paths[0] != "$.year" {
		b.Fatalf("bench pair differs in %q, want $.year", res.Paths)
	}
	b.SetBytes(int64(len(prod) + len(rep)))
	b.ReportAllocs()
	for b.Loop() {
		compare()
	}
	b.ReportMetric(decodeRatio(b, compare, prod, rep), "x-decode")
}

// BenchmarkDecodeBaseline decodes the same two bodies with encoding/json
// into any, to read side by side with BenchmarkCompare.
func BenchmarkDecodeBaseline(b *testing.B) {
	prod, rep := benchBodies()
	b.SetBytes(int64(len(prod) + len(rep)))
	b.ReportAllocs()
	for b.Loop() {
		var p, r any
		if json.Unmarshal(prod, &p) != nil || json.Unmarshal(rep, &r) != nil {
			b.Fatal("decode")
		}
	}
}
