package compare

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/net/html"

	"github.com/replaykit/replay/internal/testinfra"
)

// The -update flag refreshes testdata/report/ (the golden HTML and the
// screenshot). Other test files of this package may declare the same flag for
// their golden files, so it is registered here only when nobody else has, and
// read by name.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files, including testdata/report/")
	}
}

func reportUpdating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

const (
	reportGoldenPath     = "testdata/report/report.html"
	reportScreenshotPath = "testdata/report/report.png"
	reportXSS            = `<script>window.__xss=1;alert("xss")</script>`
)

// reportTestSummary is a run of a catalogue service migration: six
// endpoints, a status matrix with disagreements, replay errors, and top
// mismatches with JSON, binary, empty and hostile bodies.
func reportTestSummary() *Summary {
	endpoints := []Counts{
		{Endpoint: "GET /v1/titles/{id}", ProductionTotal: 48_500, ReplayTotal: 48_420, Joined: 48_400, OnlyProduction: 100, OnlyReplay: 20,
			Matched: 47_180, Mismatched: 1_020, LineageExcluded: 150, NoiseExcluded: 50,
			ProductionPassing: 48_010, ProductionFailing: 390, ReplayPassing: 47_650, ReplayFailing: 750,
			ProductionP50: 18.2, ProductionP90: 41, ProductionP99: 120, ReplayP50: 21.7, ReplayP90: 55, ReplayP99: 310},
		{Endpoint: "POST /v1/playback/sessions", ProductionTotal: 12_030, ReplayTotal: 12_000, Joined: 12_000, OnlyProduction: 30,
			Matched: 11_604, Mismatched: 396, ProductionPassing: 11_990, ProductionFailing: 10, ReplayPassing: 11_930, ReplayFailing: 70,
			ProductionP50: 35, ProductionP90: 80, ProductionP99: 240, ReplayP50: 33, ReplayP90: 78, ReplayP99: 251},
		{Endpoint: "GET /v1/search", ProductionTotal: 20_000, ReplayTotal: 20_000, Joined: 20_000,
			Matched: 19_850, Mismatched: 120, LineageExcluded: 0, NoiseExcluded: 30,
			ProductionPassing: 19_990, ProductionFailing: 10, ReplayPassing: 19_990, ReplayFailing: 10,
			ProductionP50: 62, ProductionP90: 140, ProductionP99: 480, ReplayP50: 58, ReplayP90: 131, ReplayP99: 455},
		{Endpoint: "GET /v1/users/{user_id}/recommendations/rows/{row_id}/items/{item_id}/artwork/variants/{variant_id}/localized", ProductionTotal: 4_000, ReplayTotal: 3_990, Joined: 3_990, OnlyProduction: 10,
			Matched: 3_950, Mismatched: 40, ProductionPassing: 3_990, ReplayPassing: 3_990,
			ProductionP50: 9.4, ProductionP90: 22, ProductionP99: 60, ReplayP50: 9.1, ReplayP90: 21, ReplayP99: 64},
		{Endpoint: "GET /v1/titles/{id}/artwork", ProductionTotal: 2_500, ReplayTotal: 2_500, Joined: 2_500,
			Matched: 2_488, Mismatched: 12, ProductionPassing: 2_500, ReplayPassing: 2_500,
			ProductionP50: 4.2, ProductionP90: 8, ProductionP99: 19, ReplayP50: 4.4, ReplayP90: 8.3, ReplayP99: 20},
		{Endpoint: "DELETE /v1/lists/{id}/items/" + reportXSS, ProductionTotal: 800, ReplayTotal: 800, Joined: 800,
			Matched: 800, ProductionPassing: 800, ReplayPassing: 800,
			ProductionP50: 12, ProductionP90: 20, ProductionP99: 31, ReplayP50: 12, ReplayP90: 21, ReplayP99: 33},
	}
	overall := Counts{Endpoint: EndpointAll,
		ProductionP50: 24, ProductionP90: 77, ProductionP99: 260, ReplayP50: 26, ReplayP90: 88, ReplayP99: 330}
	for _, e := range endpoints {
		overall.ProductionTotal += e.ProductionTotal
		overall.ReplayTotal += e.ReplayTotal
		overall.Joined += e.Joined
		overall.OnlyProduction += e.OnlyProduction
		overall.OnlyReplay += e.OnlyReplay
		overall.Matched += e.Matched
		overall.Mismatched += e.Mismatched
		overall.LineageExcluded += e.LineageExcluded
		overall.NoiseExcluded += e.NoiseExcluded
		overall.ProductionPassing += e.ProductionPassing
		overall.ProductionFailing += e.ProductionFailing
		overall.ReplayPassing += e.ReplayPassing
		overall.ReplayFailing += e.ReplayFailing
	}

	titleProd := []byte(`{"id":"tt0111161","title":"The Shawshank Redemption","year":1994,"price":{"amount":3.99,"currency":"USD"},"genres":["drama"],"rating":{"imdb":9.3,"votes":2900000},"available":true}`)
	titleRepl := []byte(`{"id":"tt0111161","title":"The Shawshank Redemption","year":1994,"price":{"amount":4.49,"currency":"USD"},"genres":["drama","crime"],"rating":{"imdb":9.3,"votes":2900000},"available":true}`)

	var rowsProd, rowsRepl bytes.Buffer
	rowsProd.WriteString(`{"row":"trending","items":[`)
	rowsRepl.WriteString(`{"row":"trending","items":[`)
	for i := range 30 {
		if i > 0 {
			rowsProd.WriteByte(',')
			rowsRepl.WriteByte(',')
		}
		fmt.Fprintf(&rowsProd, `{"rank":%d,"id":"tt%07d"}`, i+1, 1000+i)
		rank := i + 1
		if i == 17 {
			rank = 19 // the replay ranks one item differently
		}
		fmt.Fprintf(&rowsRepl, `{"rank":%d,"id":"tt%07d"}`, rank, 1000+i)
	}
	rowsProd.WriteString(`]}`)
	rowsRepl.WriteString(`]}`)

	pngProd := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00"), bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 40)...)
	pngRepl := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00"), bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 36)...)
	pngRepl = append(pngRepl, 0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 0)

	return &Summary{
		RunID:      "run-20260314-0930-7f3a",
		ComparedAt: time.Date(2026, 3, 14, 9, 42, 17, 0, time.UTC),
		Duration:   734.6,
		Overall:    overall,
		Endpoints:  endpoints,
		TopPaths: []PathCount{
			{Path: "/price/amount", Count: 980, Samples: []string{"7d1c9a40-0001", "7d1c9a40-0017", "7d1c9a40-0023"}},
			{Path: "/genres/1", Count: 410, Samples: []string{"7d1c9a40-0001", "7d1c9a40-0099"}},
			{Path: "/session/expires_at", Count: 396, Samples: []string{"5b7e0c11-0042"}},
			{Path: "/items/17/rank", Count: 120, Samples: []string{"91aa03f2-0003"}},
			{Path: "/rows/0/items/12/artwork/variants/3/sources/hd/localized/en-US/url/with/a/really/deeply/nested/path/that/must/wrap", Count: 40, Samples: []string{"c4f00d00-0005"}},
			{Path: "/title/" + reportXSS, Count: 3, Samples: []string{"e5e5e5e5-0666"}},
		},
		StatusMatrix: []StatusCell{
			{Production: 200, Replay: 200, Count: 84_323},
			{Production: 200, Replay: 500, Count: 312},
			{Production: 200, Replay: 0, Count: 48},
			{Production: 201, Replay: 201, Count: 1_930},
			{Production: 304, Replay: 304, Count: 640},
			{Production: 304, Replay: 200, Count: 25},
			{Production: 404, Replay: 404, Count: 290},
			{Production: 500, Replay: 200, Count: 7},
			{Production: 500, Replay: 500, Count: 113},
			{Production: 0, Replay: 200, Count: 2},
		},
		ErrorKinds: map[string]int64{"timeout": 41, "connection_refused": 7, "tls_handshake": 2},
		Latency: LatencyHistogram{
			BoundsMS:   []float64{5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000},
			Production: []int64{6_100, 14_200, 29_800, 22_400, 9_800, 3_900, 1_100, 310, 60, 12, 8},
			Replay:     []int64{5_300, 12_900, 27_700, 23_800, 11_200, 4_700, 1_300, 520, 160, 61, 49},
		},
		TopMismatches: []Mismatch{
			{CorrelationID: "7d1c9a40-0001", Endpoint: "GET /v1/titles/{id}", ProductionStatus: 200, ReplayStatus: 200,
				Patch: `[{"op":"replace","path":"/price/amount","value":4.49},{"op":"add","path":"/genres/1","value":"crime"}]`,
				Paths: []string{"/price/amount", "/genres/1"}, ProductionBody: titleProd, ReplayBody: titleRepl,
				ProductionLineage: map[string]string{"catalog_version": "2026-03-14.2", "pricing_snapshot": "ps-8812"},
				ReplayLineage:     map[string]string{"catalog_version": "2026-03-14.2", "pricing_snapshot": "ps-8812"}},
			{CorrelationID: "5b7e0c11-0042", Endpoint: "POST /v1/playback/sessions", ProductionStatus: 200, ReplayStatus: 500,
				Patch:          `[{"op":"remove","path":"/session"},{"op":"add","path":"/error","value":{"code":"UPSTREAM","message":"license service unavailable"}}]`,
				Paths:          []string{"/session", "/error"},
				ProductionBody: []byte(`{"session":{"id":"s-1","expires_at":"<normalized>","drm":"widevine"}}`),
				ReplayBody:     []byte(`{"error":{"code":"UPSTREAM","message":"license service unavailable"}}`)},
			{CorrelationID: "91aa03f2-0003", Endpoint: "GET /v1/search", ProductionStatus: 200, ReplayStatus: 200,
				Patch: `[{"op":"replace","path":"/items/17/rank","value":19}]`, Paths: []string{"/items/17/rank"},
				ProductionBody: rowsProd.Bytes(), ReplayBody: rowsRepl.Bytes()},
			{CorrelationID: "a3b4c5d6-0777", Endpoint: "GET /v1/titles/{id}/artwork", ProductionStatus: 200, ReplayStatus: 200,
				Patch: `[]`, Paths: []string{""}, ProductionBody: pngProd, ReplayBody: pngRepl},
			{CorrelationID: "e5e5e5e5-0666", Endpoint: "GET /v1/titles/{id}", ProductionStatus: 200, ReplayStatus: 200,
				Patch:          `[{"op":"replace","path":"/title","value":"Sans titre"}]`,
				Paths:          []string{"/title/" + reportXSS},
				ProductionBody: []byte(`{"title":"` + strings.ReplaceAll(reportXSS, `"`, `\"`) + `"}`),
				ReplayBody:     []byte(`{"title":"Sans titre"}`)},
			{CorrelationID: "0f0f0f0f-0048", Endpoint: "GET /v1/titles/{id}", ProductionStatus: 200, ReplayStatus: 0, ReplayErrorKind: "timeout",
				Patch: `[{"op":"remove","path":""}]`, Paths: []string{""},
				ProductionBody: []byte(`{"id":"tt0068646","title":"The Godfather"}`)},
			{CorrelationID: "66aa77bb-0304", Endpoint: "GET /v1/titles/{id}", ProductionStatus: 304, ReplayStatus: 200,
				ProductionBody: []byte(`{"id":"tt0468569"}`), ReplayBody: []byte(`{"id":"tt0468569"}`)},
		},
		MatchRate:       overall.MatchRate(),
		SummaryTable:    "replay.comparison_summary",
		MismatchesTable: "replay.comparison_mismatches",
	}
}

