package pipeline

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/replaykit/replay/schemas"
)

// ErrorBodyTooLarge is the error kind of a replay row whose response body
// was over Replay.MaxResponseBytes and was truncated; the row still has the
// response.
//
// Deprecated: use schemas.ErrorBodyTooLarge; this alias stays for callers
// of the earlier API.
const ErrorBodyTooLarge = schemas.ErrorBodyTooLarge

// replayer sends rewritten requests to the target, retrying connection
// failures, and turns what comes back into replay rows.
type replayer struct {
	client        *http.Client
	rewriter      *rewriter
	redactor      *redactor
	runID         string
	targetBase    string // scheme://host, as recorded in rows
	timeout       time.Duration
	maxBody       int64
	lineagePrefix string

	attempts               int
	minBackoff, maxBackoff time.Duration
	retryMethods           map[string]bool // upper case
}

func newReplayer(cfg Config, c *compiled) *replayer {
	rc := cfg.Replay
	return &replayer{
		client:        newHTTPClient(rc),
		rewriter:      c.rewriter,
		redactor:      c.redactor,
		runID:         cfg.RunID,
		targetBase:    c.target.Scheme + "://" + c.target.Host,
		timeout:       rc.Timeout,
		maxBody:       rc.MaxResponseBytes,
		lineagePrefix: rc.LineageHeaderPrefix,
		attempts:      rc.Retry.Attempts,
		minBackoff:    rc.Retry.MinBackoff,
		maxBackoff:    rc.Retry.MaxBackoff,
		retryMethods:  c.retryMethods,
	}
}

// newHTTPClient returns the one client of a pipeline. Its transport keeps
// one idle connection per worker; concurrency itself is bounded by the
// worker pool, so MaxConnsPerHost is left unlimited (a cap would only make a
// worker wait for a connection still closing). Redirects are recorded, not
// followed, and bodies are stored as the server sent them.
func newHTTPClient(rc ReplayConfig) *http.Client {
	dialer := &net.Dialer{Timeout: rc.ConnectTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          rc.Workers,
		MaxIdleConnsPerHost:   rc.Workers,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   rc.ConnectTimeout,
		ResponseHeaderTimeout: rc.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

func (rp *replayer) close() { rp.client.CloseIdleConnections() }

// replay sends x to the target and returns its replay row: a response, or
// an error kind and message. A failed replay is a row, never dropped.
// Connection failures of a retried method are tried again, up to
// Retry.Attempts in all, after a backoff; the row then describes the last
// attempt and counts them all.
//
// It returns a nil row when the replay was abandoned: ctx ended (the
// shutdown grace elapsed, or a fatal error), or stop was closed (shutdown
// began) while waiting to retry. The record is then left for the next run
// rather than recorded with an error the target did not cause.
func (rp *replayer) replay(ctx context.Context, stop <-chan struct{}, x *schemas.Exchange) (*schemas.ReplayRow, outcome) {
	enterStage(stageRewrite)
	sent := rp.rewriter.request(x)
	row := &schemas.ReplayRow{
		RunID:         rp.runID,
		CorrelationID: x.CorrelationID,
		CapturedAt:    x.CapturedAt,
		ReplayedAt:    time.Now().UTC(),
		Target:        rp.targetBase,
		Source:        x.Source,
		Request:       sent,
	}
	row.Request.Headers = rp.redactor.headers(sent.Headers)
	row.Request.Body = rp.redactor.body(sent.Body)

	enterStage(stageHTTP)
	attempts := 1
	if rp.retryMethods[sent.Method] {
		attempts = rp.attempts
	}
	for n := 1; ; n++ {
		row.Attempts = n
		a := rp.attempt(ctx, sent)
		switch {
		case a.abandoned:
			return nil, outcomeNeutral
		case a.invalid:
			row.ErrorKind, row.ErrorMessage = schemas.ErrorOther, a.message
			return row, outcomeNeutral
		}
		if !a.retryable || n >= attempts {
			row.Response, row.Lineage = a.response, a.lineage
			row.ErrorKind, row.ErrorMessage = a.kind, a.message
			if n > 1 && a.failed {
				row.ErrorMessage = fmt.Sprintf("after %d attempts: %s", n, a.message)
			}
			if a.failed {
				return row, outcomeFailed
			}
			return row, outcomeResponse
		}
		t := time.NewTimer(backoff(n, rp.minBackoff, rp.maxBackoff))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, outcomeNeutral
		case <-stop:
			t.Stop()
			return nil, outcomeNeutral
		}
	}
}

// attemptResult is what one try of a request produced.
type attemptResult struct {
	response  *schemas.Response // nil when no response headers came back
	lineage   map[string]string
	kind      string // "" on a complete response
	message   string
	failed    bool // a connection-level failure: no complete response
	retryable bool // failed, and worth another try
	invalid   bool // the request could not be built
	abandoned bool // ctx ended: no outcome
}

// attempt sends sent once, bounded by the request timeout.
func (rp *replayer) attempt(ctx context.Context, sent schemas.Request) attemptResult {
	reqCtx, cancel := context.WithTimeout(ctx, rp.timeout)
	defer cancel()
	req, err := newHTTPRequest(reqCtx, rp.rewriter.target.Host, sent)
	if err != nil {
		return attemptResult{invalid: true, message: fmt.Sprintf("build request: %v", err)}
	}
	start := time.Now()
	resp, err := rp.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return attemptResult{abandoned: true}
		}
		kind, retry := classifyError(err)
		return attemptResult{kind: kind, message: err.Error(), failed: true, retryable: retry}
	}
	defer resp.Body.Close()
	body, readErr := readBody(resp.Body, resp.ContentLength, rp.maxBody)
	latency := time.Since(start)
	if readErr != nil && ctx.Err() != nil {
		return attemptResult{abandoned: true}
	}
	a := attemptResult{
		response: &schemas.Response{
			Status:    resp.StatusCode,
			Headers:   rp.redactor.headers(resp.Header),
			LatencyMS: float64(latency) / float64(time.Millisecond),
		},
		lineage: lineage(resp.Header, rp.lineagePrefix),
	}
	switch {
	case readErr != nil:
		a.kind, a.retryable = classifyError(readErr)
		a.failed = true
		a.message = fmt.Sprintf("read response body after %d bytes: %v", len(body), readErr)
	case int64(len(body)) > rp.maxBody:
		body = body[:rp.maxBody]
		a.kind = schemas.ErrorBodyTooLarge
		a.message = fmt.Sprintf("response body is over replay.max_response_bytes (%d); stored truncated", rp.maxBody)
	}
	a.response.Body = rp.redactor.body(body)
	return a
}

