package sinks

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	icebergio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"

	"github.com/replaykit/replay/schemas"

	// Catalog implementations register themselves with catalog.Load.
	_ "github.com/apache/iceberg-go/catalog/glue"
	_ "github.com/apache/iceberg-go/catalog/hadoop"
	_ "github.com/apache/iceberg-go/catalog/hive"
	_ "github.com/apache/iceberg-go/catalog/rest"
	// s3:// (and s3a, s3n, oss) warehouses.
	_ "github.com/apache/iceberg-go/io/gocloud/s3"
	"github.com/jackc/pgx/v5/pgconn"
	// PostgreSQL for a shared SQL catalog; registers driver "pgx".
	_ "github.com/jackc/pgx/v5/stdlib"
	// Pure Go SQLite for the embedded default catalog; registers driver "sqlite".
	_ "modernc.org/sqlite"

	"github.com/replaykit/replay/internal/envexpand"
)

// configPath is where IcebergConfig sits in replay's configuration file; it
// prefixes the field named in runtime errors ("check sink.catalog.uri").
const configPath = "sink."

// Catalog types replay links in. Each registers itself with iceberg-go's
// catalog.Load.
var catalogTypes = []string{"sql", "rest", "glue", "hive", "hadoop"}

// Parquet codecs iceberg-go's writer understands
// (write.parquet.compression-codec).
var compressionCodecs = []string{"zstd", "snappy", "gzip", "brotli", "lz4", "lz4raw", "uncompressed"}

// compressionLevels are the levels iceberg-go accepts per codec
// (write.parquet.compression-level); -1, the codec's default, is always
// accepted, and codecs not listed have no level.
var compressionLevels = map[string][2]int{"zstd": {-5, 22}, "gzip": {-3, 9}, "brotli": {0, 11}}

// Values of IcebergConfig.Dictionary.
const (
	DictionaryRepeated = "repeated"
	DictionaryAll      = "all"
	DictionaryNone     = "none"
)

// Warehouse URL schemes with a linked FileIO; a local path needs none.
var warehouseSchemes = []string{"file", "s3", "s3a", "s3n", "oss"}

// Catalog properties set from their own config fields, never from
// catalog.properties.
var reservedProperties = map[string]string{"type": "type", "uri": "uri", "warehouse": "warehouse"}

// IcebergConfig configures the Iceberg sink: where the catalog and the
// warehouse are, which namespace holds replay's tables, when to flush, and
// how data files are compressed.
type IcebergConfig struct {
	Catalog CatalogConfig `yaml:"catalog"`
	// Namespace holds the tables; dots separate levels ("a.b").
	Namespace string      `yaml:"namespace"`
	Flush     FlushConfig `yaml:"flush"`
	// Compression is the Parquet codec of data files, the table property
	// write.parquet.compression-codec: zstd, snappy, gzip, brotli, lz4,
	// lz4raw or uncompressed. Changing it updates existing tables on open.
	Compression string `yaml:"compression"`
	// S3 says how to reach an s3:// warehouse (and the s3:// locations a
	// REST catalog hands out): endpoint, region, credentials, addressing.
	S3 S3Config `yaml:"s3"`
	// CompressionLevel is the codec's level, the table property
	// write.parquet.compression-level: zstd -5 to 22 (klauspost/compress
	// has four encoders: below 3 the fastest, 3 to 5 the default, 6 to 9
	// better, 10 and up the best), gzip -3 to 9, brotli 0 to 11; -1 is the
	// codec's default. snappy, lz4, lz4raw and uncompressed have no level:
	// leave it at -1.
	CompressionLevel int `yaml:"compression_level"`
	// RowGroupBytes bounds the uncompressed size of a Parquet row group
	// (write.parquet.row-group-size-bytes). Each flush writes one data
	// file per table and partition, so while a flush holds less than this
	// each file is one row group.
	RowGroupBytes int64 `yaml:"row_group_bytes"`
	// Dictionary says which columns Parquet dictionary-encodes: "repeated"
	// (the columns whose values repeat from row to row: methods, hosts,
	// paths, header names and values, statuses, lineage, attributes; not
	// bodies, correlation IDs, offsets, timestamps, latencies or error
	// messages, see schemas.DistinctColumns), "all" or "none". Set as the
	// table properties parquet.enable.dictionary and
	// write.parquet.dict-encoding-enabled.column.<column>.
	Dictionary string `yaml:"dictionary"`
	// CommitRetry bounds how the sink retries a table commit that failed:
	// lost an optimistic-concurrency race with another writer, or failed in
	// a way that leaves its outcome unknown.
	CommitRetry CommitRetryConfig `yaml:"commit_retry"`
	// Group is the consumer group name, recorded with the offsets in every
	// snapshot summary. Set by the caller, not the configuration file.
	Group string `yaml:"-"`
	// RunID is the run whose rows this sink writes (the top-level run_id),
	// recorded as replay.run-id in the snapshots that carry no rows (claims
	// and empty appends), so every snapshot names its run. Set by the
	// caller, not the configuration file; empty for a sink that only reads.
	RunID string `yaml:"-"`
}

