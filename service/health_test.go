package service_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/replaykit/replay/admin"
	"github.com/replaykit/replay/config"
	"github.com/replaykit/replay/schemas"
	"github.com/replaykit/replay/service"
)

// startKafka starts a kfake broker on a TCP port with topic of partitions
// partitions and returns its address.
func startKafka(t *testing.T, topic string, partitions int32) string {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	return cluster.ListenAddrs()[0]
}

// produceN writes n captures to each of partitions partitions of topic,
// correlation ids prefixed with tag.
func produceN(t *testing.T, broker, topic string, partitions int32, n int, tag string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var rs []*kgo.Record
	for p := range partitions {
		for i := range n {
			raw, _ := json.Marshal(schemas.Envelope{CorrelationID: fmt.Sprintf("%s-%d-%d", tag, p, i), CapturedAt: time.Now(),
				Request: &schemas.EnvelopeRequest{Method: "GET", Path: fmt.Sprintf("/v1/items/%d", i)}})
			rs = append(rs, &kgo.Record{Topic: topic, Partition: p, Value: raw})
		}
	}
	if err := cl.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// serve runs service.Run with cfg in the background and returns the admin
// server's base URL once it listens, and a function that stops the run.
func serve(t *testing.T, cfg config.Config) (base string, stop func() error) {
	t.Helper()
	base, cancel, done := runInBackground(t, cfg, 2*time.Minute)
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return base, stop
}

// runInBackground validates cfg and runs service.Run with it, under a
// deadline of within, until cancel; it returns once the admin server
// listens, with its base URL, and done, which gets the run's error.
func runInBackground(t *testing.T, cfg config.Config, within time.Duration) (base string, cancel func(), done <-chan error) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	addrs := make(chan string, 1)
	logger := slog.New(addrLogger{slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: testLogLevel}), addrs})
	ended := make(chan error, 1)
	go func() {
		res, err := service.Run(ctx, cfg, logger)
		if err == nil {
			err = res.Sink.Close()
		}
		ended <- err
	}()
	t.Cleanup(cancel)
	select {
	case a := <-addrs:
		base = "http://" + a
	case err := <-ended:
		t.Fatalf("service.Run ended before the admin server listened: %v", err)
	}
	return base, cancel, ended
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually polls check every 50ms until it returns "" or the deadline
// passes, then fails with the last thing check said. The HTTP endpoints
// are the signal here: readiness has no other.
func eventually(t *testing.T, within time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		why := check()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func status(t *testing.T, base string) admin.Status {
	t.Helper()
	_, body := get(t, base+"/v1/status")
	var st admin.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("decode /v1/status: %v\n%s", err, body)
	}
	return st
}

// flakyTarget resets every connection while failing is set, else answers
// 200.
type flakyTarget struct {
	failing atomic.Bool
	seen    atomic.Int64
}

func (f *flakyTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.seen.Add(1)
	if f.failing.Load() {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // a reset, not a clean close
			}
			_ = conn.Close()
		}
		return
	}
	_, _ = io.WriteString(w, `{"ok":true}`)
}

func healthKafkaConfig(t *testing.T, broker, topic, group, target string) config.Config {
	cfg := baseConfig(t, t.TempDir(), target)
	cfg.Source.Kafka.Brokers = []string{broker}
	cfg.Source.Kafka.Topics = []string{topic}
	cfg.Source.Kafka.Group = group
	cfg.Source.Kafka.SessionTimeout = 6 * time.Second
	cfg.Sink.Flush.Interval = 100 * time.Millisecond
	return cfg
}

// TestReadyzWhileTheBreakerIsOpen: a target that resets every connection
// opens the breaker; /readyz answers 503 naming the breaker and the
// target, /v1/status says degraded, /healthz stays 200; once the target
// answers again the breaker closes and /readyz answers 200.
func TestReadyzWhileTheBreakerIsOpen(t *testing.T) {
	const topic = "captures"
	broker := startKafka(t, topic, 2)
	produceN(t, broker, topic, 2, 200, "b")
	tgt := &flakyTarget{}
	tgt.failing.Store(true)
	srv := httptest.NewServer(tgt)
	t.Cleanup(srv.Close)

	cfg := healthKafkaConfig(t, broker, topic, "breaker", srv.URL)
	cfg.Pipeline.Replay.Retry.Attempts = 1
	cfg.Pipeline.Replay.Breaker.Errors = 3
	cfg.Pipeline.Replay.Breaker.ProbeInterval = 200 * time.Millisecond
	base, stop := serve(t, cfg)

	var body string
	eventually(t, 30*time.Second, func() string {
		var code int
		code, body = get(t, base+"/readyz")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "breaker") {
			return fmt.Sprintf("/readyz = %d %q, want 503 naming the breaker", code, body)
		}
		return ""
	})
	t.Logf("/readyz with the target failing:\n%s", body)
	for _, want := range []string{"pipeline: the target " + srv.URL + " keeps failing", "replay.breaker"} {
		if !strings.Contains(body, want) {
			t.Errorf("/readyz body lacks %q:\n%s", want, body)
		}
	}
	if st := status(t, base); st.State != admin.StateDegraded || len(st.Problems) == 0 || !strings.Contains(st.Problems[0], "breaker") {
		t.Errorf("/v1/status state %q problems %q, want degraded naming the breaker", st.State, st.Problems)
	}
	if code, body := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with the breaker open = %d %q, want 200: the process is not wedged", code, body)
	}

	tgt.failing.Store(false)
	eventually(t, 30*time.Second, func() string {
		if code, body := get(t, base+"/readyz"); code != http.StatusOK {
			return fmt.Sprintf("/readyz after the target recovered = %d %q, want 200", code, body)
		}
		return ""
	})
	if st := status(t, base); st.State != admin.StateReplaying || len(st.Problems) != 0 {
		t.Errorf("/v1/status after recovery: state %q problems %q, want replaying", st.State, st.Problems)
	}
	if err := stop(); err != nil {
		t.Errorf("run: %v", err)
	}
}

