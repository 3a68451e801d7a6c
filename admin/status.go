package admin

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/replaykit/replay/pipeline"
	"github.com/replaykit/replay/schemas"
	"github.com/replaykit/replay/sources"
)

// Status is the body of GET /v1/status.
type Status struct {
	// State is "replaying", "paused" (ready: the pipeline does what it
	// was told; Control says by whom) or "degraded" (not ready: Problems
	// says why). /readyz also pings the brokers and the catalog.
	State     string      `json:"state"`
	Problems  []string    `json:"problems"`
	RunID     string      `json:"run_id"`
	Target    string      `json:"target"`
	Baseline  string      `json:"baseline,omitempty"`
	StartedAt time.Time   `json:"started_at"`
	Uptime    string      `json:"uptime"` // Go duration, e.g. "1m30.5s"
	Stats     StatusStats `json:"stats"`
	// Control is the live control and what the pipeline derived from it;
	// absent when the server has no Controller.
	Control *pipeline.ControlStatus `json:"control,omitempty"`
	// Lag is the consumer lag; absent without a Kafka source.
	Lag *LagStatus `json:"lag,omitempty"`
	// Window is what the last minute saw: rates, errors, live verdicts and
	// latency percentiles of both sides.
	Window WindowStatus `json:"window"`
}

// Values of Status.State.
const (
	StateReplaying = "replaying"
	StatePaused    = "paused"
	StateDegraded  = "degraded"
)

// LagStatus is the consumer lag of the partitions assigned to this member:
// per partition the end offset minus the group's committed offset, asked
// of the brokers on a timer (sources.PartitionLag).
type LagStatus struct {
	Total int64 `json:"total"`
	// Assigned counts the partitions assigned to this member, each in
	// Partitions.
	Assigned   int                    `json:"assigned"`
	Partitions []sources.PartitionLag `json:"partitions"`
}

// StatusStats is pipeline.Stats as JSON, with snake_case names; see
// pipeline.Stats for what each counts. Committed offsets are a list, since
// JSON objects cannot be keyed by topic and partition.
type StatusStats struct {
	Consumed     int64            `json:"consumed"`
	Decoded      int64            `json:"decoded"`
	DeadLettered int64            `json:"dead_lettered"`
	Filtered     int64            `json:"filtered"`
	DialedOut    int64            `json:"dialed_out"`
	Amplified    int64            `json:"amplified"`
	KeyQueued    int64            `json:"key_queued"`
	SkippedHeld  int64            `json:"skipped_held"`
	Replayed     int64            `json:"replayed"`
	Retries      int64            `json:"retries"`
	ReplayErrors map[string]int64 `json:"replay_errors"`
	Discarded    int64            `json:"discarded"`
	Abandoned    int64            `json:"abandoned"`
	RowsWritten  map[string]int64 `json:"rows_written"` // by table name
	Flushes      int64            `json:"flushes"`
	Commits      int64            `json:"commits"`
	CommitErrors int64            `json:"commit_errors"`
	InFlight     int64            `json:"in_flight"`
	Breaker      string           `json:"breaker"`
	BreakerOpens int64            `json:"breaker_opens"`
	Committed    []CommittedAt    `json:"committed"`
	// Live are the live comparison's counts since the start, by endpoint,
	// and LiveTotal their sum; absent when live comparison is off.
	Live      map[string]LiveStatus `json:"live,omitempty"`
	LiveTotal *LiveStatus           `json:"live_total,omitempty"`
}

// LiveStatus is pipeline.LiveCounts with the match rate: Matched /
// (Matched + Mismatched), null when neither.
type LiveStatus struct {
	Compared   int64    `json:"compared"`
	Matched    int64    `json:"matched"`
	Mismatched int64    `json:"mismatched"`
	Lineage    int64    `json:"lineage_mismatch"`
	MatchRate  *float64 `json:"match_rate"`
}

func liveStatus(c pipeline.LiveCounts) LiveStatus {
	out := LiveStatus{Compared: c.Compared, Matched: c.Matched, Mismatched: c.Mismatched, Lineage: c.Lineage}
	if r := c.MatchRate(); r != nil {
		rounded := round6(*r)
		out.MatchRate = &rounded
	}
	return out
}

// CommittedAt is the next offset to read of one partition, as last
// committed to the source.
type CommittedAt struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

func statusStats(s pipeline.Stats) StatusStats {
	out := StatusStats{
		Consumed: s.Consumed, Decoded: s.Decoded, DeadLettered: s.DeadLettered, Filtered: s.Filtered,
		DialedOut: s.DialedOut, Amplified: s.Amplified, KeyQueued: s.KeyQueued,
		SkippedHeld: s.SkippedHeld, Replayed: s.Replayed, Retries: s.Retries,
		ReplayErrors: s.ReplayErrors, Discarded: s.Discarded, Abandoned: s.Abandoned,
		RowsWritten: map[string]int64{
			schemas.TableProduction:  s.RowsWritten.Production,
			schemas.TableReplay:      s.RowsWritten.Replay,
			schemas.TableBaseline:    s.RowsWritten.Baseline,
			schemas.TableDeadLetters: s.RowsWritten.DeadLetter,
		},
		Flushes: s.Flushes, Commits: s.Commits, CommitErrors: s.CommitErrors,
		InFlight: s.InFlight, Breaker: s.Breaker, BreakerOpens: s.BreakerOpens,
		Committed: []CommittedAt{},
	}
	if out.ReplayErrors == nil {
		out.ReplayErrors = map[string]int64{}
	}
	for tp, off := range s.Committed {
		out.Committed = append(out.Committed, CommittedAt{Topic: tp.Topic, Partition: tp.Partition, Offset: off})
	}
	slices.SortFunc(out.Committed, func(a, b CommittedAt) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	if s.Live != nil {
		out.Live = make(map[string]LiveStatus, len(s.Live))
		for e, c := range s.Live {
			out.Live[e] = liveStatus(c)
		}
		total := liveStatus(s.LiveTotal)
		out.LiveTotal = &total
	}
	return out
}

func lagTotal(ls []sources.PartitionLag) int64 {
	var n int64
	for _, l := range ls {
		n += l.Lag
	}
	return n
}

// Status returns what GET /v1/status answers.
func (s *Server) Status() Status {
	now := s.deps.Now()
	st := Status{
		RunID:     s.deps.RunID,
		Target:    s.deps.Target,
		Baseline:  s.deps.Baseline,
		StartedAt: s.deps.StartedAt.UTC(),
		Uptime:    now.Sub(s.deps.StartedAt).Round(time.Millisecond).String(),
		Stats:     statusStats(s.deps.Stats.Stats()),
		Window:    s.observer.window.summary(now),
	}
	st.State, st.Problems = StateReplaying, []string{}
	if s.deps.Control != nil {
		c := s.deps.Control.Control()
		st.Control = &c
		if c.Paused || c.PausedBy != "" {
			st.State = StatePaused
		}
	}
	if s.deps.Health != nil {
		if err := s.deps.Health.Ready(context.Background()); err != nil {
			st.State = StateDegraded
			st.Problems = strings.Split(err.Error(), "\n")
		}
	}
	if s.deps.Lag != nil {
		ls := s.deps.Lag.Lag()
		st.Lag = &LagStatus{Total: lagTotal(ls), Assigned: len(ls), Partitions: ls}
	}
	return st
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Status())
}
