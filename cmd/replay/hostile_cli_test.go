package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The command-line layer of the hostile-input suite (docs/operations.md,
// "Bad inputs"): bad flags, arguments, override values, environment
// variables and config files given to the built binary, with the exit code
// and a substring of what it prints on stderr. None of them may create
// anything: each runs in an empty directory that must stay empty.

type badCommand struct {
	args []string // after "replay"; FILE is replaced by the path of file
	env  []string // REPLAY_* variables
	file string   // the content of a config file, when args name FILE
	code int
	want string // a substring of stderr
}

// cliRunOK are the flags that make `replay run` valid apart from the row's
// own bad input (an unreachable broker and target: nothing runs).
var cliRunOK = []string{"run", "--run-id", "hostile", "--target", "http://127.0.0.1:1"}

func runWith(args ...string) []string { return append(append([]string{}, cliRunOK...), args...) }

// notReplay in args is replaced by the address of a web server that answers
// every request with an HTML page: something that is not replay's admin API.
const notReplay = "NOT-REPLAY"

var badCommands = []badCommand{
	{args: runWith("--bogus-flag"), code: 2, want: "unknown flag: --bogus-flag"},
	{args: runWith("-x"), code: 2, want: "unknown shorthand flag: 'x'"},
	{args: runWith("--workers", "many"), code: 2, want: `invalid argument "many" for "--workers"`},
	{args: runWith("--workers", "99999999999999999999"), code: 2, want: `invalid argument "99999999999999999999" for "--workers"`},
	{args: runWith("--rate", "fast"), code: 2, want: `invalid argument "fast" for "--rate"`},
	{args: runWith("--config"), code: 2, want: "flag needs an argument: --config"},
	{args: runWith("--config", "/nonexistent/replay.yaml"), code: 2, want: "cannot read the file"},
	{args: runWith("--config", "FILE"), file: "run_id: [unclosed\n", code: 2, want: "line 1"},
	{args: runWith("--config", "FILE"), file: "\x00\x01binary", code: 2, want: "line 1: control characters are not allowed"},
	{args: runWith("--config", "FILE"), file: "run_id: ok\nlog:\n  level: \xff\n", code: 2, want: "line 3: the file is not UTF-8 text: byte 26 is 0xff"},
	{args: runWith("--config", "FILE"), file: "\"", code: 2, want: "line 1: found unexpected end of stream"},
	{args: runWith("--config", "FILE"), file: "replay:\n  workers: 0\n", code: 2, want: "replay.workers: must be ≥ 1"},
	{args: runWith("--config", "FILE"), file: "sink:\n  flush:\n    rows: -5\n", code: 2, want: "sink.flush.rows: must be ≥ 1"},
	{args: runWith("--set", "replay.workers"), code: 2, want: "want field.path=value"},
	{args: runWith("--set", "replay.wokrers=3"), code: 2, want: `unknown field "replay.wokrers"`},
	{args: runWith("--set", "replay.workers=0"), code: 2, want: "replay.workers: must be ≥ 1"},
	{args: runWith("--set", "replay.timeout=soon"), code: 2, want: "--set replay.timeout"},
	{args: runWith("--set", "run_id="), code: 2, want: "run_id: is empty"},
	{args: runWith("--target", "new-cluster:8080"), code: 2, want: "replay.target"},
	{args: runWith("--brokers", "no-port"), code: 2, want: "source.kafka.brokers[0]: must be host:port"},
	{args: runWith("--print-config", "--set", "replay.workers=0"), code: 2, want: "replay.workers: must be ≥ 1"},
	{args: runWith(), env: []string{"REPLAY_REPLAY_WORKERS=zero"}, code: 2, want: "environment REPLAY_REPLAY_WORKERS"},
	{args: runWith(), env: []string{"REPLAY_LOG_LEVEL=loud"}, code: 2, want: "log.level"},
	{args: runWith("--config", "FILE"), file: "source:\n  kafka:\n    brokerz: [a]\n", code: 2, want: "source.kafka.brokerz: unknown field (did you mean brokers?)"},
	{args: runWith("--config", "FILE"), file: "replay:\n  workers: 1e309\n", code: 2, want: `replay.workers: "1e309" is out of range: want a whole number from`},
	{args: runWith("--set", "replay.rate=1e309"), code: 2, want: `--set replay.rate: "1e309" is out of range: a number here is at most ±1.798e+308`},
	{args: runWith(), env: []string{"REPLAY_REPLAY_WOKRERS=3"}, code: 2, want: "environment REPLAY_REPLAY_WOKRERS: names no configuration field; did you mean REPLAY_REPLAY_WORKERS?"},
	{args: []string{"run", "--run-id", "../x", "--target", "http://127.0.0.1:1"}, code: 2, want: `run_id: "../x" contains ".."`},
	{args: []string{"run", "--run-id", "a/b", "--target", "http://127.0.0.1:1"}, code: 2, want: `run_id: "a/b" has characters outside [A-Za-z0-9._-]`},
	{args: runWith("--set", "sink.namespace=a/b"), code: 2, want: `sink.namespace: level "a/b" has characters outside [A-Za-z0-9._-]`},
	{args: runWith("--set", "source.kafka.group=../g"), code: 2, want: `source.kafka.group: "../g" contains ".."`},
	{args: []string{"demo", "--run-id", "../x"}, code: 2, want: `--run-id: "../x" contains ".."`},
	{args: []string{"demo", "--run-id", strings.Repeat("a", 125)}, code: 2, want: "the demo's consumer group replay-<run-id>"},
	{args: runWith("extra-arg"), code: 2, want: `replay run takes no arguments, got "extra-arg"`},
	{args: []string{"bogus"}, code: 2, want: `unknown command "bogus" for "replay"`},
	{args: []string{"ctl", "bogus"}, code: 2, want: `unknown command "bogus" for "replay ctl"`},
	{args: []string{"run"}, code: 2, want: "run_id: is empty"},
	{args: []string{"compare"}, code: 2, want: "--run is required"},
	{args: []string{"compare", "--run", "r", "extra-arg"}, code: 2, want: `replay compare takes no arguments, got "extra-arg"`},
	{args: []string{"compare", "--run", "r", "--min-match-rate", "most"}, code: 2, want: `invalid argument "most" for "--min-match-rate"`},
	{args: []string{"compare", "--run", "r", "--min-match-rate", "2"}, code: 2, want: "compare.min_match_rate: must be between 0 and 1"},
	{args: []string{"compare", "--run", "r", "--set", "compare.partitions=0"}, code: 2, want: "compare.partitions"},
	{args: []string{"ctl", "status", "--timeout", "forever"}, code: 2, want: `invalid argument "forever" for "--timeout"`},
	{args: []string{"ctl", "set", "--rate"}, code: 2, want: "flag needs an argument: --rate"},
	{args: []string{"ctl", "status", "--addr", "127.0.0.1:1", "--timeout", "2s"}, code: 1, want: "is replay run running there"},
	{args: []string{"ctl", "status", "--addr", notReplay, "--timeout", "5s"}, code: 2, want: "the answer is not from replay's admin API"},
	{args: []string{"demo", "--bogus"}, code: 2, want: "unknown flag: --bogus"},
	{args: []string{"version", "--bogus"}, code: 2, want: "unknown flag: --bogus"},
}

func (c badCommand) String() string {
	var b strings.Builder
	for _, e := range c.env {
		b.WriteString(e + " ")
	}
	b.WriteString("replay")
	for _, a := range c.args {
		if a == "FILE" {
			a = fmt.Sprintf("replay.yaml (%q)", c.file)
		} else if a == notReplay {
			a = "<a web server that is not replay>"
		} else if a == "" || strings.ContainsAny(a, " \t") {
			a = fmt.Sprintf("%q", a)
		}
		b.WriteString(" " + a)
	}
	return b.String()
}

func TestHostileCommandLines(t *testing.T) {
	replayBinary(t) // built before any row's clock starts
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html><body>It works!</body></html>")
	}))
	defer other.Close()
	for i, c := range badCommands {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			dir := t.TempDir()
			args := append([]string{}, c.args...)
			for j, a := range args {
				switch a {
				case "FILE":
					args[j] = filepath.Join(t.TempDir(), "replay.yaml")
					writeFile(t, args[j], c.file)
				case notReplay:
					args[j] = other.URL
				}
			}
			cmd := replayCommand(ctx, t, dir, args...)
			cmd.Env = append(cmd.Env, c.env...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			_ = cmd.Run()
			if got := cmd.ProcessState.ExitCode(); got != c.code || !strings.Contains(stderr.String(), c.want) {
				t.Errorf("%s: exit %d, want %d with %q on stderr:\n%s", c, got, c.code, c.want, stderr.String())
			}
			if left, _ := os.ReadDir(dir); len(left) > 0 {
				t.Errorf("%s created %v in its working directory", c, left)
			}
		})
	}
}

// TestHostileCommandLinesDoc keeps the command-line table of
// docs/operations.md equal to badCommands (-update rewrites it).
func TestHostileCommandLinesDoc(t *testing.T) {
	var b strings.Builder
	fmt.Fprintf(&b, "Command line: %d bad invocations.\n\n| command | exit | stderr says |\n|---|---|---|\n", len(badCommands))
	for _, c := range badCommands {
		fmt.Fprintf(&b, "| %s | %d | %s |\n", mdCode(c.String()), c.code, mdCode(c.want))
	}
	syncDocSection(t, "../../docs/operations.md", "bad-inputs:cli", b.String())
}

// mdCode renders s as inline code in a table cell.
func mdCode(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	if strings.Contains(s, "`") {
		return "`` " + s + " ``"
	}
	return "`" + s + "`"
}
