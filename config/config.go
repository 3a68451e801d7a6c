package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/replaykit/replay/admin"
	"github.com/replaykit/replay/compare"
	"github.com/replaykit/replay/internal/suggest"
	"github.com/replaykit/replay/pipeline"
	"github.com/replaykit/replay/schemas"
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
// returns an *Error naming every bad field by its YAML path, with the fix.
//
// A REPLAY_* variable that names no field is an error (a misspelling would
// otherwise be ignored), except the variables replay reads otherwise
// (OtherEnv), variables the configuration references as ${NAME}, and the
// variables Kubernetes sets for a Service whose name starts with replay.
func Load(path string, environ []string, sets []string) (Config, error) {
	cfg := Default()
	var raw []byte
	if path != "" {
		var err error
		raw, err = os.ReadFile(path)
		if err != nil {
			return cfg, &Error{Source: path, Problems: []string{fmt.Sprintf("cannot read the file: %v", err)}}
		}
		if problems := decodeYAML(raw, &cfg); len(problems) > 0 {
			return cfg, &Error{Source: path, Problems: problems}
		}
	}
	var problems []string
	overrides := EnvOverrides(environ)
	refs := string(raw) + "\n" + strings.Join(sets, "\n")
	for _, kv := range overrides {
		refs += "\n" + kv[1]
	}
	problems = append(problems, unknownEnv(environ, refs)...)
	for _, kv := range overrides {
		if err := Set(&cfg, kv[0], kv[1]); err != nil {
			problems = append(problems, fmt.Sprintf("environment %s (%s): %v", kv[2], kv[0], err))
		}
	}
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			problems = append(problems, fmt.Sprintf("--set %q: want field.path=value, e.g. --set replay.workers=16", s))
			continue
		}
		if err := Set(&cfg, strings.TrimSpace(k), v); err != nil {
			problems = append(problems, fmt.Sprintf("--set %s: %v", strings.TrimSpace(k), err))
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

// decodeYAML decodes raw over cfg. It first checks the document against
// the Config type and returns every problem with its YAML path and line:
// unknown fields with the nearest known one, values of the wrong kind,
// numbers out of range.
func decodeYAML(raw []byte, cfg *Config) []string {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return []string{yamlLocation(raw, strings.TrimPrefix(err.Error(), "yaml: ")) + " (not valid YAML)"}
	}
	if ps := checkDocument(&doc); len(ps) > 0 {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = p.String()
		}
		return out
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		// What the check above does not see, e.g. a key given twice.
		return []string{fmt.Sprintf("%s (see the configuration reference in README.md)", yamlLocation(raw, strings.TrimPrefix(err.Error(), "yaml: ")))}
	}
	return nil
}

var yamlLine = regexp.MustCompile(`\bline \d+`)

// yamlLocation makes a YAML error name its line, which yaml.v3 leaves out
// of encoding errors and of errors on the first line (its marks count from
// 0, and 0 reads as unknown): found by config.FuzzLoad.
func yamlLocation(raw []byte, msg string) string {
	if yamlLine.MatchString(msg) {
		return msg
	}
	if !utf8.Valid(raw) {
		i := 0
		for i < len(raw) {
			r, n := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return fmt.Sprintf("line %d: the file is not UTF-8 text: byte %d is %#x", bytes.Count(raw[:i], []byte("\n"))+1, i+1, raw[i])
	}
	return "line 1: " + msg
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
	} else if err := schemas.CheckName(c.RunID); err != nil {
		problems = append(problems, fmt.Sprintf("run_id: %v; set it in run_id:, REPLAY_RUN_ID or --run-id", err))
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

// EnvAdminAddr is where `replay ctl` finds the admin server when neither
// --addr nor --config says.
const EnvAdminAddr = "REPLAY_ADMIN_ADDR"

// OtherEnv are the REPLAY_* variables replay reads that are not fields:
// `replay ctl`'s admin address, and the directory the live page test keeps
// its screenshot in.
var OtherEnv = []string{EnvAdminAddr, "REPLAY_SCREENSHOT_DIR"}

// serviceLinkEnv matches the variables Kubernetes sets in every pod for a
// Service named replay or replay-…: REPLAY_SERVICE_HOST, REPLAY_PORT_9464_TCP_ADDR.
var serviceLinkEnv = regexp.MustCompile(`^REPLAY(_[A-Z0-9_]+)?_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$`)

// envRef matches a ${NAME} reference in a configuration value.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// unknownEnv returns a problem for every REPLAY_* variable in environ that
// names no field, is not in OtherEnv, is not referenced as ${NAME} in refs
// (the configuration's text) and is not a Kubernetes service link, with
// the nearest variable that names a field.
func unknownEnv(environ []string, refs string) []string {
	known := map[string]bool{}
	var names []string
	for _, f := range Fields() {
		known[EnvName(f)] = true
		names = append(names, EnvName(f))
	}
	for _, n := range OtherEnv {
		known[n] = true
	}
	for _, m := range envRef.FindAllStringSubmatch(refs, -1) {
		known[m[1]] = true
	}
	var bad []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, EnvPrefix) || known[k] || serviceLinkEnv.MatchString(k) {
			continue
		}
		known[k] = true // once, even if environ repeats it
		hint := "unset it; the variables are the field paths upper-cased with . → _ and the prefix REPLAY_ (`replay run --help` lists the fields)"
		if s := suggest.Nearest(k, names); s != "" {
			hint = fmt.Sprintf("did you mean %s? Unset %s or rename it", s, k)
		}
		bad = append(bad, fmt.Sprintf("environment %s: names no configuration field; %s", k, hint))
	}
	slices.Sort(bad)
	return bad
}

