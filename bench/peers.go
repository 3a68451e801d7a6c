package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A peer is a tool users would otherwise pick to replay traffic, run as
// its own process against the same target with the same requests.
type peer struct {
	name string
	bin  string // path to the binary; "" or missing: unavailable
	// setupLog is where the harness's setup step wrote why it could not
	// install the peer, if it could not.
	setupLog string
}

// unavailable returns why the peer cannot run here, or "".
func (p peer) unavailable() string {
	if p.bin != "" {
		if _, err := os.Stat(p.bin); err == nil {
			return ""
		}
	}
	why := fmt.Sprintf("%s is not installed at %q", p.name, p.bin)
	if b, err := os.ReadFile(p.setupLog); err == nil {
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		why = lines[len(lines)-1]
	}
	return why
}

// peerResult is a peer's rate as the target saw it.
type peerResult struct {
	requests int64
	elapsed  time.Duration
}

func (r peerResult) rate() float64 { return float64(r.requests) / r.elapsed.Seconds() }

// runGoReplay replays reqs from a .gor file (all captured at the same
// instant, so GoReplay does not wait between them) with workers HTTP
// workers, and waits until the target saw them all.
func runGoReplay(ctx context.Context, bin, dir string, tgt *target, workers int, reqs []request) (peerResult, error) {
	path := filepath.Join(dir, "requests.gor")
	if err := writeGor(path, reqs); err != nil {
		return peerResult{}, err
	}
	tgt.reset()
	cmd := exec.CommandContext(ctx, bin, "--input-file", path, "--input-file-read-depth", strconv.Itoa(len(reqs)),
		"--output-http", tgt.URL, "--output-http-workers", strconv.Itoa(workers),
		"--output-http-workers-min", strconv.Itoa(workers), "--exit-after", "5m")
	return runPeer(ctx, cmd, dir, "goreplay", tgt, int64(len(reqs)), 0)
}

// writeGor writes reqs in GoReplay's file format: for each request a
// header line (type 1, an ID, the capture time in ns, a latency), the raw
// HTTP/1.1 request, and the payload separator.
func writeGor(path string, reqs []request) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	ts := capturedAt.UnixNano()
	for i, r := range reqs {
		u, err := url.Parse(r.url)
		if err != nil {
			f.Close()
			return err
		}
		fmt.Fprintf(w, "1 %024x %d 0\n%s %s HTTP/1.1\r\nHost: api.example.com\r\n", i, ts, r.method, u.RequestURI())
		for k, vs := range r.header {
			for _, v := range vs {
				fmt.Fprintf(w, "%s: %s\r\n", k, v)
			}
		}
		w.WriteString("\r\n\n🐵🙈🙉\n")
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runVegeta attacks the target with vegeta at -rate 0 (as fast as it
// can) with workers workers for d, cycling through reqs.
func runVegeta(ctx context.Context, bin, dir string, tgt *target, workers int, reqs []request, d time.Duration) (peerResult, error) {
	path := filepath.Join(dir, "targets.txt")
	f, err := os.Create(path)
	if err != nil {
		return peerResult{}, err
	}
	w := bufio.NewWriter(f)
	for _, r := range reqs {
		fmt.Fprintf(w, "%s %s\n", r.method, r.url)
		for k, vs := range r.header {
			for _, v := range vs {
				fmt.Fprintf(w, "%s: %s\n", k, v)
			}
		}
		w.WriteString("\n")
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		return peerResult{}, err
	}
	tgt.reset()
	cmd := exec.CommandContext(ctx, bin, "attack", "-targets", path, "-rate", "0", "-workers", strconv.Itoa(workers),
		"-max-workers", strconv.Itoa(workers), "-duration", d.String(), "-output", os.DevNull)
	return runPeer(ctx, cmd, dir, "vegeta", tgt, 0, d)
}

// runPeer runs cmd until it exits or, when want > 0, until the target
// saw want requests (then it is stopped), and returns the target's count
// and span.
func runPeer(ctx context.Context, cmd *exec.Cmd, dir, name string, tgt *target, want int64, d time.Duration) (peerResult, error) {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return peerResult{}, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return peerResult{}, fmt.Errorf("start %s: %w", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	limit := time.After(d + 2*time.Minute)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			if want > 0 && tgt.hits.Load() < want {
				return peerResult{}, fmt.Errorf("%s exited after %d of %d requests (%v); see %s", name, tgt.hits.Load(), want, err, logf.Name())
			}
			if err != nil {
				return peerResult{}, fmt.Errorf("%s: %w; see %s", name, err, logf.Name())
			}
			return peerResult{requests: tgt.hits.Load(), elapsed: tgt.span()}, nil
		case <-tick.C:
			if want > 0 && tgt.hits.Load() >= want {
				res := peerResult{requests: tgt.hits.Load(), elapsed: tgt.span()}
				_ = cmd.Process.Kill()
				<-exited
				return res, nil
			}
		case <-limit:
			_ = cmd.Process.Kill()
			<-exited
			return peerResult{}, fmt.Errorf("%s did not finish; the target saw %d requests; see %s", name, tgt.hits.Load(), logf.Name())
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-exited
			return peerResult{}, ctx.Err()
		}
	}
}
