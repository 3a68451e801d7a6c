package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/replaykit/replay/compare"
	"github.com/replaykit/replay/config"
	"github.com/replaykit/replay/schemas"
	"github.com/replaykit/replay/sinks"
)

// expectedCopies is the documented rule of amplify (see
// pipeline.AmplifyConfig), written out independently: floor(f), plus one
// when frac(f) > u, u = the top 53 bits of XXH64("amplify:" + correlation
// ID) over 2^53.
func expectedCopies(f float64, cid string) int {
	u := float64(xxhash.Sum64String("amplify:"+cid)>>11) / (1 << 53)
	n := math.Floor(f)
	if f-n > u {
		n++
	}
	return int(n)
}

// echoTarget answers every request with the body production logged for
// its path, and counts requests by X-Replay-Id.
type echoTarget struct {
	mu   sync.Mutex
	seen map[string]int
}

func (e *echoTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.seen[r.Header.Get("X-Replay-Id")]++
	e.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
}

// TestEvacuationMultipliersEndToEnd replays a capture file with tv ×2,
// android ×1.5 and everything else ×1 through `replay run`, then checks
// the requests the target saw, the rows of replay_responses and what
// compare makes of them.
func TestEvacuationMultipliersEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	types := []string{"tv", "android", "web", "ios"}
	factors := map[string]float64{"tv": 2, "android": 1.5}
	const perType = 250
	device := map[string]string{} // correlation ID → device type
	want := map[string]int{}      // device type → requests
	var capture bytes.Buffer
	for i := range perType * len(types) {
		typ := types[i%len(types)]
		cid := fmt.Sprintf("amp-%04d", i)
		device[cid] = typ
		f, ok := factors[typ]
		if !ok {
			f = 1
		}
		want[typ] += expectedCopies(f, cid)
		path := fmt.Sprintf("/v1/titles/%d", i)
		line, err := json.Marshal(schemas.Envelope{
			CorrelationID: cid, CapturedAt: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second),
			Request:    &schemas.EnvelopeRequest{Method: "GET", Scheme: "https", Host: "api.example.com", Path: path},
			Response:   &schemas.EnvelopeResponse{Status: 200, Headers: map[string][]string{"Content-Type": {"application/json"}}, Body: fmt.Sprintf(`{"path":%q}`, path)},
			Attributes: map[string]string{"device_type": typ},
		})
		if err != nil {
			t.Fatal(err)
		}
		capture.Write(append(line, '\n'))
	}
	if want["tv"] != 2*perType || want["web"] != perType || want["ios"] != perType {
		t.Fatalf("integer factors must give exactly n·f requests: %v", want)
	}
	if a := float64(want["android"]) / perType; math.Abs(a-1.5) > 0.1 {
		t.Fatalf("android ×1.5 predicts %d requests for %d records", want["android"], perType)
	}
	file := filepath.Join(dir, "capture.ndjson")
	if err := os.WriteFile(file, capture.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	tgt := &echoTarget{seen: map[string]int{}}
	srv := httptest.NewServer(tgt)
	defer srv.Close()
	catalogDB, warehouse := filepath.Join(dir, "catalog.db"), filepath.Join(dir, "wh")
	args := []string{"run", "--run-id", "amp-1", "--target", srv.URL,
		"--set", "source.type=file", "--set", "source.file.path=" + file,
		"--set", "amplify.key=attribute:device_type", "--set", "amplify.factors=tv=2,android=1.5",
		"--set", "replay.workers=8",
		"--set", "sink.catalog.uri=" + catalogDB, "--set", "sink.catalog.warehouse=" + warehouse,
		"--set", "log.level=warn"}
	var stdout, stderr bytes.Buffer
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("replay run exited %d\n%s", code, stderr.String())
	}

	// The target saw exactly the predicted requests per device type, each
	// replay ID once.
	atTarget := map[string]int{}
	for id, n := range tgt.seen {
		if n != 1 {
			t.Errorf("%s reached the target %d times", id, n)
		}
		base, _, _ := strings.Cut(id, "#")
		atTarget[device[base]]++
	}
	if !maps.Equal(atTarget, want) {
		t.Errorf("requests at the target per device type = %v, want %v", atTarget, want)
	}

	cfg := config.Default()
	cfg.Sink.Catalog.URI, cfg.Sink.Catalog.Warehouse = catalogDB, warehouse
	sink, err := sinks.OpenIceberg(ctx, cfg.Sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	rows := map[string]int{}
	copies := 0
	for _, r := range scanRows(t, ctx, sink, schemas.TableReplay, "amp-1") {
		id, from := r.str("correlation_id"), r.str("amplified_from")
		base, n, isCopy := strings.Cut(id, "#")
		switch {
		case isCopy && from != base:
			t.Errorf("copy %s has amplified_from %q, want %q", id, from, base)
		case !isCopy && from != "":
			t.Errorf("%s is the record's own replay but has amplified_from %q", id, from)
		case isCopy && (n != "2" || tgt.seen[id] != 1): // factors ≤ 2: one copy at most
			t.Errorf("copy %s was not sent as such", id)
		}
		if isCopy {
			copies++
		}
		rows[device[base]]++
	}
	if !maps.Equal(rows, want) {
		t.Errorf("replay_responses rows per device type = %v, want %v", rows, want)
	}

	ccfg := compare.DefaultConfig()
	ccfg.SpillDir = t.TempDir()
	sum, err := compare.Run(ctx, ccfg, sink, compare.Options{RunID: "amp-1"})
	if err != nil {
		t.Fatal(err)
	}
	o := sum.Overall
	records := int64(perType * len(types))
	if o.ReplayAmplified != int64(copies) || o.OnlyReplay != 0 || o.Joined != records || o.Matched != records || o.ReplayTotal != records {
		t.Errorf("compare overall = %+v; want %d amplified, no only-replay, %d joined and matched", o, copies, records)
	}
}
