package testinfra

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// VersityGWVersion is the versitygw release .ci/run installs with go install.
const VersityGWVersion = "v1.8.0"

// S3 is a local S3-protocol server: versitygw with its posix backend, each
// bucket a directory under a throwaway root. Requests are signed with
// AccessKey and SecretKey (SigV4, region Region) and addressed path-style.
type S3 struct {
	Endpoint  string // http://127.0.0.1:PORT
	Region    string
	AccessKey string
	SecretKey string

	root string
	cmd  *exec.Cmd
	done chan struct{}
}

// VersityGWBinary finds the versitygw binary: on PATH, else in GOBIN or
// GOPATH/bin, where go install puts it.
func VersityGWBinary() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, p := range filepath.SplitList(string(trimNL(out))) {
			dirs = append(dirs, filepath.Join(p, "bin"))
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("versitygw (the local S3 server of the tests) not found on PATH nor in %v: go install github.com/versity/versitygw/cmd/versitygw@%s (.ci/run installs it)", dirs, VersityGWVersion)
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// StartS3 starts versitygw on a free loopback port with the given buckets
// and waits until it accepts connections. logFile, when not empty, gets
// its output.
func StartS3(ctx context.Context, logFile string, buckets ...string) (*S3, error) {
	bin, err := VersityGWBinary()
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp("", "replay-s3-")
	if err != nil {
		return nil, err
	}
	// The posix backend serves each top-level directory as a bucket.
	for _, b := range buckets {
		if err := os.Mkdir(filepath.Join(root, b), 0o755); err != nil {
			return nil, errors.Join(err, os.RemoveAll(root))
		}
	}
	s := &S3{Region: "us-east-1", AccessKey: "replay-test", SecretKey: "replay-test-secret", root: root}
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, errors.Join(err, os.RemoveAll(root))
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		cmd := exec.Command(bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--region", s.Region,
			"--port", addr, "--quiet", "posix", root)
		// Killed with this process: a test binary stopped by its timeout
		// leaves no server behind.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if logFile != "" {
			f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return nil, errors.Join(err, os.RemoveAll(root))
			}
			cmd.Stdout, cmd.Stderr = f, f
			defer f.Close()
		}
		if err := cmd.Start(); err != nil {
			return nil, errors.Join(fmt.Errorf("start %s: %w", bin, err), os.RemoveAll(root))
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		if err := waitListening(ctx, addr, done); err != nil {
			_ = cmd.Process.Kill()
			<-done
			lastErr = fmt.Errorf("versitygw on %s: %w", addr, err)
			continue
		}
		s.Endpoint, s.cmd, s.done = "http://"+addr, cmd, done
		return s, nil
	}
	return nil, errors.Join(lastErr, os.RemoveAll(root))
}

// waitListening dials addr until it accepts a connection, the process ends
// (done) or ctx does.
func waitListening(ctx context.Context, addr string, done <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		select {
		case <-done:
			return errors.New("exited before listening")
		case <-ctx.Done():
			return fmt.Errorf("not listening: %w", err)
		case <-tick.C:
		}
	}
}

// Root is the directory holding the buckets.
func (s *S3) Root() string { return s.root }

// Stop kills the server and removes its files.
func (s *S3) Stop() error {
	_ = s.cmd.Process.Kill()
	<-s.done
	return os.RemoveAll(s.root)
}

// S3T starts a server with the given buckets for the test and stops it when
// the test ends. A missing versitygw fails the test with how to install it:
// it is never skipped.
func S3T(t testing.TB, buckets ...string) *S3 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := StartS3(ctx, filepath.Join(t.TempDir(), "versitygw.log"), buckets...)
	if err != nil {
		t.Fatalf("start the S3 server: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop the S3 server: %v", err)
		}
	})
	return s
}
