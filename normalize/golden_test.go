package normalize

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/normalize/cases")

const casesDir = "../testdata/normalize/cases"

// goldenCase is one file of testdata/normalize/cases.
type goldenCase struct {
	Description string   `yaml:"description"`
	Config      Config   `yaml:"config"`
	Method      string   `yaml:"method"`
	Path        string   `yaml:"path"`
	Production  caseSide `yaml:"production"`
	Replay      caseSide `yaml:"replay"`
}

type caseSide struct {
	Status     int                 `yaml:"status"`
	Headers    map[string][]string `yaml:"headers"`
	Body       string              `yaml:"body"`
	BodyBase64 string              `yaml:"body_base64"` // for binary bodies
}

func (s caseSide) side(t *testing.T) Side {
	body := []byte(s.Body)
	if s.BodyBase64 != "" {
		var err error
		if body, err = base64.StdEncoding.DecodeString(s.BodyBase64); err != nil {
			t.Fatalf("body_base64: %v", err)
		}
	}
	return Side{Status: s.Status, Headers: s.Headers, Body: body}
}

// golden is the expected Result, in a form that reads well in a diff.
type golden struct {
	Endpoint   string          `json:"endpoint"`
	Equal      bool            `json:"equal"`
	BodyMode   string          `json:"body_mode"`
	Paths      []string        `json:"paths"`
	Patch      json.RawMessage `json:"patch"`
	Production any             `json:"production"` // exact bytes: a string, or {"base64": …} when not UTF-8
	Replay     any             `json:"replay"`
}

func goldenBody(b []byte) any {
	if utf8.Valid(b) {
		return string(b)
	}
	return map[string]string{"base64": base64.StdEncoding.EncodeToString(b)}
}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(casesDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases in %s: %v", casesDir, err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			c := readCase(t, file)
			n, err := Compile(c.Config)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			prod, rep := c.Production.side(t), c.Replay.side(t)
			prodBody, repBody := bytes.Clone(prod.Body), bytes.Clone(rep.Body)
			res := n.Compare(c.Method, c.Path, prod, rep)

			checkInvariants(t, res)
			if !bytes.Equal(prod.Body, prodBody) || !bytes.Equal(rep.Body, repBody) {
				t.Error("Compare modified its input bodies")
			}

			got := golden{
				Endpoint:   res.Endpoint,
				Equal:      res.Equal,
				BodyMode:   res.BodyMode,
				Paths:      res.Paths,
				Patch:      json.RawMessage(res.Patch),
				Production: goldenBody(res.Production),
				Replay:     goldenBody(res.Replay),
			}
			if got.Paths == nil {
				got.Paths = []string{}
			}
			if res.Patch == nil {
				got.Patch = json.RawMessage("null")
			}
			var out bytes.Buffer
			enc := json.NewEncoder(&out)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(got); err != nil {
				t.Fatal(err)
			}
			gotJSON := out.Bytes()
			goldenFile := strings.TrimSuffix(file, ".yaml") + ".golden.json"
			if *update {
				if err := os.WriteFile(goldenFile, gotJSON, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(goldenFile)
			if err != nil {
				t.Fatalf("%v (run go test ./normalize -update to create it)", err)
			}
			if !bytes.Equal(want, gotJSON) {
				t.Errorf("%s differs (%s); got:\n%s", goldenFile, c.Description, gotJSON)
			}
		})
	}
}

func readCase(t *testing.T, file string) goldenCase {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := yaml.NewDecoder(f)
	d.KnownFields(true)
	var c goldenCase
	if err := d.Decode(&c); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if c.Description == "" {
		t.Fatalf("%s: a case needs a description", file)
	}
	return c
}

