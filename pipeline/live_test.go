package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/replaykit/replay/normalize"
	"github.com/replaykit/replay/schemas"
)

// liveRules are the compare.normalize rules of the live comparison tests:
// a route the automatic templating would not find, an ignored path, and
// Set-Cookie compared (it is redacted on both sides before it is).
var liveRules = normalize.Config{
	Routes: []string{"GET /v1/users/{user}/items"},
	Rules: normalize.Rules{
		IgnorePaths:    []string{"$.generatedAt"},
		CompareHeaders: []string{"Content-Type", "Set-Cookie"},
	},
}

func liveNormalizer(t testing.TB) *normalize.Normalizer {
	t.Helper()
	n, err := normalize.Compile(liveRules)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// liveCase is one captured exchange and what the target answers to its
// replay.
type liveCase struct {
	cid, path string
	kind      string // see liveKinds
	want      string // the verdict batch compare gives the pair
	endpoint  string
}

// liveKinds are the kinds of pairs, how many of each, and their verdict.
var liveKinds = []struct {
	kind, want string
	n          int
}{
	{"same", VerdictMatch, 20},         // equal once parsed (key order differs)
	{"ignored", VerdictMatch, 9},       // differs only at $.generatedAt
	{"redacted", VerdictMatch, 4},      // differs only in Set-Cookie, redacted on both sides; lineage keys not shared
	{"differs", VerdictMismatch, 7},    // $.year differs
	{"failed", VerdictMismatch, 3},     // the target closes the connection: no response
	{"no-capture", VerdictMismatch, 2}, // the capture has no response
	{"lineage", VerdictLineage, 5},     // catalog v8 in production, v9 in the replay (and the body differs)
}

// liveCases interleaves the kinds over two endpoints: even indexes are
// titles, odd ones a user's items (named by the configured route).
func liveCases() []liveCase {
	var out []liveCase
	for _, k := range liveKinds {
		for i := range k.n {
			c := liveCase{cid: fmt.Sprintf("%s-%d", k.kind, i), kind: k.kind, want: k.want}
			if len(out)%2 == 0 {
				c.path, c.endpoint = fmt.Sprintf("/v1/titles/%d", 100+len(out)), "GET /v1/titles/{id}"
			} else {
				c.path, c.endpoint = fmt.Sprintf("/v1/users/user%c/items", 'a'+len(out)%26), "GET /v1/users/{user}/items"
			}
			out = append(out, c)
		}
	}
	return out
}

// liveEnvelope is the capture of c.
func liveEnvelope(t testing.TB, c liveCase) []byte {
	t.Helper()
	env := schemas.Envelope{
		CorrelationID: c.cid,
		CapturedAt:    capturedAt,
		Request:       &schemas.EnvelopeRequest{Method: "GET", Scheme: "https", Host: "api.example.com", Path: c.path},
		Response: &schemas.EnvelopeResponse{Status: 200, Headers: map[string][]string{"Content-Type": {"application/json"}},
			Body: `{"year":1995,"title":"Heat","generatedAt":"2026-11-21T10:15:02Z","id":42}`},
	}
	switch c.kind {
	case "redacted":
		env.Response.Headers["Set-Cookie"] = []string{"s=production"}
		env.Lineage = map[string]string{"search": "v1"}
	case "no-capture":
		env.Response = nil
	case "lineage":
		env.Lineage = map[string]string{"catalog": "v8"}
	}
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// liveTarget answers each replay by the kind of its case, found by the
// X-Replay-Id header.
func liveTarget(t testing.TB, cases []liveCase) *httptest.Server {
	kinds := map[string]string{}
	for _, c := range cases {
		kinds[c.cid] = c.kind
	}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := `{"id":42,"title":"Heat","year":1995,"generatedAt":"2026-11-21T10:15:02Z"}`
		switch kinds[r.Header.Get("X-Replay-Id")] {
		case "ignored":
			body = `{"id":42,"title":"Heat","year":1995,"generatedAt":"2026-11-21T10:15:09Z"}`
		case "redacted":
			w.Header().Set("Set-Cookie", "s=candidate")
			w.Header().Set("X-Lineage-Catalog", "v9")
		case "differs":
			body = `{"id":42,"title":"Heat","year":1996,"generatedAt":"2026-11-21T10:15:02Z"}`
		case "lineage":
			w.Header().Set("X-Lineage-Catalog", "v9")
			body = `{"id":42,"title":"Heat (remastered)","year":1995}`
		case "failed":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			_ = conn.Close()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	}))
}