// Set overrides the field at path with value. Lists take comma-separated
// values or a YAML flow list ([a, b]); maps take k=v,k=v or a YAML flow map;
// lists of rules (rewrite, replay.ramp, compare.normalize.sort_arrays, …)
// take a YAML flow list: [{rate: 100, duration: 2m}].
func Set(cfg *Config, path, value string) error {
	var leaf reflect.Type
	walk(reflect.TypeOf(Config{}), "", func(p string, t reflect.Type) {
		if p == path {
			leaf = t
		}
	})
	if leaf == nil {
		if s := suggest.Nearest(path, Fields()); s != "" {
			return fmt.Errorf("unknown field %q (did you mean %s?)", path, s)
		}
		return fmt.Errorf("unknown field %q; run `replay run --help` for where fields are listed, or see README.md", path)
	}
	node, err := leafYAML(leaf, value)
	if err != nil {
		return err
	}
	// Build {a: {b: {c: value}}}, check it as a document, and decode it over
	// the current config; yaml only touches the keys present.
	parts := strings.Split(path, ".")
	doc := map[string]any{parts[len(parts)-1]: node}
	for i := len(parts) - 2; i >= 0; i-- {
		doc = map[string]any{parts[i]: doc}
	}
	var n yaml.Node
	if err := n.Encode(doc); err != nil {
		return fmt.Errorf("value %q: %w", value, err)
	}
	if ps := checkDocument(&n); len(ps) > 0 {
		msgs := make([]string, len(ps))
		for i, p := range ps {
			if p.path == path {
				msgs[i] = p.msg
			} else {
				msgs[i] = strings.TrimPrefix(strings.TrimPrefix(p.path, path), ".") + ": " + p.msg
			}
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	if err := n.Decode(cfg); err != nil {
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
		if e := t.Elem(); e.Kind() == reflect.Struct || e.Kind() == reflect.Pointer && e.Elem().Kind() == reflect.Struct {
			if trimmed == "" {
				return []any{}, nil
			}
			if !strings.HasPrefix(trimmed, "[") {
				return nil, fmt.Errorf("value %q: want a YAML flow list of rules, e.g. [{%s: …}], or empty for none", value, strings.Join(fieldNames(e), ": …, "))
			}
			var v any
			if err := yaml.Unmarshal([]byte(trimmed), &v); err != nil {
				return nil, fmt.Errorf("value %q: not a YAML flow list: %s", value, strings.TrimPrefix(err.Error(), "yaml: "))
			}
			return v, nil
		}
		if strings.HasPrefix(trimmed, "[") {
			var v any
			if err := yaml.Unmarshal([]byte(trimmed), &v); err != nil {
				return nil, fmt.Errorf("value %q: not a YAML flow list: %s", value, strings.TrimPrefix(err.Error(), "yaml: "))
			}
			return v, nil
		}
		if trimmed == "" {
			return []any{}, nil
		}
		var items []any
		for _, s := range strings.Split(value, ",") {
			item, err := leafYAML(t.Elem(), strings.TrimSpace(s))
			if err != nil {
				return nil, err
			}
			items = append(items, item)
		}
		return items, nil
	case reflect.Map:
		if strings.HasPrefix(trimmed, "{") {
			var v any
			if err := yaml.Unmarshal([]byte(trimmed), &v); err != nil {
				return nil, fmt.Errorf("value %q: not a YAML flow mapping: %s", value, strings.TrimPrefix(err.Error(), "yaml: "))
			}
			return v, nil
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
// Structs are descended into; lists of structs (rewrite rules, ramp
// stages) are leaves as a whole.
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
		default: // lists of rules (rewrite, replay.ramp) are leaves, set as a YAML flow list
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
