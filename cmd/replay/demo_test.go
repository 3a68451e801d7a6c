package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// followUps returns the commands the demo's summary tells the user to run.
func followUps(t *testing.T, summary string) []string {
	t.Helper()
	var cmds []string
	for _, line := range strings.Split(summary, "\n") {
		if _, cmd, ok := strings.Cut(strings.TrimSpace(line), "again "); ok {
			cmds = append(cmds, strings.TrimSpace(cmd))
		}
	}
	if len(cmds) == 0 {
		t.Fatalf("the demo printed no command to run next:\n%s", summary)
	}
	return cmds
}

// pasteCommand runs cmd as a user pasting it into a shell in dir would and
// checks it succeeds with the comparison of runID.
func pasteCommand(t *testing.T, dir, cmd, runID string) {
	t.Helper()
	c := exec.Command("sh", "-c", cmd)
	c.Dir, c.Env = dir, cleanEnv("REPLAY_LOG_LEVEL=warn")
	out, err := c.Output()
	var stderr string
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = string(ee.Stderr)
	}
	if err != nil {
		t.Fatalf("in %s, the printed command %q failed: %v\n%s", dir, cmd, err, stderr)
	}
	var sum struct {
		RunID string `json:"run_id"`
	}
	if err := json.Unmarshal(out, &sum); err != nil || sum.RunID != runID {
		t.Errorf("in %s, %q printed %q (%v), want the comparison of %s", dir, cmd, out, err, runID)
	}
}

// TestDemoFollowUpCommandsWork runs the demo as make demo does (./bin/replay
// from the repository root), and with --dir outside it, and runs every
// command the summary prints from where the user stands; a second demo
// under a run id the tables already hold is refused before it does
// anything, instead of printing a summary of the first run's rows as its own.
func TestDemoFollowUpCommandsWork(t *testing.T) {
	root := t.TempDir() // the repository root the user stands in
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(replayBinary(t), filepath.Join(root, "bin", "replay")); err != nil {
		t.Fatal(err)
	}
	small := []string{"--exchanges", "200", "--partitions", "2", "--garbage", "2", "--log-level", "warn"}

	// make demo: ./bin/replay demo, into ./replay-data.
	demoCmd := exec.Command("./bin/replay", append([]string{"demo", "--run-id", "fu-1"}, small...)...)
	demoCmd.Dir, demoCmd.Env = root, cleanEnv()
	out, err := demoCmd.Output()
	if err != nil {
		t.Fatalf("./bin/replay demo: %v\n%s", err, out)
	}
	for _, cmd := range followUps(t, string(out)) {
		if !strings.HasPrefix(cmd, "./bin/replay compare --run fu-1 --config replay-data/compare.yaml") {
			t.Errorf("printed %q, want ./bin/replay compare --run fu-1 --config replay-data/compare.yaml", cmd)
		}
		pasteCommand(t, root, cmd, "fu-1")
	}

	// The same run id again: refused, at once, saying why.
	code, stdout, stderr := runBinary(t, root, cleanEnv(), append([]string{"demo", "--run-id", "fu-1"}, small...)...)
	if code != exitConfig || !strings.Contains(stderr, "run fu-1 has 200 rows in") || !strings.Contains(stderr, "needs a run id of its own") ||
		strings.Contains(stdout, "replay demo finished") {
		t.Errorf("a second demo with run id fu-1: exit %d, want %d refusing it\nstdout: %s\nstderr: %s", code, exitConfig, stdout, stderr)
	}

	// --dir D outside the directory the user stands in, the binary by its
	// absolute path: the printed command works from here and from anywhere.
	elsewhere := filepath.Join(t.TempDir(), "demo data")
	code, stdout, stderr = runBinary(t, root, cleanEnv(), append([]string{"demo", "--run-id", "fu-2", "--dir", elsewhere}, small...)...)
	if code != 0 {
		t.Fatalf("demo --dir %s: exit %d\n%s", elsewhere, code, stderr)
	}
	for _, cmd := range followUps(t, stdout) {
		pasteCommand(t, root, cmd, "fu-2")
		pasteCommand(t, t.TempDir(), cmd, "fu-2")
	}
	if _, err := os.Stat(filepath.Join(root, "replay-data", "reports", "fu-2")); err == nil {
		t.Error("compare of a demo in --dir wrote its report under ./replay-data")
	}
}
