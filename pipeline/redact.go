package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/ohler55/ojg/jp"

	"github.com/replaykit/replay/schemas"
)

// Redacted replaces the value of every redacted header and JSON body field
// in a written row.
const Redacted = "REDACTED"

// redactor removes secrets from rows: the values of the headers named in
// Config.RedactHeaders and of the JSON body fields Config.RedactBodyPaths
// select. It never modifies its input, since the replayer still sends the
// original request: it returns copies where something changed.
type redactor struct {
	headerNames map[string]bool // canonical
	bodyPaths   []jp.Expr       // compiled once by compileBodyPath
}

// compileBodyPath parses one redact_body_paths expression. It must be
// rooted at $ and select something below the root.
func compileBodyPath(expr string) (jp.Expr, error) {
	if !strings.HasPrefix(strings.TrimSpace(expr), "$") {
		return nil, fmt.Errorf(`%q must start at the document root "$", like "$.password" or "$..token"`, expr)
	}
	x, err := jp.ParseString(expr)
	if err != nil {
		return nil, fmt.Errorf("invalid JSONPath %q: %v", expr, err)
	}
	if len(x) < 2 {
		return nil, fmt.Errorf(`%q selects the whole body; name the fields to redact, like "$.password"`, expr)
	}
	if _, ok := x[len(x)-1].(jp.Descent); ok {
		return nil, fmt.Errorf(`%q ends with ".."; name the field to find at any depth, like "$..token"`, expr)
	}
	if _, err := x.Modify(map[string]any{}, redactValue); err != nil {
		return nil, fmt.Errorf("JSONPath %q cannot be used to replace values: %v", expr, err)
	}
	return x, nil
}

func redactValue(any) (any, bool) { return Redacted, true }

// headers returns h with the values of redacted headers replaced: a copy
// when anything changed, h itself otherwise.
func (r *redactor) headers(h map[string][]string) map[string][]string {
	out, _ := r.redactHeaders(h)
	return out
}

func (r *redactor) redactHeaders(h map[string][]string) (map[string][]string, bool) {
	if len(r.headerNames) == 0 || len(h) == 0 {
		return h, false
	}
	hit := false
	for k := range h {
		if r.headerNames[http.CanonicalHeaderKey(k)] {
			hit = true
			break
		}
	}
	if !hit {
		return h, false
	}
	out := make(map[string][]string, len(h))
	for k, vs := range h {
		if r.headerNames[http.CanonicalHeaderKey(k)] {
			red := make([]string, len(vs))
			for i := range red {
				red[i] = Redacted
			}
			vs = red
		}
		out[k] = vs
	}
	return out, true
}

// body returns b with the values the body paths select replaced, when b is
// one JSON object or array: a new slice when anything changed, b itself
// otherwise (not JSON, or nothing selected).
func (r *redactor) body(b []byte) []byte {
	out, _ := r.redactBody(b)
	return out
}

func (r *redactor) redactBody(b []byte) ([]byte, bool) {
	if len(r.bodyPaths) == 0 {
		return b, false
	}
	// Only an object or an array has fields to redact: anything else is
	// left alone without parsing it.
	trimmed := bytes.TrimLeft(b, " \t\r\n")
	if len(trimmed) == 0 || (trimmed[0] != '{' && trimmed[0] != '[') {
		return b, false
	}
	doc, err := decodeJSONDocument(b)
	if err != nil {
		return b, false
	}
	changed := false
	mark := func(any) (any, bool) {
		changed = true
		return Redacted, true
	}
	for _, x := range r.bodyPaths {
		// Modify only reports errors of the expression, which
		// compileBodyPath already tried.
		doc, _ = x.Modify(doc, mark)
	}
	if !changed {
		return b, false
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		// Cannot happen for what the decoder built; never write the
		// original, which holds the secret.
		return []byte(`"` + Redacted + `"`), true
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), true
}

// decodeJSONDocument parses b as exactly one JSON value, keeping numbers as
// written.
func decodeJSONDocument(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the JSON document")
	}
	return doc, nil
}

// exchange returns x with its request and response headers and bodies
// redacted: x itself when nothing needs redacting, a shallow copy
// otherwise.
func (r *redactor) exchange(x *schemas.Exchange) *schemas.Exchange {
	reqH, reqHChanged := r.redactHeaders(x.Request.Headers)
	reqB, reqBChanged := r.redactBody(x.Request.Body)
	var (
		respH                      map[string][]string
		respB                      []byte
		respHChanged, respBChanged bool
	)
	if x.Response != nil {
		respH, respHChanged = r.redactHeaders(x.Response.Headers)
		respB, respBChanged = r.redactBody(x.Response.Body)
	}
	if !reqHChanged && !reqBChanged && !respHChanged && !respBChanged {
		return x
	}
	c := *x
	c.Request.Headers, c.Request.Body = reqH, reqB
	if x.Response != nil {
		resp := *x.Response
		resp.Headers, resp.Body = respH, respB
		c.Response = &resp
	}
	return &c
}
