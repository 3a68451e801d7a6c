package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/replaykit/replay/compare"
	"github.com/replaykit/replay/config"
	"github.com/replaykit/replay/demo"
	"github.com/replaykit/replay/schemas"
	"github.com/replaykit/replay/sinks"
)

// TestCompareCommand runs `replay compare` on a demo run: the JSON summary on
// stdout, the report on disk, and the --min-match-rate gate's exit status.
func TestCompareCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	var logs bytes.Buffer
	sum, err := demo.Run(ctx, demo.Options{Dir: dir, Exchanges: 300, Partitions: 2, RunID: "cmp-1",
		Log: config.Log{Level: "warn", Format: "text"}}, &logs)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, logs.String())
	}
	cfgFile := filepath.Join(dir, "compare.yaml")
	rules, err := os.ReadFile("../../demo/compare.yaml")
	if err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "out", "report.html")
	writeFile(t, cfgFile, string(rules)+"\n  report: "+report+"\nsink:\n  catalog:\n    uri: "+filepath.Join(dir, "catalog.db")+
		"\n    warehouse: "+filepath.Join(dir, "warehouse")+"\nlog:\n  level: warn\n")

	var stdout, stderr bytes.Buffer
	if code := run([]string{"compare", "--run", "cmp-1", "--config", cfgFile, "--min-match-rate", "0.5"}, &stdout, &stderr); code != 0 {
		t.Fatalf("compare exited %d\n%s", code, stderr.String())
	}
	var got compare.Summary
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("stdout is not the JSON summary: %v\n%s", err, stdout.String())
	}
	if got.RunID != "cmp-1" || got.Overall != sum.Comparison.Overall || got.Report != report {
		t.Errorf("compare summary %+v differs from the demo's %+v", got.Overall, sum.Comparison.Overall)
	}
	if _, err := os.Stat(report); err != nil {
		t.Errorf("report not written: %v", err)
	}
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"compare", "--run", "cmp-1", "--config", cfgFile, "--min-match-rate", "0.9999"}, &stdout, &stderr); code != exitBelowThreshold {
		t.Errorf("below the gate: exit %d, want %d\n%s", code, exitBelowThreshold, stderr.String())
	}
	if code := run([]string{"compare", "--config", cfgFile}, &stdout, &stderr); code != exitConfig {
		t.Errorf("without --run: exit %d, want %d", code, exitConfig)
	}
}

