package pipeline

import (
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

func TestReplayErrorKinds(t *testing.T) {
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)

	hangup := func(linger bool) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			if linger {
				conn.(*net.TCPConn).SetLinger(0) // close with RST
			}
			conn.Close()
		}))
		t.Cleanup(s.Close)
		return s
	}
	closed := hangup(false)
	reset := hangup(true)

	tlsServer := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	tlsServer.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake error the test provokes
	tlsServer.StartTLS()
	t.Cleanup(tlsServer.Close)

	// A port nobody listens on: bind one, then release it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedURL := "http://" + ln.Addr().String()
	ln.Close()

	tests := []struct {
		name   string
		target string
		edit   func(c *Config)
		want   string
	}{
		{"refused", refusedURL, nil, schemas.ErrorRefused},
		{"timeout", slow.URL, func(c *Config) { c.Replay.Timeout = 50 * time.Millisecond }, schemas.ErrorTimeout},
		{"response header timeout", slow.URL, func(c *Config) { c.Replay.ResponseHeaderTimeout = 50 * time.Millisecond }, schemas.ErrorTimeout},
		{"closed without response", closed.URL, nil, schemas.ErrorReset},
		{"reset", reset.URL, nil, schemas.ErrorReset},
		{"tls untrusted certificate", tlsServer.URL, nil, schemas.ErrorTLS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rp := newTestReplayer(t, tt.target, tt.edit)
			row := rp.replay(context.Background(), getExchange("/x"))
			if row == nil {
				t.Fatal("replay returned no row")
			}
			if row.ErrorKind != tt.want || row.Response != nil || row.ErrorMessage == "" || row.Attempts != 1 {
				t.Fatalf("kind %q, message %q, response %v, attempts %d; want kind %q, a message, no response, 1 attempt",
					row.ErrorKind, row.ErrorMessage, row.Response, row.Attempts, tt.want)
			}
			if row.CorrelationID != "cid" || row.Source.Offset != 7 || row.Request.Headers["Authorization"][0] != Redacted {
				t.Fatalf("row identity or redaction wrong: %+v", row)
			}
		})
	}
}

func TestClassifyError(t *testing.T) {
	wrap := func(err error) error {
		return &url.Error{Op: "Get", URL: "http://x", Err: &net.OpError{Op: "dial", Net: "tcp", Err: err}}
	}
	tests := []struct {
		err  error
		want string
	}{
		{wrap(&net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}), schemas.ErrorDNS},
		{wrap(&net.DNSError{Err: "i/o timeout", Name: "x", IsTimeout: true}), schemas.ErrorDNS},
		{wrap(os.NewSyscallError("connect", syscall.ECONNREFUSED)), schemas.ErrorRefused},
		{wrap(os.NewSyscallError("read", syscall.ECONNRESET)), schemas.ErrorReset},
		{wrap(os.NewSyscallError("write", syscall.EPIPE)), schemas.ErrorReset},
		{fmt.Errorf("read body: %w", io.ErrUnexpectedEOF), schemas.ErrorReset},
		{&url.Error{Op: "Get", URL: "http://x", Err: io.EOF}, schemas.ErrorReset},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), schemas.ErrorTimeout},
		{wrap(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), schemas.ErrorTLS},
		{wrap(tls.AlertError(40)), schemas.ErrorTLS},
		{errors.New("something else"), schemas.ErrorOther},
		{context.Canceled, schemas.ErrorOther},
	}
	for _, tt := range tests {
		if got := classifyError(tt.err); got != tt.want {
			t.Errorf("classifyError(%v) = %q, want %q", tt.err, got, tt.want)
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
		row := rp.replay(context.Background(), x)
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
		row := rp.replay(context.Background(), getExchange("/redirect"))
		if row.ErrorKind != "" || row.Response.Status != http.StatusFound || row.Response.Headers["Location"][0] != "/elsewhere" {
			t.Fatalf("row = %+v", row)
		}
	})
	t.Run("body too large is truncated", func(t *testing.T) {
		row := rp.replay(context.Background(), getExchange("/big"))
		if row.ErrorKind != ErrorBodyTooLarge || row.Response == nil || len(row.Response.Body) != 64 || row.Response.Status != 200 {
			t.Fatalf("row kind %q response %+v", row.ErrorKind, row.Response)
		}
	})
	t.Run("cancelled work yields no row", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if row := rp.replay(ctx, getExchange("/a")); row != nil {
			t.Fatalf("row = %+v, want nil", row)
		}
	})
}
