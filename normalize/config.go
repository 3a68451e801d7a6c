package normalize

import (
	"errors"
	"fmt"
	"net/textproto"
	"strings"
	"sync"

	"github.com/ohler55/ojg/jp"
)

// Config holds every normalization rule of one comparison. The zero value is
// valid: endpoints are templated automatically, bodies compared as JSON when
// both parse, Content-Type is the only header compared.
type Config struct {
	// Routes name endpoints explicitly: "GET /v1/titles/{id}" or
	// "/v1/users/{user}/recommendations" (any method). Checked in order
	// before automatic templating.
	Routes    []string         `yaml:"routes"`
	Rules     `yaml:",inline"` // global rules
	Endpoints []EndpointRules  `yaml:"endpoints"` // per-endpoint rules, added to the global ones
}

// EndpointRules are rules for one endpoint. Lists add to the global lists
// (global entries first); StatusOnly and Body, when set, override the global
// value. Several entries may match the same endpoint; they apply in order.
type EndpointRules struct {
	// Match is an endpoint name as Endpoint returns it, e.g.
	// "GET /v1/titles/{id}"; without a method ("/v1/titles/{id}") it
	// matches every method.
	Match string `yaml:"match"`
	Rules `yaml:",inline"`
}

// Rules are the normalization rules of one scope. Every path is a JSONPath
// (as ojg's jp parses it) starting at "$".
type Rules struct {
	// IgnorePaths are deleted on both sides before comparing:
	// $.generatedAt, $.items[*].requestId, $..traceId. A deleted array
	// element shortens the array.
	IgnorePaths []string `yaml:"ignore_paths"`
	// IgnoreHeaders are never compared, even when CompareHeaders is "*".
	IgnoreHeaders []string `yaml:"ignore_headers"`
	// CompareHeaders are the headers compared; default [Content-Type]; "*"
	// means every header present on either side. IgnoreHeaders subtracts.
	CompareHeaders []string `yaml:"compare_headers"`
	// SortArrays sorts arrays (after ignore paths) so order does not count.
	SortArrays []SortRule `yaml:"sort_arrays"`
	// Transforms rewrite one side to express an intended change. They run
	// first, in order.
	Transforms []Transform `yaml:"transforms"`
	// Tolerances let numbers differ a little.
	Tolerances []Tolerance `yaml:"tolerances"`
	// StatusOnly compares the status only (a pointer so an endpoint can
	// override the global value either way).
	StatusOnly *bool `yaml:"status_only"`
	// Body is how bodies are compared: auto (default: JSON when both
	// parse, else text if both are valid UTF-8, else bytes) | json | text
	// | bytes.
	Body string `yaml:"body"`
}

// SortRule sorts the arrays at Path.
type SortRule struct {
	Path string `yaml:"path"`
	// By is "" or "value" to order elements by value (numbers numerically,
	// strings by bytes, anything else by canonical JSON), or the name of a
	// key field of object elements (elements without it go last; ties are
	// broken by the whole element, so the result never depends on the
	// input order).
	By string `yaml:"by"`
}

// Transform rewrites one side. Exactly one operation is set.
type Transform struct {
	// Side is the side rewritten: production (default) | replay.
	Side string `yaml:"side"`
	// Rename renames the member at path: {path: $.rating, to: score}.
	Rename *RenameTransform `yaml:"rename"`
	// Move moves a value: {from: $.a.b, to: $.c}.
	Move *MoveTransform `yaml:"move"`
	// KVToObject turns [{"name":k,"value":v},…] into {k: v}.
	KVToObject *KVToObjectTransform `yaml:"kv_to_object"`
	// MapValues replaces values: {path: $.state, values: {ACTIVE: active}}.
	MapValues *MapValuesTransform `yaml:"map_values"`
}

// RenameTransform renames the object member Path points at (its last step
// must be a member name) to To. An existing member To is overwritten.
type RenameTransform struct {
	Path string `yaml:"path"`
	To   string `yaml:"to"`
}

// MoveTransform moves the value at From to To, creating missing objects on
// the way. To is a plain path; it may use [*] where From has [*] at the same
// step, e.g. from $.items[*].meta.id to $.items[*].id.
type MoveTransform struct {
	From string `yaml:"from"`
	To   string `yaml:"to"`
}

