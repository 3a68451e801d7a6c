package compare

// report.go renders a Summary as report.html: one self-contained page for the
// migration team (inline CSS, charts as inline SVG built here, no scripts, no
// fonts or images fetched from anywhere). The layout lives in
// report.html.tmpl; this file turns a Summary into display-ready values so
// the template only lays them out. html/template escapes every value, and a
// Content-Security-Policy in the page forbids scripts and network access as a
// second line of defence: bodies and paths come from production traffic.
//
// The side-by-side body diff is a small line-based LCS written here: no diff
// library is in go.mod, and a line diff of pretty-printed JSON is all the page
// needs.

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Display limits: the producer already truncates bodies, these keep the page
// bounded whatever it is given.
const (
	reportMaxBodyLines = 400     // lines per side in a body diff
	reportHexBytes     = 512     // bytes of a binary body shown as a hex dump
	reportMaxDiffCells = 1 << 20 // LCS table size above which a hunk is shown as replaced wholesale
	reportDiffContext  = 3       // unchanged lines kept around each change
	reportMaxPatchLen  = 16 << 10
)

// Match-rate thresholds for the colour of the headline and of the bars.
const (
	reportRateGood = 0.99
	reportRateWarn = 0.95
)

//go:embed report.html.tmpl
var reportTemplateText string

var reportTemplate = template.Must(template.New("report.html").Funcs(template.FuncMap{
	"segments": reportSegments,
}).Parse(reportTemplateText))

// reportSegments splits an endpoint or a JSON path before each "/", so the
// template can offer a line break (<wbr>) there and long paths wrap at
// their separators. The empty JSON Pointer, the whole document, is named.
func reportSegments(path string) []string {
	if path == "" {
		return []string{"(whole body)"}
	}
	var out []string
	for {
		i := strings.Index(path[1:], "/")
		if i < 0 {
			return append(out, path)
		}
		out = append(out, path[:i+1])
		path = path[i+1:]
	}
}

// WriteReport renders s as one self-contained HTML page and writes it to w.
// The page is rendered in memory first, so w receives either the whole page
// or, on a render error, nothing.
func WriteReport(w io.Writer, s *Summary) error {
	if s == nil {
		return errors.New("write report: nil summary")
	}
	var buf bytes.Buffer
	if err := reportTemplate.Execute(&buf, newReportView(s)); err != nil {
		return fmt.Errorf("render report for run %q: %w", s.RunID, err)
	}
	if _, err := buf.WriteTo(w); err != nil {
		return fmt.Errorf("write report for run %q: %w", s.RunID, err)
	}
	return nil
}

// WriteReportFile writes the report to path atomically: it creates the parent
// directory, writes a temporary file beside path, syncs it and renames it over
// path, so a reader never sees a half-written report. It does not set
// s.Report; the caller decides what to record.
func (s *Summary) WriteReportFile(path string) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create report directory %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("create temporary report in %s: %w", dir, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := WriteReport(f, s); err != nil {
		return fmt.Errorf("%w (to %s)", err, path)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("chmod report %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync report %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close report %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename report %s to %s: %w", tmp, path, err)
	}
	return nil
}

// reportView is what the template lays out; every number is already a string.
type reportView struct {
	RunID      string
	ComparedAt string
	Duration   string
	Rate       reportRate
	Tiles      []reportTile
	Joined     string
	ProdTotal  string
	ReplTotal  string
	Spilled    bool
	Tables     []string

	Endpoints []reportEndpoint
	Total     reportEndpoint

	Paths         []reportPath
	PathsMismatch string // denominator of the path shares
	// Baseline, Noise and NoiseJoined are the noise section, shown only
	// with a baseline: where it came from, paths differing between
	// production and the baseline, their rate over NoiseJoined pairs
	// compared with a baseline row.
	Baseline       string
	Noise          []reportPath
	NoiseJoined    string
	Matrix         reportMatrix
	Latency        reportChart
	Percentiles    []reportPercentile
	Errors         []reportErrorKind
	ErrorsTotal    string
	Mismatches     []reportMismatch
	MismatchesOf   string
	MismatchesMore bool
	// Duplicates is the duplicate correlation IDs section; nil hides it.
	Duplicates *DuplicateSummary
}

type reportRate struct {
	Text  string // "97.42%" or "n/a"
	Class string // good, warn, bad or none
	Bar   float64
}

type reportTile struct {
	Label, Value, Hint, Class string
}

