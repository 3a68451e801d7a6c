package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/apache/iceberg-go/catalog"

	"github.com/replaykit/replay/schemas"
)

// The read-only opener, for commands that read replay's tables (compare):
// a mistyped catalog path, namespace or table is an error naming what was
// looked for and where, never a new empty catalog to report on.

// ErrReadOnly is returned by the methods that write replay's own tables
// (Add, Resume) on a sink opened with OpenIcebergReadOnly.
var ErrReadOnly = errors.New("the iceberg sink was opened read-only")

// ErrNotFound is wrapped by OpenIcebergReadOnly's error when the catalog,
// the namespace or a table it must read is not there.
var ErrNotFound = errors.New("not found")

// OpenIcebergReadOnly opens an existing catalog and namespace for reading
// replay's tables, and creates nothing: no SQLite file or directory, no
// catalog tables (a SQL catalog's own), no warehouse directory, no
// namespace, no table, and no property or column change. Each table of
// tables (names of schemas.TableNames) must exist; the others are loaded
// when read, and a missing one is then an error wrapping
// catalog.ErrNoSuchTable. A missing catalog, namespace or table is an
// error wrapping ErrNotFound that names the catalog type, its URI (a
// password redacted), the namespace, the tables and the fields to check.
//
// Through the sink, Add and Resume fail with ErrReadOnly. The one write it
// allows is ReplaceRun, whose comparison tables are the output of compare,
// not its input: ReplaceRun creates them when missing, as with OpenIceberg.
// A caller that only reads must not call it.
func OpenIcebergReadOnly(ctx context.Context, cfg IcebergConfig, logger *slog.Logger, tables []string, opts ...Option) (*Iceberg, error) {
	s, _, err := newIceberg(cfg, logger, opts)
	if err != nil {
		return nil, err
	}
	for _, name := range tables {
		if !slices.Contains(schemas.TableNames(), name) {
			return nil, fmt.Errorf("open the iceberg tables read-only: unknown table %q; use one of %s", name, strings.Join(schemas.TableNames(), ", "))
		}
	}
	s.readOnly = true
	logger = s.logger
	start := time.Now()
	if err := checkCatalogExists(cfg); err != nil {
		return nil, err
	}
	cat, warehouse, err := loadCatalog(ctx, cfg.Catalog, cfg.S3, true)
	if err != nil {
		return nil, err
	}
	s.cat = cat
	if err := s.openReadOnly(ctx, tables); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	logger.Info("iceberg tables open read-only", "catalog", cfg.Catalog.Type, "uri", RedactURI(cfg.Catalog.URI),
		"warehouse", warehouse, "namespace", cfg.Namespace, "tables", strings.Join(tables, ","), "duration", time.Since(start))

	return s, nil
}

// CatalogDescription names the catalog for messages: its type, URI (a
// password redacted) and warehouse, as configured.
func (s *Iceberg) CatalogDescription() string { return s.describeCatalog() }

// openReadOnly checks that the namespace and the required tables exist and
// notes every table's identity; it creates and changes nothing.
func (s *Iceberg) openReadOnly(ctx context.Context, required []string) error {
	exists, err := s.cat.CheckNamespaceExists(ctx, s.ns)
	if err != nil {
		return fmt.Errorf("look up namespace %q in %s: %w; is it replay's catalog? check %scatalog.uri and %snamespace",
			s.cfg.Namespace, s.describeCatalog(), err, configPath, configPath)
	}
	if !exists {
		return fmt.Errorf("namespace %q %w in %s; check %snamespace and %scatalog.uri (it is created by replay run, not by a command that reads)",
			s.cfg.Namespace, ErrNotFound, s.describeCatalog(), configPath, configPath)
	}
	var missing []string
	for _, name := range schemas.TableNames() {
		ident := append(slices.Clone(s.ns), name)
		tb := &tableBuffer{name: name, ident: ident, full: strings.Join(ident, ".")}
		s.byName[name] = tb
		if !slices.Contains(required, name) {
			continue
		}
		tbl, err := s.cat.LoadTable(ctx, ident)
		switch {
		case errors.Is(err, catalog.ErrNoSuchTable):
			missing = append(missing, tb.full)
			continue
		case err != nil:
			return fmt.Errorf("load table %s in %s: %w; check %scatalog and %snamespace, or the %s",
				tb.full, s.describeCatalog(), err, configPath, configPath, describeStorage(s.cfg))
		}
		if err := checkSchema(tbl.Schema(), schemas.IcebergSchema(name)); err != nil {
			return fmt.Errorf("table %s at %s: %w; it was not created by a compatible replay, check %snamespace",
				tb.full, tbl.Location(), err, configPath)
		}
		tb.location = tbl.Location()
	}
	if len(missing) > 0 {
		return fmt.Errorf("table %s %w in %s; check %snamespace and %scatalog.uri (replay run creates them)",
			strings.Join(missing, ", "), ErrNotFound, s.describeCatalog(), configPath, configPath)
	}

	return nil
}

// checkCatalogExists fails when the configured catalog is a local file or
// directory that is not there (a SQLite catalog's file, a hadoop catalog's
// warehouse), which opening would otherwise create. Other catalogs are
// servers: opening them creates nothing, and the namespace check finds a
// wrong one.
func checkCatalogExists(cfg IcebergConfig) error {
	var path, field string
	switch c := cfg.Catalog; {
	case c.Type == "sql" && c.Properties["sql.driver"] == "" && !isPostgresURI(c.URI):
		path, field = sqlitePath(c.URI), "catalog.uri"
	case c.Type == "hadoop":
		if _, isURL := urlScheme(c.Warehouse); !isURL {
			path, field = c.Warehouse, "catalog.warehouse"
		} else if rest, ok := strings.CutPrefix(c.Warehouse, "file://"); ok {
			path, field = rest, "catalog.warehouse"
		}
	}
	if path == "" {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("resolve %s %q: %w; check %s%s", field, path, err, configPath, field)
	}
	if _, err := os.Stat(abs); err != nil {
		what := fmt.Sprintf("%s catalog at %q", cfg.Catalog.Type, cfg.Catalog.URI)
		if field == "catalog.warehouse" {
			what = fmt.Sprintf("%s catalog with warehouse %q", cfg.Catalog.Type, cfg.Catalog.Warehouse)
		}
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("open %s: %w: there is no %s; check %s%s (a command that reads creates no catalog)",
				what, ErrNotFound, abs, configPath, field)
		}

		return fmt.Errorf("open %s: %w; check %s%s", what, err, configPath, field)
	}

	return nil
}

// sqlitePath returns the file a SQLite catalog URI names: the path itself,
// or the path of a file: DSN without its options; "" for an in-memory
// database.
func sqlitePath(uri string) string {
	if uri == ":memory:" || uri == "" {
		return ""
	}
	if rest, ok := strings.CutPrefix(uri, "file:"); ok {
		rest, _, _ = strings.Cut(rest, "?")
		if rest == ":memory:" {
			return ""
		}
		uri = strings.TrimPrefix(rest, "//")
	} else if i := strings.Index(uri, "?"); i >= 0 {
		uri = uri[:i]
	}

	return uri
}
