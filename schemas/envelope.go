package schemas

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/google/uuid"
)

// Body encodings accepted in the envelope.
const (
	EncodingUTF8   = "utf8"
	EncodingBase64 = "base64"
)

// Envelope is one captured exchange as it appears on the capture log: the
// wire form, with bodies still encoded. See envelope.schema.json.
type Envelope struct {
	CorrelationID string            `json:"correlation_id,omitempty"`
	CapturedAt    time.Time         `json:"captured_at"`
	Request       *EnvelopeRequest  `json:"request"`
	Response      *EnvelopeResponse `json:"response,omitempty"`
	Lineage       map[string]string `json:"lineage,omitempty"`
	Attributes    map[string]string `json:"attributes,omitempty"`
}

// EnvelopeRequest is the request half of an envelope.
type EnvelopeRequest struct {
	Method       string              `json:"method"`
	Scheme       string              `json:"scheme,omitempty"`
	Host         string              `json:"host,omitempty"`
	Path         string              `json:"path"`
	Query        string              `json:"query,omitempty"`
	Headers      map[string][]string `json:"headers,omitempty"`
	Body         string              `json:"body,omitempty"`
	BodyEncoding string              `json:"body_encoding,omitempty"`
}

// EnvelopeResponse is the production response half of an envelope.
type EnvelopeResponse struct {
	Status       int                 `json:"status"`
	Headers      map[string][]string `json:"headers,omitempty"`
	Body         string              `json:"body,omitempty"`
	BodyEncoding string              `json:"body_encoding,omitempty"`
	LatencyMS    float64             `json:"latency_ms,omitempty"`
}

// Exchange is a decoded envelope: bodies are bytes, the correlation ID is
// always set, and the source coordinates are attached.
type Exchange struct {
	Source        Coordinates
	CorrelationID string
	CapturedAt    time.Time
	Request       Request
	Response      *Response // nil when the log carried no response
	Lineage       map[string]string
	Attributes    map[string]string
}

// Request is an HTTP request, decoded.
type Request struct {
	Method  string
	Scheme  string
	Host    string
	Path    string
	Query   string
	Headers map[string][]string
	Body    []byte
}

// Response is an HTTP response, decoded.
type Response struct {
	Status    int
	Headers   map[string][]string
	Body      []byte
	LatencyMS float64
}

// ErrDecode is wrapped by every error Decode returns, so callers can tell a
// bad record (dead letter) from anything else.
var ErrDecode = errors.New("cannot decode capture envelope")

// DecodeError explains why a record could not be decoded. Reason is a short
// stable word for grouping, one of DecodeReasons (bad_json,
// missing_request, invalid_field, bad_body_encoding, body_too_large).
type DecodeError struct {
	Reason string
	Err    error
}

func (e *DecodeError) Error() string { return fmt.Sprintf("%s: %s: %v", ErrDecode, e.Reason, e.Err) }
func (e *DecodeError) Unwrap() []error {
	return []error{ErrDecode, e.Err}
}

// DecodeOptions bound what Decode accepts.
type DecodeOptions struct {
	// MaxBodyBytes rejects a decoded request or response body larger than
	// this. 0 means no limit.
	MaxBodyBytes int
}

// derivedIDSpace is the UUIDv5 namespace for correlation IDs derived from
// source coordinates. Changing it changes every derived ID: don't.
var derivedIDSpace = uuid.MustParse("6f0c7a4e-4c4f-4d9e-9b0a-7265706c6179")

// DeriveCorrelationID returns the correlation ID used for a record that
// carries none: a UUIDv5 of its source coordinates, the same on every read.
func DeriveCorrelationID(c Coordinates) string {
	return uuid.NewSHA1(derivedIDSpace, fmt.Appendf(nil, "%s/%d/%d", c.Topic, c.Partition, c.Offset)).String()
}

