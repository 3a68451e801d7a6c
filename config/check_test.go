package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const validBase = "run_id: x\nreplay:\n  target: http://x:1\n"

// TestFileErrorsNameYAMLPathAndFix: every problem of a file is named by its
// YAML path and line, with the fix — the nearest field for a misspelled one,
// the kind and range for a bad value — never by a Go type name.
func TestFileErrorsNameYAMLPathAndFix(t *testing.T) {
	tests := []struct {
		name, file string
		want       []string
	}{
		{"misspelled nested field", "run_id: x\nsource:\n  kafka:\n    brokerz: [a]\n",
			[]string{"line 4: source.kafka.brokerz: unknown field (did you mean brokers?)"}},
		{"misspelled top-level section", "run_id: x\nsorce: {type: kafka}\n",
			[]string{"line 2: sorce: unknown field (did you mean source?)"}},
		{"misspelled inline section", "run_id: x\nlive_compar: {enabled: true}\n",
			[]string{"live_compar: unknown field (did you mean live_compare?)"}},
		{"nothing close", "run_id: x\nreplay:\n  frobnicate: 1\n",
			[]string{"replay.frobnicate: unknown field; the fields of replay are target, baseline, host"}},
		{"field in a list of rules", "run_id: x\nrewrite:\n  - path: {mach: '^/v1', replace: /v2}\n",
			[]string{"line 3: rewrite[0].path.mach: unknown field (did you mean match?)"}},
		{"field in a ramp stage", "run_id: x\nreplay:\n  ramp:\n    - {rate: 5, durration: 1m}\n",
			[]string{"line 4: replay.ramp[0].durration: unknown field (did you mean duration?)"}},
		{"field of an endpoint's inline rules", "run_id: x\ncompare:\n  normalize:\n    endpoints:\n      - {match: GET /x, ignore_path: [$.a]}\n",
			[]string{"compare.normalize.endpoints[0].ignore_path: unknown field (did you mean ignore_paths?)"}},
		{"not an integer", "run_id: x\nreplay:\n  workers: abc\n",
			[]string{`line 3: replay.workers: want a whole number, got "abc"`}},
		{"fraction for an integer", "run_id: x\nreplay:\n  workers: 2.5\n",
			[]string{`replay.workers: want a whole number, got "2.5"`}},
		{"float out of range", "run_id: x\ncompare:\n  min_match_rate: 1e309\n",
			[]string{`line 3: compare.min_match_rate: "1e309" is out of range: a number here is at most ±1.798e+308`}},
		{"integer overflow", "run_id: x\nsink:\n  flush:\n    bytes: 99999999999999999999\n",
			[]string{`line 4: sink.flush.bytes: "99999999999999999999" is out of range: want a whole number from -9223372036854775808 to 9223372036854775807`}},
		{"duration without unit", "run_id: x\nreplay:\n  timeout: 5\n",
			[]string{`line 3: replay.timeout: want a duration such as 500ms, 5s or 1m30s, got "5"`}},
		{"bool", "run_id: x\nsource:\n  kafka:\n    stop_at_end: sometimes\n",
			[]string{`source.kafka.stop_at_end: want true or false, got "sometimes"`}},
		{"section as a scalar", "run_id: x\nreplay: 5\n",
			[]string{`line 2: replay: want a mapping of fields (target, baseline,`}},
		{"list as a mapping", "run_id: x\nfilter:\n  methods: {GET: 1}\n",
			[]string{"line 3: filter.methods: want a list of strings, got a mapping"}},
		{"key given twice", "run_id: x\nreplay:\n  workers: 2\nreplay:\n  rate: 5\n",
			[]string{"line 4: replay: given twice (first at line 2); keep one"}},
		{"every problem at once", "run_id: x\nreplay:\n  wokers: 3\n  rate: fast\nsink:\n  namespaec: r\n",
			[]string{"line 3: replay.wokers: unknown field (did you mean workers?)", `line 4: replay.rate: want a number, got "fast"`,
				"line 6: sink.namespaec: unknown field (did you mean namespace?)"}},
		{"negative size (Validate)", validBase + "sink:\n  flush:\n    bytes: -5\n", []string{"sink.flush.bytes: must be ≥ 1, got -5"}},
		{"not YAML", "run_id: [x\n", []string{"not valid YAML"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(write(t, tt.file), nil, nil)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *Error", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for _, goName := range []string{"sources.", "pipeline.", "sinks.", "compare.Config", "normalize.Rules", "normalize.Endpoint", "!!str", "unmarshal"} {
				if strings.Contains(err.Error(), goName) {
					t.Errorf("error speaks Go (%q), not YAML paths:\n%v", goName, err)
				}
			}
		})
	}
}

