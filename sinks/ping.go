package sinks

import (
	"context"
	"fmt"
	"strings"

	"github.com/replaykit/replay/schemas"
)

// Ping checks that the catalog and the warehouse answer, for readiness
// checks: it loads replay_responses, which asks the catalog for the table
// and reads its current metadata file from the warehouse. The error names
// the catalog, the warehouse and the fields to check. Bound it with ctx.
// Safe to call from any goroutine while the sink is open.
func (s *Iceberg) Ping(ctx context.Context) error {
	if _, err := s.loadTable(ctx, schemas.TableReplay); err != nil {
		return fmt.Errorf("%s unreachable: %w; check %scatalog.uri, or the %s", s.describeCatalog(), err, configPath, describeStorage(s.cfg))
	}
	return nil
}

// describeCatalog names the catalog for messages: its type, URI and
// warehouse as configured.
func (s *Iceberg) describeCatalog() string {
	c := s.cfg.Catalog
	parts := []string{c.Type + " catalog"}
	if c.URI != "" {
		parts = append(parts, fmt.Sprintf("at %q", RedactURI(c.URI)))
	}
	if c.Warehouse != "" {
		parts = append(parts, fmt.Sprintf("with warehouse %q", c.Warehouse))
	}
	return strings.Join(parts, " ")
}
