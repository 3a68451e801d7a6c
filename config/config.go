package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/replaykit/replay/admin"
	"github.com/replaykit/replay/compare"
	"github.com/replaykit/replay/pipeline"
	"github.com/replaykit/replay/sinks"
	"github.com/replaykit/replay/sources"
)

// EnvPrefix starts every environment variable that overrides a field:
// replay.workers is REPLAY_REPLAY_WORKERS, sink.catalog.uri is
// REPLAY_SINK_CATALOG_URI.
const EnvPrefix = "REPLAY_"

// Config is the whole configuration of a replay process.
type Config struct {
	// RunID names one migration run; every row written carries it, and
	// compare reads one run at a time. Use a new one per migration attempt.
	RunID string `yaml:"run_id"`
	// Source says where captured exchanges come from.
	Source Source `yaml:"source"`
	// Pipeline holds decode, filter, rewrite, replay and limit settings; its
	// sections sit at the top level of the file.
	Pipeline pipeline.Config `yaml:",inline"`
	// Sink is where rows go: the Iceberg catalog, warehouse, namespace and
	// flush policy.
	Sink sinks.IcebergConfig `yaml:"sink"`
	// Compare configures `replay compare`: normalization rules, memory
	// budget, report path and the match-rate gate.
	Compare compare.Config `yaml:"compare"`
	// Admin configures the admin HTTP server (health, readiness, metrics,
	// status); off unless admin.listen is set.
	Admin admin.Config `yaml:"admin"`
	// Log sets the process log.
	Log Log `yaml:"log"`
}

// Source selects and configures the input.
type Source struct {
	// Type is kafka (the capture log) or file (an NDJSON file of envelopes).
	Type  string              `yaml:"type"`
	Kafka sources.KafkaConfig `yaml:"kafka"`
	File  sources.FileConfig  `yaml:"file"`
}

// Log configures log/slog output on stderr.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

// Default returns the embedded default: a local broker, a local warehouse
// (SQLite catalog and files under ./replay-data), and every package default.
func Default() Config {
	return Config{
		Source:   Source{Type: "kafka", Kafka: sources.DefaultKafkaConfig(), File: sources.FileConfig{Format: "ndjson"}},
		Pipeline: pipeline.DefaultConfig(),
		Sink:     sinks.DefaultIcebergConfig(),
		Compare:  compare.DefaultConfig(),
		Admin:    admin.Config{},
		Log:      Log{Level: "info", Format: "text"},
	}
}

// Error lists every problem found in a configuration.
type Error struct {
	Source   string // the file, or "" for defaults and overrides only
	Problems []string
}

func (e *Error) Error() string {
	where := "configuration"
	if e.Source != "" {
		where = fmt.Sprintf("configuration %s", e.Source)
	}
	if len(e.Problems) == 1 {
		return fmt.Sprintf("invalid %s: %s", where, e.Problems[0])
	}
	return fmt.Sprintf("invalid %s:\n  - %s", where, strings.Join(e.Problems, "\n  - "))
}

// Load builds the configuration: defaults, then the YAML file at path (if
// path is not empty), then REPLAY_* environment variables, then the sets
// ("field.path=value", as given to --set). It validates the result and
// returns an *Error naming every bad field.
func Load(path string, environ []string, sets []string) (Config, error) {
	cfg := Default()
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return cfg, &Error{Source: path, Problems: []string{fmt.Sprintf("cannot read the file: %v", err)}}
		}
		if err := decodeYAML(raw, &cfg); err != nil {
			return cfg, &Error{Source: path, Problems: []string{err.Error()}}
		}
	}
	var problems []string
	for _, kv := range EnvOverrides(environ) {
		if err := Set(&cfg, kv[0], kv[1]); err != nil {
			problems = append(problems, fmt.Sprintf("environment %s: %v", kv[2], err))
		}
	}
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			problems = append(problems, fmt.Sprintf("--set %q: want field.path=value, e.g. --set replay.workers=16", s))
			continue
		}
		if err := Set(&cfg, strings.TrimSpace(k), v); err != nil {
			problems = append(problems, fmt.Sprintf("--set %s: %v", k, err))
		}
	}
	if len(problems) > 0 {
		return cfg, &Error{Source: path, Problems: problems}
	}
	if err := cfg.Validate(); err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			ce.Source = path
		}
		return cfg, err
	}
	return cfg, nil
}