// CatalogConfig says which Iceberg catalog to use.
type CatalogConfig struct {
	// Type is sql, rest, glue, hive or hadoop.
	Type string `yaml:"type"`
	// Name is the catalog's name; the sql catalog stores it in every row.
	Name string `yaml:"name"`
	// URI is the catalog endpoint. For sql: a SQLite file path (the
	// embedded default), or a PostgreSQL URL
	// (postgres://user@host:5432/db?sslmode=require), which selects the
	// PostgreSQL driver and dialect by itself; any other database needs
	// catalog.properties sql.driver and sql.dialect. For rest: the server
	// URL. For hive: thrift://host:port. Not used by glue or hadoop.
	// ${NAME} is replaced by the environment variable NAME (for a password:
	// postgres://replay:${PGPASSWORD}@…; the PostgreSQL driver also reads
	// PGPASSWORD, PGSSLMODE and the other libpq variables itself).
	URI string `yaml:"uri"`
	// Warehouse is the root of table data: a local path (made absolute and
	// turned into a file:// URL, created if missing), file://… or s3://….
	// A rest catalog gets it as is: whatever its server calls a warehouse.
	Warehouse string `yaml:"warehouse"`
	// Properties pass through to the catalog and its FileIO: s3.endpoint,
	// s3.region, s3.path-style-access, s3.access-key-id, token, credential,
	// sql.driver, sql.dialect, … See iceberg-go for the keys of each catalog.
	Properties map[string]string `yaml:"properties"`
}

// S3Config says how the sink's FileIO reaches S3 or an S3-compatible server
// (MinIO, versitygw, Ceph, R2, …). Every field may be left empty: the AWS
// SDK then takes credentials and region from its standard sources
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION,
// ~/.aws/config and credentials, an IAM role of the pod or instance).
// Credential fields may name environment variables as ${NAME}, so they stay
// out of the file. They become iceberg-go's s3.* catalog properties.
type S3Config struct {
	// Endpoint is the S3 API URL, http(s)://host[:port], of an
	// S3-compatible server; empty = AWS S3 (s3.endpoint).
	Endpoint string `yaml:"endpoint"`
	// Region signs the requests (s3.region); empty = the SDK's default
	// (AWS_REGION). S3-compatible servers usually want us-east-1.
	Region string `yaml:"region"`
	// AccessKeyID and SecretAccessKey are a static key pair, both or
	// neither (s3.access-key-id, s3.secret-access-key).
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key"`
	// SessionToken goes with temporary credentials (s3.session-token).
	SessionToken string `yaml:"session_token"`
	// PathStyle addresses objects as endpoint/bucket/key, which most
	// S3-compatible servers need; false addresses them as
	// bucket.endpoint/key (virtual-hosted, AWS's default).
	PathStyle bool `yaml:"path_style"`
}

// s3Properties maps each S3Config field to its iceberg-go property.
var s3Properties = []struct{ field, prop string }{
	{"endpoint", icebergio.S3EndpointURL},
	{"region", icebergio.S3Region},
	{"access_key_id", icebergio.S3AccessKeyID},
	{"secret_access_key", icebergio.S3SecretAccessKey},
	{"session_token", icebergio.S3SessionToken},
	{"path_style", icebergio.S3ForceVirtualAddressing},
}

// values returns the fields by name, after expanding ${NAME}, with the
// environment variables that are not set. PathStyle is rendered as the
// s3.force-virtual-addressing value it stands for.
func (c S3Config) values() (map[string]string, map[string][]string) {
	out := map[string]string{}
	missing := map[string][]string{}
	for field, v := range map[string]string{
		"endpoint": c.Endpoint, "region": c.Region, "access_key_id": c.AccessKeyID,
		"secret_access_key": c.SecretAccessKey, "session_token": c.SessionToken,
	} {
		x, m := envexpand.Expand(v)
		out[field] = x
		if len(m) > 0 {
			missing[field] = m
		}
	}
	out["path_style"] = strconv.FormatBool(!c.PathStyle)

	return out, missing
}