// backoff is the wait before retry n (n ≥ 1): exponential with full
// jitter, uniform in [0, min(maxB, minB·2^(n-1))].
func backoff(n int, minB, maxB time.Duration) time.Duration {
	ceil := maxB
	if n-1 < 62 {
		if c := minB << (n - 1); c > 0 && c>>(n-1) == minB && c < maxB {
			ceil = c
		}
	}
	if ceil <= 0 {
		return 0
	}
	return rand.N(ceil + 1)
}

// newHTTPRequest builds the request for a prepared schemas.Request sent to
// targetHost; sent.Host is the Host header. The path keeps its captured
// escaping. The URL is built, not rendered and parsed again; a path or
// query with an ASCII control character is refused, as url.Parse refuses
// it.
func newHTTPRequest(ctx context.Context, targetHost string, sent schemas.Request) (*http.Request, error) {
	if hasCTL(sent.Path) || hasCTL(sent.Query) {
		return nil, fmt.Errorf("invalid control character in the path or query %q", sent.Path+"?"+sent.Query)
	}
	u := &url.URL{Scheme: sent.Scheme, Host: targetHost, RawQuery: sent.Query}
	if p, err := url.PathUnescape(sent.Path); err == nil {
		u.Path, u.RawPath = p, sent.Path
	} else {
		u.Path = sent.Path
	}
	var body io.Reader
	if len(sent.Body) > 0 {
		body = bytes.NewReader(sent.Body)
	}
	req, err := http.NewRequestWithContext(ctx, sent.Method, "", body)
	if err != nil {
		return nil, err
	}
	req.URL = u
	req.Header = http.Header(sent.Headers)
	req.Host = sent.Host
	return req, nil
}

// hasCTL reports whether s has an ASCII control character.
func hasCTL(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// readBody reads r to its end, at most limit+1 bytes, into a buffer sized
// for size bytes (the Content-Length; -1 when unknown) so that a body of
// known length is read without growing the buffer.
func readBody(r io.Reader, size, limit int64) ([]byte, error) {
	r = io.LimitReader(r, limit+1)
	if size < 0 || size > limit {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, size+1) // +1: the read that meets the end
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // longer than announced: grow
		}
	}
}

// lineage reads the response headers named prefix+key into key → values.
func lineage(h http.Header, prefix string) map[string]string {
	if prefix == "" {
		return nil
	}
	var out map[string]string
	for k, vs := range h {
		if len(k) <= len(prefix) || !strings.EqualFold(k[:len(prefix)], prefix) {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[strings.ToLower(k[len(prefix):])] = strings.Join(vs, ",")
	}
	return out
}

// classifyError maps an error from sending a request or reading its
// response to one of the error kinds in schemas, and says whether another
// attempt may succeed: refused, reset and timeout may be passing; a DNS
// failure may be, unless the name does not exist; a TLS failure (a
// certificate the client does not trust, a protocol mismatch) and anything
// unknown will not be.
func classifyError(err error) (kind string, retryable bool) {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return schemas.ErrorDNS, !dnsErr.IsNotFound
	}
	if isTLSError(err) {
		return schemas.ErrorTLS, false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return schemas.ErrorTimeout, true
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return schemas.ErrorTimeout, true
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return schemas.ErrorRefused, true
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return schemas.ErrorReset, true
	}
	return schemas.ErrorOther, false
}

func isTLSError(err error) bool {
	var (
		recordErr    tls.RecordHeaderError
		alertErr     tls.AlertError
		verifyErr    *tls.CertificateVerificationError
		authorityErr x509.UnknownAuthorityError
		hostnameErr  x509.HostnameError
		invalidErr   x509.CertificateInvalidError
	)
	return errors.As(err, &recordErr) || errors.As(err, &alertErr) || errors.As(err, &verifyErr) ||
		errors.As(err, &authorityErr) || errors.As(err, &hostnameErr) || errors.As(err, &invalidErr)
}
