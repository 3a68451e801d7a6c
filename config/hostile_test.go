package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The configuration layer of the hostile-input suite (docs/operations.md,
// "Bad inputs"): every field of Fields() given a malformed value through
// --set, and what replay answers. A row passes when loading fails with a
// *config.Error (exit 2) whose problem starts with the field path it names
// and contains want.

// badConfig is one malformed setting.
type badConfig struct {
	field string // the Fields() path set
	value string // as given to --set
	names string // the field path the problem starts with; "" = field
	want  string // a substring of the problem
}

// badConfigs are the hand-written rows: values out of range, empty where
// required, unknown names, hostile characters. wrongTypeRows adds one row
// of the wrong type for every field that is not a string.
var badConfigs = []badConfig{
	{field: "run_id", value: "", want: "is empty"},
	{field: "run_id", value: "   ", want: "is empty"},
	{field: "run_id", value: "../x", want: `contains ".."; it becomes a directory of the warehouse, so it may not name a parent directory: use letters, digits, '.', '_' or '-' without ".."`},
	{field: "run_id", value: "a/b", want: "has characters outside [A-Za-z0-9._-]"},
	{field: "source.type", value: "carrier-pigeon", want: `must be kafka or file, got "carrier-pigeon"`},
	{field: "source.type", value: "", want: `must be kafka or file, got ""`},
	{field: "source.kafka.brokers", value: "", want: "required"},
	{field: "source.kafka.brokers", value: "localhost", names: "source.kafka.brokers[0]", want: `must be host:port, got "localhost"`},
	{field: "source.kafka.brokers", value: "a:1,", names: "source.kafka.brokers[1]", want: "must be host:port"},
	{field: "source.kafka.topics", value: "", want: "required"},
	{field: "source.kafka.topics", value: "a, ,b", names: "source.kafka.topics[1]", want: "must not be empty"},
	{field: "source.kafka.group", value: "", want: "required"},
	{field: "source.kafka.group", value: "../g", want: `contains ".."; it becomes a directory of the warehouse, so it may not name a parent directory: use letters, digits, '.', '_' or '-' without ".."`},
	{field: "source.kafka.instance_id", value: "pod/0", want: "is not a valid group instance id"},
	{field: "source.kafka.start", value: "yesterday", want: `got "yesterday"`},
	{field: "source.kafka.max_poll_records", value: "0", want: "must be positive"},
	{field: "source.kafka.session_timeout", value: "0s", want: "must be positive"},
	{field: "source.kafka.rebalance_timeout", value: "-1s", want: "must be positive"},
	{field: "source.kafka.fetch_error_timeout", value: "0s", want: "must be positive"},
	{field: "source.kafka.sasl.mechanism", value: "kerberos", want: `unknown "kerberos"`},
	{field: "source.kafka.sasl.username", value: "ann", names: "source.kafka.sasl.mechanism", want: "required when sasl.username or sasl.password is set"},
	{field: "source.kafka.sasl.password", value: "secret", names: "source.kafka.sasl.mechanism", want: "required when sasl.username or sasl.password is set"},
	{field: "source.kafka.tls.ca_file", value: "/nonexistent/ca.pem", names: "source.kafka.tls.enabled", want: "must be true when tls.ca_file is set"},
	{field: "source.kafka.tls.cert_file", value: "/nonexistent/c.pem", names: "source.kafka.tls.enabled", want: "must be true when tls.cert_file is set"},
	{field: "source.kafka.tls.key_file", value: "/nonexistent/k.pem", names: "source.kafka.tls.enabled", want: "must be true when tls.key_file is set"},
	{field: "source.kafka.tls.server_name", value: "kafka.internal", names: "source.kafka.tls.enabled", want: "must be true when tls.server_name is set"},
	{field: "source.kafka.tls.insecure_skip_verify", value: "true", names: "source.kafka.tls.enabled", want: "must be true when tls.insecure_skip_verify is set"},
	{field: "source.file.format", value: "har", want: `unknown "har"`}, // with source.type: file, see TestHostileConfigValues
	{field: "decode.max_body_bytes", value: "-1", want: "must be ≥ 0"},
	{field: "filter.methods", value: "", want: "must list at least one method"},
	{field: "filter.methods", value: "G ET", names: "filter.methods[0]", want: `"G ET" is not an HTTP method`},
	{field: "filter.include_paths", value: "(", names: "filter.include_paths[0]", want: "("},
	{field: "filter.exclude_paths", value: "a)", names: "filter.exclude_paths[0]", want: "a)"},
	{field: "dial.key", value: "cookie:session", want: "cookie:session"},
	{field: "dial.percent", value: "101", want: "from 0 to 100"},
	{field: "dial.percent", value: "-1", want: "from 0 to 100"},
	{field: "amplify.key", value: "device", want: "device"},
	{field: "amplify.factors", value: "tv=0", names: "amplify.factors.tv", want: "must be from 1 to"},
	{field: "amplify.factors", value: "tv=1000", names: "amplify.factors.tv", want: "must be from 1 to"},
	{field: "amplify.default", value: "0.5", want: "must be from 1 to"},
	{field: "replay.target", value: "", want: "is required"},
	{field: "replay.target", value: "new-cluster:8080", want: "new-cluster:8080"},
	{field: "replay.target", value: "ftp://new-cluster", want: "ftp://new-cluster"},
	{field: "replay.target", value: "http://", want: "http://"},
	{field: "replay.baseline", value: "http://t:1", want: "is replay.target"},
	{field: "replay.baseline", value: "baseline:8080", want: "baseline:8080"},
	{field: "replay.host", value: "", want: "must not be empty"},
	{field: "replay.host", value: "a b", want: `got "a b"`},
	{field: "replay.host", value: "evil/path", want: `got "evil/path"`},
	{field: "replay.replay_id_header", value: "", want: "must not be empty"},
	{field: "replay.replay_id_header", value: "X Replay", want: "is not a valid header name"},
	{field: "replay.workers", value: "0", want: "must be ≥ 1"},
	{field: "replay.rate", value: "-1", want: "≥ 0"},
	{field: "replay.burst", value: "-1", want: "must be ≥ 0"},
	{field: "replay.mode", value: "warp", want: `got "warp"`},
	{field: "replay.mode", value: "ramp", names: "replay.ramp", want: "no stages are given"},
	{field: "replay.pace", value: "0", want: "> 0"},
	{field: "replay.guardrails.max_error_rate", value: "1.5", want: "from 0 to 1"},
	{field: "replay.guardrails.max_p99", value: "-1s", want: "must be ≥ 0"},
	{field: "replay.guardrails.window", value: "0s", want: "0s"},
	{field: "replay.guardrails.min_requests", value: "0", want: "must be ≥ 1"},
	{field: "replay.guardrails.action", value: "panic", want: `got "panic"`},
	{field: "replay.guardrails.cooldown", value: "-1s", want: "must be ≥ 0"},
	{field: "replay.ordering.mode", value: "strict", want: `got "strict"`},
	{field: "replay.connect_timeout", value: "0s", want: "0s"},
	{field: "replay.response_header_timeout", value: "-5s", want: "-5s"},
	{field: "replay.timeout", value: "0s", want: "0s"},
	{field: "replay.max_response_bytes", value: "0", want: "must be ≥ 1"},
	{field: "replay.lineage_header_prefix", value: "X Lineage", want: "is not a valid header name prefix"},
	{field: "replay.retry.attempts", value: "0", want: "must be ≥ 1"},
	{field: "replay.retry.min_backoff", value: "0s", want: "0s"},
	{field: "replay.retry.max_backoff", value: "1ms", want: "must be ≥ replay.retry.min_backoff"},
	{field: "replay.retry.methods", value: "G ET", names: "replay.retry.methods[0]", want: "is not an HTTP method"},
	{field: "replay.breaker.errors", value: "-1", want: "must be ≥ 0"},
	{field: "replay.breaker.probe_interval", value: "0s", want: "0s"},
	{field: "replay.production_hosts", value: "http://prod:80/x", names: "replay.production_hosts[0]", want: "prod"},
	{field: "limits.max_in_flight", value: "0", want: "must be ≥ 1"},
	{field: "redact_headers", value: "Bad Header", names: "redact_headers[0]", want: "is not a valid header name"},
	{field: "redact_body_paths", value: "password", names: "redact_body_paths[0]", want: `must start at the document root "$"`},
	{field: "redact_body_paths", value: "$", names: "redact_body_paths[0]", want: "selects the whole body"},
	{field: "redact_body_paths", value: "$..", names: "redact_body_paths[0]", want: `ends with ".."`},
	{field: "redact_body_paths", value: "$[", names: "redact_body_paths[0]", want: "invalid JSONPath"},
	{field: "shutdown_grace", value: "0s", want: "0s"},
	{field: "live_compare.sample_percent", value: "0", want: "must be above 0 and at most 100"},
	{field: "live_compare.sample_percent", value: "100.5", want: "must be above 0 and at most 100"},
	{field: "live_compare.max_endpoints", value: "0", want: "must be from 1 to"},
	{field: "sink.catalog.type", value: "", want: "is empty"},
	{field: "sink.catalog.type", value: "oracle", want: `unknown catalog type "oracle"`},
	{field: "sink.catalog.name", value: "", want: "is empty"},
	{field: "sink.catalog.uri", value: "", want: "is empty; the sql catalog needs one"},
	{field: "sink.catalog.uri", value: "${REPLAY_HOSTILE_UNSET_VAR}", want: "REPLAY_HOSTILE_UNSET_VAR is not set"},
	{field: "sink.catalog.warehouse", value: "", want: "is empty"},
	{field: "sink.catalog.warehouse", value: "ftp://bucket/x", want: `scheme "ftp" is not supported`},
	{field: "sink.catalog.properties", value: "uri=x", names: "sink.catalog.properties.uri", want: "set catalog.uri instead"},
	{field: "sink.namespace", value: "", want: "is empty"},
	{field: "sink.namespace", value: "a..b", want: "has an empty level"},
	{field: "sink.namespace", value: "a/b", want: `level "a/b" has characters outside [A-Za-z0-9._-]`},
	{field: "sink.flush.rows", value: "0", want: "must be ≥ 1"},
	{field: "sink.flush.bytes", value: "0", want: "must be ≥ 1"},
	{field: "sink.flush.interval", value: "0s", want: "must be > 0"},
	{field: "sink.compression", value: "zip", want: `unknown Parquet codec "zip"`},
	{field: "sink.compression_level", value: "99", want: "zstd takes"},
	{field: "sink.row_group_bytes", value: "0", want: "must be ≥ 1"},
	{field: "sink.dictionary", value: "some", want: `got "some"`},
	{field: "sink.s3.endpoint", value: "s3.example.com", want: "is not an http(s)://host[:port] URL"},
	{field: "sink.s3.access_key_id", value: "AKIA", want: "set both or neither"},
	{field: "sink.s3.secret_access_key", value: "shh", names: "sink.s3.access_key_id", want: "set both or neither"},
	{field: "sink.s3.session_token", value: "tok", want: "needs s3.access_key_id"},
	{field: "sink.s3.region", value: "${REPLAY_HOSTILE_UNSET_VAR}", want: "REPLAY_HOSTILE_UNSET_VAR is not set"},
	{field: "sink.commit_retry.attempts", value: "0", want: "must be ≥ 1"},
	{field: "sink.commit_retry.min_backoff", value: "0s", want: "must be > 0"},
	{field: "sink.commit_retry.max_backoff", value: "1ms", want: "must be ≥ commit_retry.min_backoff"},
	{field: "compare.normalize.routes", value: "GET", names: "compare.normalize.routes[0]", want: "GET"},
	{field: "compare.normalize.ignore_paths", value: "$[", names: "compare.normalize.ignore_paths[0]", want: "$["},
	{field: "compare.normalize.body", value: "xml", want: "xml"},
	{field: "compare.memory_budget", value: "0", want: "must be ≥ 1 byte"},
	{field: "compare.partitions", value: "0", want: "must be between 1 and"},
	{field: "compare.report", value: "", want: "is empty"},
	{field: "compare.min_match_rate", value: "1.01", want: "must be between 0 and 1"},
	{field: "compare.workers", value: "-1", want: "must be ≥ 0"},
	{field: "admin.listen", value: "9464", want: "want host:port"},
	{field: "admin.listen", value: ":99999", want: "port must be a number 0..65535"},
	{field: "admin.token", value: "two words", want: "must not contain whitespace"},
	{field: "log.level", value: "loud", want: `got "loud"`},
	{field: "log.format", value: "xml", want: `got "xml"`},
}

// acceptsAnything lists the fields no value can make invalid at load time,
// with why: each is still a field of the suite, counted apart.
var acceptsAnything = map[string]string{
	"source.kafka.client_id":            "any client id is valid; the broker only logs it",
	"source.file.path":                  "read only with source.type: file; a missing or unreadable file fails the run (exit 1) naming it",
	"replay.ordering.key":               "read only with replay.ordering.mode: key, then validated like dial.key",
	"compare.spill_dir":                 "empty is the system temporary directory; an unusable one fails compare (exit 1) naming it",
	"compare.normalize.ignore_headers":  "any header name may be ignored",
	"compare.normalize.compare_headers": "any header name may be compared; * is every header",
}

// wrongTypeRows gives one row per field that is not a string: a value of
// the wrong type, which --set refuses naming the field and the value.
func wrongTypeRows(t testing.TB) []badConfig {
	var rows []badConfig
	for _, path := range Fields() {
		v := fieldValue(reflect.ValueOf(&Config{}).Elem(), path)
		if !v.IsValid() {
			t.Fatalf("no field at %s", path)
		}
		typ := v.Type()
		if typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		var value, want string
		switch {
		case typ == reflect.TypeFor[time.Duration]():
			value, want = "5 parsecs", "5 parsecs"
		case typ.Kind() == reflect.Bool:
			value, want = "maybe", "maybe"
		case typ.Kind() >= reflect.Int && typ.Kind() <= reflect.Uint64:
			value, want = "twelve", "twelve"
		case typ.Kind() == reflect.Float32 || typ.Kind() == reflect.Float64:
			value, want = "fast", "fast"
		case typ.Kind() == reflect.Slice:
			value, want = "[a, [b]]", "got a list" // [1] is a list where an item belongs
		case typ.Kind() == reflect.Map && typ.Elem().Kind() == reflect.String:
			value, want = "no-equals-sign", "want key=value"
		case typ.Kind() == reflect.Map:
			value, want = "k=lots", "lots"
		default:
			continue // a string: any value has the right type
		}
		rows = append(rows, badConfig{field: path, value: value, want: want})
	}
	return rows
}

// hostileConfigRows is the whole configuration layer, in order.
func hostileConfigRows(t testing.TB) []badConfig {
	return append(slices.Clone(badConfigs), wrongTypeRows(t)...)
}

func TestHostileConfigValues(t *testing.T) {
	base := []string{"REPLAY_RUN_ID=hostile", "REPLAY_REPLAY_TARGET=http://t:1"}
	for i, row := range hostileConfigRows(t) {
		t.Run(fmt.Sprintf("%d_%s", i, row.field), func(t *testing.T) {
			sets := []string{row.field + "=" + row.value}
			if strings.HasPrefix(row.field, "source.file.") {
				sets = append(sets, "source.type=file", "source.file.path=x.ndjson")
			}
			_, err := Load("", base, sets)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("--set %s=%q: err = %v, want a *config.Error (exit 2)", row.field, row.value, err)
			}
			names := row.names
			if names == "" {
				names = row.field
			}
			for _, p := range ce.Problems {
				p = strings.TrimPrefix(p, "--set ")
				if strings.HasPrefix(p, names) && len(p) > len(names) && strings.ContainsRune(":, ", rune(p[len(names)])) && strings.Contains(p, row.want) {
					return
				}
			}
			t.Fatalf("--set %s=%q: problems %q, want one starting with %s and containing %q", row.field, row.value, ce.Problems, names, row.want)
		})
	}
}