// TestSetAndEnvErrorsNameFieldAndFix: --set and REPLAY_* explain a bad path
// or value as the file does.
func TestSetAndEnvErrorsNameFieldAndFix(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		sets []string
		want []string
	}{
		{"misspelled --set path", nil, []string{"replay.wrkers=2"}, []string{`--set replay.wrkers: unknown field "replay.wrkers" (did you mean replay.workers?)`}},
		{"--set not an integer", nil, []string{"replay.workers=many"}, []string{`--set replay.workers: want a whole number, got "many"`}},
		{"--set float out of range", nil, []string{"compare.min_match_rate=1e309"}, []string{`--set compare.min_match_rate: "1e309" is out of range`}},
		{"--set integer overflow", nil, []string{"sink.flush.rows=1e30"}, []string{`--set sink.flush.rows: "1e+30" is out of range: want a whole number from`}},
		{"--set duration", nil, []string{"replay.timeout=soon"}, []string{`--set replay.timeout: want a duration such as 500ms, 5s or 1m30s, got "soon"`}},
		{"--set a list item", nil, []string{"amplify.factors=tv=lots"}, []string{`--set amplify.factors: tv: want a number, got "lots"`}},
		{"--set a rule list", nil, []string{"replay.ramp=[{rate: 5, durtion: 1m}]"}, []string{"--set replay.ramp: [0].durtion: unknown field (did you mean duration?)"}},
		{"--set a rule list without brackets", nil, []string{"replay.ramp=rate: 5"}, []string{"--set replay.ramp: value \"rate: 5\": want a YAML flow list of rules"}},
		{"env not an integer", []string{"REPLAY_REPLAY_WORKERS=abc"}, nil, []string{`environment REPLAY_REPLAY_WORKERS (replay.workers): want a whole number, got "abc"`}},
		{"env misspelled", []string{"REPLAY_REPLAY_WOKERS=3"}, nil,
			[]string{"environment REPLAY_REPLAY_WOKERS: names no configuration field; did you mean REPLAY_REPLAY_WORKERS?"}},
		{"env nothing close", []string{"REPLAY_FROBNICATE=1"}, nil,
			[]string{"environment REPLAY_FROBNICATE: names no configuration field; unset it"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(write(t, validBase), tt.env, tt.sets)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *Error", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestUnknownEnvExemptions: REPLAY_* variables that are not fields but are
// used otherwise are accepted: ctl's address, a secret the file references
// as ${NAME}, the variables Kubernetes sets for a Service named replay….
func TestUnknownEnvExemptions(t *testing.T) {
	file := write(t, validBase+"sink:\n  s3:\n    secret_access_key: ${REPLAY_S3_SECRET}\n    access_key_id: AK\n")
	env := []string{
		"REPLAY_ADMIN_ADDR=127.0.0.1:9464", "REPLAY_S3_SECRET=s3cret", "REPLAY_SCREENSHOT_DIR=/tmp",
		"REPLAY_SERVICE_HOST=10.0.0.1", "REPLAY_SERVICE_PORT=9464", "REPLAY_SERVICE_PORT_ADMIN=9464", "REPLAY_PORT=tcp://10.0.0.1:9464",
		"REPLAY_ADMIN_PORT_9464_TCP_ADDR=10.0.0.2", "REPLAY_ADMIN_PORT_9464_TCP_PROTO=tcp", "REPLAY_CATALOG_PORT_5432_TCP=tcp://10.0.0.3:5432",
		"REPLAYER_MODE=x", "NOT_REPLAY_X=1",
	}
	if _, err := Load(file, env, []string{"sink.catalog.uri=postgres://u:${REPLAY_PG_PASSWORD}@db/c"}); err != nil &&
		strings.Contains(err.Error(), "names no configuration field") {
		t.Fatalf("an exempt variable was refused: %v", err)
	}
	_, err := Load(file, append(env, "REPLAY_PG_PASSWORD=x", "REPLAY_SINK_CATALOG_URL=x"), []string{"sink.catalog.uri=postgres://u:${REPLAY_PG_PASSWORD}@db/c"})
	if err == nil || !strings.Contains(err.Error(), "REPLAY_SINK_CATALOG_URL: names no configuration field; did you mean REPLAY_SINK_CATALOG_URI?") ||
		strings.Contains(err.Error(), "REPLAY_PG_PASSWORD:") {
		t.Fatalf("err = %v, want only REPLAY_SINK_CATALOG_URL refused", err)
	}
}

// sample returns a value of type t unlike def (the default): what a test
// sets a field to.
func sample(t reflect.Type, def reflect.Value) reflect.Value {
	v := reflect.New(t).Elem()
	switch {
	case t == reflect.TypeOf(time.Duration(0)):
		v.SetInt(int64(1500*time.Millisecond) + def.Int())
	case t.Kind() == reflect.Pointer:
		v.Set(reflect.New(t.Elem()))
		var inner reflect.Value
		if !def.IsNil() {
			inner = def.Elem()
		} else {
			inner = reflect.Zero(t.Elem())
		}
		v.Elem().Set(sample(t.Elem(), inner))
	case t.Kind() == reflect.Bool:
		v.SetBool(!def.Bool())
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		v.SetInt(def.Int() + 7)
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		v.SetUint(def.Uint() + 7)
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		v.SetFloat(def.Float() + 0.25)
	case t.Kind() == reflect.String:
		v.SetString(def.String() + "set")
	case t.Kind() == reflect.Interface:
		v.Set(reflect.ValueOf("set"))
	case t.Kind() == reflect.Slice:
		v.Set(reflect.Append(reflect.MakeSlice(t, 0, 1), sample(t.Elem(), reflect.Zero(t.Elem()))))
	case t.Kind() == reflect.Map:
		v.Set(reflect.MakeMap(t))
		v.SetMapIndex(reflect.ValueOf("k"), sample(t.Elem(), reflect.Zero(t.Elem())))
	case t.Kind() == reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() && f.Tag.Get("yaml") != "-" {
				v.Field(i).Set(sample(f.Type, reflect.Zero(f.Type)))
			}
		}
	default:
		panic("sample: " + t.String())
	}
	return v
}

// byPath returns the field of cfg at a YAML path.
func byPath(cfg *Config, path string) (reflect.Value, bool) {
	v := reflect.ValueOf(cfg).Elem()
	for _, name := range strings.Split(path, ".") {
		f, ok := fieldByYAML(v, name)
		if !ok {
			return reflect.Value{}, false
		}
		v = f
	}
	return v, true
}

func fieldByYAML(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || tag == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			if got, ok := fieldByYAML(v.Field(i), name); ok {
				return got, true
			}
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		if tag == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// flowYAML renders v as a one-line YAML value, as a user types it after
// --set path= or REPLAY_…=.
func flowYAML(t *testing.T, v reflect.Value) string {
	t.Helper()
	if v.Kind() == reflect.String {
		return v.String()
	}
	var n yaml.Node
	if err := n.Encode(v.Interface()); err != nil {
		t.Fatal(err)
	}
	var setFlow func(*yaml.Node)
	setFlow = func(n *yaml.Node) {
		n.Style |= yaml.FlowStyle
		for _, c := range n.Content {
			setFlow(c)
		}
	}
	setFlow(&n)
	out, err := yaml.Marshal(&n)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// yamlLeaves returns the path of every leaf of a YAML document: scalars,
// empty lists and maps, and lists (of rules) as a whole.
func yamlLeaves(n *yaml.Node, prefix string, out map[string]*yaml.Node) {
	if n.Kind == yaml.DocumentNode {
		yamlLeaves(n.Content[0], prefix, out)
		return
	}
	if n.Kind != yaml.MappingNode || len(n.Content) == 0 && prefix != "" {
		out[strings.TrimSuffix(prefix, ".")] = n
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind == yaml.MappingNode && (prefix+k.Value == "sink.catalog.properties" || prefix+k.Value == "amplify.factors") {
			out[prefix+k.Value] = v // maps are leaves
			continue
		}
		yamlLeaves(v, prefix+k.Value+".", out)
	}
}

// TestEveryFieldIsSettable: every leaf of the default configuration as
// --print-config shows it is a field Fields() lists, and each one can be
// set both with --set and with its REPLAY_* variable.
func TestEveryFieldIsSettable(t *testing.T) {
	def := Default()
	out, err := def.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	leaves := map[string]*yaml.Node{}
	yamlLeaves(&doc, "", leaves)
	fields := Fields()
	for p := range leaves {
		if !slices.Contains(fields, p) {
			t.Errorf("%s is in the printed configuration but not in Fields(): --set and REPLAY_* cannot set it", p)
		}
	}
	for _, f := range fields {
		if _, ok := leaves[f]; !ok {
			t.Errorf("Fields() lists %s, which the printed configuration does not show", f)
		}
	}
	for _, path := range fields {
		dv, ok := byPath(&def, path)
		if !ok {
			t.Errorf("%s: no such field in Config", path)
			continue
		}
		want := sample(dv.Type(), dv)
		value := flowYAML(t, want)
		for _, how := range []string{"--set", "env"} {
			var env, sets []string
			if how == "--set" {
				sets = []string{path + "=" + value}
			} else {
				env = []string{EnvName(path) + "=" + value}
			}
			cfg, err := Load("", env, sets)
			var ce *Error
			if errors.As(err, &ce) {
				for _, p := range ce.Problems {
					if strings.HasPrefix(p, "--set ") || strings.HasPrefix(p, "environment ") {
						t.Errorf("%s %s=%s: %s", how, path, value, p)
					}
				}
			}
			got, _ := byPath(&cfg, path)
			if !reflect.DeepEqual(got.Interface(), want.Interface()) {
				t.Errorf("%s %s=%s: field is %s, want %s", how, path, value, fmt.Sprint(got.Interface()), fmt.Sprint(want.Interface()))
			}
		}
	}
}
