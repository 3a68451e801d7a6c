package sinks

import (
	"context"
	"database/sql"
	"io/fs"
	"maps"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/replaykit/replay/internal/testinfra"
	"github.com/replaykit/replay/schemas"
)

// postgresS3Config returns a sink configuration on a real PostgreSQL
// catalog and a real S3 server (versitygw), with the S3 secret read from
// the environment.
func postgresS3Config(t *testing.T) (IcebergConfig, *testinfra.S3) {
	t.Helper()
	dsn := testinfra.PostgresDatabaseT(t)
	s3 := testinfra.S3T(t, "warehouse")
	t.Setenv("REPLAY_TEST_S3_SECRET", s3.SecretKey)
	cfg := DefaultIcebergConfig()
	cfg.Group = testGroup
	cfg.Catalog.URI = dsn
	cfg.Catalog.Warehouse = "s3://warehouse/replay"
	cfg.S3 = S3Config{Endpoint: s3.Endpoint, Region: s3.Region, AccessKeyID: s3.AccessKey,
		SecretAccessKey: "${REPLAY_TEST_S3_SECRET}", PathStyle: true}

	return cfg, s3
}

// TestPostgresCatalogAndS3Warehouse writes and reads back replay's tables
// with the catalog in PostgreSQL and the files on an S3 server, selected
// by configuration only.
func TestPostgresCatalogAndS3Warehouse(t *testing.T) {
	cfg, s3 := postgresS3Config(t)
	s, _ := openTestConfig(t, cfg)
	results, _ := makeResults(120, 0)
	addAll(t, s, results)
	if got, want := flush(t, s), (schemas.Offsets{p0: 60, p1: 60}); !maps.Equal(got, want) {
		t.Fatalf("Flush = %v, want %v", got, want)
	}
	assertExactlyOnce(t, s, results)
	assertOffsets(t, s, schemas.Offsets{p0: 60, p1: 60})

	// The catalog rows are in PostgreSQL, pointing at metadata on S3.
	db, err := sql.Open("pgx", cfg.Catalog.URI)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), `SELECT table_name, metadata_location FROM iceberg_tables WHERE catalog_name = $1`, cfg.Catalog.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	tables := map[string]string{}
	for rows.Next() {
		var name, loc string
		if err := rows.Scan(&name, &loc); err != nil {
			t.Fatal(err)
		}
		tables[name] = loc
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, name := range schemas.TableNames() {
		if loc := tables[name]; !strings.HasPrefix(loc, "s3://warehouse/replay/") {
			t.Errorf("PostgreSQL holds %s at %q, want a metadata file under s3://warehouse/replay/", name, loc)
		}
	}

	// The data files are objects of the bucket (versitygw's posix backend
	// keeps each object as a file under the bucket's directory).
	var parquet int
	err = filepath.WalkDir(filepath.Join(s3.Root(), "warehouse"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".parquet") {
			parquet++
		}
		return err
	})
	if err != nil || parquet == 0 {
		t.Errorf("no parquet object in the bucket (%v)", err)
	}

	// Another process resumes from what the tables record.
	other, _ := openTestConfig(t, cfg)
	got, err := other.Resume(t.Context(), []schemas.TopicPartition{p0, p1})
	if err != nil {
		t.Fatal(err)
	}
	if want := (schemas.Offsets{p0: 60, p1: 60}); !maps.Equal(got, want) {
		t.Errorf("Resume = %v, want %v", got, want)
	}
}

// TestUnreachablePostgresAndS3NameWhatWasTried checks that a catalog or an
// S3 endpoint nobody answers on is reported with the URI or endpoint tried
// and the field to fix, the password redacted.
func TestUnreachablePostgresAndS3NameWhatWasTried(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60e9)
	defer cancel()
	cfg := DefaultIcebergConfig()
	cfg.Group = testGroup
	cfg.Catalog.URI = "postgres://replay:hunter2@127.0.0.1:1/catalog?sslmode=disable&connect_timeout=5"
	cfg.Catalog.Warehouse = "s3://warehouse/replay"
	_, err := OpenIceberg(ctx, cfg, nil)
	if err == nil {
		t.Fatal("OpenIceberg succeeded with no PostgreSQL on port 1")
	}
	for _, want := range []string{"postgres://replay:xxxxx@127.0.0.1:1/catalog", "sink.catalog.uri"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %q shows the password", err)
	}

	cfg, _ = postgresS3Config(t)
	cfg.S3.Endpoint = "http://127.0.0.1:1"
	cfg.Catalog.Properties = map[string]string{"s3.connect-timeout": "2"}
	_, err = OpenIceberg(ctx, cfg, nil)
	if err == nil {
		t.Fatal("OpenIceberg succeeded with no S3 server on port 1")
	}
	for _, want := range []string{"http://127.0.0.1:1", "sink.s3", "sink.catalog.warehouse"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

// TestUnreachableRESTCatalogNamesURI: a REST catalog is selected by
// configuration alone; one that does not answer is reported with its URL
// and the field.
func TestUnreachableRESTCatalogNamesURI(t *testing.T) {
	cfg := DefaultIcebergConfig()
	cfg.Group = testGroup
	cfg.Catalog = CatalogConfig{Type: "rest", Name: "lake", URI: "http://127.0.0.1:1/catalog", Warehouse: "analytics"}
	if errs := cfg.Validate(); len(errs) > 0 {
		t.Fatalf("Validate() = %v", errs)
	}
	_, err := OpenIceberg(t.Context(), cfg, nil)
	if err == nil {
		t.Fatal("OpenIceberg succeeded with no REST catalog on port 1")
	}
	for _, want := range []string{`rest catalog at "http://127.0.0.1:1/catalog"`, "sink.catalog.uri"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

// TestReplicasOpenAFreshPostgresCatalogTogether: replicas starting at the
// same moment on an empty database all open the catalog, the namespace
// and the tables, though they race to create them.
func TestReplicasOpenAFreshPostgresCatalogTogether(t *testing.T) {
	cfg := DefaultIcebergConfig()
	cfg.Group = testGroup
	cfg.Catalog.URI = testinfra.PostgresDatabaseT(t)
	cfg.Catalog.Warehouse = filepath.Join(t.TempDir(), "warehouse")
	const replicas = 6
	errs := make([]error, replicas)
	sinks := make([]*Iceberg, replicas)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range replicas {
		wg.Go(func() {
			<-start
			sinks[i], errs[i] = OpenIceberg(t.Context(), cfg, nil)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
			continue
		}
		if err := sinks[i].Close(); err != nil {
			t.Error(err)
		}
	}
}
