package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/replaykit/replay/schemas"
)

// harEntry is one HAR 1.2 entry, as a browser or a proxy exports it: the
// kind of record a user might put on the capture topic by mistake.
func harEntry(i int) []byte {
	return fmt.Appendf(nil, `{"startedDateTime":"2026-11-21T10:00:%02d.000Z","time":12.5,`+
		`"request":{"method":"GET","url":"https://api.example.com/v1/titles/%d","httpVersion":"HTTP/1.1",`+
		`"headers":[{"name":"Accept","value":"application/json"}],"queryString":[],"cookies":[],"headersSize":-1,"bodySize":0},`+
		`"response":{"status":200,"statusText":"OK","httpVersion":"HTTP/1.1","headers":[{"name":"Content-Type","value":"application/json"}],`+
		`"cookies":[],"content":{"size":9,"mimeType":"application/json","text":"{\"id\":%d}"},"redirectURL":"","headersSize":-1,"bodySize":9},`+
		`"cache":{},"timings":{"send":0,"wait":12,"receive":0.5}}`, i%60, i, i)
}

// TestRunOfHAREntriesFailsNamingTheFormat puts HAR entries on the capture
// topic and runs the built binary to the end of the log: every record is a
// dead letter, so the run must exit 1 with a message that says what the
// records look like, and dead_letters must hold every one of them.
func TestRunOfHAREntriesFailsNamingTheFormat(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const topic, n = "captures", 200
	_, brokers := startFaultyBroker(t, topic, 2)
	_, srv := newCountingTarget(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	want := map[string]bool{}
	var recs []*kgo.Record
	for i := range n {
		v := harEntry(i)
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: v})
		want[string(v)] = true
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	cfgFile := writeRunConfig(t, dir, "har-1", brokers[0], topic, srv.URL, "")
	logFile := filepath.Join(dir, "replay.log")
	p := startReplay(t, replayBinary(t), cfgFile, logFile)
	if code := p.exitCode(); code != exitError {
		t.Fatalf("replay run of HAR entries exited %d, want %d\n%s", code, exitError, logTail(logFile))
	}
	out, _ := os.ReadFile(logFile)
	for _, s := range []string{"0 of 200 records decoded", "HAR entries", "capture envelope", "README.md"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("the run's output does not say %q:\n%s", s, logTail(logFile))
		}
	}

	s := openSinkFromConfig(t, ctx, cfgFile)
	defer s.Close()
	dead := scanRows(t, ctx, s, schemas.TableDeadLetters, "har-1")
	if len(dead) != n {
		t.Fatalf("dead_letters has %d rows, want %d", len(dead), n)
	}
	for _, d := range dead {
		if !want[string(d.bytes("raw"))] {
			t.Errorf("dead letter at %s/%d/%d holds bytes that were not produced: %.80q", d.str("source_topic"),
				d.int("source_partition"), d.int("source_offset"), d.bytes("raw"))
		}
		delete(want, string(d.bytes("raw")))
		if d.str("reason") != "bad_json" || d.str("error") == "" {
			t.Errorf("dead letter reason %q, error %q; want bad_json with the decode error", d.str("reason"), d.str("error"))
		}
	}
	if len(want) != 0 {
		t.Errorf("%d HAR entries are not in dead_letters", len(want))
	}
}

// TestRunWithSomeDeadLettersReportsThemByReason runs a capture with a few
// undecodable records among the envelopes: under the default
// decode.max_dead_letter_ratio the run exits 0, and its output reports the
// dead letters by reason.
func TestRunWithSomeDeadLettersReportsThemByReason(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const topic = "captures"
	_, brokers := startFaultyBroker(t, topic, 2)
	_, srv := newCountingTarget(t)
	want := produceCaptures(t, ctx, brokers, topic, 300, 12)

	dir := t.TempDir()
	cfgFile := writeRunConfig(t, dir, "mixed-1", brokers[0], topic, srv.URL, "")
	logFile := filepath.Join(dir, "replay.log")
	p := startReplay(t, replayBinary(t), cfgFile, logFile)
	if code := p.exitCode(); code != exitOK {
		t.Fatalf("replay run exited %d, want 0\n%s", code, logTail(logFile))
	}
	out, _ := os.ReadFile(logFile)
	for _, s := range []string{"dead letters by reason", "bad_json=12", "dead_lettered=12"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("the run's output does not say %q:\n%s", s, logTail(logFile))
		}
	}
	assertExactlyOnce(t, ctx, cfgFile, "mixed-1", want)

	// The same capture with a ratio the dead letters exceed: 12 of 312 is
	// over 1%, so the run fails.
	cfgFile = writeRunConfig(t, t.TempDir(), "mixed-2", brokers[0], topic, srv.URL, "decode:\n  max_dead_letter_ratio: 0.01\n")
	rewriteConfig(t, cfgFile, "group: crash", "group: mixed-2")
	logFile = filepath.Join(dir, "replay-2.log")
	p = startReplay(t, replayBinary(t), cfgFile, logFile)
	if code := p.exitCode(); code != exitError {
		t.Fatalf("replay run over max_dead_letter_ratio exited %d, want %d\n%s", code, exitError, logTail(logFile))
	}
	out, _ = os.ReadFile(logFile)
	if s := "300 of 312 records decoded"; !strings.Contains(string(out), s) {
		t.Errorf("the run's output does not say %q:\n%s", s, logTail(logFile))
	}
}
