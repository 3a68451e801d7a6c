package pipeline

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
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
// response. It sits beside the kinds in schemas because only the replayer
// produces it.
const ErrorBodyTooLarge = "body_too_large"

// replayer sends rewritten requests to the target and turns what comes back
// into replay rows.
type replayer struct {
	client        *http.Client
	rewriter      *rewriter
	redactor      redactor
	runID         string
	targetBase    string // scheme://host, as recorded in rows
	timeout       time.Duration
	maxBody       int64
	lineagePrefix string
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
// an error kind and message. A failed replay is a row, never dropped. It
// returns nil only when ctx ended (shutdown grace elapsed or a fatal
// error): the record is then left for the next run rather than recorded
// with an error the target did not cause.
func (rp *replayer) replay(ctx context.Context, x *schemas.Exchange) *schemas.ReplayRow {
	sent := rp.rewriter.request(x)
	row := &schemas.ReplayRow{
		RunID:         rp.runID,
		CorrelationID: x.CorrelationID,
		CapturedAt:    x.CapturedAt,
		ReplayedAt:    time.Now().UTC(),
		Target:        rp.targetBase,
		Source:        x.Source,
		Request:       sent,
		Attempts:      1,
	}
	row.Request.Headers = rp.redactor.headers(sent.Headers)

	reqCtx, cancel := context.WithTimeout(ctx, rp.timeout)
	defer cancel()
	req, err := newHTTPRequest(reqCtx, rp.rewriter.target.Host, sent)
	if err != nil {
		row.ErrorKind, row.ErrorMessage = schemas.ErrorOther, fmt.Sprintf("build request: %v", err)
		return row
	}
	start := time.Now()
	resp, err := rp.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		row.ErrorKind, row.ErrorMessage = classifyError(err), err.Error()
		return row
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, rp.maxBody+1))
	latency := time.Since(start)
	if readErr != nil && ctx.Err() != nil {
		return nil
	}
	row.Response = &schemas.Response{
		Status:    resp.StatusCode,
		Headers:   rp.redactor.headers(resp.Header),
		LatencyMS: float64(latency) / float64(time.Millisecond),
	}
	row.Lineage = lineage(resp.Header, rp.lineagePrefix)
	switch {
	case readErr != nil:
		row.ErrorKind = classifyError(readErr)
		row.ErrorMessage = fmt.Sprintf("read response body after %d bytes: %v", len(body), readErr)
	case int64(len(body)) > rp.maxBody:
		body = body[:rp.maxBody]
		row.ErrorKind = ErrorBodyTooLarge
		row.ErrorMessage = fmt.Sprintf("response body is over replay.max_response_bytes (%d); stored truncated", rp.maxBody)
	}
	row.Response.Body = body
	return row
}

// newHTTPRequest builds the request for a prepared schemas.Request sent to
// targetHost; sent.Host is the Host header. The path keeps its captured
// escaping.
func newHTTPRequest(ctx context.Context, targetHost string, sent schemas.Request) (*http.Request, error) {
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
	req, err := http.NewRequestWithContext(ctx, sent.Method, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.Header = http.Header(sent.Headers)
	req.Host = sent.Host
	return req, nil
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
// response to one of the error kinds in schemas.
func classifyError(err error) string {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return schemas.ErrorDNS
	}
	if isTLSError(err) {
		return schemas.ErrorTLS
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return schemas.ErrorTimeout
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return schemas.ErrorTimeout
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return schemas.ErrorRefused
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return schemas.ErrorReset
	}
	return schemas.ErrorOther
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
