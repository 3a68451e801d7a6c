package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/replaykit/replay/config"
	"github.com/replaykit/replay/pipeline"
	"github.com/replaykit/replay/schemas"
	"github.com/replaykit/replay/service"
	"github.com/replaykit/replay/sinks"
)

// The tests in this file are about where a run resumes and what it
// refuses: a re-run never sends a request the tables already hold the
// reply of, never hangs, and never mixes two groups' writes in one run.

// countingServer is the new cluster: it answers every request and counts
// them.
type countingServer struct {
	*httptest.Server
	hits atomic.Int64
}

func newCountingServer(t *testing.T) *countingServer {
	t.Helper()
	cs := &countingServer{}
	cs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		cs.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":%q}`, r.Header.Get("X-Replay-Id"))
	}))
	t.Cleanup(cs.Close)
	return cs
}

// startKfake starts a broker on a loopback TCP port with topic of the given
// partitions.
func startKfake(t *testing.T, topic string, partitions int32) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// envelopeLine is the capture of GET /v1/items/<i>.
func envelopeLine(t *testing.T, i int) []byte {
	t.Helper()
	env := schemas.Envelope{
		CorrelationID: fmt.Sprintf("c-%04d", i),
		CapturedAt:    time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second),
		Request:       &schemas.EnvelopeRequest{Method: "GET", Scheme: "https", Host: "api.example.com", Path: fmt.Sprintf("/v1/items/%d", i)},
		Response:      &schemas.EnvelopeResponse{Status: 200, Body: fmt.Sprintf(`{"id":%d}`, i)},
	}
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func produceEnvelopes(t *testing.T, ctx context.Context, broker, topic string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var rs []*kgo.Record
	for i := range n {
		rs = append(rs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: envelopeLine(t, i)})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// kafkaConfig is a stop-at-end run of topic under group into the warehouse
// in dir.
func kafkaConfig(t *testing.T, dir, runID, broker, topic, group, targetURL string) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.RunID = runID
	cfg.Source.Kafka.Brokers = []string{broker}
	cfg.Source.Kafka.Topics = []string{topic}
	cfg.Source.Kafka.Group = group
	cfg.Source.Kafka.StopAtEnd = true
	cfg.Pipeline.Replay.Target = targetURL
	cfg.Sink.Catalog.URI = filepath.Join(dir, "catalog.db")
	cfg.Sink.Catalog.Warehouse = filepath.Join(dir, "warehouse")
	cfg.Sink.Flush.Interval = 100 * time.Millisecond
	cfg.Log.Level = "warn"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// runService runs cfg to its end and closes the sink; the run must not fail.
func runService(t *testing.T, ctx context.Context, cfg config.Config) *service.Result {
	t.Helper()
	res, err := service.Run(ctx, cfg, config.Log{Level: "info", Format: "text"}.Logger(t.Output()))
	if err != nil {
		t.Fatalf("run %s: %v", cfg.RunID, err)
	}
	if err := res.Sink.Close(); err != nil {
		t.Fatal(err)
	}
	return res
}

// countRows returns the rows of runID in each of production_responses and
// replay_responses.
func countRows(t *testing.T, ctx context.Context, cfg config.Config, runID string) (prod, rep int64) {
	t.Helper()
	s, err := sinks.OpenIceberg(ctx, cfg.Sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if prod, err = s.CountRows(ctx, schemas.TableProduction, runID); err != nil {
		t.Fatal(err)
	}
	if rep, err = s.CountRows(ctx, schemas.TableReplay, runID); err != nil {
		t.Fatal(err)
	}
	return prod, rep
}

// TestStopAtEndFinishesWhenGroupOffsetsAreGone: the tables hold every
// record of the group but the group's Kafka offsets were deleted (as Kafka
// does to an idle group after offsets.retention.minutes). A stop-at-end
// re-run must finish at once, send nothing, and say how many records it
// found already written.
func TestStopAtEndFinishesWhenGroupOffsetsAreGone(t *testing.T) {
	const records = 460
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	broker := startKfake(t, "captures", 4)
	produceEnvelopes(t, ctx, broker, "captures", records)
	tgt := newCountingServer(t)
	cfg := kafkaConfig(t, t.TempDir(), "gone-1", broker, "captures", "gone", tgt.URL)

	first := runService(t, ctx, cfg)
	if first.Stats.Replayed != records || tgt.hits.Load() != records {
		t.Fatalf("first run replayed %d, target got %d; want %d", first.Stats.Replayed, tgt.hits.Load(), records)
	}

	adm, err := kadm.NewOptClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if resp, err := adm.DeleteGroup(ctx, "gone"); err != nil || resp.Err != nil {
		t.Fatalf("delete group: %v %v", err, resp.Err)
	}
	if offs, err := adm.FetchOffsets(ctx, "gone"); err == nil && len(offs) > 0 {
		t.Fatalf("group offsets still there after DeleteGroup: %v", offs)
	}

	// The deadline is the test's: a hang fails it instead of blocking.
	runCtx, stop := context.WithTimeout(ctx, 45*time.Second)
	defer stop()
	res, err := service.Run(runCtx, cfg, config.Log{Level: "info", Format: "text"}.Logger(t.Output()))
	if runCtx.Err() != nil {
		t.Fatalf("the re-run did not finish before its deadline (err %v): stop_at_end hangs", err)
	}
	if err != nil {
		t.Fatalf("re-run: %v", err)
	}
	defer res.Sink.Close()
	if res.Stats.Consumed != 0 || res.Stats.Replayed != 0 || tgt.hits.Load() != records {
		t.Errorf("re-run consumed %d, replayed %d, target total %d; want 0, 0, %d",
			res.Stats.Consumed, res.Stats.Replayed, tgt.hits.Load(), records)
	}
	if res.AlreadyWritten != records {
		t.Errorf("re-run reports %d records already written, want %d", res.AlreadyWritten, records)
	}
	if prod, rep := countRows(t, ctx, cfg, "gone-1"); prod != records || rep != records {
		t.Errorf("tables hold %d production and %d replay rows, want %d each", prod, rep, records)
	}
}

// writeEnvelopes writes n capture lines to path.
func writeEnvelopes(t *testing.T, path string, n int) {
	t.Helper()
	var b []byte
	for i := range n {
		b = append(append(b, envelopeLine(t, i)...), '\n')
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fileConfig is a run of the capture file at path into the warehouse in dir.
func fileConfig(t *testing.T, dir, runID, path, targetURL string, fresh bool) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.RunID = runID
	cfg.Source.Type = "file"
	cfg.Source.File.Path = path
	cfg.Source.File.Fresh = fresh
	cfg.Pipeline.Replay.Target = targetURL
	cfg.Sink.Catalog.URI = filepath.Join(dir, "catalog.db")
	cfg.Sink.Catalog.Warehouse = filepath.Join(dir, "warehouse")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestFileRerunResumesWhereTablesEnd: a capture file is resumed like a
// Kafka partition. A re-run of a finished run sends nothing and writes
// nothing; --fresh (source.file.fresh) sends every request again and
// replaces the run's rows, so the tables hold each once; a new run id
// under the same (file) group replays the whole file into its own rows.
func TestFileRerunResumesWhereTablesEnd(t *testing.T) {
	const records = 30
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	path := filepath.Join(dir, "captures.ndjson")
	writeEnvelopes(t, path, records)
	tgt := newCountingServer(t)
	check := func(step, runID string, res *service.Result, wantHits, wantAlready int64) {
		t.Helper()
		if got := tgt.hits.Load(); got != wantHits {
			t.Errorf("%s: target served %d requests in all, want %d", step, got, wantHits)
		}
		if res.AlreadyWritten != wantAlready {
			t.Errorf("%s: %d records reported already written, want %d", step, res.AlreadyWritten, wantAlready)
		}
		if prod, rep := countRows(t, ctx, fileConfig(t, dir, runID, path, tgt.URL, false), runID); prod != records || rep != records {
			t.Errorf("%s: run %s holds %d production and %d replay rows, want %d each (once)", step, runID, prod, rep, records)
		}
	}

	res := runService(t, ctx, fileConfig(t, dir, "file-1", path, tgt.URL, false))
	check("first run", "file-1", res, records, 0)

	res = runService(t, ctx, fileConfig(t, dir, "file-1", path, tgt.URL, false))
	if res.Stats.Consumed != 0 || res.Stats.Replayed != 0 {
		t.Errorf("re-run consumed %d and replayed %d records, want 0", res.Stats.Consumed, res.Stats.Replayed)
	}
	check("re-run", "file-1", res, records, records)

	res = runService(t, ctx, fileConfig(t, dir, "file-1", path, tgt.URL, true))
	check("fresh re-run", "file-1", res, 2*records, 0)

	res = runService(t, ctx, fileConfig(t, dir, "file-2", path, tgt.URL, false))
	check("new run id", "file-2", res, 3*records, 0)
	check("new run id, first run's rows", "file-1", res, 3*records, 0)
}

// TestRunIDRefusedToASecondGroup: a run written by group A cannot be
// written by group B: the second run is refused before it joins its group
// or sends a request, with an error that names A.
func TestRunIDRefusedToASecondGroup(t *testing.T) {
	const records = 40
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	broker := startKfake(t, "captures", 2)
	produceEnvelopes(t, ctx, broker, "captures", records)
	tgt := newCountingServer(t)
	dir := t.TempDir()
	runService(t, ctx, kafkaConfig(t, dir, "bound-1", broker, "captures", "group-a", tgt.URL))
	if tgt.hits.Load() != records {
		t.Fatalf("first run sent %d requests, want %d", tgt.hits.Load(), records)
	}

	cfg := kafkaConfig(t, dir, "bound-1", broker, "captures", "group-b", tgt.URL)
	res, err := service.Run(ctx, cfg, config.Log{Level: "info", Format: "text"}.Logger(t.Output()))
	if err == nil {
		_ = res.Sink.Close()
		t.Fatalf("run bound-1 under group-b was not refused; target served %d requests in all", tgt.hits.Load())
	}
	if !errors.Is(err, sinks.ErrRunOfAnotherGroup) || !strings.Contains(err.Error(), `"group-a"`) {
		t.Errorf("error %q: want sinks.ErrRunOfAnotherGroup naming group-a", err)
	}
	if got := tgt.hits.Load(); got != records {
		t.Errorf("the refused run sent %d requests", got-records)
	}
	assertNoGroup(t, ctx, broker, "group-b")
	if prod, rep := countRows(t, ctx, cfg, "bound-1"); prod != records || rep != records {
		t.Errorf("run bound-1 holds %d production and %d replay rows, want %d each", prod, rep, records)
	}
}

// assertNoGroup fails unless the broker knows no group named group.
func assertNoGroup(t *testing.T, ctx context.Context, broker, group string) {
	t.Helper()
	adm, err := kadm.NewOptClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := groups[group]; ok {
		t.Errorf("group %q was joined: %v", group, groups.Groups())
	}
}

// TestRefusalsBeforeSideEffects: a run that is refused (aimed at a
// production host, reading a topic or a file that does not exist) is
// refused before it creates a catalog, a table or a group member, and sends
// nothing.
func TestRefusalsBeforeSideEffects(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	broker := startKfake(t, "captures", 1)
	produceEnvelopes(t, ctx, broker, "captures", 5)
	tgt := newCountingServer(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct {
		name   string
		adjust func(cfg *config.Config)
		want   func(err error) bool
	}{
		{"production target", func(cfg *config.Config) { cfg.Pipeline.Replay.ProductionHosts = []string{"127.0.0.1"} },
			func(err error) bool { return errors.Is(err, pipeline.ErrProductionTarget) }},
		{"missing topic", func(cfg *config.Config) { cfg.Source.Kafka.Topics = []string{"captures", "nope"} },
			func(err error) bool { return strings.Contains(err.Error(), `kafka topic "nope" does not exist`) }},
		{"missing capture file", func(cfg *config.Config) {
			cfg.Source.Type, cfg.Source.File.Path = "file", filepath.Join(t.TempDir(), "nope.ndjson")
		}, func(err error) bool { return strings.Contains(err.Error(), "check source.file.path") }},
		{"admin port taken", func(cfg *config.Config) { cfg.Admin.Listen = taken.Addr().String() },
			func(err error) bool { return strings.Contains(err.Error(), "cannot listen on admin.listen") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			group := strings.ReplaceAll(tc.name, " ", "-")
			cfg := kafkaConfig(t, dir, "refused-1", broker, "captures", group, tgt.URL)
			tc.adjust(&cfg)
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			res, err := service.Run(ctx, cfg, config.Log{Level: "info", Format: "text"}.Logger(t.Output()))
			if err == nil {
				_ = res.Sink.Close()
				t.Fatal("the run was not refused")
			}
			if !tc.want(err) {
				t.Errorf("refused with %q", err)
			}
			entries, rerr := os.ReadDir(dir)
			if rerr != nil {
				t.Fatal(rerr)
			}
			for _, e := range entries {
				t.Errorf("the refused run left %s in its warehouse directory", e.Name())
			}
			assertNoGroup(t, ctx, broker, group)
			if tgt.hits.Load() != 0 {
				t.Errorf("the refused run sent %d requests", tgt.hits.Load())
			}
		})
	}
}
