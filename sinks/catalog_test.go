package sinks

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*IcebergConfig)
		want   []string // message prefixes, in order
	}{
		{"default", func(*IcebergConfig) {}, nil},
		{"rest without warehouse", func(c *IcebergConfig) {
			c.Catalog = CatalogConfig{Type: "rest", Name: "prod", URI: "http://catalog:8181"}
		}, nil},
		{"rest with a warehouse name", func(c *IcebergConfig) {
			c.Catalog = CatalogConfig{Type: "rest", Name: "prod", URI: "http://catalog:8181", Warehouse: "analytics"}
		}, nil},
		{"s3 warehouse", func(c *IcebergConfig) { c.Catalog.Warehouse = "s3://bucket/replay" }, nil},
		{"unknown type", func(c *IcebergConfig) { c.Catalog.Type = "x" },
			[]string{`catalog.type: unknown catalog type "x"; use one of sql, rest, glue, hive, hadoop`}},
		{"empty type", func(c *IcebergConfig) { c.Catalog.Type = "" }, []string{"catalog.type: is empty"}},
		{"sql without uri or warehouse", func(c *IcebergConfig) { c.Catalog.URI, c.Catalog.Warehouse = "", "" },
			[]string{"catalog.uri: is empty", "catalog.warehouse: is empty"}},
		{"unsupported warehouse scheme", func(c *IcebergConfig) { c.Catalog.Warehouse = "gs://b/p" },
			[]string{`catalog.warehouse: scheme "gs" is not supported`}},
		{"reserved property", func(c *IcebergConfig) { c.Catalog.Properties = map[string]string{"uri": "x", "s3.endpoint": "y"} },
			[]string{"catalog.properties.uri: set catalog.uri instead"}},
		{"flush and the rest", func(c *IcebergConfig) {
			c.Catalog.Name, c.Namespace, c.Flush.Rows, c.Flush.Bytes, c.Flush.Interval, c.Compression = "", "a..b", 0, -1, 0, "lzma"
		}, []string{
			"catalog.name: is empty",
			`namespace: "a..b" has an empty level`,
			"flush.rows: must be ≥ 1, got 0",
			"flush.bytes: must be ≥ 1, got -1",
			"flush.interval: must be > 0, got 0s",
			`compression: unknown Parquet codec "lzma"`,
		}},
		{"parquet settings", func(c *IcebergConfig) {
			c.CompressionLevel, c.RowGroupBytes, c.Dictionary = 23, 0, "some"
		}, []string{
			"compression_level: zstd takes -5 to 22 (or -1 for its default), got 23",
			"row_group_bytes: must be ≥ 1, got 0",
			`dictionary: must be repeated, all or none, got "some"`,
		}},
		{"level of a codec without levels", func(c *IcebergConfig) { c.Compression, c.CompressionLevel = "snappy", 3 },
			[]string{"compression_level: snappy has no levels, got 3; use -1"}},
		{"gzip level", func(c *IcebergConfig) { c.Compression, c.CompressionLevel = "gzip", 9 }, nil},
		{"commit retry", func(c *IcebergConfig) {
			c.CommitRetry = CommitRetryConfig{Attempts: 0, MinBackoff: 0, MaxBackoff: -time.Second}
		}, []string{
			"commit_retry.attempts: must be ≥ 1, got 0",
			"commit_retry.min_backoff: must be > 0, got 0s",
			"commit_retry.max_backoff: must be ≥ commit_retry.min_backoff (0s), got -1s",
		}},
		{"postgres catalog and s3 warehouse", func(c *IcebergConfig) {
			c.Catalog.URI, c.Catalog.Warehouse = "postgres://replay:${REPLAY_TEST_PGPASS}@db:5432/catalog", "s3://bucket/replay"
			c.S3 = S3Config{Endpoint: "https://s3.internal:9000", Region: "us-east-1", AccessKeyID: "AK", SecretAccessKey: "${REPLAY_TEST_S3_SECRET}", PathStyle: true}
		}, nil},
		{"s3 fields", func(c *IcebergConfig) {
			c.Catalog.URI = "postgresql://replay:${REPLAY_TEST_NOT_SET}@db/catalog"
			c.Catalog.Properties = map[string]string{"sql.dialect": "mysql", "s3.region": "eu-west-1"}
			c.S3 = S3Config{Endpoint: "s3.internal:9000/x", Region: "us-east-1", AccessKeyID: "AK", SessionToken: "${REPLAY_TEST_NOT_SET_2}"}
		}, []string{
			"catalog.uri: environment variable REPLAY_TEST_NOT_SET is not set",
			`catalog.properties.sql.dialect: "mysql" does not match the postgres:// catalog.uri`,
			"s3.session_token: environment variable REPLAY_TEST_NOT_SET_2 is not set",
			`s3.endpoint: "s3.internal:9000/x" is not an http(s)://host[:port] URL`,
			"s3.access_key_id, s3.secret_access_key: set both or neither",
			"catalog.properties.s3.region: s3.region sets it too; keep one",
		}},
		{"session token without keys", func(c *IcebergConfig) { c.S3.SessionToken = "tok" },
			[]string{"s3.session_token: needs s3.access_key_id and s3.secret_access_key"}},
		{"max backoff below min", func(c *IcebergConfig) { c.CommitRetry.MaxBackoff = time.Millisecond },
			[]string{"commit_retry.max_backoff: must be ≥ commit_retry.min_backoff (100ms), got 1ms"}},
		// Names that become directories of the warehouse and snapshot
		// properties (schemas.CheckName).
		{"names that fit", func(c *IcebergConfig) {
			c.Namespace, c.Group, c.RunID = "team.replay_v2", "replay-1", "checkout.v2_try-1"
		}, nil},
		{"namespace escaping the warehouse", func(c *IcebergConfig) { c.Namespace = "a/../../b" },
			[]string{`namespace: "a/../../b" has an empty level`}},
		{"namespace level with a slash", func(c *IcebergConfig) { c.Namespace = "team.re/play" },
			[]string{`namespace: level "re/play" has characters outside [A-Za-z0-9._-]`}},
		{"namespace of dots", func(c *IcebergConfig) { c.Namespace = ".." }, []string{`namespace: ".." has an empty level`}},
		{"run id and group", func(c *IcebergConfig) { c.RunID, c.Group = "../x", "a b" }, []string{
			`run_id: "../x" contains ".."`,
			`group (the consumer group, source.kafka.group): "a b" has characters outside [A-Za-z0-9._-]`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("REPLAY_TEST_PGPASS", "p")
			t.Setenv("REPLAY_TEST_S3_SECRET", "s")
			cfg := DefaultIcebergConfig()
			tc.change(&cfg)
			errs := cfg.Validate()
			if len(errs) != len(tc.want) {
				t.Fatalf("Validate() = %v, want %d errors %q", errors.Join(errs...), len(tc.want), tc.want)
			}
			for i, err := range errs {
				if !strings.HasPrefix(err.Error(), tc.want[i]) {
					t.Errorf("error %d = %q, want prefix %q", i, err, tc.want[i])
				}
			}
		})
	}
}

