// Command replay-scaling measures Iceberg commit contention as replay
// replicas grow: for each replica count it starts that many `replay run`
// processes of one consumer group on this machine, against a shared
// PostgreSQL catalog (a throwaway server), a local warehouse, an in-process
// Kafka-protocol broker (kfake) and a light in-process target, with small
// flushes on a short interval so that commits dominate. It reads the
// processes' JSON logs and prints, per replica count: table commits per
// second (all replicas, all tables), conflict retries per commit, and the
// p50 and p99 latency of one table's commit, retries included.
//
//	make bench-scaling                      # 1, 2, 4, 8, 16 replicas, 20 s each
//	go run ./cmd/replay-scaling -bin bin/replay -replicas 1,4 -duration 10s
//
// It is a benchmark, not a test: it is not part of make test. It needs what
// the tests need (Debian's postgresql; see internal/testinfra).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/replaykit/replay/internal/testinfra"
	"github.com/replaykit/replay/schemas"
)

func main() {
	var (
		bin        = flag.String("bin", "bin/replay", "the replay binary to run (make build)")
		counts     = flag.String("replicas", "1,2,4,8,16", "replica counts to measure, comma-separated")
		duration   = flag.Duration("duration", 20*time.Second, "measuring window per replica count, after a warm-up")
		warmup     = flag.Duration("warmup", 5*time.Second, "time given to the group to settle before measuring")
		partitions = flag.Int("partitions", 32, "partitions of the capture topic")
		rate       = flag.Int("rate", 100, "replays per second per replica (replay.rate)")
		interval   = flag.Duration("flush-interval", 200*time.Millisecond, "sink.flush.interval")
		rows       = flag.Int("flush-rows", 100, "sink.flush.rows")
		attempts   = flag.Int("commit-attempts", 20, "sink.commit_retry.attempts (20 is the default)")
		keep       = flag.Bool("keep", false, "keep the work directory (logs, configs, warehouse)")
	)
	flag.Parse()
	ns, err := parseCounts(*counts)
	if err != nil {
		fail(err)
	}
	if _, err := os.Stat(*bin); err != nil {
		fail(fmt.Errorf("replay binary %s: %w; run make build, or pass -bin", *bin, err))
	}
	b := bench{bin: *bin, duration: *duration, warmup: *warmup, partitions: *partitions, rate: *rate, interval: *interval, rows: *rows, attempts: *attempts}
	if err := b.run(ns, *keep); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "replay-scaling:", err)
	os.Exit(1)
}

func parseCounts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-replicas: %q is not a positive count", f)
		}
		out = append(out, n)
	}
	return out, nil
}

type bench struct {
	bin                string
	duration, warmup   time.Duration
	partitions, rate   int
	interval           time.Duration
	rows, attempts     int
	dir, broker, tgURL string
	pg                 *testinfra.Postgres
}

// result is one replica count's measurement.
type result struct {
	replicas                int
	commits, attempts, rows int
	failed                  int             // commit attempts logged as failed and retried
	gaveUp                  int             // flushes that gave up
	died                    int             // replicas that exited before the end of the window
	latencies               []time.Duration // one table's commit
	flushes                 []time.Duration // a whole flush: every table
	window                  time.Duration
}

func (b *bench) run(ns []int, keep bool) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "replay-scaling-")
	if err != nil {
		return err
	}
	b.dir = dir
	if !keep {
		defer os.RemoveAll(dir)
	} else {
		fmt.Fprintln(os.Stderr, "work directory:", dir)
	}

	pg, err := testinfra.StartPostgres(ctx)
	if err != nil {
		return err
	}
	defer pg.Stop()
	b.pg = pg

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(b.partitions), "captures"),
		kfake.GroupMinSessionTimeout(500*time.Millisecond),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }))
	if err != nil {
		return fmt.Errorf("start kfake: %w", err)
	}
	defer cluster.Close()
	b.broker = cluster.ListenAddrs()[0]

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	})}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	b.tgURL = "http://" + l.Addr().String()

	// Enough records that no replica count runs out within its window.
	perRun := int(float64(slices.Max(ns)*b.rate) * (b.duration + b.warmup + 10*time.Second).Seconds())
	if err := produce(ctx, b.broker, perRun); err != nil {
		return err
	}

	host, _ := os.Hostname()
	fmt.Printf("replay-scaling: %s; %d partitions, %d replays/s per replica, flush every %s or %d rows, %d commit attempts, PostgreSQL catalog, local warehouse; %s windows after %s warm-up; %d CPUs, host %s\n\n",
		b.bin, b.partitions, b.rate, b.interval, b.rows, b.attempts, b.duration, b.warmup, numCPU(), host)
	fmt.Println("| replicas | table commits/s | retries per commit | p50 commit | p99 commit | p99 flush (4 tables) | rows/s | flushes that gave up | replicas that died |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, n := range ns {
		r, err := b.measure(ctx, n)
		if err != nil {
			return fmt.Errorf("%d replicas: %w", n, err)
		}
		fmt.Println(r.row())
	}
	return nil
}

