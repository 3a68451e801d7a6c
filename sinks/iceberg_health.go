package sinks

import (
	"fmt"
	"sync"
	"time"
)

// This file owns what the Iceberg sink tells readiness probes: whether its
// table commits are failing now, since when and why. A commit that fails
// for a reason of its own (the catalog or the storage erred: unreachable,
// disk full, permissions) is retried within one flush (sink.commit_retry);
// while it is, the flush, and with it the run, makes no progress.

// commitHealth is the current run of failed table commits; zero when the
// last commit succeeded. Lost races with another replica's commit are
// progress elsewhere, not failures, and are not counted.
type commitHealth struct {
	mu       sync.Mutex
	since    time.Time
	table    string
	attempts int
	err      error
}

func (h *commitHealth) failed(table string, attempt int, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.since.IsZero() {
		h.since = time.Now()
	}
	h.table, h.attempts, h.err = table, attempt, err
}

func (h *commitHealth) succeeded() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.since, h.table, h.attempts, h.err = time.Time{}, "", 0, nil
}

// CommitFailing returns an error when table commits have failed, with no
// success since, for at least after: the table, for how long, the attempts
// and the last error. It returns nil otherwise. Safe to call from any
// goroutine.
func (s *Iceberg) CommitFailing(now time.Time, after time.Duration) error {
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.since.IsZero() || now.Sub(h.since) < after {
		return nil
	}
	return fmt.Errorf("commits to table %s have failed for %s (%d attempts, still retrying): %w; check the catalog (sink.catalog) and the warehouse storage: reachable, writable, not full",
		h.table, now.Sub(h.since).Round(100*time.Millisecond), h.attempts, h.err)
}
