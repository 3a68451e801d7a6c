package compare

import (
	"github.com/replaykit/replay/normalize"
)

// pair is one correlation ID after the join: both rows, or one of them.
type pair struct {
	production, replay *sideRow
}

// outcome is what a worker decided about one pair.
type outcome struct {
	pair
	endpoint string
	class    string
	result   normalize.Result // for ClassMismatched: the diff
}

// classify decides the class of p: only one side, lineage mismatch, or the
// normalized comparison's verdict. It runs on the worker goroutines;
// Normalizer.Endpoint and Compare are safe for concurrent use.
func classify(norm *normalize.Normalizer, p pair) outcome {
	o := outcome{pair: p}
	switch {
	case p.production == nil:
		// Only the replay request says where it went: after rewrite, so
		// its endpoint may differ from production's.
		o.endpoint = norm.Endpoint(p.replay.method, p.replay.path)
		o.class = ClassOnlyReplay
	case p.replay == nil:
		o.endpoint = norm.Endpoint(p.production.method, p.production.path)
		o.class = ClassOnlyProduction
	default:
		o.endpoint = norm.Endpoint(p.production.method, p.production.path)
		if lineageConflict(p.production.lineage, p.replay.lineage) {
			o.class = ClassLineageMismatch

			break
		}
		// A baseline target (production replayed against itself) would
		// plug in here: a difference that the baseline pair shows too is
		// noise, counted in Counts.NoiseExcluded instead of Mismatched.
		res := norm.Compare(p.production.method, p.production.path, p.production.side(), p.replay.side())
		if res.Equal {
			o.class = ClassMatched
		} else {
			o.class = ClassMismatched
			o.result = res
		}
	}

	return o
}

// lineageConflict reports whether both sides carry lineage and a key they
// share has different values: the pair was served by different versions of
// a dependency, so a difference says nothing about the migration.
func lineageConflict(a, b map[string]string) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	if len(b) < len(a) {
		a, b = b, a
	}
	for k, va := range a {
		if vb, ok := b[k]; ok && va != vb {
			return true
		}
	}

	return false
}
