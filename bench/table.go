package bench

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Line is one line of the table: a measurement, the baseline taken right
// before or after it in the same run, their ratio and the goal. A line
// that could not be measured says why in Ours.
type Line struct {
	Item     string // the item number, on the first line of each item
	What     string
	Ours     string
	Baseline string
	Ratio    string
	Goal     string
}

// Table is what the harness prints: a header naming the machine and the
// command, and the lines.
type Table struct {
	Header []string
	Lines  []Line
	Notes  []string
}

func (t *Table) add(l Line) { t.Lines = append(t.Lines, l) }

// Print writes the table as Markdown with aligned columns, readable on a
// terminal and pasted as is into BENCHMARKS.md.
func (t *Table) Print(w io.Writer) {
	for _, h := range t.Header {
		fmt.Fprintln(w, h)
	}
	fmt.Fprintln(w)
	rows := [][]string{{"#", "measurement", "ours", "baseline (same run)", "ratio", "goal"}}
	for _, l := range t.Lines {
		row := []string{l.Item, l.What, l.Ours, l.Baseline, l.Ratio, l.Goal}
		for i, c := range row {
			row[i] = strings.ReplaceAll(c, "|", "/") // a "|" would split the cell in Markdown
		}
		rows = append(rows, row)
	}
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range cells {
			b.WriteString(" " + c + strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)) + " |")
		}
		fmt.Fprintln(w, b.String())
	}
	line(rows[0])
	sep := make([]string, len(widths))
	for i, n := range widths {
		sep[i] = strings.Repeat("-", n)
	}
	line(sep)
	for _, r := range rows[1:] {
		line(r)
	}
	if len(t.Notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range t.Notes {
			fmt.Fprintln(w, n)
		}
	}
}

// Formatting helpers for the cells.

func perSec(v float64) string { return group(v) + "/s" }

// english prints numbers with thousands separators.
var english = message.NewPrinter(language.English)

// group renders v rounded, with thousands separators: 12,345.
func group(v float64) string { return english.Sprintf("%.0f", v) }

func ratio(ours, base float64) string {
	if base == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", ours/base)
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }
