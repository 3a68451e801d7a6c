package schemas

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// benchEnvelope is a realistic capture: a GET with browser-like headers and
// a 1.5 KiB JSON response with lineage and attributes.
func benchEnvelope() []byte {
	var body strings.Builder
	body.WriteString(`{"id":4242,"type":"movie","title":"Heat","year":1995,"genres":["crime","drama"],"overview":"`)
	for body.Len() < 1500 {
		fmt.Fprintf(&body, "word%d \\\"quoted\\\" ", body.Len()%97)
	}
	body.WriteString(`"}`)
	x := Exchange{
		CorrelationID: "7f7c2d1e-0b1c-4c55-9a4e-3c1d2b7e9f00",
		CapturedAt:    time.Date(2026, 11, 21, 10, 15, 2, 123e6, time.UTC),
		Request: Request{Method: "GET", Scheme: "https", Host: "api.example.com", Path: "/v1/titles/4242", Query: "lang=en&region=us",
			Headers: map[string][]string{"Accept": {"application/json"}, "Accept-Language": {"en-US,en;q=0.9"},
				"User-Agent": {"catalog-app/8.12 (tv; android 14)"}, "Authorization": {"Bearer eyJhbGciOiJIUzI1NiJ9.c2Vzc2lvbg.c2ln"},
				"X-Request-Id": {"req-5f2b9c1a"}}},
		Response: &Response{Status: 200, LatencyMS: 12.7, Body: []byte(body.String()),
			Headers: map[string][]string{"Content-Type": {"application/json"}, "Cache-Control": {"max-age=60"}, "Etag": {`"5f2b9c1a"`}}},
		Lineage:    map[string]string{"catalog-service": "v8812", "pricing-service": "v311"},
		Attributes: map[string]string{"device_type": "tv", "region": "us-east-1", "device_id": "d-19"},
	}
	raw, err := json.Marshal(x.Envelope())
	if err != nil {
		panic(err)
	}
	return raw
}

// BenchmarkDecode decodes a realistic 2.3 KiB capture envelope, as the
// pipeline's intake does for every record. x-encoding-json is its time
// over that of unmarshaling the same bytes into an Envelope with
// encoding/json alone (less than the whole of Decode): the fastest of many
// interleaved blocks of each, so that load from other processes, which
// only ever slows a block down, weighs on neither.
func BenchmarkDecode(b *testing.B) {
	raw := benchEnvelope()
	decode := func() {
		if _, err := Decode(raw, Coordinates{Topic: "captures", Offset: 7}, DecodeOptions{MaxBodyBytes: 8 << 20}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		decode()
	}
	b.ReportMetric(fastestRatio(decode, func() {
		var env Envelope
		if err := json.Unmarshal(raw, &env); err != nil {
			b.Fatal(err)
		}
	}), "x-encoding-json")
}

// fastestRatio times f and base in 50 interleaved blocks of 100 calls and
// returns the ratio of their fastest blocks.
func fastestRatio(f, base func()) float64 {
	const rounds, block = 50, 100
	best := [2]time.Duration{1 << 62, 1 << 62}
	for range rounds {
		for i, fn := range []func(){f, base} {
			start := time.Now()
			for range block {
				fn()
			}
			best[i] = min(best[i], time.Since(start))
		}
	}
	return float64(best[0]) / float64(best[1])
}