type reportEndpoint struct {
	Name                                     string
	Joined, Matched, Mismatched, Lineage     string
	MismatchedClass                          string
	Rate                                     reportRate
	ProdPass, ProdFail, ReplPass, ReplFail   string
	ReplFailClass                            string
	ProdP50, ProdP90, ProdP99                string
	ReplP50, ReplP90, ReplP99                string
	ReplP50Class, ReplP90Class, ReplP99Class string
}

type reportPath struct {
	Path    string
	Count   string
	Share   reportRate
	Samples []reportLink
}

type reportLink struct {
	Text, Href string // Href is "" when the target is not on the page
}

type reportMatrix struct {
	Cols      []reportStatus
	Rows      []reportMatrixRow
	ColTotals []string
	Total     string
}

type reportMatrixRow struct {
	Status reportStatus
	Cells  []reportCell
	Total  string
}

type reportCell struct {
	Text, Class string
}

type reportStatus struct {
	Text, Class string
}

type reportPercentile struct {
	Name, Production, Replay, Delta, DeltaClass string
}

type reportErrorKind struct {
	Kind, Count string
	Share       reportRate
}

type reportMismatch struct {
	Anchor         string
	N              int
	CorrelationID  string
	Endpoint       string
	Production     reportStatus
	Replay         reportStatus
	ErrorKind      string
	Paths          []string
	Patch          string
	Lineage        []reportLineage
	Diff           reportDiff
	ProductionNote string
	ReplayNote     string
}

type reportLineage struct {
	Key, Production, Replay string
	Differs                 bool
}