func liveConfig(target string) Config {
	cfg := validConfig()
	cfg.Replay.Target = target
	cfg.Replay.Retry.Attempts = 1 // a failed replay fails at once
	cfg.LiveCompare.Enabled = true
	return cfg
}

func liveRecords(t testing.TB, cases []liveCase) [][]schemas.Record {
	var vals [][]byte
	for _, c := range cases {
		vals = append(vals, liveEnvelope(t, c))
	}
	return interleave([][][]byte{vals}, 16)
}

// verdicts records every observation's verdict by correlation ID.
type verdicts struct {
	mu   sync.Mutex
	byID map[string]Observation
}

func (v *verdicts) ObserveReplay(o Observation) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.byID == nil {
		v.byID = map[string]Observation{}
	}
	v.byID[o.Production.CorrelationID] = o
}

// batchVerdict classifies a pair from the rows the sink was given, the way
// compare/classify.go does from the rows it reads back: lineage first,
// then the normalized comparison of the stored responses.
func batchVerdict(n *normalize.Normalizer, res *schemas.Result) string {
	x, r := res.Production.Exchange, res.Replay
	if normalize.LineageDiffers(x.Lineage, r.Lineage) {
		return VerdictLineage
	}
	var ps, rs normalize.Side
	if x.Response != nil {
		ps = normalize.Side{Status: x.Response.Status, Headers: x.Response.Headers, Body: x.Response.Body}
	}
	if r.Response != nil {
		rs = normalize.Side{Status: r.Response.Status, Headers: r.Response.Headers, Body: r.Response.Body}
	}
	if n.Compare(x.Request.Method, x.Request.Path, ps, rs).Equal {
		return VerdictMatch
	}
	return VerdictMismatch
}

// TestLiveCompareCountsLikeBatchCompare replays 50 pairs of known
// differences and checks Stats.Live and LiveTotal exactly, each
// observation's verdict, and that every verdict is the one batch compare
// gives the rows written.
func TestLiveCompareCountsLikeBatchCompare(t *testing.T) {
	cases := liveCases()
	srv := liveTarget(t, cases)
	defer srv.Close()
	norm := liveNormalizer(t)
	sink := &memSink{t: t}
	p, err := New(liveConfig(srv.URL), &memSource{batches: liveRecords(t, cases)}, sink, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	p.SetNormalizer(norm)
	seen := &verdicts{}
	p.SetObserver(seen)
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}

	st := p.Stats()
	wantTotal := LiveCounts{Compared: 50, Matched: 33, Mismatched: 12, Lineage: 5}
	if st.LiveTotal != wantTotal {
		t.Errorf("LiveTotal = %+v, want %+v", st.LiveTotal, wantTotal)
	}
	want := map[string]LiveCounts{}
	for _, c := range cases {
		n := want[c.endpoint]
		n.Compared++
		switch c.want {
		case VerdictMatch:
			n.Matched++
		case VerdictMismatch:
			n.Mismatched++
		case VerdictLineage:
			n.Lineage++
		}
		want[c.endpoint] = n
	}
	if !maps.Equal(st.Live, want) {
		t.Errorf("Live = %+v, want %+v", st.Live, want)
	}
	if got, wantRate := st.LiveTotal.MatchRate(), 33.0/45; got == nil || *got != wantRate {
		t.Errorf("MatchRate = %v, want %v", got, wantRate)
	}
	if st.ReplayErrors[schemas.ErrorReset] != 3 {
		t.Errorf("ReplayErrors = %v, want 3 resets (the failed kind)", st.ReplayErrors)
	}

	for _, c := range cases {
		o, ok := seen.byID[c.cid]
		switch {
		case !ok:
			t.Errorf("%s: not observed", c.cid)
		case o.Verdict != c.want || o.Endpoint != c.endpoint:
			t.Errorf("%s: observed %q at %q, want %q at %q", c.cid, o.Verdict, o.Endpoint, c.want, c.endpoint)
		}
	}
	flushed, _ := sink.results()
	if len(flushed) != len(cases) {
		t.Fatalf("%d results written, want %d", len(flushed), len(cases))
	}
	for _, res := range flushed {
		cid := res.Production.Exchange.CorrelationID
		if got, batch := seen.byID[cid].Verdict, batchVerdict(norm, res); got != batch {
			t.Errorf("%s: live verdict %q, batch compare's on the written rows %q", cid, got, batch)
		}
	}
}

