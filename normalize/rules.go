package normalize

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/ohler55/ojg/jp"
)

// ruleSet is the merged, compiled rules of one endpoint.
type ruleSet struct {
	productionTransforms []transformer
	replayTransforms     []transformer
	ignore               []jsonPath
	sorts                []sortRule
	tolerances           []tolerance
	headers              headerRule
	statusOnly           bool
	body                 string
}

// normalize applies, in order, transforms, ignore paths and array sorting to
// one side's document and returns the (possibly new) root.
func (rs *ruleSet) normalize(doc any, transforms []transformer) any {
	for _, t := range transforms {
		doc = t.apply(doc)
	}
	for _, p := range rs.ignore {
		doc = deleteAll(doc, p.locate(doc))
	}
	for _, s := range rs.sorts {
		s.apply(doc)
	}
	return doc
}

// Transforms.

// transformer rewrites one document and returns its (possibly new) root.
type transformer interface {
	apply(doc any) any
}

// onReplay marks a transform of the replay side.
type onReplay struct{ transformer }

type renameTransform struct {
	path jsonPath // ends with a member name
	to   string
}

func (t *renameTransform) apply(doc any) any {
	for _, loc := range t.path.locate(doc) {
		last := loc[len(loc)-1]
		parent, _ := getAt(doc, loc[:len(loc)-1])
		m, ok := parent.(map[string]any)
		if !ok || last.isIndex || last.key == t.to {
			continue
		}
		if v, has := m[last.key]; has {
			delete(m, last.key)
			m[t.to] = v
		}
	}
	return doc
}

type moveTransform struct {
	from jsonPath
	to   jp.Expr
}

// check validates to (from is not the bare root): a plain path of member
// names, indexes and [*], whose [*] steps (if any) repeat from's steps up to
// there.
func (t *moveTransform) check() error {
	if len(t.to) == 1 {
		return errors.New("cannot replace the whole body")
	}
	last := -1
	for i, f := range t.to[1:] {
		switch f := f.(type) {
		case jp.Child:
		case jp.Nth:
			if f < 0 {
				return fmt.Errorf("%q: a target index must not be negative", t.to.String())
			}
		case jp.Wildcard:
			last = i + 1
		default:
			return fmt.Errorf("%q must be a plain path of member names, indexes and [*]", t.to.String())
		}
	}
	if last < 0 {
		return nil
	}
	if len(t.from.expr) <= last || t.from.expr[:last+1].String() != t.to[:last+1].String() {
		return fmt.Errorf("%q uses [*], so it must start like from (%q) up to its last [*]", t.to.String(), t.from.String())
	}
	return nil
}

// target returns the location to move the value found at from to; check
// guarantees that from's location has a concrete step wherever to has [*].
func (t *moveTransform) target(from location) location {
	to := make(location, 0, len(t.to)-1)
	for i, f := range t.to[1:] {
		switch f := f.(type) {
		case jp.Child:
			to = append(to, step{key: string(f)})
		case jp.Nth:
			to = append(to, step{index: int(f), isIndex: true})
		case jp.Wildcard:
			to = append(to, from[i])
		}
	}
	return to
}

func (t *moveTransform) apply(doc any) any {
	locs := t.from.locate(doc)
	if len(locs) == 0 {
		return doc
	}
	type move struct {
		value any
		to    location
	}
	moves := make([]move, 0, len(locs))
	for _, loc := range locs {
		if v, ok := getAt(doc, loc); ok {
			moves = append(moves, move{value: v, to: t.target(loc)})
		}
	}
	doc = deleteAll(doc, locs)
	for _, m := range moves {
		doc, _ = setAt(doc, m.to, m.value, true)
	}
	return doc
}

type kvToObjectTransform struct {
	path       jsonPath
	key, value string
}

