package pipeline

// This file reports the records the pipeline could not decode: counts by
// reason and by shape (what the bytes look like, schemas.SniffShape), a
// warning for the first dead letter of a run and one line per
// Decode.DeadLetterLogInterval while more arrive, a summary when the run
// ends, and the run's failure when they are over Decode.MaxDeadLetterRatio,
// with the likely cause named. It also reports correlation IDs seen on two
// distinct records (duplicates.go finds them).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/replaykit/replay/schemas"
)

// ErrDeadLetters is wrapped by the error Run returns when the run's dead
// letters are over Decode.MaxDeadLetterRatio, or are every record it read.
var ErrDeadLetters = errors.New("the capture could not be decoded")

// ReasonDecodeError is the reason of a dead letter whose error is not a
// schemas.DecodeError (none is expected; the reasons stay a fixed set).
const ReasonDecodeError = "decode_error"

// DeadLetterReasons lists every reason a dead letter can have: the
// schemas.DecodeReasons and ReasonDecodeError. Metrics label by these.
func DeadLetterReasons() []string { return append(schemas.DecodeReasons(), ReasonDecodeError) }

// deadLetterReason is err's reason, one of DeadLetterReasons.
func deadLetterReason(err error) string {
	var de *schemas.DecodeError
	if errors.As(err, &de) && slices.Contains(schemas.DecodeReasons(), de.Reason) {
		return de.Reason
	}
	return ReasonDecodeError
}

// maxDuplicatesLogged is how many duplicate correlation IDs a run logs one
// by one, with both coordinates; past it the periodic line counts them.
const maxDuplicatesLogged = 10

// deadLetterLog counts dead letters by reason and shape, and duplicate
// IDs, for Stats and the periodic and final log lines. Keys are fixed
// sets (DeadLetterReasons, schemas.Shapes), so the maps stay small.
type deadLetterLog struct {
	mu         sync.Mutex
	byReason   map[string]int64
	byShape    map[string]int64
	total      int64
	first      *schemas.DeadLetterRow // the run's first dead letter
	duplicates int64
	// reported are the totals at the last periodic line.
	reportedDead, reportedDups int64
}

// add counts one dead letter and reports whether it is the run's first.
func (d *deadLetterLog) add(row *schemas.DeadLetterRow, shape string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.byReason == nil {
		d.byReason, d.byShape = map[string]int64{}, map[string]int64{}
	}
	d.byReason[row.Reason]++
	d.byShape[shape]++
	d.total++
	if d.first == nil {
		d.first = row
		return true
	}
	return false
}

// addDuplicate counts one duplicate ID and reports whether it is among the
// first maxDuplicatesLogged.
func (d *deadLetterLog) addDuplicate() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.duplicates++
	return d.duplicates <= maxDuplicatesLogged
}

// snapshot returns copies of the counts.
func (d *deadLetterLog) snapshot() (byReason, byShape map[string]int64, duplicates int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.byReason), maps.Clone(d.byShape), d.duplicates
}

// sinceReport returns what arrived since the last call, and the totals.
func (d *deadLetterLog) sinceReport() (newDead, totalDead, newDups, totalDups int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	newDead, newDups = d.total-d.reportedDead, d.duplicates-d.reportedDups
	d.reportedDead, d.reportedDups = d.total, d.duplicates
	return newDead, d.total, newDups, d.duplicates
}

// countsString renders counts of a fixed set of keys, in that order, as
// "k=n k=n", leaving out zeros and adding unknown keys at the end.
func countsString(counts map[string]int64, order []string) string {
	var b strings.Builder
	add := func(k string, n int64) {
		if n == 0 {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", k, n)
	}
	for _, k := range order {
		add(k, counts[k])
	}
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		if !slices.Contains(order, k) {
			add(k, counts[k])
		}
	}
	return b.String()
}

// mostCommon is the key with the largest count, ties broken by order.
func mostCommon(counts map[string]int64, order []string) string {
	best, bestN := "", int64(0)
	for _, k := range order {
		if counts[k] > bestN {
			best, bestN = k, counts[k]
		}
	}
	return best
}

// recordDeadLetter counts a dead letter written for rec and logs the first
// of the run. It runs on the intake goroutine.
func (p *Pipeline) recordDeadLetter(row *schemas.DeadLetterRow) {
	shape := schemas.SniffShape(row.Raw)
	if p.deadLetters.add(row, shape) {
		p.log.Warn("dead letter: a record could not be decoded; it is written to dead_letters with its bytes and reason",
			"run_id", p.cfg.RunID, "topic", row.Source.Topic, "partition", row.Source.Partition, "offset", row.Source.Offset,
			"reason", row.Reason, "shape", shape, "error", row.Error)
	}
}

// recordDuplicate counts a correlation ID seen on a second distinct record
// and logs the first few with both records' coordinates.
func (p *Pipeline) recordDuplicate(id string, first, second schemas.Coordinates) {
	p.stats.duplicateIDs.Add(1)
	if p.deadLetters.addDuplicate() {
		p.log.Warn("two distinct records carry the same correlation id; both are written, replay compare joins the one at the lowest coordinates and counts the other as a duplicate",
			"run_id", p.cfg.RunID, "correlation_id", id,
			"first", first.String(), "second", second.String())
	}
}

