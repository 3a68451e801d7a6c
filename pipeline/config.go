package pipeline

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"time"

	"github.com/replaykit/replay/internal/envexpand"
)

// Config is everything the runtime needs, read from YAML (RunID and Flush
// are set by the caller). Start from
// DefaultConfig, overlay the file, then call Validate; New validates again
// and compiles every regex once.
type Config struct {
	// RunID names this migration run; every row written carries it. Set by
	// the caller, never read from YAML.
	RunID string `yaml:"-"`

	// Decode bounds what is accepted from the capture log.
	Decode DecodeConfig `yaml:"decode"`

	// Filter selects which decoded exchanges are replayed. Exchanges that
	// are not selected still get their production row.
	Filter FilterConfig `yaml:"filter"`

	// Rewrite rules turn a captured request into the request sent to the
	// target. They are applied in order, each to the result of the one
	// before; every rule has exactly one of path, query or header.
	Rewrite []RewriteRule `yaml:"rewrite"`

	// Dial replays a sticky share of the traffic.
	Dial DialConfig `yaml:"dial"`

	// Amplify replays some records more than once (evacuation
	// multipliers).
	Amplify AmplifyConfig `yaml:"amplify"`

	// Replay says where and how fast requests are sent.
	Replay ReplayConfig `yaml:"replay"`

	// Limits are the memory budgets of the runtime.
	Limits LimitsConfig `yaml:"limits"`

	// LiveCompare compares each replayed pair as it finishes, with the
	// batch comparison's rules, and counts the verdicts per endpoint in
	// Stats.Live. Off by default.
	LiveCompare LiveCompareConfig `yaml:"live_compare"`

	// RedactHeaders lists header names (case-insensitive) whose values are
	// replaced by "REDACTED" in every row written: production and replay,
	// request and response. The replayed request itself still carries the
	// original values. Default: Authorization, Proxy-Authorization, Cookie,
	// Set-Cookie. An empty list redacts nothing.
	RedactHeaders []string `yaml:"redact_headers"`

	// RedactBodyPaths are JSONPath expressions (github.com/ohler55/ojg/jp
	// syntax, rooted at $: "$.password", "$.card.number", "$..token") whose
	// values are replaced by "REDACTED" in the request and response bodies
	// of every row written, production and replay. A body is redacted when
	// it is one JSON object or array (whatever its Content-Type says);
	// other bodies (text, compressed, NDJSON, invalid JSON) are written
	// untouched. A redacted body is re-encoded compactly with its object
	// keys sorted; numbers keep their digits. The replayed request still
	// carries the original body. Default: none.
	RedactBodyPaths []string `yaml:"redact_body_paths"`

	// ShutdownGrace bounds, once the run's context ends, the wait for
	// in-flight replays and any flush already under way (their rows are
	// written; replays still running when it elapses are cancelled and not
	// written, so they are replayed after a restart), and separately the
	// final flush and the final commit. Default 30s.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`

	// Flush says when buffered rows are flushed to the sink. Set by the
	// caller from the sink's configuration.
	Flush FlushPolicy `yaml:"-"`
}

// DecodeConfig bounds decoding of capture records.
type DecodeConfig struct {
	// MaxBodyBytes is the largest decoded request or response body
	// accepted; a record over it becomes a dead letter with reason
	// body_too_large. 0 means no limit. Default 8 MiB.
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// MaxDeadLetterRatio fails a run (Run returns an error wrapping
	// ErrDeadLetters, the CLI exits 1) whose dead letters are more than
	// this share of the records it decoded or dead-lettered, or which
	// dead-lettered every record it read, whatever the ratio. The check
	// runs when the run ends (end of input, or a signal), after the last
	// flush: the dead letters are in dead_letters. 1, the default, fails
	// only a run that decoded nothing, which is a capture in a format
	// replay does not read, never a few bad records; 0 fails on the first
	// dead letter. Between 0 and 1.
	MaxDeadLetterRatio float64 `yaml:"max_dead_letter_ratio"`
	// DeadLetterLogInterval is how often, at most, a running pipeline logs
	// the dead letters that arrived since its last line (by reason and
	// shape); the first dead letter of a run is logged at once, with its
	// coordinates. Default 30s.
	DeadLetterLogInterval time.Duration `yaml:"dead_letter_log_interval"`
	// DuplicateWindow is how many of the most recent correlation IDs the
	// pipeline remembers, with their source coordinates, to notice two
	// distinct records with the same ID (Stats.DuplicateIDs, a warning
	// naming both coordinates). It bounds the memory this takes (about
	// 150 bytes per ID); a duplicate further apart than the window is not
	// seen here, but replay compare counts every one of them. 0 turns it
	// off. Default 65536.
	DuplicateWindow int `yaml:"duplicate_window"`
}