func (t *kvToObjectTransform) apply(doc any) any {
	for _, loc := range t.path.locate(doc) {
		v, _ := getAt(doc, loc)
		a, ok := v.([]any)
		if !ok {
			continue
		}
		obj := make(map[string]any, len(a))
		for _, e := range a {
			m, ok := e.(map[string]any)
			if !ok {
				obj = nil
				break
			}
			k, ok := scalarKey(m[t.key])
			if !ok {
				obj = nil
				break
			}
			obj[k] = m[t.value] // a missing value member becomes null
		}
		if obj != nil {
			doc, _ = setAt(doc, loc, obj, false)
		}
	}
	return doc
}

// scalarKey returns the lookup text of a scalar: a string as it is, a
// number, boolean or null as canonical JSON.
func scalarKey(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, true
	case nil:
		return "null", true
	case bool:
		if t {
			return "true", true
		}
		return "false", true
	case int64, float64, json.Number:
		var buf [64]byte
		return string(appendNumber(buf[:0], v)), true
	}
	return "", false
}

type mapValuesTransform struct {
	path   jsonPath
	values map[string]any
}

func (t *mapValuesTransform) apply(doc any) any {
	for _, loc := range t.path.locate(doc) {
		v, ok := getAt(doc, loc)
		if !ok {
			continue
		}
		k, ok := scalarKey(v)
		if !ok {
			continue
		}
		if nv, found := t.values[k]; found {
			// Copy containers: the rule's value must never be shared
			// with (and later edited inside) a document.
			doc, _ = setAt(doc, loc, deepCopy(nv), false)
		}
	}
	return doc
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case []any:
		c := make([]any, len(t))
		for i, x := range t {
			c[i] = deepCopy(x)
		}
		return c
	case map[string]any:
		c := make(map[string]any, len(t))
		for k, x := range t {
			c[k] = deepCopy(x)
		}
		return c
	}
	return v
}

// toJSONValue converts a value decoded from YAML (or built in Go) into the
// types a parsed JSON document holds.
func toJSONValue(v any) (any, error) {
	switch t := v.(type) {
	case nil, bool, string, int64, json.Number:
		return v, nil
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return nil, fmt.Errorf("%v is not a JSON number", t)
		}
		return v, nil
	case int:
		return int64(t), nil
	case int8:
		return int64(t), nil
	case int16:
		return int64(t), nil
	case int32:
		return int64(t), nil
	case uint8:
		return int64(t), nil
	case uint16:
		return int64(t), nil
	case uint32:
		return int64(t), nil
	case uint:
		return json.Number(fmt.Sprint(t)), nil
	case uint64:
		return json.Number(fmt.Sprint(t)), nil
	case float32:
		return toJSONValue(float64(t))
	case []any:
		c := make([]any, len(t))
		for i, x := range t {
			jx, err := toJSONValue(x)
			if err != nil {
				return nil, err
			}
			c[i] = jx
		}
		return c, nil
	case map[string]any:
		c := make(map[string]any, len(t))
		for k, x := range t {
			jx, err := toJSONValue(x)
			if err != nil {
				return nil, err
			}
			c[k] = jx
		}
		return c, nil
	case map[any]any:
		c := make(map[string]any, len(t))
		for k, x := range t {
			jx, err := toJSONValue(x)
			if err != nil {
				return nil, err
			}
			c[fmt.Sprint(k)] = jx
		}
		return c, nil
	}
	return nil, fmt.Errorf("a %T is not a JSON value", v)
}

// Sorting.

type sortRule struct {
	path jsonPath
	by   string // "" sorts by value, otherwise by this member of object elements
}

func (s sortRule) apply(doc any) {
	for _, loc := range s.path.locate(doc) {
		if v, ok := getAt(doc, loc); ok {
			if a, ok := v.([]any); ok && len(a) > 1 {
				sortArray(a, s.by)
			}
		}
	}
}

