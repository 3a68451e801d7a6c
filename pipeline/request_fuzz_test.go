package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/ohler55/ojg/jp"
	"golang.org/x/net/http/httpguts"

	"github.com/replaykit/replay/schemas"
)

// The fuzz targets in this file cover what replay does to the headers and
// bodies of captured traffic: redaction of the rows (a secret never reaches
// a table), and the request built from a capture (what the target receives
// is what the row says was sent).

var fuzzSecretPaths = []string{"$.password", "$..token", "$.items[*].secret", "$.a[0].b"}

func fuzzCompiled(f *testing.F, mut func(c *Config)) *compiled {
	f.Helper()
	c := validConfig()
	c.RedactHeaders = []string{"Authorization", "x-api-key"}
	c.RedactBodyPaths = fuzzSecretPaths
	if mut != nil {
		mut(&c)
	}
	comp, errs := c.compile()
	if len(errs) > 0 {
		f.Fatal(errs)
	}
	return comp
}

// FuzzRedact checks, for any body and header, that no value a redaction
// rule selects survives into a row: every location a body path selects
// holds REDACTED afterwards, every value of a redacted header is REDACTED,
// the rest is kept, redacting twice changes nothing, and the input (which
// the replayer still sends) is never modified.
func FuzzRedact(f *testing.F) {
	for _, s := range []struct{ body, name, value string }{
		{`{"password":"hunter2","user":"ann"}`, "Authorization", "Bearer abc"},
		{`{"token":"a","x":{"token":"b","y":[{"token":{"token":"c"}}]}}`, "authorization", "Basic x"},
		{`{"items":[{"secret":1},{"secret":[2]},3]}`, "X-API-KEY", "k"},
		{`[{"token":"a"},{"password":"p"}]`, "x-api-key", ""},
		{`{"a":[{"b":"s"}],"password":null}`, "Cookie", "c=1"},
		{`{"password":"p","password":"q"}`, "Authorization ", "dup keys, a bad name"},
		{"{\"pass\\u0077ord\":\"escaped name\",\"\xff\":\"bad utf8\"}", "X-Token", "v"},
		{`{"token":12345678901234567890123,"n":1.50}`, "", ""},
		{`{"password":"p"} {"password":"q"}`, "Authorization", "two documents"},
		{` {"token":"t"}` + "\n", "Authorization", "trailing newline"},
		{`{"password":"p"`, "Authorization", "truncated"},
		{strings.Repeat(`{"token":`, 3000) + "1" + strings.Repeat("}", 3000), "A", "deep"},
		{"", "", ""},
	} {
		f.Add([]byte(s.body), s.name, s.value)
	}
	comp := fuzzCompiled(f, nil)
	r := comp.redactor
	exprs := make([]jp.Expr, len(fuzzSecretPaths))
	for i, p := range fuzzSecretPaths {
		exprs[i] = jp.MustParseString(p)
	}
	f.Fuzz(func(t *testing.T, body []byte, name, value string) {
		orig := bytes.Clone(body)
		out := r.body(body)
		if !bytes.Equal(body, orig) {
			t.Fatalf("redaction modified its input %q", orig)
		}
		if doc, err := decodeJSONDocument(body); err == nil && isContainer(doc) {
			red, err := decodeJSONDocument(out)
			if err != nil {
				t.Fatalf("redacted body %q of %q is not JSON: %v", out, body, err)
			}
			for i, x := range exprs {
				for _, v := range x.Get(red) {
					if v != Redacted {
						t.Fatalf("%s selects %v in the redacted body %q of %q", fuzzSecretPaths[i], v, out, body)
					}
				}
			}
			if again := r.body(out); !bytes.Equal(again, out) {
				t.Fatalf("redacting %q twice gave %q", out, again)
			}
		} else if !bytes.Equal(out, body) {
			t.Fatalf("a body with nothing to redact (not one JSON object or array) changed: %q → %q", body, out)
		}

		h := map[string][]string{name: {value, value + "2"}, "X-Keep": {"k"}}
		hOrig := maps.Clone(h)
		got := r.headers(h)
		if !maps.EqualFunc(h, hOrig, slices.Equal) || h[name][0] != value {
			t.Fatalf("redaction modified the captured headers %v", hOrig)
		}
		if len(got) != len(h) {
			t.Fatalf("redaction changed the header names: %v → %v", h, got)
		}
		for k, vs := range got {
			redacted := r.headerNames[http.CanonicalHeaderKey(k)]
			for i, v := range vs {
				if redacted && v != Redacted {
					t.Fatalf("header %q kept its value %q", k, v)
				}
				if !redacted && v != h[k][i] {
					t.Fatalf("header %q changed: %q → %q", k, h[k][i], v)
				}
			}
		}
	})
}

