package pipeline

import (
	"context"
	"net/http"
	"testing"

	"github.com/replaykit/replay/schemas"
)

// BenchmarkRewrite prepares one request as a worker does before sending
// it: the rewrite rules (a path regex, a query parameter, a header), the
// replay ID, the redacted copy for the row, and the *http.Request. It
// reports allocations per request.
func BenchmarkRewrite(b *testing.B) {
	cfg := validConfig()
	cfg.Rewrite = []RewriteRule{
		{Path: &PathRewrite{Match: `^/v1/`, Replace: "/v2/"}},
		{Query: &QueryRewrite{Set: map[string]string{"source": "replay"}, Remove: []string{"debug"}}},
		{Header: &HeaderRewrite{Set: map[string]string{"X-Env": "candidate"}, Remove: []string{"Cookie"}}},
	}
	c, errs := cfg.compile()
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	rp := newReplayer(cfg, c)
	x := &schemas.Exchange{
		CorrelationID: "7f7c2d1e-0b1c-4c55-9a4e-3c1d2b7e9f00",
		Request: schemas.Request{Method: http.MethodGet, Scheme: "https", Host: "api.example.com", Path: "/v1/titles/4242",
			Query: "lang=en&region=us&debug=1", Headers: map[string][]string{
				"Accept": {"application/json"}, "Accept-Language": {"en-US,en;q=0.9"}, "User-Agent": {"catalog-app/8.12 (tv; android 14)"},
				"Authorization": {"Bearer eyJhbGciOiJIUzI1NiJ9.c2Vzc2lvbg.c2ln"}, "Cookie": {"s=1"}, "Connection": {"keep-alive"},
				"X-Request-Id": {"req-5f2b9c1a"}}},
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		sent := rp.rewriter.request(x)
		_ = rp.redactor.headers(sent.Headers)
		if _, err := newHTTPRequest(ctx, rp.rewriter.target.Host, sent); err != nil {
			b.Fatal(err)
		}
	}
}
