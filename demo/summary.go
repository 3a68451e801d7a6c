package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/replaykit/replay/schemas"
	"github.com/replaykit/replay/service"
)

// countStatuses reads replay_responses back and counts status classes.
func countStatuses(ctx context.Context, res *service.Result, runID string, into map[string]int64) error {
	tbl, err := res.Sink.ScanRun(ctx, schemas.TableReplay, runID, "response_status", "error_kind")
	if err != nil {
		return err
	}
	defer tbl.Release()
	statusIdx := tbl.Schema().FieldIndices("response_status")
	if len(statusIdx) == 0 {
		return fmt.Errorf("read %s: no response_status column", schemas.TableReplay)
	}
	for _, chunk := range tbl.Column(statusIdx[0]).Data().Chunks() {
		col, ok := chunk.(*array.Int32)
		if !ok {
			return fmt.Errorf("read %s: response_status is %s, want int32", schemas.TableReplay, chunk.DataType())
		}
		for i := range col.Len() {
			if col.IsNull(i) {
				into["error"]++
				continue
			}
			into[fmt.Sprintf("%dxx", col.Value(i)/100)]++
		}
	}
	return nil
}

// Print writes the summary for people.
func (s *Summary) Print(w io.Writer) {
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	fmt.Fprintf(w, "\nreplay demo finished in %s — run %s\n\n", s.Took.Round(10*time.Millisecond), s.RunID)
	fmt.Fprintf(w, "  captured exchanges     %6d  (+%d undecodable records put on the topic)\n", s.Captured, s.Garbage)
	fmt.Fprintf(w, "  records consumed       %6d\n", s.Consumed)
	fmt.Fprintf(w, "  dead-lettered          %6d\n", s.DeadLettered)
	fmt.Fprintf(w, "  replayed               %6d  (2xx %d, 3xx %d, 4xx %d, 5xx %d, no response %d)\n", s.Replayed,
		s.ReplayStatus["2xx"], s.ReplayStatus["3xx"], s.ReplayStatus["4xx"], s.ReplayStatus["5xx"], s.ReplayStatus["error"])
	fmt.Fprintf(w, "\n  rows in Iceberg (run_id = %s):\n", s.RunID)
	for _, name := range []string{schemas.TableProduction, schemas.TableReplay, schemas.TableDeadLetters} {
		fmt.Fprintf(w, "    %-22s %6d   %s\n", name, s.Rows[name], s.TableLocation[name])
	}
	fmt.Fprintf(w, "\n  catalog    %s (SQLite, iceberg-go SQL catalog)\n", abs(s.CatalogURI))
	fmt.Fprintf(w, "  warehouse  %s\n\n", abs(s.Warehouse))
	if c := s.Comparison; c != nil {
		o := c.Overall
		fmt.Fprintf(w, "  comparison (replay compare --run %s):\n", s.RunID)
		rate := "n/a"
		if c.MatchRate != nil {
			rate = fmt.Sprintf("%.2f%%", 100**c.MatchRate)
		}
		fmt.Fprintf(w, "    match rate             %s  (%d matched, %d mismatched)\n", rate, o.Matched, o.Mismatched)
		fmt.Fprintf(w, "    lineage excluded       %6d  (the candidate used a newer catalog dependency)\n", o.LineageExcluded)
		fmt.Fprintf(w, "    production only        %6d  (not replayed)\n", o.OnlyProduction)
		if len(c.TopPaths) > 0 {
			fmt.Fprintf(w, "    top differing path     %s (%d)\n", c.TopPaths[0].Path, c.TopPaths[0].Count)
		}
		fmt.Fprintf(w, "    report                 %s\n", abs(c.Report))
		fmt.Fprintf(w, "    again                  %s compare --run %s --config %s\n\n", s.Command, ShellQuote(s.RunID), ShellQuote(FromHere(s.CompareConfig)))
	}
	fmt.Fprintf(w, "POSTs are recorded on the production side only: the default filter replays GET, HEAD and OPTIONS.\n")
	fmt.Fprintf(w, "Timestamps, list order and the rating→score rename are normalized away (the rules are in %s);\n", FromHere(s.CompareConfig))
	fmt.Fprintf(w, "what remains is the candidate's real bug: the year of every 29th title.\n")
	fmt.Fprintf(w, "The tables are plain Iceberg: read them with Spark, Trino, DuckDB or any iceberg-go client.\n")
}

// FromHere returns path as the user can type it from the working
// directory: relative when it is below it, else absolute.
func FromHere(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	wd, err := os.Getwd()
	if err != nil {
		return abs
	}
	rel, err := filepath.Rel(wd, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return abs
	}
	return rel
}

// ShellQuote quotes s for a POSIX shell when it holds anything but
// letters, digits and -_./:=@%+,
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@%+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
