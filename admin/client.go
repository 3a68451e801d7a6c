package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/replaykit/replay/pipeline"
)

// Client calls a replay process's admin API, as replay ctl does. Create it
// with NewClient.
type Client struct {
	base  string // scheme://host:port, no trailing slash
	token string
	actor string
	http  *http.Client
}

// ErrUnauthorized is wrapped by a Client's errors when the server refused
// the token: it was missing or wrong.
var ErrUnauthorized = errors.New("the admin server refused the token: it is missing or wrong")

// UnreachableError is returned when the admin server could not be reached
// at all.
type UnreachableError struct {
	URL string // the base URL tried
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the admin server at %s: %v", e.URL, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// RequestError is a 4xx or 5xx answer other than 401: for a 400 its Body
// names the bad fields.
type RequestError struct {
	Status int
	Body   ErrorBody
}

func (e *RequestError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the admin server answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Body.Error)
	for _, f := range e.Body.Fields {
		fmt.Fprintf(&b, "\n  %s: %s", f.Field, f.Problem)
	}
	return b.String()
}

// NewClient returns a client of the admin server at addr: host:port
// (http is assumed) or an http(s) URL. token, when set, is sent as a
// bearer token; actor names who makes control changes (ActorHeader).
// timeout bounds each call.
func NewClient(addr, token, actor string, timeout time.Duration) (*Client, error) {
	base := strings.TrimRight(strings.TrimSpace(addr), "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("admin address %q: want host:port or http(s)://host:port", addr)
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil {
		return nil, fmt.Errorf("admin address %q: want host:port or http(s)://host:port (the port is required)", addr)
	}
	return &Client{base: u.Scheme + "://" + u.Host, token: token, actor: actor, http: &http.Client{Timeout: timeout}}, nil
}

// URL returns the base URL the client calls.
func (c *Client) URL() string { return c.base }

// Status returns GET /v1/status, decoded and as the raw JSON.
func (c *Client) Status(ctx context.Context) (Status, []byte, error) {
	var st Status
	raw, err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st, statusAnswerFields...)
	return st, raw, err
}

// The fields every answer of replay's admin API has: an answer without
// them comes from another server (a wrong --addr), not from replay.
var (
	statusAnswerFields  = []string{"run_id", "started_at", "stats", "window"}
	controlAnswerFields = []string{"mode", "paused", "guardrail", "updated_by"}
)

// Control returns GET /v1/control.
func (c *Client) Control(ctx context.Context) (pipeline.ControlStatus, error) {
	var st pipeline.ControlStatus
	_, err := c.do(ctx, http.MethodGet, "/v1/control", nil, &st, controlAnswerFields...)
	return st, err
}

// UpdateControl sends PUT /v1/control with update (the JSON fields of a
// pipeline.ControlUpdate) and returns the control now in force.
func (c *Client) UpdateControl(ctx context.Context, update map[string]any) (pipeline.ControlStatus, error) {
	var st pipeline.ControlStatus
	body, err := json.Marshal(update)
	if err != nil {
		return st, fmt.Errorf("encode control update: %w", err)
	}
	_, err = c.do(ctx, http.MethodPut, "/v1/control", body, &st, controlAnswerFields...)
	return st, err
}

// NotReplayError is returned when the server at the address answered, but
// not as replay's admin API does: the address points at another server.
type NotReplayError struct {
	URL    string // the URL called
	Reason string
}

func (e *NotReplayError) Error() string {
	return fmt.Sprintf("%s: the answer is not from replay's admin API (%s): is --addr the admin.listen address of replay run?", e.URL, e.Reason)
}

// do calls the API and decodes a 2xx answer into out; the answer must be
// JSON and have every one of the required top-level fields.
func (c *Client) do(ctx context.Context, method, path string, body []byte, out any, required ...string) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.actor != "" {
		req.Header.Set(ActorHeader, c.actor)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, &UnreachableError{URL: c.base, Err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s%s: read the answer: %w", method, c.base, path, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, fmt.Errorf("%s %s%s: %w", method, c.base, path, ErrUnauthorized)
	case resp.StatusCode >= 400:
		re := &RequestError{Status: resp.StatusCode}
		if json.Unmarshal(raw, &re.Body) != nil || re.Body.Error == "" {
			re.Body = ErrorBody{Error: strings.TrimSpace(string(raw))}
		}
		if resp.StatusCode == http.StatusNotFound && path == "/v1/control" {
			re.Body.Error = "this process has no control API (is it replay run, with a version that has one?)"
		}
		return nil, fmt.Errorf("%s %s%s: %w", method, c.base, path, re)
	}
	where := method + " " + c.base + path
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, &NotReplayError{URL: where, Reason: fmt.Sprintf("%d with Content-Type %q, want application/json", resp.StatusCode, resp.Header.Get("Content-Type"))}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, &NotReplayError{URL: where, Reason: "not a JSON object: " + err.Error()}
	}
	var missing []string
	for _, f := range required {
		if _, ok := fields[f]; !ok {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return nil, &NotReplayError{URL: where, Reason: "it lacks " + strings.Join(missing, ", ")}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, &NotReplayError{URL: where, Reason: "unexpected JSON: " + err.Error()}
	}
	return raw, nil
}
