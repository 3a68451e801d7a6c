package sinks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"

	"github.com/replaykit/replay/schemas"
)

// This file binds a run to the one group that writes it (BindRun) and
// starts a run over (ResetRun).

// ErrRunOfAnotherGroup is wrapped by the error of BindRun when the run is
// already written by another consumer group: two groups reading one log
// under one run id would each write every row.
var ErrRunOfAnotherGroup = errors.New("run is written by another group")

const (
	// PropRunGroupPrefix starts the table property of production_responses
	// that binds a run to its group: replay.run.<run-id>.group = group.
	// It is a table property, not a snapshot summary, so it survives
	// snapshot expiry.
	PropRunGroupPrefix = "replay.run."
	// FileGroupPrefix starts the group of a run read from a capture file,
	// which has no consumer group: file:<run-id>.
	FileGroupPrefix    = "file:"
	propRunGroupSuffix = ".group"
)

// RunGroupProp is the table property naming the group of runID.
func RunGroupProp(runID string) string { return PropRunGroupPrefix + runID + propRunGroupSuffix }

// BindRun makes the sink's group (IcebergConfig.Group) the only one that may
// write runID, or refuses with an error wrapping ErrRunOfAnotherGroup that
// names the group that already does. Call it after OpenIceberg and before
// anything is read or sent.
//
// The binding is the table property replay.run.<run-id>.group of
// production_responses, set together with an empty snapshot on the
// condition that the table's main branch did not move since it was read,
// so of two groups binding one run at once exactly one wins and the other
// reads its binding on the retry. A run written by a version that did not
// bind runs is recognized by its snapshot summaries (replay.run-id with
// another replay.group) while they are kept.
func (s *Iceberg) BindRun(ctx context.Context, runID string) error {
	cat, err := s.catalog()
	if err != nil {
		return err
	}
	tb := s.byName[schemas.TableProduction]
	retry := s.cfg.CommitRetry
	conflicts := 0
	for n := 1; ; n++ {
		bound, err := s.bindOnce(ctx, cat, tb, runID)
		if err == nil {
			if bound {
				s.logger.Info("run bound to its group", "run_id", runID, "group", s.cfg.Group, "table", tb.full)
			}
			return nil
		}
		if errors.Is(err, ErrRunOfAnotherGroup) {
			return err
		}
		conflict := isConflict(err)
		if conflict {
			conflicts++
		}
		if ctx.Err() != nil || n-conflicts >= retry.Attempts || conflicts >= maxConflicts(retry) {
			return fmt.Errorf("bind run %q to group %q in table %s gave up after %d attempts: %w; check the catalog",
				runID, s.cfg.Group, tb.full, n, err)
		}
		t := time.NewTimer(retryWait(retry, n, conflict, conflicts))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("bind run %q to group %q: %w; last error: %w", runID, s.cfg.Group, context.Cause(ctx), err)
		case <-t.C:
		}
	}
}

// bindOnce is one attempt of BindRun; it reports whether it committed the
// binding (false: the run was bound to this group already).
func (s *Iceberg) bindOnce(ctx context.Context, cat catalog.Catalog, tb *tableBuffer, runID string) (bool, error) {
	tbl, err := cat.LoadTable(ctx, tb.ident)
	if err != nil {
		return false, fmt.Errorf("load table: %w", err)
	}
	key := RunGroupProp(runID)
	if group, ok := tbl.Properties()[key]; ok {
		if group != s.cfg.Group {
			return false, runOfAnotherGroup(runID, group, s.cfg.Group, "table property "+key+" of "+tb.full)
		}
		return false, nil
	}
	if group, ok := legacyRunGroup(tbl.Metadata(), runID, s.cfg.Group); ok {
		return false, runOfAnotherGroup(runID, group, s.cfg.Group, "the snapshot summaries of "+tb.full)
	}
	txn := tbl.NewTransaction()
	if err := txn.AssertRefSnapshotID(table.MainBranch); err != nil {
		return false, err
	}
	if err := txn.SetProperties(iceberg.Properties{key: s.cfg.Group}); err != nil {
		return false, err
	}
	// The snapshot moves main, so a concurrent binder's requirement fails.
	props := iceberg.Properties{PropGroup: s.cfg.Group, PropRunID: runID, PropCommitID: uuid.NewString(),
		PropWriter: s.writer, PropOperation: "bind-run"}
	if err := txn.AddFiles(ctx, nil, props, true); err != nil {
		return false, err
	}
	if _, err := txn.Commit(ctx); err != nil {
		return false, fmt.Errorf("commit the binding: %w", err)
	}
	return true, nil
}

