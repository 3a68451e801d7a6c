package schemas

import (
	"time"
	"unicode/utf8"
)

func isUTF8(b []byte) bool { return utf8.Valid(b) }

// Error kinds recorded on a replay row. All but ErrorBodyTooLarge mean the
// request got no complete response (a row may still carry the status and
// headers when the connection failed mid-body). An HTTP status, 5xx
// included, is a response, never an error kind.
const (
	// ErrorTimeout: the connect, the TLS handshake, the wait for headers or
	// the whole request (body included) took longer than allowed.
	ErrorTimeout = "timeout"
	// ErrorRefused: nothing listens at the target (connection refused).
	ErrorRefused = "refused"
	// ErrorReset: the connection was reset or closed before the response
	// was complete, before the headers or in the middle of the body.
	ErrorReset = "reset"
	// ErrorTLS: the TLS handshake failed (untrusted or invalid certificate,
	// protocol mismatch).
	ErrorTLS = "tls"
	// ErrorDNS: the target's host name could not be resolved.
	ErrorDNS = "dns"
	// ErrorOther: any other failure to send the request or read the
	// response.
	ErrorOther = "other"
	// ErrorBodyTooLarge: the response was complete but its body was over
	// the configured limit and is stored truncated; the row has the
	// response.
	ErrorBodyTooLarge = "body_too_large"
)

// ProductionRow is one row of production_responses: the exchange as logged.
type ProductionRow struct {
	RunID    string
	Exchange *Exchange
}

// ReplayRow is one row of replay_responses (or of baseline_responses, for
// the baseline target): the request as sent to the target and what came
// back, or the error.
type ReplayRow struct {
	RunID         string
	CorrelationID string
	CapturedAt    time.Time // of the original exchange; partitions both sides alike
	ReplayedAt    time.Time
	Target        string // scheme://host:port the request went to
	Source        Coordinates

	Request Request // as sent, after rewrite

	// Response is nil when the replay failed without a response; ErrorKind
	// and ErrorMessage then say why.
	Response     *Response
	ErrorKind    string
	ErrorMessage string
	Attempts     int

	Lineage map[string]string // read from the replay response

	// AmplifiedFrom is set on an extra copy of a replayed record
	// (evacuation multipliers) to the record's correlation ID; the copy's
	// CorrelationID is derived from it (<id>#2, <id>#3, …). Empty on the
	// record's own replay.
	AmplifiedFrom string
}

// DeadLetterRow is one row of dead_letters: a record that could not be
// decoded, with its raw bytes and the reason.
type DeadLetterRow struct {
	RunID         string
	CorrelationID string // derived from the coordinates
	CapturedAt    time.Time
	ReceivedAt    time.Time
	Source        Coordinates
	Key           []byte
	Raw           []byte
	Reason        string // a DecodeError reason, e.g. bad_json
	Error         string
}

// Result is everything one source record produced, handed to the sink in
// offset order per partition. A decoded record always has a Production row;
// a selected one also has a Replay row, a Baseline row when a baseline
// target is set, and, when it is amplified (evacuation multipliers), the
// replay rows of its extra copies in Copies; an undecodable one has only a
// DeadLetter row.
type Result struct {
	Source     Coordinates
	Production *ProductionRow
	Replay     *ReplayRow
	// Baseline is the same request replayed to the baseline target (a
	// second copy of the old version), for baseline_responses.
	Baseline *ReplayRow
	// Copies are the replay rows of the record's extra copies, in copy
	// order (<id>#2, <id>#3, …), each with AmplifiedFrom set and the
	// record's Source: they are written with the record, in the same
	// commit, and skipped with it when the table already holds it. Set
	// only with Replay.
	Copies     []*ReplayRow
	DeadLetter *DeadLetterRow
}
