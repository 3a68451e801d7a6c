package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/replaykit/replay/schemas"
	"github.com/replaykit/replay/sinks"
)

// A run ID, namespace or group that could escape the warehouse is refused by
// the built binary before anything is created: exit 2, the field named.
func TestHostileNamesExit2BeforeAnythingIsCreated(t *testing.T) {
	bin := replayBinary(t)
	for _, c := range []struct {
		args  []string
		field string
	}{
		{[]string{"--run-id", "../x"}, "run_id"},
		{[]string{"--run-id", "../../../../tmp/x"}, "run_id"},
		{[]string{"--run-id", "a/b"}, "run_id"},
		{[]string{"--run-id", "ok", "--set", "sink.namespace=replay/../../x"}, "sink.namespace"},
		{[]string{"--run-id", "ok", "--set", "source.kafka.group=g/../../h"}, "source.kafka.group"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.CommandContext(t.Context(), bin, append([]string{"run", "--target", "http://127.0.0.1:1"}, c.args...)...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "REPLAY_SOURCE_KAFKA_BROKERS=127.0.0.1:1")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != exitConfig {
				t.Fatalf("replay run %v: %v, want exit %d\n%s", c.args, err, exitConfig, stderr.String())
			}
			if !strings.Contains(stderr.String(), c.field+": ") {
				t.Errorf("the error does not name %s:\n%s", c.field, stderr.String())
			}
			if entries, _ := os.ReadDir(dir); len(entries) > 0 {
				t.Errorf("a refused run left %v in its directory", entries)
			}
		})
	}
}

// assertSnapshotKeys checks that every snapshot of every table of replay
// carries replay.group, replay.run-id, replay.commit-id and replay.writer
// (claims, appends with rows and empty appends alike), with the run's group
// and ID, and records offsets or owners (but the snapshot binding the run
// to its group).
func assertSnapshotKeys(t *testing.T, ctx context.Context, sink *sinks.Iceberg, runID, group string) {
	t.Helper()
	for _, name := range schemas.TableNames() {
		sums, err := sink.SnapshotSummaries(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if len(sums) == 0 {
			t.Errorf("%s has no snapshot", name)
		}
		for i, props := range sums {
			for _, key := range []string{sinks.PropGroup, sinks.PropRunID, sinks.PropCommitID, sinks.PropWriter} {
				if props[key] == "" {
					t.Errorf("%s snapshot %d of %d lacks %s: %v", name, i, len(sums), key, props)
				}
			}
			if props[sinks.PropRunID] != runID || props[sinks.PropGroup] != group {
				t.Errorf("%s snapshot %d: run %q, group %q; want %q, %q", name, i, props[sinks.PropRunID], props[sinks.PropGroup], runID, group)
			}
			found := false
			for k := range props {
				found = found || strings.HasPrefix(k, sinks.PropOffsetPrefix) || strings.HasPrefix(k, sinks.PropOwnerPrefix)
			}
			// The bind-run snapshot records the run's group (a table
			// property), not offsets.
			if !found && props[sinks.PropOperation] != "bind-run" {
				t.Errorf("%s snapshot %d records neither offsets nor owners: %v", name, i, props)
			}
		}
	}
}
