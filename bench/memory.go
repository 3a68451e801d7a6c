package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// memoryResult is the peak resident set of a `replay run` process over a
// window of a long backlog.
type memoryResult struct {
	peakRSS  int64 // VmHWM at the end of the window
	replayed int64 // requests the target saw in the window
	window   time.Duration
}

// measureMemory runs the replay binary as a separate process (so that the
// broker holding the backlog is not counted) with the embedded default
// budgets, consuming topic t from the start in a fresh group, replaying
// to tgt. It lets the process run for window after the target's first
// request, reads its peak resident set (VmHWM) and kills it: the backlog
// is not drained, it only has to exist.
func measureMemory(ctx context.Context, replayBin string, brokers []string, t *topic, tgt *target, group, dir string, window time.Duration, sets []string) (memoryResult, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return memoryResult{}, err
	}
	cfg := map[string]any{
		"run_id": group,
		"source": map[string]any{"kafka": map[string]any{"brokers": brokers, "topics": []string{t.name}, "group": group}},
		"replay": map[string]any{"target": tgt.URL},
		"sink": map[string]any{"catalog": map[string]any{
			"uri": filepath.Join(dir, "catalog.db"), "warehouse": filepath.Join(dir, "warehouse")}},
		"log": map[string]any{"level": "warn"},
	}
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		return memoryResult{}, err
	}
	path := filepath.Join(dir, "replay.yaml")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		return memoryResult{}, err
	}
	logf, err := os.Create(filepath.Join(dir, "replay.log"))
	if err != nil {
		return memoryResult{}, err
	}
	defer logf.Close()
	tgt.reset()
	args := []string{"run", "--config", path}
	for _, kv := range sets {
		args = append(args, "--set", kv)
	}
	cmd := exec.CommandContext(ctx, replayBin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return memoryResult{}, fmt.Errorf("start %s: %w", replayBin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	kill := func() { _ = cmd.Process.Kill(); <-exited }

	deadline := time.After(time.Minute)
	for tgt.hits.Load() == 0 {
		select {
		case err := <-exited:
			return memoryResult{}, fmt.Errorf("%s exited before replaying anything (%v); see %s", replayBin, err, logf.Name())
		case <-deadline:
			kill()
			return memoryResult{}, fmt.Errorf("%s replayed nothing in a minute; see %s", replayBin, logf.Name())
		case <-ctx.Done():
			kill()
			return memoryResult{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	select {
	case err := <-exited:
		return memoryResult{}, fmt.Errorf("%s exited during the window (%v); see %s", replayBin, err, logf.Name())
	case <-ctx.Done():
		kill()
		return memoryResult{}, ctx.Err()
	case <-time.After(window):
	}
	peak, err := vmHWM(cmd.Process.Pid)
	replayed := tgt.hits.Load()
	kill()
	if err != nil {
		return memoryResult{}, err
	}
	return memoryResult{peakRSS: peak, replayed: replayed, window: window}, nil
}

// vmHWM reads the peak resident set of process pid from /proc.
func vmHWM(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read peak RSS: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("read peak RSS: %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("read peak RSS: no VmHWM in /proc/<pid>/status")
}
