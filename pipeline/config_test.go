package pipeline

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/replaykit/replay/schemas"
)

func validConfig() Config {
	c := DefaultConfig()
	c.RunID = "run-1"
	c.Replay.Target = "http://new-cluster:8080"
	return c
}

func TestDefaultConfigIsValidOnceTargetAndRunIDAreSet(t *testing.T) {
	if errs := validConfig().Validate(); len(errs) > 0 {
		t.Fatalf("Validate() = %v, want no errors", errs)
	}
	errs := DefaultConfig().Validate()
	var fields []string
	for _, err := range errs {
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Fatalf("error %v is not a *FieldError", err)
		}
		fields = append(fields, fe.Field)
	}
	if want := []string{"replay.target"}; !slices.Equal(fields, want) {
		t.Fatalf("DefaultConfig().Validate() fields = %v, want %v", fields, want)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(c *Config)
		want   string // the exact message, or a prefix ending in ": "
		prefix bool
	}{
		{"bad regex in rewrite", func(c *Config) {
			c.Rewrite = []RewriteRule{
				{Header: &HeaderRewrite{Set: map[string]string{"X-A": "1"}}},
				{Query: &QueryRewrite{Remove: []string{"debug"}}},
				{Path: &PathRewrite{Match: "(", Replace: "x"}},
			}
		}, `rewrite[2].path.match: invalid regex "(": missing closing )`, false},
		{"workers zero", func(c *Config) { c.Replay.Workers = 0 }, "replay.workers: must be ≥ 1, got 0", false},
		{"target not a URL", func(c *Config) { c.Replay.Target = "x" },
			`replay.target: must be an absolute http(s) URL like http://new-cluster:8080, got "x"`, false},
		{"target ftp", func(c *Config) { c.Replay.Target = "ftp://h" }, "replay.target: ", true},
		{"target with query", func(c *Config) { c.Replay.Target = "http://h/?a=1" }, "replay.target: ", true},
		{"target missing", func(c *Config) { c.Replay.Target = "" }, "replay.target: is required; ", true},
		{"baseline not a URL", func(c *Config) { c.Replay.Baseline = "old-copy:8080" },
			`replay.baseline: must be an absolute http(s) URL like http://old-copy:8080, got "old-copy:8080"`, false},
		{"baseline with user info", func(c *Config) { c.Replay.Baseline = "http://u:p@old-copy" },
			`replay.baseline: must not carry a query, fragment or user info (use rewrite rules and header rules), got "http://u:p@old-copy"`, false},
		{"baseline is the target", func(c *Config) { c.Replay.Baseline = "HTTP://New-Cluster:8080/" },
			`replay.baseline: "HTTP://New-Cluster:8080/" is replay.target; point it at a second copy of the old version, or leave it empty`, false},
		{"baseline is the target, default port", func(c *Config) {
			c.Replay.Target, c.Replay.Baseline = "https://new-cluster/api", "https://new-cluster:443/api"
		}, "replay.baseline: ", true},
		{"negative max body", func(c *Config) { c.Decode.MaxBodyBytes = -1 }, "decode.max_body_bytes: ", true},
		{"no methods", func(c *Config) { c.Filter.Methods = nil }, "filter.methods: ", true},
		{"bad method", func(c *Config) { c.Filter.Methods = []string{"GET", "NOT A METHOD"} }, "filter.methods[1]: ", true},
		{"bad include", func(c *Config) { c.Filter.IncludePaths = []string{"^/ok", "[a-"} },
			`filter.include_paths[1]: invalid regex "[a-": missing closing ]`, false},
		{"bad exclude", func(c *Config) { c.Filter.ExcludePaths = []string{"*"} }, "filter.exclude_paths[0]: invalid regex ", true},
		{"two kinds in one rule", func(c *Config) {
			c.Rewrite = []RewriteRule{{Path: &PathRewrite{Match: "a"}, Query: &QueryRewrite{Remove: []string{"b"}}}}
		}, "rewrite[0]: must have exactly one of path, query or header, got 2; split it into one rule per step", false},
		{"empty rule", func(c *Config) { c.Rewrite = []RewriteRule{{}} }, "rewrite[0]: must have exactly one of", true},
		{"empty path match", func(c *Config) { c.Rewrite = []RewriteRule{{Path: &PathRewrite{}}} }, "rewrite[0].path.match: ", true},
		{"empty query rule", func(c *Config) { c.Rewrite = []RewriteRule{{Query: &QueryRewrite{}}} }, "rewrite[0].query: ", true},
		{"empty header rule", func(c *Config) { c.Rewrite = []RewriteRule{{Header: &HeaderRewrite{}}} }, "rewrite[0].header: ", true},
		{"bad header name", func(c *Config) {
			c.Rewrite = []RewriteRule{{Header: &HeaderRewrite{Remove: []string{"Bad Name"}}}}
		}, "rewrite[0].header.remove[0]: ", true},
		{"host via header rule", func(c *Config) {
			c.Rewrite = []RewriteRule{{Header: &HeaderRewrite{Set: map[string]string{"host": "x"}}}}
		}, "rewrite[0].header.set.host: the Host header is set by replay.host, not by a rewrite rule", false},
		{"empty host", func(c *Config) { c.Replay.Host = "" }, "replay.host: ", true},
		{"bad literal host", func(c *Config) { c.Replay.Host = "http://x/" }, "replay.host: ", true},
		{"bad id header", func(c *Config) { c.Replay.ReplayIDHeader = "X Id" }, "replay.replay_id_header: ", true},
		{"negative rate", func(c *Config) { c.Replay.Rate = -1 }, "replay.rate: ", true},
		{"NaN rate", func(c *Config) { c.Replay.Rate = math.NaN() }, "replay.rate: ", true},
		{"negative burst", func(c *Config) { c.Replay.Burst = -1 }, "replay.burst: ", true},
		{"zero connect timeout", func(c *Config) { c.Replay.ConnectTimeout = 0 }, "replay.connect_timeout: must be > 0, like 5s, got 0s", false},
		{"zero header timeout", func(c *Config) { c.Replay.ResponseHeaderTimeout = 0 }, "replay.response_header_timeout: ", true},
		{"zero timeout", func(c *Config) { c.Replay.Timeout = -time.Second }, "replay.timeout: ", true},
		{"zero max response", func(c *Config) { c.Replay.MaxResponseBytes = 0 }, "replay.max_response_bytes: must be ≥ 1, got 0", false},
		{"bad lineage prefix", func(c *Config) { c.Replay.LineageHeaderPrefix = "X Lineage" }, "replay.lineage_header_prefix: ", true},
		{"zero in flight", func(c *Config) { c.Limits.MaxInFlight = 0 }, "limits.max_in_flight: must be ≥ 1, got 0", false},
		{"bad redact", func(c *Config) { c.RedactHeaders = []string{"Cookie", ""} }, "redact_headers[1]: ", true},
		{"zero grace", func(c *Config) { c.ShutdownGrace = 0 }, "shutdown_grace: ", true},
		{"no flush trigger", func(c *Config) { c.Flush = FlushPolicy{} }, "flush: set at least one of rows, bytes or interval", true},
		{"negative flush rows", func(c *Config) { c.Flush.Rows = -1 }, "flush.rows: ", true},
		{"zero attempts", func(c *Config) { c.Replay.Retry.Attempts = 0 }, "replay.retry.attempts: must be ≥ 1 (1 = no retry), got 0", false},
		{"zero min backoff", func(c *Config) { c.Replay.Retry.MinBackoff = 0 }, "replay.retry.min_backoff: ", true},
		{"max backoff below min", func(c *Config) { c.Replay.Retry.MaxBackoff = time.Millisecond },
			"replay.retry.max_backoff: must be ≥ replay.retry.min_backoff (100ms), got 1ms", false},
		{"bad retry method", func(c *Config) { c.Replay.Retry.Methods = []string{"GET", "NOT A METHOD"} }, "replay.retry.methods[1]: ", true},
		{"negative breaker errors", func(c *Config) { c.Replay.Breaker.Errors = -1 }, "replay.breaker.errors: ", true},
		{"zero probe interval", func(c *Config) { c.Replay.Breaker.ProbeInterval = 0 }, "replay.breaker.probe_interval: ", true},
		{"bad production host", func(c *Config) { c.Replay.ProductionHosts = []string{"api", "https://api.example.com"} },
			`replay.production_hosts[1]: must be a host or host:port, not a URL, got "https://api.example.com"`, false},
		{"bad body path", func(c *Config) { c.RedactBodyPaths = []string{"$.ok", "$.a["} }, `redact_body_paths[1]: invalid JSONPath "$.a[": `, true},
		{"unrooted body path", func(c *Config) { c.RedactBodyPaths = []string{"password"} }, "redact_body_paths[0]: ", true},
		{"dial over 100", func(c *Config) { c.Dial.Percent = 101 }, "dial.percent: must be a percentage from 0 to 100, got 101", false},
		{"bad dial key", func(c *Config) { c.Dial.Key = "device_id" },
			`dial.key: "device_id" is not a key expression; use correlation_id, attribute:NAME, header:NAME or query:NAME`, false},
		{"bad amplify key", func(c *Config) { c.Amplify.Key = "header:Bad Name" }, "amplify.key: ", true},
		{"factor below 1", func(c *Config) { c.Amplify.Factors = map[string]float64{"tv": 2, "web": 0.5} },
			"amplify.factors.web: must be from 1 to 100 (1 = replay once; use the dial to replay less), got 0.5", false},
		{"default factor over 100", func(c *Config) { c.Amplify.Default = 101 }, "amplify.default: must be from 1 to 100 ", true},
		{"ordering without a key", func(c *Config) { c.Replay.Ordering.Mode = OrderingKey }, `replay.ordering.key: "" is not a key expression; `, true},
		{"bad ordering mode", func(c *Config) { c.Replay.Ordering.Mode = "fifo" }, `replay.ordering.mode: must be none or key, got "fifo"`, false},
		{"missing env var in a header", func(c *Config) {
			c.Rewrite = []RewriteRule{{Header: &HeaderRewrite{Set: map[string]string{"Authorization": "Bearer ${REPLAY_TEST_UNSET_TOKEN}"}}}}
		}, "rewrite[0].header.set.Authorization: environment variable REPLAY_TEST_UNSET_TOKEN is not set; export it, or remove ${REPLAY_TEST_UNSET_TOKEN} from the value", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.edit(&c)
			errs := c.Validate()
			if len(errs) != 1 {
				t.Fatalf("Validate() = %q, want exactly one error", errs)
			}
			got := errs[0].Error()
			if tt.prefix && !strings.HasPrefix(got, tt.want) || !tt.prefix && got != tt.want {
				t.Fatalf("Validate() = %q, want %q (prefix=%v)", got, tt.want, tt.prefix)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := validConfig()
	c.Replay.Workers = 0
	c.Limits.MaxInFlight = -1
	c.Filter.IncludePaths = []string{"("}
	if errs := c.Validate(); len(errs) != 3 {
		t.Fatalf("Validate() = %q, want 3 errors", errs)
	}
	if _, err := New(c, &memSource{}, &memSink{}, nil); err == nil || !strings.Contains(err.Error(), "replay.workers") {
		t.Fatalf("New() error = %v, want one naming replay.workers", err)
	}
}

func TestNewRequiresRunID(t *testing.T) {
	c := validConfig()
	c.RunID = ""
	if errs := c.Validate(); len(errs) > 0 {
		t.Fatalf("Validate() = %v; RunID is the caller's, not the file's", errs)
	}
	if _, err := New(c, &memSource{}, &memSink{}, nil); err == nil || !strings.Contains(err.Error(), "run_id: ") {
		t.Fatalf("New() error = %v, want one naming run_id", err)
	}
}

func TestBreakerDisabledNeedsNoInterval(t *testing.T) {
	c := validConfig()
	c.Replay.Breaker = BreakerConfig{Errors: 0}
	if errs := c.Validate(); len(errs) > 0 {
		t.Fatalf("Validate() = %v", errs)
	}
}

func TestHeaderValuesExpandEnvironment(t *testing.T) {
	t.Setenv("REPLAY_TEST_TOKEN", "s3cret")
	t.Setenv("REPLAY_TEST_EMPTY", "")
	tests := []struct{ in, want string }{
		{"Bearer ${REPLAY_TEST_TOKEN}", "Bearer s3cret"},
		{"${REPLAY_TEST_TOKEN}-${REPLAY_TEST_TOKEN}", "s3cret-s3cret"},
		{"x${REPLAY_TEST_EMPTY}y", "xy"},
		{"costs $5 and $HOME and ${not valid} and ${", "costs $5 and $HOME and ${not valid} and ${"},
	}
	for _, tt := range tests {
		c := validConfig()
		c.Rewrite = []RewriteRule{{Header: &HeaderRewrite{Set: map[string]string{"X-Token": tt.in}}}}
		comp, errs := c.compile()
		if len(errs) > 0 {
			t.Fatalf("%q: %v", tt.in, errs)
		}
		got := comp.rewriter.request(&schemas.Exchange{Request: schemas.Request{Method: "GET", Path: "/"}})
		if v := got.Headers["X-Token"]; len(v) != 1 || v[0] != tt.want {
			t.Errorf("X-Token: %q expanded to %q, want %q", tt.in, v, tt.want)
		}
		if c.Rewrite[0].Header.Set["X-Token"] != tt.in {
			t.Errorf("the configuration itself was changed: %q", c.Rewrite[0].Header.Set["X-Token"])
		}
	}
	c := validConfig()
	c.Rewrite = []RewriteRule{{Header: &HeaderRewrite{Set: map[string]string{"X-A": "${REPLAY_TEST_NOPE_1}${REPLAY_TEST_NOPE_2}"}}}}
	errs := c.Validate()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "REPLAY_TEST_NOPE_1, REPLAY_TEST_NOPE_2 is not set") {
		t.Fatalf("Validate() = %v, want one error naming both variables", errs)
	}
	t.Setenv("REPLAY_TEST_NEWLINE", "a\r\nX-Injected: 1")
	c.Rewrite = []RewriteRule{{Header: &HeaderRewrite{Set: map[string]string{"X-A": "${REPLAY_TEST_NEWLINE}"}}}}
	if errs := c.Validate(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "rewrite[0].header.set.X-A: the value must not contain a line break") {
		t.Fatalf("Validate() = %v, want a line-break error", errs)
	}
}

func TestBurstDefaultsToWorkers(t *testing.T) {
	c := validConfig()
	c.Replay.Workers = 5
	got, errs := c.compile()
	if len(errs) > 0 || got.burst != 5 {
		t.Fatalf("burst = %d (errs %v), want 5", got.burst, errs)
	}
	c.Replay.Burst = 2
	if got, _ = c.compile(); got.burst != 2 {
		t.Fatalf("burst = %d, want 2", got.burst)
	}
}

func TestConfigYAML(t *testing.T) {
	const doc = `
decode: {max_body_bytes: 1024}
filter:
  methods: ["*"]
  include_paths: ["^/v1/"]
  exclude_paths: ["/health$"]
rewrite:
  - path: {match: "^/v1/", replace: "/v2/"}
  - query: {set: {lang: en}, remove: [debug]}
  - header: {set: {X-Env: shadow}, remove: [X-Debug]}
replay:
  target: http://new-cluster:8080
  host: original
  replay_id_header: none
  workers: 16
  rate: 250.5
  burst: 4
  connect_timeout: 1s
  response_header_timeout: 3s
  timeout: 4s
  max_response_bytes: 2048
  lineage_header_prefix: X-Trace-
  retry: {attempts: 5, min_backoff: 50ms, max_backoff: 1s, methods: [GET, POST]}
  breaker: {errors: 10, probe_interval: 2s}
  production_hosts: [api.example.com, "10.0.0.1:443"]
  allow_production_target: true
limits: {max_in_flight: 100}
redact_headers: [X-Api-Key]
redact_body_paths: ["$.password", "$..token"]
shutdown_grace: 45s
`
	c := DefaultConfig()
	if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	c.RunID = "r"
	if errs := c.Validate(); len(errs) > 0 {
		t.Fatalf("Validate() = %v", errs)
	}
	r := c.Replay
	if c.Decode.MaxBodyBytes != 1024 || !slices.Equal(c.Filter.Methods, []string{"*"}) || len(c.Rewrite) != 3 ||
		c.Rewrite[1].Query.Set["lang"] != "en" || c.Rewrite[2].Header.Remove[0] != "X-Debug" ||
		r.Host != HostOriginal || r.ReplayIDHeader != ReplayIDNone || r.Workers != 16 || r.Rate != 250.5 || r.Burst != 4 ||
		r.ConnectTimeout != time.Second || r.ResponseHeaderTimeout != 3*time.Second || r.Timeout != 4*time.Second ||
		r.MaxResponseBytes != 2048 || r.LineageHeaderPrefix != "X-Trace-" || c.Limits.MaxInFlight != 100 ||
		!slices.Equal(c.RedactHeaders, []string{"X-Api-Key"}) || c.ShutdownGrace != 45*time.Second {
		t.Fatalf("decoded config = %+v", c)
	}
	if r.Retry.Attempts != 5 || r.Retry.MinBackoff != 50*time.Millisecond || r.Retry.MaxBackoff != time.Second ||
		!slices.Equal(r.Retry.Methods, []string{"GET", "POST"}) || r.Breaker != (BreakerConfig{Errors: 10, ProbeInterval: 2 * time.Second}) ||
		!slices.Equal(r.ProductionHosts, []string{"api.example.com", "10.0.0.1:443"}) || !r.AllowProductionTarget ||
		!slices.Equal(c.RedactBodyPaths, []string{"$.password", "$..token"}) {
		t.Fatalf("decoded replay config = %+v, redact_body_paths %v", r, c.RedactBodyPaths)
	}
	if c.Flush != DefaultConfig().Flush {
		t.Fatalf("Flush = %+v, want the default (it is not read from YAML)", c.Flush)
	}
}