func newReportView(s *Summary) *reportView {
	o := s.Overall
	v := &reportView{
		RunID:      s.RunID,
		ComparedAt: "—",
		Duration:   reportDuration(s.Duration),
		Rate:       reportMatchRate(o),
		Joined:     reportInt(o.Joined),
		ProdTotal:  reportInt(o.ProductionTotal),
		ReplTotal:  reportInt(o.ReplayTotal),
		Spilled:    s.Spilled,
	}
	if !s.ComparedAt.IsZero() {
		v.ComparedAt = s.ComparedAt.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	for _, t := range []string{s.SummaryTable, s.MismatchesTable} {
		if t != "" {
			v.Tables = append(v.Tables, t)
		}
	}
	v.Tiles = []reportTile{
		{Label: "Matched", Value: reportInt(o.Matched), Hint: "identical after normalization", Class: "good"},
		{Label: "Mismatched", Value: reportInt(o.Mismatched), Hint: "status or body differs", Class: reportNonZero(o.Mismatched, "bad")},
		{Label: "Lineage-excluded", Value: reportInt(o.LineageExcluded), Hint: "lineage key differs; not in the rate", Class: reportNonZero(o.LineageExcluded, "note")},
		{Label: "Noise-excluded", Value: reportInt(o.NoiseExcluded), Hint: "known noise; not in the rate", Class: reportNonZero(o.NoiseExcluded, "note")},
		{Label: "Only production", Value: reportInt(o.OnlyProduction), Hint: "not selected or not replayed yet", Class: reportNonZero(o.OnlyProduction, "note")},
		{Label: "Only replay", Value: reportInt(o.OnlyReplay), Hint: "no production row", Class: reportNonZero(o.OnlyReplay, "note")},
	}
	if o.ReplayAmplified > 0 {
		v.Tiles = append(v.Tiles, reportTile{Label: "Amplified copies", Value: reportInt(o.ReplayAmplified),
			Hint: "extra replays (evacuation multipliers); not compared", Class: "note"})
	}
	addDuplicates(v, s)

	for _, c := range s.Endpoints {
		if c.Endpoint == EndpointAll {
			continue
		}
		v.Endpoints = append(v.Endpoints, newReportEndpoint(c))
	}
	v.Total = newReportEndpoint(o)
	v.Total.Name = "All endpoints"

	anchors := make(map[string]string, len(s.TopMismatches))
	for i, m := range s.TopMismatches {
		if _, ok := anchors[m.CorrelationID]; !ok {
			anchors[m.CorrelationID] = reportAnchor(i)
		}
	}
	var pathDenom int64 = o.Mismatched
	for _, p := range s.TopPaths {
		pathDenom = max(pathDenom, p.Count)
	}
	v.PathsMismatch = reportInt(o.Mismatched)
	for _, p := range s.TopPaths {
		row := reportPath{Path: p.Path, Count: reportInt(p.Count), Share: reportShare(p.Count, pathDenom)}
		for _, id := range p.Samples {
			row.Samples = append(row.Samples, reportLink{Text: id, Href: reportHref(anchors[id])})
		}
		v.Paths = append(v.Paths, row)
	}

	switch s.BaselineSource {
	case BaselineFromRun:
		v.Baseline = "baseline run " + s.BaselineRunID
	case BaselineFromTable:
		v.Baseline = "baseline from " + s.BaselineTable
	}
	v.NoiseJoined = reportInt(s.BaselineJoined)
	for _, p := range s.NoisyPaths {
		row := reportPath{Path: p.Path, Count: reportInt(p.Count), Share: reportShare(p.Count, s.BaselineJoined)}
		for _, id := range p.Samples {
			row.Samples = append(row.Samples, reportLink{Text: id, Href: reportHref(anchors[id])})
		}
		v.Noise = append(v.Noise, row)
	}

	v.Matrix = newReportMatrix(s.StatusMatrix)
	v.Latency = newReportChart(s.Latency)
	v.Percentiles = []reportPercentile{
		newReportPercentile("p50", o.ProductionP50, o.ReplayP50),
		newReportPercentile("p90", o.ProductionP90, o.ReplayP90),
		newReportPercentile("p99", o.ProductionP99, o.ReplayP99),
	}

	var errTotal int64
	for _, n := range s.ErrorKinds {
		errTotal += n
	}
	v.ErrorsTotal = reportInt(errTotal)
	kinds := make([]string, 0, len(s.ErrorKinds))
	for k := range s.ErrorKinds {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool {
		a, b := s.ErrorKinds[kinds[i]], s.ErrorKinds[kinds[j]]
		if a != b {
			return a > b
		}
		return kinds[i] < kinds[j]
	})
	for _, k := range kinds {
		n := s.ErrorKinds[k]
		kind := k
		if kind == "" {
			kind = "(unnamed)"
		}
		v.Errors = append(v.Errors, reportErrorKind{Kind: kind, Count: reportInt(n), Share: reportShare(n, errTotal)})
	}

	for i, m := range s.TopMismatches {
		v.Mismatches = append(v.Mismatches, newReportMismatch(i, m))
	}
	v.MismatchesOf = reportInt(o.Mismatched)
	v.MismatchesMore = int64(len(s.TopMismatches)) < o.Mismatched
	return v
}

func newReportEndpoint(c Counts) reportEndpoint {
	e := reportEndpoint{
		Name:            c.Endpoint,
		Joined:          reportInt(c.Joined),
		Matched:         reportInt(c.Matched),
		Mismatched:      reportInt(c.Mismatched),
		MismatchedClass: reportNonZero(c.Mismatched, "bad"),
		Lineage:         reportInt(c.LineageExcluded),
		Rate:            reportMatchRate(c),
		ProdPass:        reportInt(c.ProductionPassing),
		ProdFail:        reportInt(c.ProductionFailing),
		ReplPass:        reportInt(c.ReplayPassing),
		ReplFail:        reportInt(c.ReplayFailing),
		ProdP50:         reportMSNumber(c.ProductionP50),
		ProdP90:         reportMSNumber(c.ProductionP90),
		ProdP99:         reportMSNumber(c.ProductionP99),
		ReplP50:         reportMSNumber(c.ReplayP50),
		ReplP90:         reportMSNumber(c.ReplayP90),
		ReplP99:         reportMSNumber(c.ReplayP99),
		ReplP50Class:    reportSlower(c.ProductionP50, c.ReplayP50),
		ReplP90Class:    reportSlower(c.ProductionP90, c.ReplayP90),
		ReplP99Class:    reportSlower(c.ProductionP99, c.ReplayP99),
	}
	if c.ReplayFailing > c.ProductionFailing {
		e.ReplFailClass = "bad"
	}
	return e
}

func newReportPercentile(name string, prod, repl float64) reportPercentile {
	p := reportPercentile{Name: name, Production: reportMS(prod), Replay: reportMS(repl), Delta: "—"}
	if prod > 0 && repl > 0 {
		d := (repl - prod) / prod
		p.Delta = fmt.Sprintf("%+.1f%%", d*100)
		p.DeltaClass = reportSlower(prod, repl)
		if d < -0.1 {
			p.DeltaClass = "good"
		}
	}
	return p
}

// newReportMatrix lays the cells out as production rows × replay columns,
// status codes ascending and "no response" (0) last.
func newReportMatrix(cells []StatusCell) reportMatrix {
	var m reportMatrix
	if len(cells) == 0 {
		return m
	}
	counts := make(map[[2]int]int64, len(cells))
	rowSet, colSet := map[int]bool{}, map[int]bool{}
	for _, c := range cells {
		counts[[2]int{c.Production, c.Replay}] += c.Count
		rowSet[c.Production] = true
		colSet[c.Replay] = true
	}
	rows, cols := reportStatusOrder(rowSet), reportStatusOrder(colSet)
	colTotals := make([]int64, len(cols))
	var total int64
	for _, c := range cols {
		m.Cols = append(m.Cols, newReportStatus(c))
	}
	for _, r := range rows {
		row := reportMatrixRow{Status: newReportStatus(r)}
		var rowTotal int64
		for j, c := range cols {
			n, ok := counts[[2]int{r, c}]
			cell := reportCell{Text: "·", Class: "zero"}
			if ok {
				cell.Text = reportInt(n)
				switch {
				case r == c:
					cell.Class = "same"
				case n > 0:
					cell.Class = "off"
				}
			}
			row.Cells = append(row.Cells, cell)
			rowTotal += n
			colTotals[j] += n
		}
		total += rowTotal
		row.Total = reportInt(rowTotal)
		m.Rows = append(m.Rows, row)
	}
	for _, n := range colTotals {
		m.ColTotals = append(m.ColTotals, reportInt(n))
	}
	m.Total = reportInt(total)
	return m
}

func reportStatusOrder(set map[int]bool) []int {
	out := make([]int, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if (a == 0) != (b == 0) {
			return b == 0
		}
		return a < b
	})
	return out
}

