package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/replaykit/replay/schemas"
)

// capture is the production side's logging middleware: every exchange the
// production service serves is written to the capture topic as an envelope,
// the way a real service's sidecar or gateway would log it.
type capture struct {
	next   http.Handler
	client *kgo.Client
	topic  string

	mu   sync.Mutex
	errs []error
	sent int
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	reqBody, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	c.next.ServeHTTP(rec, r)

	x := schemas.Exchange{
		CorrelationID: r.Header.Get("X-Request-Id"),
		CapturedAt:    start.UTC(),
		Request: schemas.Request{
			Method: r.Method, Scheme: "http", Host: r.Host, Path: r.URL.Path, Query: r.URL.RawQuery,
			Headers: maps.Clone(r.Header), Body: reqBody,
		},
		Response: &schemas.Response{
			Status: rec.status, Headers: maps.Clone(w.Header()), Body: rec.body.Bytes(),
			LatencyMS: float64(time.Since(start).Microseconds()) / 1000,
		},
		Lineage: map[string]string{"catalog-service": w.Header().Get("X-Lineage-Catalog-Service")},
		Attributes: map[string]string{
			"device_type": r.Header.Get("X-Device-Type"),
			"device_id":   r.Header.Get("X-Device-Id"),
			"region":      "us-east-1",
		},
	}
	raw, err := json.Marshal(x.Envelope())
	if err != nil {
		c.fail(err)
		return
	}
	c.client.Produce(context.Background(), &kgo.Record{Topic: c.topic, Key: []byte(x.Attributes["device_id"]), Value: raw},
		func(_ *kgo.Record, err error) {
			if err != nil {
				c.fail(err)
				return
			}
			c.mu.Lock()
			c.sent++
			c.mu.Unlock()
		})
}

func (c *capture) fail(err error) {
	c.mu.Lock()
	c.errs = append(c.errs, err)
	c.mu.Unlock()
}

// flush waits for every captured exchange to be acknowledged by the broker.
func (c *capture) flush(ctx context.Context) (int, error) {
	if err := c.client.Flush(ctx); err != nil {
		return 0, fmt.Errorf("flush capture producer: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errs) > 0 {
		return c.sent, fmt.Errorf("capture %d exchanges failed, first: %w", len(c.errs), c.errs[0])
	}
	return c.sent, nil
}

type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

var deviceTypes = []string{"tv", "tv", "android", "android", "ios", "web"}

// traffic sends n requests shaped like a catalogue front end's to base,
// from `clients` concurrent clients, deterministically for a given seed.
func traffic(ctx context.Context, base string, n, clients int, seed uint64) error {
	type job struct {
		method, path string
		header       http.Header
		body         []byte
	}
	jobs := make(chan job)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: 10 * time.Second}
	for range clients {
		wg.Go(func() {
			for j := range jobs {
				req, err := http.NewRequestWithContext(ctx, j.method, base+j.path, bytes.NewReader(j.body))
				if err != nil {
					errs <- err
					return
				}
				req.Header = j.header
				resp, err := hc.Do(req)
				if err != nil {
					errs <- fmt.Errorf("demo traffic %s %s: %w", j.method, j.path, err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		})
	}
	r := rand.New(rand.NewPCG(seed, 99))
	var sendErr error
loop:
	for i := range n {
		user := 1 + r.IntN(400)
		h := http.Header{
			"Accept":        {"application/json"},
			"Authorization": {fmt.Sprintf("Bearer user-%d-token", user)},
			"X-Device-Type": {deviceTypes[r.IntN(len(deviceTypes))]},
			"X-Device-Id":   {fmt.Sprintf("d-%d", user)},
		}
		// One exchange in a hundred carries no request id: replay derives one.
		if i%100 != 42 {
			h.Set("X-Request-Id", uuid.NewSHA1(uuid.NameSpaceURL, fmt.Appendf(nil, "demo/%d/%d", seed, i)).String())
		}
		var j job
		switch p := r.IntN(100); {
		case p < 60:
			id := 1 + r.IntN(catalogSize+20) // a few unknown ids: 404 on both sides
			j = job{method: "GET", path: fmt.Sprintf("/v1/titles/%d", id)}
		case p < 78:
			j = job{method: "GET", path: fmt.Sprintf("/v1/titles?genre=%s&limit=%d", genres[r.IntN(len(genres))], 5+r.IntN(10))}
		case p < 95:
			j = job{method: "GET", path: fmt.Sprintf("/v1/users/u-%d/recommendations", user)}
		default:
			h.Set("Content-Type", "application/json")
			j = job{method: "POST", path: fmt.Sprintf("/v1/users/u-%d/ratings", user), body: fmt.Appendf(nil, `{"title":%d,"stars":%d}`, 1+r.IntN(catalogSize), 1+r.IntN(5))}
		}
		j.header = h
		select {
		case jobs <- j:
		case err := <-errs:
			sendErr = err
			break loop
		case <-ctx.Done():
			sendErr = ctx.Err()
			break loop
		}
	}
	close(jobs)
	wg.Wait()
	if sendErr != nil {
		return sendErr
	}
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}