// Decode parses one capture envelope. Any error wraps ErrDecode and is a
// *DecodeError; the record then belongs in the dead-letter table.
func Decode(raw []byte, src Coordinates, opts DecodeOptions) (*Exchange, error) {
	var env Envelope
	// One pass over the bytes (encoding/json scans every value twice: to
	// find its end or check it, then to decode it), with encoding/json's
	// semantics: FuzzDecodeAgreesWithEncodingJSON holds the two to the same
	// results.
	if err := jsonv1.Unmarshal(raw, &env); err != nil {
		return nil, &DecodeError{Reason: ReasonBadJSON, Err: err}
	}
	if env.Request == nil {
		return nil, &DecodeError{Reason: ReasonMissingRequest, Err: errors.New(`the envelope has no "request" object`)}
	}
	if env.Request.Method == "" {
		return nil, &DecodeError{Reason: ReasonInvalidField, Err: errors.New("request.method is empty")}
	}
	if env.Request.Path != "" && !strings.HasPrefix(env.Request.Path, "/") {
		return nil, &DecodeError{Reason: ReasonInvalidField, Err: fmt.Errorf("request.path %q does not start with /", env.Request.Path)}
	}
	if env.Request.Path == "" {
		env.Request.Path = "/"
	}
	reqBody, err := decodeBody(env.Request.Body, env.Request.BodyEncoding, "request", opts.MaxBodyBytes)
	if err != nil {
		return nil, err
	}
	x := &Exchange{
		Source:        src,
		CorrelationID: env.CorrelationID,
		CapturedAt:    env.CapturedAt.UTC(),
		Request: Request{
			Method:  strings.ToUpper(env.Request.Method),
			Scheme:  env.Request.Scheme,
			Host:    env.Request.Host,
			Path:    env.Request.Path,
			Query:   strings.TrimPrefix(env.Request.Query, "?"),
			Headers: env.Request.Headers,
			Body:    reqBody,
		},
		Lineage:    env.Lineage,
		Attributes: env.Attributes,
	}
	if x.CorrelationID == "" {
		x.CorrelationID = DeriveCorrelationID(src)
	}
	if env.Response != nil {
		if env.Response.Status < 100 || env.Response.Status > 999 {
			return nil, &DecodeError{Reason: ReasonInvalidField, Err: fmt.Errorf("response.status %d is not an HTTP status", env.Response.Status)}
		}
		body, err := decodeBody(env.Response.Body, env.Response.BodyEncoding, "response", opts.MaxBodyBytes)
		if err != nil {
			return nil, err
		}
		x.Response = &Response{
			Status:    env.Response.Status,
			Headers:   env.Response.Headers,
			Body:      body,
			LatencyMS: env.Response.LatencyMS,
		}
	}
	return x, nil
}

func decodeBody(s, encoding, side string, limit int) ([]byte, error) {
	var b []byte
	switch encoding {
	case "", EncodingUTF8:
		b = []byte(s)
	case EncodingBase64:
		var err error
		b, err = base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, &DecodeError{Reason: ReasonBadBodyEncoding, Err: fmt.Errorf("%s.body is not valid base64: %w", side, err)}
		}
	default:
		return nil, &DecodeError{Reason: ReasonBadBodyEncoding, Err: fmt.Errorf("%s.body_encoding %q is not utf8 or base64", side, encoding)}
	}
	if limit > 0 && len(b) > limit {
		return nil, &DecodeError{Reason: ReasonBodyTooLarge, Err: fmt.Errorf("%s.body is %d bytes, over the %d byte limit", side, len(b), limit)}
	}
	return b, nil
}

// Encode renders an exchange back into its envelope form. Bodies that are
// valid UTF-8 are written as utf8, others as base64.
func (x *Exchange) Envelope() Envelope {
	env := Envelope{
		CorrelationID: x.CorrelationID,
		CapturedAt:    x.CapturedAt,
		Request: &EnvelopeRequest{
			Method: x.Request.Method, Scheme: x.Request.Scheme, Host: x.Request.Host,
			Path: x.Request.Path, Query: envelopeQuery(x.Request.Query), Headers: x.Request.Headers,
		},
		Lineage:    x.Lineage,
		Attributes: x.Attributes,
	}
	env.Request.Body, env.Request.BodyEncoding = EncodeBody(x.Request.Body)
	if x.Response != nil {
		env.Response = &EnvelopeResponse{Status: x.Response.Status, Headers: x.Response.Headers, LatencyMS: x.Response.LatencyMS}
		env.Response.Body, env.Response.BodyEncoding = EncodeBody(x.Response.Body)
	}
	return env
}

// envelopeQuery writes a query so that Decode, which drops one leading
// "?", reads it back as it was: a query that itself starts with "?" (the
// URL /p??a) gets the "?" Decode takes away.
func envelopeQuery(q string) string {
	if strings.HasPrefix(q, "?") {
		return "?" + q
	}
	return q
}

// EncodeBody returns b as an envelope body and its encoding.
func EncodeBody(b []byte) (string, string) {
	if len(b) == 0 {
		return "", ""
	}
	if isUTF8(b) {
		return string(b), EncodingUTF8
	}
	return base64.StdEncoding.EncodeToString(b), EncodingBase64
}
