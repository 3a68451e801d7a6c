package normalize

import (
	"cmp"
	"slices"
	"strings"

	"github.com/ohler55/ojg/jp"
)

// Every rule finds its targets as concrete locations (member names and
// array indexes from the root) and then edits the document there.
//
// jp parses every path and evaluates every path that uses filters, slices,
// unions or other advanced steps (with Locate). Paths made only of member
// names, indexes, [*] and .. — nearly all of them, $..traceId included —
// are evaluated by the small walk below instead: jp's Locate builds a new
// jp.Expr for every node it visits under .., which measured 15µs per 1.4 KiB
// body for $..traceId (jp's in-place Del: 7µs) against about 1µs here, where
// only a match allocates.

// step is one step of a concrete location.
type step struct {
	key     string
	index   int
	isIndex bool
}

// location is a concrete path below the root; empty means the root.
type location []step

// jsonPath is a compiled JSONPath.
type jsonPath struct {
	expr   jp.Expr // starts with jp.Root
	simple bool    // only Child, Nth, Wildcard and Descent after the root
}

func newJSONPath(x jp.Expr) jsonPath {
	p := jsonPath{expr: x, simple: true}
	for _, f := range x[1:] {
		switch f.(type) {
		case jp.Child, jp.Nth, jp.Wildcard, jp.Descent:
		default:
			p.simple = false
		}
	}
	return p
}

func (p jsonPath) String() string { return p.expr.String() }

// locate returns the concrete locations p matches in doc.
func (p jsonPath) locate(doc any) []location {
	if len(p.expr) == 1 { // "$" (jp's Locate finds nothing for the bare root)
		return []location{{}}
	}
	if p.simple {
		w := walker{frags: p.expr[1:]}
		w.walk(doc, 0)
		return w.out
	}
	exprs := p.expr.Locate(doc, 0)
	locs := make([]location, 0, len(exprs))
	for _, x := range exprs {
		loc := make(location, 0, len(x))
		for _, f := range x {
			switch f := f.(type) {
			case jp.Child:
				loc = append(loc, step{key: string(f)})
			case jp.Nth:
				loc = append(loc, step{index: int(f), isIndex: true})
			}
		}
		locs = append(locs, loc)
	}
	return locs
}

// walker evaluates a simple path; stack is the location of the node being
// visited.
type walker struct {
	frags []jp.Frag
	stack location
	out   []location
}

func (w *walker) walk(v any, fi int) {
	if fi == len(w.frags) {
		w.out = append(w.out, slices.Clone(w.stack))
		return
	}
	switch f := w.frags[fi].(type) {
	case jp.Child:
		if m, ok := v.(map[string]any); ok {
			if c, has := m[string(f)]; has {
				w.visit(c, step{key: string(f)}, fi+1)
			}
		}
	case jp.Nth:
		if a, ok := v.([]any); ok {
			i := int(f)
			if i < 0 {
				i += len(a)
			}
			if 0 <= i && i < len(a) {
				w.visit(a[i], step{index: i, isIndex: true}, fi+1)
			}
		}
	case jp.Wildcard:
		switch t := v.(type) {
		case map[string]any:
			for k, c := range t {
				w.visit(c, step{key: k}, fi+1)
			}
		case []any:
			for i, c := range t {
				w.visit(c, step{index: i, isIndex: true}, fi+1)
			}
		}
	case jp.Descent:
		// The node itself, then every container below it.
		w.walk(v, fi+1)
		switch t := v.(type) {
		case map[string]any:
			for k, c := range t {
				if isContainer(c) {
					w.visit(c, step{key: k}, fi)
				}
			}
		case []any:
			for i, c := range t {
				if isContainer(c) {
					w.visit(c, step{index: i, isIndex: true}, fi)
				}
			}
		}
	}
}

func (w *walker) visit(v any, s step, fi int) {
	w.stack = append(w.stack, s)
	w.walk(v, fi)
	w.stack = w.stack[:len(w.stack)-1]
}

func isContainer(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return true
	}
	return false
}

// getAt returns the value at a location.
func getAt(v any, loc location) (any, bool) {
	for _, s := range loc {
		if s.isIndex {
			a, ok := v.([]any)
			if !ok || s.index < 0 || s.index >= len(a) {
				return nil, false
			}
			v = a[s.index]
			continue
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[s.key]; !ok {
			return nil, false
		}
	}
	return v, true
}

// setAt stores val at loc below v and returns the new v. With create,
// missing objects on the way are made; arrays never grow.
func setAt(v any, loc location, val any, create bool) (any, bool) {
	if len(loc) == 0 {
		return val, true
	}
	s := loc[0]
	if s.isIndex {
		a, ok := v.([]any)
		if !ok || s.index < 0 || s.index >= len(a) {
			return v, false
		}
		nc, ok := setAt(a[s.index], loc[1:], val, create)
		if ok {
			a[s.index] = nc
		}
		return v, ok
	}
	m, ok := v.(map[string]any)
	if !ok {
		return v, false
	}
	child, has := m[s.key]
	if !has && len(loc) > 1 {
		if !create || loc[1].isIndex {
			return v, false
		}
		child = map[string]any{}
	}
	nc, ok := setAt(child, loc[1:], val, create)
	if ok {
		m[s.key] = nc
	}
	return v, ok
}

// deleteAt removes the value at loc below v and returns the new v (an array
// element removed shortens its array). The root cannot be removed.
func deleteAt(v any, loc location) (any, bool) {
	if len(loc) == 0 {
		return v, false
	}
	s := loc[0]
	if s.isIndex {
		a, ok := v.([]any)
		if !ok || s.index < 0 || s.index >= len(a) {
			return v, false
		}
		if len(loc) == 1 {
			return slices.Delete(a, s.index, s.index+1), true
		}
		nc, ok := deleteAt(a[s.index], loc[1:])
		if ok {
			a[s.index] = nc
		}
		return v, ok
	}
	m, ok := v.(map[string]any)
	if !ok {
		return v, false
	}
	child, has := m[s.key]
	if !has {
		return v, false
	}
	if len(loc) == 1 {
		delete(m, s.key)
		return v, true
	}
	nc, ok := deleteAt(child, loc[1:])
	if ok {
		m[s.key] = nc
	}
	return v, ok
}

// deleteAll removes every location and returns the new root.
func deleteAll(doc any, locs []location) any {
	if len(locs) > 1 {
		// Deepest and highest index first, so that removing one location
		// never shifts an array index another location still points at.
		slices.SortFunc(locs, func(a, b location) int { return compareLocations(b, a) })
	}
	for _, loc := range locs {
		doc, _ = deleteAt(doc, loc)
	}
	return doc
}

// compareLocations orders locations step by step; a location sorts before
// the locations it is a prefix of.
func compareLocations(a, b location) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		sa, sb := a[i], b[i]
		if sa.isIndex != sb.isIndex {
			if sa.isIndex {
				return 1
			}
			return -1
		}
		if c := cmp.Compare(sa.index, sb.index); c != 0 {
			return c
		}
		if c := strings.Compare(sa.key, sb.key); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
}