// KVToObjectTransform turns the array at Path, whose elements are objects
// holding a key member and a value member, into one object. An array with
// any other element is left as it is.
type KVToObjectTransform struct {
	Path  string `yaml:"path"`
	Key   string `yaml:"key"`
	Value string `yaml:"value"`
}

// MapValuesTransform replaces each value at Path found in Values. A string
// is looked up as it is; a number, boolean or null by its canonical JSON
// text ("1", "true", "null").
type MapValuesTransform struct {
	Path   string         `yaml:"path"`
	Values map[string]any `yaml:"values"`
}

// Tolerance makes numbers at Path equal when they differ by at most
// Absolute, or by at most Relative times the larger magnitude. The replay
// value within tolerance is replaced by the production value in the
// normalized replay body, so bodies, paths and patch agree.
type Tolerance struct {
	Path     string  `yaml:"path"`
	Absolute float64 `yaml:"absolute"`
	Relative float64 `yaml:"relative"`
}

// Normalizer applies compiled rules. It is immutable after Compile apart
// from an internal cache and safe for concurrent use.
type Normalizer struct {
	routes    []route
	base      compiledRules // the global rules, merged with matching endpoint entries
	global    *ruleSet      // the global rules alone
	endpoints []endpointEntry
	merged    sync.Map // endpoint name → *ruleSet, for names matching an endpoints entry
}

type endpointEntry struct {
	method string // "" matches every method
	path   string
	rules  compiledRules
}

// Body comparison modes.
const (
	bodyAuto  = "auto"
	bodyJSON  = "json"
	bodyText  = "text"
	bodyBytes = "bytes"
)

// Transform sides.
const (
	sideProduction = "production"
	sideReplay     = "replay"
)

// Compile validates cfg and builds a Normalizer. The error lists every
// problem, one per line, each starting with its field path, e.g.
// "endpoints[1].sort_arrays[0].path: invalid JSONPath ...".
func Compile(cfg Config) (*Normalizer, error) {
	var c compiler
	n := &Normalizer{}
	for i, r := range cfg.Routes {
		rt, err := parseRoute(r)
		if err != nil {
			c.errorf("routes[%d]: %v", i, err)
			continue
		}
		n.routes = append(n.routes, rt)
	}
	global := c.rules("", cfg.Rules)
	for i, e := range cfg.Endpoints {
		prefix := fmt.Sprintf("endpoints[%d].", i)
		method, path, err := parseMatch(e.Match)
		if err != nil {
			c.errorf("%smatch: %v", prefix, err)
		} else if !n.nameable(method, path) {
			c.errorf("%smatch: %q is no endpoint name: automatic names turn ids into {id} and keep other segments; add the template to routes", prefix, e.Match)
		}
		n.endpoints = append(n.endpoints, endpointEntry{method: method, path: path, rules: c.rules(prefix, e.Rules)})
	}
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	n.base = global
	n.global = merge(global)
	return n, nil
}

// nameable reports whether Endpoint can return the name method+path: a
// configured route has that template, or automatic templating keeps the
// path as it is and its only parameter is {id}.
func (n *Normalizer) nameable(method, path string) bool {
	for _, r := range n.routes {
		if r.template == path && (r.method == "" || method == "" || r.method == method) {
			return true
		}
	}
	if templatePath(path) != path {
		return false
	}
	for seg := range strings.SplitSeq(path, "/") {
		if strings.HasPrefix(seg, "{") && seg != "{id}" {
			return false
		}
	}
	return true
}

type compiler struct {
	errs []error
}

func (c *compiler) errorf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf(format, args...))
}

// compiledRules is one scope's rules, compiled but not yet merged.
type compiledRules struct {
	ignore         []jsonPath
	ignoreHeaders  []string
	compareHeaders []string
	sorts          []sortRule
	transforms     []transformer
	tolerances     []tolerance
	statusOnly     *bool
	body           string
}

