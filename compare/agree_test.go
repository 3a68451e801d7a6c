package compare_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"golang.org/x/net/html"

	"github.com/replaykit/replay/compare"
	"github.com/replaykit/replay/schemas"
	"github.com/replaykit/replay/sinks"
)

// TestSummaryJSONReportAndTableAgree compares runs with endpoints where no
// pair was compared (every pair lineage-excluded, or never replayed) and
// reads every number three ways: the JSON summary (as `replay compare`
// prints it), report.html (parsed), and the comparison_summary rows. A
// match rate over 0 compared pairs is undefined: null in JSON, n/a in the
// report, NULL in the table; every other number must agree everywhere.
func TestSummaryJSONReportAndTableAgree(t *testing.T) {
	s := openSink(t, t.TempDir())
	lineage := map[string]string{"catalog-service": "v1"}
	var some, none []exchange
	for i := range 20 { // titles: compared, 4 mismatched
		x := exchange{cid: fmt.Sprintf("t-%d", i), method: "GET", path: fmt.Sprintf("/v1/titles/%d", i),
			prod: true, replay: true, prodStatus: 200, replayStatus: 200,
			prodBody: titleBody(i, "4.5"), replayBody: titleBody(i, "4.5"), prodLatency: 10, replayLatency: 12}
		if i%5 == 0 {
			x.replayBody = titleBody(i, "1")
		}
		some = append(some, x)
	}
	for i := range 6 { // users: every pair lineage-excluded, none compared
		x := exchange{cid: fmt.Sprintf("u-%d", i), method: "GET", path: fmt.Sprintf("/v1/users/%d", i),
			prod: true, replay: true, prodStatus: 200, replayStatus: 200,
			prodBody: userBody(i, "ann"), replayBody: userBody(i, "bob"), prodLatency: 5, replayLatency: 6,
			prodLineage: lineage, replayLineage: map[string]string{"catalog-service": "v2"}}
		some = append(some, x)
		none = append(none, x)
	}
	for i := range 3 { // orders: production only, never replayed
		x := exchange{cid: fmt.Sprintf("o-%d", i), method: "POST", path: "/v1/orders",
			prod: true, prodStatus: 201, prodBody: `{"ok":true}`, prodLatency: 8}
		some = append(some, x)
		none = append(none, x)
	}
	write(t, s, "some", some)
	write(t, s, "none", none)

	for _, tc := range []struct {
		runID       string
		overallNull bool
	}{{"some", false}, {"none", true}} {
		t.Run(tc.runID, func(t *testing.T) {
			sum := run(t, s, testConfig(t), tc.runID)
			out, err := json.Marshal(sum)
			if err != nil {
				t.Fatal(err)
			}
			fromJSON := jsonRates(t, out)
			report := filepath.Join(t.TempDir(), "report.html")
			if err := sum.WriteReportFile(report); err != nil {
				t.Fatal(err)
			}
			headline, fromHTML := reportRates(t, report)
			fromTable := tableRates(t, s, tc.runID)

			all := fromJSON[compare.EndpointAll]
			if (all.rate == nil) != tc.overallNull {
				t.Errorf("JSON overall match_rate = %v, want null: %v", all.rate, tc.overallNull)
			}
			if got, want := headline, rateText(all.rate); got != want {
				t.Errorf("report headline %q, JSON overall match_rate %v (%q)", got, all.rate, want)
			}
			var zero int
			for ep, j := range fromJSON {
				if j.matched+j.mismatched == 0 {
					zero++
					if j.rate != nil {
						t.Errorf("%s: JSON match_rate %v over 0 compared pairs, want null", ep, *j.rate)
					}
				}
				h, ok := fromHTML[ep]
				if !ok {
					t.Errorf("%s: in the JSON summary, not in the report (report has %v)", ep, keys(fromHTML))
				} else if h.text != rateText(j.rate) || h.joined != j.joined || h.matched != j.matched || h.mismatched != j.mismatched {
					t.Errorf("%s: report shows %+v, JSON says %+v (rate %q)", ep, h, j, rateText(j.rate))
				}
				tb, ok := fromTable[ep]
				if !ok {
					t.Errorf("%s: in the JSON summary, not in comparison_summary", ep)
				} else if !sameRate(tb.rate, j.rate) || tb.joined != j.joined || tb.matched != j.matched || tb.mismatched != j.mismatched {
					t.Errorf("%s: comparison_summary has %+v (rate %v), JSON %+v (rate %v)", ep, tb, ptr(tb.rate), j, ptr(j.rate))
				}
			}
			if zero < 2 || len(fromHTML) != len(fromJSON) || len(fromTable) != len(fromJSON) {
				t.Errorf("%d endpoints with 0 compared pairs (want ≥ 2); endpoints: JSON %v, report %v, table %v",
					zero, keys(fromJSON), keys(fromHTML), keys(fromTable))
			}
		})
	}
}

