package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/replaykit/replay/internal/suggest"
)

// This file checks a YAML document against the Config struct before it is
// decoded, so that every problem is reported with its YAML path (not a Go
// type name), its line, and the fix: the nearest known field for a
// misspelled one, the expected kind and range for a bad value.

// problem is one thing wrong with a YAML document.
type problem struct {
	path string // YAML path, e.g. source.kafka.brokers or rewrite[0].path.match
	line int    // 0 when the document was built from --set or the environment
	msg  string
}

func (p problem) String() string {
	if p.line > 0 {
		return fmt.Sprintf("line %d: %s: %s", p.line, p.path, p.msg)
	}
	return p.path + ": " + p.msg
}

var durationType = reflect.TypeOf(time.Duration(0))

// checkDocument walks the YAML node tree of a configuration document
// against the type of Config and returns every problem found: unknown
// fields (with the nearest known one), values of the wrong kind and numbers
// out of range. A document it accepts decodes without error.
func checkDocument(doc *yaml.Node) []problem {
	var out []problem
	n := doc
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	checkNode(n, reflect.TypeOf(Config{}), "", &out)
	return out
}

// join appends the key name to the path prefix; an empty key is written
// "" so the problem still names it.
func join(prefix, name string) string {
	if name == "" {
		name = `""`
	}
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

func checkNode(n *yaml.Node, t reflect.Type, path string, out *[]problem) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if isNull(n) {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct && t != reflect.TypeOf(time.Time{}):
		if n.Kind != yaml.MappingNode {
			*out = append(*out, problem{path: orTop(path), line: n.Line,
				msg: fmt.Sprintf("want a mapping of fields (%s), got %s", strings.Join(fieldNames(t), ", "), describe(n))})
			return
		}
		fields := structFields(t)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if line, dup := seen[k.Value]; dup && k.ShortTag() != "!!merge" {
				*out = append(*out, problem{path: join(path, k.Value), line: k.Line,
					msg: fmt.Sprintf("given twice (first at line %d); keep one", line)})
				continue
			}
			seen[k.Value] = k.Line
			if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
				checkMerge(v, t, path, out)
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				*out = append(*out, problem{path: join(path, k.Value), line: k.Line, msg: unknownField(k.Value, path, fieldNames(t))})
				continue
			}
			checkNode(v, ft, join(path, k.Value), out)
		}
	case t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Uint8 && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			checkNode(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), out)
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				*out = append(*out, problem{path: path, line: k.Line, msg: "keys must be plain values, got " + describe(k)})
				continue
			}
			checkNode(v, t.Elem(), join(path, k.Value), out)
		}
	default:
		if p, ok := checkLeaf(n, t); !ok {
			*out = append(*out, problem{path: orTop(path), line: n.Line, msg: p})
		}
	}
}

// checkMerge checks the value of a YAML merge key (<<: *defaults) as fields
// of the mapping it is merged into.
func checkMerge(v *yaml.Node, t reflect.Type, path string, out *[]problem) {
	for v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	if v.Kind == yaml.SequenceNode {
		for _, m := range v.Content {
			checkNode(m, t, path, out)
		}
		return
	}
	checkNode(v, t, path, out)
}

func orTop(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe shows a node in a message: a scalar as its quoted text, else
// its kind.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return "an alias"
}

// checkLeaf decodes n into a new value of type t and, when that fails,
// explains what t wants and, for numbers, its range.
func checkLeaf(n *yaml.Node, t reflect.Type) (string, bool) {
	if (isInt(t) || isUint(t)) && t != durationType && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!float" {
		// yaml.v3 would truncate 2.5 to 2 without a word.
		if f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64); err == nil && f != math.Trunc(f) {
			return fmt.Sprintf("want a whole number, got %s", strconv.Quote(n.Value)), false
		}
	}
	v := reflect.New(t)
	err := n.Decode(v.Interface())
	if err == nil {
		return "", true
	}
	got := describe(n)
	if n.Kind != yaml.ScalarNode {
		return fmt.Sprintf("want %s, got %s", kindOf(t), got), false
	}
	s := strings.ReplaceAll(n.Value, "_", "")
	switch {
	case t == durationType:
		return fmt.Sprintf("want a duration such as 500ms, 5s or 1m30s, got %s", got), false
	case isInt(t) || isUint(t):
		f, perr := strconv.ParseFloat(s, 64)
		if perr == nil && f != math.Trunc(f) {
			return fmt.Sprintf("want a whole number, got %s", got), false
		}
		if perr == nil || errors.Is(perr, strconv.ErrRange) {
			return fmt.Sprintf("%s is out of range: want %s", got, intRange(t)), false
		}
		return fmt.Sprintf("want %s, got %s", kindOf(t), got), false
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		if _, perr := strconv.ParseFloat(s, t.Bits()); errors.Is(perr, strconv.ErrRange) {
			return fmt.Sprintf("%s is out of range: a number here is at most ±%.4g", got, maxFloat(t)), false
		}
		return fmt.Sprintf("want a number, got %s", got), false
	}
	return fmt.Sprintf("want %s, got %s", kindOf(t), got), false
}

func isInt(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return true
	}
	return false
}

func isUint(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

func intRange(t reflect.Type) string {
	if isUint(t) {
		return fmt.Sprintf("a whole number from 0 to %d", uint64(1)<<t.Bits()-1)
	}
	return fmt.Sprintf("a whole number from %d to %d", -(int64(1) << (t.Bits() - 1)), int64(1)<<(t.Bits()-1)-1)
}

func maxFloat(t reflect.Type) float64 {
	if t.Kind() == reflect.Float32 {
		return math.MaxFloat32
	}
	return math.MaxFloat64
}

// kindOf names what a value of type t looks like in YAML.
func kindOf(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		return "a duration such as 500ms, 5s or 1m30s"
	case isInt(t), isUint(t):
		return "a whole number"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Slice:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(kindOf(t.Elem()), "a "), "an ") + "s"
	case t.Kind() == reflect.Map:
		return "a mapping"
	case t.Kind() == reflect.Struct:
		return "a mapping of fields"
	case t.Kind() == reflect.Interface:
		return "a value"
	}
	return "a " + t.String()
}

// structFields returns the YAML names of t's fields, with inline structs
// flattened, and their types.
func structFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	eachField(t, func(name string, ft reflect.Type) { out[name] = ft })
	return out
}

// fieldNames returns the YAML names of t's fields in declaration order.
func fieldNames(t reflect.Type) []string {
	var out []string
	eachField(t, func(name string, _ reflect.Type) { out = append(out, name) })
	return out
}

func eachField(t reflect.Type, fn func(name string, ft reflect.Type)) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "inline") {
			eachField(f.Type, fn)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fn(name, f.Type)
	}
}

// unknownField explains an unknown key: the nearest known name, or the
// list of names the section has.
func unknownField(name, section string, known []string) string {
	if s := suggest.Nearest(name, known); s != "" {
		return fmt.Sprintf("unknown field (did you mean %s?)", s)
	}
	where := "the top-level fields are"
	if section != "" {
		where = "the fields of " + section + " are"
	}
	return fmt.Sprintf("unknown field; %s %s (see the configuration reference in README.md)", where, strings.Join(known, ", "))
}
