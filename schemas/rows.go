package schemas

import (
	"time"
	"unicode/utf8"
)

func isUTF8(b []byte) bool { return utf8.Valid(b) }

// Error kinds recorded on a replay row whose request got no response.
const (
	ErrorTimeout = "timeout"
	ErrorRefused = "refused"
	ErrorReset   = "reset"
	ErrorTLS     = "tls"
	ErrorDNS     = "dns"
	ErrorOther   = "other"
)

// ProductionRow is one row of production_responses: the exchange as logged.
type ProductionRow struct {
	RunID    string
	Exchange *Exchange
}

// ReplayRow is one row of replay_responses: the request as sent to the
// target and what came back, or the error.
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
// a selected one also has a Replay row; an undecodable one has only a
// DeadLetter row.
type Result struct {
	Source     Coordinates
	Production *ProductionRow
	Replay     *ReplayRow
	DeadLetter *DeadLetterRow
}
