package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/replaykit/replay/compare"
	"github.com/replaykit/replay/schemas"
)

// TestDuplicateCorrelationIDsAreCountedAndJoinedByRule puts distinct
// records that share a correlation ID on the topic among unique ones, runs
// replay and compare, and checks that the run logs them with both
// coordinates and that compare counts them, joins the record at the lowest
// coordinates and names it, in the JSON summary, comparison_summary and
// report.html.
func TestDuplicateCorrelationIDsAreCountedAndJoinedByRule(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const topic = "captures"
	brokers := startBroker(t, topic, 2)
	_, srv := newCountingTarget(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ids := []string{"dup-a", "dup-b", "dup-a", "dup-b", "dup-b"} // dup-a twice, dup-b three times
	for i := range 40 {
		ids = append(ids, fmt.Sprintf("u-%02d", i))
	}
	var recs []*kgo.Record
	for i, id := range ids {
		x := schemas.Exchange{CorrelationID: id, CapturedAt: time.Date(2026, 11, 21, 0, 0, i, 0, time.UTC),
			Request:  schemas.Request{Method: "GET", Path: fmt.Sprintf("/v1/items/%d", i)},
			Response: &schemas.Response{Status: 200, Body: fmt.Appendf(nil, `{"i":%d}`, i)}}
		raw, _ := json.Marshal(x.Envelope())
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i%5), Value: raw})
	}
	res := cl.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	at := map[string][]schemas.Coordinates{}
	for _, r := range res {
		var env schemas.Envelope
		_ = json.Unmarshal(r.Record.Value, &env)
		at[env.CorrelationID] = append(at[env.CorrelationID], schemas.Coordinates{Topic: r.Record.Topic, Partition: r.Record.Partition, Offset: r.Record.Offset})
	}
	lowestFirst := func(cs []schemas.Coordinates) []string {
		slices.SortFunc(cs, func(a, b schemas.Coordinates) int {
			if a.Partition != b.Partition {
				return int(a.Partition - b.Partition)
			}
			return int(a.Offset - b.Offset)
		})
		var out []string
		for _, c := range cs {
			out = append(out, c.String())
		}
		return out
	}
	wantA, wantB := lowestFirst(at["dup-a"]), lowestFirst(at["dup-b"])

	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "replay.yaml")
	report := filepath.Join(dir, "report.html")
	writeFile(t, cfgFile, fmt.Sprintf(`
run_id: dups-1
source:
  kafka:
    brokers: [%s]
    topics: [%s]
    group: dups
    stop_at_end: true
replay:
  target: %s
sink:
%scompare:
  report: %s
log:
  level: warn
`, brokers[0], topic, srv.URL, localCatalogYAML(dir), report))
	var stdout, stderr bytes.Buffer
	if code := run([]string{"run", "--config", cfgFile}, &stdout, &stderr); code != 0 {
		t.Fatalf("replay run exited %d\n%s", code, stderr.String())
	}
	for _, s := range []string{"same correlation id", "correlation_id=dup-a", wantA[0], wantA[1], "duplicate_ids=3"} {
		if !strings.Contains(stderr.String(), s) {
			t.Errorf("the run's log does not say %q:\n%s", s, stderr.String())
		}
	}

	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"compare", "--run", "dups-1", "--config", cfgFile}, &stdout, &stderr); code != 0 {
		t.Fatalf("compare exited %d\n%s", code, stderr.String())
	}
	var sum compare.Summary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatalf("stdout is not the JSON summary: %v\n%s", err, stdout.String())
	}
	d := sum.Duplicates
	if d.IDs != 2 || d.Rows != 3 || sum.Overall.Duplicates != 3 || d.Rule == "" {
		t.Errorf("duplicates: %+v, overall.duplicates %d; want 2 IDs, 3 rows set aside", d, sum.Overall.Duplicates)
	}
	want := []compare.DuplicateID{
		{CorrelationID: "dup-a", Records: 2, Joined: wantA[0], SetAside: wantA[1:]},
		{CorrelationID: "dup-b", Records: 3, Joined: wantB[0], SetAside: wantB[1:]},
	}
	if len(d.Examples) != 2 || !equalDup(d.Examples[0], want[0]) || !equalDup(d.Examples[1], want[1]) {
		t.Errorf("duplicate examples %+v, want %+v", d.Examples, want)
	}
	// Every other record joined once; the duplicates' other records are
	// in no count but Duplicates.
	if o := sum.Overall; o.Joined != 42 || o.ProductionTotal != 42 || o.ReplayTotal != 42 || o.OnlyReplay != 0 || o.OnlyProduction != 0 || o.Matched+o.Mismatched != 42 {
		t.Errorf("overall counts %+v; want 42 joined, nothing only on one side", o)
	}

	html, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range append([]string{"Duplicate correlation IDs", "dup-a", "lowest source coordinates"}, append(wantA, wantB...)...) {
		if !strings.Contains(string(html), s) {
			t.Errorf("report.html does not show %q", s)
		}
	}

	s := openSinkFromConfig(t, ctx, cfgFile)
	defer s.Close()
	for _, r := range scanRows(t, ctx, s, schemas.TableComparisonSummary, "dups-1") {
		if r.str("endpoint") == compare.EndpointAll && r.int("duplicates") != 3 {
			t.Errorf("comparison_summary: duplicates %d for the whole run, want 3", r.int("duplicates"))
		}
	}
}

func equalDup(a, b compare.DuplicateID) bool {
	return a.CorrelationID == b.CorrelationID && a.Records == b.Records && a.Joined == b.Joined && slices.Equal(a.SetAside, b.SetAside)
}
