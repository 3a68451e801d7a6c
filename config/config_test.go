package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "copy testdata/configs/replay.example.yaml into README.md")

func write(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "replay.yaml")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultNeedsOnlyRunIDAndTarget(t *testing.T) {
	_, err := Load("", nil, nil)
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *Error", err)
	}
	joined := strings.Join(ce.Problems, "\n")
	if len(ce.Problems) != 2 || !strings.Contains(joined, "run_id") || !strings.Contains(joined, "replay.target") {
		t.Fatalf("problems = %q, want exactly run_id and replay.target", ce.Problems)
	}
	cfg, err := Load("", []string{"REPLAY_RUN_ID=r1", "REPLAY_REPLAY_TARGET=http://127.0.0.1:8080"}, nil)
	if err != nil {
		t.Fatalf("defaults + run id + target: %v", err)
	}
	if cfg.Sink.Catalog.Type != "sql" || cfg.Source.Kafka.Brokers[0] != "127.0.0.1:9092" || cfg.Pipeline.Replay.Workers != 8 {
		t.Errorf("unexpected defaults: %+v", cfg)
	}
}

func TestPrecedenceFileEnvSet(t *testing.T) {
	p := write(t, `
run_id: from-file
replay:
  target: http://file:1
  workers: 3
  timeout: 7s
source:
  kafka:
    topics: [a]
`)
	env := []string{"REPLAY_REPLAY_WORKERS=5", "REPLAY_SOURCE_KAFKA_TOPICS=b,c", "UNRELATED=1"}
	cfg, err := Load(p, env, []string{"replay.workers=9", "sink.catalog.properties=s3.endpoint=http://s3:9000,s3.region=eu", "filter.methods=[GET, POST]",
		"amplify.factors=tv=2,android=1.5"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RunID != "from-file" || cfg.Pipeline.Replay.Target != "http://file:1" || cfg.Pipeline.Replay.Timeout != 7*time.Second {
		t.Errorf("file values lost: %+v", cfg.Pipeline.Replay)
	}
	if cfg.Pipeline.Replay.Workers != 9 {
		t.Errorf("workers = %d, want 9 (--set beats env beats file)", cfg.Pipeline.Replay.Workers)
	}
	if got := strings.Join(cfg.Source.Kafka.Topics, ","); got != "b,c" {
		t.Errorf("topics = %q, want b,c from the environment", got)
	}
	if cfg.Sink.Catalog.Properties["s3.region"] != "eu" || cfg.Sink.Catalog.Properties["s3.endpoint"] != "http://s3:9000" {
		t.Errorf("properties = %v", cfg.Sink.Catalog.Properties)
	}
	if got := strings.Join(cfg.Pipeline.Filter.Methods, ","); got != "GET,POST" {
		t.Errorf("methods = %q", got)
	}
	if f := cfg.Pipeline.Amplify.Factors; len(f) != 2 || f["tv"] != 2 || f["android"] != 1.5 {
		t.Errorf("amplify factors = %v, want tv 2, android 1.5", f)
	}
}

func TestErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name, file string
		sets       []string
		want       []string
	}{
		{name: "unknown field with line", file: "run_id: x\nreplay:\n  target: http://x\n  wokers: 3\n", want: []string{"line 4", "wokers"}},
		{name: "bad values", file: "run_id: x\nsource:\n  type: carrier-pigeon\nreplay:\n  target: ftp://x\nlog:\n  level: loud\n",
			want: []string{"source.type", "replay.target", "log.level"}},
		{name: "bad kafka start", file: "run_id: x\nreplay: {target: 'http://x'}\nsource: {kafka: {start: middle}}\n", want: []string{"source.kafka.start"}},
		{name: "bad flush", file: "run_id: x\nreplay: {target: 'http://x'}\nsink: {flush: {rows: -1}}\n", want: []string{"sink.flush.rows"}},
		{name: "bad rewrite regex", file: "run_id: x\nreplay: {target: 'http://x'}\nrewrite:\n  - path: {match: '(', replace: x}\n", want: []string{"rewrite[0].path.match"}},
		{name: "unknown --set field", file: "run_id: x\nreplay: {target: 'http://x'}\n", sets: []string{"replay.wrkers=2"}, want: []string{"replay.wrkers", "unknown field"}},
		{name: "bad --set value", file: "run_id: x\nreplay: {target: 'http://x'}\n", sets: []string{"replay.workers=many"}, want: []string{"replay.workers", "many"}},
		{name: "--set without =", file: "run_id: x\nreplay: {target: 'http://x'}\n", sets: []string{"replay.workers"}, want: []string{"field.path=value"}},
		{name: "run_id escaping the warehouse", file: "run_id: ../x\nreplay: {target: 'http://x'}\n", want: []string{`run_id: "../x" contains ".."`, "--run-id"}},
		{name: "run_id with a slash", file: "run_id: team/try1\nreplay: {target: 'http://x'}\n", want: []string{`run_id: "team/try1" has characters outside`, `"team-try1"`}},
		{name: "run_id from --set", file: "run_id: x\nreplay: {target: 'http://x'}\n", sets: []string{"run_id=a,b"}, want: []string{`run_id: "a,b"`}},
		{name: "namespace and group", file: "run_id: x\nreplay: {target: 'http://x'}\nsink: {namespace: 'a/b'}\nsource: {kafka: {group: 'g/../h'}}\n",
			want: []string{`source.kafka.group: "g/../h" contains ".."`, `sink.namespace: level "a/b" has characters outside`}},
		{name: "file source without path", file: "run_id: x\nreplay: {target: 'http://x'}\nsource: {type: file}\n", want: []string{"source.file.path"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(write(t, tt.file), nil, tt.sets)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *Error", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestMissingFileIsNamed(t *testing.T) {
	_, err := Load("/nonexistent/replay.yaml", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/replay.yaml") {
		t.Fatalf("err = %v", err)
	}
}

func TestEveryFieldHasAnEnvVarAndSetWorks(t *testing.T) {
	fields := Fields()
	if len(fields) < 40 {
		t.Fatalf("only %d fields found: %v", len(fields), fields)
	}
	for _, f := range fields {
		if EnvName(f) == EnvPrefix {
			t.Errorf("field %q has no environment name", f)
		}
	}
	if EnvName("sink.catalog.uri") != "REPLAY_SINK_CATALOG_URI" {
		t.Errorf("EnvName = %s", EnvName("sink.catalog.uri"))
	}
}

func TestMarshalRedactsSecrets(t *testing.T) {
	cfg := Default()
	cfg.Source.Kafka.SASL.Password = "hunter2"
	cfg.Sink.Catalog.Properties = map[string]string{"s3.secret-access-key": "abc", "token": "t0k", "s3.region": "eu"}
	out, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"hunter2", "abc", "t0k"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("printed config contains the secret %q", secret)
		}
	}
	if !strings.Contains(string(out), "eu") {
		t.Error("non-secret property lost")
	}
	if cfg.Source.Kafka.SASL.Password != "hunter2" {
		t.Error("Marshal modified the config")
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	if _, err := Load("../testdata/configs/replay.example.yaml", nil, nil); err != nil {
		t.Fatalf("the example config in testdata does not load: %v", err)
	}
}

// TestExampleDocumentsEveryField keeps the example (which the README shows
// verbatim) complete: every field Set accepts appears in it.
func TestExampleDocumentsEveryField(t *testing.T) {
	raw, err := os.ReadFile("../testdata/configs/replay.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	var walkNode func(n *yaml.Node, prefix string)
	walkNode = func(n *yaml.Node, prefix string) {
		if n.Kind == yaml.DocumentNode {
			walkNode(n.Content[0], prefix)
			return
		}
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := prefix + n.Content[i].Value
			have[p] = true
			walkNode(n.Content[i+1], p+".")
		}
	}
	walkNode(&doc, "")
	for _, f := range Fields() {
		if !have[f] {
			t.Errorf("testdata/configs/replay.example.yaml does not show %s", f)
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(readme), "```yaml\n"+string(raw)+"```") {
		return
	}
	if *update {
		// The configuration block is the first yaml block of the README.
		start := strings.Index(string(readme), "```yaml\n")
		end := strings.Index(string(readme)[start+8:], "```")
		if start < 0 || end < 0 {
			t.Fatal("README.md has no yaml block to update")
		}
		out := string(readme)[:start] + "```yaml\n" + string(raw) + string(readme)[start+8+end:]
		if err := os.WriteFile("../README.md", []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Error("README.md's configuration block is not testdata/configs/replay.example.yaml verbatim; run: go test ./config -run TestExampleDocumentsEveryField -update")
}