// FilterConfig selects the exchanges to replay. An exchange is selected
// when its method is listed, its path matches one of IncludePaths (or
// IncludePaths is empty) and matches none of ExcludePaths.
type FilterConfig struct {
	// Methods lists the HTTP methods to replay (case-insensitive); "*"
	// selects every method. Default GET, HEAD, OPTIONS: only requests that
	// are safe to send twice.
	Methods []string `yaml:"methods"`
	// IncludePaths are regular expressions (RE2, unanchored) matched against
	// the captured path; empty selects every path.
	IncludePaths []string `yaml:"include_paths"`
	// ExcludePaths are regular expressions (RE2, unanchored); a path that
	// matches any of them is not replayed, even when included.
	ExcludePaths []string `yaml:"exclude_paths"`
}

// RewriteRule is one step of the request rewrite. Exactly one of its
// fields is set.
type RewriteRule struct {
	// Path replaces every match of a regular expression in the path.
	Path *PathRewrite `yaml:"path,omitempty"`
	// Query sets and removes query parameters.
	Query *QueryRewrite `yaml:"query,omitempty"`
	// Header sets and removes request headers.
	Header *HeaderRewrite `yaml:"header,omitempty"`
}

// PathRewrite rewrites the path with regexp.ReplaceAllString: Replace may
// refer to groups as $1 or ${name}.
type PathRewrite struct {
	// Match is an RE2 regular expression matched against the escaped path.
	Match string `yaml:"match"`
	// Replace is the replacement template.
	Replace string `yaml:"replace"`
}

// QueryRewrite edits query parameters. Untouched parameters keep their
// order and encoding; Remove is applied before Set, and Set replaces every
// existing value of a name with one value appended at the end.
type QueryRewrite struct {
	// Set maps a parameter name to the value it gets.
	Set map[string]string `yaml:"set"`
	// Remove lists parameter names to drop.
	Remove []string `yaml:"remove"`
}

// HeaderRewrite edits request headers; names are case-insensitive. Remove
// is applied before Set, and Set replaces every existing value.
type HeaderRewrite struct {
	// Set maps a header name to the value it gets. ${NAME} in a value is
	// replaced by the environment variable NAME when the pipeline is built,
	// so a credential need not sit in the file: Authorization: "Bearer
	// ${CANDIDATE_TOKEN}". A variable that is not set is a configuration
	// error; a "$" not followed by "{" is kept as it is. Headers listed in
	// redact_headers are still redacted in the rows.
	Set map[string]string `yaml:"set"`
	// Remove lists header names to drop.
	Remove []string `yaml:"remove"`
}

// Host policies for ReplayConfig.Host.
const (
	HostTarget   = "target"
	HostOriginal = "original"
)

// ReplayIDNone disables the replay ID header.
const ReplayIDNone = "none"

