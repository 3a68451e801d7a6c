package pipeline

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/replaykit/replay/schemas"
)

// Key expressions name the part of an exchange that dial, amplify and
// ordering key on.
const (
	// KeyCorrelationID is the exchange's correlation ID.
	KeyCorrelationID = "correlation_id"
	keyAttribute     = "attribute:"
	keyHeader        = "header:"
	keyQuery         = "query:"
)

// keyExpr reads one key from an exchange: its correlation ID, an
// attribute, a request header (first value) or a query parameter (first
// value).
type keyExpr struct {
	kind byte // 'c', 'a', 'h', 'q'
	name string
}

// parseKeyExpr parses correlation_id, attribute:NAME, header:NAME or
// query:NAME.
func parseKeyExpr(s string) (keyExpr, error) {
	const help = "use correlation_id, attribute:NAME, header:NAME or query:NAME"
	switch {
	case s == KeyCorrelationID:
		return keyExpr{kind: 'c'}, nil
	case strings.HasPrefix(s, keyAttribute) && len(s) > len(keyAttribute):
		return keyExpr{kind: 'a', name: s[len(keyAttribute):]}, nil
	case strings.HasPrefix(s, keyHeader) && len(s) > len(keyHeader):
		name := s[len(keyHeader):]
		if !validToken(name) {
			return keyExpr{}, fmt.Errorf("%q is not a valid header name; %s", name, help)
		}
		return keyExpr{kind: 'h', name: http.CanonicalHeaderKey(name)}, nil
	case strings.HasPrefix(s, keyQuery) && len(s) > len(keyQuery):
		return keyExpr{kind: 'q', name: s[len(keyQuery):]}, nil
	default:
		return keyExpr{}, fmt.Errorf("%q is not a key expression; %s", s, help)
	}
}

// eval returns the key of x and whether x has it.
func (k keyExpr) eval(x *schemas.Exchange) (string, bool) {
	switch k.kind {
	case 'c':
		return x.CorrelationID, x.CorrelationID != ""
	case 'a':
		v, ok := x.Attributes[k.name]
		return v, ok
	case 'h':
		if vs := x.Request.Headers[k.name]; len(vs) > 0 {
			return vs[0], true
		}
		for name, vs := range x.Request.Headers { // headers not in canonical form
			if len(vs) > 0 && strings.EqualFold(name, k.name) {
				return vs[0], true
			}
		}
		return "", false
	case 'q':
		q, err := url.ParseQuery(x.Request.Query)
		if err != nil && q == nil {
			return "", false
		}
		if vs, ok := q[k.name]; ok && len(vs) > 0 {
			return vs[0], true
		}
		return "", false
	}
	return "", false
}
