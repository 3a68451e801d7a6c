package pipeline

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/replaykit/replay/normalize"
	"github.com/replaykit/replay/schemas"
)

// benchPair is a realistic pair of title responses (about 1.3 KiB each),
// equal once normalized: key order, shuffled genres and cast, timestamps
// and trace ids, a price off by a cent, a renamed member.
func benchPair() (production, replay []byte) {
	production = benchCompact(`{"id": 4242, "type": "movie", "title": "Heat", "year": 1995, "runtime": 170, "rating": 8.3,
	"generatedAt": "2026-11-21T10:15:02.123Z", "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
	"genres": ["crime", "drama", "thriller", "action"],
	"overview": "Obsessive master thief Neil McCauley leads a top-notch crew on various daring heists throughout Los Angeles while determined detective Vincent Hanna pursues him without rest.",
	"cast": [{"id": 1158, "name": "Al Pacino", "character": "Lt. Vincent Hanna"}, {"id": 380, "name": "Robert De Niro", "character": "Neil McCauley"},
		{"id": 5576, "name": "Val Kilmer", "character": "Chris Shiherlis"}, {"id": 10127, "name": "Jon Voight", "character": "Nate"}],
	"offers": [{"region": "US", "type": "svod", "price": 0, "currency": "USD", "traceId": "a1"},
		{"region": "US", "type": "tvod", "price": 3.99, "currency": "USD", "traceId": "a2"},
		{"region": "GB", "type": "tvod", "price": 3.49, "currency": "GBP", "traceId": "a3"}],
	"links": {"self": "/v1/titles/4242", "credits": "/v1/titles/4242/credits", "similar": "/v1/titles/4242/similar"}}`)
	replay = benchCompact(`{"type": "movie", "id": 4242, "year": 1995, "title": "Heat", "runtime": 170, "score": 8.3,
	"traceId": "00f067aa0ba902b74bf92f3577b34da6", "generatedAt": "2026-11-21T10:15:09.871Z",
	"genres": ["action", "crime", "drama", "thriller"],
	"overview": "Obsessive master thief Neil McCauley leads a top-notch crew on various daring heists throughout Los Angeles while determined detective Vincent Hanna pursues him without rest.",
	"cast": [{"id": 380, "name": "Robert De Niro", "character": "Neil McCauley"}, {"id": 1158, "name": "Al Pacino", "character": "Lt. Vincent Hanna"},
		{"id": 10127, "name": "Jon Voight", "character": "Nate"}, {"id": 5576, "name": "Val Kilmer", "character": "Chris Shiherlis"}],
	"offers": [{"region": "US", "type": "svod", "price": 0.0, "currency": "USD", "traceId": "b1"},
		{"region": "US", "type": "tvod", "price": 4.0, "currency": "USD", "traceId": "b2"},
		{"region": "GB", "type": "tvod", "price": 3.49, "currency": "GBP", "traceId": "b3"}],
	"links": {"credits": "/v1/titles/4242/credits", "self": "/v1/titles/4242", "similar": "/v1/titles/4242/similar"}}`)
	return production, replay
}

func benchCompact(s string) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// benchLivePipeline returns a pipeline with live comparison on and rules
// that make benchPair equal, and the pair as observe receives it.
func benchLivePipeline(b *testing.B, production, replay []byte) (*Pipeline, *schemas.Exchange, *schemas.ReplayRow) {
	cfg := validConfig()
	cfg.LiveCompare.Enabled = true
	p, err := New(cfg, &memSource{}, &memSink{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	n, err := normalize.Compile(normalize.Config{Rules: normalize.Rules{
		IgnorePaths: []string{"$.generatedAt", "$..traceId"},
		SortArrays:  []normalize.SortRule{{Path: "$.genres"}, {Path: "$.cast", By: "id"}},
		Transforms:  []normalize.Transform{{Rename: &normalize.RenameTransform{Path: "$.rating", To: "score"}}},
		Tolerances:  []normalize.Tolerance{{Path: "$.offers[*].price", Absolute: 0.01}},
	}})
	if err != nil {
		b.Fatal(err)
	}
	p.SetNormalizer(n)
	headers := map[string][]string{"Content-Type": {"application/json"}, "Cache-Control": {"max-age=60"}}
	x := &schemas.Exchange{
		CorrelationID: "7f7c2d1e-bench",
		Request:       schemas.Request{Method: "GET", Path: "/v1/titles/4242"},
		Response:      &schemas.Response{Status: 200, Headers: headers, Body: production},
		Lineage:       map[string]string{"catalog-service": "v8812"},
	}
	row := &schemas.ReplayRow{
		CorrelationID: x.CorrelationID,
		Response:      &schemas.Response{Status: 200, Headers: headers, Body: replay},
		Lineage:       map[string]string{"catalog-service": "v8812"},
	}
	return p, x, row
}

// decodeBaselineRatio returns how many times longer observe takes than
// decoding both bodies with encoding/json into any, timed in interleaved
// blocks so that load from other processes weighs on both alike (as
// normalize's benchmarks do).
func decodeBaselineRatio(b *testing.B, observe func(), production, replay []byte) float64 {
	const rounds, block = 20, 100
	var live, decode time.Duration
	for range rounds {
		start := time.Now()
		for range block {
			observe()
		}
		live += time.Since(start)
		start = time.Now()
		for range block {
			var p, r any
			if json.Unmarshal(production, &p) != nil || json.Unmarshal(replay, &r) != nil {
				b.Fatal("decode")
			}
		}
		decode += time.Since(start)
	}
	return float64(live) / float64(decode)
}

// BenchmarkLiveCompare is the per-pair cost of live comparison on the
// worker: naming the endpoint, the lineage check, normalize and compare,
// and counting. x-decode is its time over that of merely decoding both
// bodies with encoding/json, measured in the same run.
func BenchmarkLiveCompare(b *testing.B) {
	for _, bc := range []struct {
		name, want string
		edit       func(replay []byte) []byte
	}{
		{"match", VerdictMatch, func(r []byte) []byte { return r }},
		// A mismatch also lists the differing paths and builds the JSON
		// Patch, which live comparison does not need but batch does.
		{"mismatch", VerdictMismatch, func(r []byte) []byte {
			return bytes.Replace(r, []byte(`"year":1995`), []byte(`"year":1996`), 1)
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			prod, rep := benchPair()
			rep = bc.edit(rep)
			p, x, row := benchLivePipeline(b, prod, rep)
			if v := p.liveCompare(p.names.Endpoint("GET", x.Request.Path), x, row); v != bc.want {
				b.Fatalf("verdict %q, want %q", v, bc.want)
			}
			observe := func() { p.observe(x, row) }
			b.SetBytes(int64(len(prod) + len(rep)))
			b.ReportAllocs()
			for b.Loop() {
				observe()
			}
			b.ReportMetric(decodeBaselineRatio(b, observe, prod, rep), "x-decode")
		})
	}
}