func decodeYAML(raw []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s (see the configuration reference in README.md)", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return nil
}

// Validate checks every section and returns an *Error listing each problem
// with its field path, or nil.
func (c *Config) Validate() error {
	var problems []string
	add := func(prefix string, errs []error) {
		for _, e := range errs {
			problems = append(problems, prefix+e.Error())
		}
	}
	if strings.TrimSpace(c.RunID) == "" {
		problems = append(problems, "run_id: is empty; name this migration run (e.g. run_id: checkout-v2-try1, REPLAY_RUN_ID or --run-id)")
	}
	switch c.Source.Type {
	case "kafka":
		add("source.kafka.", c.Source.Kafka.Validate())
	case "file":
		add("source.file.", c.Source.File.Validate())
	default:
		problems = append(problems, fmt.Sprintf("source.type: must be kafka or file, got %q", c.Source.Type))
	}
	if c.Source.File.Fresh && c.Source.Type != "file" {
		problems = append(problems, fmt.Sprintf("source.file.fresh: applies to source.type file, not %q; a kafka run starts over under a new run_id and a new source.kafka.group", c.Source.Type))
	}
	add("", c.Pipeline.Validate())
	add("sink.", c.Sink.Validate())
	add("compare.", c.Compare.Validate())
	add("admin.", c.Admin.Validate())
	if _, err := ParseLevel(c.Log.Level); err != nil {
		problems = append(problems, "log.level: "+err.Error())
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		problems = append(problems, fmt.Sprintf("log.format: must be text or json, got %q", c.Log.Format))
	}
	if len(problems) == 0 {
		return nil
	}
	return &Error{Problems: problems}
}

// ParseLevel turns a log level name into a slog.Level.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("must be debug, info, warn or error, got %q", s)
	}
	return l, nil
}

// Logger builds the process logger the Log section describes, on w.
func (l Log) Logger(w io.Writer) *slog.Logger {
	level, _ := ParseLevel(l.Level)
	opts := &slog.HandlerOptions{Level: level}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Marshal renders the configuration as YAML (for --print-config), with
// secrets replaced by REDACTED.
func (c *Config) Marshal() ([]byte, error) {
	shown := *c
	if shown.Source.Kafka.SASL.Password != "" {
		shown.Source.Kafka.SASL.Password = "REDACTED"
	}
	if shown.Admin.Token != "" {
		shown.Admin.Token = "REDACTED"
	}
	shown.Sink.Catalog.URI = sinks.RedactURI(c.Sink.Catalog.URI)
	for _, secret := range []*string{&shown.Sink.S3.SecretAccessKey, &shown.Sink.S3.SessionToken} {
		if *secret != "" && !strings.HasPrefix(*secret, "${") {
			*secret = "REDACTED"
		}
	}
	if len(c.Sink.Catalog.Properties) > 0 {
		shown.Sink.Catalog.Properties = map[string]string{}
		for k, v := range c.Sink.Catalog.Properties {
			if isSecretKey(k) {
				v = "REDACTED"
			}
			shown.Sink.Catalog.Properties[k] = v
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&shown); err != nil {
		return nil, fmt.Errorf("render configuration: %w", err)
	}
	return buf.Bytes(), enc.Close()
}

// Fields lists every field path that Set and the environment accept, in
// order, e.g. "replay.workers".
func Fields() []string {
	var out []string
	walk(reflect.TypeOf(Config{}), "", func(path string, _ reflect.Type) { out = append(out, path) })
	return out
}

// EnvName returns the environment variable that overrides a field path.
func EnvName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.NewReplacer(".", "_").Replace(path))
}

