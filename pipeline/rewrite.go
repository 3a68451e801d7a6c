package pipeline

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/replaykit/replay/schemas"
)

// rewriter turns a captured request into the request sent to the target:
// hop-by-hop headers dropped, rewrite rules applied in order, then the
// replay ID header, then the Host policy.
type rewriter struct {
	rules    []rule
	target   *url.URL
	host     string // HostTarget, HostOriginal or a literal host
	idHeader string // canonical; "" when disabled
}

// outRequest is the part of a request the rules edit.
type outRequest struct {
	Path   string // escaped form, as captured
	Query  string // raw, without "?"
	Header http.Header
}

type rule interface {
	apply(r *outRequest)
}

// hopByHop are the headers that belong to one connection, not to the
// request (RFC 9110 7.6.1), plus the ones the client recomputes.
var hopByHop = map[string]bool{
	"Connection":          true,
	"Proxy-Connection":    true,
	"Keep-Alive":          true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
	"Content-Length":      true, // recomputed from the body
	"Host":                true, // set by the Host policy
}

// request returns the request to send for x, in the shape of a row: the
// scheme and host it goes to (Host is the Host header), the full path
// including the target's prefix, and the headers as sent, unredacted.
func (w *rewriter) request(x *schemas.Exchange) schemas.Request {
	out := outRequest{Path: x.Request.Path, Query: x.Request.Query, Header: forwardHeaders(x.Request.Headers)}
	for _, r := range w.rules {
		r.apply(&out)
	}
	if w.idHeader != "" {
		out.Header.Set(w.idHeader, x.CorrelationID)
	}
	return schemas.Request{
		Method:  x.Request.Method,
		Scheme:  w.target.Scheme,
		Host:    w.hostHeader(x),
		Path:    joinPath(w.target.EscapedPath(), out.Path),
		Query:   sendableQuery(out.Query),
		Headers: out.Header,
		Body:    x.Request.Body,
	}
}

// hostHeader applies the Host policy.
func (w *rewriter) hostHeader(x *schemas.Exchange) string {
	switch w.host {
	case HostTarget:
		return w.target.Host
	case HostOriginal:
		if x.Request.Host != "" {
			return x.Request.Host
		}
		for k, vs := range x.Request.Headers {
			if strings.EqualFold(k, "Host") && len(vs) > 0 && vs[0] != "" {
				return vs[0]
			}
		}
		return w.target.Host
	default:
		return w.host
	}
}

// forwardHeaders copies captured headers into canonical form, without
// hop-by-hop headers and without the headers the Connection header names.
// The value lists are shared with captured, clipped, so that an append to
// one (http.Header.Add) copies it instead of writing into captured's; the
// rules replace or delete lists, never change them in place.
func forwardHeaders(captured map[string][]string) http.Header {
	h := make(http.Header, len(captured))
	var connection []string
	for k, vs := range captured {
		ck := http.CanonicalHeaderKey(k)
		if ck == "Connection" {
			connection = append(connection, vs...)
		}
		if hopByHop[ck] {
			continue
		}
		if prev, ok := h[ck]; ok { // two spellings of one name
			h[ck] = append(slices.Clip(prev), vs...)
		} else {
			h[ck] = slices.Clip(vs)
		}
	}
	for _, v := range connection {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	return h
}

// sendableQuery percent-encodes the bytes of a captured query that cannot
// stand in an HTTP request line: a space ends the request target (the
// target answers 400 to a request replay made malformed), and "#" starts a
// fragment, which the target would not see as part of the query. The rest,
// escapes included, is kept byte for byte. Control characters are left for
// newHTTPRequest to refuse.
func sendableQuery(q string) string {
	if !strings.ContainsAny(q, " #") {
		return q
	}
	return strings.NewReplacer(" ", "%20", "#", "%23").Replace(q)
}

// joinPath puts the target's path prefix before a request path.
func joinPath(prefix, path string) string {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return strings.TrimSuffix(prefix, "/") + path
}

type pathRule struct {
	re      *regexp.Regexp
	replace string
}

func (p pathRule) apply(r *outRequest) { r.Path = p.re.ReplaceAllString(r.Path, p.replace) }

// queryRule edits the raw query without re-encoding the parameters it
// leaves alone, so their order and escaping reach the target unchanged.
type queryRule struct {
	set    [][2]string     // sorted by name
	remove map[string]bool // includes the names in set
}

func (q queryRule) apply(r *outRequest) {
	var kept []string
	if r.Query != "" {
		for _, part := range strings.Split(r.Query, "&") {
			if part == "" {
				continue
			}
			name, _, _ := strings.Cut(part, "=")
			if dec, err := url.QueryUnescape(name); err == nil {
				name = dec
			}
			if !q.remove[name] {
				kept = append(kept, part)
			}
		}
	}
	for _, kv := range q.set {
		kept = append(kept, url.QueryEscape(kv[0])+"="+url.QueryEscape(kv[1]))
	}
	r.Query = strings.Join(kept, "&")
}

type headerRule struct {
	set    [][2]string // canonical names, sorted
	remove []string    // canonical names
}

func (h headerRule) apply(r *outRequest) {
	for _, name := range h.remove {
		r.Header.Del(name)
	}
	for _, kv := range h.set {
		r.Header.Set(kv[0], kv[1])
	}
}
