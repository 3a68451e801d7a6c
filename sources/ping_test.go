package sources

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

func TestKafkaPingFailsOnceTheBrokerIsDown(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "captures"),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	ctx := testContext(t)
	k := newKafka(t, ctx, testConfig(addr, "ping", "captures"))
	if err := k.Ping(ctx); err != nil {
		t.Fatalf("Ping with the broker up: %v", err)
	}
	c.Close()
	err = k.Ping(ctx)
	if err == nil {
		t.Fatal("Ping with the broker down = nil, want an error")
	}
	for _, want := range []string{addr, "source.kafka.brokers"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Ping error %q does not name %q", err, want)
		}
	}
}

func TestFilePingIsAlwaysReady(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.ndjson")
	if err := os.WriteFile(path, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := NewFile(FileConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Ping(t.Context()); err != nil {
		t.Errorf("Ping = %v, want nil", err)
	}
}