// sortArray sorts a in place by value, or by member `by` of object
// elements; equal keys fall back to the whole element, so the order never
// depends on the input order.
func sortArray(a []any, by string) {
	if by == "" && sortScalars(a) {
		return
	}
	s := arraySorter{elems: a, encs: make([][]byte, len(a))}
	idx := make([]int, len(a))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(i, j int) int {
		if by != "" {
			ki, hi := memberOf(a[i], by)
			kj, hj := memberOf(a[j], by)
			switch {
			case hi && !hj:
				return -1
			case !hi && hj:
				return 1
			case hi && hj:
				if c := compareValues(ki, kj); c != 0 {
					return c
				}
			}
		}
		return s.compare(i, j)
	})
	sorted := make([]any, len(a))
	for i, j := range idx {
		sorted[i] = a[j]
	}
	copy(a, sorted)
}

// sortScalars sorts an array made only of numbers or only of strings, and
// reports whether it could.
func sortScalars(a []any) bool {
	var strs, nums int
	for _, v := range a {
		switch v.(type) {
		case string:
			strs++
		case int64, float64, json.Number:
			nums++
		}
	}
	if strs != len(a) && nums != len(a) {
		return false
	}
	slices.SortFunc(a, compareValues)
	return true
}

// arraySorter compares the elements of one array, encoding each at most
// once.
type arraySorter struct {
	elems []any
	encs  [][]byte
}

func (s *arraySorter) compare(i, j int) int {
	a, b := s.elems[i], s.elems[j]
	if bothScalarsOfOneKind(a, b) {
		return compareValues(a, b)
	}
	return bytes.Compare(s.encoded(i), s.encoded(j))
}

func (s *arraySorter) encoded(i int) []byte {
	if s.encs[i] == nil {
		s.encs[i] = appendCanonical(nil, s.elems[i])
	}
	return s.encs[i]
}

func bothScalarsOfOneKind(a, b any) bool {
	if isNumber(a) && isNumber(b) {
		return true
	}
	_, sa := a.(string)
	_, sb := b.(string)
	return sa && sb
}

func memberOf(v any, name string) (any, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	k, ok := m[name]
	return k, ok
}

// compareValues orders two values: numbers numerically, strings by bytes,
// anything else (and mixed kinds) by canonical JSON. Canonical JSON puts
// every string before every number and every number before anything else,
// so this is a total order.
func compareValues(a, b any) int {
	if isNumber(a) && isNumber(b) {
		if c := cmp.Compare(numberFloat(a), numberFloat(b)); c != 0 {
			return c
		}
		var ta, tb [64]byte
		return bytes.Compare(appendNumber(ta[:0], a), appendNumber(tb[:0], b))
	}
	if sa, ok := a.(string); ok {
		if sb, ok := b.(string); ok {
			return strings.Compare(sa, sb)
		}
	}
	return bytes.Compare(appendCanonical(nil, a), appendCanonical(nil, b))
}

// Tolerances.

type tolerance struct {
	path     jsonPath
	abs, rel float64
}

// apply replaces each replay number within tolerance of the production
// number at the same location by the production number, and returns the
// (possibly new) replay root.
func (t tolerance) apply(production, replay any) any {
	for _, loc := range t.path.locate(production) {
		pv, _ := getAt(production, loc)
		if !isNumber(pv) {
			continue
		}
		rv, ok := getAt(replay, loc)
		if !ok || !isNumber(rv) || numbersEqual(pv, rv) {
			continue
		}
		if t.within(numberFloat(pv), numberFloat(rv)) {
			replay, _ = setAt(replay, loc, pv, false)
		}
	}
	return replay
}

// slack forgives float64 rounding, so that 1.0 and 1.01 are within an
// absolute tolerance of 0.01.
const slack = 1 + 1e-9

func (t tolerance) within(a, b float64) bool {
	d := math.Abs(a - b)
	if t.abs > 0 && d <= t.abs*slack {
		return true
	}
	return t.rel > 0 && d <= t.rel*max(math.Abs(a), math.Abs(b))*slack
}
