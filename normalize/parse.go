package normalize

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"sync"

	"github.com/ohler55/ojg/oj"
)

var errNotJSON = errors.New("not valid JSON")

// parserPool holds ojg parsers: a Parser keeps its scratch buffers between
// calls but is not safe for concurrent use. Reuse stays false, so every
// document gets maps of its own.
var parserPool = sync.Pool{New: func() any { return &oj.Parser{} }}

// parseJSON decodes one body into maps, slices, strings, bools, nil and the
// number types described in canonical.go.
//
// ojg is the parser because it is faster than encoding/json on the same
// input and yields the same generic types. Two of its habits are worked
// around:
//   - it is lenient: it accepts "0." and {"a":} (found by fuzzing). A body
//     that is not strict JSON must not be compared as JSON (a broken
//     serializer in the new service is a finding), so json.Valid checks it
//     first; that costs about a third of what parsing does.
//   - it does not combine an escaped UTF-16 surrogate pair ("\ud83d\ude00")
//     into one character: each half becomes U+FFFD, which would make two
//     different emoji compare equal. A body holding such an escape is
//     decoded with encoding/json (UseNumber, so no digits are lost) instead.
func parseJSON(body []byte) (any, error) {
	if !json.Valid(body) {
		return nil, errNotJSON
	}
	if hasSurrogateEscape(body) {
		return parseStd(body)
	}
	p := parserPool.Get().(*oj.Parser)
	v, err := p.Parse(body)
	parserPool.Put(p)
	return v, err
}

func parseStd(body []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("extra data after the JSON value")
	}
	return v, nil
}

// hasSurrogateEscape reports whether body may hold a \uD800-\uDFFF escape.
// A false positive (an escaped backslash followed by "uD8…") only costs the
// slower parser.
func hasSurrogateEscape(body []byte) bool {
	for {
		i := bytes.Index(body, []byte(`\u`))
		if i < 0 || i+3 >= len(body) {
			return false
		}
		if c := body[i+2]; c == 'd' || c == 'D' {
			switch body[i+3] {
			case '8', '9', 'a', 'b', 'A', 'B', 'c', 'C', 'd', 'D', 'e', 'E', 'f', 'F':
				return true
			}
		}
		body = body[i+2:]
	}
}