func newReportStatus(code int) reportStatus {
	switch {
	case code == 0:
		return reportStatus{Text: "no response", Class: "s0"}
	case code < 300:
		return reportStatus{Text: strconv.Itoa(code), Class: "s2"}
	case code < 400:
		return reportStatus{Text: strconv.Itoa(code), Class: "s3"}
	case code < 500:
		return reportStatus{Text: strconv.Itoa(code), Class: "s4"}
	default:
		return reportStatus{Text: strconv.Itoa(code), Class: "s5"}
	}
}

func newReportMismatch(i int, m Mismatch) reportMismatch {
	r := reportMismatch{
		Anchor:        reportAnchor(i),
		N:             i + 1,
		CorrelationID: m.CorrelationID,
		Endpoint:      m.Endpoint,
		Production:    newReportStatus(m.ProductionStatus),
		Replay:        newReportStatus(m.ReplayStatus),
		ErrorKind:     m.ReplayErrorKind,
		Paths:         m.Paths,
		Patch:         reportPatch(m.Patch),
	}
	keys := make([]string, 0, len(m.ProductionLineage)+len(m.ReplayLineage))
	for k := range m.ProductionLineage {
		keys = append(keys, k)
	}
	for k := range m.ReplayLineage {
		if _, ok := m.ProductionLineage[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		p, pok := m.ProductionLineage[k]
		q, qok := m.ReplayLineage[k]
		r.Lineage = append(r.Lineage, reportLineage{Key: k, Production: p, Replay: q, Differs: p != q || pok != qok})
	}
	left, lnote := reportBodyLines(m.ProductionBody, m.ProductionRaw)
	right, rnote := reportBodyLines(m.ReplayBody, m.ReplayRaw)
	if m.ProductionStatus == 0 && len(left) == 0 {
		lnote = "no response"
	}
	if m.ReplayStatus == 0 && len(right) == 0 {
		rnote = "no response"
	}
	r.ProductionNote, r.ReplayNote = lnote, rnote
	r.Diff = newReportDiff(left, right)
	return r
}

// reportPatch puts one JSON Patch operation on each line; anything that is
// not a JSON array is shown as given.
func reportPatch(patch string) string {
	if len(patch) > reportMaxPatchLen {
		return patch[:reportMaxPatchLen] + "\n… (truncated)"
	}
	var ops []json.RawMessage
	if err := json.Unmarshal([]byte(patch), &ops); err != nil {
		return patch
	}
	var b strings.Builder
	for i, op := range ops {
		var c bytes.Buffer
		if err := json.Compact(&c, op); err != nil {
			return patch
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		b.Write(c.Bytes())
	}
	return b.String()
}

// reportBodyLines turns a body into display lines: pretty-printed JSON, text
// when it is valid UTF-8 without control characters, otherwise a hex dump of
// its first bytes. The note says what was done to it.
func reportBodyLines(normalized, raw []byte) (lines []string, note string) {
	body := normalized
	var notes []string
	if body == nil && raw != nil {
		body = raw
		notes = append(notes, "raw body, not normalized")
	}
	switch {
	case len(body) == 0:
		return nil, "empty body"
	case json.Valid(body):
		var b bytes.Buffer
		if err := json.Indent(&b, body, "", "  "); err == nil {
			body = b.Bytes()
		}
		lines = strings.Split(strings.TrimRight(string(body), " \t\r\n"), "\n")
	case reportIsText(body):
		text := strings.ReplaceAll(string(body), "\r\n", "\n")
		lines = strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	default:
		lines = reportHexDump(body[:min(len(body), reportHexBytes)])
		if len(body) > reportHexBytes {
			notes = append(notes, fmt.Sprintf("binary, %s bytes; first %d as hex", reportInt(int64(len(body))), reportHexBytes))
		} else {
			notes = append(notes, fmt.Sprintf("binary, %s bytes, as hex", reportInt(int64(len(body)))))
		}
	}
	if len(lines) > reportMaxBodyLines {
		notes = append(notes, fmt.Sprintf("first %d of %s lines", reportMaxBodyLines, reportInt(int64(len(lines)))))
		lines = lines[:reportMaxBodyLines]
	}
	return lines, strings.Join(notes, "; ")
}

func reportIsText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
			return false
		}
	}
	return true
}

