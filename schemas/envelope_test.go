package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	jsonv1 "github.com/go-json-experiment/json/v1"
)

var coords = Coordinates{Topic: "captures", Partition: 3, Offset: 41}

func TestDecodeExamples(t *testing.T) {
	files, err := filepath.Glob("../testdata/envelopes/*.json")
	if err != nil || len(files) < 3 {
		t.Fatalf("want the envelope examples in testdata/envelopes, got %v (%v)", files, err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		x, err := Decode(raw, coords, DecodeOptions{})
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if x.CorrelationID == "" || x.CapturedAt.IsZero() || x.Request.Method == "" {
			t.Errorf("%s: incomplete exchange %+v", f, x)
		}
	}
}

func TestDecode(t *testing.T) {
	good := func(mut func(m map[string]any)) []byte {
		m := map[string]any{
			"correlation_id": "abc",
			"captured_at":    "2026-11-21T10:15:02.123+01:00",
			"request":        map[string]any{"method": "get", "path": "/v1/x", "query": "?a=1", "headers": map[string][]string{"Accept": {"a", "b"}}},
			"response":       map[string]any{"status": 200, "body": "aGk=", "body_encoding": "base64", "latency_ms": 1.5},
		}
		if mut != nil {
			mut(m)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	req := func(m map[string]any) map[string]any { return m["request"].(map[string]any) }
	resp := func(m map[string]any) map[string]any { return m["response"].(map[string]any) }

	tests := []struct {
		name   string
		raw    []byte
		opts   DecodeOptions
		reason string // empty: must decode
		check  func(t *testing.T, x *Exchange)
	}{
		{name: "valid", raw: good(nil), check: func(t *testing.T, x *Exchange) {
			if x.Request.Method != "GET" || x.Request.Query != "a=1" || string(x.Response.Body) != "hi" || x.Response.LatencyMS != 1.5 {
				t.Errorf("bad exchange: %+v %+v", x.Request, x.Response)
			}
			if want := time.Date(2026, 11, 21, 9, 15, 2, 123e6, time.UTC); !x.CapturedAt.Equal(want) || x.CapturedAt.Location() != time.UTC {
				t.Errorf("captured_at = %v, want %v in UTC", x.CapturedAt, want)
			}
			if got := x.Request.Headers["Accept"]; len(got) != 2 {
				t.Errorf("headers = %v", got)
			}
		}},
		{name: "derived id", raw: good(func(m map[string]any) { delete(m, "correlation_id") }), check: func(t *testing.T, x *Exchange) {
			if x.CorrelationID != DeriveCorrelationID(coords) {
				t.Errorf("id = %q, want derived %q", x.CorrelationID, DeriveCorrelationID(coords))
			}
		}},
		{name: "no response", raw: good(func(m map[string]any) { delete(m, "response") }), check: func(t *testing.T, x *Exchange) {
			if x.Response != nil {
				t.Errorf("response = %+v, want nil", x.Response)
			}
		}},
		{name: "empty path is /", raw: good(func(m map[string]any) { delete(req(m), "path") }), check: func(t *testing.T, x *Exchange) {
			if x.Request.Path != "/" {
				t.Errorf("path = %q", x.Request.Path)
			}
		}},
		{name: "not json", raw: []byte("{nope"), reason: "bad_json"},
		{name: "trailing data", raw: append(good(nil), []byte(" {}")...), reason: "bad_json"},
		{name: "wrong type", raw: good(func(m map[string]any) { resp(m)["status"] = "200" }), reason: "bad_json"},
		{name: "missing request", raw: good(func(m map[string]any) { delete(m, "request") }), reason: "missing_request"},
		{name: "missing method", raw: good(func(m map[string]any) { delete(req(m), "method") }), reason: "invalid_field"},
		{name: "relative path", raw: good(func(m map[string]any) { req(m)["path"] = "v1" }), reason: "invalid_field"},
		{name: "bad status", raw: good(func(m map[string]any) { resp(m)["status"] = 42 }), reason: "invalid_field"},
		{name: "bad base64", raw: good(func(m map[string]any) { resp(m)["body"] = "%%%" }), reason: "bad_body_encoding"},
		{name: "unknown encoding", raw: good(func(m map[string]any) { req(m)["body_encoding"] = "gzip" }), reason: "bad_body_encoding"},
		{name: "body over limit", raw: good(func(m map[string]any) { req(m)["body"] = strings.Repeat("x", 11) }), opts: DecodeOptions{MaxBodyBytes: 10}, reason: "body_too_large"},
		{name: "body at limit", raw: good(func(m map[string]any) { req(m)["body"] = strings.Repeat("x", 10) }), opts: DecodeOptions{MaxBodyBytes: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, err := Decode(tt.raw, coords, tt.opts)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if x.Source != coords {
					t.Errorf("source = %v", x.Source)
				}
				if tt.check != nil {
					tt.check(t, x)
				}
				return
			}
			var de *DecodeError
			if !errors.As(err, &de) || !errors.Is(err, ErrDecode) {
				t.Fatalf("err = %v, want a DecodeError wrapping ErrDecode", err)
			}
			if de.Reason != tt.reason {
				t.Errorf("reason = %q, want %q (%v)", de.Reason, tt.reason, err)
			}
		})
	}
}

func TestDeriveCorrelationIDIsDeterministic(t *testing.T) {
	a := DeriveCorrelationID(Coordinates{"t", 1, 2})
	if a != DeriveCorrelationID(Coordinates{"t", 1, 2}) {
		t.Fatal("same coordinates gave different ids")
	}
	for _, c := range []Coordinates{{"t", 1, 3}, {"t", 2, 2}, {"u", 1, 2}} {
		if DeriveCorrelationID(c) == a {
			t.Errorf("%v collides with t/1/2", c)
		}
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	in := &Exchange{
		Source: coords, CorrelationID: "id-1", CapturedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Request:  Request{Method: "POST", Path: "/p", Query: "a=b", Body: []byte{0, 1, 0xff}},
		Response: &Response{Status: 503, Body: []byte(`{"ok":false}`), LatencyMS: 2},
		Lineage:  map[string]string{"svc": "v1"},
	}
	raw, err := json.Marshal(in.Envelope())
	if err != nil {
		t.Fatal(err)
	}
	out, err := Decode(raw, coords, DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Request.Body, in.Request.Body) || !bytes.Equal(out.Response.Body, in.Response.Body) ||
		out.Response.Status != 503 || out.CorrelationID != "id-1" || out.Lineage["svc"] != "v1" || !out.CapturedAt.Equal(in.CapturedAt) {
		t.Fatalf("round trip lost data: %+v", out)
	}
}

// FuzzDecode checks that no input panics the decoder and that every error is
// a DecodeError (so it lands in dead_letters with a reason).
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("../testdata/envelopes/*.json")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"request":{"method":"GET","body":"=","body_encoding":"base64"}}`))
	for _, b := range hostileEnvelopes() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		x, err := Decode(raw, coords, DecodeOptions{MaxBodyBytes: 1 << 10})
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Reason == "" {
				t.Fatalf("error %v is not a DecodeError with a reason", err)
			}
			return
		}
		if x.CorrelationID == "" || x.Request.Method == "" || !strings.HasPrefix(x.Request.Path, "/") {
			t.Fatalf("decoded an incomplete exchange: %+v", x)
		}
	})
}

// FuzzDecodeAgreesWithEncodingJSON holds Decode's JSON library
// (go-json-experiment's v1 API, one pass over the bytes) to
// encoding/json's results: for any input, both reject it, or both accept
// it and build the same envelope.
func FuzzDecodeAgreesWithEncodingJSON(f *testing.F) {
	files, _ := filepath.Glob("../testdata/envelopes/*.json")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		`{"request":{"method":"GET","path":"/a"},"request":{"method":"PUT"}}`,                   // duplicate names: the last wins
		`{"Request":{"METHOD":"GET","Path":"/a"},"Correlation_ID":"x"}`,                         // names match case-insensitively
		"{\"request\":{\"method\":\"GET\",\"body\":\"\xff\xfe ok\"}}",                           // invalid UTF-8 becomes U+FFFD
		`{"request":{"method":"GET","body":"\ud800 \u00e9 \n \"q\" \/"}}`,                       // escapes, a lone surrogate
		`{"request":{"method":"GET"},"response":{"status":2e2,"latency_ms":1e400}}`,             // a float status, an overflow
		`{"request":{"method":"GET"},"response":{"status":200.5}}`,                              // a fraction into an int
		`{"request":null,"response":null,"lineage":null,"captured_at":null}`,                    // nulls
		`{"request":{"method":"GET","headers":{"A":["x",null],"B":null}},"attributes":{"k":1}}`, // nulls and a wrong type in maps
		`{"request":{"method":"GET"},"captured_at":"2026-11-21T10:15:02.123456789+01:00"}`,
		`{"request":{"method":"GET"},"captured_at":"2026-11-21 10:15:02"}`,
		`{"request":{"method":"GET"}} {"x":1}`, // trailing data
		`{"request":{"method":"GET"}}   `,      // trailing space
		`[]`, `""`, `null`, ``, `{`, `{"a":}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var want, got Envelope
		wantErr := json.Unmarshal(raw, &want)
		gotErr := jsonv1.Unmarshal(raw, &got)
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("encoding/json: %v; go-json-experiment: %v", wantErr, gotErr)
		}
		if wantErr == nil && !reflect.DeepEqual(want, got) {
			t.Fatalf("encoding/json decoded\n%+v\ngo-json-experiment\n%+v", want, got)
		}
	})
}