func isContainer(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return true
	}
	return false
}

// FuzzReplayRequest checks the request built from any capture: hop-by-hop
// headers and the ones Connection names never reach the target, the
// replay ID header carries the correlation id, the rewrite rules applied,
// the captured exchange is left as it was, and what goes on the wire (the
// request serialized as the client writes it, parsed as a server reads it)
// is what the row says was sent — or the request is refused before sending.
func FuzzReplayRequest(f *testing.F) {
	for _, s := range []struct{ method, path, query, name, value, connection, host string }{
		{"GET", "/v1/items/1", "a=1&drop=x&b=%20", "Accept", "application/json", "", "shop.example"},
		{"POST", "/v1/a%2Fb/c", "", "X-Forwarded-For", "10.0.0.1", "X-Forwarded-For, Keep-Alive", ""},
		{"PUT", "/a b/ü", "q=ü&&=", "content-length", "999", "close", "h:1"},
		{"GET", "/a?b#c", "x", "Transfer-Encoding", "chunked", "upgrade", "evil\r\nX: 1"},
		{"GET", "/p\x00", "a=\r\n", "X-A", "v\r\nInjected: 1", "", ""},
		{"G ET", "/", "", "Bad Name", "v", "", ""},
		{"GET", "//other.example/x", "", "Host", "h2", "", ""},
		{"DELETE", "/v1/../../etc", "%zz", "X-Replay-Id", "forged", "x-replay-id", ""},
		{"GET", "/v1/", "", "Te", "trailers", "", ""},
	} {
		f.Add(s.method, s.path, s.query, s.name, s.value, s.connection, s.host, []byte("body"))
	}
	comp := fuzzCompiled(f, func(c *Config) {
		c.Replay.Target = "http://new-cluster:8080/prefix/"
		c.Replay.Host = HostOriginal
		c.Rewrite = []RewriteRule{
			{Path: &PathRewrite{Match: "^/v1/", Replace: "/v2/"}},
			{Query: &QueryRewrite{Set: map[string]string{"added": "a b&c"}, Remove: []string{"drop"}}},
			{Header: &HeaderRewrite{Set: map[string]string{"X-Env": "staging"}, Remove: []string{"Cookie"}}},
		}
	})
	w := comp.rewriter
	f.Fuzz(func(t *testing.T, method, path, query, name, value, connection, host string, body []byte) {
		x := &schemas.Exchange{
			CorrelationID: "cid-1",
			Request: schemas.Request{Method: method, Path: path, Query: query, Host: host, Body: body, Headers: map[string][]string{
				name: {value}, "Connection": {connection}, "Keep-Alive": {"timeout=5"}, "Cookie": {"c=1"}, "X-Keep": {"k"},
			}},
		}
		captured := maps.Clone(x.Request.Headers)
		sent := w.request(x)
		if !maps.EqualFunc(x.Request.Headers, captured, slices.Equal) || len(x.Request.Headers[name]) != 1 || x.Request.Headers[name][0] != value {
			t.Fatalf("building the request modified the capture's headers: %v → %v", captured, x.Request.Headers)
		}
		checkSentHeaders(t, sent.Headers, connection)
		if !strings.HasPrefix(sent.Path, "/prefix/") {
			t.Fatalf("path %q lost the target's prefix", sent.Path)
		}
		if strings.HasPrefix(path, "/v1/") && !strings.HasPrefix(sent.Path, "/prefix/v2/") {
			t.Fatalf("path rule not applied: %q → %q", path, sent.Path)
		}
		if q := sent.Query; !strings.HasSuffix(q, "added=a+b%26c") || strings.Contains("&"+q, "&drop=") {
			t.Fatalf("query rule not applied: %q → %q", query, q)
		}
		checkWire(t, sent)
	})
}

