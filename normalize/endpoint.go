package normalize

import (
	"errors"
	"fmt"
	"strings"
)

// route is one configured endpoint name.
type route struct {
	method   string   // upper case; "" matches every method
	template string   // the path as configured, without a trailing slash
	segs     []string // "" for a {param} segment
}

// parseRoute parses "GET /v1/titles/{id}" or "/v1/users/{user}/recommendations".
func parseRoute(s string) (route, error) {
	method, path, err := parseMatch(s)
	if err != nil {
		return route{}, err
	}
	r := route{method: method, template: path}
	if path == "/" {
		return r, nil
	}
	for _, seg := range strings.Split(path[1:], "/") {
		switch {
		case strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") && len(seg) > 2 && !strings.ContainsAny(seg[1:len(seg)-1], "{}"):
			r.segs = append(r.segs, "")
		case strings.ContainsAny(seg, "{}"):
			return route{}, fmt.Errorf("%q: a parameter must be a whole segment like {id}, got %q", s, seg)
		case seg == "":
			return route{}, fmt.Errorf("%q: empty path segment", s)
		default:
			r.segs = append(r.segs, seg)
		}
	}
	return r, nil
}

// parseMatch splits "METHOD /path" or "/path" and cleans the path the way
// Endpoint cleans request paths.
func parseMatch(s string) (method, path string, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", "", errors.New("required")
	}
	path = s
	if m, p, ok := strings.Cut(s, " "); ok {
		method, path = strings.ToUpper(m), strings.TrimSpace(p)
		for _, c := range method {
			if c < 'A' || c > 'Z' {
				return "", "", fmt.Errorf("%q: invalid method %q", s, m)
			}
		}
	}
	if !strings.HasPrefix(path, "/") {
		return "", "", fmt.Errorf("%q: the path must start with /", s)
	}
	if strings.ContainsAny(path, "?# ") {
		return "", "", fmt.Errorf("%q: the path must hold no query, fragment or space", s)
	}
	return method, cleanPath(path), nil
}

// cleanPath drops the query, the fragment and a trailing slash.
func cleanPath(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	if p == "" {
		return "/"
	}
	if len(p) > 1 && p[len(p)-1] == '/' {
		p = strings.TrimRight(p, "/")
		if p == "" {
			p = "/"
		}
	}
	return p
}

// Endpoint names the endpoint of a request: "GET /v1/titles/{id}". The first
// configured route matching the method and path wins; otherwise numeric,
// UUID and hex-id path segments (8 or more hex characters with at least one
// digit) and short-prefixed numbers (u-326, ord_1042) become {id}. The query and a trailing slash are ignored; words such
// as "v1" or "titles" are kept. With an empty method the name is the path
// template alone.
func (n *Normalizer) Endpoint(method, path string) string {
	method = strings.ToUpper(strings.TrimSpace(method))
	path = cleanPath(path)
	if path[0] != '/' {
		path = "/" + path
	}
	for i := range n.routes {
		if n.routes[i].matches(method, path) {
			return joinEndpoint(method, n.routes[i].template)
		}
	}
	return joinEndpoint(method, templatePath(path))
}

func joinEndpoint(method, path string) string {
	if method == "" {
		return path
	}
	return method + " " + path
}

func (r *route) matches(method, path string) bool {
	if r.method != "" && r.method != method {
		return false
	}
	if path == "/" {
		return len(r.segs) == 0
	}
	rest := path[1:]
	for _, want := range r.segs {
		if rest == "" && want != "" {
			return false
		}
		seg, tail, _ := strings.Cut(rest, "/")
		if seg == "" || (want != "" && seg != want) {
			return false
		}
		rest = tail
	}
	return rest == ""
}

// templatePath replaces id-like segments with {id}; it allocates only when
// it changes something.
func templatePath(path string) string {
	var b strings.Builder
	last := 0 // start of the part of path not yet written to b
	for i := 1; i <= len(path); {
		end := strings.IndexByte(path[i:], '/')
		if end < 0 {
			end = len(path)
		} else {
			end += i
		}
		if isID(path[i:end]) {
			if b.Len() == 0 {
				b.Grow(len(path))
			}
			b.WriteString(path[last:i])
			b.WriteString("{id}")
			last = end
		}
		i = end + 1
	}
	if last == 0 {
		return path
	}
	b.WriteString(path[last:])
	return b.String()
}

// isID reports whether a path segment is a number, a UUID, a hex id or a
// prefixed number (u-326).
func isID(seg string) bool {
	if seg == "" {
		return false
	}
	digits, hex := 0, 0
	for i := 0; i < len(seg); i++ {
		switch c := seg[i]; {
		case '0' <= c && c <= '9':
			digits++
		case 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
			hex++
		}
	}
	switch {
	case digits == len(seg):
		return true
	case digits+hex == len(seg):
		return len(seg) >= 8 && digits > 0
	}
	return isUUID(seg) || isPrefixedID(seg)
}

// isPrefixedID reports whether seg is a letter prefix of one to three
// letters, a - or _, and digits: u-326, ord_1042, d-19. Slugs such as
// heat-1995 and versions such as api-v2 are not IDs.
func isPrefixedID(seg string) bool {
	i := strings.IndexAny(seg, "-_")
	if i < 1 || i > 3 || i == len(seg)-1 {
		return false
	}
	for _, c := range seg[:i] {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	for _, c := range seg[i+1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isUUID reports whether s has the 8-4-4-4-12 hex form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
			continue
		}
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
