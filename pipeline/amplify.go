package pipeline

import (
	"math"
	"strconv"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"

	"github.com/replaykit/replay/schemas"
)

// maxMultiplier bounds an amplification factor: every copy is a replay
// row held in memory until its record is flushed, so the factor
// multiplies the in-flight budget's rows.
const maxMultiplier = 100

// factor returns the amplification factor of x under ctl: the multiplier
// of the value of x's amplify key, or ctl.MultiplierDefault when the value
// is not listed or x has no such key.
func factor(key keyExpr, x *schemas.Exchange, ctl Control) float64 {
	if v, ok := key.eval(x); ok {
		if f, ok := ctl.Multipliers[v]; ok {
			return f
		}
	}
	return ctl.MultiplierDefault
}

// copiesOf returns how many times a record with factor f and the given
// correlation ID is replayed: floor(f), plus one when frac(f) > u, where u
// is the record's amplifyDraw. Over many records the count averages f; an
// integer f gives exactly f; the same record always gets the same count.
func copiesOf(f float64, correlationID string) int {
	n := math.Floor(f)
	if f-n > amplifyDraw(correlationID) {
		n++
	}
	return int(n)
}

// amplifyDraw maps a correlation ID to u in [0, 1): the top 53 bits of
// XXH64("amplify:" + correlation ID) over 2^53. The prefix keeps u
// independent of the dial bucket when the dial keys on the correlation ID
// (else only records with low hashes would be dialed in, and they would
// be amplified more often).
func amplifyDraw(correlationID string) float64 {
	return float64(xxhash.Sum64String("amplify:"+correlationID)>>11) / (1 << 53)
}

// copyID is the correlation ID of copy n (2, 3, …) of a record.
func copyID(correlationID string, n int) string {
	return correlationID + "#" + strconv.Itoa(n)
}

// replayJob is one request to send: a record's replay, or one of its
// amplified copies. Each goes through a worker, the pacer and the breaker
// on its own, and counts against the rate.
type replayJob struct {
	t   *ticket
	rec *pendingReplay
	// x is the exchange as sent: a copy's carries its derived correlation
	// ID (<id>#2, …), which the replay ID header and its row get.
	x *schemas.Exchange
	// copy is 0 for the record's own replay, n-1 for copy <id>#n.
	copy int
	// key is the record's ordering key when ordered (per-key ordering is
	// on and the record has the key).
	key     string
	ordered bool
}

// pendingReplay is a record being replayed: its result fills in as its
// requests finish, and is completed by the last one.
type pendingReplay struct {
	x    *schemas.Exchange // the record's exchange
	res  *schemas.Result
	left atomic.Int32 // requests not finished yet
}

// jobs returns the n requests of a registered record: its own replay,
// then copies <id>#2 … <id>#n. Each copy writes its own slot of
// res.Copies, and the atomic countdown orders those writes before the
// completion that hands res to the sink.
func jobs(t *ticket, x *schemas.Exchange, res *schemas.Result, n int) []*replayJob {
	rec := &pendingReplay{x: x, res: res}
	rec.left.Store(int32(n))
	if n > 1 {
		res.Copies = make([]*schemas.ReplayRow, n-1)
	}
	out := make([]*replayJob, n)
	for i := range out {
		j := &replayJob{t: t, rec: rec, x: x, copy: i}
		if i > 0 {
			c := *x
			c.CorrelationID = copyID(x.CorrelationID, i+1)
			j.x = &c
		}
		out[i] = j
	}
	return out
}

// finish records row as j's and reports whether j was the record's last
// request to finish: its result is then complete.
func (j *replayJob) finish(row *schemas.ReplayRow) (last bool) {
	if j.copy == 0 {
		j.rec.res.Replay = row
	} else {
		row.AmplifiedFrom = j.rec.x.CorrelationID
		j.rec.res.Copies[j.copy-1] = row
	}
	return j.rec.left.Add(-1) == 0
}