// reportHexDump formats b like hexdump -C: offset, 16 bytes, printable ASCII.
func reportHexDump(b []byte) []string {
	var lines []string
	for off := 0; off < len(b); off += 16 {
		chunk := b[off:min(off+16, len(b))]
		var l strings.Builder
		fmt.Fprintf(&l, "%08x ", off)
		for i := range 16 {
			if i == 8 {
				l.WriteByte(' ')
			}
			if i < len(chunk) {
				fmt.Fprintf(&l, " %02x", chunk[i])
			} else {
				l.WriteString("   ")
			}
		}
		l.WriteString("  |")
		for _, c := range chunk {
			if c < 0x20 || c > 0x7e {
				c = '.'
			}
			l.WriteByte(c)
		}
		l.WriteByte('|')
		lines = append(lines, l.String())
	}
	return lines
}

// reportDiff is a side-by-side line diff ready to lay out.
type reportDiff struct {
	Rows      []reportDiffRow
	Identical bool // no line differs
	Folded    bool // some unchanged lines are hidden until "show all lines"
	Empty     bool // both sides have no lines
}

type reportDiffRow struct {
	Gap        string // "⋯ 12 unchanged lines": a marker row, the other fields are empty
	Far        bool   // unchanged and far from any change: hidden unless expanded
	LeftNum    string
	Left       reportLine
	LeftClass  string // "", "del" or "none" (no line on this side)
	RightNum   string
	Right      reportLine
	RightClass string // "", "ins" or "none"
}

// reportLine is a line split around the part that changed, which the page
// marks; Pre holds the whole line when nothing is marked.
type reportLine struct {
	Pre, Mark, Post string
}

// reportMarkChange splits a changed line and its counterpart around what
// differs between them: the text between their common prefix and suffix,
// widened to whole words so that 3.99 → 4.49 marks both numbers, not "3.9"
// and "4.4". Lines that share less than half their text are not marked.
func reportMarkChange(a, b string) (reportLine, reportLine) {
	ra, rb := []rune(a), []rune(b)
	pre := 0
	for pre < len(ra) && pre < len(rb) && ra[pre] == rb[pre] {
		pre++
	}
	suf := 0
	for suf < len(ra)-pre && suf < len(rb)-pre && ra[len(ra)-1-suf] == rb[len(rb)-1-suf] {
		suf++
	}
	word := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("._-", r) }
	for pre > 0 && word(ra[pre-1]) {
		pre--
	}
	for suf > 0 && word(ra[len(ra)-suf]) {
		suf--
	}
	// Mark only lines that are mostly alike; marks in two unrelated lines
	// are noise. Indentation does not count as alike.
	indent := 0
	for indent < pre && unicode.IsSpace(ra[indent]) {
		indent++
	}
	if 2*(pre+suf-indent) < max(len(ra), len(rb))-indent {
		return reportLine{Pre: a}, reportLine{Pre: b}
	}
	split := func(r []rune) reportLine {
		return reportLine{Pre: string(r[:pre]), Mark: string(r[pre : len(r)-suf]), Post: string(r[len(r)-suf:])}
	}
	return split(ra), split(rb)
}