// TestReportInChromium renders the report, opens it in headless Chromium and
// reads it back as a person would: the rendered text, not the markup.
func TestReportInChromium(t *testing.T) {
	chromium := testinfra.ChromiumT(t, "the report test")
	s := reportTestSummary()
	dir := t.TempDir()
	path := filepath.Join(dir, "out", "report.html") // "out" does not exist: WriteReportFile creates it
	if err := s.WriteReportFile(path); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var browserLog testinfra.SyncBuffer
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // tests run as root in containers
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(filepath.Join(dir, "chromium-profile")),
		chromedp.WindowSize(1440, 900),
		chromedp.CombinedOutput(&browserLog),
	)
	defer cancelAlloc()
	tab, cancelTab := chromedp.NewContext(allocCtx)
	defer cancelTab()

	pageURL := (&url.URL{Scheme: "file", Path: path}).String()
	if err := chromedp.Do(tab, chromedp.EmulateViewport(1440, 900), chromedp.Navigate(pageURL)); err != nil {
		t.Fatalf("open %s in %s: %v\nbrowser output:\n%s", pageURL, chromium, err, browserLog.String())
	}
	text, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		t.Fatalf("read page text: %v", err)
	}

	want := []string{
		"run-20260314-0930-7f3a",
		"2026-03-14 09:42:17 UTC",
		"12m15s",
		"85,872",             // matched tile
		"/price/amount",      // a top path
		"connection_refused", // an error kind
		"5b7e0c11-0042",      // a mismatch's correlation id
		"license service unavailable",
		"binary, 180 bytes, as hex",
		"000000a0  de ad be ef ca fe ba be  00 00 00 00              |............|",
		"The bodies are identical after normalization.",
		"replay.comparison_mismatches",
		reportXSS, // injected markup shows as text
	}
	for _, e := range s.Endpoints {
		want = append(want, e.Endpoint)
	}
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("rendered page lacks %q", w)
		}
	}

	// The headline: 85,872 matched of 87,460 compared, amber (95% to 99%).
	headline, err := chromedp.Run(tab, chromedp.Evaluate[string](`(() => { const h = document.querySelector(".headline"); return h.className + " " + h.querySelector(".rate").innerText; })()`))
	if err != nil || headline != "headline warn 98.18%" {
		t.Errorf("headline = %q (err %v), want %q", headline, err, "headline warn 98.18%")
	}

	xss, err := chromedp.Run(tab, chromedp.Evaluate[string](`typeof window.__xss`))
	if err != nil || xss != "undefined" {
		t.Errorf("window.__xss is %q (err %v): injected script ran", xss, err)
	}
	scripts, err := chromedp.Run(tab, chromedp.Evaluate[int](`document.scripts.length`))
	if err != nil || scripts != 0 {
		t.Errorf("page has %d script elements (err %v), want 0", scripts, err)
	}
	fetched, err := chromedp.Run(tab, chromedp.Evaluate[[]string](`performance.getEntriesByType("resource").map(e => e.name)`))
	if err != nil || len(fetched) != 0 {
		t.Errorf("page fetched %q (err %v), want nothing", fetched, err)
	}

	// The status matrix as a reader sees it: "production→replay" to the
	// cell's text and class.
	matrix, err := chromedp.Run(tab, chromedp.Evaluate[map[string]string](`(() => {
		const t = document.querySelector("#statuses table");
		const cols = [...t.tHead.rows[0].cells].map(c => c.innerText.trim());
		const out = {};
		for (const r of t.tBodies[0].rows) {
			const p = r.cells[0].innerText.trim();
			for (let i = 1; i < r.cells.length; i++) out[p + "→" + cols[i]] = r.cells[i].innerText.trim() + " " + r.cells[i].className;
		}
		return out;
	})()`))
	if err != nil {
		t.Fatalf("read status matrix: %v", err)
	}
	for cell, want := range map[string]string{
		"200→200":         "84,323 same",
		"200→500":         "312 off",
		"200→no response": "48 off",
		"no response→200": "2 off",
		"404→500":         "· zero",
		"200→Total":       "84,683 total",
	} {
		if matrix[cell] != want {
			t.Errorf("status matrix %s = %q, want %q", cell, matrix[cell], want)
		}
	}

	// The folded diff expands without JavaScript, through its checkbox.
	hidden, err := chromedp.Run(tab, chromedp.Evaluate[int](`[...document.querySelectorAll("#m3 tr.far")].filter(r => r.offsetParent === null).length`))
	if err != nil || hidden == 0 {
		t.Errorf("long diff #m3 hides %d unchanged lines (err %v), want some", hidden, err)
	}
	if err := chromedp.Do(tab, chromedp.Click(chromedp.ID("all-m3"))); err != nil {
		t.Fatalf("click show all lines: %v", err)
	}
	hidden, err = chromedp.Run(tab, chromedp.Evaluate[int](`[...document.querySelectorAll("#m3 tr.far")].filter(r => r.offsetParent === null).length`))
	if err != nil || hidden != 0 {
		t.Errorf("after show all lines, #m3 hides %d lines (err %v), want 0", hidden, err)
	}
	if err := chromedp.Do(tab, chromedp.Click(chromedp.ID("all-m3"))); err != nil {
		t.Fatalf("click show all lines again: %v", err)
	}

	// Nothing pushes the page sideways, down to a laptop-sized window: long
	// endpoints and paths wrap, wide tables scroll inside their section.
	for _, width := range []int64{1440, 1024} {
		if err := chromedp.Do(tab, chromedp.EmulateViewport(width, 900)); err != nil {
			t.Fatalf("resize to %d: %v", width, err)
		}
		overflow, err := chromedp.Run(tab, chromedp.Evaluate[int](`document.documentElement.scrollWidth - document.documentElement.clientWidth`))
		if err != nil || overflow > 0 {
			t.Errorf("at %dpx the page is %dpx too wide (err %v)", width, overflow, err)
			wide, _ := chromedp.Run(tab, chromedp.Evaluate[[]string](`[...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth).slice(0, 8).map(e => e.tagName + "." + e.className + " " + Math.round(e.getBoundingClientRect().right))`))
			t.Logf("elements reaching past the right edge: %q", wide)
		}
	}
	if err := chromedp.Do(tab, chromedp.EmulateViewport(1440, 900)); err != nil {
		t.Fatal(err)
	}

	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	shot := filepath.Join(dir, "report.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
	if reportUpdating() {
		if err := os.WriteFile(reportScreenshotPath, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReportGolden pins the rendered HTML; refresh with -update and review
// the diff.
func TestReportGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteReport(&b, reportTestSummary()); err != nil {
		t.Fatal(err)
	}
	if reportUpdating() {
		if err := os.WriteFile(reportGoldenPath, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(reportGoldenPath)
	if err != nil {
		t.Fatalf("read golden report: %v (run go test -run TestReportGolden -update to create it)", err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("report differs from %s; run go test -run TestReport -update and review the diff", reportGoldenPath)
	}
}

// TestReportSelfContained checks that the page references nothing outside
// itself: no scripts, stylesheets, images or frames, only in-page links, and
// no URL anywhere but in escaped body text.
func TestReportSelfContained(t *testing.T) {
	if strings.Contains(reportTemplateText, "http://") || strings.Contains(reportTemplateText, "https://") {
		t.Error("report.html.tmpl mentions an http(s) URL")
	}

	s := reportTestSummary()
	var b bytes.Buffer
	if err := WriteReport(&b, s); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, scheme := range []string{"http://", "https://"} {
		if i := strings.Index(page, scheme); i >= 0 {
			t.Errorf("report contains %q at %d: %q", scheme, i, page[max(0, i-60):min(len(page), i+60)])
		}
	}
	reportCheckReferences(t, page)

	// Bodies full of URLs and markup stay text: still no reference out.
	s.TopMismatches[0].ProductionBody = []byte(`{"poster":"https://cdn.example.com/p.png","html":"<img src=\"https://cdn.example.com/x.png\"><link rel=stylesheet href=\"http://evil.example/a.css\">"}`)
	s.TopPaths[0].Path = `/a"><img src="https://evil.example/x.png">`
	b.Reset()
	if err := WriteReport(&b, s); err != nil {
		t.Fatal(err)
	}
	reportCheckReferences(t, b.String())
}

func reportCheckReferences(t *testing.T, page string) {
	t.Helper()
	z := html.NewTokenizer(strings.NewReader(page))
	inStyle := false
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			if !errors.Is(z.Err(), io.EOF) {
				t.Fatalf("tokenize report: %v", z.Err())
			}
			return
		case html.TextToken:
			if inStyle {
				css := strings.ToLower(string(z.Text()))
				if strings.Contains(css, "url(") || strings.Contains(css, "@import") {
					t.Errorf("stylesheet loads something: %q", css)
				}
			}
		case html.EndTagToken:
			inStyle = false
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			switch tok.Data {
			case "script", "link", "img", "iframe", "frame", "object", "embed", "audio", "video", "source", "base", "form", "image", "use", "foreignobject":
				t.Errorf("report has a <%s> element", tok.Data)
			case "style":
				inStyle = true
			}
			for _, a := range tok.Attr {
				v := strings.ToLower(strings.TrimSpace(a.Val))
				switch key := strings.ToLower(a.Key); {
				case key == "href":
					if !strings.HasPrefix(v, "#") {
						t.Errorf("<%s href=%q> leaves the page", tok.Data, a.Val)
					}
				case key == "src", key == "srcset", key == "action", key == "formaction", key == "poster", key == "data", key == "background", strings.HasSuffix(key, ":href"):
					t.Errorf("<%s %s=%q> loads something", tok.Data, a.Key, a.Val)
				case key == "style" && strings.Contains(v, "url("):
					t.Errorf("<%s style=%q> loads something", tok.Data, a.Val)
				case strings.HasPrefix(key, "on"):
					t.Errorf("<%s %s=%q> is an event handler", tok.Data, a.Key, a.Val)
				}
			}
		}
	}
}

func TestWriteReportFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "runs", "r1", "report.html")
	s := reportTestSummary()
	if err := s.WriteReportFile(path); err != nil {
		t.Fatal(err)
	}
	// Written again over the old one, as a re-run of the comparison does.
	if err := s.WriteReportFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := WriteReport(&want, s); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Error("WriteReportFile wrote something else than WriteReport")
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("report directory holds %v, want only report.html (no temporary files left)", entries)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("report mode %v (err %v), want 0644", fi.Mode(), err)
	}

	// A parent that is a file: an error naming the directory, nothing written.
	blocker := filepath.Join(dir, "blocker")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteReportFile(filepath.Join(blocker, "report.html")); err == nil || !strings.Contains(err.Error(), "create report directory") {
		t.Errorf("WriteReportFile under a file: err = %v, want a create report directory error", err)
	}
}