// TestHostileConfigCoversEveryField: every field of Fields() has a row or
// is listed in acceptsAnything, and nothing else is.
func TestHostileConfigCoversEveryField(t *testing.T) {
	covered := map[string]bool{}
	for _, r := range hostileConfigRows(t) {
		covered[r.field] = true
	}
	fields := Fields()
	for _, f := range fields {
		if !covered[f] {
			if _, ok := acceptsAnything[f]; !ok {
				t.Errorf("%s has no hostile row; add one to badConfigs, or say in acceptsAnything why no value is malformed", f)
			}
		}
	}
	for f := range acceptsAnything {
		if !slices.Contains(fields, f) {
			t.Errorf("acceptsAnything lists %s, which is no field", f)
		}
	}
	for _, r := range badConfigs {
		if !slices.Contains(fields, r.field) {
			t.Errorf("badConfigs sets %s, which is no field", r.field)
		}
	}
}

// TestHostileConfigDoc keeps the configuration table of docs/operations.md
// ("Bad inputs") equal to the rows above: go test ./config -run
// TestHostileConfigDoc -update rewrites it.
func TestHostileConfigDoc(t *testing.T) {
	var b strings.Builder
	rows := hostileConfigRows(t)
	fmt.Fprintf(&b, "Configuration: %d malformed values, each refused with exit 2 and a problem naming the field.\n\n", len(rows))
	b.WriteString("| field | value given (--set, REPLAY_* or the file) | the problem names | and says |\n|---|---|---|---|\n")
	for _, r := range rows {
		names := r.names
		if names == "" {
			names = r.field
		}
		fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s |\n", r.field, mdCode(r.value), names, mdCode(r.want))
	}
	syncDocSection(t, "../docs/operations.md", "bad-inputs:config", b.String())
}

