package normalize

import (
	"bytes"
	"slices"
	"unicode/utf8"
)

// Side is one response of an exchange.
type Side struct {
	Status  int // 0 = no response (timeout, refused, …)
	Headers map[string][]string
	Body    []byte
}

// Result is the outcome of comparing one exchange.
type Result struct {
	Endpoint string
	Equal    bool
	// Patch is the RFC 6902 JSON Patch turning normalized production into
	// normalized replay; nil when the bodies are equal or not JSON.
	Patch []byte
	// Paths are sorted and deduplicated: the JSONPath of each differing
	// body location ("$.year", "$.items[3].id"), "status",
	// "header:Content-Type", and "body" for a difference in a body that is
	// not compared as JSON.
	Paths []string
	// Production and Replay are the bodies as compared: canonical JSON
	// (sorted keys, compact) after normalization, the text with line
	// endings normalized, or the bytes as given (which may alias the
	// input).
	Production []byte
	Replay     []byte
	// BodyMode says how the bodies were compared: "json", "text", "bytes",
	// or "" when they were not (status_only, or a side without a
	// response). It is an addition to the agreed API: reports need it to
	// show a body as JSON, text or hex.
	BodyMode string
}

// DiffersOnlyIn reports whether every entry of r.Paths is in paths, e.g.
// the paths that already differ between two production responses (baseline
// noise). An equal result differs in nothing, so it reports true.
func (r Result) DiffersOnlyIn(paths map[string]bool) bool {
	for _, p := range r.Paths {
		if !paths[p] {
			return false
		}
	}
	return true
}

// Compare normalizes both responses of one exchange with the rules of its
// endpoint and compares them. The status is always compared; headers and
// bodies are compared unless the endpoint is status_only or a side has no
// response. Compare is safe for concurrent use; it does not modify its
// arguments.
//
// Per side, in order: parse → transforms of that side → ignore paths →
// sort arrays; then tolerances, canonical encoding and the diff.
func (n *Normalizer) Compare(method, path string, production, replay Side) Result {
	res := Result{Endpoint: n.Endpoint(method, path)}
	rs := n.rulesFor(res.Endpoint)
	var paths []string
	if production.Status != replay.Status {
		paths = append(paths, "status")
	}
	if rs.statusOnly || production.Status == 0 || replay.Status == 0 {
		res.Production, res.Replay = production.Body, replay.Body
	} else {
		paths = rs.headers.compare(production.Headers, replay.Headers, paths)
		paths = rs.compareBodies(&res, production.Body, replay.Body, paths)
	}
	if len(paths) > 1 {
		slices.Sort(paths)
		paths = slices.Compact(paths)
	}
	res.Paths = paths
	res.Equal = len(paths) == 0
	return res
}

// compareBodies compares two bodies in the endpoint's body mode, fills the
// body fields of res and appends the differing paths.
func (rs *ruleSet) compareBodies(res *Result, production, replay []byte, paths []string) []string {
	mode := rs.body
	if mode == bodyAuto || mode == bodyJSON {
		if pdoc, err := parseJSON(production); err == nil {
			if rdoc, err := parseJSON(replay); err == nil {
				return rs.compareJSON(res, production, replay, pdoc, rdoc, paths)
			}
		}
		// body: json with a body that is not JSON compares it byte for
		// byte: nothing better can be said about it.
		mode = bodyBytes
		if rs.body == bodyAuto && utf8.Valid(production) && utf8.Valid(replay) {
			mode = bodyText
		}
	}
	if mode == bodyText {
		production, replay = normalizeNewlines(production), normalizeNewlines(replay)
	}
	res.BodyMode = mode
	res.Production, res.Replay = production, replay
	if !bytes.Equal(production, replay) {
		paths = append(paths, "body")
	}
	return paths
}

func (rs *ruleSet) compareJSON(res *Result, production, replay []byte, pdoc, rdoc any, paths []string) []string {
	pdoc = rs.normalize(pdoc, rs.productionTransforms)
	rdoc = rs.normalize(rdoc, rs.replayTransforms)
	for _, t := range rs.tolerances {
		rdoc = t.apply(pdoc, rdoc)
	}
	res.BodyMode = bodyJSON
	res.Production = appendCanonical(make([]byte, 0, encodedSize(production)), pdoc)
	res.Replay = appendCanonical(make([]byte, 0, encodedSize(replay)), rdoc)
	if bytes.Equal(res.Production, res.Replay) {
		return paths
	}
	before := len(paths)
	paths = diffPaths(pdoc, rdoc, []byte("$"), paths)
	if len(paths) == before {
		paths = append(paths, "$") // unreachable while encoding and diffPaths agree
	}
	res.Patch = jsonPatch(pdoc, rdoc)
	return paths
}

// encodedSize guesses the size of a body's canonical encoding: about its
// own size (whitespace and escapes shrink it, ignored paths more so).
func encodedSize(body []byte) int {
	return len(body) + len(body)/16 + 16
}

// normalizeNewlines turns CRLF into LF; it allocates only when it changes
// something.
func normalizeNewlines(b []byte) []byte {
	if bytes.Contains(b, []byte("\r\n")) {
		return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	}
	return b
}
