package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/replaykit/replay/config"
	"github.com/replaykit/replay/schemas"
)

// The harness in this file drives the built replay binary as an operator's
// process would be driven: started with a config file, killed, signalled,
// restarted, against a kfake broker and a target that live in the test
// process and so outlive every replay process.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// replayBinary builds cmd/replay once per test process.
func replayBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "replay-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "replay")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// countingTarget is the new cluster: it answers every request with a body
// derived from it and lets tests wait until it has served n requests.
type countingTarget struct {
	mu   sync.Mutex
	cond *sync.Cond
	hits int64
}

func newCountingTarget(t *testing.T) (*countingTarget, *httptest.Server) {
	ct := &countingTarget{}
	ct.cond = sync.NewCond(&ct.mu)
	srv := httptest.NewServer(ct)
	t.Cleanup(srv.Close)
	return ct, srv
}

func (c *countingTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	c.mu.Lock()
	c.hits++
	c.cond.Broadcast()
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":%q,"path":%q}`, r.Header.Get("X-Replay-Id"), r.URL.Path)
}

func (c *countingTarget) count() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits
}

// await blocks until the target has served n requests in all, or done is
// closed; it reports whether n was reached.
func (c *countingTarget) await(n int64, done <-chan struct{}) bool {
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-done:
		case <-stop:
		}
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.hits < n {
		select {
		case <-done:
			return false
		default:
		}
		c.cond.Wait()
	}
	return true
}

// captureSet is what a test put on the capture topic.
type captureSet struct {
	production map[string]bool // correlation ids of decodable records
	replayed   map[string]bool // of those, the ones the default filter selects
	garbage    map[string]bool // raw values of undecodable records
}

// produceCaptures puts n envelopes on topic (every 10th a POST, so not
// replayed) and `garbage` undecodable records spread among them.
func produceCaptures(t *testing.T, ctx context.Context, brokers []string, topic string, n, garbage int) captureSet {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	set := captureSet{production: map[string]bool{}, replayed: map[string]bool{}, garbage: map[string]bool{}}
	every := n
	if garbage > 0 {
		every = n / garbage
	}
	var batch []*kgo.Record
	flush := func() {
		if err := cl.ProduceSync(ctx, batch...).FirstErr(); err != nil {
			t.Fatalf("produce captures: %v", err)
		}
		batch = batch[:0]
	}
	for i := range n {
		method := "GET"
		if i%10 == 9 {
			method = "POST"
		}
		x := schemas.Exchange{
			CorrelationID: fmt.Sprintf("c-%06d", i),
			CapturedAt:    time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * 10 * time.Millisecond),
			Request:       schemas.Request{Method: method, Path: fmt.Sprintf("/v1/items/%d", i), Headers: map[string][]string{"Accept": {"application/json"}}},
			Response:      &schemas.Response{Status: 200, Body: fmt.Appendf(nil, `{"id":%d,"name":"item %d","tags":["a","b","c"]}`, i, i), LatencyMS: 3},
		}
		raw, _ := json.Marshal(x.Envelope())
		batch = append(batch, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i%97), Value: raw})
		set.production[x.CorrelationID] = true
		if method == "GET" {
			set.replayed[x.CorrelationID] = true
		}
		if garbage > 0 && i%every == every/2 && len(set.garbage) < garbage {
			g := fmt.Sprintf(`{"garbage": %d, "request": [`, len(set.garbage))
			batch = append(batch, &kgo.Record{Key: []byte("g"), Value: []byte(g)})
			set.garbage[g] = true
		}
		if len(batch) >= 2000 {
			flush()
		}
	}
	flush()
	return set
}

// process is one replay process started from the built binary.
type process struct {
	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	stderr *os.File
}

func startReplay(t *testing.T, bin, cfgFile, logFile string) *process {
	t.Helper()
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", cfgFile)
	cmd.Stdout, cmd.Stderr = f, f
	// Killed with the test binary, even one stopped by its timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), stderr: f}
	go func() {
		p.err = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

// exitCode waits for the process and returns its exit code (-1 if killed).
func (p *process) exitCode() int {
	<-p.done
	return p.cmd.ProcessState.ExitCode()
}

// assertExactlyOnce reads every table of runID back and checks each record
// is there exactly once; baseline_responses holds the replayed records when
// the config sets replay.baseline, and nothing otherwise.
func assertExactlyOnce(t *testing.T, ctx context.Context, cfgFile, runID string, want captureSet) (prod, rep, dead int) {
	t.Helper()
	cfg, err := config.Load(cfgFile, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := openSinkFromConfig(t, ctx, cfgFile)
	defer s.Close()
	p := scanRows(t, ctx, s, schemas.TableProduction, runID)
	r := scanRows(t, ctx, s, schemas.TableReplay, runID)
	b := scanRows(t, ctx, s, schemas.TableBaseline, runID)
	d := scanRows(t, ctx, s, schemas.TableDeadLetters, runID)
	checkIDs(t, schemas.TableProduction, p, want.production)
	checkIDs(t, schemas.TableReplay, r, want.replayed)
	if cfg.Pipeline.Replay.Baseline != "" {
		checkIDs(t, schemas.TableBaseline, b, want.replayed)
	} else if len(b) != 0 {
		t.Errorf("%s has %d rows without replay.baseline", schemas.TableBaseline, len(b))
	}
	raws := map[string]int{}
	for _, row := range d {
		raws[string(row.bytes("raw"))]++
	}
	for g := range want.garbage {
		if raws[g] != 1 {
			t.Errorf("dead_letters holds %q %d times, want once", g, raws[g])
		}
	}
	if len(d) != len(want.garbage) {
		t.Errorf("dead_letters has %d rows, want %d", len(d), len(want.garbage))
	}
	for _, row := range r {
		if row.int("response_status") != 200 {
			t.Errorf("replay row %s: status %d, error %q", row.str("correlation_id"), row.int("response_status"), row.str("error_kind"))
			break
		}
	}
	return len(p), len(r), len(d)
}

func checkIDs(t *testing.T, table string, rows []row, want map[string]bool) {
	t.Helper()
	seen := make(map[string]int, len(rows))
	for _, r := range rows {
		seen[r.str("correlation_id")]++
	}
	var dups, missing, extra int
	for id, n := range seen {
		if n > 1 {
			dups++
		}
		if !want[id] {
			extra++
		}
	}
	for id := range want {
		if seen[id] == 0 {
			missing++
		}
	}
	if dups+missing+extra > 0 || len(rows) != len(want) {
		t.Errorf("%s: %d rows for %d records: %d ids duplicated, %d missing, %d unexpected", table, len(rows), len(want), dups, missing, extra)
	}
}

// rewriteConfig replaces old with new in a config file and returns its path.
func rewriteConfig(t *testing.T, path, old, new string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), old, new, 1)
	if s == string(b) {
		t.Fatalf("config %s has no %q", path, old)
	}
	writeFile(t, path, s)
	return path
}