// TestLiveCompareOff checks that with live comparison off nothing is
// compared or counted, while observations still name endpoints with the
// configured routes.
func TestLiveCompareOff(t *testing.T) {
	cases := liveCases()
	srv := liveTarget(t, cases)
	defer srv.Close()
	cfg := liveConfig(srv.URL)
	cfg.LiveCompare.Enabled = false
	p, err := New(cfg, &memSource{batches: liveRecords(t, cases)}, &memSink{t: t}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	p.SetNormalizer(liveNormalizer(t))
	seen := &verdicts{}
	p.SetObserver(seen)
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Live != nil || st.LiveTotal != (LiveCounts{}) {
		t.Errorf("live comparison off: Live = %v, LiveTotal = %+v; want nil and zero", st.Live, st.LiveTotal)
	}
	if len(seen.byID) != len(cases) {
		t.Fatalf("%d observations, want %d", len(seen.byID), len(cases))
	}
	for _, c := range cases {
		if o := seen.byID[c.cid]; o.Verdict != "" || o.Endpoint != c.endpoint {
			t.Errorf("%s: observed %q at %q, want no verdict at %q", c.cid, o.Verdict, o.Endpoint, c.endpoint)
		}
	}
}

// TestLiveCompareSampleAndEndpointLimit compares half the pairs, chosen by
// correlation ID, and counts endpoints past the first two as other.
func TestLiveCompareSampleAndEndpointLimit(t *testing.T) {
	var cases []liveCase
	for i := range 400 {
		// Four endpoints, in order: a, b, c, d, a, b, ...
		cases = append(cases, liveCase{cid: fmt.Sprintf("s-%d", i), kind: "same",
			path: fmt.Sprintf("/v1/%c/%d", 'a'+i%4, i)})
	}
	srv := liveTarget(t, cases)
	defer srv.Close()
	cfg := liveConfig(srv.URL)
	cfg.LiveCompare.SamplePercent = 50
	cfg.LiveCompare.MaxEndpoints = 2
	cfg.Replay.Workers = 1 // endpoints are first seen in log order
	logger, logs := newLogWatch(t)
	p, err := New(cfg, &memSource{batches: liveRecords(t, cases)}, &memSink{t: t}, logger)
	if err != nil {
		t.Fatal(err)
	}
	seen := &verdicts{}
	p.SetObserver(seen)
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := map[string]LiveCounts{}
	var sampled int64
	var tracked []string // the first two endpoints of sampled pairs, in log order
	for _, c := range cases {
		o := seen.byID[c.cid]
		if !liveSampled(c.cid, 50) {
			if o.Verdict != "" {
				t.Errorf("%s: not in the sample, but verdict %q", c.cid, o.Verdict)
			}
			continue
		}
		sampled++
		if o.Verdict != VerdictMatch {
			t.Errorf("%s: verdict %q, want match", c.cid, o.Verdict)
		}
		if len(tracked) < 2 && !slices.Contains(tracked, o.Endpoint) {
			tracked = append(tracked, o.Endpoint)
		}
		name := LiveOther
		if slices.Contains(tracked, o.Endpoint) {
			name = o.Endpoint
		}
		n := want[name]
		n.Compared++
		n.Matched++
		want[name] = n
	}
	if sampled < 150 || sampled > 250 {
		t.Errorf("%d of 400 pairs sampled at 50%%", sampled)
	}
	st := p.Stats()
	if !maps.Equal(st.Live, want) || st.LiveTotal != (LiveCounts{Compared: sampled, Matched: sampled}) {
		t.Errorf("Live = %+v, total %+v; want %+v, %d compared", st.Live, st.LiveTotal, want, sampled)
	}
	if len(st.Live) != 3 || st.Live[LiveOther].Compared == 0 {
		t.Errorf("Live endpoints %q, want two and other", slices.Sorted(maps.Keys(st.Live)))
	}
	if n := logs.count("live comparison: endpoint limit reached; pairs of further endpoints are counted as other"); n != 1 {
		t.Errorf("endpoint limit logged %d times, want once", n)
	}
}

func TestLiveSampleIsStableAndNested(t *testing.T) {
	in10, in20 := 0, 0
	for i := range 20000 {
		cid := fmt.Sprintf("cid-%d", i)
		a, b := liveSampled(cid, 10), liveSampled(cid, 20)
		if a && !b {
			t.Fatalf("%s is in the 10%% sample but not in the 20%% one", cid)
		}
		if a != liveSampled(cid, 10) {
			t.Fatalf("%s: the sample changed between calls", cid)
		}
		if a {
			in10++
		}
		if b {
			in20++
		}
	}
	// Binomial standard deviations are about 42 and 57.
	if in10 < 1800 || in10 > 2200 || in20 < 3700 || in20 > 4300 {
		t.Errorf("sampled %d at 10%% and %d at 20%% of 20000", in10, in20)
	}
}

func TestLiveTableCountsConcurrently(t *testing.T) {
	var tbl liveTable
	const workers, each = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				c, _ := tbl.counter(fmt.Sprintf("GET /e%d", (w+i)%5), 3)
				c.add([]string{VerdictMatch, VerdictMismatch, VerdictLineage}[i%3])
			}
		})
	}
	wg.Wait()
	live, total := tbl.snapshot()
	if total.Compared != workers*each || total.Matched+total.Mismatched+total.Lineage != total.Compared {
		t.Errorf("total %+v, want %d compared", total, workers*each)
	}
	if len(live) != 4 || live[LiveOther].Compared == 0 {
		t.Errorf("endpoints %v: want 3 and other", slices.Sorted(maps.Keys(live)))
	}
	var sum int64
	for _, n := range live {
		sum += n.Compared
	}
	if sum != total.Compared {
		t.Errorf("endpoints sum to %d, total says %d", sum, total.Compared)
	}
}

func TestLiveCompareConfigIsValidated(t *testing.T) {
	for _, tt := range []struct {
		edit func(*LiveCompareConfig)
		want string
	}{
		{func(c *LiveCompareConfig) { c.SamplePercent = 0 }, "live_compare.sample_percent: must be above 0 and at most 100"},
		{func(c *LiveCompareConfig) { c.SamplePercent = 100.5 }, "live_compare.sample_percent: "},
		{func(c *LiveCompareConfig) { c.MaxEndpoints = 0 }, "live_compare.max_endpoints: must be from 1 to 10000, got 0"},
		{func(c *LiveCompareConfig) { c.MaxEndpoints = 10001 }, "live_compare.max_endpoints: "},
	} {
		cfg := validConfig()
		tt.edit(&cfg.LiveCompare)
		errs := cfg.Validate()
		var fe *FieldError
		if len(errs) != 1 || !errors.As(errs[0], &fe) || !strings.HasPrefix(errs[0].Error(), tt.want) {
			t.Errorf("Validate() = %v, want one error starting %q", errs, tt.want)
		}
	}
}
