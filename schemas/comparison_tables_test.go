package schemas_test

import (
	"slices"
	"strconv"
	"testing"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/replaykit/replay/schemas"
)

func TestComparisonTableDefinitions(t *testing.T) {
	wantSecond := map[string]string{
		schemas.TableComparisonSummary:    "endpoint",
		schemas.TableComparisonMismatches: "correlation_id",
	}
	for _, name := range schemas.ComparisonTableNames() {
		t.Run(name, func(t *testing.T) {
			if !schemas.IsComparisonTable(name) || slices.Contains(schemas.TableNames(), name) {
				t.Fatal("a comparison table must be known as one and not be a replay sink table")
			}
			sc := schemas.ComparisonSchema(name)
			if sc == nil {
				t.Fatal("no Iceberg schema")
			}
			for id, want := range map[int]string{1: "run_id", 2: wantSecond[name]} {
				f, ok := sc.FindFieldByID(id)
				if !ok || f.Name != want || !f.Required {
					t.Errorf("field %d = %+v (found %v), want required %s", id, f, ok, want)
				}
			}
			if !slices.Equal(sc.IdentifierFieldIDs, []int{1, 2}) {
				t.Errorf("identifier fields = %v, want [1 2]", sc.IdentifierFieldIDs)
			}
			if f, ok := sc.FindFieldByName("compared_at"); !ok || !f.Type.Equals(iceberg.PrimitiveTypes.TimestampTz) {
				t.Errorf("compared_at = %+v (found %v), want timestamptz", f, ok)
			}

			spec := schemas.ComparisonPartitionSpec(name)
			var transforms []string
			for _, f := range spec.Fields() {
				transforms = append(transforms, f.Transform.String()+"("+strconv.Itoa(f.SourceID())+")")
			}
			if want := []string{"identity(1)"}; !slices.Equal(transforms, want) {
				t.Errorf("partition spec = %v, want %v", transforms, want)
			}
			order := schemas.ComparisonSortOrder(name)
			if order.Len() != 1 || order.Field(0).SourceID() != 2 || order.Field(0).Direction != table.SortASC {
				t.Errorf("sort order = %v, want field 2 asc", order)
			}

			as := schemas.ComparisonArrowSchema(name)
			if as.NumFields() != sc.NumFields() {
				t.Fatalf("arrow has %d fields, iceberg %d", as.NumFields(), sc.NumFields())
			}
			for i, f := range sc.Fields() {
				af := as.Field(i)
				id, _ := af.Metadata.GetValue("PARQUET:field_id")
				if af.Name != f.Name || af.Nullable == f.Required || id != strconv.Itoa(f.ID) {
					t.Errorf("arrow field %d = %s nullable=%v id=%s, want %s nullable=%v id=%d",
						i, af.Name, af.Nullable, id, f.Name, !f.Required, f.ID)
				}
			}

			// The IDs are the ones iceberg-go assigns when it creates the table.
			fresh, err := iceberg.AssignFreshSchemaIDs(sc, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !fresh.Equals(sc) {
				t.Errorf("iceberg-go would renumber the schema:\n got  %v\n want %v", fresh, sc)
			}
			meta, err := table.NewMetadata(sc, spec, order, "file:///tmp/x", nil)
			if err != nil {
				t.Fatalf("new table metadata: %v", err)
			}
			if !meta.CurrentSchema().Equals(sc) {
				t.Errorf("created table schema differs:\n got  %v\n want %v", meta.CurrentSchema(), sc)
			}
		})
	}

	// Every Counts-like column of the summary is there.
	sc := schemas.ComparisonSchema(schemas.TableComparisonSummary)
	for _, col := range []string{"match_rate", "production_total", "replay_total", "joined", "only_production",
		"only_replay", "matched", "mismatched", "lineage_excluded", "noise_excluded", "production_passing",
		"production_failing", "replay_passing", "replay_failing", "production_p50_ms", "production_p90_ms",
		"production_p99_ms", "replay_p50_ms", "replay_p90_ms", "replay_p99_ms"} {
		if _, ok := sc.FindFieldByName(col); !ok {
			t.Errorf("comparison_summary lacks %s", col)
		}
	}

	if schemas.ComparisonSchema(schemas.TableProduction) != nil || schemas.ComparisonArrowSchema("nope") != nil ||
		schemas.ComparisonPartitionSpec("nope") != nil || !schemas.ComparisonSortOrder("nope").IsUnsorted() {
		t.Error("a name that is not a comparison table must give nil or unsorted")
	}
}
