package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/replaykit/replay/admin"
	"github.com/replaykit/replay/internal/testinfra"
	"github.com/replaykit/replay/pipeline"
	"github.com/replaykit/replay/schemas"
	"github.com/replaykit/replay/sinks"
	"github.com/replaykit/replay/sources"
)

// pageRun is a real replay wired as service.Run wires it (Kafka source on
// a kfake broker, Iceberg sink, pipeline, admin server with a token), but
// with the admin server on a clock the test moves, so the last-minute
// numbers hold still while the page and the test read them.
type pageRun struct {
	base   string
	token  string
	clock  *frozenClock
	server *admin.Server
}

const (
	pageRecords  = 60 // produced
	pageAnswered = 40 // the target answers these; the rest wait
	pageWorkers  = 4
)

func startPageRun(t *testing.T) *pageRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))

	const topic = "captures"
	broker, producer := startBroker(t, topic)
	paths := []string{"/v1/titles/%d", "/v1/users/u-%d/profile", "/v1/titles/%d/artwork", "/v1/search"}
	var recs []*kgo.Record
	for i := range pageRecords {
		p := paths[i%len(paths)]
		if strings.Contains(p, "%d") {
			p = fmt.Sprintf(p, i)
		}
		raw, _ := json.Marshal(schemas.Envelope{
			CorrelationID: fmt.Sprintf("page-%03d", i),
			CapturedAt:    time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * 100 * time.Millisecond),
			Request:       &schemas.EnvelopeRequest{Method: "GET", Path: p, Query: fmt.Sprintf("n=%d", i)},
			Response:      &schemas.EnvelopeResponse{Status: 200, Body: `{"ok":true}`, LatencyMS: 4 + float64(i%9)*2.5},
		})
		recs = append(recs, &kgo.Record{Value: raw})
	}
	if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// The candidate: answers the first pageAnswered records (every tenth
	// with a 503, each a few milliseconds late) and moves the admin clock
	// 200ms per answer, so the replays spread over several seconds of
	// its time; it holds the others until the test ends.
	clock := newFrozenClock(time.Unix(1_790_000_000, 0))
	release := make(chan struct{})
	var releaseOnce sync.Once
	tgt := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if n >= pageAnswered {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		time.Sleep(time.Duration(1+n%5) * time.Millisecond) // the candidate's latency, not synchronization
		clock.set(clock.now().Add(200 * time.Millisecond))
		if n%10 == 7 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(tgt.Close)
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) }) // before tgt.Close

	kcfg := sources.DefaultKafkaConfig()
	kcfg.Brokers, kcfg.Topics, kcfg.Group = []string{broker}, []string{topic}, "page"
	src, err := sources.NewKafka(ctx, kcfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	scfg := sinks.DefaultIcebergConfig()
	scfg.Catalog.URI, scfg.Catalog.Warehouse, scfg.Group = filepath.Join(dir, "catalog.db"), filepath.Join(dir, "wh"), kcfg.Group
	sink, err := sinks.OpenIceberg(ctx, scfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	pcfg := pipeline.DefaultConfig()
	pcfg.RunID = "page-run-1"
	pcfg.Replay.Target = tgt.URL
	pcfg.Replay.Workers = pageWorkers
	pcfg.Replay.Rate = 250
	pcfg.Replay.Breaker.Errors = 0
	pcfg.Limits.MaxInFlight = 8
	pcfg.ShutdownGrace = 2 * time.Second
	pcfg.Flush = pipeline.FlushPolicy{Rows: 10_000, Interval: 100 * time.Millisecond}
	p, err := pipeline.New(pcfg, src, sink, logger)
	if err != nil {
		t.Fatal(err)
	}
	src.SetResume(func(ctx context.Context, tps []schemas.TopicPartition) (schemas.Offsets, error) {
		p.Assign(tps)
		return sink.Resume(ctx, tps)
	})
	srv := admin.New(admin.Config{Listen: "127.0.0.1:0", Token: "page-token"}, admin.Deps{
		Stats: p, Control: p, Lag: src, RunID: pcfg.RunID, Target: tgt.URL, Now: clock.now, StartedAt: clock.now().Add(-42 * time.Second),
	}, logger)
	p.SetObserver(srv.Observer())
	base := serve(t, srv)

	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		releaseOnce.Do(func() { close(release) })
		<-runDone
		src.Close()
		_ = sink.Close()
	})
	return &pageRun{base: base, token: "page-token", clock: clock, server: srv}
}