func TestS3PropertiesAndRedactedURI(t *testing.T) {
	t.Setenv("REPLAY_TEST_S3_SECRET", "sk")
	got := S3Config{Endpoint: "http://127.0.0.1:7070", Region: "us-east-1", AccessKeyID: "ak", SecretAccessKey: "${REPLAY_TEST_S3_SECRET}", PathStyle: true}.properties()
	want := map[string]string{"s3.endpoint": "http://127.0.0.1:7070", "s3.region": "us-east-1", "s3.access-key-id": "ak",
		"s3.secret-access-key": "sk", "s3.force-virtual-addressing": "false"}
	if !maps.Equal(map[string]string(got), want) {
		t.Errorf("properties = %v, want %v", got, want)
	}
	if got := (S3Config{}).properties(); len(got) != 1 || got["s3.force-virtual-addressing"] != "true" {
		t.Errorf("empty S3Config properties = %v, want only virtual-hosted addressing", got)
	}
	for in, want := range map[string]string{
		"postgres://replay:hunter2@db:5432/c": "postgres://replay:xxxxx@db:5432/c",
		"postgres://replay@db/c":              "postgres://replay@db/c",
		"./replay-data/catalog.db":            "./replay-data/catalog.db",
	} {
		if got := RedactURI(in); got != want {
			t.Errorf("RedactURI(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSQLiteDSN(t *testing.T) {
	dir := t.TempDir()
	dsn, err := sqliteDSN(dir+"/x/catalog.db", true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dsn, "file:"+dir+"/x/catalog.db?") || !strings.Contains(dsn, "journal_mode%28WAL%29") ||
		!strings.Contains(dsn, "busy_timeout") {
		t.Errorf("dsn = %q", dsn)
	}
	for _, given := range []string{"file:x.db?mode=memory", "x.db?_pragma=foreign_keys(1)", ":memory:"} {
		if got, err := sqliteDSN(given, true); err != nil || got != given {
			t.Errorf("sqliteDSN(%q) = %q, %v; want it unchanged", given, got, err)
		}
	}
}
