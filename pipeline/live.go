package pipeline

import (
	"maps"
	"sync"
	"sync/atomic"

	"github.com/replaykit/replay/normalize"
	"github.com/replaykit/replay/schemas"
)

// LiveCompareConfig configures live comparison: each replayed pair is
// classified by the worker that replayed it, the way `replay compare`
// classifies it later (lineage mismatch, match or mismatch, with the same
// normalize rules), and counted per endpoint in Stats.Live. It shows drift
// while the run is going; the batch job stays the reference, with the
// diffs, the report and baseline noise cancellation.
type LiveCompareConfig struct {
	// Enabled turns live comparison on. The rules are compare.normalize
	// (the caller passes them with SetNormalizer). Default false.
	Enabled bool `yaml:"enabled"`
	// SamplePercent is the share of pairs compared, above 0 and up to
	// 100, to bound the CPU it costs (about a JSON decode of both bodies
	// and a little more per pair; see README). Pairs are chosen by a hash
	// of the correlation ID, so a pair is in or out on every replica and
	// after a restart. Default 100.
	SamplePercent float64 `yaml:"sample_percent"`
	// MaxEndpoints bounds the endpoints counted one by one, so a service
	// with unbounded path names cannot grow the counters without limit:
	// pairs of endpoints first seen after that many are counted under
	// "other" (LiveOther). 1 to 10000; default 256.
	MaxEndpoints int `yaml:"max_endpoints"`
}

// maxLiveEndpoints bounds LiveCompareConfig.MaxEndpoints: adding an
// endpoint copies the table (see liveTable).
const maxLiveEndpoints = 10000

func (c LiveCompareConfig) validate(fail func(field, format string, args ...any)) {
	if !(c.SamplePercent > 0 && c.SamplePercent <= 100) {
		fail("live_compare.sample_percent", "must be above 0 and at most 100 (to stop comparing, set live_compare.enabled: false), got %v", c.SamplePercent)
	}
	if c.MaxEndpoints < 1 || c.MaxEndpoints > maxLiveEndpoints {
		fail("live_compare.max_endpoints", "must be from 1 to %d, got %d", maxLiveEndpoints, c.MaxEndpoints)
	}
}

// LiveOther is the Stats.Live key counting the pairs of endpoints first
// seen after LiveCompareConfig.MaxEndpoints others. It cannot clash with
// an endpoint name, which starts with a method and a space.
const LiveOther = "other"

// SetNormalizer sets the rules that name endpoints (Observation.Endpoint,
// the keys of Stats.Live) and that live comparison applies: pass the
// Normalizer batch compare compiles from compare.normalize, so both name
// and judge a pair alike. Without it, or with nil, endpoints are named by
// automatic templating and live comparison uses no rules. Call it before
// Run.
func (p *Pipeline) SetNormalizer(n *normalize.Normalizer) {
	if n == nil {
		n = defaultEndpoints
	}
	p.names = n
}

// liveCompare classifies the pair of x and its replay row as batch compare
// would and counts the verdict under endpoint. It returns "" for a pair
// left out: not sampled, or an amplified copy (its replay row carries
// another correlation ID, so the tables do not join it with x).
//
// Like batch compare, it compares every pair that will have both rows,
// failed replays included: a side without a response has status 0 and
// only the statuses are compared, so a failed replay of a captured
// response is a mismatch (and body_too_large compares the truncated body).
// The production side is compared as it is written, redacted.
func (p *Pipeline) liveCompare(endpoint string, x *schemas.Exchange, row *schemas.ReplayRow) string {
	lc := p.cfg.LiveCompare
	if row.CorrelationID != x.CorrelationID || !liveSampled(x.CorrelationID, lc.SamplePercent) {
		return ""
	}
	verdict := VerdictMismatch
	switch {
	case normalize.LineageDiffers(x.Lineage, row.Lineage):
		verdict = VerdictLineage
	case p.names.Compare(x.Request.Method, x.Request.Path, p.productionSide(x), replaySide(row)).Equal:
		verdict = VerdictMatch
	}
	c, first := p.stats.live.counter(endpoint, lc.MaxEndpoints)
	if first {
		p.log.Warn("live comparison: endpoint limit reached; pairs of further endpoints are counted as other",
			"run_id", p.cfg.RunID, "max_endpoints", lc.MaxEndpoints, "endpoint", endpoint)
	}
	c.add(verdict)
	return verdict
}

