package pipeline

import (
	"github.com/cespare/xxhash/v2"
)

// dialBuckets is the resolution of the sticky dial: every key falls in one
// of 10,000 buckets, so the dial moves in steps of 0.01%.
const dialBuckets = 10_000

// dialBucket returns the bucket of a dial key: the 64-bit xxHash (XXH64,
// seed 0) of the key's bytes, modulo dialBuckets. xxHash is specified
// and stable across processes, machines and versions (hash/maphash is
// not), so replicas of one deployment, and a restarted process, dial the
// same keys in and out.
func dialBucket(key string) uint64 {
	return xxhash.Sum64String(key) % dialBuckets
}

// dialedIn reports whether key is replayed at percent (0 to 100): its
// bucket is below percent·100. Raising percent only adds buckets, so the
// keys replayed at 10% are among those replayed at 20%; 100 replays every
// key and 0 none.
func dialedIn(key string, percent float64) bool {
	return float64(dialBucket(key)) < percent*(dialBuckets/100)
}