// ReplayConfig says where requests go and how fast.
type ReplayConfig struct {
	// Target is the base URL of the new cluster: scheme, host, port and an
	// optional path prefix put before every request path, e.g.
	// http://new-cluster:8080 or https://new-cluster/api. Required.
	Target string `yaml:"target"`
	// Baseline is the base URL of a second copy of the old version, in the
	// form of Target; empty (the default) turns it off. When set, every
	// selected record is replayed to both Target and Baseline, the same
	// rewritten request at the same moment (Host "target" sends each its
	// own host), and the baseline's answers go to baseline_responses.
	// replay compare then takes paths where production and the baseline
	// differ as the service's own noise. It must differ from Target;
	// ProductionHosts guard it as they guard Target. Retries, timeouts and
	// the worker count apply to it as to Target; the breaker watches Target
	// only, so a failing baseline gives baseline rows with an error_kind
	// and does not pause the run.
	Baseline string `yaml:"baseline"`
	// Host sets the Host header: "target" (default) uses the target's host
	// (and the baseline's on requests to the baseline), "original" keeps
	// the captured host, any other value is used literally.
	Host string `yaml:"host"`
	// ReplayIDHeader names the request header that carries the correlation
	// ID to the target, so its logs can be joined with the tables. Default
	// X-Replay-Id; "none" sends no such header.
	ReplayIDHeader string `yaml:"replay_id_header"`
	// Workers is the number of requests in flight to the target at once.
	// Default 8.
	Workers int `yaml:"workers"`
	// Rate caps the requests started per second; 0 means unlimited.
	// Default 0.
	Rate float64 `yaml:"rate"`
	// Burst is how many requests may start at once when Rate is set; 0
	// means max(1, workers). Default 0.
	Burst int `yaml:"burst"`
	// Mode is how replays are paced: "rate" (default: at most Rate per
	// second, Rate 0 = unlimited), "pace" (the captured inter-arrival gaps
	// of captured_at divided by Pace, so production's bursts are bursts in
	// the replay), "ramp" (the stages of Ramp in turn, then the last one
	// held) or "max" (as fast as the workers allow). Changeable live
	// through the control API.
	Mode string `yaml:"mode"`
	// Pace is the multiple of the captured pace in pace mode: 1 replays as
	// captured, 2 twice as fast, 0.5 half as fast. Default 1.
	Pace float64 `yaml:"pace"`
	// Ramp lists the stages of ramp mode, each a rate or a pace held for a
	// duration: [{rate: 100, duration: 2m}, {rate: 500, duration: 5m},
	// {pace: 2, duration: 10m}]. Default: none.
	Ramp []RampStage `yaml:"ramp"`
	// Guardrails step the ramp back or pause replaying when the target's
	// error rate or p99 latency crosses a limit.
	Guardrails GuardrailConfig `yaml:"guardrails"`
	// Ordering keeps the requests of one key in log order.
	Ordering OrderingConfig `yaml:"ordering"`
	// ConnectTimeout bounds the TCP connect and the TLS handshake. Default
	// 2s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// ResponseHeaderTimeout bounds the wait for the response headers once
	// the request is written. Default 10s.
	ResponseHeaderTimeout time.Duration `yaml:"response_header_timeout"`
	// Timeout bounds one request from start to the end of its body.
	// Default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxResponseBytes is the largest response body stored; a larger one is
	// truncated and its row gets error_kind body_too_large. Default 8 MiB.
	MaxResponseBytes int64 `yaml:"max_response_bytes"`
	// LineageHeaderPrefix marks the response headers that become the replay
	// row's lineage: key = the lower-cased rest of the name, value = the
	// values joined by ",". Matched case-insensitively; empty disables.
	// Default X-Lineage-.
	LineageHeaderPrefix string `yaml:"lineage_header_prefix"`
	// Retry says which failed requests are sent again.
	Retry RetryConfig `yaml:"retry"`
	// Breaker stops replaying while the target is down.
	Breaker BreakerConfig `yaml:"breaker"`
	// ProductionHosts lists the hosts (name or IP, optionally :port) that
	// are production. New refuses a target that is one of them by name, or
	// that resolves to an address one of them resolves to (a failed lookup
	// is not an error). Default: none.
	ProductionHosts []string `yaml:"production_hosts"`
	// AllowProductionTarget turns off the production checks: the ones
	// against ProductionHosts, and the one that stops a run when a selected
	// record was captured from the target itself (replaying production
	// traffic back into production). Default false.
	AllowProductionTarget bool `yaml:"allow_production_target"`
}

