package normalize

import (
	"math"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func ptr[T any](v T) *T { return &v }

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // each a prefix of one line of the error, in order
	}{
		{"route without slash", Config{Routes: []string{"GET v1/titles"}}, []string{`routes[0]: "GET v1/titles": the path must start with /`}},
		{"route bad method", Config{Routes: []string{"/ok", "G3T /x"}}, []string{`routes[1]: "G3T /x": invalid method "G3T"`}},
		{"route partial param", Config{Routes: []string{"/v1/titles/id{id}"}}, []string{`routes[0]: "/v1/titles/id{id}": a parameter must be a whole segment`}},
		{"route empty", Config{Routes: []string{" "}}, []string{`routes[0]: required`}},
		{"route query", Config{Routes: []string{"/v1/search?q=1"}}, []string{`routes[0]: "/v1/search?q=1": the path must hold no query`}},
		{"ignore path syntax", Config{Rules: Rules{IgnorePaths: []string{"$.items[", "$.ok"}}}, []string{`ignore_paths[0]: invalid JSONPath "$.items[":`}},
		{"ignore path root", Config{Rules: Rules{IgnorePaths: []string{"$"}}}, []string{`ignore_paths[0]: cannot ignore the whole body`}},
		{"ignore path no root", Config{Rules: Rules{IgnorePaths: []string{"items"}}}, []string{`ignore_paths[0]: invalid JSONPath "items": must start with $`}},
		{"ignore path trailing descent", Config{Rules: Rules{IgnorePaths: []string{"$.a.."}}}, []string{`ignore_paths[0]: invalid JSONPath "$.a..": ends with ..`}},
		{"ignore path empty", Config{Rules: Rules{IgnorePaths: []string{""}}}, []string{`ignore_paths[0]: required`}},
		{"headers empty", Config{Rules: Rules{IgnoreHeaders: []string{""}, CompareHeaders: []string{"ETag", " "}}}, []string{
			`ignore_headers[0]: empty header name`,
			`compare_headers[1]: empty header name`,
		}},
		{"sort path", Config{Rules: Rules{SortArrays: []SortRule{{Path: "$.ok"}, {By: "id"}}}}, []string{`sort_arrays[1].path: required`}},
		{"endpoint sort path", Config{Endpoints: []EndpointRules{
			{Match: "GET /v1/titles/{id}"},
			{Match: "GET /v1/titles", Rules: Rules{SortArrays: []SortRule{{Path: "$[?(@.x ==)]"}}}},
		}}, []string{`endpoints[1].sort_arrays[0].path: invalid JSONPath "$[?(@.x ==)]":`}},
		{"transform none", Config{Rules: Rules{Transforms: []Transform{{}, {}, {Side: "replay"}}}}, []string{
			`transforms[0]: set exactly one of rename, move, kv_to_object, map_values`,
			`transforms[1]: set exactly one of rename, move, kv_to_object, map_values`,
			`transforms[2]: set exactly one of rename, move, kv_to_object, map_values`,
		}},
		{"transform two", Config{Rules: Rules{Transforms: []Transform{{
			Rename: &RenameTransform{Path: "$.a", To: "b"},
			Move:   &MoveTransform{From: "$.a", To: "$.b"},
		}}}}, []string{`transforms[0]: set exactly one of rename, move, kv_to_object, map_values`}},
		{"transform side", Config{Rules: Rules{Transforms: []Transform{{Side: "new", Rename: &RenameTransform{Path: "$.a", To: "b"}}}}}, []string{
			`transforms[0].side: unknown side "new"; use production or replay`,
		}},
		{"rename", Config{Rules: Rules{Transforms: []Transform{
			{Rename: &RenameTransform{Path: "$.items[0]", To: "x"}},
			{Rename: &RenameTransform{Path: "$.a"}},
		}}}, []string{
			`transforms[0].rename.path: "$.items[0]" must end with a member name`,
			`transforms[1].rename.to: required`,
		}},
		{"move", Config{Rules: Rules{Transforms: []Transform{
			{Move: &MoveTransform{From: "$.a", To: "$..b"}},
			{Move: &MoveTransform{From: "$.a[*].x", To: "$.b[*].x"}},
			{Move: &MoveTransform{From: "$", To: "$.b"}},
			{Move: &MoveTransform{From: "$.a", To: "$"}},
			{Move: &MoveTransform{From: "$.a"}},
		}}}, []string{
			`transforms[0].move.to: "$..b" must be a plain path`,
			`transforms[1].move.to: "$.b[*].x" uses [*], so it must start like from`,
			`transforms[2].move.from: cannot move the whole body`,
			`transforms[3].move.to: cannot replace the whole body`,
			`transforms[4].move.to: required`,
		}},
		{"kv_to_object", Config{Rules: Rules{Transforms: []Transform{{KVToObject: &KVToObjectTransform{Path: "$.attrs"}}}}}, []string{
			`transforms[0].kv_to_object.key: required`,
			`transforms[0].kv_to_object.value: required`,
		}},
		{"map_values", Config{Rules: Rules{Transforms: []Transform{
			{MapValues: &MapValuesTransform{Path: "$.state"}},
			{MapValues: &MapValuesTransform{Path: "$.state", Values: map[string]any{"A": struct{}{}}}},
			{MapValues: &MapValuesTransform{Path: "$.state", Values: map[string]any{"B": []any{math.NaN()}}}},
		}}}, []string{
			`transforms[0].map_values.values: required`,
			`transforms[1].map_values.values["A"]: a struct {} is not a JSON value`,
			`transforms[2].map_values.values["B"]: NaN is not a JSON number`,
		}},
		{"tolerances", Config{Rules: Rules{Tolerances: []Tolerance{
			{Path: "$.price"},
			{Path: "$.price", Absolute: -1},
			{Path: "$.price", Relative: -0.1},
			{Absolute: 1},
		}}}, []string{
			`tolerances[0]: set absolute or relative (or both) above 0`,
			`tolerances[1].absolute: must not be negative`,
			`tolerances[2].relative: must not be negative`,
			`tolerances[3].path: required`,
		}},
		{"body", Config{Rules: Rules{Body: "xml"}}, []string{`body: unknown mode "xml"; use auto, json, text or bytes`}},
		{"endpoint match never named", Config{Routes: []string{"GET /v1/users/{user}"}, Endpoints: []EndpointRules{
			{Match: "GET /v1/titles/{titleId}"},
			{Match: "GET /v1/titles/42"},
			{Match: "/v1/users/{user}"},
			{Match: "GET /v1/titles/{id}/"},
			{Match: "POST /v1/users/{user}"},
		}}, []string{
			`endpoints[0].match: "GET /v1/titles/{titleId}" is no endpoint name`,
			`endpoints[1].match: "GET /v1/titles/42" is no endpoint name`,
			`endpoints[4].match: "POST /v1/users/{user}" is no endpoint name`, // the route is GET only
		}},
		{"endpoint match", Config{Endpoints: []EndpointRules{
			{Match: ""},
			{Match: "titles"},
			{Match: "/ok", Rules: Rules{Body: "binary", IgnorePaths: []string{"$."}}},
		}}, []string{
			`endpoints[0].match: required`,
			`endpoints[1].match: "titles": the path must start with /`,
			`endpoints[2].ignore_paths[0]: invalid JSONPath "$.":`,
			`endpoints[2].body: unknown mode "binary"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Compile(tt.cfg)
			if err == nil {
				t.Fatalf("Compile succeeded (%v), want errors %q", n, tt.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, want := range tt.want {
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("error %d:\n got  %s\n want %s…", i, lines[i], want)
				}
			}
		})
	}
}

func TestCompileValid(t *testing.T) {
	const src = `
routes: ["GET /v1/titles/{id}", "/v1/users/{user}/recommendations"]
ignore_paths: [$.generatedAt, "$.items[*].requestId", $..traceId]
ignore_headers: [Date]
compare_headers: ["*"]
sort_arrays:
  - {path: $.genres}
  - {path: "$.cast", by: id}
transforms:
  - rename: {path: $.rating, to: score}
  - side: replay
    move: {from: $.a.b, to: $.c}
  - kv_to_object: {path: $.attrs, key: name, value: value}
  - map_values: {path: $.state, values: {ACTIVE: active, 1: one, "true": yes, nested: {a: [1, 2.5]}}}
tolerances:
  - {path: $.price, absolute: 0.01}
  - {path: $..score, relative: 0.001}
status_only: false
body: auto
endpoints:
  - match: GET /v1/titles/{id}
    status_only: true
  - match: /v1/users/{user}/recommendations
    body: json
    sort_arrays: [{path: "$.items", by: id}]
`
	var cfg Config
	d := yaml.NewDecoder(strings.NewReader(src))
	d.KnownFields(true)
	if err := d.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.IgnorePaths) != 3 || len(cfg.Endpoints) != 2 || cfg.Endpoints[0].StatusOnly == nil || !*cfg.Endpoints[0].StatusOnly {
		t.Fatalf("YAML did not decode as expected: %+v", cfg)
	}
	n, err := Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rs := n.rulesFor("GET /v1/titles/{id}"); !rs.statusOnly {
		t.Error("endpoint status_only did not override the global value")
	}
	if rs := n.rulesFor("POST /v1/titles/{id}"); rs.statusOnly || rs != n.global {
		t.Error("a method-specific match applied to another method")
	}
	rs := n.rulesFor("DELETE /v1/users/{user}/recommendations")
	if rs.body != bodyJSON || len(rs.sorts) != 3 || len(rs.ignore) != 3 {
		t.Errorf("method-less match: body %q, %d sorts, %d ignores; want json, 3, 3", rs.body, len(rs.sorts), len(rs.ignore))
	}
	if rs2 := n.rulesFor("DELETE /v1/users/{user}/recommendations"); rs2 != rs {
		t.Error("merged rules are not cached")
	}
}

func TestCompileZero(t *testing.T) {
	n, err := Compile(Config{})
	if err != nil {
		t.Fatal(err)
	}
	res := n.Compare("GET", "/", Side{Status: 200, Body: []byte(`{"a":1}`)}, Side{Status: 200, Body: []byte(`{ "a" : 1.0 }`)})
	if !res.Equal {
		t.Errorf("zero config: %+v", res)
	}
	if rs := n.rulesFor("GET /"); rs.statusOnly || rs.body != bodyAuto || len(rs.headers.names) != 1 || rs.headers.names[0] != "Content-Type" {
		t.Errorf("zero config defaults: %+v", rs)
	}
	// Statuses false and true both override.
	n, err = Compile(Config{
		Rules:     Rules{StatusOnly: ptr(true)},
		Endpoints: []EndpointRules{{Match: "/a", Rules: Rules{StatusOnly: ptr(false)}}, {Match: "/b", Rules: Rules{}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n.rulesFor("GET /a").statusOnly || !n.rulesFor("GET /b").statusOnly {
		t.Error("status_only override")
	}
}
