package normalize

import (
	"mime"
	"net/textproto"
	"slices"
	"strings"
)

// headerRule decides which headers are compared and how.
type headerRule struct {
	all    bool     // "*": every header present on either side
	names  []string // canonical names compared when !all, ignored ones removed
	ignore map[string]bool
}

func newHeaderRule(compare, ignore []string) headerRule {
	h := headerRule{ignore: make(map[string]bool, len(ignore))}
	for _, name := range ignore {
		h.ignore[name] = true
	}
	for _, name := range compare {
		if name == "*" {
			h.all = true
			continue
		}
		if !h.ignore[name] && !slices.Contains(h.names, name) {
			h.names = append(h.names, name)
		}
	}
	return h
}

// compare appends "header:<Name>" to paths for each compared header whose
// values differ (a header missing on one side differs).
func (h *headerRule) compare(production, replay map[string][]string, paths []string) []string {
	names := h.names
	if h.all {
		names = h.union(production, replay)
	}
	for _, name := range names {
		pv, pok := headerValues(production, name)
		rv, rok := headerValues(replay, name)
		if pok != rok || !headerValuesEqual(name, pv, rv) {
			paths = append(paths, "header:"+name)
		}
	}
	return paths
}

// union returns the canonical names present on either side, sorted, minus
// the ignored ones.
func (h *headerRule) union(a, b map[string][]string) []string {
	names := make([]string, 0, len(a)+len(b))
	for _, hdr := range []map[string][]string{a, b} {
		for k := range hdr {
			name := textproto.CanonicalMIMEHeaderKey(k)
			if !h.ignore[name] {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// headerValues finds a header by canonical name in a map whose keys may not
// be canonical.
func headerValues(hdr map[string][]string, name string) ([]string, bool) {
	if v, ok := hdr[name]; ok {
		return v, true
	}
	for k, v := range hdr {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

func headerValuesEqual(name string, a, b []string) bool {
	if len(a) == 1 && len(b) == 1 && strings.TrimSpace(a[0]) == strings.TrimSpace(b[0]) {
		return true
	}
	return headerValue(name, a) == headerValue(name, b)
}

// headerValue joins a header's values, trimmed, with ", ". Content-Type is
// compared as a media type: type, subtype, parameter names and the charset
// are case-insensitive and spacing does not count, so
// "application/json;charset=UTF-8" equals "application/json; charset=utf-8".
func headerValue(name string, values []string) string {
	parts := make([]string, len(values))
	for i, v := range values {
		v = strings.TrimSpace(v)
		if name == "Content-Type" {
			if mt, params, err := mime.ParseMediaType(v); err == nil {
				if cs, ok := params["charset"]; ok {
					params["charset"] = strings.ToLower(cs)
				}
				v = mime.FormatMediaType(mt, params)
			}
		}
		parts[i] = v
	}
	return strings.Join(parts, ", ")
}