// TestReadyzWhileCommitsFail: with the warehouse unwritable (replaced by a
// file, which no permission bit lets anyone write through, root
// included), every commit fails and the sink retries; after a flush
// interval /readyz answers 503 naming the table and the error, and
// /healthz stays 200. With the warehouse back, /readyz answers 200.
func TestReadyzWhileCommitsFail(t *testing.T) {
	const topic = "captures"
	broker := startKafka(t, topic, 1)
	produceN(t, broker, topic, 1, 20, "c1")
	srv := httptest.NewServer(&flakyTarget{})
	t.Cleanup(srv.Close)
	cfg := healthKafkaConfig(t, broker, topic, "commits", srv.URL)
	cfg.Sink.CommitRetry.Attempts = 10_000
	cfg.Sink.CommitRetry.MinBackoff = 20 * time.Millisecond
	cfg.Sink.CommitRetry.MaxBackoff = 100 * time.Millisecond
	base, stop := serve(t, cfg)

	eventually(t, 30*time.Second, func() string {
		if st := status(t, base); st.Stats.RowsWritten[schemas.TableProduction] < 20 {
			return fmt.Sprintf("%d production rows written, want 20", st.Stats.RowsWritten[schemas.TableProduction])
		}
		return ""
	})
	if code, body := get(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with the warehouse writable = %d %q, want 200", code, body)
	}

	// Move the warehouse away and put a file in its place: every data
	// and metadata file the sink writes fails (not a directory), for root
	// too. Then give the pipeline rows.
	wh := cfg.Sink.Catalog.Warehouse
	if err := os.Rename(wh, wh+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wh, []byte("not a directory"), 0o444); err != nil {
		t.Fatal(err)
	}
	produceN(t, broker, topic, 1, 5, "c2")

	var body string
	eventually(t, 30*time.Second, func() string {
		var code int
		code, body = get(t, base+"/readyz")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "commits to table") {
			return fmt.Sprintf("/readyz = %d %q, want 503 naming the failing commits", code, body)
		}
		return ""
	})
	t.Logf("/readyz with the warehouse unwritable:\n%s", body)
	for _, want := range []string{"catalog: commits to table", "have failed for", "not a directory", "writable, not full"} {
		if !strings.Contains(body, want) {
			t.Errorf("/readyz body lacks %q:\n%s", want, body)
		}
	}
	if code, body := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while commits retry = %d %q, want 200", code, body)
	}

	if err := os.Remove(wh); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(wh+".moved", wh); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() string {
		if code, body := get(t, base+"/readyz"); code != http.StatusOK {
			return fmt.Sprintf("/readyz with the warehouse back = %d %q, want 200", code, body)
		}
		return ""
	})
	if err := stop(); err != nil {
		t.Errorf("run: %v", err)
	}
}

// gatedTarget answers the first free requests at once and holds the rest
// until the test ends, so a backlog builds and stays.
type gatedTarget struct {
	free    int64
	n       atomic.Int64
	release chan struct{}
}

func (g *gatedTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.n.Add(1) > g.free {
		select {
		case <-g.release:
		case <-r.Context().Done():
			return
		}
	}
	_, _ = io.WriteString(w, `{"ok":true}`)
}

