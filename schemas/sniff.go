package schemas

import (
	"bytes"
	"regexp"

	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// Reasons of a DecodeError (DeadLetterRow.Reason): a small fixed set, so
// they can label metrics.
const (
	ReasonBadJSON         = "bad_json"          // not JSON, or a field of the wrong type
	ReasonMissingRequest  = "missing_request"   // JSON without a "request" object
	ReasonInvalidField    = "invalid_field"     // a field out of its range
	ReasonBadBodyEncoding = "bad_body_encoding" // bad base64, or an unknown body_encoding
	ReasonBodyTooLarge    = "body_too_large"    // a body over decode.max_body_bytes
)

// DecodeReasons lists every DecodeError reason.
func DecodeReasons() []string {
	return []string{ReasonBadJSON, ReasonMissingRequest, ReasonInvalidField, ReasonBadBodyEncoding, ReasonBodyTooLarge}
}

// Shapes of an undecodable record, as SniffShape tells them: what the bytes
// look like, to name the likely cause when a whole capture fails to decode.
const (
	ShapeEnvelope           = "envelope"             // a capture envelope with a bad field
	ShapeHAREntry           = "har_entry"            // one HAR entry: {"startedDateTime", "request": {"url", …}}
	ShapeHARLog             = "har_log"              // a whole HAR file: {"log": {"entries": […]}}
	ShapeGoReplay           = "goreplay"             // a GoReplay (.gor) payload: "1 <id> <timestamp>" then raw HTTP
	ShapeJSONWithoutRequest = "json_without_request" // JSON, but no "request" object
	ShapeNotJSON            = "not_json"             // anything else
)

// Shapes lists every shape SniffShape returns.
func Shapes() []string {
	return []string{ShapeEnvelope, ShapeHAREntry, ShapeHARLog, ShapeGoReplay, ShapeJSONWithoutRequest, ShapeNotJSON}
}

// goReplayHeader is the first line of a GoReplay payload: its type (1
// request, 2 original response, 3 replayed response), a hex id, a Unix
// timestamp in nanoseconds, and in newer versions a latency.
var goReplayHeader = regexp.MustCompile(`^[123] [0-9a-fA-F]+ [0-9]+( -?[0-9]+)?\r?\n`)

// sniffed is the top level of a JSON object, as far as SniffShape looks.
type sniffed struct {
	Log *struct {
		Entries jsontext.Value `json:"entries"`
	} `json:"log"`
	StartedDateTime jsontext.Value `json:"startedDateTime"`
	Request         *struct {
		URL jsontext.Value `json:"url"`
	} `json:"request"`
}

// SniffShape says what an undecodable record looks like (one of the Shape
// constants). It only reads raw; it never fails.
func SniffShape(raw []byte) string {
	b := bytes.TrimLeft(bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf")), " \t\r\n")
	if goReplayHeader.Match(b) {
		return ShapeGoReplay
	}
	if len(b) == 0 || b[0] != '{' && b[0] != '[' {
		return ShapeNotJSON
	}
	if !jsontext.Value(b).IsValid() {
		return ShapeNotJSON
	}
	var s sniffed
	if b[0] != '{' || jsonv1.Unmarshal(b, &s) != nil {
		// An array, or an object whose log or request is not an object.
		return ShapeJSONWithoutRequest
	}
	switch {
	case s.Log != nil && s.Log.Entries != nil:
		return ShapeHARLog
	case s.Request != nil && (s.Request.URL != nil || s.StartedDateTime != nil):
		return ShapeHAREntry
	case s.Request != nil:
		return ShapeEnvelope
	default:
		return ShapeJSONWithoutRequest
	}
}
