package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// problemPath is how every problem of a configuration error that is not on
// a line of a file starts (those start with problemLine): the field path
// (source.kafka.brokers, rewrite[2].path.match, amplify.factors.<key>), the
// override that carried it (--set replay.workers, environment
// REPLAY_REPLAY_WORKERS), or the file that cannot be read. A map key may be
// anything, so the last segment of a path is loose.
var problemPath = regexp.MustCompile(`^(--set [^:]+|environment [A-Z0-9_]+|\(top level\)|[a-z_]+(\[\d+\])?(\.[^.\s\[:]*(\[\d+\])?)*|cannot read the file)[:, ]`)

// problemLine is the line a problem found in a file starts with.
var problemLine = regexp.MustCompile(`^line \d+: `)

// problemKeyPath is the path after problemLine: the keys as written in the
// file, which may be anything (a misspelled field, a number, a key of a
// map), joined by dots, then ": ".
var problemKeyPath = regexp.MustCompile(`^[^\n]+?: `)

// notYAML ends the one problem that names a line but no field: a file that
// does not parse as YAML at all.
const notYAML = " (not valid YAML)"

// topLevelKeys are the first segments of the field paths a problem may
// name: those of Fields() and of the structured lists (rewrite, …).
func topLevelKeys(t testing.TB) map[string]bool {
	raw, err := yaml.Marshal(Default())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for k := range m {
		keys[k] = true
	}
	return keys
}

// checkProblems fails unless err is a *Error whose every problem names
// where it is.
func checkProblems(t *testing.T, err error, input string, roots map[string]bool) {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("%q: error %v (%T) is not a *config.Error", input, err, err)
	}
	if len(ce.Problems) == 0 {
		t.Fatalf("%q: a *config.Error without problems", input)
	}
	for _, p := range ce.Problems {
		rest := problemLine.ReplaceAllLiteralString(p, "")
		if rest != p && strings.HasSuffix(p, notYAML) {
			continue // a syntax error: its line is all there is to name
		}
		if rest != p {
			if !problemKeyPath.MatchString(rest) {
				t.Fatalf("%q: problem %q does not name the path of its line", input, p)
			}
			continue
		}
		m := problemPath.FindString(rest)
		if m == "" {
			t.Fatalf("%q: problem %q does not start with a field path or an override", input, p)
		}
		root, _, _ := strings.Cut(strings.TrimRight(m, ": ,"), ".")
		root, _, _ = strings.Cut(root, "[")
		if !strings.HasPrefix(m, "--set") && !strings.HasPrefix(m, "environment") && !strings.HasPrefix(m, "cannot read") &&
			root != "(top level)" && !roots[root] {
			t.Fatalf("%q: problem %q names %q, which is no field", input, p, root)
		}
	}
}

// FuzzLoad loads any file as a configuration and checks that it loads
// (and then validates, prints with --print-config and loads back from that
// printout unchanged, secrets aside), or fails with a *config.Error whose
// every problem names a field path or a line.
func FuzzLoad(f *testing.F) {
	example, err := os.ReadFile("../testdata/configs/replay.example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	for _, s := range []string{
		"", "{}", "~", "- a\n- b", "run_id: r\nreplay: {target: 'http://t:1'}",
		"run_id: r\nreplay:\n  target: http://t:1\n  workers: 1e309\n",
		"run_id: r\nreplay:\n  target: http://t:1\n  workers: -1\n  timeout: 5 parsecs\n",
		"run_id: r\nsource:\n  kafka:\n    brokerz: [a]\n",
		"run_id: r\nsource:\n  type: file\n  file: {path: \"\\0\"}\n",
		"run_id: \"../../etc\"\nsink: {namespace: \"a/b\"}\n",
		"run_id: [a]\n", "run_id: !!binary AAE=\n",
		"a: &a [*a]\n", "x: &x {y: *x}\n", "&a a: b\n*a : c\n",
		"run_id: r\nrun_id: s\n",
		"run_id: r\nrewrite:\n  - path: {match: '(', replace: x}\n  - {}\n",
		"run_id: r\ncompare:\n  normalize:\n    ignore_paths: ['$[']\n",
		"run_id: r\nlog: {level: loud, format: xml}\nadmin: {listen: 'nope'}\n",
		"run_id: \xff\xfe\n", "run_id: r\n\tbad: indent\n", "run_id: 'unterminated\n",
		strings.Repeat("[", 10000), strings.Repeat("a:\n ", 2000) + "b",
	} {
		f.Add([]byte(s))
	}
	roots := topLevelKeys(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		dir := t.TempDir()
		p := filepath.Join(dir, "replay.yaml")
		if err := os.WriteFile(p, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(p, nil, nil)
		if err != nil {
			checkProblems(t, err, string(raw), roots)
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Load accepted %q, Validate refuses it: %v", raw, err)
		}
		printed, err := cfg.Marshal()
		if err != nil {
			t.Fatalf("--print-config of %q: %v", raw, err)
		}
		q := filepath.Join(dir, "printed.yaml")
		if err := os.WriteFile(q, printed, 0o644); err != nil {
			t.Fatal(err)
		}
		again, err := Load(q, nil, nil)
		if err != nil {
			t.Fatalf("the --print-config output of %q does not load: %v\n%s", raw, err, printed)
		}
		reprinted, err := again.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if string(reprinted) != string(printed) {
			t.Fatalf("the --print-config output of %q loads as a different configuration:\n%s\n%s", raw, printed, reprinted)
		}
	})
}

// FuzzSet sets any field to any value, as --set and REPLAY_* do, and
// checks that the override is applied exactly (a string field holds the
// value as given) or refused with a problem naming the override, and that
// what Validate then refuses names its field.
func FuzzSet(f *testing.F) {
	fields := Fields()
	for i, v := range []string{"", "0", "-1", "1e309", "NaN", "x", "[a, b]", "{a: 1}", "k=v,k2", "true", "5 parsecs",
		"../../etc", "a/b", "\x00", "\xff", "'", "\"", "- a", "a: b", "!!binary AAE=", "*alias", "&anchor", "~", "null", "  padded  ", "#comment"} {
		f.Add(uint16(i*7), v)
	}
	roots := topLevelKeys(f)
	f.Fuzz(func(t *testing.T, i uint16, value string) {
		path := fields[int(i)%len(fields)]
		set := path + "=" + value
		cfg, err := Load("", []string{"REPLAY_RUN_ID=r", "REPLAY_REPLAY_TARGET=http://t:1"}, []string{set})
		if err != nil {
			checkProblems(t, err, set, roots)
			var ce *Error
			errors.As(err, &ce)
			if strings.HasPrefix(ce.Problems[0], "--set") && !strings.HasPrefix(ce.Problems[0], "--set "+path+":") {
				t.Fatalf("%q: problem %q does not name %s", set, ce.Problems[0], path)
			}
			return
		}
		if v := fieldValue(reflect.ValueOf(&cfg).Elem(), path); v.Kind() == reflect.String && v.String() != value {
			t.Fatalf("--set %s gave %q", set, v.String())
		}
	})
}

// fieldValue finds the field at a Fields() path, following yaml tags as
// walk does.
func fieldValue(v reflect.Value, path string) reflect.Value {
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if slices.Contains(strings.Split(opts, ","), "inline") {
			if got := fieldValue(v.Field(i), path); got.IsValid() {
				return got
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if name == path {
			return v.Field(i)
		}
		if rest, ok := strings.CutPrefix(path, name+"."); ok && f.Type.Kind() == reflect.Struct {
			return fieldValue(v.Field(i), rest)
		}
	}
	return reflect.Value{}
}
