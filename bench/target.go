package bench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"time"
)

// smallJSON is the fast target's answer: a small fixed JSON document.
var smallJSON = []byte(`{"id":1042,"type":"movie","title":"Title 1042","status":"ok","generatedAt":"2026-11-21T10:15:02Z"}`)

// target is a local HTTP server standing in for the new cluster. It
// answers every request with body, after delay, or never (hang: it holds
// the request until the client gives up or the target closes). It counts
// the requests and, for the first len(stamps), when each arrived. Its
// goroutines carry the pprof label stage=target.
type target struct {
	srv   *httptest.Server
	URL   string
	body  []byte
	delay time.Duration
	hang  bool

	closing chan struct{}
	hits    atomic.Int64
	first   atomic.Int64 // unix nanos of the first request
	last    atomic.Int64 // unix nanos of the latest request
	stamps  []int64      // arrival times, unix nanos, of the first len(stamps) requests
}

type targetOption func(*target)

func withDelay(d time.Duration) targetOption { return func(t *target) { t.delay = d } }
func withHang() targetOption                 { return func(t *target) { t.hang = true } }
func withBody(b []byte) targetOption         { return func(t *target) { t.body = b } }
func withStamps(n int) targetOption          { return func(t *target) { t.stamps = make([]int64, n) } }

func startTarget(ctx context.Context, opts ...targetOption) *target {
	t := &target{body: smallJSON, closing: make(chan struct{})}
	for _, o := range opts {
		o(t)
	}
	t.srv = httptest.NewUnstartedServer(t)
	pprof.Do(ctx, pprof.Labels(stageLabel, stageTarget), func(context.Context) { t.srv.Start() })
	t.URL = t.srv.URL
	return t
}

func (t *target) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now().UnixNano()
	n := t.hits.Add(1)
	if n == 1 {
		t.first.Store(now)
	}
	if int(n) <= len(t.stamps) {
		t.stamps[n-1] = now
	}
	for last := t.last.Load(); now > last && !t.last.CompareAndSwap(last, now); last = t.last.Load() {
	}
	_, _ = io.Copy(io.Discard, r.Body)
	switch {
	case t.hang:
		select {
		case <-r.Context().Done():
		case <-t.closing:
		}
		return
	case t.delay > 0:
		time.Sleep(t.delay) // the slow target being measured
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(t.body)))
	_, _ = w.Write(t.body)
}

// reset forgets the requests counted so far.
func (t *target) reset() {
	t.hits.Store(0)
	t.first.Store(0)
	t.last.Store(0)
	clear(t.stamps)
}

// span is the time from the first request to the latest.
func (t *target) span() time.Duration { return time.Duration(t.last.Load() - t.first.Load()) }

func (t *target) close() {
	close(t.closing)
	t.srv.CloseClientConnections()
	t.srv.Close()
}
