package pipeline

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/replaykit/replay/schemas"
)

func newTestReplayer(t *testing.T, target string, edit func(c *Config)) *replayer {
	t.Helper()
	c := validConfig()
	c.Replay.Target = target
	if edit != nil {
		edit(&c)
	}
	comp, errs := c.compile()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	rp := newReplayer(c, comp)
	t.Cleanup(rp.close)
	return rp
}

func getExchange(path string) *schemas.Exchange {
	return &schemas.Exchange{
		Source:        schemas.Coordinates{Topic: "t", Partition: 1, Offset: 7},
		CorrelationID: "cid",
		CapturedAt:    time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC),
		Request:       schemas.Request{Method: "GET", Path: path, Headers: map[string][]string{"Authorization": {"Bearer secret"}}},
	}
}

// hijack returns a handler that takes the connection over and runs fn on
// it; linger makes Close send a RST instead of a FIN.
func hijack(t *testing.T, linger bool, fn func(conn net.Conn)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		if linger {
			conn.(*net.TCPConn).SetLinger(0) // close with RST
		}
		fn(conn)
	}
}

// closedPort returns the URL of a port nobody listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

func newServer(t *testing.T, h http.Handler) *httptest.Server {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func TestReplayErrorKinds(t *testing.T) {
	// Handlers that block do so until the test ends (or the client gives
	// up), never on a timer.
	testDone := make(chan struct{})
	blocked := func(r *http.Request) {
		select {
		case <-testDone:
		case <-r.Context().Done():
		}
	}
	t.Cleanup(func() { close(testDone) })

	partialBody := func(conn net.Conn) {
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n0123456789")
	}
	tlsServer := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	tlsServer.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake error the test provokes
	tlsServer.StartTLS()
	t.Cleanup(tlsServer.Close)

	short := func(c *Config) { c.Replay.Timeout = 100 * time.Millisecond }
	tests := []struct {
		name       string
		target     string
		edit       func(c *Config)
		want       string
		wantStatus int // the row has a response with this status (failed mid-body)
	}{
		{"refused", closedPort(t), nil, schemas.ErrorRefused, 0},
		{"timeout, handler never answers", newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { blocked(r) })).URL,
			short, schemas.ErrorTimeout, 0},
		{"response header timeout", newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { blocked(r) })).URL,
			func(c *Config) { c.Replay.ResponseHeaderTimeout = 50 * time.Millisecond }, schemas.ErrorTimeout, 0},
		{"slow body beyond the timeout", newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			w.Write([]byte("0123456789"))
			w.(http.Flusher).Flush()
			blocked(r)
		})).URL, short, schemas.ErrorTimeout, 200},
		{"closed before the headers", newServer(t, hijack(t, false, func(net.Conn) {})).URL, nil, schemas.ErrorReset, 0},
		{"reset before the headers", newServer(t, hijack(t, true, func(net.Conn) {})).URL, nil, schemas.ErrorReset, 0},
		{"closed mid-body", newServer(t, hijack(t, false, partialBody)).URL, nil, schemas.ErrorReset, 200},
		{"reset mid-body", newServer(t, hijack(t, true, partialBody)).URL, nil, schemas.ErrorReset, 200},
		{"tls untrusted certificate", tlsServer.URL, nil, schemas.ErrorTLS, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rp := newTestReplayer(t, tt.target, func(c *Config) {
				c.Replay.Retry.Attempts = 1
				if tt.edit != nil {
					tt.edit(c)
				}
			})
			row, out := rp.replay(context.Background(), nil, getExchange("/x"))
			if row == nil {
				t.Fatal("replay returned no row")
			}
			if row.ErrorKind != tt.want || row.ErrorMessage == "" || row.Attempts != 1 || out != outcomeFailed {
				t.Fatalf("kind %q, message %q, attempts %d, outcome %d; want kind %q, a message, 1 attempt, a failure",
					row.ErrorKind, row.ErrorMessage, row.Attempts, out, tt.want)
			}
			switch {
			case tt.wantStatus == 0 && row.Response != nil:
				t.Fatalf("response %+v, want none", row.Response)
			case tt.wantStatus != 0 && (row.Response == nil || row.Response.Status != tt.wantStatus || string(row.Response.Body) != "0123456789"):
				t.Fatalf("response %+v, want status %d with the partial body", row.Response, tt.wantStatus)
			}
			if row.CorrelationID != "cid" || row.Source.Offset != 7 || row.Request.Headers["Authorization"][0] != Redacted {
				t.Fatalf("row identity or redaction wrong: %+v", row)
			}
		})
	}
	t.Run("5xx is a response, not an error", func(t *testing.T) {
		srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
		}))
		row, out := newTestReplayer(t, srv.URL, nil).replay(context.Background(), nil, getExchange("/x"))
		if row.ErrorKind != "" || row.Response == nil || row.Response.Status != 503 || row.Attempts != 1 || out != outcomeResponse {
			t.Fatalf("row %+v, outcome %d; want a 503 response, no error kind, 1 attempt", row, out)
		}
	})
}

