package pipeline

import "github.com/replaykit/replay/schemas"

// maxDuplicateWindow bounds Decode.DuplicateWindow: about 600 MB of
// correlation IDs and coordinates.
const maxDuplicateWindow = 1 << 22

// recentIDs remembers the correlation IDs of the last size distinct
// records decoded, with their coordinates, to notice a second record with
// the same ID (a capture bug, or hostile traffic). Memory is bounded by
// size: the oldest ID is forgotten when a new one comes. Exact counting
// needs every ID of the run; replay compare, which reads them all, does
// that. Owned by the intake goroutine.
type recentIDs struct {
	ring []string // IDs in arrival order; each at most once
	next int
	byID map[string]schemas.Coordinates
}

func newRecentIDs(size int) *recentIDs {
	if size <= 0 {
		return nil
	}
	return &recentIDs{ring: make([]string, 0, size), byID: make(map[string]schemas.Coordinates, size)}
}

// see remembers id at c. It returns the coordinates of an earlier,
// distinct record with the same ID still in the window, and true; a record
// read again at the same coordinates (after a rebalance or a restart) is
// not a duplicate.
func (r *recentIDs) see(id string, c schemas.Coordinates) (schemas.Coordinates, bool) {
	if prev, ok := r.byID[id]; ok {
		return prev, prev != c
	}
	if len(r.ring) < cap(r.ring) {
		r.ring = append(r.ring, id)
	} else {
		delete(r.byID, r.ring[r.next])
		r.ring[r.next] = id
		r.next = (r.next + 1) % len(r.ring)
	}
	r.byID[id] = c
	return schemas.Coordinates{}, false
}