func (c *compiler) rules(prefix string, r Rules) compiledRules {
	var out compiledRules
	for i, p := range r.IgnorePaths {
		field := fmt.Sprintf("%signore_paths[%d]", prefix, i)
		if x, ok := c.path(field, p); ok {
			if len(x) == 1 {
				c.errorf("%s: cannot ignore the whole body %q; use body: or status_only", field, p)
				continue
			}
			out.ignore = append(out.ignore, newJSONPath(x))
		}
	}
	for i, h := range r.IgnoreHeaders {
		if h = strings.TrimSpace(h); h == "" {
			c.errorf("%signore_headers[%d]: empty header name", prefix, i)
			continue
		}
		out.ignoreHeaders = append(out.ignoreHeaders, textproto.CanonicalMIMEHeaderKey(h))
	}
	for i, h := range r.CompareHeaders {
		if h = strings.TrimSpace(h); h == "" {
			c.errorf("%scompare_headers[%d]: empty header name", prefix, i)
			continue
		}
		if h != "*" {
			h = textproto.CanonicalMIMEHeaderKey(h)
		}
		out.compareHeaders = append(out.compareHeaders, h)
	}
	for i, s := range r.SortArrays {
		field := fmt.Sprintf("%ssort_arrays[%d]", prefix, i)
		if x, ok := c.path(field+".path", s.Path); ok {
			sr := sortRule{path: newJSONPath(x)}
			if s.By != "value" {
				sr.by = s.By
			}
			out.sorts = append(out.sorts, sr)
		}
	}
	for i, t := range r.Transforms {
		if tr, ok := c.transform(fmt.Sprintf("%stransforms[%d]", prefix, i), t); ok {
			out.transforms = append(out.transforms, tr)
		}
	}
	for i, t := range r.Tolerances {
		field := fmt.Sprintf("%stolerances[%d]", prefix, i)
		x, ok := c.path(field+".path", t.Path)
		switch {
		case t.Absolute < 0:
			c.errorf("%s.absolute: must not be negative, got %v", field, t.Absolute)
			ok = false
		case t.Relative < 0:
			c.errorf("%s.relative: must not be negative, got %v", field, t.Relative)
			ok = false
		case t.Absolute == 0 && t.Relative == 0:
			c.errorf("%s: set absolute or relative (or both) above 0", field)
			ok = false
		}
		if ok {
			out.tolerances = append(out.tolerances, tolerance{path: newJSONPath(x), abs: t.Absolute, rel: t.Relative})
		}
	}
	out.statusOnly = r.StatusOnly
	switch b := strings.ToLower(strings.TrimSpace(r.Body)); b {
	case "", bodyAuto, bodyJSON, bodyText, bodyBytes:
		out.body = b
	default:
		c.errorf("%sbody: unknown mode %q; use auto, json, text or bytes", prefix, r.Body)
	}
	return out
}

// path parses a JSONPath that must start at the root.
func (c *compiler) path(field, p string) (jp.Expr, bool) {
	if strings.TrimSpace(p) == "" {
		c.errorf("%s: required", field)
		return nil, false
	}
	x, err := jp.ParseString(p)
	if err != nil {
		c.errorf("%s: invalid JSONPath %q: %v", field, p, err)
		return nil, false
	}
	if len(x) == 0 {
		c.errorf("%s: invalid JSONPath %q: empty", field, p)
		return nil, false
	}
	if _, ok := x[0].(jp.Root); !ok {
		c.errorf("%s: invalid JSONPath %q: must start with $", field, p)
		return nil, false
	}
	if _, ok := x[len(x)-1].(jp.Descent); ok {
		c.errorf("%s: invalid JSONPath %q: ends with .. (say what to find below it, e.g. $..id)", field, p)
		return nil, false
	}
	return x, true
}