func newReportDiff(left, right []string) reportDiff {
	var d reportDiff
	if len(left) == 0 && len(right) == 0 {
		d.Empty, d.Identical = true, true
		return d
	}
	ops := reportLineDiff(left, right)
	var rows []reportDiffRow
	changed := false
	for i := 0; i < len(ops); {
		if ops[i].kind == '=' {
			a, b := ops[i].a, ops[i].b
			rows = append(rows, reportDiffRow{
				LeftNum: strconv.Itoa(a + 1), Left: reportLine{Pre: left[a]},
				RightNum: strconv.Itoa(b + 1), Right: reportLine{Pre: right[b]},
			})
			i++
			continue
		}
		changed = true
		var dels, ins []int
		for ; i < len(ops) && ops[i].kind != '='; i++ {
			if ops[i].kind == '-' {
				dels = append(dels, ops[i].a)
			} else {
				ins = append(ins, ops[i].b)
			}
		}
		for k := range max(len(dels), len(ins)) {
			row := reportDiffRow{LeftClass: "none", RightClass: "none"}
			if k < len(dels) {
				row.LeftNum, row.Left, row.LeftClass = strconv.Itoa(dels[k]+1), reportLine{Pre: left[dels[k]]}, "del"
			}
			if k < len(ins) {
				row.RightNum, row.Right, row.RightClass = strconv.Itoa(ins[k]+1), reportLine{Pre: right[ins[k]]}, "ins"
			}
			if k < len(dels) && k < len(ins) {
				row.Left, row.Right = reportMarkChange(left[dels[k]], right[ins[k]])
			}
			rows = append(rows, row)
		}
	}
	d.Identical = !changed

	// Hide unchanged lines more than reportDiffContext away from a change,
	// when at least a few would be hidden together.
	dist := make([]int, len(rows))
	last := -1 << 30
	for i, r := range rows {
		if r.LeftClass != "" || r.RightClass != "" {
			last = i
		}
		dist[i] = i - last
	}
	last = 1 << 30
	for i := len(rows) - 1; i >= 0; i-- {
		if rows[i].LeftClass != "" || rows[i].RightClass != "" {
			last = i
		}
		dist[i] = min(dist[i], last-i)
	}
	for i := 0; i < len(rows); {
		if dist[i] <= reportDiffContext {
			d.Rows = append(d.Rows, rows[i])
			i++
			continue
		}
		j := i
		for j < len(rows) && dist[j] > reportDiffContext {
			j++
		}
		if j-i < 4 {
			d.Rows = append(d.Rows, rows[i:j]...)
		} else {
			d.Folded = true
			word := "unchanged"
			if d.Identical {
				word = "identical"
			}
			d.Rows = append(d.Rows, reportDiffRow{Gap: fmt.Sprintf("⋯ %s %s lines", reportInt(int64(j-i)), word)})
			for k := i; k < j; k++ {
				r := rows[k]
				r.Far = true
				d.Rows = append(d.Rows, r)
			}
		}
		i = j
	}
	return d
}

// reportOp is one step of a line diff: '=' keeps left[a] == right[b], '-'
// drops left[a], '+' adds right[b].
type reportOp struct {
	kind byte
	a, b int
}

// reportLineDiff is a longest-common-subsequence line diff. Common prefix and
// suffix are matched first; the middle gets an LCS table when it is at most
// reportMaxDiffCells, otherwise it is shown as replaced wholesale. Within a
// change, deletions come before insertions.
func reportLineDiff(left, right []string) []reportOp {
	pre := 0
	for pre < len(left) && pre < len(right) && left[pre] == right[pre] {
		pre++
	}
	suf := 0
	for suf < len(left)-pre && suf < len(right)-pre && left[len(left)-1-suf] == right[len(right)-1-suf] {
		suf++
	}
	ops := make([]reportOp, 0, len(left)+len(right))
	for i := range pre {
		ops = append(ops, reportOp{'=', i, i})
	}
	a, b := left[pre:len(left)-suf], right[pre:len(right)-suf]
	n, m := len(a), len(b)
	if n*m > reportMaxDiffCells {
		for i := range n {
			ops = append(ops, reportOp{'-', pre + i, -1})
		}
		for j := range m {
			ops = append(ops, reportOp{'+', -1, pre + j})
		}
	} else {
		// lcs[i*(m+1)+j] is the LCS length of a[i:] and b[j:].
		lcs := make([]int32, (n+1)*(m+1))
		for i := n - 1; i >= 0; i-- {
			for j := m - 1; j >= 0; j-- {
				if a[i] == b[j] {
					lcs[i*(m+1)+j] = lcs[(i+1)*(m+1)+j+1] + 1
				} else {
					lcs[i*(m+1)+j] = max(lcs[(i+1)*(m+1)+j], lcs[i*(m+1)+j+1])
				}
			}
		}
		i, j := 0, 0
		for i < n || j < m {
			switch {
			case i < n && j < m && a[i] == b[j]:
				ops = append(ops, reportOp{'=', pre + i, pre + j})
				i, j = i+1, j+1
			case j == m || i < n && lcs[(i+1)*(m+1)+j] >= lcs[i*(m+1)+j+1]:
				ops = append(ops, reportOp{'-', pre + i, -1})
				i++
			default:
				ops = append(ops, reportOp{'+', -1, pre + j})
				j++
			}
		}
	}
	for k := range suf {
		ops = append(ops, reportOp{'=', len(left) - suf + k, len(right) - suf + k})
	}
	return ops
}