// flaky is a target that resets the first failures connections, then
// answers 200; it counts the requests it saw.
type flaky struct {
	t        *testing.T
	failures int64
	seen     atomic.Int64
	status   int // answered after the failures; 200 when 0
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.seen.Add(1) <= f.failures {
		hijack(f.t, true, func(net.Conn) {})(w, r)
		return
	}
	w.WriteHeader(cmp.Or(f.status, http.StatusOK))
	io.WriteString(w, "ok")
}

func TestReplayRetries(t *testing.T) {
	fast := func(attempts int, methods ...string) func(c *Config) {
		return func(c *Config) {
			c.Replay.Retry = RetryConfig{Attempts: attempts, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Methods: methods}
			if methods == nil {
				c.Replay.Retry.Methods = DefaultConfig().Replay.Retry.Methods
			}
		}
	}
	tests := []struct {
		name         string
		method       string
		failures     int64
		status       int
		edit         func(c *Config)
		wantAttempts int
		wantKind     string
		wantStatus   int
		wantOutcome  outcome
	}{
		{"recovers on the third attempt", "GET", 2, 0, fast(3), 3, "", 200, outcomeResponse},
		{"gives up after the last attempt", "GET", 5, 0, fast(3), 3, schemas.ErrorReset, 0, outcomeFailed},
		{"one attempt means no retry", "GET", 1, 0, fast(1), 1, schemas.ErrorReset, 0, outcomeFailed},
		{"PUT and DELETE are retried by default", "DELETE", 1, 0, fast(3), 2, "", 200, outcomeResponse},
		{"POST is not retried by default", "POST", 1, 0, fast(3), 1, schemas.ErrorReset, 0, outcomeFailed},
		{"POST is retried when listed", "POST", 1, 0, fast(3, "get", "post"), 2, "", 200, outcomeResponse},
		{"a 5xx is not retried", "GET", 0, 503, fast(3), 1, "", 503, outcomeResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := &flaky{t: t, failures: tt.failures, status: tt.status}
			rp := newTestReplayer(t, newServer(t, target).URL, tt.edit)
			x := getExchange("/x")
			x.Request.Method = tt.method
			row, out := rp.replay(context.Background(), nil, x)
			if row.Attempts != tt.wantAttempts || row.ErrorKind != tt.wantKind || out != tt.wantOutcome {
				t.Fatalf("attempts %d, kind %q, outcome %d, message %q; want %d, %q, %d",
					row.Attempts, row.ErrorKind, out, row.ErrorMessage, tt.wantAttempts, tt.wantKind, tt.wantOutcome)
			}
			if got := target.seen.Load(); got != int64(tt.wantAttempts) {
				t.Fatalf("the target saw %d requests, want %d", got, tt.wantAttempts)
			}
			if tt.wantStatus == 0 {
				if row.Response != nil {
					t.Fatalf("response %+v, want none", row.Response)
				}
				if tt.wantAttempts > 1 && !strings.HasPrefix(row.ErrorMessage, fmt.Sprintf("after %d attempts: ", tt.wantAttempts)) {
					t.Fatalf("message %q does not say how many attempts were made", row.ErrorMessage)
				}
			} else if row.Response == nil || row.Response.Status != tt.wantStatus {
				t.Fatalf("response %+v, want status %d", row.Response, tt.wantStatus)
			}
		})
	}

	t.Run("refused and timeout are retried", func(t *testing.T) {
		row, _ := newTestReplayer(t, closedPort(t), fast(3)).replay(context.Background(), nil, getExchange("/x"))
		if row.Attempts != 3 || row.ErrorKind != schemas.ErrorRefused {
			t.Fatalf("refused: attempts %d kind %q", row.Attempts, row.ErrorKind)
		}
		var seen atomic.Int64
		slow := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen.Add(1)
			<-r.Context().Done()
		}))
		row, _ = newTestReplayer(t, slow.URL, func(c *Config) {
			fast(2)(c)
			c.Replay.Timeout = 50 * time.Millisecond
		}).replay(context.Background(), nil, getExchange("/x"))
		if row.Attempts != 2 || row.ErrorKind != schemas.ErrorTimeout || seen.Load() != 2 {
			t.Fatalf("timeout: attempts %d kind %q seen %d", row.Attempts, row.ErrorKind, seen.Load())
		}
	})
	t.Run("tls failures are not retried", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		srv.StartTLS()
		t.Cleanup(srv.Close)
		row, _ := newTestReplayer(t, srv.URL, fast(3)).replay(context.Background(), nil, getExchange("/x"))
		if row.Attempts != 1 || row.ErrorKind != schemas.ErrorTLS {
			t.Fatalf("attempts %d kind %q; want 1 attempt, tls", row.Attempts, row.ErrorKind)
		}
	})
	t.Run("shutdown ends the backoff and abandons the replay", func(t *testing.T) {
		stop := make(chan struct{})
		srv := newServer(t, hijack(t, true, func(net.Conn) { close(stop) })) // shutdown begins during the first attempt
		rp := newTestReplayer(t, srv.URL, func(c *Config) {
			c.Replay.Retry = RetryConfig{Attempts: 3, MinBackoff: time.Hour, MaxBackoff: time.Hour, Methods: []string{"GET"}}
		})
		start := time.Now()
		row, out := rp.replay(context.Background(), stop, getExchange("/x"))
		if row != nil || out != outcomeNeutral {
			t.Fatalf("row %+v outcome %d; want no row (left for the next run)", row, out)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("replay took %v: the backoff did not end on shutdown", d)
		}
	})
}