func TestWriteReportEmptySummary(t *testing.T) {
	var b bytes.Buffer
	if err := WriteReport(&b, &Summary{RunID: "empty"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"n/a", "No endpoints were compared.", "No JSON path differed.", "No joined pairs.",
		"No latencies were recorded.", "No replay errors", "No mismatches."} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("empty report lacks %q", want)
		}
	}
	if err := WriteReport(&b, nil); err == nil {
		t.Error("WriteReport(nil) succeeded")
	}
}

func TestReportLineDiff(t *testing.T) {
	for _, tc := range []struct {
		name        string
		left, right string // lines separated by spaces
		want        string // ops: =a, -a, +b
	}{
		{"equal", "a b c", "a b c", "=a =b =c"},
		{"replace middle", "a b c", "a x c", "=a -b +x =c"},
		{"insert", "a c", "a b c", "=a +b =c"},
		{"delete", "a b c", "a c", "=a -b =c"},
		{"left empty", "", "a b", "+a +b"},
		{"right empty", "a b", "", "-a -b"},
		{"reordered", "a b c d", "b a c d", "-a =b +a =c =d"},
		{"two hunks", "a b c d e", "a x c d y", "=a -b +x =c =d -e +y"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			left, right := strings.Fields(tc.left), strings.Fields(tc.right)
			var got []string
			for _, op := range reportLineDiff(left, right) {
				switch op.kind {
				case '=':
					if left[op.a] != right[op.b] {
						t.Fatalf("= pairs %q with %q", left[op.a], right[op.b])
					}
					got = append(got, "="+left[op.a])
				case '-':
					got = append(got, "-"+left[op.a])
				case '+':
					got = append(got, "+"+right[op.b])
				}
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("diff = %q, want %q", strings.Join(got, " "), tc.want)
			}
		})
	}
}