// reportChart is the latency histogram as grouped bars in an SVG, with the
// counts of each bucket printed under it (the tail buckets are too small to
// read as bars, and the tail is what a migration cares about).
type reportChart struct {
	Empty             bool
	Width, Height     float64
	PlotLeft, PlotTop float64
	PlotRight         float64
	PlotBottom        float64
	YTicks            []reportTick
	XLabels           []reportTick
	Rotate            bool // x labels are rotated to fit
	Bars              []reportBar
	ProdCounts        []reportTick
	ReplCounts        []reportTick
	ProdRowY          float64
	ReplRowY          float64
	XTitleX, XTitleY  float64
	YTitleX, YTitleY  float64
	LegendX           float64
	ProdTotal         string
	ReplTotal         string
}

type reportTick struct {
	X, Y  float64
	Label string
}

type reportBar struct {
	X, Y, W, H float64
	Class      string // prod or repl
	Title      string
}

func newReportChart(h LatencyHistogram) reportChart {
	n := max(len(h.Production), len(h.Replay))
	var peak, prodTotal, replTotal int64
	for i := range n {
		p, r := reportAt(h.Production, i), reportAt(h.Replay, i)
		peak = max(peak, p, r)
		prodTotal += p
		replTotal += r
	}
	c := reportChart{Width: 900, PlotLeft: 88, PlotTop: 36, PlotBottom: 256, ProdTotal: reportInt(prodTotal), ReplTotal: reportInt(replTotal)}
	if n == 0 || peak == 0 {
		c.Empty = true
		return c
	}
	c.PlotRight = c.Width - 16
	slot := (c.PlotRight - c.PlotLeft) / float64(n)
	c.Rotate = slot < 64
	labelY := c.PlotBottom + 17
	c.ProdRowY, c.ReplRowY = c.PlotBottom+34, c.PlotBottom+49
	c.XTitleY = c.PlotBottom + 74
	if c.Rotate {
		c.ProdRowY, c.ReplRowY = c.PlotBottom+16, c.PlotBottom+31
		labelY = c.PlotBottom + 46
		c.XTitleY = c.PlotBottom + 118
	}
	c.Height = c.XTitleY + 10
	plotH := c.PlotBottom - c.PlotTop

	step := reportNiceStep(float64(peak) / 4)
	top := math.Ceil(float64(peak)/step) * step
	for v := 0.0; v <= top+step/2; v += step {
		c.YTicks = append(c.YTicks, reportTick{Y: reportRound(c.PlotBottom - v/top*plotH), Label: reportInt(int64(v))})
	}
	barW := math.Min(28, slot*0.36)
	for i := range n {
		label := reportBucketLabel(h.BoundsMS, i)
		mid := reportRound(c.PlotLeft + slot*(float64(i)+0.5))
		prod, repl := reportAt(h.Production, i), reportAt(h.Replay, i)
		for k, side := range []struct {
			class, name string
			v           int64
		}{{"prod", "production", prod}, {"repl", "replay", repl}} {
			hgt := float64(side.v) / top * plotH
			if side.v > 0 {
				hgt = math.Max(hgt, 1)
			}
			c.Bars = append(c.Bars, reportBar{
				X: reportRound(mid - barW - 1 + float64(k)*(barW+2)), Y: reportRound(c.PlotBottom - hgt),
				W: reportRound(barW), H: reportRound(hgt), Class: side.class,
				Title: fmt.Sprintf("%s: %s %s", label, side.name, reportInt(side.v)),
			})
		}
		c.XLabels = append(c.XLabels, reportTick{X: mid, Y: labelY, Label: label})
		c.ProdCounts = append(c.ProdCounts, reportTick{X: mid, Y: c.ProdRowY, Label: reportCompact(prod)})
		c.ReplCounts = append(c.ReplCounts, reportTick{X: mid, Y: c.ReplRowY, Label: reportCompact(repl)})
	}
	c.XTitleX = (c.PlotLeft + c.PlotRight) / 2
	c.YTitleX, c.YTitleY = 14, (c.PlotTop+c.PlotBottom)/2
	c.LegendX = c.PlotRight - 300
	return c
}