// properties returns the s3.* catalog properties c stands for; only the
// fields that are set, and s3.force-virtual-addressing always.
func (c S3Config) properties() iceberg.Properties {
	vals, _ := c.values()
	props := iceberg.Properties{}
	for _, p := range s3Properties {
		if v := vals[p.field]; v != "" {
			props[p.prop] = v
		}
	}

	return props
}

// FlushConfig bounds the rows buffered between commits. The pipeline
// flushes when any bound is reached.
type FlushConfig struct {
	Rows     int           `yaml:"rows"`
	Bytes    int64         `yaml:"bytes"`
	Interval time.Duration `yaml:"interval"`
}

// CommitRetryConfig bounds the sink's own commit retry loop (iceberg-go's
// commit.retry.* table properties are left at their default of no retries;
// see Iceberg.Flush). Attempt n waits about MinBackoff·2^(n-1), at most
// MaxBackoff, with jitter, so the time one table's commit may take is
// bounded by roughly Attempts × MaxBackoff plus the commits themselves.
type CommitRetryConfig struct {
	// Attempts bounds the commits tried per table and flush that fail for
	// a reason of their own (the catalog or the storage erred) before the
	// flush fails, counting the first. A commit lost to a concurrent one
	// (another replica's commit landed first) does not count; ten times
	// Attempts of those end the flush too.
	Attempts int `yaml:"attempts"`
	// MinBackoff is the wait before the second attempt.
	MinBackoff time.Duration `yaml:"min_backoff"`
	// MaxBackoff caps the wait between attempts.
	MaxBackoff time.Duration `yaml:"max_backoff"`
}

// DefaultIcebergConfig returns the embedded default: a SQLite catalog and a
// local warehouse under ./replay-data, namespace replay, flushes every
// 10,000 rows, 64 MiB or 5 s, data files compressed with zstd at level 1
// without dictionaries, 20 commit attempts per table with backoff from
// 100 ms to 5 s.
//
// The Parquet settings were measured (BenchmarkSinkSettings in package
// bench, and the end-to-end profile of replay-bench; see BENCHMARKS.md):
// zstd's fastest encoder (level 1) writes 1.05 to 1.25 times as many rows
// per second as its default level for 3% more bytes; dictionaries save no
// bytes once zstd has compressed the pages, and cost a tenth of the sink's
// speed on the repeated columns and more on all of them (bodies outgrow
// the dictionary, which is then compressed, written and abandoned);
// together, 1.4 to 1.5 times the rows per second of zstd's defaults for 1%
// more bytes. snappy and lz4raw are up to a quarter faster still, for
// half as many bytes again.
func DefaultIcebergConfig() IcebergConfig {
	return IcebergConfig{
		Catalog: CatalogConfig{
			Type:      "sql",
			Name:      "replay",
			URI:       "./replay-data/catalog.db",
			Warehouse: "./replay-data/warehouse",
		},
		Namespace:        "replay",
		Flush:            FlushConfig{Rows: 10_000, Bytes: 64 << 20, Interval: 5 * time.Second},
		Compression:      "zstd",
		CompressionLevel: 1,
		RowGroupBytes:    128 << 20,
		Dictionary:       DictionaryNone,
		CommitRetry:      CommitRetryConfig{Attempts: 20, MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second},
	}
}

