package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestRestartAfterSIGKILLRejoinsAtOnce SIGKILLs the replay binary mid-run
// and restarts it with the same source.kafka.instance_id: the restart must
// get its partitions well within the session timeout, which a dynamic
// member's restart waits out while the dead member holds them.
func TestRestartAfterSIGKILLRejoinsAtOnce(t *testing.T) {
	const sessionTimeout = 20 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := replayBinary(t)
	_, brokers := startFaultyBroker(t, "captures", 4)
	want := produceCaptures(t, ctx, brokers, "captures", 4000, 0)
	tgt, srv := newCountingTarget(t)
	dir := t.TempDir()
	cfgFile := writeRunConfig(t, dir, "static-1", brokers[0], "captures", srv.URL, "")
	rewriteConfig(t, cfgFile, "    session_timeout: 2s\n", "    session_timeout: 20s\n    instance_id: replica-0\n")
	logFile := filepath.Join(dir, "replay.log")

	p := startReplay(t, bin, cfgFile, logFile)
	if !tgt.await(500, p.done) {
		t.Fatalf("replay exited (code %d) before 500 requests; log tail:\n%s", p.exitCode(), logTail(logFile))
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := p.exitCode(); code != -1 {
		t.Fatalf("process exited %d before the SIGKILL landed", code)
	}
	before, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	p = startReplay(t, bin, cfgFile, logFile)
	// The log line is the signal: read the log until the restart says it
	// was assigned a partition.
	var took time.Duration
	for took == 0 {
		b, _ := os.ReadFile(logFile)
		if len(b) > len(before) && bytes.Contains(b[len(before):], []byte(`msg="partition assigned"`)) {
			took = time.Since(restarted)
			break
		}
		select {
		case <-p.done:
			t.Fatalf("restart exited (code %d) before a partition was assigned; log tail:\n%s", p.exitCode(), logTail(logFile))
		case <-ctx.Done():
			t.Fatalf("restart never got a partition; log tail:\n%s", logTail(logFile))
		case <-time.After(20 * time.Millisecond):
		}
	}
	ratio := float64(took) / float64(sessionTimeout)
	t.Logf("restart got its first partition %s after starting: %.2f of the session timeout", took.Round(time.Millisecond), ratio)
	if ratio > 0.25 {
		t.Errorf("restart waited %s for its partitions (%.2f of session_timeout %s); a static member must rejoin at once",
			took, ratio, sessionTimeout)
	}
	if code := p.exitCode(); code != 0 {
		t.Fatalf("restarted run exited %d; log tail:\n%s", code, logTail(logFile))
	}
	assertExactlyOnce(t, ctx, cfgFile, "static-1", want)
}