// mdCode renders s as inline code in a table cell.
func mdCode(s string) string {
	if s == "" {
		return "(empty)"
	}
	if strings.TrimSpace(s) == "" {
		return fmt.Sprintf("(%d spaces)", len(s))
	}
	s = strings.ReplaceAll(s, "|", `\|`)
	if strings.Contains(s, "`") {
		return "``" + s + "``"
	}
	return "`" + s + "`"
}

// syncDocSection checks (or with -update rewrites) the text between
// <!-- name:begin --> and <!-- name:end --> in the file at path.
func syncDocSection(t *testing.T, path, name, body string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?s)(<!-- ` + regexp.QuoteMeta(name) + `:begin -->\n).*?(<!-- ` + regexp.QuoteMeta(name) + `:end -->)`)
	m := re.FindSubmatchIndex(raw)
	if m == nil {
		t.Fatalf("%s has no <!-- %s:begin --> … <!-- %s:end --> section", path, name, name)
	}
	got := string(raw[m[3]:m[4]])
	if got == body {
		return
	}
	if *update {
		out := string(raw[:m[3]]) + body + string(raw[m[4]:])
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("the %s section of %s is not the suite's table; run go test ./%s -run %s -update", name, path, pkgDir(t), t.Name())
}

func pkgDir(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd[strings.LastIndex(wd, "/")+1:]
}