// Validate returns every problem with the configuration. Each message starts
// with the field path relative to IcebergConfig, e.g.
// "flush.rows: must be ≥ 1, got 0".
func (c *IcebergConfig) Validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	cat := c.Catalog
	switch {
	case cat.Type == "":
		add("catalog.type: is empty; use one of %s", strings.Join(catalogTypes, ", "))
	case !slices.Contains(catalogTypes, cat.Type):
		add("catalog.type: unknown catalog type %q; use one of %s", cat.Type, strings.Join(catalogTypes, ", "))
	}
	if cat.Name == "" {
		add("catalog.name: is empty; name the catalog, e.g. replay")
	}
	switch cat.Type {
	case "sql", "rest", "hive":
		if cat.URI == "" {
			add("catalog.uri: is empty; the %s catalog needs one", cat.Type)
		}
	}
	switch cat.Type {
	case "sql", "hadoop":
		if cat.Warehouse == "" {
			add("catalog.warehouse: is empty; the %s catalog needs a local path, file:// or s3:// URL", cat.Type)
		}
	}
	if cat.Warehouse != "" && cat.Type != "rest" {
		if scheme, ok := urlScheme(cat.Warehouse); ok && !slices.Contains(warehouseSchemes, scheme) {
			add("catalog.warehouse: scheme %q is not supported; use a local path or one of %s://",
				scheme, strings.Join(warehouseSchemes, "://, "))
		}
	}
	if _, missing := envexpand.Expand(cat.URI); len(missing) > 0 {
		add("catalog.uri: environment variable %s is not set; export it, or remove ${%s} from the value", strings.Join(missing, ", "), missing[0])
	}
	if cat.Type == "sql" && isPostgresURI(cat.URI) {
		if d := cat.Properties[sqlcat.DialectKey]; d != "" && d != string(sqlcat.Postgres) {
			add("catalog.properties.%s: %q does not match the postgres:// catalog.uri; remove it", sqlcat.DialectKey, d)
		}
	}
	s3vals, s3missing := c.S3.values()
	for _, p := range s3Properties {
		if m := s3missing[p.field]; len(m) > 0 {
			add("s3.%s: environment variable %s is not set; export it, or remove ${%s} from the value", p.field, strings.Join(m, ", "), m[0])
		}
	}
	if e := s3vals["endpoint"]; e != "" {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			add("s3.endpoint: %q is not an http(s)://host[:port] URL", e)
		}
	}
	if (s3vals["access_key_id"] == "") != (s3vals["secret_access_key"] == "") {
		add("s3.access_key_id, s3.secret_access_key: set both or neither (neither: the AWS SDK's standard sources, e.g. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
	} else if s3vals["session_token"] != "" && s3vals["access_key_id"] == "" {
		add("s3.session_token: needs s3.access_key_id and s3.secret_access_key")
	}
	for _, k := range slices.Sorted(maps.Keys(cat.Properties)) {
		if field, ok := reservedProperties[strings.ToLower(k)]; ok {
			add("catalog.properties.%s: set catalog.%s instead", k, field)
		}
		for _, p := range s3Properties {
			if strings.EqualFold(k, p.prop) && s3Set(c.S3, p.field) {
				add("catalog.properties.%s: s3.%s sets it too; keep one", k, p.field)
			}
		}
	}

	if c.Namespace == "" {
		add("namespace: is empty; name the namespace of replay's tables, e.g. replay")
	} else if slices.Contains(strings.Split(c.Namespace, "."), "") {
		add("namespace: %q has an empty level; separate levels with single dots, e.g. replay or team.replay", c.Namespace)
	} else {
		for _, level := range strings.Split(c.Namespace, ".") {
			if err := schemas.CheckName(level); err != nil {
				add("namespace: level %v", err)
			}
		}
	}
	if c.RunID != "" {
		if err := schemas.CheckName(c.RunID); err != nil {
			add("run_id: %v", err)
		}
	}
	if c.Group != "" {
		// A file source's runs are grouped as file:<run_id> (service.Group);
		// the run id after the prefix is held to the same rule.
		if err := schemas.CheckName(strings.TrimPrefix(c.Group, FileGroupPrefix)); err != nil {
			add("group (the consumer group, source.kafka.group): %v", err)
		}
	}
	if c.Flush.Rows < 1 {
		add("flush.rows: must be ≥ 1, got %d", c.Flush.Rows)
	}
	if c.Flush.Bytes < 1 {
		add("flush.bytes: must be ≥ 1, got %d", c.Flush.Bytes)
	}
	if c.Flush.Interval <= 0 {
		add("flush.interval: must be > 0, got %s", c.Flush.Interval)
	}
	if !slices.Contains(compressionCodecs, c.Compression) {
		add("compression: unknown Parquet codec %q; use one of %s", c.Compression, strings.Join(compressionCodecs, ", "))
	} else if lv := c.CompressionLevel; lv != -1 {
		r, ok := compressionLevels[c.Compression]
		switch {
		case !ok:
			add("compression_level: %s has no levels, got %d; use -1", c.Compression, lv)
		case lv < r[0] || lv > r[1]:
			add("compression_level: %s takes %d to %d (or -1 for its default), got %d", c.Compression, r[0], r[1], lv)
		}
	}
	if c.RowGroupBytes < 1 {
		add("row_group_bytes: must be ≥ 1, got %d", c.RowGroupBytes)
	}
	switch c.Dictionary {
	case DictionaryRepeated, DictionaryAll, DictionaryNone:
	default:
		add("dictionary: must be %s, %s or %s, got %q", DictionaryRepeated, DictionaryAll, DictionaryNone, c.Dictionary)
	}
	r := c.CommitRetry
	if r.Attempts < 1 {
		add("commit_retry.attempts: must be ≥ 1, got %d", r.Attempts)
	}
	if r.MinBackoff <= 0 {
		add("commit_retry.min_backoff: must be > 0, got %s", r.MinBackoff)
	}
	if r.MaxBackoff < r.MinBackoff {
		add("commit_retry.max_backoff: must be ≥ commit_retry.min_backoff (%s), got %s", r.MinBackoff, r.MaxBackoff)
	}

	return errs
}