func TestBackoff(t *testing.T) {
	const minB, maxB = 100 * time.Millisecond, 2 * time.Second
	for n, ceil := range map[int]time.Duration{1: minB, 2: 2 * minB, 3: 4 * minB, 5: 16 * minB, 6: maxB, 40: maxB, 100: maxB} {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := backoff(n, minB, maxB)
			if d < 0 || d > ceil {
				t.Fatalf("backoff(%d) = %v, want within [0, %v]", n, d, ceil)
			}
			seen[d] = true
		}
		if len(seen) < 100 {
			t.Errorf("backoff(%d) took only %d distinct values in 200 draws: not jittered", n, len(seen))
		}
	}
}

func TestClassifyError(t *testing.T) {
	wrap := func(err error) error {
		return &url.Error{Op: "Get", URL: "http://x", Err: &net.OpError{Op: "dial", Net: "tcp", Err: err}}
	}
	tests := []struct {
		err       error
		want      string
		retryable bool
	}{
		{wrap(&net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}), schemas.ErrorDNS, false},
		{wrap(&net.DNSError{Err: "i/o timeout", Name: "x", IsTimeout: true}), schemas.ErrorDNS, true},
		{wrap(&net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}), schemas.ErrorDNS, true},
		{wrap(os.NewSyscallError("connect", syscall.ECONNREFUSED)), schemas.ErrorRefused, true},
		{wrap(os.NewSyscallError("read", syscall.ECONNRESET)), schemas.ErrorReset, true},
		{wrap(os.NewSyscallError("write", syscall.EPIPE)), schemas.ErrorReset, true},
		{fmt.Errorf("read body: %w", io.ErrUnexpectedEOF), schemas.ErrorReset, true},
		{&url.Error{Op: "Get", URL: "http://x", Err: io.EOF}, schemas.ErrorReset, true},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), schemas.ErrorTimeout, true},
		{wrap(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), schemas.ErrorTLS, false},
		{wrap(tls.AlertError(40)), schemas.ErrorTLS, false},
		{errors.New("something else"), schemas.ErrorOther, false},
		{context.Canceled, schemas.ErrorOther, false},
	}
	for _, tt := range tests {
		if got, retry := classifyError(tt.err); got != tt.want || retry != tt.retryable {
			t.Errorf("classifyError(%v) = %q, %v; want %q, %v", tt.err, got, retry, tt.want, tt.retryable)
		}
	}
}