// EnvOverrides returns (path, value, variable) for every REPLAY_* variable in
// environ that names a field, in field order.
func EnvOverrides(environ []string) [][3]string {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, EnvPrefix) {
			env[k] = v
		}
	}
	var out [][3]string
	for _, path := range Fields() {
		name := EnvName(path)
		if v, ok := env[name]; ok {
			out = append(out, [3]string{path, v, name})
		}
	}
	return out
}

// Set overrides the field at path with value. Lists take comma-separated
// values or a YAML flow list ([a, b]); maps take k=v,k=v or a YAML flow map.
func Set(cfg *Config, path, value string) error {
	var leaf reflect.Type
	walk(reflect.TypeOf(Config{}), "", func(p string, t reflect.Type) {
		if p == path {
			leaf = t
		}
	})
	if leaf == nil {
		return fmt.Errorf("unknown field %q; run `replay run --help` for where fields are listed, or see README.md", path)
	}
	node, err := leafYAML(leaf, value)
	if err != nil {
		return err
	}
	// Build {a: {b: {c: value}}} and decode it over the current config; yaml
	// only touches the keys present.
	parts := strings.Split(path, ".")
	doc := map[string]any{parts[len(parts)-1]: node}
	for i := len(parts) - 2; i >= 0; i-- {
		doc = map[string]any{parts[i]: doc}
	}
	raw, err := yaml.Marshal(doc)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(raw, cfg); err != nil {
		return fmt.Errorf("value %q: %s", value, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return nil
}

func leafYAML(t reflect.Type, value string) (any, error) {
	trimmed := strings.TrimSpace(value)
	switch t.Kind() {
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return value, nil
		}
		if strings.HasPrefix(trimmed, "[") {
			var v any
			err := yaml.Unmarshal([]byte(trimmed), &v)
			return v, err
		}
		if trimmed == "" {
			return []any{}, nil
		}
		var items []any
		for _, s := range strings.Split(value, ",") {
			items = append(items, strings.TrimSpace(s))
		}
		return items, nil
	case reflect.Map:
		if strings.HasPrefix(trimmed, "{") {
			var v any
			err := yaml.Unmarshal([]byte(trimmed), &v)
			return v, err
		}
		m := map[string]any{}
		if trimmed == "" {
			return m, nil
		}
		for _, kv := range strings.Split(value, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, fmt.Errorf("value %q: want key=value[,key=value]", value)
			}
			item, err := leafYAML(t.Elem(), strings.TrimSpace(v)) // amplify.factors: tv=2 is a number
			if err != nil {
				return nil, err
			}
			m[strings.TrimSpace(k)] = item
		}
		return m, nil
	case reflect.String:
		return value, nil
	default:
		var v any
		if err := yaml.Unmarshal([]byte(trimmed), &v); err != nil {
			return nil, fmt.Errorf("value %q: %w", value, err)
		}
		return v, nil
	}
}

// walk calls fn for every leaf field path of t, following yaml tags.
// Structs are descended into; lists of structs (rewrite rules) are leaves
// only as a whole and are skipped.
func walk(t reflect.Type, prefix string, fn func(path string, t reflect.Type)) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		ft := f.Type
		if slices.Contains(strings.Split(opts, ","), "inline") {
			walk(ft, prefix, fn)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		path := prefix + name
		switch {
		case ft.Kind() == reflect.Struct && ft.String() != "time.Time":
			walk(ft, path+".", fn)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			// structured lists are set in the file only
		default:
			fn(path, ft)
		}
	}
}

// isSecretKey reports whether a catalog property holds a credential.
func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"secret", "token", "credential", "password", "session-key"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}