// reportDeadLetters logs, every Decode.DeadLetterLogInterval until stop is
// closed, the dead letters and duplicate IDs that arrived since its last
// line, when there are any.
func (p *Pipeline) reportDeadLetters(stop <-chan struct{}) {
	t := time.NewTicker(p.cfg.Decode.DeadLetterLogInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		newDead, totalDead, newDups, totalDups := p.deadLetters.sinceReport()
		if newDead > 0 {
			byReason, byShape, _ := p.deadLetters.snapshot()
			p.log.Warn("dead letters since the last report", "run_id", p.cfg.RunID, "new", newDead, "total", totalDead,
				"decoded", p.stats.decoded.Load(), "by_reason", countsString(byReason, DeadLetterReasons()),
				"by_shape", countsString(byShape, schemas.Shapes()))
		}
		if newDups > 0 {
			p.log.Warn("duplicate correlation ids since the last report", "run_id", p.cfg.RunID, "new", newDups, "total", totalDups,
				"window", p.cfg.Decode.DuplicateWindow)
		}
	}
}

// finishDeadLetters logs the run's dead letters and duplicate IDs, when it
// had any, and returns an error wrapping ErrDeadLetters when the dead
// letters are over Decode.MaxDeadLetterRatio or are every record read.
func (p *Pipeline) finishDeadLetters() error {
	byReason, byShape, dups := p.deadLetters.snapshot()
	dead, decoded := p.stats.deadLettered.Load(), p.stats.decoded.Load()
	if dups > 0 {
		p.log.Warn("duplicate correlation ids: distinct records with an id seen before within decode.duplicate_window; replay compare counts them all",
			"run_id", p.cfg.RunID, "duplicate_ids", dups, "window", p.cfg.Decode.DuplicateWindow)
	}
	if dead == 0 {
		return nil
	}
	level := slog.LevelInfo
	read := dead + decoded
	ratio := p.cfg.Decode.MaxDeadLetterRatio
	over := decoded == 0 || float64(dead) > ratio*float64(read)
	if over {
		level = slog.LevelWarn
	}
	p.log.Log(context.Background(), level, "dead letters by reason", "run_id", p.cfg.RunID, "dead_lettered", dead, "decoded", decoded,
		"by_reason", countsString(byReason, DeadLetterReasons()), "by_shape", countsString(byShape, schemas.Shapes()),
		"max_dead_letter_ratio", ratio)
	if !over {
		return nil
	}
	num := message.NewPrinter(language.English)
	cause := likelyCause(byReason, byShape)
	if decoded == 0 {
		return fmt.Errorf("%w: %s: %s; every record is in %s with its bytes, coordinates and reason (%s)",
			ErrDeadLetters, num.Sprintf("0 of %d records decoded", read), cause, schemas.TableDeadLetters,
			countsString(byReason, DeadLetterReasons()))
	}
	return fmt.Errorf("%w: %s: %s dead letters (%.1f%%) are over decode.max_dead_letter_ratio %v; %s; they are in %s with their bytes, coordinates and reason (%s)",
		ErrDeadLetters, num.Sprintf("%d of %d records decoded", decoded, read), num.Sprintf("%d", dead),
		100*float64(dead)/float64(read), ratio, cause, schemas.TableDeadLetters, countsString(byReason, DeadLetterReasons()))
}

// envelopeHint is what every likely cause ends with.
const envelopeHint = `replay reads its capture envelope, one JSON exchange per record (schemas/envelope.schema.json; see README.md, "Dead letters and capture formats")`

// likelyCause names what the dead letters most often look like.
func likelyCause(byReason, byShape map[string]int64) string {
	switch mostCommon(byShape, schemas.Shapes()) {
	case schemas.ShapeHAREntry:
		return `the records look like HAR entries ({"request": {"url": …, "headers": [{"name", "value"}]}}); ` + envelopeHint + `: convert each entry to an envelope before producing it`
	case schemas.ShapeHARLog:
		return `the records look like whole HAR files ({"log": {"entries": […]}}); ` + envelopeHint + `: produce one envelope per entry`
	case schemas.ShapeGoReplay:
		return `the records look like GoReplay (.gor) payloads ("1 <id> <timestamp>" header lines, then raw HTTP); ` + envelopeHint + `: convert each request/response pair to an envelope`
	case schemas.ShapeJSONWithoutRequest:
		return `the records are JSON without a "request" object; ` + envelopeHint
	case schemas.ShapeEnvelope:
		return fmt.Sprintf(`the records look like capture envelopes with bad fields, most often %s; the error column of %s says which; `,
			mostCommon(byReason, DeadLetterReasons()), schemas.TableDeadLetters) + envelopeHint
	default:
		return `the records are not JSON; ` + envelopeHint
	}
}