// kcatEnds asks kcat for the end offset of each of partitions partitions
// of topic (a query by timestamp -1: the latest offset).
func kcatEnds(t *testing.T, broker, topic string, partitions int32) map[int32]int64 {
	t.Helper()
	args := []string{"-b", broker, "-Q"}
	for p := range partitions {
		args = append(args, "-t", fmt.Sprintf("%s:%d:-1", topic, p))
	}
	out, err := exec.Command("kcat", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	// Lines: "<topic> [<partition>] offset <n>".
	ends := map[int32]int64{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || f[0] != topic || f[2] != "offset" {
			continue
		}
		p, err1 := strconv.ParseInt(strings.Trim(f[1], "[]"), 10, 32)
		o, err2 := strconv.ParseInt(f[3], 10, 64)
		if err1 == nil && err2 == nil {
			ends[int32(p)] = o
		}
	}
	if len(ends) != int(partitions) {
		t.Fatalf("kcat -Q answered %d of %d partitions:\n%s", len(ends), partitions, out)
	}
	return ends
}

// metricLags reads replay_consumer_lag_records per partition and
// replay_consumer_partitions_assigned from /metrics.
func metricLags(t *testing.T, base string) (map[int32]int64, int) {
	t.Helper()
	_, body := get(t, base+"/metrics")
	lags, assigned := map[int32]int64{}, -1
	for _, line := range strings.Split(body, "\n") {
		switch {
		case strings.HasPrefix(line, "replay_consumer_lag_records{"):
			// replay_consumer_lag_records{partition="0",topic="captures"} 12
			i := strings.Index(line, `partition="`)
			rest := line[i+len(`partition="`):]
			p, _ := strconv.Atoi(rest[:strings.IndexByte(rest, '"')])
			v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			lags[int32(p)] = int64(v)
		case strings.HasPrefix(line, "replay_consumer_partitions_assigned "):
			v, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			assigned = int(v)
		}
	}
	return lags, assigned
}

// TestLagAgreesWithKafkaTools builds a backlog on four partitions behind
// a target that holds every request after the first 40, and checks that
// /v1/status and /metrics report, for all four partitions, the lag that
// kcat's end offsets minus the group's committed offsets (kadm) give, and
// that kadm's own group lag gives, while far more records are fetched than
// processed.
func TestLagAgreesWithKafkaTools(t *testing.T) {
	const (
		topic      = "captures"
		group      = "lag"
		partitions = 4
		perPart    = 300
	)
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatalf("kcat is required for this test: %v", err)
	}
	broker := startKafka(t, topic, partitions)
	produceN(t, broker, topic, partitions, perPart, "l")
	tgt := &gatedTarget{free: 40, release: make(chan struct{})}
	srv := httptest.NewServer(tgt)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(tgt.release) }) // before srv.Close, which waits for handlers

	cfg := healthKafkaConfig(t, broker, topic, group, srv.URL)
	cfg.Source.Kafka.LagInterval = 100 * time.Millisecond
	cfg.Source.Kafka.MaxPollRecords = 50
	cfg.Pipeline.Limits.MaxInFlight = 200
	cfg.Pipeline.Replay.Workers = 4
	base, stop := serve(t, cfg)

	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	var last string
	eventually(t, 60*time.Second, func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ends := kcatEnds(t, broker, topic, partitions)
		commits, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return fmt.Sprintf("kadm FetchOffsets: %v", err)
		}
		lags, err := adm.Lag(ctx, group)
		if err != nil {
			return fmt.Sprintf("kadm Lag: %v", err)
		}
		st := status(t, base)
		mlags, massigned := metricLags(t, base)
		if st.Lag == nil {
			return "/v1/status has no lag"
		}
		var want, kadmTotal int64
		for p := range int32(partitions) {
			c, ok := commits.Lookup(topic, p)
			committed := int64(0) // the log starts at 0: no commit = the whole partition
			if ok && c.At >= 0 {
				committed = c.At
			}
			want += ends[p] - committed
			if l, ok := lags[group].Lag.Lookup(topic, p); ok {
				kadmTotal += l.Lag
			}
			if mlags[p] != ends[p]-committed {
				return fmt.Sprintf("partition %d: /metrics lag %d, kcat end %d - kadm committed %d = %d", p, mlags[p], ends[p], committed, ends[p]-committed)
			}
		}
		last = fmt.Sprintf("status total %d assigned %d (%d listed), metrics assigned %d, kcat-kadm total %d, kadm lag %d, commits %d, consumed %d, replayed %d",
			st.Lag.Total, st.Lag.Assigned, len(st.Lag.Partitions), massigned, want, kadmTotal, st.Stats.Commits, st.Stats.Consumed, st.Stats.Replayed)
		switch {
		case st.Stats.Commits == 0 || st.Stats.Replayed < tgt.free:
			return "no backlog yet: " + last
		case st.Lag.Assigned != partitions || len(st.Lag.Partitions) != partitions || massigned != partitions:
			return "not every partition reported: " + last
		case st.Lag.Total != want || kadmTotal != want:
			return "lags disagree: " + last
		}
		return ""
	})
	t.Log(last)
	st := status(t, base)
	if fetchedAhead := st.Stats.Consumed - st.Stats.Replayed; fetchedAhead <= 0 {
		t.Errorf("nothing fetched beyond what was replayed (%s): the test did not separate fetched from committed", last)
	}
	if st.Lag.Total <= int64(partitions*perPart)-st.Stats.Consumed {
		t.Errorf("lag %d is no more than the records never fetched (%d): fetched records are not counted as backlog",
			st.Lag.Total, int64(partitions*perPart)-st.Stats.Consumed)
	}
	_ = stop()
}

var testLogLevel = slog.LevelWarn