// counted is one endpoint's numbers as one of the outputs shows them.
type counted struct {
	joined, matched, mismatched int64
	rate                        *float64
	text                        string // the report's rate text
}

func ptr(r *float64) any {
	if r == nil {
		return nil
	}
	return *r
}

func sameRate(a, b *float64) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

func keys(m map[string]counted) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// rateText is how the report must show a match rate: n/a when undefined,
// else a percentage truncated to two decimals.
func rateText(r *float64) string {
	if r == nil {
		return "n/a"
	}
	return strconv.FormatFloat(math.Floor(*r*10000+1e-9)/100, 'f', 2, 64) + "%"
}

// jsonRates reads the JSON summary generically, as a script would: the
// overall counts (under "*") and every endpoint's, with match_rate (which
// must be there, a number or null).
func jsonRates(t *testing.T, out []byte) map[string]counted {
	t.Helper()
	type row map[string]json.RawMessage
	var doc struct {
		Overall   row   `json:"overall"`
		Endpoints []row `json:"endpoints"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	var top row
	if err := json.Unmarshal(out, &top); err != nil {
		t.Fatal(err)
	}
	rate := func(where string, r row) *float64 {
		raw, ok := r["match_rate"]
		if !ok {
			t.Errorf("%s: no match_rate in the JSON summary", where)
			return nil
		}
		var v *float64
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Errorf("%s: match_rate %s: %v", where, raw, err)
		}
		return v
	}
	num := func(r row, key string) int64 {
		var v int64
		if err := json.Unmarshal(r[key], &v); err != nil {
			t.Errorf("%s %s: %v", r["endpoint"], key, err)
		}
		return v
	}
	res := map[string]counted{}
	for _, r := range append([]row{doc.Overall}, doc.Endpoints...) {
		var ep string
		if err := json.Unmarshal(r["endpoint"], &ep); err != nil {
			t.Fatal(err)
		}
		res[ep] = counted{joined: num(r, "joined"), matched: num(r, "matched"), mismatched: num(r, "mismatched"), rate: rate(ep, r)}
	}
	if got, all := rate("summary", top), res[compare.EndpointAll].rate; !sameRate(got, all) {
		t.Errorf("JSON match_rate %v, overall.match_rate %v", ptr(got), ptr(all))
	}
	return res
}

// reportRates parses report.html: the headline rate, and the endpoints
// table's rows (the footer row, "All endpoints", under "*").
func reportRates(t *testing.T, path string) (string, map[string]counted) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := html.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	var headline string
	rows := map[string]counted{}
	var walk func(n *html.Node, inEndpoints bool)
	walk = func(n *html.Node, inEndpoints bool) {
		if n.Type == html.ElementNode {
			cls := attr(n, "class")
			switch {
			case n.Data == "div" && cls == "rate" && headline == "":
				headline = strings.TrimSpace(text(n))
			case n.Data == "table" && strings.Contains(cls, "endpoints"):
				inEndpoints = true
			case n.Data == "tr" && inEndpoints:
				var cells []string
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					if c.Type == html.ElementNode && c.Data == "td" {
						cells = append(cells, strings.TrimSpace(text(c)))
					}
				}
				if len(cells) >= 5 {
					name := cells[0]
					if name == "All endpoints" {
						name = compare.EndpointAll
					}
					num := func(s string) int64 {
						v, err := strconv.ParseInt(strings.ReplaceAll(s, ",", ""), 10, 64)
						if err != nil {
							t.Errorf("report row %s: %q is not a count", name, s)
						}
						return v
					}
					rows[name] = counted{joined: num(cells[1]), matched: num(cells[2]), mismatched: num(cells[3]), text: cells[4]}
				}
				return
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, inEndpoints)
		}
	}
	walk(doc, false)
	return headline, rows
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	if n.Type == html.TextNode {
		return n.Data
	}
	var b strings.Builder
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		b.WriteString(text(c))
	}
	return b.String()
}

// tableRates reads the run's comparison_summary rows.
func tableRates(t *testing.T, s *sinks.Iceberg, runID string) map[string]counted {
	t.Helper()
	out := map[string]counted{}
	forEachRow(t, s, schemas.TableComparisonSummary, runID, func(rec arrow.RecordBatch, i int) {
		l := func(name string) int64 { return col[*array.Int64](rec, name).Value(i) }
		c := counted{joined: l("joined"), matched: l("matched"), mismatched: l("mismatched")}
		if r := col[*array.Float64](rec, "match_rate"); r.IsValid(i) {
			v := r.Value(i)
			c.rate = &v
		}
		out[str(rec, "endpoint", i)] = c
	})
	return out
}

func (c counted) String() string {
	return fmt.Sprintf("joined %d, matched %d, mismatched %d, rate %v %q", c.joined, c.matched, c.mismatched, ptr(c.rate), c.text)
}