func (c *compiler) transform(field string, t Transform) (transformer, bool) {
	var replay bool
	switch strings.ToLower(strings.TrimSpace(t.Side)) {
	case "", sideProduction:
	case sideReplay:
		replay = true
	default:
		c.errorf("%s.side: unknown side %q; use production or replay", field, t.Side)
	}
	set := 0
	for _, op := range []bool{t.Rename != nil, t.Move != nil, t.KVToObject != nil, t.MapValues != nil} {
		if op {
			set++
		}
	}
	if set != 1 {
		c.errorf("%s: set exactly one of rename, move, kv_to_object, map_values", field)
		return nil, false
	}
	before := len(c.errs)
	var tr transformer
	switch {
	case t.Rename != nil:
		f := field + ".rename"
		x, _ := c.path(f+".path", t.Rename.Path)
		if x != nil {
			if _, ok := x[len(x)-1].(jp.Child); !ok {
				c.errorf("%s.path: %q must end with a member name, e.g. $.items[*].rating", f, t.Rename.Path)
			}
		}
		if t.Rename.To == "" {
			c.errorf("%s.to: required", f)
		}
		if x != nil {
			tr = &renameTransform{path: newJSONPath(x), to: t.Rename.To}
		}
	case t.Move != nil:
		f := field + ".move"
		from, _ := c.path(f+".from", t.Move.From)
		to, _ := c.path(f+".to", t.Move.To)
		if len(from) == 1 {
			c.errorf("%s.from: cannot move the whole body", f)
			from = nil
		}
		if from != nil && to != nil {
			mt := &moveTransform{from: newJSONPath(from), to: to}
			if err := mt.check(); err != nil {
				c.errorf("%s.to: %v", f, err)
			}
			tr = mt
		}
	case t.KVToObject != nil:
		f := field + ".kv_to_object"
		x, _ := c.path(f+".path", t.KVToObject.Path)
		if t.KVToObject.Key == "" {
			c.errorf("%s.key: required (the member holding the name)", f)
		}
		if t.KVToObject.Value == "" {
			c.errorf("%s.value: required (the member holding the value)", f)
		}
		if x != nil {
			tr = &kvToObjectTransform{path: newJSONPath(x), key: t.KVToObject.Key, value: t.KVToObject.Value}
		}
	case t.MapValues != nil:
		f := field + ".map_values"
		x, _ := c.path(f+".path", t.MapValues.Path)
		if len(t.MapValues.Values) == 0 {
			c.errorf("%s.values: required", f)
		}
		values := make(map[string]any, len(t.MapValues.Values))
		for k, v := range t.MapValues.Values {
			jv, err := toJSONValue(v)
			if err != nil {
				c.errorf("%s.values[%q]: %v", f, k, err)
				continue
			}
			values[k] = jv
		}
		if x != nil {
			tr = &mapValuesTransform{path: newJSONPath(x), values: values}
		}
	}
	if len(c.errs) > before {
		return nil, false
	}
	if replay {
		return onReplay{tr}, true
	}
	return tr, true
}

// merge builds the rule set of one endpoint from the global rules and the
// endpoint entries matching it, in order.
func merge(scopes ...compiledRules) *ruleSet {
	rs := &ruleSet{body: bodyAuto}
	var compare, ignore []string
	for _, s := range scopes {
		rs.ignore = append(rs.ignore, s.ignore...)
		rs.sorts = append(rs.sorts, s.sorts...)
		rs.tolerances = append(rs.tolerances, s.tolerances...)
		for _, t := range s.transforms {
			if r, ok := t.(onReplay); ok {
				rs.replayTransforms = append(rs.replayTransforms, r.transformer)
			} else {
				rs.productionTransforms = append(rs.productionTransforms, t)
			}
		}
		compare = append(compare, s.compareHeaders...)
		ignore = append(ignore, s.ignoreHeaders...)
		if s.statusOnly != nil {
			rs.statusOnly = *s.statusOnly
		}
		if s.body != "" {
			rs.body = s.body
		}
	}
	if len(compare) == 0 {
		compare = []string{"Content-Type"}
	}
	rs.headers = newHeaderRule(compare, ignore)
	return rs
}

// rulesFor returns the rule set for an endpoint name.
func (n *Normalizer) rulesFor(endpoint string) *ruleSet {
	if len(n.endpoints) == 0 {
		return n.global
	}
	if rs, ok := n.merged.Load(endpoint); ok {
		return rs.(*ruleSet)
	}
	method, path := "", endpoint // a name without a method starts with "/"
	if !strings.HasPrefix(endpoint, "/") {
		method, path, _ = strings.Cut(endpoint, " ")
	}
	var scopes []compiledRules
	for _, e := range n.endpoints {
		if e.path == path && (e.method == "" || e.method == method) {
			scopes = append(scopes, e.rules)
		}
	}
	if len(scopes) == 0 {
		// Not cached: names of unmatched endpoints are unbounded.
		return n.global
	}
	rs := merge(append([]compiledRules{n.base}, scopes...)...)
	got, _ := n.merged.LoadOrStore(endpoint, rs)
	return got.(*ruleSet)
}
