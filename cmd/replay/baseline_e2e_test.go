package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/replaykit/replay/compare"
	"github.com/replaykit/replay/schemas"
)

// The catalog service of the single-run baseline test, in three versions:
// production (whose answers are in the capture log), the baseline (a second
// copy of the same old version) and the candidate. Every version answers a
// title with its year and, for even ids, a nonce it makes up per response:
// the service's own non-determinism. The candidate also has a real bug (the
// year off by one for ids that are multiples of 13) and serves ids that are
// multiples of 17 from a newer catalog dependency (lineage v2).
const (
	titleExchanges  = 120
	titleNonceEvery = 2
	titleBugEvery   = 13
	titleNewerEvery = 17
	titlePostEvery  = 10 // ids that are multiples of this are POSTs: not replayed
)

func titleYear(id int) int { return 1970 + id%50 }

func titleBody(id, year int) []byte {
	m := map[string]any{"id": id, "title": fmt.Sprintf("Title %d", id), "year": year}
	if id%titleNonceEvery == 0 {
		m["nonce"] = rand.Text()
	}
	b, _ := json.Marshal(m)
	return b
}

// titleService is one version of the catalog service as a real HTTP
// server's handler; it counts the requests it gets per X-Replay-Id.
type titleService struct {
	candidate bool

	mu   sync.Mutex
	hits map[string]int
}

func (s *titleService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.hits[r.Header.Get("X-Replay-Id")]++
	s.mu.Unlock()
	id, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/v1/titles/"))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	year, lineage := titleYear(id), "v1"
	if s.candidate && id%titleNewerEvery == 0 {
		lineage = "v2"
	} else if s.candidate && id%titleBugEvery == 0 {
		year++
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Lineage-Catalog", lineage)
	_, _ = w.Write(titleBody(id, year))
}

func (s *titleService) counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.hits))
	for k, v := range s.hits {
		out[k] = v
	}
	return out
}

