package normalize

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// FuzzDiff compares any two bodies and checks what an operator reads in
// a comparison: the result does not depend on which side is which (no rule
// here names a side), the bodies are equal exactly when their canonical
// encodings are and exactly when no path differs, and the JSON Patch,
// applied to the normalized production body, gives the normalized replay
// body.
func FuzzDiff(f *testing.F) {
	prod, rep := benchBodies()
	f.Add(prod, rep)
	for _, s := range [][2]string{
		{`{"a":1}`, `{"a":1.0}`},
		{`{"a":[1,2,3]}`, `{"a":[3]}`},
		{`{"a":{"b":[{"c":1}]}}`, `{"a":{"b":[{"c":2},{"d":null}]}}`},
		{`{"a/b":1,"~":2}`, `{"a/b":2,"~":[]}`},
		{`[1,"x",{"y":true}]`, `{"y":true}`},
		{`12345678901234567890123`, `12345678901234567890124`},
		{`{"a":1e400}`, `{"a":1}`},
		{`{"e":"\ud83d\ude00"}`, `{"e":"\ud83d\ude01"}`},
		{"{\"k\":\"\xff\"}", `{"k":"\ufffd"}`},
		{"text\r\n", "text\n"},
		{"", `{}`},
		{strings.Repeat("[", 200) + strings.Repeat("]", 200), "[[]]"},
	} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	n, err := Compile(Config{Rules: Rules{CompareHeaders: []string{"*"}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		ab := n.Compare("GET", "/f", Side{Status: 200, Body: a}, Side{Status: 200, Body: bytes.Clone(b)})
		ba := n.Compare("GET", "/f", Side{Status: 200, Body: b}, Side{Status: 200, Body: bytes.Clone(a)})
		if ab.Equal != ba.Equal || !slices.Equal(ab.Paths, ba.Paths) || ab.BodyMode != ba.BodyMode {
			t.Fatalf("a≠b in %q (%s), b≠a in %q (%s)", ab.Paths, ab.BodyMode, ba.Paths, ba.BodyMode)
		}
		if ab.Equal != (len(ab.Paths) == 0) {
			t.Fatalf("equal %v with paths %q", ab.Equal, ab.Paths)
		}
		if ab.BodyMode != bodyJSON {
			if ab.Patch != nil {
				t.Fatalf("a patch %s for bodies compared as %s", ab.Patch, ab.BodyMode)
			}
			return
		}
		if ab.Equal != bytes.Equal(ab.Production, ab.Replay) || ab.Equal != (ab.Patch == nil) {
			t.Fatalf("equal %v, canonical %q and %q, patch %s", ab.Equal, ab.Production, ab.Replay, ab.Patch)
		}
		if ab.Equal {
			return
		}
		doc, err := parseStd(ab.Production)
		if err != nil {
			t.Fatalf("normalized production %q: %v", ab.Production, err)
		}
		var ops []patchOp
		if err := json.Unmarshal(ab.Patch, &ops); err != nil {
			t.Fatalf("patch %s is not a JSON array of operations: %v", ab.Patch, err)
		}
		for _, op := range ops {
			if doc, err = op.apply(doc); err != nil {
				t.Fatalf("patch %s on %s: %v", ab.Patch, ab.Production, err)
			}
		}
		if got := appendCanonical(nil, doc); !bytes.Equal(got, ab.Replay) {
			t.Fatalf("patch %s turns %s into %s, not %s", ab.Patch, ab.Production, got, ab.Replay)
		}
	})
}

// patchOp is one RFC 6902 operation, of the kinds jsondiff writes.
type patchOp struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	From  string          `json:"from"`
	Value json.RawMessage `json:"value"`
}

func (op patchOp) apply(doc any) (any, error) {
	var val any
	if op.Value != nil {
		v, err := parseStd(op.Value)
		if err != nil {
			return nil, err
		}
		val = v
	}
	ptr, err := splitPointer(op.Path)
	if err != nil {
		return nil, err
	}
	switch op.Op {
	case "add", "replace", "remove":
		return editAt(doc, ptr, op.Op, val)
	case "move", "copy":
		from, err := splitPointer(op.From)
		if err != nil {
			return nil, err
		}
		v, err := valueAt(doc, from)
		if err != nil {
			return nil, err
		}
		if op.Op == "move" {
			if doc, err = editAt(doc, from, "remove", nil); err != nil {
				return nil, err
			}
		}
		return editAt(doc, ptr, "add", v)
	}
	return nil, fmt.Errorf("unknown op %q", op.Op)
}

func splitPointer(p string) ([]string, error) {
	if p == "" {
		return nil, nil
	}
	if p[0] != '/' {
		return nil, fmt.Errorf("pointer %q does not start with /", p)
	}
	parts := strings.Split(p[1:], "/")
	for i, s := range parts {
		parts[i] = strings.NewReplacer("~1", "/", "~0", "~").Replace(s)
	}
	return parts, nil
}

func valueAt(doc any, ptr []string) (any, error) {
	for _, tok := range ptr {
		switch d := doc.(type) {
		case map[string]any:
			v, ok := d[tok]
			if !ok {
				return nil, fmt.Errorf("no member %q", tok)
			}
			doc = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(d) {
				return nil, fmt.Errorf("no element %q", tok)
			}
			doc = d[i]
		default:
			return nil, fmt.Errorf("%q inside a scalar", tok)
		}
	}
	return doc, nil
}

// editAt applies add, replace or remove at ptr and returns the new doc.
func editAt(doc any, ptr []string, op string, val any) (any, error) {
	if len(ptr) == 0 {
		if op == "remove" {
			return nil, fmt.Errorf("remove the root")
		}
		return val, nil
	}
	tok := ptr[0]
	switch d := doc.(type) {
	case map[string]any:
		if len(ptr) > 1 {
			child, ok := d[tok]
			if !ok {
				return nil, fmt.Errorf("no member %q", tok)
			}
			v, err := editAt(child, ptr[1:], op, val)
			d[tok] = v
			return d, err
		}
		_, has := d[tok]
		switch {
		case op == "remove" && !has, op == "replace" && !has:
			return nil, fmt.Errorf("%s of a missing member %q", op, tok)
		case op == "remove":
			delete(d, tok)
		default:
			d[tok] = val
		}
		return d, nil
	case []any:
		i := len(d)
		if tok != "-" {
			var err error
			if i, err = strconv.Atoi(tok); err != nil || i < 0 || i > len(d) {
				return nil, fmt.Errorf("bad index %q for %d elements", tok, len(d))
			}
		}
		if len(ptr) > 1 {
			if i >= len(d) {
				return nil, fmt.Errorf("no element %d", i)
			}
			v, err := editAt(d[i], ptr[1:], op, val)
			d[i] = v
			return d, err
		}
		switch op {
		case "add":
			return slices.Insert(d, i, val), nil
		case "replace":
			if i >= len(d) {
				return nil, fmt.Errorf("replace of a missing element %d", i)
			}
			d[i] = val
			return d, nil
		default:
			if i >= len(d) {
				return nil, fmt.Errorf("remove of a missing element %d", i)
			}
			return slices.Delete(d, i, i+1), nil
		}
	}
	return nil, fmt.Errorf("%q inside a scalar", tok)
}