// checkInvariants holds for every Result: Equal means no paths; a patch,
// applied to the normalized production body, yields the normalized replay
// body; the normalized bodies are canonical (encoding them again changes
// nothing).
func checkInvariants(t *testing.T, res Result) {
	t.Helper()
	if res.Equal != (len(res.Paths) == 0) {
		t.Errorf("Equal=%v with paths %q", res.Equal, res.Paths)
	}
	for i := 1; i < len(res.Paths); i++ {
		if res.Paths[i-1] >= res.Paths[i] {
			t.Errorf("paths not sorted and unique: %q", res.Paths)
		}
	}
	if res.BodyMode != bodyJSON {
		if res.Patch != nil {
			t.Errorf("patch %s for a %q body", res.Patch, res.BodyMode)
		}
		return
	}
	for _, b := range [][]byte{res.Production, res.Replay} {
		doc, err := parseJSON(b)
		if err != nil {
			t.Fatalf("normalized body is not JSON: %v: %s", err, b)
		}
		if again := appendCanonical(nil, doc); !bytes.Equal(again, b) {
			t.Errorf("normalized body is not canonical:\n%s\n%s", b, again)
		}
	}
	if res.Patch == nil {
		if !bytes.Equal(res.Production, res.Replay) {
			t.Error("no patch for different bodies")
		}
		return
	}
	doc, _ := parseJSON(res.Production)
	patched, err := applyPatch(doc, res.Patch)
	if err != nil {
		t.Fatalf("apply patch %s: %v", res.Patch, err)
	}
	if got := appendCanonical(nil, patched); !bytes.Equal(got, res.Replay) {
		t.Errorf("patch %s applied to production gives\n%s\nwant\n%s", res.Patch, got, res.Replay)
	}
}

// applyPatch applies the add, remove and replace operations of an RFC 6902
// patch; it is just enough to check the patches Compare produces.
func applyPatch(doc any, patch []byte) (any, error) {
	var ops []struct {
		Op    string          `json:"op"`
		Path  string          `json:"path"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(patch, &ops); err != nil {
		return nil, err
	}
	for _, op := range ops {
		var value any
		if op.Value != nil {
			var err error
			if value, err = parseJSON(op.Value); err != nil {
				return nil, err
			}
		}
		if op.Path == "" {
			if op.Op == "remove" {
				return nil, errors.New("remove the root")
			}
			doc = value
			continue
		}
		tokens := strings.Split(op.Path[1:], "/")
		for i, tok := range tokens {
			tokens[i] = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		}
		var err error
		if doc, err = patchAt(doc, tokens, op.Op, value); err != nil {
			return nil, fmt.Errorf("%s %s: %w", op.Op, op.Path, err)
		}
	}
	return doc, nil
}

func patchAt(v any, tokens []string, op string, value any) (any, error) {
	tok, last := tokens[0], len(tokens) == 1
	switch t := v.(type) {
	case map[string]any:
		if !last {
			child, ok := t[tok]
			if !ok {
				return nil, fmt.Errorf("no member %q", tok)
			}
			nc, err := patchAt(child, tokens[1:], op, value)
			t[tok] = nc
			return t, err
		}
		_, has := t[tok]
		switch op {
		case "add":
			t[tok] = value
		case "replace":
			if !has {
				return nil, fmt.Errorf("replace missing member %q", tok)
			}
			t[tok] = value
		case "remove":
			if !has {
				return nil, fmt.Errorf("remove missing member %q", tok)
			}
			delete(t, tok)
		default:
			return nil, fmt.Errorf("unsupported op %q", op)
		}
		return t, nil
	case []any:
		if last && op == "add" && tok == "-" {
			return append(t, value), nil
		}
		i, err := strconv.Atoi(tok)
		if err != nil || i < 0 || i > len(t) || (i == len(t) && !(last && op == "add")) {
			return nil, fmt.Errorf("bad index %q", tok)
		}
		if !last {
			nc, err := patchAt(t[i], tokens[1:], op, value)
			t[i] = nc
			return t, err
		}
		switch op {
		case "add":
			t = append(t[:i], append([]any{value}, t[i:]...)...)
		case "replace":
			t[i] = value
		case "remove":
			t = append(t[:i], t[i+1:]...)
		default:
			return nil, fmt.Errorf("unsupported op %q", op)
		}
		return t, nil
	}
	return nil, fmt.Errorf("cannot step into a %s", typeName(v))
}
