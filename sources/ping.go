package sources

import (
	"context"
	"fmt"
	"strings"
)

// Ping checks that a broker of the cluster answers (a metadata request to
// a known broker or a seed), for readiness checks. The error names the
// brokers tried and the field to check. Bound it with ctx.
func (k *Kafka) Ping(ctx context.Context) error {
	if err := k.cl.Ping(ctx); err != nil {
		return fmt.Errorf("kafka brokers %s unreachable: %w; check source.kafka.brokers", strings.Join(k.cfg.Brokers, ", "), err)
	}
	return nil
}

// Ping reports whether the file source can be read: it always can, since
// the file was opened by NewFile.
func (f *File) Ping(context.Context) error { return nil }