func checkSentHeaders(t *testing.T, h map[string][]string, connection string) {
	t.Helper()
	for k := range h {
		if hopByHop[k] {
			t.Fatalf("hop-by-hop header %q forwarded", k)
		}
		if k != http.CanonicalHeaderKey(k) {
			t.Fatalf("header %q not in canonical form", k)
		}
	}
	for _, n := range strings.Split(connection, ",") {
		if n = strings.TrimSpace(n); n != "" && http.CanonicalHeaderKey(n) != "X-Replay-Id" {
			if _, ok := h[http.CanonicalHeaderKey(n)]; ok {
				t.Fatalf("header %q named by Connection forwarded", n)
			}
		}
	}
	if id := h["X-Replay-Id"]; len(id) != 1 || id[0] != "cid-1" {
		t.Fatalf("X-Replay-Id = %q, want the correlation id", id)
	}
	if h["X-Env"][0] != "staging" || h["Cookie"] != nil {
		t.Fatalf("header rule not applied: %v", h)
	}
}

// checkWire builds the HTTP request for sent as the replayer does, writes
// it as the client would and reads it back as a server would.
func checkWire(t *testing.T, sent schemas.Request) {
	t.Helper()
	req, err := newHTTPRequest(context.Background(), "new-cluster:8080", sent)
	if err != nil {
		if !hasCTL(sent.Path) && !hasCTL(sent.Query) && validMethod(sent.Method) {
			t.Fatalf("refused %s %q ? %q: %v", sent.Method, sent.Path, sent.Query, err)
		}
		return // the replay row records the error; nothing is sent
	}
	if !validMethod(sent.Method) || !httpguts.ValidHostHeader(sent.Host) || !validHeaders(sent.Headers) {
		return // the client refuses it (a row with the error)
	}
	var wire bytes.Buffer
	if err := req.Write(&wire); err != nil {
		t.Fatalf("write %s %q: %v", sent.Method, sent.Path, err)
	}
	got, err := http.ReadRequest(bufio.NewReader(&wire))
	if err != nil {
		t.Fatalf("a server cannot read what was sent for %s %q ? %q: %v\n%q", sent.Method, sent.Path, sent.Query, err, wire.Bytes())
	}
	if got.Method != sent.Method || got.Host != sent.Host || got.URL.RawQuery != sent.Query {
		t.Fatalf("sent %s %q host %q query %q, the server read %s %q host %q query %q",
			sent.Method, sent.Path, sent.Host, sent.Query, got.Method, got.URL, got.Host, got.URL.RawQuery)
	}
	if got.URL.EscapedPath() != req.URL.EscapedPath() {
		t.Fatalf("sent path %q, the server read %q", req.URL.EscapedPath(), got.URL.EscapedPath())
	}
	if b, _ := io.ReadAll(got.Body); !bytes.Equal(b, sent.Body) {
		t.Fatalf("sent body %q, the server read %q", sent.Body, b)
	}
	for k, vs := range sent.Headers {
		want := make([]string, len(vs))
		for i, v := range vs {
			want[i] = strings.Trim(v, " \t")
		}
		if k == "Host" {
			continue
		}
		if !slices.Equal(got.Header[k], want) {
			t.Fatalf("header %q: sent %q, the server read %q", k, vs, got.Header[k])
		}
	}
}

func validMethod(m string) bool {
	return m != "" && !strings.ContainsFunc(m, func(r rune) bool { return !httpguts.IsTokenRune(r) })
}

func validHeaders(h map[string][]string) bool {
	for k, vs := range h {
		if !httpguts.ValidHeaderFieldName(k) {
			return false
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return false
			}
		}
	}
	return true
}

// TestReplayRequestQueryWithSpace: a captured query holding a space or a
// "#" reaches a real HTTP server as the query that was captured, instead of
// a malformed request line the server answers 400 (found by
// FuzzReplayRequest).
func TestReplayRequestQueryWithSpace(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Query().Get("q") + "|" + r.URL.Query().Get("tag")
	}))
	defer srv.Close()
	c := validConfig()
	c.Replay.Target = srv.URL
	comp, errs := c.compile()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	x := &schemas.Exchange{CorrelationID: "c", Request: schemas.Request{Method: "GET", Path: "/search", Query: "q=new york&tag=#1"}}
	sent := comp.rewriter.request(x)
	req, err := newHTTPRequest(context.Background(), comp.target.Host, sent)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the server answered %d to the query %q", resp.StatusCode, sent.Query)
	}
	if v := <-got; v != "new york|#1" {
		t.Fatalf("the server read q|tag = %q, want %q", v, "new york|#1")
	}
}