// TestSingleRunBaselineCancelsNoise runs one replay run that sends every
// selected request to a candidate and to a baseline copy of the old
// version (replay.baseline), then compares it without --baseline-run: the
// nonce, which differs between production and the baseline too, is noise,
// and what remains are the candidate's real bugs.
func TestSingleRunBaselineCancelsNoise(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const topic, runID = "captures", "single-baseline-1"
	_, brokers := startFaultyBroker(t, topic, 3) // for writeRunConfig's short session timeout

	cand := &titleService{candidate: true, hits: map[string]int{}}
	base := &titleService{hits: map[string]int{}}
	candSrv, baseSrv := httptest.NewServer(cand), httptest.NewServer(base)
	defer candSrv.Close()
	defer baseSrv.Close()

	// The capture log, and what compare must find in it.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var (
		recs                                  []*kgo.Record
		selected                              = map[string]int{}
		matched, noise, lineage, noisy, posts int64
		wantMismatches                        []string
	)
	for id := 1; id <= titleExchanges; id++ {
		cid := fmt.Sprintf("title-%03d", id)
		method := http.MethodGet
		switch {
		case id%titlePostEvery == 0:
			method = http.MethodPost
			posts++
		case id%titleNewerEvery == 0:
			lineage++
		case id%titleBugEvery == 0:
			wantMismatches = append(wantMismatches, cid)
		case id%titleNonceEvery == 0:
			noise++
		default:
			matched++
		}
		if method == http.MethodGet {
			selected[cid] = 1
			if id%titleNonceEvery == 0 && id%titleNewerEvery != 0 {
				noisy++ // production and the baseline differ at $.nonce
			}
		}
		x := schemas.Exchange{
			CorrelationID: cid,
			CapturedAt:    time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC).Add(time.Duration(id) * time.Second),
			Request:       schemas.Request{Method: method, Scheme: "https", Host: "api.example.com", Path: fmt.Sprintf("/v1/titles/%d", id)},
			Response: &schemas.Response{Status: 200, Headers: map[string][]string{"Content-Type": {"application/json"}},
				Body: titleBody(id, titleYear(id)), LatencyMS: 5},
			Lineage: map[string]string{"catalog": "v1"},
		}
		raw, err := json.Marshal(x.Envelope())
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Key: []byte(cid), Value: raw})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	k := int64(len(wantMismatches))
	if k == 0 || noise == 0 || lineage == 0 || matched == 0 || posts == 0 {
		t.Fatalf("the traffic must have every class: %d bugs, %d noise, %d lineage, %d matched, %d posts", k, noise, lineage, matched, posts)
	}

	dir := t.TempDir()
	report := filepath.Join(dir, "report.html")
	cfgFile := writeRunConfig(t, dir, runID, brokers[0], topic, candSrv.URL, "compare:\n  report: "+report+"\n")
	rewriteConfig(t, cfgFile, "  workers: 8\n", "  workers: 8\n  baseline: "+baseSrv.URL+"\n")

	var stdout, stderr bytes.Buffer
	if code := run([]string{"run", "--config", cfgFile}, &stdout, &stderr); code != 0 {
		t.Fatalf("replay run exited %d\n%s", code, stderr.String())
	}
	for name, svc := range map[string]*titleService{"candidate": cand, "baseline": base} {
		if got := svc.counts(); !reflect.DeepEqual(got, selected) {
			t.Errorf("the %s got %d correlation IDs, want each of the %d GETs once: %v", name, len(got), len(selected), got)
		}
	}

	sink := openSinkFromConfig(t, ctx, cfgFile)
	defer sink.Close()
	rows := map[string]int64{}
	for _, table := range []string{schemas.TableProduction, schemas.TableReplay, schemas.TableBaseline} {
		if rows[table], err = sink.CountRows(ctx, table, runID); err != nil {
			t.Fatal(err)
		}
	}
	if rows[schemas.TableProduction] != titleExchanges || rows[schemas.TableReplay] != int64(len(selected)) ||
		rows[schemas.TableBaseline] != rows[schemas.TableReplay] {
		t.Errorf("rows %v: want %d production, and %d in both replay_responses and baseline_responses", rows, titleExchanges, len(selected))
	}
	for id, r := range scan(t, ctx, sink, schemas.TableBaseline, runID) {
		if r.str("target") != baseSrv.URL || r.int("response_status") != 200 {
			t.Errorf("%s: baseline row went to %s with status %d", id, r.str("target"), r.int("response_status"))
		}
	}

	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"compare", "--run", runID, "--config", cfgFile}, &stdout, &stderr); code != 0 {
		t.Fatalf("compare exited %d\n%s", code, stderr.String())
	}
	var sum compare.Summary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatalf("stdout is not the JSON summary: %v\n%s", err, stdout.String())
	}
	if sum.BaselineSource != compare.BaselineFromTable || sum.BaselineRunID != runID || sum.BaselineTable != "replay.baseline_responses" {
		t.Errorf("baseline source %q, run %q, table %q; want the run's own baseline_responses", sum.BaselineSource, sum.BaselineRunID, sum.BaselineTable)
	}
	o := sum.Overall
	type counts struct{ prod, replay, joined, onlyProd, matched, mismatched, noise, lineage int64 }
	want := counts{titleExchanges, int64(len(selected)), int64(len(selected)), posts, matched, k, noise, lineage}
	if got := (counts{o.ProductionTotal, o.ReplayTotal, o.Joined, o.OnlyProduction, o.Matched, o.Mismatched, o.NoiseExcluded, o.LineageExcluded}); got != want {
		t.Errorf("overall %+v, want %+v", got, want)
	}
	// The exact numbers of this traffic, so a change to it is seen.
	if want != (counts{120, 108, 108, 12, 51, 9, 41, 7}) {
		t.Errorf("the traffic changed: %+v", want)
	}
	if sum.BaselineJoined != int64(len(selected))-lineage {
		t.Errorf("BaselineJoined = %d, want %d", sum.BaselineJoined, int64(len(selected))-lineage)
	}
	if len(sum.NoisyPaths) != 1 || sum.NoisyPaths[0].Path != "$.nonce" || sum.NoisyPaths[0].Count != noisy {
		t.Errorf("noisy paths %+v, want $.nonce × %d", sum.NoisyPaths, noisy)
	}
	if len(sum.TopPaths) != 1 || sum.TopPaths[0].Path != "$.year" || sum.TopPaths[0].Count != k {
		t.Errorf("top differing paths %+v, want only $.year × %d", sum.TopPaths, k)
	}
	var gotMismatches []string
	for _, m := range sum.TopMismatches {
		gotMismatches = append(gotMismatches, m.CorrelationID)
		if !slices.Equal(m.Paths, []string{"$.year"}) {
			t.Errorf("mismatch %s: paths %v, want [$.year]", m.CorrelationID, m.Paths)
		}
	}
	slices.Sort(gotMismatches)
	if !slices.Equal(gotMismatches, wantMismatches) {
		t.Errorf("mismatches %v, want the candidate's bugs %v", gotMismatches, wantMismatches)
	}
	if sum.MatchRate == nil || *sum.MatchRate != float64(matched)/float64(matched+k) {
		t.Errorf("match rate %v, want %d/%d", sum.MatchRate, matched, matched+k)
	}

	// A restart in the same group finds everything committed: no request
	// is sent again, no row added.
	if code := run([]string{"run", "--config", cfgFile}, &stdout, &stderr); code != 0 {
		t.Fatalf("second replay run exited %d\n%s", code, stderr.String())
	}
	if !reflect.DeepEqual(cand.counts(), selected) || !reflect.DeepEqual(base.counts(), selected) {
		t.Error("the restart replayed requests again")
	}
	if n, err := sink.CountRows(ctx, schemas.TableBaseline, runID); err != nil || n != int64(len(selected)) {
		t.Errorf("after a restart baseline_responses has %d rows (%v), want %d", n, err, len(selected))
	}
}
