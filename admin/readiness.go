package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sourcegraph/conc"
)

// Check is one readiness check: Name says what it checks ("pipeline",
// "kafka", "catalog"); Ping returns nil when that part is ready, else an
// error saying what was tried and why it failed.
type Check struct {
	Name string
	Ping func(ctx context.Context) error
}

// Checks is a Readiness that runs its checks concurrently, each bounded by
// Timeout, and is ready when all pass.
type Checks struct {
	Timeout time.Duration
	List    []Check
}

var _ Readiness = Checks{}

// Ready runs every check and returns nil, or an error listing each failed
// check by name, one per line, in the order of List.
func (c Checks) Ready(ctx context.Context) error {
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	errs := make([]error, len(c.List))
	var wg conc.WaitGroup
	for i, ch := range c.List {
		wg.Go(func() {
			if err := ch.Ping(ctx); err != nil {
				if errors.Is(err, context.DeadlineExceeded) && c.Timeout > 0 {
					err = fmt.Errorf("%w (no answer within %s)", err, c.Timeout)
				}
				errs[i] = fmt.Errorf("%s: %w", ch.Name, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...) // nil when every check passed
}