func TestReplayResponse(t *testing.T) {
	var got *http.Request
	var gotBody []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		gotBody, _ = io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case "/big":
			w.Write([]byte(strings.Repeat("x", 100)))
		default:
			w.Header().Set("X-Lineage-Catalog-Service", "v8812")
			w.Header().Add("x-lineage-edge", "a")
			w.Header().Add("x-lineage-edge", "b")
			w.Header().Set("Set-Cookie", "session=s3cret")
			w.Header().Set("Content-Encoding", "gzip")
			w.WriteHeader(201)
			w.Write([]byte("not really gzip"))
		}
	}))
	t.Cleanup(srv.Close)
	rp := newTestReplayer(t, srv.URL, func(c *Config) { c.Replay.MaxResponseBytes = 64 })

	t.Run("ok", func(t *testing.T) {
		x := getExchange("/a%2Fb")
		x.Request.Method = "POST"
		x.Request.Query = "q=1"
		x.Request.Body = []byte(`{"k":1}`)
		row, _ := rp.replay(context.Background(), nil, x)
		if row.ErrorKind != "" || row.Response == nil {
			t.Fatalf("row = %+v", row)
		}
		if got.Method != "POST" || got.URL.RawPath != "/a%2Fb" || got.URL.RawQuery != "q=1" || string(gotBody) != `{"k":1}` || got.ContentLength != 7 {
			t.Errorf("target saw %s %s ? %s body %q len %d", got.Method, got.URL.EscapedPath(), got.URL.RawQuery, gotBody, got.ContentLength)
		}
		if got.Header.Get("Authorization") != "Bearer secret" || got.Header.Get("X-Replay-Id") != "cid" || got.Header.Get("Accept-Encoding") != "" {
			t.Errorf("target saw headers %v", got.Header)
		}
		r := row.Response
		if r.Status != 201 || string(r.Body) != "not really gzip" || r.LatencyMS <= 0 {
			t.Errorf("response = %d %q latency %v; want the bytes as sent, undecoded", r.Status, r.Body, r.LatencyMS)
		}
		if r.Headers["Set-Cookie"][0] != Redacted || row.Request.Headers["Authorization"][0] != Redacted {
			t.Errorf("headers not redacted in the row: %v / %v", r.Headers, row.Request.Headers)
		}
		if row.Lineage["catalog-service"] != "v8812" || row.Lineage["edge"] != "a,b" || len(row.Lineage) != 2 {
			t.Errorf("lineage = %v", row.Lineage)
		}
		if row.Target != srv.URL || row.Request.Scheme != "http" || row.Request.Path != "/a%2Fb" || row.Request.Host != strings.TrimPrefix(srv.URL, "http://") {
			t.Errorf("row target %q request %+v", row.Target, row.Request)
		}
	})
	t.Run("redirect recorded, not followed", func(t *testing.T) {
		row, _ := rp.replay(context.Background(), nil, getExchange("/redirect"))
		if row.ErrorKind != "" || row.Response.Status != http.StatusFound || row.Response.Headers["Location"][0] != "/elsewhere" {
			t.Fatalf("row = %+v", row)
		}
	})
	t.Run("body too large is truncated", func(t *testing.T) {
		row, _ := rp.replay(context.Background(), nil, getExchange("/big"))
		if row.ErrorKind != ErrorBodyTooLarge || row.Response == nil || len(row.Response.Body) != 64 || row.Response.Status != 200 {
			t.Fatalf("row kind %q response %+v", row.ErrorKind, row.Response)
		}
	})
	t.Run("cancelled work yields no row", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if row, _ := rp.replay(ctx, nil, getExchange("/a")); row != nil {
			t.Fatalf("row = %+v, want nil", row)
		}
	})
}

