package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/replaykit/replay/admin"
	"github.com/replaykit/replay/config"
	"github.com/replaykit/replay/pipeline"
	"github.com/replaykit/replay/schemas"
	"github.com/replaykit/replay/service"
)

// arrivals is a target that notes when each request arrived and signals
// every arrival.
type arrivals struct {
	mu      sync.Mutex
	times   []time.Time
	arrived chan struct{} // one send per request, never blocking (buffered)
}

func newArrivals() *arrivals { return &arrivals{arrived: make(chan struct{}, 1<<16)} }

func (a *arrivals) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	a.mu.Lock()
	a.times = append(a.times, time.Now())
	a.mu.Unlock()
	select {
	case a.arrived <- struct{}{}:
	default:
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"ok":true}`)
}

func (a *arrivals) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.times)
}

// since returns the arrival times from the n-th request on.
func (a *arrivals) since(n int) []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.times[min(n, len(a.times)):]...)
}

// await waits until n requests have arrived in all, at most d.
func (a *arrivals) await(t *testing.T, n int, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for a.count() < n {
		select {
		case <-a.arrived:
		case <-deadline:
			t.Fatalf("the target got %d requests in %s, want %d", a.count(), d, n)
		}
	}
}

// startBroker starts a one-broker kfake cluster on a loopback port with
// one single-partition topic, and a producer to it; both end with the test.
func startBroker(t *testing.T, topic string) (string, *kgo.Client) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	broker := cluster.ListenAddrs()[0]
	producer, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	return broker, producer
}

// runningReplay is a replay process (service.Run with the admin server)
// consuming a kfake topic, and the test's handles on it.
type runningReplay struct {
	t        *testing.T
	base     string
	token    string
	producer *kgo.Client
	produced int
	target   *arrivals
}

func startRunningReplay(t *testing.T) *runningReplay {
	t.Helper()
	const topic = "captures"
	broker, producer := startBroker(t, topic)

	target := newArrivals()
	tgt := httptest.NewServer(target)
	t.Cleanup(tgt.Close)

	dir := t.TempDir()
	cfg := config.Default()
	cfg.RunID = "control-live"
	cfg.Source.Kafka.Brokers = []string{broker}
	cfg.Source.Kafka.Topics = []string{topic}
	cfg.Source.Kafka.Group = "control-live"
	cfg.Pipeline.Replay.Target = tgt.URL
	cfg.Pipeline.Replay.Workers = 2
	cfg.Pipeline.Limits.MaxInFlight = 64
	cfg.Pipeline.ShutdownGrace = 5 * time.Second
	cfg.Sink.Catalog.URI = filepath.Join(dir, "catalog.db")
	cfg.Sink.Catalog.Warehouse = filepath.Join(dir, "wh")
	cfg.Sink.Flush.Interval = 200 * time.Millisecond
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Admin.Token = "tok"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	addrs := make(chan string, 1)
	logger := slog.New(addrHandler{slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}), addrs})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		res, err := service.Run(ctx, cfg, logger)
		if err == nil {
			err = res.Sink.Close()
		}
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("service.Run: %v", err)
		}
	})
	r := &runningReplay{t: t, token: cfg.Admin.Token, producer: producer, target: target}
	select {
	case a := <-addrs:
		r.base = "http://" + a
	case err := <-done:
		t.Fatalf("service.Run ended before the admin server listened: %v", err)
	}
	return r
}

// produce puts n more GET exchanges on the topic, each with its own
// correlation ID (the dial's key).
func (r *runningReplay) produce(n int) {
	r.t.Helper()
	var recs []*kgo.Record
	for range n {
		i := r.produced
		r.produced++
		raw, err := json.Marshal(schemas.Envelope{
			CorrelationID: fmt.Sprintf("live-%04d", i),
			CapturedAt:    time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
			Request:       &schemas.EnvelopeRequest{Method: "GET", Path: fmt.Sprintf("/v1/items/%d", i)},
			Response:      &schemas.EnvelopeResponse{Status: 200, Body: `{"ok":true}`, LatencyMS: 2},
		})
		if err != nil {
			r.t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Value: raw})
	}
	if err := r.producer.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		r.t.Fatalf("produce: %v", err)
	}
}

func (r *runningReplay) status() admin.Status {
	r.t.Helper()
	code, body := get(r.t, r.base+"/v1/status", "Authorization", "Bearer "+r.token)
	var st admin.Status
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil {
		r.t.Fatalf("/v1/status = %d %v\n%s", code, err, body)
	}
	return st
}

// control sends a PUT /v1/control and returns the control in force.
func (r *runningReplay) control(body string) pipeline.ControlStatus {
	r.t.Helper()
	code, resp := put(r.t, r.base+"/v1/control", body, "Authorization", "Bearer "+r.token, admin.ActorHeader, "control-test")
	var st pipeline.ControlStatus
	if err := json.Unmarshal([]byte(resp), &st); code != http.StatusOK || err != nil {
		r.t.Fatalf("PUT /v1/control %s = %d %v\n%s", body, code, err, resp)
	}
	return st
}

// eventually polls /v1/status until cond holds, at most d.
func (r *runningReplay) eventually(what string, d time.Duration, cond func(admin.Status) bool) admin.Status {
	r.t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(d)
	for {
		st := r.status()
		if cond(st) {
			return st
		}
		select {
		case <-tick.C:
		case <-deadline:
			r.t.Fatalf("%s: not within %s; stats %+v", what, d, st.Stats)
		}
	}
}

// quiet waits until every record produced has been polled and none is in
// flight: nothing more will reach the target without new records.
func (r *runningReplay) quiet() {
	r.t.Helper()
	r.eventually("every record consumed and nothing in flight", 20*time.Second, func(st admin.Status) bool {
		return st.Stats.Consumed == int64(r.produced) && st.Stats.InFlight == 0
	})
}

// TestControlChangesARunningPipelineAtTheTarget changes the dial, the
// pause state and the rate of a running replay through PUT /v1/control and
// checks each change where it matters: at the target.
func TestControlChangesARunningPipelineAtTheTarget(t *testing.T) {
	r := startRunningReplay(t)
	r.produce(20)
	r.target.await(t, 20, 20*time.Second)
	r.quiet()

	t.Run("dial", func(t *testing.T) {
		r.t = t
		before := r.target.count()
		if st := r.control(`{"dial_percent": 0}`); st.DialPercent != 0 {
			t.Fatalf("dial_percent after PUT = %v", st.DialPercent)
		}
		r.produce(10)
		r.quiet()
		if got := r.target.count() - before; got != 0 {
			t.Errorf("at dial 0%% the target got %d of 10 new records, want none", got)
		}
		before = r.target.count()
		r.control(`{"dial_percent": 100}`)
		r.produce(10)
		r.target.await(t, before+10, 20*time.Second)
		r.quiet()
		if got := r.target.count() - before; got != 10 {
			t.Errorf("at dial 100%% the target got %d of 10 new records, want all", got)
		}
	})

	t.Run("pause and resume", func(t *testing.T) {
		r.t = t
		r.quiet()
		before, consumed := r.target.count(), r.status().Stats.Consumed
		st := r.control(`{"paused": true}`)
		t.Cleanup(func() { // whatever happens here, the next subtest runs unpaused
			put(t, r.base+"/v1/control", `{"paused": false}`, "Authorization", "Bearer "+r.token)
		})
		if !st.Paused || st.PausedBy != "operator" {
			t.Fatalf("control after pausing: paused %v by %q", st.Paused, st.PausedBy)
		}
		// In-flight replays of before the pause are done (quiet). New
		// records are polled and wait: the pipeline has work it is not
		// doing.
		r.produce(10)
		r.eventually("a new record polled and waiting, or a request at the target", 20*time.Second, func(st admin.Status) bool {
			return (st.Stats.Consumed > consumed && st.Stats.InFlight > 0) || r.target.count() > before
		})
		if got := r.target.count() - before; got > 0 {
			t.Fatalf("the target got %d requests after the pause", got)
		}
		// Signals of requests from before the pause may still be buffered:
		// drop them (a request arriving meanwhile is still counted below).
		for len(r.target.arrived) > 0 {
			<-r.target.arrived
		}
		window := time.NewTimer(500 * time.Millisecond)
		defer window.Stop()
		select {
		case <-r.target.arrived:
			t.Errorf("the target got a request while paused (%d since the pause)", r.target.count()-before)
		case <-window.C:
		}
		if st := r.status(); st.Stats.InFlight == 0 || st.Control == nil || !st.Control.Paused {
			t.Errorf("while paused: in flight %d, control %+v; want records waiting and paused", st.Stats.InFlight, st.Control)
		}
		if got := r.target.count() - before; got != 0 {
			t.Errorf("the target got %d requests while paused, want none", got)
		}

		if st := r.control(`{"paused": false}`); st.Paused || st.PausedBy != "" {
			t.Fatalf("control after resuming: paused %v by %q", st.Paused, st.PausedBy)
		}
		r.target.await(t, before+10, 20*time.Second)
		r.quiet()
	})

	t.Run("rate", func(t *testing.T) {
		r.t = t
		r.quiet()
		before := r.target.count()
		if st := r.control(`{"mode": "rate", "rate": 20, "burst": 1}`); st.EffectiveRate != 20 {
			t.Fatalf("effective rate after PUT = %v, want 20", st.EffectiveRate)
		}
		r.produce(10)
		r.target.await(t, before+10, 20*time.Second)
		slow := r.target.since(before)
		// 10 requests at 20/s with a burst of 1: 9 gaps of 50ms.
		if span := slow[len(slow)-1].Sub(slow[0]); span < 400*time.Millisecond {
			t.Errorf("10 requests at 20/s arrived within %s, want about 450ms (≥ 400ms)", span)
		}
		r.quiet()

		before = r.target.count()
		if st := r.control(`{"rate": 1000}`); st.EffectiveRate != 1000 {
			t.Fatalf("effective rate after PUT = %v, want 1000", st.EffectiveRate)
		}
		r.produce(40)
		r.target.await(t, before+40, 20*time.Second)
		fast := r.target.since(before)
		// At 20/s these would take 1.95s; at 1000/s about 40ms.
		if span := fast[len(fast)-1].Sub(fast[0]); span > time.Second {
			t.Errorf("40 requests at 1000/s took %s, want well under the 1.95s they take at 20/s", span)
		}
		r.quiet()
	})
}
