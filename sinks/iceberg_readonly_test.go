package sinks

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/iceberg-go/catalog"

	"github.com/replaykit/replay/schemas"
)

// TestOpenReadOnlyCreatesNothing opens catalogs that are missing or lack
// what is asked for: each is an error wrapping ErrNotFound that names it,
// and nothing is created. An existing catalog opens, reads, and refuses
// writes to replay's tables.
func TestOpenReadOnlyCreatesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfgAt := func(sub, namespace string) IcebergConfig {
		cfg := DefaultIcebergConfig()
		cfg.Catalog.URI = filepath.Join(dir, sub, "catalog.db")
		cfg.Catalog.Warehouse = filepath.Join(dir, sub, "warehouse")
		cfg.Namespace = namespace
		return cfg
	}
	required := []string{schemas.TableProduction, schemas.TableReplay}
	notFound := func(t *testing.T, cfg IcebergConfig, wants ...string) {
		t.Helper()
		s, err := OpenIcebergReadOnly(ctx, cfg, nil, required)
		if err == nil {
			_ = s.Close()
			t.Fatal("opened, want ErrNotFound")
		}
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("err %v, want ErrNotFound", err)
		}
		for _, w := range wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("err %q lacks %q", err, w)
			}
		}
	}

	t.Run("no catalog file", func(t *testing.T) {
		cfg := cfgAt("typo", "replay")
		notFound(t, cfg, cfg.Catalog.URI, "sink.catalog.uri")
		if _, err := os.Stat(filepath.Join(dir, "typo")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("created %s: %v", filepath.Join(dir, "typo"), err)
		}
	})

	// A catalog with a namespace "empty" that has no tables, and namespace
	// replay with all of them.
	cfg := cfgAt("data", "replay")
	w, err := OpenIceberg(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cat.CreateNamespace(ctx, catalog.ToIdentifier("empty"), nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	namespaces := func() []string {
		s, err := OpenIcebergReadOnly(ctx, cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		list, err := s.cat.ListNamespaces(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ns := range list {
			out = append(out, strings.Join(ns, "."))
		}
		return out
	}
	before := namespaces()

	t.Run("no namespace", func(t *testing.T) {
		notFound(t, cfgAt("data", "replya"), `namespace "replya"`, cfg.Catalog.URI, "sink.namespace")
	})
	t.Run("no tables", func(t *testing.T) {
		notFound(t, cfgAt("data", "empty"), "empty.production_responses, empty.replay_responses", cfg.Catalog.URI)
		s, err := OpenIcebergReadOnly(ctx, cfgAt("data", "empty"), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.RunSize(ctx, schemas.TableBaseline, "r"); !errors.Is(err, catalog.ErrNoSuchTable) {
			t.Errorf("RunSize of a missing table: %v, want ErrNoSuchTable", err)
		}
		for ident, err := range s.cat.ListTables(ctx, catalog.ToIdentifier("empty")) {
			if err != nil {
				t.Fatal(err)
			}
			t.Errorf("read-only open created table %v", ident)
		}
	})
	if after := namespaces(); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("namespaces %v after the read-only opens, %v before", after, before)
	}

	t.Run("reads, refuses writes", func(t *testing.T) {
		s, err := OpenIcebergReadOnly(ctx, cfg, nil, required)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if size, err := s.RunSize(ctx, schemas.TableReplay, "r"); err != nil || size.Rows != 0 {
			t.Errorf("RunSize = %+v, %v", size, err)
		}
		if err := s.Add(&schemas.Result{}); !errors.Is(err, ErrReadOnly) {
			t.Errorf("Add: %v, want ErrReadOnly", err)
		}
		if _, err := s.Resume(ctx, nil); !errors.Is(err, ErrReadOnly) {
			t.Errorf("Resume: %v, want ErrReadOnly", err)
		}
		if off, err := s.Flush(ctx); err != nil || len(off) != 0 {
			t.Errorf("Flush = %v, %v; want nothing to flush", off, err)
		}
	})
}