// s3Set reports whether the S3Config field is set (path_style: true).
func s3Set(c S3Config, field string) bool {
	switch field {
	case "endpoint":
		return c.Endpoint != ""
	case "region":
		return c.Region != ""
	case "access_key_id":
		return c.AccessKeyID != ""
	case "secret_access_key":
		return c.SecretAccessKey != ""
	case "session_token":
		return c.SessionToken != ""
	default:
		return c.PathStyle
	}
}

// RedactURI returns uri with the password of a URL replaced by xxxxx, for
// messages and logs.
func RedactURI(uri string) string {
	if _, ok := urlScheme(uri); !ok {
		return uri
	}
	u, err := url.Parse(uri)
	if err != nil {
		return uri
	}

	return u.Redacted()
}

// describeStorage names where table files go, for messages: the warehouse,
// and for S3 the endpoint and the fields that configure it.
func describeStorage(c IcebergConfig) string {
	wh := c.Catalog.Warehouse
	if wh == "" {
		wh = "(the catalog's default)"
	}
	scheme, _ := urlScheme(c.Catalog.Warehouse)
	if strings.HasPrefix(scheme, "s3") || c.S3.Endpoint != "" {
		endpoint := c.S3.Endpoint
		if endpoint == "" {
			endpoint = "AWS S3"
		}

		return fmt.Sprintf("warehouse %s on S3 endpoint %s; check %scatalog.warehouse and %ss3", wh, endpoint, configPath, configPath)
	}

	return fmt.Sprintf("warehouse %s; check %scatalog.warehouse", wh, configPath)
}

// isPostgresURI reports whether a sql catalog URI is a PostgreSQL URL.
func isPostgresURI(uri string) bool {
	scheme, ok := urlScheme(uri)
	return ok && (scheme == "postgres" || scheme == "postgresql")
}

// urlScheme returns the scheme of s when s is a URL ("s3://b/p"), and false
// for a local path, including a Windows one ("C:\x").
func urlScheme(s string) (string, bool) {
	i := strings.Index(s, "://")
	if i <= 1 {
		return "", false
	}

	return strings.ToLower(s[:i]), true
}