func (r *pageRun) status(t *testing.T) admin.Status {
	t.Helper()
	code, body := get(t, r.base+"/v1/status", "Authorization", "Bearer "+r.token)
	var st admin.Status
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil {
		t.Fatalf("/v1/status = %d %v\n%s", code, err, body)
	}
	return st
}

// TestLivePageShowsWhatStatusReports runs a replay until it holds still
// (the target answered 40 records and holds the rest, the first 40 are
// committed, 20 records lag), opens the live page in headless Chromium,
// gives it the token, and checks every headline number against
// /v1/status.
func TestLivePageShowsWhatStatusReports(t *testing.T) {
	chromium := testinfra.ChromiumT(t, "the live page test")
	r := startPageRun(t)

	// Hold still: 40 replayed and committed, 20 lag; in flight, one
	// request per worker held at the target and the next record waiting
	// for a worker (which holds up the intake).
	tick := time.NewTicker(20 * time.Millisecond) // polling the status API, as an operator would
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for settled := false; !settled; {
		st := r.status(t)
		settled = st.Stats.Replayed == pageAnswered && st.Lag != nil && st.Lag.Total == pageRecords-pageAnswered && st.Stats.InFlight == pageWorkers+1
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("the run did not settle: %+v, lag %+v", st.Stats, st.Lag)
		}
	}
	// Live comparison is not part of this pipeline yet: its verdicts reach
	// the admin server through the observer, as the pipeline will send them.
	for i := range 20 {
		verdict := pipeline.VerdictMatch
		if i%10 == 3 {
			verdict = pipeline.VerdictMismatch
		}
		r.server.Observer().ObserveReplay(observation("GET /v1/titles/{id}", 6, 200, 3, verdict))
	}
	// Move the clock past the replays, so they are complete seconds of
	// the series and the window; from here every number holds still.
	r.clock.set(time.Unix(r.clock.now().Unix()+2, 0))
	want := r.status(t)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	var browserLog testinfra.SyncBuffer
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // tests run as root in containers
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(filepath.Join(dir, "chromium-profile")),
		chromedp.WindowSize(1440, 1000),
		chromedp.CombinedOutput(&browserLog),
	)
	defer cancelAlloc()
	tab, cancelTab := chromedp.NewContext(allocCtx)
	defer cancelTab()
	if err := chromedp.Do(tab, chromedp.EmulateViewport(1440, 1000), chromedp.Navigate(r.base+"/")); err != nil {
		t.Fatalf("open %s: %v\nbrowser output:\n%s", r.base, err, browserLog.String())
	}

	// No token yet: the page asks for it. A wrong one is refused.
	waitFor := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(tab, chromedp.Poll[bool](expr, chromedp.WithPollingMutation(), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			text, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.body.innerText`))
			t.Fatalf("waiting for %s: %v\npage:\n%s", what, err, text)
		}
	}
	waitFor("the token prompt", `document.getElementById("login").classList.contains("show")`)
	if err := chromedp.Do(tab, chromedp.SendKeys(chromedp.ID("token"), "wrong"), chromedp.Click(chromedp.ID("login-button"))); err != nil {
		t.Fatal(err)
	}
	waitFor("the wrong token refused", `document.getElementById("login-error").textContent.includes("refused")`)
	if _, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById("token").value = ""`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(tab, chromedp.SendKeys(chromedp.ID("token"), r.token), chromedp.Click(chromedp.ID("login-button"))); err != nil {
		t.Fatal(err)
	}
	waitFor("a refresh with the token", `Number(document.body.dataset.refreshes) >= 1`)
	// The series fills in with the ticks after the clock moved; wait for
	// a refresh that shows it.
	waitFor("the charts", `document.querySelectorAll("#chart-rate path").length >= 1 && Number(document.body.dataset.refreshes) >= 2`)

	stored, err := chromedp.Run(tab, chromedp.Evaluate[string](`sessionStorage.getItem("replay-admin-token")`))
	if err != nil || stored != r.token {
		t.Errorf("sessionStorage token = %q (%v), want the token", stored, err)
	}

	type shown struct{ Value, Text string }
	read := func() map[string]shown {
		t.Helper()
		m, err := chromedp.Run(tab, chromedp.Evaluate[map[string]shown](`(() => {
			const out = {};
			for (const e of document.querySelectorAll("[data-value]")) out[e.id] = {Value: e.dataset.value, Text: e.textContent};
			return out;
		})()`))
		if err != nil {
			t.Fatalf("read the page: %v", err)
		}
		return m
	}
	page := read()
	w := want.Window
	num := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	check := func(id string, value float64, tolerance float64, scale float64) {
		t.Helper()
		got, ok := page[id]
		if !ok {
			t.Errorf("#%s is missing", id)
			return
		}
		if got.Value != num(value) {
			t.Errorf("#%s holds %s, /v1/status says %s", id, got.Value, num(value))
		}
		m := regexp.MustCompile(`-?[\d,]+(\.\d+)?`).FindString(got.Text)
		shownValue, err := strconv.ParseFloat(strings.ReplaceAll(m, ",", ""), 64)
		if err != nil || math.Abs(shownValue/scale-value) > tolerance {
			t.Errorf("#%s shows %q, /v1/status says %v", id, got.Text, value)
		}
	}
	if w.Replayed == 0 || w.Replay.Count == 0 || w.Errors == 0 || w.MatchRate == nil {
		t.Fatalf("the window is missing data the page should show: %+v", w)
	}
	check("rate", w.CurrentRate, 0.05, 1)
	check("rate-avg", w.Rate, 0.05, 1)
	check("replay-p50", w.Replay.P50, 0.05, 1)
	check("replay-p90", w.Replay.P90, 0.05, 1)
	check("replay-p99", w.Replay.P99, 0.05, 1)
	check("prod-p50", w.Production.P50, 0.05, 1)
	check("prod-p90", w.Production.P90, 0.05, 1)
	check("prod-p99", w.Production.P99, 0.05, 1)
	check("replay-count", float64(w.Replay.Count), 0, 1)
	check("errors", float64(w.Errors), 0, 1)
	check("error-rate", w.ErrorRate, 0.00005, 100)
	check("match-rate", *w.MatchRate, 0.00005, 100)
	check("lag", float64(want.Lag.Total), 0, 1)
	check("consumed", float64(want.Stats.Consumed), 0, 1)
	check("replayed", float64(want.Stats.Replayed), 0, 1)
	check("in-flight", float64(want.Stats.InFlight), 0, 1)
	check("dial", want.Control.DialPercent, 0, 1)
	check("target-rate", want.Control.EffectiveRate, 0.5, 1)

	text, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{want.RunID, want.Target, "replaying", "up " + want.Uptime, "captures/0"} {
		if !strings.Contains(text, s) {
			t.Errorf("page text lacks %q", s)
		}
	}

	// Nothing but the admin server was asked for anything.
	fetched, err := chromedp.Run(tab, chromedp.Evaluate[[]string](`performance.getEntriesByType("resource").map(e => e.name)`))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range fetched {
		if !strings.HasPrefix(u, r.base+"/") {
			t.Errorf("the page fetched %s, outside the admin server", u)
		}
	}
	// Nothing pushes the page sideways at laptop widths.
	for _, width := range []int64{1440, 1024} {
		if err := chromedp.Do(tab, chromedp.EmulateViewport(width, 1000)); err != nil {
			t.Fatal(err)
		}
		overflow, err := chromedp.Run(tab, chromedp.Evaluate[int](`document.documentElement.scrollWidth - document.documentElement.clientWidth`))
		if err != nil || overflow > 0 {
			t.Errorf("at %dpx the page is %dpx too wide (%v)", width, overflow, err)
		}
	}
	if err := chromedp.Do(tab, chromedp.EmulateViewport(1440, 1000)); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	shotDir := os.Getenv("REPLAY_SCREENSHOT_DIR")
	if shotDir == "" {
		shotDir = dir
	}
	shot := filepath.Join(shotDir, "live-page.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (set REPLAY_SCREENSHOT_DIR to keep it)", shot)

	// The token survives a reload within the tab.
	if err := chromedp.Do(tab, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitFor("a refresh after the reload", `Number(document.body.dataset.refreshes) >= 1 && !document.getElementById("login").classList.contains("show")`)
}

func TestLivePageHeaders(t *testing.T) {
	base := start(t, admin.Config{Token: "t"}, admin.Deps{Stats: fakeStats{}})
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(csp, "connect-src 'self'") || !strings.Contains(csp, "script-src 'sha256-") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("GET / = %d, type %q, CSP %q", resp.StatusCode, resp.Header.Get("Content-Type"), csp)
	}
	// The only URL in the page is the SVG namespace, which is a name, not
	// a request; nothing is loaded from elsewhere.
	page := strings.ReplaceAll(string(body), `"http://www.w3.org/2000/svg"`, "")
	for _, ref := range []string{"http://", "https://", "<link", "src=", "url(", "@import"} {
		if strings.Contains(page, ref) {
			t.Errorf("the page contains %q", ref)
		}
	}
	if code, _ := get(t, base+"/nope"); code != http.StatusNotFound {
		t.Errorf("GET /nope = %d, want 404", code)
	}
}