// TestCompareOpensReadOnly runs the built binary's compare against catalogs
// that are not there or not what was asked for: it fails with exit 1 and a
// message naming what it looked for and where, and creates nothing — no
// SQLite file, no directories, no namespace, no tables.
func TestCompareOpensReadOnly(t *testing.T) {
	bin := replayBinary(t)
	dir := t.TempDir()
	compareWith := func(t *testing.T, uri, warehouse, namespace, runID string) (int, string) {
		t.Helper()
		cfg := filepath.Join(t.TempDir(), "compare.yaml")
		writeFile(t, cfg, "sink:\n  namespace: "+namespace+"\n  catalog:\n    uri: "+uri+"\n    warehouse: "+warehouse+
			"\ncompare:\n  report: "+filepath.Join(t.TempDir(), "report.html")+"\nlog:\n  level: warn\n")
		cmd := exec.Command(bin, "compare", "--run", runID, "--config", cfg)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("run %s: %v", bin, err)
		}
		return cmd.ProcessState.ExitCode(), string(out)
	}

	t.Run("mistyped catalog path", func(t *testing.T) {
		typo := filepath.Join(dir, "replay-dta", "catalog.db")
		warehouse := filepath.Join(dir, "replay-dta", "warehouse")
		code, out := compareWith(t, typo, warehouse, "replay", "run-1")
		if code != 1 || !strings.Contains(out, typo) || !strings.Contains(out, "sink.catalog.uri") {
			t.Errorf("exit %d, want 1 with a message naming %s and sink.catalog.uri:\n%s", code, typo, out)
		}
		for _, p := range []string{typo, warehouse, filepath.Dir(typo)} {
			if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("compare created %s (stat: %v)", p, err)
			}
		}
	})

	// A real catalog with replay's tables in namespace replay and no rows.
	uri, warehouse := filepath.Join(dir, "data", "catalog.db"), filepath.Join(dir, "data", "warehouse")
	sinkCfg := sinks.DefaultIcebergConfig()
	sinkCfg.Catalog.URI, sinkCfg.Catalog.Warehouse = uri, warehouse
	sink, err := sinks.OpenIceberg(context.Background(), sinkCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	namespaces := func(t *testing.T) []string {
		t.Helper()
		db, err := sql.Open("sqlite", uri)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows, err := db.Query(`SELECT DISTINCT table_namespace FROM iceberg_tables UNION SELECT DISTINCT namespace FROM iceberg_namespace_properties ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var ns string
			if err := rows.Scan(&ns); err != nil {
				t.Fatal(err)
			}
			out = append(out, ns)
		}
		return out
	}

	t.Run("mistyped namespace", func(t *testing.T) {
		code, out := compareWith(t, uri, warehouse, "replya", "run-1")
		if code != 1 || !strings.Contains(out, `"replya"`) || !strings.Contains(out, uri) || !strings.Contains(out, "sink.namespace") {
			t.Errorf("exit %d, want 1 with a message naming namespace replya, %s and sink.namespace:\n%s", code, uri, out)
		}
		if got := namespaces(t); !slices.Equal(got, []string{"replay"}) {
			t.Errorf("namespaces after compare: %v, want only replay", got)
		}
	})

	t.Run("run without rows", func(t *testing.T) {
		code, out := compareWith(t, uri, warehouse, "replay", "no-such-run")
		if code != 1 || !strings.Contains(out, `"no-such-run"`) || !strings.Contains(out, uri) ||
			!strings.Contains(out, "replay.production_responses") {
			t.Errorf("exit %d, want 1 with a message naming the run, %s and the tables:\n%s", code, uri, out)
		}
	})
}

// TestCompareUndefinedMatchRate compares a run whose every pair is
// lineage-excluded: no pair is compared, so the match rate is undefined.
// The printed JSON says null, the report n/a, and a --min-match-rate gate
// does not pass on nothing (exit 3, saying why).
func TestCompareUndefinedMatchRate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sinkCfg := sinks.DefaultIcebergConfig()
	sinkCfg.Catalog.URI, sinkCfg.Catalog.Warehouse = filepath.Join(dir, "catalog.db"), filepath.Join(dir, "warehouse")
	sinkCfg.Group = "g"
	sink, err := sinks.OpenIceberg(ctx, sinkCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i := range 3 {
		src := schemas.Coordinates{Topic: "captures", Partition: 0, Offset: int64(i)}
		req := schemas.Request{Method: "GET", Scheme: "https", Host: "api.example.com", Path: fmt.Sprintf("/v1/users/%d", i)}
		resp := &schemas.Response{Status: 200, Body: []byte(`{"ok":true}`), LatencyMS: 3}
		if err := sink.Add(&schemas.Result{
			Source: src,
			Production: &schemas.ProductionRow{RunID: "lineage-only", Exchange: &schemas.Exchange{Source: src,
				CorrelationID: fmt.Sprint("c", i), CapturedAt: at, Request: req, Response: resp,
				Lineage: map[string]string{"catalog": "v1"}}},
			Replay: &schemas.ReplayRow{RunID: "lineage-only", CorrelationID: fmt.Sprint("c", i), CapturedAt: at,
				ReplayedAt: at.Add(time.Hour), Target: "http://new:8080", Source: src, Request: req, Response: resp,
				Attempts: 1, Lineage: map[string]string{"catalog": "v2"}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sink.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "report.html")
	cfgFile := filepath.Join(dir, "compare.yaml")
	writeFile(t, cfgFile, "sink:\n  catalog:\n    uri: "+sinkCfg.Catalog.URI+"\n    warehouse: "+sinkCfg.Catalog.Warehouse+
		"\ncompare:\n  report: "+report+"\nlog:\n  level: warn\n")

	var stdout, stderr bytes.Buffer
	if code := run([]string{"compare", "--run", "lineage-only", "--config", cfgFile}, &stdout, &stderr); code != 0 {
		t.Fatalf("compare exited %d\n%s", code, stderr.String())
	}
	var printed struct {
		MatchRate *float64 `json:"match_rate"`
		Overall   struct {
			LineageExcluded int64    `json:"lineage_excluded"`
			MatchRate       *float64 `json:"match_rate"`
		} `json:"overall"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &printed); err != nil {
		t.Fatalf("stdout: %v\n%s", err, stdout.String())
	}
	if printed.Overall.LineageExcluded != 3 || printed.MatchRate != nil || printed.Overall.MatchRate != nil ||
		!strings.Contains(stdout.String(), `"match_rate": null`) {
		t.Errorf("printed summary, want 3 lineage-excluded and match_rate null:\n%s", stdout.String())
	}
	page, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), `<div class="rate">n/a</div>`) {
		t.Errorf("report headline is not n/a")
	}
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"compare", "--run", "lineage-only", "--config", cfgFile, "--min-match-rate", "0.5"}, &stdout, &stderr); code != exitBelowThreshold ||
		!strings.Contains(stderr.String(), "match rate is undefined: no pair was compared") {
		t.Errorf("gate over an undefined rate: exit %d, want %d with a reason\n%s", code, exitBelowThreshold, stderr.String())
	}
}
