package schemas

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/apache/iceberg-go"
)

var update = flag.Bool("update", false, "rewrite golden files and generated docs")

// tablesMarkdown renders the table schemas for README.md.
func tablesMarkdown() string {
	var b strings.Builder
	for _, name := range append(TableNames(), ComparisonTableNames()...) {
		sc := IcebergSchema(name)
		fmt.Fprintf(&b, "#### `%s`\n\n", name)
		if IsComparisonTable(name) {
			sc = ComparisonSchema(name)
			var ids []string
			for _, id := range sc.IdentifierFieldIDs {
				f, _ := sc.FindFieldByID(id)
				ids = append(ids, "`"+f.Name+"`")
			}
			fmt.Fprintf(&b, "Written by `replay compare`; partitioned by `identity(run_id)`; identifier fields %s. Re-running compare replaces the run's rows.\n\n", strings.Join(ids, ", "))
		} else {
			fmt.Fprintf(&b, "Partitioned by `identity(run_id)`, `day(captured_at)`; sorted by `correlation_id`; identifier fields `run_id`, `correlation_id`.\n\n")
		}
		if name == TableBaseline {
			fmt.Fprintf(&b, "The same requests as `%s`, replayed to `replay.baseline` (a second copy of the old version) in the same run; empty while `replay.baseline` is unset. The columns are those of `%s`.\n\n", TableReplay, TableReplay)
		}
		b.WriteString("| column | type | required | meaning |\n|---|---|---|---|\n")
		for _, f := range sc.Fields() {
			req := ""
			if f.Required {
				req = "yes"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", f.Name, typeName(f.Type), req, f.Doc)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func typeName(t iceberg.Type) string {
	s := t.String()
	s = strings.ReplaceAll(s, "<", "&lt;")
	return strings.ReplaceAll(s, ">", "&gt;")
}

const (
	tablesBegin = "<!-- tables:begin (generated from schemas/tables.go: go test ./schemas -update) -->\n"
	tablesEnd   = "<!-- tables:end -->"
)

// TestReadmeTablesMatchSchemas keeps the README's table reference true to
// the schemas the sink creates.
func TestReadmeTablesMatchSchemas(t *testing.T) {
	const path = "../README.md"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	i, j := strings.Index(readme, tablesBegin), strings.Index(readme, tablesEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the generated tables section markers %q … %q", tablesBegin, tablesEnd)
	}
	want := tablesMarkdown()
	got := readme[i+len(tablesBegin) : j]
	if got == want {
		return
	}
	if *update {
		readme = readme[:i+len(tablesBegin)] + want + readme[j:]
		if err := os.WriteFile(path, []byte(readme), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's table reference is out of date; run: go test ./schemas -run TestReadmeTablesMatchSchemas -update")
}
