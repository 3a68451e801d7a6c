package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/replaykit/replay/config"
	"github.com/replaykit/replay/schemas"
)

// addrLogger passes the address the admin server logs when it listens.
type addrLogger struct {
	slog.Handler
	addr chan<- string
}

func (h addrLogger) Enabled(context.Context, slog.Level) bool { return true }

func (h addrLogger) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "admin server listening" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "addr" {
				h.addr <- a.Value.String()
			}
			return true
		})
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}
func (h addrLogger) WithAttrs(as []slog.Attr) slog.Handler {
	return addrLogger{h.Handler.WithAttrs(as), h.addr}
}
func (h addrLogger) WithGroup(n string) slog.Handler {
	return addrLogger{h.Handler.WithGroup(n), h.addr}
}

// heldTarget answers nothing until released, so a run cannot end while a
// test looks at it; first is closed at the first request.
type heldTarget struct {
	first, release chan struct{}
	once, relOnce  sync.Once
}

func newHeldTarget(t *testing.T) (*heldTarget, string) {
	h := &heldTarget{first: make(chan struct{}), release: make(chan struct{})}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(h.letGo) // before srv.Close, which waits for handlers
	return h, srv.URL
}

func (h *heldTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.once.Do(func() { close(h.first) })
	select {
	case <-h.release:
	case <-r.Context().Done():
		return
	}
	_, _ = io.WriteString(w, `{"ok":true}`)
}

func (h *heldTarget) letGo() { h.relOnce.Do(func() { close(h.release) }) }

// startRun runs service.Run with cfg in the background and returns the
// admin server's base URL once the target has seen a request (the
// pipeline runs), and a function that stops the run and returns its error.
func startRun(t *testing.T, cfg config.Config, tgt *heldTarget) (base string, stop func() error) {
	t.Helper()
	base, cancel, done := runInBackground(t, cfg, time.Minute)
	select {
	case <-tgt.first:
	case err := <-done:
		t.Fatalf("service.Run ended before replaying: %v", err)
	}
	return base, func() error {
		cancel()
		tgt.letGo()
		return <-done
	}
}

func baseConfig(t *testing.T, dir, target string) config.Config {
	cfg := config.Default()
	cfg.RunID = "ready-1"
	cfg.Pipeline.Replay.Target = target
	cfg.Pipeline.ShutdownGrace = 2 * time.Second
	cfg.Sink.Catalog.URI = filepath.Join(dir, "catalog.db")
	cfg.Sink.Catalog.Warehouse = filepath.Join(dir, "warehouse")
	cfg.Sink.CommitRetry.Attempts = 1
	cfg.Admin.Listen = "127.0.0.1:0"
	return cfg
}

func TestReadyzNamesTheBrokerWhenItIsDown(t *testing.T) {
	const topic = "captures"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	broker := cluster.ListenAddrs()[0]
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(schemas.Envelope{CorrelationID: "r-1", CapturedAt: time.Now(),
		Request: &schemas.EnvelopeRequest{Method: "GET", Path: "/v1/items/1"}})
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: raw}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()

	tgt, url := newHeldTarget(t)
	cfg := baseConfig(t, t.TempDir(), url)
	cfg.Source.Kafka.Brokers = []string{broker}
	cfg.Source.Kafka.Topics = []string{topic}
	cfg.Source.Kafka.Group = "ready"
	base, stop := startRun(t, cfg, tgt)

	if code, body := get(t, base+"/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Fatalf("/readyz with the broker up = %d %q, want 200", code, body)
	}
	cluster.Close()
	code, body := get(t, base+"/readyz")
	t.Logf("/readyz with the broker down:\n%s", body)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the broker down = %d %q, want 503", code, body)
	}
	for _, want := range []string{"not ready:", "kafka: kafka brokers " + broker + " unreachable", "source.kafka.brokers"} {
		if !strings.Contains(body, want) {
			t.Errorf("/readyz body lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "catalog:") || strings.Contains(body, "pipeline:") {
		t.Errorf("/readyz blames more than the broker:\n%s", body)
	}
	_ = stop() // the final commit to the dead broker fails; what matters is that the run ends
}

func TestReadyzNamesTheCatalogWhenItIsUnreachable(t *testing.T) {
	dir := t.TempDir()
	tgt, url := newHeldTarget(t)
	cfg := baseConfig(t, dir, url)
	cfg.Source.Type = "file"
	cfg.Source.File.Path = "../testdata/captures/sample.ndjson"
	base, stop := startRun(t, cfg, tgt)

	if code, body := get(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with the catalog up = %d %q, want 200", code, body)
	}
	warehouse := filepath.Join(dir, "warehouse")
	if err := os.RemoveAll(warehouse); err != nil {
		t.Fatal(err)
	}
	code, body := get(t, base+"/readyz")
	t.Logf("/readyz with the warehouse gone:\n%s", body)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the warehouse gone = %d %q, want 503", code, body)
	}
	for _, want := range []string{"catalog: sql catalog at " + fmt.Sprintf("%q", cfg.Sink.Catalog.URI), warehouse, "sink.catalog.uri"} {
		if !strings.Contains(body, want) {
			t.Errorf("/readyz body lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "file:") || strings.Contains(body, "pipeline:") {
		t.Errorf("/readyz blames more than the catalog:\n%s", body)
	}
	_ = stop()

	// Once the run has ended, the server is gone; while it drains, the
	// pipeline check fails first (covered by the admin tests).
	if resp, err := http.Get(base + "/readyz"); err == nil {
		resp.Body.Close()
		t.Errorf("the admin server still answers after the run: %d", resp.StatusCode)
	}
}