func TestReportDiffFolding(t *testing.T) {
	var left, right []string
	for i := range 40 {
		left = append(left, fmt.Sprintf("line %d", i))
		right = append(right, fmt.Sprintf("line %d", i))
	}
	right[20] = "changed"
	d := newReportDiff(left, right)
	if !d.Folded || d.Identical {
		t.Fatalf("folded=%v identical=%v, want folded and not identical", d.Folded, d.Identical)
	}
	var gaps []string
	visible := 0
	for _, r := range d.Rows {
		switch {
		case r.Gap != "":
			gaps = append(gaps, r.Gap)
		case !r.Far:
			visible++
		}
	}
	if want := []string{"⋯ 17 unchanged lines", "⋯ 16 unchanged lines"}; !reflect.DeepEqual(gaps, want) {
		t.Errorf("gaps = %q, want %q", gaps, want)
	}
	if visible != 2*reportDiffContext+1 {
		t.Errorf("%d visible rows, want the change and %d lines either side", visible, reportDiffContext)
	}
}

func TestReportBodyLines(t *testing.T) {
	for _, tc := range []struct {
		name            string
		normalized, raw []byte
		wantLines       []string
		wantNote        string
	}{
		{"json is pretty-printed", []byte(`{"a":[1,2]}`), nil, []string{"{", `  "a": [`, "    1,", "    2", "  ]", "}"}, ""},
		{"text as is", []byte("plain\r\ntext\n"), nil, []string{"plain", "text"}, ""},
		{"json trailing newline", []byte("[1]\n"), nil, []string{"[", "  1", "]"}, ""},
		{"empty", nil, nil, nil, "empty body"},
		{"raw when not normalized", nil, []byte("oops"), []string{"oops"}, "raw body, not normalized"},
		{"invalid utf-8 is binary", []byte{'a', 0xff, 'b'}, nil, []string{"00000000  61 ff 62                                          |a.b|"}, "binary, 3 bytes, as hex"},
		{"control bytes are binary", []byte("a\x00b"), nil, []string{"00000000  61 00 62                                          |a.b|"}, "binary, 3 bytes, as hex"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines, note := reportBodyLines(tc.normalized, tc.raw)
			if !reflect.DeepEqual(lines, tc.wantLines) || note != tc.wantNote {
				t.Errorf("got %q, %q; want %q, %q", lines, note, tc.wantLines, tc.wantNote)
			}
		})
	}
}

