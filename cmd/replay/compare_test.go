package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/replaykit/replay/compare"
	"github.com/replaykit/replay/config"
	"github.com/replaykit/replay/demo"
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
