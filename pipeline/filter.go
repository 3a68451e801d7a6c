package pipeline

import (
	"regexp"

	"github.com/replaykit/replay/schemas"
)

// selector decides which decoded exchanges are replayed (FilterConfig).
type selector struct {
	allMethods bool
	methods    map[string]bool // upper case
	include    []*regexp.Regexp
	exclude    []*regexp.Regexp
}

// selected reports whether x is to be replayed. It looks at the captured
// request, before any rewrite.
func (s *selector) selected(x *schemas.Exchange) bool {
	if !s.allMethods && !s.methods[x.Request.Method] {
		return false
	}
	path := x.Request.Path
	if len(s.include) > 0 && !matchAny(s.include, path) {
		return false
	}
	return !matchAny(s.exclude, path)
}

func matchAny(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}
