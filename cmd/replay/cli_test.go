package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/replaykit/replay/config"
)

// cleanEnv is the test process's environment without REPLAY_* variables,
// plus extra: what a replay process started by a test sees.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REPLAY_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// runBinary runs the built replay binary in dir with args and env and
// returns its exit code, stdout and stderr.
func runBinary(t *testing.T, dir string, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(replayBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	t.Fatalf("run replay %v: %v", args, err)
	return 0, "", ""
}

// TestExitCodes runs the built binary with every kind of mistake a user
// makes and checks the exit status (0 ok, 1 runtime failure, 2 usage, 3
// compare gate) and that stderr says what is wrong.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	writeFile(t, blocker, "")
	good := filepath.Join(dir, "good.yaml")
	writeFile(t, good, "run_id: x\nreplay:\n  target: http://127.0.0.1:1\n")

	// Servers that are not replay's admin API, and a closed port.
	otherJSON := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status": "ok", "version": "1.2"}`)
	}))
	defer otherJSON.Close()
	otherHTML := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<html><body>{}</body></html>`)
	}))
	defer otherHTML.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	_, replayAdmin := startAdmin(t, "")

	tests := []struct {
		args   []string
		env    []string
		code   int
		stderr []string // substrings of stderr
		stdout string   // substring of stdout
	}{
		{args: []string{"version"}, code: 0, stdout: "replay "},
		{args: []string{"--help"}, code: 0, stdout: "Exit status (every command):"},
		{args: []string{"run", "--help"}, code: 0, stdout: "Fields settable with --set and REPLAY_*"},
		{args: []string{"help", "ctl"}, code: 0, stdout: "replay ctl status"},
		{args: []string{"run", "--run-id", "x", "--target", "http://127.0.0.1:1", "--print-config"}, code: 0, stdout: "run_id: x"},
		{args: []string{"ctl", "status", "--addr", replayAdmin}, code: 0, stdout: "ctl-run"},

		// Usage: commands and arguments.
		{args: nil, code: 2, stderr: []string{"replay needs a command: compare, completion, ctl, demo, run, version"}},
		{args: []string{"bogus"}, code: 2, stderr: []string{`unknown command "bogus" for "replay"`}},
		{args: []string{"rn"}, code: 2, stderr: []string{"did you mean run?"}},
		{args: []string{"ctl"}, code: 2, stderr: []string{"replay ctl needs a command: pause, resume, set, status"}},
		{args: []string{"ctl", "bogus"}, code: 2, stderr: []string{`unknown command "bogus" for "replay ctl"`}},
		{args: []string{"ctl", "staus"}, code: 2, stderr: []string{"did you mean status?"}},
		{args: []string{"ctl", "status", "extra"}, code: 2, stderr: []string{`replay ctl status takes no arguments, got "extra"`}},
		{args: []string{"run", "extra-arg"}, code: 2, stderr: []string{`replay run takes no arguments, got "extra-arg"`}},
		{args: []string{"compare", "--run", "r", "extra"}, code: 2, stderr: []string{"replay compare takes no arguments"}},
		{args: []string{"demo", "extra"}, code: 2, stderr: []string{"replay demo takes no arguments"}},
		{args: []string{"version", "extra"}, code: 2, stderr: []string{"replay version takes no arguments"}},
		{args: []string{"help", "bogus"}, code: 2, stderr: []string{`unknown help topic "bogus"`}},
		{args: []string{"completion"}, code: 2, stderr: []string{"replay completion needs a command"}},
		{args: []string{"completion", "tcsh"}, code: 2, stderr: []string{`unknown command "tcsh"`}},

		// Usage: flags.
		{args: []string{"run", "--nope"}, code: 2, stderr: []string{"unknown flag: --nope"}},
		{args: []string{"run", "--workers", "abc"}, code: 2, stderr: []string{`invalid argument "abc" for "--workers"`}},
		{args: []string{"compare"}, code: 2, stderr: []string{"--run is required"}},
		{args: []string{"compare", "--run", "r", "--min-match-rate", "2"}, code: 2, stderr: []string{"compare.min_match_rate"}},
		{args: []string{"demo", "--exchanges", "0"}, code: 2, stderr: []string{"--exchanges 0: must be ≥ 1"}},
		{args: []string{"demo", "--garbage", "-1"}, code: 2, stderr: []string{"--garbage -1: must be ≥ 0"}},
		{args: []string{"demo", "--partitions", "0"}, code: 2, stderr: []string{"--partitions 0: must be ≥ 1"}},
		{args: []string{"demo", "--log-level", "loud"}, code: 2, stderr: []string{"--log-level"}},
		{args: []string{"ctl", "status", "--timeout", "0s"}, code: 2, stderr: []string{"--timeout 0s: must be > 0"}},
		{args: []string{"ctl", "status", "--addr", "ftp://x:1"}, code: 2, stderr: []string{"--addr"}},
		{args: []string{"ctl", "set"}, code: 2, stderr: []string{"nothing to set"}},

		// Usage: configuration.
		{args: []string{"run"}, code: 2, stderr: []string{"run_id: is empty", "replay.target"}},
		{args: []string{"run", "--config", filepath.Join(dir, "missing.yaml")}, code: 2, stderr: []string{"missing.yaml", "cannot read"}},
		{args: []string{"run", "--config", good, "--set", "replay.wrkers=3"}, code: 2, stderr: []string{"did you mean replay.workers?"}},
		{args: []string{"run", "--config", good, "--print-config"}, env: []string{"REPLAY_REPLAY_WOKERS=3"}, code: 2,
			stderr: []string{"environment REPLAY_REPLAY_WOKERS: names no configuration field; did you mean REPLAY_REPLAY_WORKERS?"}},

		// ctl at an address where something else answers: usage, since the
		// address is wrong; where nothing answers: a runtime failure.
		{args: []string{"ctl", "status", "--addr", otherJSON.URL}, code: 2, stderr: []string{"not from replay's admin API", "lacks run_id"}},
		{args: []string{"ctl", "status", "--addr", otherHTML.URL}, code: 2, stderr: []string{"not from replay's admin API", "text/html"}},
		{args: []string{"ctl", "status", "--json", "--addr", otherJSON.URL}, code: 2, stderr: []string{"not from replay's admin API"}},
		{args: []string{"ctl", "pause", "--addr", otherJSON.URL}, code: 2, stderr: []string{"not from replay's admin API", "lacks mode"}},
		{args: []string{"ctl", "set", "--rate", "5", "--addr", otherHTML.URL}, code: 2, stderr: []string{"not from replay's admin API"}},
		{args: []string{"ctl", "status", "--addr", closed, "--timeout", "5s"}, code: 1, stderr: []string{"cannot reach the admin server"}},

		// Runtime failure: the catalog cannot be created. A file source,
		// since a Kafka source is probed (and refused) before the catalog.
		{args: []string{"run", "--config", good, "--set", "source.type=file", "--set", "source.file.path=" + blocker,
			"--set", "sink.catalog.uri=" + filepath.Join(blocker, "catalog.db"),
			"--set", "sink.catalog.warehouse=" + filepath.Join(dir, "warehouse")}, code: 1, stderr: []string{blocker}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runBinary(t, dir, cleanEnv(tt.env...), tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			for _, w := range tt.stderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if !strings.Contains(stdout, tt.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdout, stdout)
			}
		})
	}
}

// readmeConfigReference returns the configuration reference of README.md:
// its first yaml block, "Every field, with its default".
func readmeConfigReference(t *testing.T) []byte {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 || !strings.Contains(block, "Every field, with its default") {
		t.Fatal("README.md has no configuration reference (a yaml block of every field with its default)")
	}
	return []byte(block)
}

// leaves flattens a YAML document to path → node for every leaf: scalars,
// lists, and empty mappings.
func leaves(t *testing.T, raw []byte) map[string]*yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]*yaml.Node{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		if n.Kind == yaml.DocumentNode {
			walk(n.Content[0], prefix)
			return
		}
		if n.Kind != yaml.MappingNode || len(n.Content) == 0 {
			out[strings.TrimSuffix(prefix, ".")] = n
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			walk(n.Content[i+1], prefix+n.Content[i].Value+".")
		}
	}
	walk(&doc, "")
	return out
}

// normalized loads a configuration file and prints it back as replay does,
// so that equal values are equal text (1m and 1m0s).
func normalized(t *testing.T, raw []byte) map[string]string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "c.yaml")
	writeFile(t, f, string(raw))
	cfg, err := config.Load(f, nil, nil)
	if err != nil {
		t.Fatalf("load %s: %v", raw, err)
	}
	out, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for p, n := range leaves(t, out) {
		text, err := yaml.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		m[p] = strings.TrimSpace(string(text))
	}
	return m
}

// TestPrintConfigShowsREADMEDefaults compares every default the README's
// configuration reference documents with what --print-config prints: the
// same fields, and the same value for each, except the required fields
// (whose comment says "required"), which are given the README's values.
func TestPrintConfigShowsREADMEDefaults(t *testing.T) {
	ref := readmeConfigReference(t)
	refLeaves := leaves(t, ref)
	args := []string{"run", "--print-config"}
	for p, n := range refLeaves {
		if strings.HasPrefix(strings.TrimSpace(strings.TrimPrefix(n.LineComment, "#")), "required") {
			args = append(args, "--set", p+"="+n.Value)
		}
	}
	if len(args) != 6 {
		t.Fatalf("want the two required fields (run_id, replay.target) in the reference, got %v", args[2:])
	}
	var stdout, stderr bytes.Buffer
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("replay %v exited %d\n%s", args, code, stderr.String())
	}
	printed := leaves(t, stdout.Bytes())
	for p := range refLeaves {
		if _, ok := printed[p]; !ok {
			t.Errorf("README.md documents %s, which --print-config does not print", p)
		}
	}
	for p := range printed {
		if _, ok := refLeaves[p]; !ok {
			t.Errorf("--print-config prints %s, which README.md's configuration reference does not document", p)
		}
	}
	want, got := normalized(t, ref), normalized(t, stdout.Bytes())
	for p, w := range want {
		if g, ok := got[p]; ok && g != w {
			t.Errorf("%s: README.md documents the default %s, --print-config prints %s", p, w, g)
		}
	}
}

// TestREADMECommandsNameFilesThatExist: every --config FILE in README.md's
// shell blocks is a file of the repository, or one a cp before it creates;
// and the examples load.
func TestREADMECommandsNameFilesThatExist(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	created := map[string]bool{}
	blocks := strings.Split(string(readme), "```sh\n")
	for _, block := range blocks[1:] {
		block, _, _ = strings.Cut(block, "```")
		for _, line := range strings.Split(block, "\n") {
			f := strings.Fields(line)
			if len(f) >= 3 && f[0] == "cp" {
				created[f[2]] = true
			}
			for i := 0; i+1 < len(f); i++ {
				if f[i] != "--config" && f[i] != "-c" {
					continue
				}
				file := f[i+1]
				if _, err := os.Stat(filepath.Join("../..", file)); err != nil && !created[file] {
					t.Errorf("README.md runs %q, but %s is not in the repository and no cp before it creates it", strings.TrimSpace(line), file)
				}
			}
		}
	}
	examples, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(examples) == 0 {
		t.Fatalf("no examples/*.yaml (%v)", err)
	}
	for _, f := range examples {
		if _, err := config.Load(f, nil, nil); err != nil {
			t.Errorf("%s does not load: %v", f, err)
		}
	}
}
