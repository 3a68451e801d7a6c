package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunRefusalsExit2: a run refused for its configuration (a production
// target, a run id written by another group, --fresh with Kafka) exits 2
// and, for the production target, leaves no catalog or warehouse behind.
func TestRunRefusalsExit2(t *testing.T) {
	dir := t.TempDir()
	capture, err := filepath.Abs("../../testdata/captures/sample.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"run", "--target", "http://127.0.0.1:1",
		"--set", "source.type=file", "--set", "source.file.path=" + capture,
		"--set", "sink.catalog.uri=" + filepath.Join(dir, "catalog.db"), "--set", "sink.catalog.warehouse=" + filepath.Join(dir, "wh"),
		"--set", "log.level=warn", "--set", "replay.retry.attempts=1"}
	run1 := func(args ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		code := run(append(append([]string{}, base...), args...), &stdout, &stderr)
		return code, stderr.String()
	}

	code, stderr := run1("--run-id", "prod-1", "--set", "replay.production_hosts=127.0.0.1")
	if code != exitConfig || !strings.Contains(stderr, "production") {
		t.Errorf("production target: exit %d, want %d; stderr:\n%s", code, exitConfig, stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("the refused run left %d entries in %s: %v", len(entries), dir, entries)
	}

	code, stderr = run1("--run-id", "kafka-fresh", "--set", "source.type=kafka", "--fresh")
	if code != exitConfig || !strings.Contains(stderr, "source.file.fresh") {
		t.Errorf("--fresh with kafka: exit %d, want %d; stderr:\n%s", code, exitConfig, stderr)
	}

	// The file run binds run-1 to its group, file:run-1; a Kafka run of
	// run-1 under group replay is refused, naming that group, before it
	// joins the group.
	if code, stderr = run1("--run-id", "run-1"); code != exitOK {
		t.Fatalf("file run: exit %d; stderr:\n%s", code, stderr)
	}
	brokers := startBroker(t, "captures", 1)
	code, stderr = run1("--run-id", "run-1", "--set", "source.type=kafka", "--brokers", brokers[0], "--topic", "captures",
		"--set", "source.kafka.stop_at_end=true")
	if code != exitConfig || !strings.Contains(stderr, `"file:run-1"`) {
		t.Errorf("run-1 under another group: exit %d, want %d naming group file:run-1; stderr:\n%s", code, exitConfig, stderr)
	}
}