func numCPU() int {
	out, err := exec.Command("nproc").Output()
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

func (r result) row() string {
	secs := r.window.Seconds()
	retries := 0.0
	if r.commits > 0 {
		retries = float64(r.attempts-r.commits) / float64(r.commits)
	}
	return fmt.Sprintf("| %d | %.1f | %.2f | %s | %s | %s | %.0f | %d | %d |", r.replicas, float64(r.commits)/secs, retries,
		percentile(r.latencies, 0.50), percentile(r.latencies, 0.99), percentile(r.flushes, 0.99), float64(r.rows)/secs, r.gaveUp, r.died)
}

func percentile(d []time.Duration, p float64) string {
	if len(d) == 0 {
		return "n/a"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i].Round(time.Millisecond).String()
}

// produce puts n small GET envelopes on the topic.
func produce(ctx context.Context, broker string, n int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.DefaultProduceTopic("captures"), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	var batch []*kgo.Record
	for i := range n {
		x := schemas.Exchange{
			CorrelationID: fmt.Sprintf("s-%08d", i),
			CapturedAt:    time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
			Request:       schemas.Request{Method: "GET", Path: fmt.Sprintf("/v1/items/%d", i)},
			Response:      &schemas.Response{Status: 200, Body: []byte(`{"ok":true}`), LatencyMS: 1},
		}
		raw, err := json.Marshal(x.Envelope())
		if err != nil {
			return err
		}
		batch = append(batch, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: raw})
		if len(batch) == 5000 || i == n-1 {
			if err := cl.ProduceSync(ctx, batch...).FirstErr(); err != nil {
				return fmt.Errorf("produce: %w", err)
			}
			batch = batch[:0]
		}
	}
	return nil
}

// measure runs n replicas in a fresh consumer group on a fresh catalog
// database and reads their logs.
func (b *bench) measure(ctx context.Context, n int) (result, error) {
	db := fmt.Sprintf("scale%d", n)
	dsn, err := b.pg.CreateDatabase(ctx, db)
	if err != nil {
		return result{}, err
	}
	dir := filepath.Join(b.dir, db)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return result{}, err
	}
	cfgFile := filepath.Join(dir, "replay.yaml")
	cfg := fmt.Sprintf(`run_id: scale-%d
source:
  kafka:
    brokers: [%s]
    topics: [captures]
    group: scale-%d
    session_timeout: 6s
replay:
  target: %s
  workers: 4
  rate: %d
sink:
  catalog:
    uri: %s
    warehouse: %s
  flush:
    rows: %d
    interval: %s
  commit_retry:
    attempts: %d
log:
  format: json
`, n, b.broker, n, b.tgURL, b.rate, dsn, filepath.Join(dir, "warehouse"), b.rows, b.interval, b.attempts)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		return result{}, err
	}

	// The first replica creates the tables; the others join once they exist.
	type proc struct {
		cmd  *exec.Cmd
		done chan struct{}
	}
	procs := make([]proc, 0, n)
	logs := make([]string, 0, n)
	defer func() {
		for _, p := range procs {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}()
	start := func(i int) error {
		logFile := filepath.Join(dir, fmt.Sprintf("replica-%02d.log", i))
		f, err := os.Create(logFile)
		if err != nil {
			return err
		}
		cmd := exec.Command(b.bin, "run", "--config", cfgFile)
		cmd.Stdout, cmd.Stderr = f, f
		if err := cmd.Start(); err != nil {
			f.Close()
			return err
		}
		f.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		procs = append(procs, proc{cmd, done})
		logs = append(logs, logFile)
		return nil
	}
	if err := start(0); err != nil {
		return result{}, err
	}
	if err := waitForLine(ctx, logs[0], `"msg":"flushed"`, 60*time.Second); err != nil {
		return result{}, fmt.Errorf("first replica: %w", err)
	}
	for i := 1; i < n; i++ {
		if err := start(i); err != nil {
			return result{}, err
		}
	}
	time.Sleep(b.warmup) // a measuring schedule, not synchronization
	from := time.Now()
	time.Sleep(b.duration)
	to := time.Now()
	r := result{replicas: n, window: to.Sub(from)}
	for _, p := range procs {
		select {
		case <-p.done:
			r.died++
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, p := range procs {
		<-p.done
	}
	procs = nil

	for _, l := range logs {
		if err := r.read(l, from, to); err != nil {
			return r, err
		}
	}
	return r, nil
}

// waitForLine waits until file has a line containing s.
func waitForLine(ctx context.Context, file, s string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(file)
		if strings.Contains(string(b), s) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	b, _ := os.ReadFile(file)
	return fmt.Errorf("%s has no %s after %s:\n%s", file, s, timeout, b)
}

// tableCommit is one table's part of a "flushed" log line.
type tableCommit struct {
	Rows       int64 `json:"rows"`
	Attempts   int   `json:"attempts"`
	SnapshotID int64 `json:"snapshot_id"`
	Duration   int64 `json:"duration"` // nanoseconds
}

// read adds the commits a replica logged between from and to.
func (r *result) read(file string, from, to time.Time) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var line map[string]json.RawMessage
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		var msg string
		var at time.Time
		_ = json.Unmarshal(line["msg"], &msg)
		_ = json.Unmarshal(line["time"], &at)
		if at.Before(from) || at.After(to) {
			continue
		}
		switch {
		case msg == "commit failed; retrying":
			r.failed++
		case strings.Contains(msg, "flush failed") || strings.Contains(string(sc.Bytes()), "gave up after"):
			r.gaveUp++
		case msg == "flushed":
			var d int64
			if json.Unmarshal(line["duration"], &d) == nil {
				r.flushes = append(r.flushes, time.Duration(d))
			}
			for _, name := range schemas.TableNames() {
				var tc tableCommit
				if raw, ok := line[name]; !ok || json.Unmarshal(raw, &tc) != nil || tc.SnapshotID == 0 {
					continue
				}
				r.commits++
				r.attempts += tc.Attempts
				r.rows += int(tc.Rows)
				if tc.Duration > 0 { // logged since the per-table durations were added
					r.latencies = append(r.latencies, time.Duration(tc.Duration))
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return errors.Join(fmt.Errorf("read %s", file), err)
	}
	return nil
}