// RetryConfig says when a failed request is sent again. Only connection
// failures are retried: refused, reset (before the headers or in the middle
// of the body), timeout, and DNS failures other than "no such host". TLS
// failures, a host that does not exist, other errors and every HTTP status
// (5xx included: it is a response) are not. The replay row records the
// number of attempts and the outcome of the last one.
type RetryConfig struct {
	// Attempts is the number of tries in all; 1 disables retries. Default
	// 3.
	Attempts int `yaml:"attempts"`
	// MinBackoff and MaxBackoff bound the wait before a retry, exponential
	// with full jitter: before retry n the wait is uniform in [0,
	// min(max_backoff, min_backoff·2^(n-1))]. A shutdown ends the wait and
	// leaves the record to be replayed after a restart. Defaults 100ms and
	// 2s.
	MinBackoff time.Duration `yaml:"min_backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// Methods lists the methods that are retried (case-insensitive):
	// requests the target may see twice. Default GET, HEAD, OPTIONS, PUT,
	// DELETE; POST and PATCH are retried only when listed.
	Methods []string `yaml:"methods"`
}

// BreakerConfig configures the circuit breaker. After Errors consecutive
// replays failed at the connection level (after their retries), the
// breaker opens: no new request is sent, records wait for it (holding
// their in-flight slots, so the source stops being polled), and every
// ProbeInterval one waiting record is sent as a probe. A response (any
// status) closes it; a failed probe keeps it open.
type BreakerConfig struct {
	// Errors is the number of consecutive failed replays that opens the
	// breaker; 0 disables it. Default 50.
	Errors int `yaml:"errors"`
	// ProbeInterval is the time between probes while open. Default 5s.
	ProbeInterval time.Duration `yaml:"probe_interval"`
}

// Guardrail actions (GuardrailConfig.Action).
const (
	GuardrailStepBack = "step_back"
	GuardrailPause    = "pause"
)

// GuardrailConfig sets the limits the target must stay within. Over a
// sliding Window of finished replays, when the error rate (connection
// failures and 5xx responses over all replays) or the p99 latency crosses
// its limit, the guardrail trips: with Action step_back a ramp goes back
// to its previous stage and holds there (in any other mode, or at the
// first stage, replaying pauses); with Action pause replaying pauses. It
// is logged, counted in metrics and shown in /v1/status. A tripped
// guardrail lifts when an operator resumes (PUT /v1/control
// {"paused": false}, `replay ctl resume`) or, when Cooldown is set, after
// Cooldown. Both limits 0 (the default) turn guardrails off.
type GuardrailConfig struct {
	// MaxErrorRate is the highest acceptable share of failed replays, 0 to
	// 1; 0 = no limit.
	MaxErrorRate float64 `yaml:"max_error_rate"`
	// MaxP99 is the highest acceptable p99 replay latency; 0 = no limit.
	MaxP99 time.Duration `yaml:"max_p99"`
	// Window is the sliding window the rates are measured over. Default
	// 30s.
	Window time.Duration `yaml:"window"`
	// MinRequests is how many replays the window must hold before a limit
	// is judged, so a handful of requests cannot trip it. Default 20.
	MinRequests int `yaml:"min_requests"`
	// Action is step_back (default) or pause.
	Action string `yaml:"action"`
	// Cooldown, when set, lifts a tripped guardrail by itself after this
	// long; 0 (default) waits for an operator.
	Cooldown time.Duration `yaml:"cooldown"`
}

// Ordering modes (OrderingConfig.Mode).
const (
	OrderingNone = "none"
	OrderingKey  = "key"
)

// OrderingConfig keeps a stateful service's requests in order: with Mode
// "key", requests with the same Key (amplified copies included) are
// replayed one at a time, in log order, while different keys run in
// parallel. Records without the key are not ordered. A request whose key
// is busy waits on the key without holding up the intake (see order.go
// for the worker and rate semantics and the limits).
type OrderingConfig struct {
	// Mode is none (default) or key.
	Mode string `yaml:"mode"`
	// Key is the key expression: correlation_id, attribute:NAME,
	// header:NAME or query:NAME.
	Key string `yaml:"key"`
}

// DialConfig is the sticky dial: replay only the records whose key falls
// in the first Percent of a consistent hash space (XXH64 of the key into
// 10,000 buckets; replayed when the bucket is below Percent·100). The
// same key is always in or always out, and raising Percent only adds
// keys. Records dialed out still get their production row.
type DialConfig struct {
	// Key is the key expression hashed: correlation_id (default),
	// attribute:NAME, header:NAME or query:NAME. A record without the key
	// hashes the empty string.
	Key string `yaml:"key"`
	// Percent is the share of keys replayed, 0 to 100. Changeable live.
	// Default 100.
	Percent float64 `yaml:"percent"`
}

// AmplifyConfig are evacuation multipliers: a record the filter and the
// dial selected whose Key has value v is replayed Factors[v] times
// (Default when v is not listed or the record has no such key). A factor
// f is replayed floor(f) times, plus once more when frac(f) > u, where u
// in [0, 1) is the top 53 bits of XXH64("amplify:" + correlation ID) over
// 2^53: the same record always gets the same count, an integer factor
// gives exactly f, and over many records the count averages f. Copies
// after the first get correlation IDs <id>#2, <id>#3, …; each is its own
// request through the workers, the pacer and the breaker (it counts
// against the rate), and its row in replay_responses has amplified_from
// set to the record's correlation ID. The record's offset is done when
// all its copies are. Changeable live.
type AmplifyConfig struct {
	// Key is the key expression whose value picks the factor, e.g.
	// attribute:device_type; empty (default) turns amplification off.
	Key string `yaml:"key"`
	// Factors maps a key value to its factor, 1 to 100.
	Factors map[string]float64 `yaml:"factors"`
	// Default is the factor of values not in Factors, 1 to 100. Default 1.
	Default float64 `yaml:"default"`
}

// LimitsConfig holds the runtime's memory budgets.
type LimitsConfig struct {
	// MaxInFlight is the most records polled but not yet handed to the
	// sink; when reached, polling stops until the sink catches up
	// (backpressure). Records of one poll batch waiting for a slot come on
	// top. Default 4096.
	MaxInFlight int `yaml:"max_in_flight"`
}

// FlushPolicy says when the sink is flushed: when Rows rows or Bytes bytes
// are buffered, or Interval has elapsed since the last flush with anything
// buffered. A zero field is not a trigger; at least one must be set.
type FlushPolicy struct {
	Rows     int
	Bytes    int64
	Interval time.Duration
}

// DefaultConfig returns the configuration used where the file is silent.
// Replay.Target and RunID have no default.
func DefaultConfig() Config {
	return Config{
		Decode: DecodeConfig{MaxBodyBytes: 8 << 20, MaxDeadLetterRatio: 1, DeadLetterLogInterval: 30 * time.Second,
			DuplicateWindow: 65536},
		Filter: FilterConfig{Methods: []string{http.MethodGet, http.MethodHead, http.MethodOptions}},
		Replay: ReplayConfig{
			Host:                  HostTarget,
			ReplayIDHeader:        "X-Replay-Id",
			Workers:               8,
			ConnectTimeout:        2 * time.Second,
			ResponseHeaderTimeout: 10 * time.Second,
			Timeout:               30 * time.Second,
			MaxResponseBytes:      8 << 20,
			LineageHeaderPrefix:   "X-Lineage-",
			Retry: RetryConfig{
				Attempts:   3,
				MinBackoff: 100 * time.Millisecond,
				MaxBackoff: 2 * time.Second,
				Methods:    []string{http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete},
			},
			Breaker:    BreakerConfig{Errors: 50, ProbeInterval: 5 * time.Second},
			Mode:       ModeRate,
			Pace:       1,
			Guardrails: GuardrailConfig{Window: 30 * time.Second, MinRequests: 20, Action: GuardrailStepBack},
			Ordering:   OrderingConfig{Mode: OrderingNone},
		},
		Dial:          DialConfig{Key: KeyCorrelationID, Percent: 100},
		Amplify:       AmplifyConfig{Default: 1},
		Limits:        LimitsConfig{MaxInFlight: 4096},
		LiveCompare:   LiveCompareConfig{SamplePercent: 100, MaxEndpoints: 256},
		RedactHeaders: []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie"},
		ShutdownGrace: 30 * time.Second,
		Flush:         FlushPolicy{Rows: 10000, Bytes: 64 << 20, Interval: 10 * time.Second},
	}
}

// FieldError is one configuration problem: the field path relative to
// Config (as spelled in YAML) and what is wrong with it, including the fix.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Validate returns every problem with the configuration, each a
// *FieldError naming its field; nil when the configuration is usable. It
// does not check RunID, which the caller sets after loading the file; New
// does.
func (c Config) Validate() []error {
	_, errs := c.compile()
	return errs
}

// compiled is a validated configuration in the form the runtime uses.
type compiled struct {
	selector        *selector
	rewriter        *rewriter
	target          *url.URL
	baseline        *url.URL  // nil when replay.baseline is off
	baselineRewrite *rewriter // rewriter's rules, aimed at baseline
	redactor        *redactor
	burst           int
	retryMethods    map[string]bool // upper case
	productionHosts []hostPort
	control         Control  // the initial live control
	dialKey         keyExpr  // what the sticky dial hashes
	amplifyKey      *keyExpr // nil: no amplification
	orderKey        *keyExpr // nil: no per-key ordering
}

// configField names a control API field as it is spelled in the file.
func configField(f string) string {
	switch {
	case f == "dial_percent":
		return "dial.percent"
	case f == "multiplier_default":
		return "amplify.default"
	case strings.HasPrefix(f, "multipliers."):
		return "amplify.factors." + strings.TrimPrefix(f, "multipliers.")
	default:
		return "replay." + f
	}
}

// compile validates the configuration and builds what the runtime needs,
// compiling every regular expression once.
func (c Config) compile() (*compiled, []error) {
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	out := &compiled{}
	positive := func(field string, d time.Duration) {
		if d <= 0 {
			fail(field, "must be > 0, like 5s, got %v", d)
		}
	}

	if c.Decode.MaxBodyBytes < 0 {
		fail("decode.max_body_bytes", "must be ≥ 0 (0 = no limit), got %d", c.Decode.MaxBodyBytes)
	}
	if r := c.Decode.MaxDeadLetterRatio; !(r >= 0 && r <= 1) {
		fail("decode.max_dead_letter_ratio", "must be between 0 and 1 (a share of the records read; 1 fails only a run that decoded nothing), got %v", r)
	}
	positive("decode.dead_letter_log_interval", c.Decode.DeadLetterLogInterval)
	if c.Decode.DuplicateWindow < 0 || c.Decode.DuplicateWindow > maxDuplicateWindow {
		fail("decode.duplicate_window", "must be between 0 (off) and %d correlation IDs, got %d", maxDuplicateWindow, c.Decode.DuplicateWindow)
	}

	// filter
	sel := &selector{methods: map[string]bool{}}
	if len(c.Filter.Methods) == 0 {
		fail("filter.methods", `must list at least one method, or "*" for all`)
	}
	for i, m := range c.Filter.Methods {
		switch {
		case m == "*":
			sel.allMethods = true
		case !validToken(m):
			fail(fmt.Sprintf("filter.methods[%d]", i), `%q is not an HTTP method; use a name like GET, or "*" for all`, m)
		default:
			sel.methods[strings.ToUpper(m)] = true
		}
	}
	sel.include = compileAll(c.Filter.IncludePaths, "filter.include_paths", fail)
	sel.exclude = compileAll(c.Filter.ExcludePaths, "filter.exclude_paths", fail)
	out.selector = sel

	// rewrite
	rw := &rewriter{}
	for i, r := range c.Rewrite {
		field := fmt.Sprintf("rewrite[%d]", i)
		n := 0
		if r.Path != nil {
			n++
		}
		if r.Query != nil {
			n++
		}
		if r.Header != nil {
			n++
		}
		if n != 1 {
			fail(field, "must have exactly one of path, query or header, got %d; split it into one rule per step", n)
			continue
		}
		switch {
		case r.Path != nil:
			if r.Path.Match == "" {
				fail(field+".path.match", "must not be empty; give the regex to replace")
				continue
			}
			re := compileRegex(r.Path.Match, field+".path.match", fail)
			if re != nil {
				rw.rules = append(rw.rules, pathRule{re: re, replace: r.Path.Replace})
			}
		case r.Query != nil:
			q := queryRule{remove: map[string]bool{}}
			if len(r.Query.Set) == 0 && len(r.Query.Remove) == 0 {
				fail(field+".query", "must set or remove at least one parameter")
			}
			for j, name := range r.Query.Remove {
				if name == "" {
					fail(fmt.Sprintf("%s.query.remove[%d]", field, j), "must not be empty; give a parameter name")
				}
				q.remove[name] = true
			}
			for _, k := range sortedKeys(r.Query.Set) {
				if k == "" {
					fail(field+".query.set", "has an empty parameter name")
					continue
				}
				q.set = append(q.set, [2]string{k, r.Query.Set[k]})
				q.remove[k] = true
			}
			rw.rules = append(rw.rules, q)
		case r.Header != nil:
			h := headerRule{}
			if len(r.Header.Set) == 0 && len(r.Header.Remove) == 0 {
				fail(field+".header", "must set or remove at least one header")
			}
			for j, name := range r.Header.Remove {
				if !validToken(name) {
					fail(fmt.Sprintf("%s.header.remove[%d]", field, j), "%q is not a valid header name", name)
					continue
				}
				h.remove = append(h.remove, http.CanonicalHeaderKey(name))
			}
			for _, k := range sortedKeys(r.Header.Set) {
				f := fmt.Sprintf("%s.header.set.%s", field, k)
				if !validToken(k) {
					fail(f, "%q is not a valid header name", k)
					continue
				}
				if strings.EqualFold(k, "Host") {
					fail(f, "the Host header is set by replay.host, not by a rewrite rule")
					continue
				}
				v, missing := envexpand.Expand(r.Header.Set[k])
				switch {
				case len(missing) > 0:
					fail(f, "environment variable %s is not set; export it, or remove ${%s} from the value", strings.Join(missing, ", "), missing[0])
				case strings.ContainsAny(v, "\r\n"):
					fail(f, "the value must not contain a line break (after expanding ${…})")
				default:
					h.set = append(h.set, [2]string{http.CanonicalHeaderKey(k), v})
				}
			}
			rw.rules = append(rw.rules, h)
		}
	}
	out.rewriter = rw

	// replay
	rc := c.Replay
	rw.host = rc.Host
	if rc.ReplayIDHeader != ReplayIDNone {
		rw.idHeader = http.CanonicalHeaderKey(rc.ReplayIDHeader)
	}
	if rc.Target == "" {
		fail("replay.target", "is required; must be an absolute http(s) URL like http://new-cluster:8080")
	} else if u := parseBaseURL("replay.target", rc.Target, "http://new-cluster:8080", fail); u != nil {
		out.target = u
		rw.target = u
	}
	if rc.Baseline != "" {
		u := parseBaseURL("replay.baseline", rc.Baseline, "http://old-copy:8080", fail)
		if u != nil && out.target != nil && sameBaseURL(u, out.target) {
			fail("replay.baseline", "%q is replay.target; point it at a second copy of the old version, or leave it empty", rc.Baseline)
		} else if u != nil {
			out.baseline = u
		}
	}
	switch {
	case rc.Host == "":
		fail("replay.host", `must not be empty; use "target", "original" or a host name`)
	case rc.Host != HostTarget && rc.Host != HostOriginal && strings.ContainsAny(rc.Host, " \t\r\n/?#@"):
		fail("replay.host", `must be "target", "original" or a host[:port] to send literally, got %q`, rc.Host)
	}
	if rc.ReplayIDHeader == "" {
		fail("replay.replay_id_header", `must not be empty; give a header name or "none" to disable`)
	} else if rc.ReplayIDHeader != ReplayIDNone && !validToken(rc.ReplayIDHeader) {
		fail("replay.replay_id_header", `%q is not a valid header name; use a name like X-Replay-Id or "none"`, rc.ReplayIDHeader)
	}
	if rc.Workers < 1 {
		fail("replay.workers", "must be ≥ 1, got %d", rc.Workers)
	}
	switch {
	case rc.Burst < 0:
		fail("replay.burst", "must be ≥ 0 (0 = one per worker), got %d", rc.Burst)
		out.burst = max(1, rc.Workers)
	case rc.Burst == 0:
		out.burst = max(1, rc.Workers)
	default:
		out.burst = rc.Burst
	}
	out.control = Control{
		Mode: rc.Mode, Rate: rc.Rate, Burst: out.burst, Pace: rc.Pace, Ramp: rc.Ramp,
		DialPercent: c.Dial.Percent, Multipliers: c.Amplify.Factors, MultiplierDefault: c.Amplify.Default,
	}
	for _, err := range validateControl(out.control) {
		var fe *FieldError
		if errors.As(err, &fe) {
			errs = append(errs, &FieldError{Field: configField(fe.Field), Problem: fe.Problem})
		}
	}
	g := rc.Guardrails
	if g.MaxErrorRate < 0 || g.MaxErrorRate > 1 || math.IsNaN(g.MaxErrorRate) {
		fail("replay.guardrails.max_error_rate", "must be a share from 0 to 1 (0 = no limit), got %v", g.MaxErrorRate)
	}
	if g.MaxP99 < 0 {
		fail("replay.guardrails.max_p99", "must be ≥ 0 (0 = no limit), got %v", g.MaxP99)
	}
	positive("replay.guardrails.window", g.Window)
	if g.MinRequests < 1 {
		fail("replay.guardrails.min_requests", "must be ≥ 1, got %d", g.MinRequests)
	}
	if g.Action != GuardrailStepBack && g.Action != GuardrailPause {
		fail("replay.guardrails.action", "must be step_back or pause, got %q", g.Action)
	}
	if g.Cooldown < 0 {
		fail("replay.guardrails.cooldown", "must be ≥ 0 (0 = wait for an operator), got %v", g.Cooldown)
	}
	switch rc.Ordering.Mode {
	case OrderingNone:
	case OrderingKey:
		k, err := parseKeyExpr(rc.Ordering.Key)
		if err != nil {
			fail("replay.ordering.key", "%v", err)
		} else {
			out.orderKey = &k
		}
	default:
		fail("replay.ordering.mode", "must be none or key, got %q", rc.Ordering.Mode)
	}
	if k, err := parseKeyExpr(c.Dial.Key); err != nil {
		fail("dial.key", "%v", err)
	} else {
		out.dialKey = k
	}
	if c.Amplify.Key != "" {
		k, err := parseKeyExpr(c.Amplify.Key)
		if err != nil {
			fail("amplify.key", "%v", err)
		} else {
			out.amplifyKey = &k
		}
	}
	positive("replay.connect_timeout", rc.ConnectTimeout)
	positive("replay.response_header_timeout", rc.ResponseHeaderTimeout)
	positive("replay.timeout", rc.Timeout)
	if rc.MaxResponseBytes < 1 {
		fail("replay.max_response_bytes", "must be ≥ 1, got %d", rc.MaxResponseBytes)
	}
	if rc.LineageHeaderPrefix != "" && !validToken(rc.LineageHeaderPrefix) {
		fail("replay.lineage_header_prefix", "%q is not a valid header name prefix", rc.LineageHeaderPrefix)
	}
	rt := rc.Retry
	if rt.Attempts < 1 {
		fail("replay.retry.attempts", "must be ≥ 1 (1 = no retry), got %d", rt.Attempts)
	}
	positive("replay.retry.min_backoff", rt.MinBackoff)
	if rt.MaxBackoff < rt.MinBackoff {
		fail("replay.retry.max_backoff", "must be ≥ replay.retry.min_backoff (%v), got %v", rt.MinBackoff, rt.MaxBackoff)
	}
	out.retryMethods = map[string]bool{}
	for i, m := range rt.Methods {
		if !validToken(m) {
			fail(fmt.Sprintf("replay.retry.methods[%d]", i), "%q is not an HTTP method; use a name like GET", m)
			continue
		}
		out.retryMethods[strings.ToUpper(m)] = true
	}
	if rc.Breaker.Errors < 0 {
		fail("replay.breaker.errors", "must be ≥ 0 (0 = no breaker), got %d", rc.Breaker.Errors)
	}
	if rc.Breaker.Errors > 0 {
		positive("replay.breaker.probe_interval", rc.Breaker.ProbeInterval)
	}
	for i, h := range rc.ProductionHosts {
		hp, err := parseHostPort(h)
		if err != nil {
			fail(fmt.Sprintf("replay.production_hosts[%d]", i), "%v", err)
			continue
		}
		out.productionHosts = append(out.productionHosts, hp)
	}

	if c.Limits.MaxInFlight < 1 {
		fail("limits.max_in_flight", "must be ≥ 1, got %d", c.Limits.MaxInFlight)
	}
	c.LiveCompare.validate(fail)

	out.redactor = &redactor{headerNames: map[string]bool{}}
	for i, name := range c.RedactHeaders {
		if !validToken(name) {
			fail(fmt.Sprintf("redact_headers[%d]", i), "%q is not a valid header name", name)
			continue
		}
		out.redactor.headerNames[http.CanonicalHeaderKey(name)] = true
	}
	for i, expr := range c.RedactBodyPaths {
		x, err := compileBodyPath(expr)
		if err != nil {
			fail(fmt.Sprintf("redact_body_paths[%d]", i), "%v", err)
			continue
		}
		out.redactor.bodyPaths = append(out.redactor.bodyPaths, x)
	}
	positive("shutdown_grace", c.ShutdownGrace)
	if out.baseline != nil {
		b := *rw // the same rules, id header and Host policy
		b.target = out.baseline
		out.baselineRewrite = &b
	}

	if c.Flush.Rows < 0 {
		fail("flush.rows", "must be ≥ 0, got %d", c.Flush.Rows)
	}
	if c.Flush.Bytes < 0 {
		fail("flush.bytes", "must be ≥ 0, got %d", c.Flush.Bytes)
	}
	if c.Flush.Interval < 0 {
		fail("flush.interval", "must be ≥ 0, got %v", c.Flush.Interval)
	}
	if c.Flush.Rows <= 0 && c.Flush.Bytes <= 0 && c.Flush.Interval <= 0 {
		fail("flush", "set at least one of rows, bytes or interval, or rows are only flushed at shutdown")
	}
	return out, errs
}

// parseBaseURL parses the base URL of a replay target (replay.target,
// replay.baseline): absolute http(s), a host, an optional path prefix,
// nothing else. It reports a problem with field and returns nil.
func parseBaseURL(field, raw, example string, fail func(field, format string, args ...any)) *url.URL {
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "":
		fail(field, "must be an absolute http(s) URL like %s, got %q", example, raw)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		fail(field, "must not carry a query, fragment or user info (use rewrite rules and header rules), got %q", raw)
	default:
		return u
	}
	return nil
}

// sameBaseURL reports whether two target base URLs send requests to the
// same place: scheme, host, port (explicit or implied) and path prefix.
func sameBaseURL(a, b *url.URL) bool {
	ha, hb := targetHostPort(a), targetHostPort(b)
	return strings.EqualFold(a.Scheme, b.Scheme) && ha.host == hb.host && ha.port == hb.port &&
		strings.TrimSuffix(a.EscapedPath(), "/") == strings.TrimSuffix(b.EscapedPath(), "/")
}

func compileAll(exprs []string, field string, fail func(field, format string, args ...any)) []*regexp.Regexp {
	var res []*regexp.Regexp
	for i, e := range exprs {
		if re := compileRegex(e, fmt.Sprintf("%s[%d]", field, i), fail); re != nil {
			res = append(res, re)
		}
	}
	return res
}

func compileRegex(expr, field string, fail func(field, format string, args ...any)) *regexp.Regexp {
	re, err := regexp.Compile(expr)
	if err != nil {
		var se *syntax.Error
		if errors.As(err, &se) {
			fail(field, "invalid regex %q: %s", expr, se.Code)
		} else {
			fail(field, "invalid regex %q: %v", expr, err)
		}
		return nil
	}
	return re
}

// validToken reports whether s is an RFC 9110 token: a valid method or
// header name.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
