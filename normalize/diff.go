package normalize

import (
	"encoding/json"
	"strconv"

	"github.com/wI2L/jsondiff"
)

// diffPaths appends the JSONPath of every location where a and b differ: a
// member or element present on one side only, values of different kinds,
// unequal scalars. Arrays are compared index by index (sort_arrays makes
// order irrelevant where it should be), like the patch.
func diffPaths(a, b any, path []byte, out []string) []string {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			return append(out, string(path))
		}
		for k, va := range x {
			p := appendMemberPath(path, k)
			if vb, has := y[k]; has {
				out = diffPaths(va, vb, p, out)
			} else {
				out = append(out, string(p))
			}
		}
		for k := range y {
			if _, has := x[k]; !has {
				out = append(out, string(appendMemberPath(path, k)))
			}
		}
		return out
	case []any:
		y, ok := b.([]any)
		if !ok {
			return append(out, string(path))
		}
		for i := range max(len(x), len(y)) {
			p := appendIndexPath(path, i)
			if i < len(x) && i < len(y) {
				out = diffPaths(x[i], y[i], p, out)
			} else {
				out = append(out, string(p))
			}
		}
		return out
	}
	if !scalarsEqual(a, b) {
		out = append(out, string(path))
	}
	return out
}

func scalarsEqual(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case string:
		y, ok := b.(string)
		return ok && x == y
	case int64, float64, json.Number:
		return isNumber(b) && numbersEqual(a, b)
	}
	return false
}

// appendMemberPath appends ".key", or "['key']" when key is not a plain
// identifier, so every path can be pasted back into ignore_paths.
func appendMemberPath(path []byte, key string) []byte {
	if isIdentifier(key) {
		path = append(path, '.')
		return append(path, key...)
	}
	path = append(path, '[', '\'')
	for i := 0; i < len(key); i++ {
		if key[i] == '\'' || key[i] == '\\' {
			path = append(path, '\\')
		}
		path = append(path, key[i])
	}
	return append(path, '\'', ']')
}

func appendIndexPath(path []byte, i int) []byte {
	path = append(path, '[')
	path = strconv.AppendInt(path, int64(i), 10)
	return append(path, ']')
}

func isIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// jsonPatch returns the RFC 6902 patch turning a into b, computed by
// jsondiff. It rewrites the numbers of a and b in place (they are not used
// afterwards) into the types jsondiff compares, one representation per
// canonical number, so jsondiff's equality is the canonical one.
func jsonPatch(a, b any) []byte {
	patch, err := jsondiff.CompareWithoutMarshal(diffable(a), diffable(b))
	if err != nil || len(patch) == 0 {
		return nil
	}
	buf := make([]byte, 0, 64*len(patch))
	buf = append(buf, '[')
	for i, op := range patch {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"op":`...)
		buf = appendString(buf, op.Type)
		if op.From != "" {
			buf = append(buf, `,"from":`...)
			buf = appendString(buf, op.From)
		}
		buf = append(buf, `,"path":`...)
		buf = appendString(buf, op.Path)
		switch op.Type {
		case jsondiff.OperationAdd, jsondiff.OperationReplace, jsondiff.OperationTest:
			buf = append(buf, `,"value":`...)
			buf = appendCanonical(buf, op.Value)
		}
		buf = append(buf, '}')
	}
	return append(buf, ']')
}

// diffable rewrites numbers, in place where it can, and returns the
// (possibly new) value: a number whose canonical text is that of a float64
// becomes that float64 (no allocation for the common case), any other
// number a json.Number holding its canonical text.
func diffable(v any) any {
	switch t := v.(type) {
	case float64:
		return v
	case int64:
		if -1<<53 <= t && t <= 1<<53 {
			return float64(t)
		}
		return diffableNumber(v)
	case json.Number:
		return diffableNumber(v)
	case []any:
		for i, x := range t {
			t[i] = diffable(x)
		}
	case map[string]any:
		for k, x := range t {
			switch x.(type) {
			case int64, json.Number, []any, map[string]any:
				t[k] = diffable(x)
			}
		}
	}
	return v
}

func diffableNumber(v any) any {
	var buf, fbuf [64]byte
	c := appendNumber(buf[:0], v)
	if f, err := strconv.ParseFloat(string(c), 64); err == nil && string(appendFloat(fbuf[:0], f)) == string(c) {
		return f
	}
	return json.Number(c)
}