func TestReportFormats(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{reportPercent(0.99996), "99.99%"},
		{reportPercent(1), "100.00%"},
		{reportPercent(0.00001), "<0.01%"},
		{reportPercent(0.9787), "97.87%"},
		{reportPercent(0.99), "99.00%"},
		{reportPercent(3950.0 / 3990), "98.99%"},
		{reportPercent(0), "0.00%"},
		{reportCompact(950), "950"},
		{reportCompact(31_840), "31.8k"},
		{reportCompact(999_999), "1M"},
		{reportMSNumber(1249.6), "1,250"},
		{reportInt(0), "0"},
		{reportInt(1234567), "1,234,567"},
		{reportInt(-1234), "-1,234"},
		{reportMS(0), "—"},
		{reportMS(0.84), "0.8 ms"},
		{reportMS(41.6), "42 ms"},
		{reportMS(2500), "2.5 s"},
		{reportDuration(734.6), "12m15s"},
		{reportDuration(0.25), "250ms"},
		{reportMatchRate(Counts{Matched: 99, Mismatched: 1}).Class, "good"},
		{reportMatchRate(Counts{Matched: 96, Mismatched: 4}).Class, "warn"},
		{reportMatchRate(Counts{Matched: 90, Mismatched: 10}).Class, "bad"},
		{reportMatchRate(Counts{LineageExcluded: 5}).Text, "n/a"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestReportMarkChange(t *testing.T) {
	for _, tc := range []struct {
		a, b        string
		left, right reportLine
	}{
		{`  "amount": 3.99,`, `  "amount": 4.49,`, reportLine{`  "amount": `, "3.99", ","}, reportLine{`  "amount": `, "4.49", ","}},
		{`"drama"`, `"drama",`, reportLine{`"drama"`, "", ""}, reportLine{`"drama"`, ",", ""}},
		{"prix: 3 €", "prix: 4 €", reportLine{"prix: ", "3", " €"}, reportLine{"prix: ", "4", " €"}},
		{`  "session": {`, `  "error": {`, reportLine{Pre: `  "session": {`}, reportLine{Pre: `  "error": {`}},
	} {
		left, right := reportMarkChange(tc.a, tc.b)
		if left != tc.left || right != tc.right {
			t.Errorf("reportMarkChange(%q, %q) = %q, %q; want %q, %q", tc.a, tc.b, left, right, tc.left, tc.right)
		}
	}
}