// legacyRunGroup returns a group other than group that a kept snapshot of
// meta wrote rows of runID for.
func legacyRunGroup(meta table.Metadata, runID, group string) (string, bool) {
	for _, snap := range meta.Snapshots() {
		if snap.Summary == nil {
			continue
		}
		p := snap.Summary.Properties
		g, ok := p[PropGroup]
		if !ok || g == group {
			continue
		}
		if slices.Contains(strings.Split(p[PropRunID], ","), runID) {
			return g, true
		}
	}
	return "", false
}

func runOfAnotherGroup(runID, other, group, where string) error {
	return fmt.Errorf("%w: run_id %q is written by group %q (%s), and this run's group is %q: "+
		"two groups would each write every row of the run; resume it with group %q, or give this run a new run_id",
		ErrRunOfAnotherGroup, runID, other, where, group, other)
}

// ResetRun starts runID over in replay's tables: in each, one snapshot
// deletes every row of the run and records offset 0 under the sink's group
// for tps and every partition the group recorded, so a Resume afterwards starts them from the beginning and
// nothing of the old rows is held or kept. It is for sources whose group
// is the run's alone (a capture file, whose group BindRun tied to the run):
// the rows it deletes are all that group's.
//
// A table is reset in one commit on the condition that it did not move
// since it was read (retried like a flush). If a later table fails, the
// earlier ones are reset and the later ones are not: nothing is written
// twice (a Resume holds what the later tables have), and running the reset
// again completes it.
func (s *Iceberg) ResetRun(ctx context.Context, runID string, tps []schemas.TopicPartition) error {
	cat, err := s.catalog()
	if err != nil {
		return err
	}
	filter := iceberg.EqualTo(iceberg.Reference("run_id"), runID)
	retry := s.cfg.CommitRetry
	for _, tb := range s.tables {
		for n := 1; ; n++ {
			err := func() error {
				tbl, err := cat.LoadTable(ctx, tb.ident)
				if err != nil {
					return fmt.Errorf("load table: %w", err)
				}
				// Every partition the group recorded goes back to 0 (the
				// group is the run's: another capture file of the run
				// too, whose rows are deleted with the others), and tps.
				props := iceberg.Properties{PropGroup: s.cfg.Group, PropRunID: runID, PropWriter: s.writer,
					PropOperation: "reset-run", PropCommitID: uuid.NewString()}
				for tp := range groupOffsets(tbl.Metadata(), s.cfg.Group, nil) {
					props[offsetProp(tp)] = strconv.Itoa(0)
				}
				for _, tp := range tps {
					props[offsetProp(tp)] = strconv.Itoa(0)
				}
				txn := tbl.NewTransaction()
				if err := txn.AssertRefSnapshotID(table.MainBranch); err != nil {
					return err
				}
				if tbl.CurrentSnapshot() != nil {
					if err := txn.Delete(ctx, filter, props); err != nil {
						return fmt.Errorf("delete the run's rows: %w", err)
					}
				}
				// Delete makes no snapshot when the table holds no row of
				// the run; this empty one records the offsets in any case.
				if err := txn.AddFiles(ctx, nil, props, true); err != nil {
					return err
				}
				_, err = txn.Commit(ctx)
				return err
			}()
			if err == nil {
				break
			}
			if ctx.Err() != nil || n >= retry.Attempts+maxConflicts(retry) {
				return fmt.Errorf("start run %q over in table %s gave up after %d attempts: %w; run again with --fresh to finish it",
					runID, tb.full, n, err)
			}
			t := time.NewTimer(backoff(retry, n))
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("start run %q over in table %s: %w; last error: %w", runID, tb.full, context.Cause(ctx), err)
			case <-t.C:
			}
		}
	}
	s.logger.Info("run started over: its rows were deleted from every table", "run_id", runID, "group", s.cfg.Group,
		"offsets", formatOffsets(func() schemas.Offsets {
			o := schemas.Offsets{}
			for _, tp := range tps {
				o[tp] = 0
			}
			return o
		}()))
	return nil
}
