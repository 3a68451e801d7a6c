package pipeline

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
)

// TestStageLabels checks, in a goroutine profile of a running replay,
// that the worker waiting for the target carries stage=http and the
// intake waiting for records stage=poll: what a CPU profile sums by.
func TestStageLabels(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(arrived) })
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()

	cfg := validConfig()
	cfg.Replay.Target = srv.URL
	src := &memSource{batches: interleave([][][]byte{simple(t, 0, 1)}, 1), block: true}
	p, err := New(cfg, src, &memSink{t: t}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case <-arrived:
	case err := <-done:
		t.Fatalf("Run ended before the request arrived: %v", err)
	}

	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
		t.Fatal(err)
	}
	for stage, frame := range map[string]string{StageHTTP: "(*replayer).attempt", StagePoll: "(*memSource).Poll"} {
		if !labeledStack(buf.String(), stage, frame) {
			t.Errorf("no goroutine in %s labeled %s=%s; goroutines:\n%s", frame, StageLabel, stage, buf.String())
		}
	}
	close(release)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// labeledStack reports whether a debug=1 goroutine profile has a stack
// through frame labeled stage.
func labeledStack(profile, stage, frame string) bool {
	label := `# labels: {"` + StageLabel + `":"` + stage + `"}`
	for _, g := range strings.Split(profile, "\n\n") {
		if strings.Contains(g, label) && strings.Contains(g, frame) {
			return true
		}
	}
	return false
}