// TestNewHTTPRequestSendsTheCapturedPath holds newHTTPRequest, which
// builds the URL, to what rendering it and parsing it again (as the
// request line is written) gives: the same request URI and host, and a
// refusal of control characters.
func TestNewHTTPRequestSendsTheCapturedPath(t *testing.T) {
	for _, tc := range []struct{ path, query string }{
		{"/v1/titles/42", "lang=en&region=us"},
		{"/v1/a%2Fb/c", ""},        // an escaped slash stays escaped
		{"/v1/caf%C3%A9", "q=%20"}, // escaped UTF-8
		{"/v1/café", "q=a b"},      // unescaped UTF-8, a space in the query
		{"/v1/%zz", ""},            // not a valid escape
		{"//double/slash", "a;b=1"},
		{"/semi;colon/x", ""},
		{"/with?question", ""},
	} {
		sent := schemas.Request{Method: http.MethodGet, Scheme: "http", Host: "api.example.com", Path: tc.path, Query: tc.query}
		got, err := newHTTPRequest(t.Context(), "127.0.0.1:8080", sent)
		if err != nil {
			t.Fatalf("%q: %v", tc.path, err)
		}
		u := &url.URL{Scheme: "http", Host: "127.0.0.1:8080", RawQuery: tc.query}
		if p, err := url.PathUnescape(tc.path); err == nil {
			u.Path, u.RawPath = p, tc.path
		} else {
			u.Path = tc.path
		}
		want, err := http.NewRequest(http.MethodGet, u.String(), nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.path, err)
		}
		if got.URL.RequestURI() != want.URL.RequestURI() || got.URL.Host != want.URL.Host || got.Host != "api.example.com" {
			t.Errorf("%q %q: request URI %q host %q (Host header %q), want %q %q", tc.path, tc.query,
				got.URL.RequestURI(), got.URL.Host, got.Host, want.URL.RequestURI(), want.URL.Host)
		}
	}
	for _, bad := range []schemas.Request{{Path: "/a\nb"}, {Path: "/a", Query: "x=1\r\nHost: evil"}, {Path: "/\x7f"}} {
		bad.Method, bad.Scheme = http.MethodGet, "http"
		if _, err := newHTTPRequest(t.Context(), "127.0.0.1:8080", bad); err == nil {
			t.Errorf("path %q query %q: no error for a control character", bad.Path, bad.Query)
		}
	}
}

// TestReadBody reads bodies of announced, unannounced and wrong lengths,
// up to the limit and one byte over it.
func TestReadBody(t *testing.T) {
	body := strings.Repeat("x", 100)
	for _, tc := range []struct {
		name        string
		size, limit int64
		want        int
	}{
		{"announced", 100, 1000, 100},
		{"unknown", -1, 1000, 100},
		{"shorter than announced", 150, 1000, 100},
		{"longer than announced", 10, 1000, 100},
		{"at the limit", 100, 100, 100},
		{"over the limit", 100, 50, 51},
		{"announced over the limit", 1 << 30, 50, 51},
	} {
		got, err := readBody(strings.NewReader(body), tc.size, tc.limit)
		if err != nil || len(got) != tc.want || string(got) != body[:tc.want] {
			t.Errorf("%s: read %d bytes (%v), want %d", tc.name, len(got), err, tc.want)
		}
	}
}
