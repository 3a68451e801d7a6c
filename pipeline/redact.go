package pipeline

import (
	"net/http"

	"github.com/replaykit/replay/schemas"
)

// Redacted replaces the value of every redacted header in a written row.
const Redacted = "REDACTED"

// redactor holds the canonical names of the headers whose values never
// reach a row (Config.RedactHeaders).
type redactor map[string]bool

// headers returns h with the values of redacted headers replaced. The input
// is never modified, since the replayer still sends the original values: a
// copy is returned when anything changed, h itself otherwise.
func (r redactor) headers(h map[string][]string) map[string][]string {
	out, _ := r.redact(h)
	return out
}

func (r redactor) redact(h map[string][]string) (map[string][]string, bool) {
	if len(r) == 0 || len(h) == 0 {
		return h, false
	}
	hit := false
	for k := range h {
		if r[http.CanonicalHeaderKey(k)] {
			hit = true
			break
		}
	}
	if !hit {
		return h, false
	}
	out := make(map[string][]string, len(h))
	for k, vs := range h {
		if r[http.CanonicalHeaderKey(k)] {
			red := make([]string, len(vs))
			for i := range red {
				red[i] = Redacted
			}
			vs = red
		}
		out[k] = vs
	}
	return out, true
}

// exchange returns x with its request and response headers redacted: x
// itself when nothing needs redacting, a shallow copy otherwise.
func (r redactor) exchange(x *schemas.Exchange) *schemas.Exchange {
	reqH, reqChanged := r.redact(x.Request.Headers)
	var respH map[string][]string
	respChanged := false
	if x.Response != nil {
		respH, respChanged = r.redact(x.Response.Headers)
	}
	if !reqChanged && !respChanged {
		return x
	}
	c := *x
	c.Request.Headers = reqH
	if x.Response != nil {
		resp := *x.Response
		resp.Headers = respH
		c.Response = &resp
	}
	return &c
}
