package sinks

import (
	"context"
	"maps"
)

// SnapshotSummaries returns the summary properties of every snapshot of the
// named table that the catalog still has, oldest first: replay's keys
// (replay.group, replay.run-id, replay.commit-id, replay.writer, the
// offsets and owners) beside Iceberg's own (added-records, …). It reads the
// catalog afresh; for operators' tooling and tests.
func (s *Iceberg) SnapshotSummaries(ctx context.Context, tableName string) ([]map[string]string, error) {
	tbl, err := s.loadTable(ctx, tableName)
	if err != nil {
		return nil, err
	}
	snaps := tbl.Metadata().Snapshots()
	out := make([]map[string]string, 0, len(snaps))
	for _, snap := range snaps {
		props := map[string]string{}
		if snap.Summary != nil {
			maps.Copy(props, snap.Summary.Properties)
		}
		out = append(out, props)
	}

	return out, nil
}
