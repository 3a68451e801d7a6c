package compare

import (
	"slices"

	"github.com/replaykit/replay/normalize"
)

// pair is one correlation ID after the join: both rows, or one of them,
// and the baseline run's row when there is one (status, headers and body
// only).
type pair struct {
	production, replay *sideRow
	baseline           *sideRow
	// duplicate: a row set aside because a record at lower coordinates
	// carries its correlation ID (ClassDuplicate); one side only.
	duplicate bool
}

// outcome is what a worker decided about one pair.
type outcome struct {
	pair
	endpoint string
	class    string
	result   normalize.Result // for ClassMismatched: the diff
	// withBaseline reports that the pair was compared with its baseline
	// row too; noisy are then the paths where production and the baseline
	// differ (sorted), whatever the class.
	withBaseline bool
	noisy        []string
}

// classify decides the class of p: only one side, lineage mismatch, or the
// normalized comparison's verdict. It runs on the worker goroutines;
// Normalizer.Endpoint and Compare are safe for concurrent use.
func classify(norm *normalize.Normalizer, p pair) outcome {
	o := outcome{pair: p}
	switch {
	case p.duplicate && p.production != nil:
		o.endpoint = norm.Endpoint(p.production.method, p.production.path)
		o.class = ClassDuplicate
	case p.duplicate:
		o.endpoint = norm.Endpoint(p.replay.method, p.replay.path)
		o.class = ClassDuplicate
	case p.production == nil && p.replay.amplified:
		o.endpoint = norm.Endpoint(p.replay.method, p.replay.path)
		o.class = ClassAmplified
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
		if normalize.LineageDiffers(p.production.lineage, p.replay.lineage) {
			o.class = ClassLineageMismatch

			break
		}
		res := norm.Compare(p.production.method, p.production.path, p.production.side(), p.replay.side())
		var noisy map[string]bool
		if p.baseline != nil {
			// The baseline replayed the same request to the old version:
			// where it differs from production, the service is not
			// deterministic, and a candidate difference there is noise.
			base := norm.Compare(p.production.method, p.production.path, p.production.side(), p.baseline.side())
			o.withBaseline, o.noisy = true, base.Paths
			noisy = make(map[string]bool, len(base.Paths))
			for _, path := range base.Paths {
				noisy[path] = true
			}
		}
		switch {
		case res.Equal:
			o.class = ClassMatched
		case len(noisy) > 0 && res.DiffersOnlyIn(noisy):
			o.class = ClassNoise
		default:
			o.class = ClassMismatched
			if len(noisy) > 0 {
				// Some paths are noise, some are not: the pair stays a
				// mismatch at the others. Its Patch is left whole (it
				// still turns production into the replay).
				res.Paths = slices.DeleteFunc(res.Paths, func(path string) bool { return noisy[path] })
			}
			o.result = res
		}
	}

	return o
}
