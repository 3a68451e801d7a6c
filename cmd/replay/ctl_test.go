package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replaykit/replay/admin"
	"github.com/replaykit/replay/pipeline"
	"github.com/replaykit/replay/schemas"
)

// quietSource has no record; quietSink stores nothing. ctl talks to the
// control API, which works the same before and during Run.
type quietSource struct{}

func (quietSource) Poll(ctx context.Context) ([]schemas.Record, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
func (quietSource) Commit(context.Context, schemas.Offsets) error { return nil }

type quietSink struct{}

func (quietSink) Add(*schemas.Result) error                      { return nil }
func (quietSink) Buffered() (int, int64)                         { return 0, 0 }
func (quietSink) Flush(context.Context) (schemas.Offsets, error) { return schemas.Offsets{}, nil }

// startAdmin runs a real admin server with token over a pipeline and
// returns the pipeline and the server's address.
func startAdmin(t *testing.T, token string) (*pipeline.Pipeline, string) {
	t.Helper()
	cfg := pipeline.DefaultConfig()
	cfg.RunID = "ctl-run"
	cfg.Replay.Target = "http://candidate.invalid:8080"
	cfg.Replay.Rate = 100
	p, err := pipeline.New(cfg, quietSource{}, quietSink{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := admin.New(admin.Config{Listen: "127.0.0.1:0", Token: token}, admin.Deps{Stats: p, Control: p, RunID: cfg.RunID, Target: cfg.Replay.Target}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("admin server: %v", err)
		}
	})
	select {
	case <-srv.Started():
	case err := <-done:
		t.Fatalf("admin server: %v", err)
	}
	return p, srv.Addr()
}

func ctl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"ctl"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestCtlAgainstAdminServer(t *testing.T) {
	p, addr := startAdmin(t, "tok3n")
	conn := []string{"--addr", addr, "--token", "tok3n"}

	code, out, errs := ctl(t, append([]string{"status"}, conn...)...)
	if code != 0 {
		t.Fatalf("ctl status exited %d\n%s", code, errs)
	}
	for _, want := range []string{"ctl-run → http://candidate.invalid:8080", "replaying", "rate 100/s", "dial 100%", "guardrail", "ok", "consumed 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("ctl status lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = ctl(t, append([]string{"status", "--json"}, conn...)...)
	var st admin.Status
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st.RunID != "ctl-run" || st.Control == nil {
		t.Errorf("ctl status --json = %d, %v:\n%s", code, err, out)
	}

	code, out, errs = ctl(t, append([]string{"set", "--rate", "50", "--burst", "4", "--dial", "25", "--multiplier", "tv=1.8", "--multiplier", "android=1.3"}, conn...)...)
	c := p.Control()
	if code != 0 || c.Rate != 50 || c.Burst != 4 || c.DialPercent != 25 || c.Multipliers["tv"] != 1.8 || c.Multipliers["android"] != 1.3 || len(c.Multipliers) != 2 {
		t.Fatalf("ctl set = %d (%s); control %+v", code, errs, c)
	}
	if !strings.Contains(c.UpdatedBy, "@") || !strings.Contains(c.UpdatedBy, " from 127.0.0.1:") {
		t.Errorf("updated by %q, want user@host from the client's address", c.UpdatedBy)
	}
	if !strings.Contains(out, "rate 50/s, burst 4") || !strings.Contains(out, "dial 25%, multipliers android ×1.3, tv ×1.8, others ×1") {
		t.Errorf("ctl set printed:\n%s", out)
	}

	if code, _, errs := ctl(t, append([]string{"set", "--ramp", "100/s:2m,2x:10m"}, conn...)...); code != 0 {
		t.Fatalf("ctl set --ramp exited %d\n%s", code, errs)
	}
	if c := p.Control(); c.Mode != pipeline.ModeRamp || len(c.Ramp) != 2 || c.Ramp[1] != (pipeline.RampStage{Pace: 2, Duration: 10 * time.Minute}) {
		t.Errorf("after --ramp: %+v", c)
	}
	if code, _, errs := ctl(t, append([]string{"set", "--clear-multipliers", "--mode", "max"}, conn...)...); code != 0 || len(p.Control().Multipliers) != 0 ||
		p.Control().Mode != pipeline.ModeMax {
		t.Errorf("ctl set --clear-multipliers --mode max = %d (%s); control %+v", code, errs, p.Control())
	}

	code, out, _ = ctl(t, append([]string{"pause"}, conn...)...)
	if code != 0 || !p.Control().Paused || !strings.Contains(out, "PAUSED") {
		t.Errorf("ctl pause = %d, paused %v:\n%s", code, p.Control().Paused, out)
	}
	code, out, _ = ctl(t, append([]string{"resume"}, conn...)...)
	if code != 0 || p.Control().Paused || !strings.Contains(out, "replaying") {
		t.Errorf("ctl resume = %d, paused %v:\n%s", code, p.Control().Paused, out)
	}

	// A value the server rejects: exit 2, naming the field; nothing changes.
	before := p.Control()
	code, _, errs = ctl(t, append([]string{"set", "--dial", "150", "--burst", "0"}, conn...)...)
	if code != exitConfig || !strings.Contains(errs, "dial_percent: must be a percentage") || !strings.Contains(errs, "burst: must be ≥ 1") {
		t.Errorf("ctl set --dial 150 --burst 0 = %d\n%s", code, errs)
	}
	if after := p.Control(); after.DialPercent != before.DialPercent || after.Burst != before.Burst {
		t.Errorf("a rejected set changed the control: %+v", after)
	}
	// Bad flags never reach the server.
	for _, args := range [][]string{
		{"set"},
		{"set", "--ramp", "100/s"},
		{"set", "--rate", "5", "--pace", "2"},
		{"set", "--multiplier", "tv"},
		{"set", "--dial", "lots"},
	} {
		if code, _, errs := ctl(t, append(args, conn...)...); code != exitConfig || errs == "" {
			t.Errorf("ctl %v = %d (%q), want 2 with a message", args, code, errs)
		}
	}
}

func TestCtlTokenAndAddressErrors(t *testing.T) {
	p, addr := startAdmin(t, "tok3n")
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"missing token", []string{"--addr", addr}},
		{"wrong token", []string{"--addr", addr, "--token", "nope"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(envAdminToken, "")
			code, _, errs := ctl(t, append([]string{"pause"}, tc.args...)...)
			if code != exitConfig || !strings.Contains(errs, "token: it is missing or wrong") || !strings.Contains(errs, "--token") ||
				!strings.Contains(errs, addr) {
				t.Errorf("ctl pause = %d\n%s", code, errs)
			}
			if p.Control().Paused {
				t.Error("an unauthorized ctl pause paused the pipeline")
			}
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := ln.Addr().String()
		ln.Close() // nothing listens there now
		code, _, errs := ctl(t, "status", "--addr", dead, "--timeout", "5s")
		if code != exitError || !strings.Contains(errs, "cannot reach the admin server at http://"+dead) || !strings.Contains(errs, "--addr") {
			t.Errorf("ctl status on a closed port = %d\n%s", code, errs)
		}
	})

	t.Run("bad address", func(t *testing.T) {
		if code, _, errs := ctl(t, "status", "--addr", "ftp://x:1"); code != exitConfig || !strings.Contains(errs, "--addr") {
			t.Errorf("ctl status --addr ftp://x:1 = %d\n%s", code, errs)
		}
	})

	t.Run("address and token from the environment", func(t *testing.T) {
		t.Setenv(envAdminAddr, addr)
		t.Setenv(envAdminToken, "tok3n")
		if code, out, errs := ctl(t, "status"); code != 0 || !strings.Contains(out, "ctl-run") {
			t.Errorf("ctl status from the environment = %d\n%s%s", code, out, errs)
		}
	})

	t.Run("address and token from the config file", func(t *testing.T) {
		t.Setenv(envAdminAddr, "127.0.0.1:1") // the config file wins over it
		t.Setenv(envAdminToken, "")           // restored after the test…
		os.Unsetenv(envAdminToken)            // …and unset now: set, it would override admin.token
		_, port, _ := net.SplitHostPort(addr)
		file := filepath.Join(t.TempDir(), "replay.yaml")
		writeFile(t, file, fmt.Sprintf("run_id: x\nreplay:\n  target: http://candidate:8080\nadmin:\n  listen: 0.0.0.0:%s\n  token: tok3n\n", port))
		if code, out, errs := ctl(t, "status", "--config", file); code != 0 || !strings.Contains(out, "ctl-run") {
			t.Errorf("ctl status --config = %d\n%s%s", code, out, errs)
		}
	})
	if _, err := os.Stat("replay-data"); err == nil {
		t.Error("ctl created ./replay-data")
	}
}