// reportCompact formats a count in at most five characters: 950, 31.8k, 1.2M.
func reportCompact(n int64) string {
	switch {
	case n < 1000:
		return strconv.FormatInt(n, 10)
	case n < 999_500:
		return strconv.FormatFloat(math.Round(float64(n)/100)/10, 'f', -1, 64) + "k"
	default:
		return strconv.FormatFloat(math.Round(float64(n)/100_000)/10, 'f', -1, 64) + "M"
	}
}

func reportAt(v []int64, i int) int64 {
	if i < len(v) {
		return v[i]
	}
	return 0
}

func reportBucketLabel(bounds []float64, i int) string {
	switch {
	case i < len(bounds):
		return "≤ " + reportMS(bounds[i])
	case i == len(bounds) && i > 0:
		return "> " + reportMS(bounds[i-1])
	default:
		return "bucket " + strconv.Itoa(i+1)
	}
}

// reportNiceStep rounds x up to 1, 2 or 5 times a power of ten.
func reportNiceStep(x float64) float64 {
	if x <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

func reportRound(x float64) float64 { return math.Round(x*10) / 10 }

func reportMatchRate(c Counts) reportRate {
	rate := c.MatchRate()
	if rate == nil {
		return reportRate{Text: "n/a", Class: "none"}
	}
	r := *rate
	class := "bad"
	switch {
	case r >= reportRateGood:
		class = "good"
	case r >= reportRateWarn:
		class = "warn"
	}
	return reportRate{Text: reportPercent(r), Class: class, Bar: reportRound(r * 100)}
}

func reportShare(n, of int64) reportRate {
	if of <= 0 {
		return reportRate{Text: "—", Class: "none"}
	}
	r := float64(n) / float64(of)
	return reportRate{Text: reportPercent(r), Class: "share", Bar: reportRound(r * 100)}
}

// reportPercent shows a ratio with two decimals, truncated rather than
// rounded so that the number agrees with the colour: 98.996% shows as 98.99%,
// below the 99% threshold, and a partial result never shows as 100% or 0%.
func reportPercent(r float64) string {
	hundredths := math.Floor(r*10000 + 1e-9)
	if r > 0 && hundredths == 0 {
		return "<0.01%"
	}
	return strconv.FormatFloat(hundredths/100, 'f', 2, 64) + "%"
}

func reportNonZero(n int64, class string) string {
	if n > 0 {
		return class
	}
	return "zero"
}

// reportSlower flags a replay latency more than 10% above production.
func reportSlower(prod, repl float64) string {
	if prod > 0 && repl > prod*1.1 {
		return "bad"
	}
	return ""
}

// reportInt formats n with thousands separators.
func reportInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// reportMS formats milliseconds: "0.8 ms", "42 ms", then seconds ("1.25 s").
func reportMS(ms float64) string {
	switch {
	case ms <= 0 || math.IsNaN(ms):
		return "—"
	case ms < 10:
		return strconv.FormatFloat(math.Round(ms*10)/10, 'f', -1, 64) + " ms"
	case ms < 1000:
		return strconv.FormatFloat(math.Round(ms), 'f', -1, 64) + " ms"
	default:
		return strconv.FormatFloat(math.Round(ms/10)/100, 'f', -1, 64) + " s"
	}
}

// reportMSNumber formats milliseconds for a column headed "ms": "9.4",
// "120", "1,250".
func reportMSNumber(ms float64) string {
	switch {
	case ms <= 0 || math.IsNaN(ms):
		return "—"
	case ms < 10:
		return strconv.FormatFloat(math.Round(ms*10)/10, 'f', -1, 64)
	default:
		return reportInt(int64(math.Round(ms)))
	}
}

func reportDuration(seconds float64) string {
	d := time.Duration(seconds * float64(time.Second))
	switch {
	case d <= 0:
		return "—"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

func reportAnchor(i int) string { return "m" + strconv.Itoa(i+1) }

func reportHref(anchor string) string {
	if anchor == "" {
		return ""
	}
	return "#" + anchor
}
