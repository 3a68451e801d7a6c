package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

// hostileEnvelopes are the shapes a capture log that was not written by a
// replay capture agent puts on the topic: the seed corpus of the envelope
// fuzz targets, beside the examples in testdata/envelopes.
func hostileEnvelopes() [][]byte {
	deep := strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000)
	deepRequest := `{"request":{"method":"GET","headers":{"A":[` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `]}}}`
	seeds := []string{
		``, ` `, "\x00", "{\x00}", `null`, `[]`, `""`, `0`, `{`, `{}`,
		deep, deepRequest,
		// Numbers past every range.
		`{"request":{"method":"GET"},"response":{"status":1e309}}`,
		`{"request":{"method":"GET"},"response":{"status":200,"latency_ms":1e309}}`,
		`{"request":{"method":"GET"},"response":{"status":-9223372036854775809}}`,
		`{"request":{"method":"GET"},"response":{"status":99999999999999999999999999999999}}`,
		`{"request":{"method":"GET"},"response":{"status":200,"latency_ms":-0}}`,
		// Invalid UTF-8 in names, values and between tokens.
		"{\"request\":{\"method\":\"G\xffT\",\"path\":\"/\xc3\x28\"}}",
		"{\"request\":{\"method\":\"GET\",\"headers\":{\"\xfe\":[\"\xff\"]}}}",
		"{\"request\":{\"method\":\"GET\"}}\xff",
		"\xef\xbb\xbf{\"request\":{\"method\":\"GET\"}}", // a byte order mark
		// NUL bytes and control characters inside the fields.
		"{\"request\":{\"method\":\"GET\",\"path\":\"/a\\u0000b\",\"query\":\"x=\\r\\n\"}}",
		"{\"request\":{\"method\":\"GET\",\"headers\":{\"X-A\":[\"v\\r\\nInjected: 1\"]}}}",
		"{\"request\":{\"method\":\"GET\\u0000\",\"path\":\"/\"}}",
		// Body encodings gone wrong.
		`{"request":{"method":"POST","body":"aGk","body_encoding":"base64"}}`,
		`{"request":{"method":"POST","body":"aGk=\n","body_encoding":"base64"}}`,
		`{"request":{"method":"POST","body":"aGk_","body_encoding":"base64"}}`,
		`{"request":{"method":"POST","body":"====","body_encoding":"base64"}}`,
		`{"request":{"method":"POST","body":"aGk=","body_encoding":"BASE64"}}`,
		`{"request":{"method":"POST","body":"x","body_encoding":""}}`,
		`{"request":{"method":"GET"},"response":{"status":200,"body":"%%%","body_encoding":"base64"}}`,
		// Wrong types for every field.
		`{"request":"GET /"}`,
		`{"request":{"method":1,"path":2}}`,
		`{"request":{"method":"GET","headers":{"A":"not-a-list"}}}`,
		`{"request":{"method":"GET","headers":[["A","b"]]}}`,
		`{"request":{"method":"GET"},"captured_at":1700000000}`,
		`{"request":{"method":"GET"},"captured_at":"yesterday"}`,
		`{"request":{"method":"GET"},"captured_at":"10000-01-01T00:00:00Z"}`,
		`{"request":{"method":"GET"},"lineage":["a"],"attributes":"x"}`,
		`{"request":{"method":"GET"},"response":"200 OK"}`,
		// Queries and paths that look like something else.
		`{"request":{"method":"GET","path":"/p","query":"??a=1"}}`,
		`{"request":{"method":"GET","path":"//evil.example/x"}}`,
		`{"request":{"method":"GET","path":"/%zz/../.."}}`,
		`{"request":{"method":"GET","path":"http://other/x"}}`,
		// A HAR capture and a bare HTTP exchange: formats replay does not read.
		`{"log":{"version":"1.2","creator":{"name":"x"},"entries":[{"request":{"method":"GET","url":"http://h/p","headers":[{"name":"A","value":"b"}]},"response":{"status":200,"content":{"text":"{}"}}}]}}`,
		`{"request":{"method":"GET","url":"http://h/p","headers":[{"name":"A","value":"b"}]},"response":{"status":200,"content":{"text":"x"}}}`,
		"GET /p HTTP/1.1\r\nHost: h\r\n\r\n",
	}
	out := make([][]byte, len(seeds))
	for i, s := range seeds {
		out[i] = []byte(s)
	}
	return out
}

// FuzzEnvelopeRoundTrip checks the property the demo, the benchmarks and
// replay-scaling rely on when they write captures with Exchange.Envelope:
// whatever Decode accepts, encoding it again and decoding that gives the
// same exchange.
func FuzzEnvelopeRoundTrip(f *testing.F) {
	for _, b := range hostileEnvelopes() {
		f.Add(b)
	}
	f.Add([]byte(`{"request":{"method":"post","path":"/p","query":"?a=1","body":"AAH/","body_encoding":"base64"},"response":{"status":201,"latency_ms":0.1}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		x, err := Decode(raw, coords, DecodeOptions{})
		if err != nil {
			return
		}
		again, err := json.Marshal(x.Envelope())
		if err != nil {
			t.Fatalf("encode %+v: %v", x, err)
		}
		y, err := Decode(again, coords, DecodeOptions{})
		if err != nil {
			t.Fatalf("%q decoded, its encoding %q does not: %v", raw, again, err)
		}
		if diff := exchangeDiff(x, y); diff != "" {
			t.Fatalf("%q → %q changed %s", raw, again, diff)
		}
	})
}

// exchangeDiff names the first field where a and b differ; empty and nil
// maps and bodies are the same.
func exchangeDiff(a, b *Exchange) string {
	switch {
	case a.CorrelationID != b.CorrelationID:
		return "correlation_id"
	case !a.CapturedAt.Equal(b.CapturedAt):
		return "captured_at"
	case a.Request.Method != b.Request.Method || a.Request.Scheme != b.Request.Scheme || a.Request.Host != b.Request.Host:
		return "request method, scheme or host"
	case a.Request.Path != b.Request.Path:
		return "request.path"
	case a.Request.Query != b.Request.Query:
		return "request.query"
	case !sameHeaders(a.Request.Headers, b.Request.Headers):
		return "request.headers"
	case !bytes.Equal(a.Request.Body, b.Request.Body):
		return "request.body"
	case !maps.Equal(a.Lineage, b.Lineage) || !maps.Equal(a.Attributes, b.Attributes):
		return "lineage or attributes"
	case (a.Response == nil) != (b.Response == nil):
		return "response presence"
	}
	if a.Response == nil {
		return ""
	}
	switch {
	case a.Response.Status != b.Response.Status || a.Response.LatencyMS != b.Response.LatencyMS:
		return "response status or latency"
	case !sameHeaders(a.Response.Headers, b.Response.Headers):
		return "response.headers"
	case !bytes.Equal(a.Response.Body, b.Response.Body):
		return "response.body"
	}
	return ""
}

func sameHeaders(a, b map[string][]string) bool {
	return maps.EqualFunc(a, b, func(x, y []string) bool { return slices.Equal(x, y) })
}

// TestHostileEnvelopesAreDeadLetters runs the hostile seeds through Decode
// once in every test run: each is decoded or refused with a reason.
func TestHostileEnvelopesAreDeadLetters(t *testing.T) {
	for _, raw := range hostileEnvelopes() {
		_, err := Decode(raw, coords, DecodeOptions{MaxBodyBytes: 1 << 10})
		var de *DecodeError
		if err != nil && (!errors.As(err, &de) || de.Reason == "") {
			t.Errorf("%.60q: error %v is not a DecodeError with a reason", raw, err)
		}
	}
}
