package sinks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPingFailsWhenTheWarehouseIsGone(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	ctx := t.Context()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping on a fresh sink: %v", err)
	}
	// The warehouse disappears, as an unmounted volume or a bucket that
	// went away would.
	if err := os.RemoveAll(filepath.Join(dir, "warehouse")); err != nil {
		t.Fatal(err)
	}
	err := s.Ping(ctx)
	if err == nil {
		t.Fatal("Ping with the warehouse gone = nil, want an error")
	}
	for _, want := range []string{"replay.replay_responses", filepath.Join(dir, "catalog.db"), "sink.catalog.uri", "sink.catalog.warehouse"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Ping error %q does not name %q", err, want)
		}
	}
}