// productionSide is the captured response as the production row stores
// it: headers and body redacted.
func (p *Pipeline) productionSide(x *schemas.Exchange) normalize.Side {
	if x.Response == nil {
		return normalize.Side{}
	}
	return normalize.Side{
		Status:  x.Response.Status,
		Headers: p.redactor.headers(x.Response.Headers),
		Body:    p.redactor.body(x.Response.Body),
	}
}

// replaySide is the replay response (already redacted by the replayer).
func replaySide(row *schemas.ReplayRow) normalize.Side {
	if row.Response == nil {
		return normalize.Side{}
	}
	return normalize.Side{Status: row.Response.Status, Headers: row.Response.Headers, Body: row.Response.Body}
}

// liveSampled reports whether the pair with correlation ID cid is in the
// sample of percent (resolution 0.01%). The hash (FNV-1a with a salt, then
// a 64-bit finalizer) is its own, so the sample is independent of any
// other choice made from the correlation ID, such as a sticky dial.
func liveSampled(cid string, percent float64) bool {
	if percent >= 100 {
		return true
	}
	const salt = "live_compare\x00"
	h := uint64(14695981039346656037)
	for i := 0; i < len(salt); i++ {
		h = (h ^ uint64(salt[i])) * 1099511628211
	}
	for i := 0; i < len(cid); i++ {
		h = (h ^ uint64(cid[i])) * 1099511628211
	}
	// murmur3's fmix64 spreads FNV's weak low bits.
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h%10000 < uint64(percent*100)
}

// liveCounter counts one endpoint's verdicts. It fills a cache line of its
// own, so workers counting different endpoints do not contend.
type liveCounter struct {
	matched, mismatched, lineage atomic.Int64
	_                            [64 - 3*8]byte
}

func (c *liveCounter) add(verdict string) {
	switch verdict {
	case VerdictMatch:
		c.matched.Add(1)
	case VerdictMismatch:
		c.mismatched.Add(1)
	case VerdictLineage:
		c.lineage.Add(1)
	}
}

func (c *liveCounter) load() LiveCounts {
	n := LiveCounts{Matched: c.matched.Load(), Mismatched: c.mismatched.Load(), Lineage: c.lineage.Load()}
	n.Compared = n.Matched + n.Mismatched + n.Lineage
	return n
}

// liveTable holds the live comparison's counters by endpoint. Workers
// look an endpoint up without a lock in an immutable map; adding one (at
// most MaxEndpoints times in a run) copies the map under mu. Once the map
// is full, unknown endpoints go to other, without a lock either.
type liveTable struct {
	endpoints atomic.Pointer[map[string]*liveCounter]
	other     liveCounter
	capped    atomic.Bool // other has been used

	mu sync.Mutex // serializes adding endpoints
}

// counter returns the counter of endpoint, adding it while fewer than
// limit are tracked, else other. first reports that this call sent the
// first endpoint to other.
func (t *liveTable) counter(endpoint string, limit int) (c *liveCounter, first bool) {
	m := t.endpoints.Load()
	if m != nil {
		if c, ok := (*m)[endpoint]; ok {
			return c, false
		}
		if len(*m) >= limit {
			return &t.other, t.capped.CompareAndSwap(false, true)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	m = t.endpoints.Load()
	var next map[string]*liveCounter
	if m == nil {
		next = map[string]*liveCounter{}
	} else {
		if c, ok := (*m)[endpoint]; ok {
			return c, false
		}
		if len(*m) >= limit {
			return &t.other, t.capped.CompareAndSwap(false, true)
		}
		next = make(map[string]*liveCounter, len(*m)+1)
		maps.Copy(next, *m)
	}
	c = &liveCounter{}
	next[endpoint] = c
	t.endpoints.Store(&next)
	return c, false
}

// snapshot returns the counts by endpoint (LiveOther included once used)
// and their sum. The map is never nil.
func (t *liveTable) snapshot() (map[string]LiveCounts, LiveCounts) {
	out := map[string]LiveCounts{}
	var total LiveCounts
	add := func(name string, c *liveCounter) {
		n := c.load()
		out[name] = n
		total.Compared += n.Compared
		total.Matched += n.Matched
		total.Mismatched += n.Mismatched
		total.Lineage += n.Lineage
	}
	if m := t.endpoints.Load(); m != nil {
		for name, c := range *m {
			add(name, c)
		}
	}
	if t.capped.Load() {
		add(LiveOther, &t.other)
	}
	return out, total
}
