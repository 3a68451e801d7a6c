package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/replaykit/replay/config"
	"github.com/replaykit/replay/schemas"
)

// TestDemoRunsTwice runs the demo twice into the same directory, as a user
// typing `make demo` twice would, and checks what it read back.
func TestDemoRunsTwice(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	var logs bytes.Buffer
	for i, runID := range []string{"demo-a", "demo-b"} {
		sum, err := Run(ctx, Options{Dir: dir, Exchanges: 400, Garbage: 3, Partitions: 3, RunID: runID,
			Log: config.Log{Level: "warn", Format: "text"}}, &logs)
		if err != nil {
			t.Fatalf("demo run %d: %v\n%s", i+1, err, logs.String())
		}
		if sum.Captured != 400 || sum.Consumed != 403 || sum.DeadLettered != 3 {
			t.Errorf("run %d: captured %d consumed %d dead-lettered %d, want 400/403/3", i+1, sum.Captured, sum.Consumed, sum.DeadLettered)
		}
		if got := sum.Rows[schemas.TableProduction]; got != 400 {
			t.Errorf("run %d: production rows %d, want 400", i+1, got)
		}
		if got := sum.Rows[schemas.TableDeadLetters]; got != 3 {
			t.Errorf("run %d: dead letters %d, want 3", i+1, got)
		}
		replayRows := sum.Rows[schemas.TableReplay]
		if replayRows != sum.Replayed || replayRows >= 400 || replayRows < 300 {
			t.Errorf("run %d: replay rows %d, replayed %d: want equal, and POSTs (about 5%%) left out", i+1, replayRows, sum.Replayed)
		}
		if sum.ReplayStatus["2xx"] == 0 || sum.ReplayStatus["4xx"] == 0 || sum.ReplayStatus["error"] != 0 {
			t.Errorf("run %d: statuses %v: want 2xx and 4xx (unknown titles), no errors", i+1, sum.ReplayStatus)
		}
		var out bytes.Buffer
		sum.Print(&out)
		for _, want := range []string{runID, "production_responses", "replay_responses", "dead_letters", dir} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("summary does not mention %q:\n%s", want, out.String())
			}
		}
	}
}
