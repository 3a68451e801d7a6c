package bench

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/replaykit/replay/schemas"
)

// capturedAt is when the first generated exchange was served; the others
// follow 1 ms apart.
var capturedAt = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

// Sizes of the production response bodies a capture set carries: uniform
// in [Min, Max] bytes.
type Sizes struct{ Min, Max int }

// exchange returns the i-th generated exchange: a GET of a catalog title
// with the headers a browser or app sends (an Authorization header among
// them, which replay redacts in every row), and a JSON response of a size
// drawn from sizes, with lineage and attributes. The same i always gives
// the same exchange.
func exchange(i int, sizes Sizes) schemas.Exchange {
	rng := newRand(i)
	size := sizes.Min
	if sizes.Max > sizes.Min {
		size += rng.IntN(sizes.Max - sizes.Min + 1)
	}
	id := 1000 + i
	return schemas.Exchange{
		CorrelationID: fmt.Sprintf("bench-%08d", i),
		CapturedAt:    capturedAt.Add(time.Duration(i) * time.Millisecond),
		Request: schemas.Request{
			Method: http.MethodGet, Scheme: "https", Host: "api.example.com",
			Path: fmt.Sprintf("/v1/titles/%d", id), Query: "lang=en&region=us",
			Headers: map[string][]string{
				"Accept":          {"application/json"},
				"Accept-Language": {"en-US,en;q=0.9"},
				"User-Agent":      {"catalog-app/8.12 (tv; android 14)"},
				"Authorization":   {"Bearer eyJhbGciOiJIUzI1NiJ9.c2Vzc2lvbg.c2lnbmF0dXJl"},
				"X-Request-Id":    {fmt.Sprintf("req-%08x", rng.Uint32())},
			},
		},
		Response: &schemas.Response{
			Status: http.StatusOK,
			Headers: map[string][]string{
				"Content-Type":  {"application/json"},
				"Cache-Control": {"max-age=60"},
				"Etag":          {fmt.Sprintf(`"%016x"`, rng.Uint64())},
			},
			Body:      titleBody(id, size, rng),
			LatencyMS: 5 + rng.Float64()*40,
		},
		Lineage:    map[string]string{"catalog-service": "v8812", "pricing-service": "v311"},
		Attributes: map[string]string{"device_type": "tv", "region": "us-east-1", "device_id": fmt.Sprintf("d-%d", i%5000)},
	}
}

// newRand returns the generator of the i-th exchange.
func newRand(i int) *rand.Rand { return rand.New(rand.NewPCG(uint64(i), 0x7265706c6179)) }

// captureValue is the i-th generated exchange as a capture log record
// value: its envelope, as JSON.
func captureValue(i int, sizes Sizes) []byte {
	x := exchange(i, sizes)
	raw, err := json.Marshal(x.Envelope())
	if err != nil {
		panic(fmt.Sprintf("bench: marshal envelope %d: %v", i, err)) // cannot happen for these types
	}
	return raw
}

// syllables make up the overview's words: text that compresses about as
// well as real prose (zstd: about 3×), not the 30× of a repeated phrase.
var syllables = strings.Fields(`ka ri to ne sa mo lu vi pe da go ha ji ke ro
	ma ni su te yo ba chi de fu gi ho ku la me no pa qui ra se ti um ve wa xo
	zi bre cla dro fla gri ple sto tri ver ant ess ion ing ous`)

// titleBody returns a JSON object of size bytes (at least about 250): a
// catalog title whose overview is padded with pseudo-words to reach the
// size.
func titleBody(id, size int, rng *rand.Rand) []byte {
	head := fmt.Sprintf(`{"id":%d,"type":"movie","title":"Title %d","year":%d,"runtime":%d,"rating":%.1f,`+
		`"genres":["crime","drama","thriller"],"cast":[{"id":%d,"name":"Actor One"},{"id":%d,"name":"Actor Two"}],`+
		`"links":{"self":"/v1/titles/%d"},"updatedAt":"2026-11-%02dT%02d:%02d:%02dZ","overview":"`,
		id, id, 1950+id%75, 80+id%90, 5+float64(id%50)/10, rng.IntN(100000), rng.IntN(100000), id,
		1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60))
	const tail = `"}`
	b := make([]byte, 0, size+16)
	b = append(b, head...)
	for len(b)+len(tail) < size {
		if b[len(b)-1] != '"' {
			b = append(b, ' ')
		}
		for range 1 + rng.IntN(3) {
			b = append(b, syllables[rng.IntN(len(syllables))]...)
		}
	}
	if over := len(b) + len(tail) - size; over > 0 && len(b)-over > len(head) {
		b = b[:len(b)-over]
	}
	return append(b, tail...)
}
