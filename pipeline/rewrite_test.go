package pipeline

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/replaykit/replay/schemas"
)

func TestRewrite(t *testing.T) {
	captured := func() *schemas.Exchange {
		return &schemas.Exchange{
			CorrelationID: "cid-1",
			Request: schemas.Request{
				Method: "GET", Scheme: "https", Host: "api.example.com",
				Path: "/v1/titles/42", Query: "lang=fr&debug=1&b=%2F",
				Headers: map[string][]string{
					"accept":          {"application/json"},
					"X-Debug":         {"1"},
					"Connection":      {"keep-alive, X-Conn-Scoped"},
					"X-Conn-Scoped":   {"x"},
					"Content-Length":  {"12"},
					"Host":            {"api.example.com"},
					"Keep-Alive":      {"timeout=5"},
					"Accept-Encoding": {"gzip"},
				},
				Body: []byte("body"),
			},
		}
	}
	tests := []struct {
		name      string
		target    string
		host      string
		idHeader  string
		rules     []RewriteRule
		wantPath  string
		wantQuery string
		wantHost  string
		wantHdr   http.Header
	}{
		{
			name: "no rules: hop-by-hop dropped, id header added, target host", target: "http://new:8080",
			wantPath: "/v1/titles/42", wantQuery: "lang=fr&debug=1&b=%2F", wantHost: "new:8080",
			wantHdr: http.Header{"Accept": {"application/json"}, "X-Debug": {"1"}, "Accept-Encoding": {"gzip"}, "X-Replay-Id": {"cid-1"}},
		},
		{
			name: "path prefix of the target", target: "http://new:8080/api/",
			wantPath: "/api/v1/titles/42", wantQuery: "lang=fr&debug=1&b=%2F", wantHost: "new:8080",
			wantHdr: http.Header{"Accept": {"application/json"}, "X-Debug": {"1"}, "Accept-Encoding": {"gzip"}, "X-Replay-Id": {"cid-1"}},
		},
		{
			name: "path regex with group", target: "http://new",
			rules:    []RewriteRule{{Path: &PathRewrite{Match: `^/v1/titles/(\d+)$`, Replace: "/v2/title/$1"}}},
			wantPath: "/v2/title/42", wantQuery: "lang=fr&debug=1&b=%2F", wantHost: "new",
			wantHdr: http.Header{"Accept": {"application/json"}, "X-Debug": {"1"}, "Accept-Encoding": {"gzip"}, "X-Replay-Id": {"cid-1"}},
		},
		{
			name: "query set and remove keep the rest as captured", target: "http://new",
			rules:    []RewriteRule{{Query: &QueryRewrite{Set: map[string]string{"lang": "en us", "z": "1"}, Remove: []string{"debug"}}}},
			wantPath: "/v1/titles/42", wantQuery: "b=%2F&lang=en+us&z=1", wantHost: "new",
			wantHdr: http.Header{"Accept": {"application/json"}, "X-Debug": {"1"}, "Accept-Encoding": {"gzip"}, "X-Replay-Id": {"cid-1"}},
		},
		{
			name: "header set and remove are case-insensitive", target: "http://new",
			rules:    []RewriteRule{{Header: &HeaderRewrite{Set: map[string]string{"ACCEPT": "text/plain", "x-env": "shadow"}, Remove: []string{"x-debug"}}}},
			wantPath: "/v1/titles/42", wantQuery: "lang=fr&debug=1&b=%2F", wantHost: "new",
			wantHdr: http.Header{"Accept": {"text/plain"}, "X-Env": {"shadow"}, "Accept-Encoding": {"gzip"}, "X-Replay-Id": {"cid-1"}},
		},
		{
			name: "rules apply in order", target: "http://new",
			rules: []RewriteRule{
				{Path: &PathRewrite{Match: "^/v1/", Replace: "/v2/"}},
				{Path: &PathRewrite{Match: "^/v2/", Replace: "/v3/"}},
				{Header: &HeaderRewrite{Set: map[string]string{"X-Env": "a"}}},
				{Header: &HeaderRewrite{Remove: []string{"X-Env"}}},
				{Query: &QueryRewrite{Remove: []string{"lang", "debug", "b"}}},
			},
			wantPath: "/v3/titles/42", wantQuery: "", wantHost: "new",
			wantHdr: http.Header{"Accept": {"application/json"}, "X-Debug": {"1"}, "Accept-Encoding": {"gzip"}, "X-Replay-Id": {"cid-1"}},
		},
		{
			name: "replay id header overrides a rewrite and can be renamed", target: "http://new", idHeader: "X-Shadow-Id",
			rules:    []RewriteRule{{Header: &HeaderRewrite{Set: map[string]string{"X-Shadow-Id": "spoof"}}}},
			wantPath: "/v1/titles/42", wantQuery: "lang=fr&debug=1&b=%2F", wantHost: "new",
			wantHdr: http.Header{"Accept": {"application/json"}, "X-Debug": {"1"}, "Accept-Encoding": {"gzip"}, "X-Shadow-Id": {"cid-1"}},
		},
		{
			name: "replay id none", target: "http://new", idHeader: ReplayIDNone,
			wantPath: "/v1/titles/42", wantQuery: "lang=fr&debug=1&b=%2F", wantHost: "new",
			wantHdr: http.Header{"Accept": {"application/json"}, "X-Debug": {"1"}, "Accept-Encoding": {"gzip"}},
		},
		{
			name: "host original", target: "http://new", host: HostOriginal,
			wantPath: "/v1/titles/42", wantQuery: "lang=fr&debug=1&b=%2F", wantHost: "api.example.com",
			wantHdr: http.Header{"Accept": {"application/json"}, "X-Debug": {"1"}, "Accept-Encoding": {"gzip"}, "X-Replay-Id": {"cid-1"}},
		},
		{
			name: "host literal", target: "http://new", host: "shadow.internal:9000",
			wantPath: "/v1/titles/42", wantQuery: "lang=fr&debug=1&b=%2F", wantHost: "shadow.internal:9000",
			wantHdr: http.Header{"Accept": {"application/json"}, "X-Debug": {"1"}, "Accept-Encoding": {"gzip"}, "X-Replay-Id": {"cid-1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			c.Replay.Target = tt.target
			if tt.host != "" {
				c.Replay.Host = tt.host
			}
			if tt.idHeader != "" {
				c.Replay.ReplayIDHeader = tt.idHeader
			}
			c.Rewrite = tt.rules
			comp, errs := c.compile()
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			x := captured()
			got := comp.rewriter.request(x)
			if got.Path != tt.wantPath || got.Query != tt.wantQuery || got.Host != tt.wantHost {
				t.Errorf("path, query, host = %q, %q, %q; want %q, %q, %q", got.Path, got.Query, got.Host, tt.wantPath, tt.wantQuery, tt.wantHost)
			}
			if !reflect.DeepEqual(http.Header(got.Headers), tt.wantHdr) {
				t.Errorf("headers = %v\nwant      %v", got.Headers, tt.wantHdr)
			}
			if got.Method != "GET" || string(got.Body) != "body" {
				t.Errorf("method, body = %q, %q", got.Method, got.Body)
			}
			if !reflect.DeepEqual(x, captured()) {
				t.Errorf("the captured exchange was modified: %+v", x.Request)
			}
		})
	}
}

func TestHostOriginalFallsBack(t *testing.T) {
	c := validConfig()
	c.Replay.Host = HostOriginal
	comp, _ := c.compile()
	fromHeader := &schemas.Exchange{Request: schemas.Request{Method: "GET", Path: "/", Headers: map[string][]string{"host": {"h.example"}}}}
	if got := comp.rewriter.request(fromHeader).Host; got != "h.example" {
		t.Errorf("host from the Host header = %q, want h.example", got)
	}
	none := &schemas.Exchange{Request: schemas.Request{Method: "GET", Path: "/"}}
	if got := comp.rewriter.request(none).Host; got != "new-cluster:8080" {
		t.Errorf("host with nothing captured = %q, want the target's", got)
	}
}