// loadCatalog opens the configured catalog. For a local warehouse and the
// SQLite catalog it first creates the directories they need, and a SQL
// catalog creates its own tables if missing; readOnly creates none of them
// (see OpenIcebergReadOnly).
func loadCatalog(ctx context.Context, cfg CatalogConfig, s3 S3Config, readOnly bool) (catalog.Catalog, string, error) {
	// Validate made sure a property is not set both ways.
	props := s3.properties()
	maps.Copy(props, cfg.Properties)
	props["type"] = cfg.Type

	warehouse := cfg.Warehouse
	if warehouse != "" {
		// A REST server takes the warehouse as is: often a name it knows,
		// not a path.
		if _, isURL := urlScheme(warehouse); !isURL && cfg.Type != "rest" {
			abs, err := filepath.Abs(warehouse)
			if err != nil {
				return nil, "", fmt.Errorf("resolve warehouse path %q: %w; check %scatalog.warehouse", warehouse, err, configPath)
			}
			if !readOnly {
				if err := os.MkdirAll(abs, 0o755); err != nil {
					return nil, "", fmt.Errorf("create warehouse directory %q: %w; check %scatalog.warehouse", warehouse, err, configPath)
				}
			}
			warehouse = "file://" + filepath.ToSlash(abs)
		}
		props["warehouse"] = warehouse
	}

	uri, _ := envexpand.Expand(cfg.URI)
	what := fmt.Sprintf("%s catalog", cfg.Type)
	if cfg.URI != "" {
		what += fmt.Sprintf(" at %q", RedactURI(cfg.URI))
	}
	switch {
	case cfg.Type == "sql" && isPostgresURI(uri):
		if props[sqlcat.DriverKey] == "" {
			props[sqlcat.DriverKey] = "pgx"
		}
		props[sqlcat.DialectKey] = string(sqlcat.Postgres)
	case cfg.Type == "sql" && props[sqlcat.DriverKey] == "":
		dsn, err := sqliteDSN(cfg.URI, !readOnly)
		if err != nil {
			return nil, "", fmt.Errorf("open %s: %w; check %scatalog.uri", what, err, configPath)
		}
		uri = dsn
		props[sqlcat.DriverKey] = "sqlite"
		props[sqlcat.DialectKey] = string(sqlcat.SQLite)
	}
	if uri != "" {
		props["uri"] = uri
	}
	if readOnly && cfg.Type == "sql" {
		props[sqlInitTablesKey] = "false"
	}

	cat, err := catalog.Load(ctx, cfg.Name, props)
	// Replicas starting together on an empty PostgreSQL database race to
	// create the catalog's own tables; CREATE TABLE IF NOT EXISTS is not
	// atomic there, and the losers get a unique violation. The tables
	// exist by then: load again.
	for try := 1; err != nil && isCreateRace(err) && try < 5; try++ {
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(try) * 50 * time.Millisecond):
		}
		cat, err = catalog.Load(ctx, cfg.Name, props)
	}
	if err != nil {
		field := "catalog.uri"
		if cfg.URI == "" {
			field = "catalog.properties"
		}

		return nil, "", fmt.Errorf("open %s: %w; check %s%s", what, err, configPath, field)
	}

	return cat, warehouse, nil
}

// isCreateRace reports whether err is PostgreSQL refusing a concurrent
// CREATE … IF NOT EXISTS: unique_violation (on pg_type), duplicate_table
// or duplicate_object (the table's row type).
func isCreateRace(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "23505" || pgErr.Code == "42P07" || pgErr.Code == "42710")
}

// sqlInitTablesKey is the iceberg-go SQL catalog property that creates the
// catalog's own tables on open (default true); sql has no constant for it.
const sqlInitTablesKey = "init_catalog_tables"

// sqliteDSN turns a catalog file path into a modernc.org/sqlite DSN with WAL
// and a busy timeout, creating the file's directory when mkdir is set. A URI
// that already is a DSN (file:… or with ?options) is used as is.
func sqliteDSN(path string, mkdir bool) (string, error) {
	if strings.HasPrefix(path, "file:") || strings.Contains(path, "?") || path == ":memory:" {
		return path, nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if dir := filepath.Dir(abs); mkdir {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("create directory %q: %w", dir, err)
		}
	}
	q := url.Values{"_pragma": {"busy_timeout(10000)", "journal_mode(WAL)"}}

	escaped := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(abs))

	return "file:" + escaped + "?" + q.Encode(), nil
}

// ensureNamespace creates the namespace unless it exists.
func ensureNamespace(ctx context.Context, cat catalog.Catalog, ns table.Identifier) error {
	exists, err := cat.CheckNamespaceExists(ctx, ns)
	if err != nil {
		return err
	}
	if exists {
		return nil
	}
	err = cat.CreateNamespace(ctx, ns, nil)
	if errors.Is(err, catalog.ErrNamespaceAlreadyExists) || isCreateRace(err) { // created concurrently
		return nil
	}

	return err
}

// tableProperties are the properties the configuration sets on the named
// table: how its Parquet data files are written.
func (c IcebergConfig) tableProperties(tableName string) iceberg.Properties {
	props := iceberg.Properties{
		table.ParquetCompressionKey:       c.Compression,
		table.ParquetCompressionLevelKey:  strconv.Itoa(c.CompressionLevel),
		table.ParquetRowGroupSizeBytesKey: strconv.FormatInt(c.RowGroupBytes, 10),
		parquetDictionaryKey:              strconv.FormatBool(c.Dictionary != DictionaryNone),
	}
	for _, col := range schemas.DistinctColumns(tableName) {
		props[parquetColumnDictionaryPrefix+col] = strconv.FormatBool(c.Dictionary == DictionaryAll)
	}
	return props
}

// The dictionary properties iceberg-go reads (and Iceberg's Java writer,
// through parquet-mr); table has no constants for them.
const (
	parquetDictionaryKey          = "parquet.enable.dictionary"
	parquetColumnDictionaryPrefix = "write.parquet.dict-encoding-enabled.column."
)
