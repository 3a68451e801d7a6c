package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime/pprof"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/conc/pool"
)

// request is one prepared request of a baseline: what replay sends for
// a capture after its rewrite (the target's host, the captured path,
// query and headers, hop-by-hop headers dropped, the replay ID header
// added).
type request struct {
	method string
	url    string
	header http.Header
	body   []byte
}

// bareRequests returns the requests replay sends for n generated
// captures of the given sizes from the first-th on, aimed at targetURL.
func bareRequests(targetURL string, n int, sizes Sizes, first int) ([]request, error) {
	base, err := url.Parse(targetURL)
	if err != nil {
		return nil, fmt.Errorf("target URL %q: %w", targetURL, err)
	}
	out := make([]request, n)
	for i := range out {
		x := exchange(first+i, sizes)
		h := make(http.Header, len(x.Request.Headers)+1)
		for k, vs := range x.Request.Headers {
			h[http.CanonicalHeaderKey(k)] = vs
		}
		h.Set("X-Replay-Id", x.CorrelationID)
		u := *base
		u.Path, u.RawQuery = x.Request.Path, x.Request.Query
		out[i] = request{method: x.Request.Method, url: u.String(), header: h, body: x.Request.Body}
	}
	return out, nil
}

// newBareClient is what a hand-written load generator would use: one
// net/http client whose transport keeps an idle connection per worker.
func newBareClient(workers int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = workers, workers
	tr.DisableCompression = true
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// bareResult is what a baseline run measured.
type bareResult struct {
	requests int
	elapsed  time.Duration
	bytes    int64 // response bytes read
}

func (r bareResult) rate() float64 { return float64(r.requests) / r.elapsed.Seconds() }

// runBarePool sends every request once, as fast as workers goroutines
// sharing one client can, reading every response to its end: the
// baseline of the end-to-end and size-scaling lines.
func runBarePool(ctx context.Context, workers int, reqs []request) (bareResult, error) {
	cl := newBareClient(workers)
	defer cl.CloseIdleConnections()
	var next, read atomic.Int64
	start := time.Now()
	var err error
	pprof.Do(ctx, pprof.Labels(stageLabel, stageBare), func(ctx context.Context) {
		p := pool.New().WithErrors().WithContext(ctx).WithCancelOnError()
		for range workers {
			p.Go(func(ctx context.Context) error {
				for {
					i := int(next.Add(1) - 1)
					if i >= len(reqs) {
						return nil
					}
					n, err := send(ctx, cl, reqs[i])
					if err != nil {
						return err
					}
					read.Add(n)
				}
			})
		}
		err = p.Wait()
	})
	if err != nil {
		return bareResult{}, fmt.Errorf("bare pool: %w", err)
	}
	return bareResult{requests: len(reqs), elapsed: time.Since(start), bytes: read.Load()}, nil
}

// send makes one request and reads its response to the end.
func send(ctx context.Context, cl *http.Client, r request) (int64, error) {
	var body io.Reader
	if len(r.body) > 0 {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, body)
	if err != nil {
		return 0, err
	}
	req.Header = r.header
	resp, err := cl.Do(req)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return n, err
	}
	if resp.StatusCode != http.StatusOK {
		return n, fmt.Errorf("%s %s: status %d", r.method, r.url, resp.StatusCode)
	}
	return n, nil
}
