package compare

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/replaykit/replay/normalize"
)

// sideRow is what compare keeps of one production or replay row: the
// request line (for the endpoint), the response and the lineage. It owns its
// memory (nothing aliases an Arrow buffer), so it outlives the batch it was
// read from.
type sideRow struct {
	cid        string
	method     string
	path       string
	status     int // 0: no response
	latency    float64
	hasLatency bool
	headers    map[string][]string
	body       []byte
	lineage    map[string]string
	errKind    string // replay rows: why the replay failed
	amplified  bool   // replay rows: an amplified copy (amplified_from set)

	// next chains rows of the build side with the same correlation ID, in
	// scan order. replay rows are unique by correlation ID when the sink
	// works as promised; the chain keeps the join exact when they are not.
	next *sideRow
}

// rowOverhead approximates what a sideRow costs in memory beyond its
// variable-length fields: the struct, its hash table entry and map headers.
const rowOverhead = 192

// size estimates the memory r holds, for the join's memory budget.
func (r *sideRow) size() int64 {
	n := int64(rowOverhead + len(r.cid) + len(r.method) + len(r.path) + len(r.body) + len(r.errKind))
	for k, vs := range r.headers {
		n += int64(len(k)) + 64
		for _, v := range vs {
			n += int64(len(v)) + 16
		}
	}
	for k, v := range r.lineage {
		n += int64(len(k)+len(v)) + 48
	}

	return n
}

// side is r as normalize sees it; a nil row is no response.
func (r *sideRow) side() normalize.Side {
	if r == nil {
		return normalize.Side{}
	}

	return normalize.Side{Status: r.status, Headers: r.headers, Body: r.body}
}

// passing reports whether a status counts as passing: 2xx and 3xx.
func passing(status int) bool { return status >= 200 && status < 400 }

// Columns compare reads from each side.
var (
	productionColumns = []string{"correlation_id", "request_method", "request_path", "response_status",
		"response_headers", "response_body", "response_latency_ms", "lineage"}
	replayColumns = append(append([]string(nil), productionColumns...), "error_kind", "amplified_from")
	// coordColumns are read too, from both sides, to tell duplicates
	// apart (duplicates.go).
	coordColumns = []string{"source_topic", "source_partition", "source_offset"}
)

// batchReader reads sideRows out of record batches of one side.
type batchReader struct {
	cid, method, path *array.String
	status            *array.Int32
	headers           *array.Map
	body              *array.Binary
	latency           *array.Float64
	lineage           *array.Map
	errKind           *array.String // nil for production
	amplifiedFrom     *array.String // nil for production
	topic             *array.String
	partition         *array.Int32
	offset            *array.Int64
}

// newBatchReader binds the columns of rec, with the replay side's own
// columns (error_kind, amplified_from) when replaySide. It fails when a
// column is missing or of an unexpected type (a table of another replay
// version).
func newBatchReader(rec arrow.RecordBatch, replaySide bool) (*batchReader, error) {
	var (
		br   batchReader
		errs []string
	)
	bind := func(name string, dst any) {
		idx := rec.Schema().FieldIndices(name)
		if len(idx) != 1 {
			errs = append(errs, fmt.Sprintf("no column %s", name))

			return
		}
		col := rec.Column(idx[0])
		ok := false
		switch d := dst.(type) {
		case **array.String:
			*d, ok = col.(*array.String)
		case **array.Int32:
			*d, ok = col.(*array.Int32)
		case **array.Map:
			*d, ok = col.(*array.Map)
		case **array.Binary:
			*d, ok = col.(*array.Binary)
		case **array.Float64:
			*d, ok = col.(*array.Float64)
		case **array.Int64:
			*d, ok = col.(*array.Int64)
		}
		if !ok {
			errs = append(errs, fmt.Sprintf("column %s is %s", name, col.DataType()))
		}
	}
	bind("correlation_id", &br.cid)
	bind("request_method", &br.method)
	bind("request_path", &br.path)
	bind("response_status", &br.status)
	bind("response_headers", &br.headers)
	bind("response_body", &br.body)
	bind("response_latency_ms", &br.latency)
	bind("lineage", &br.lineage)
	bind("source_topic", &br.topic)
	bind("source_partition", &br.partition)
	bind("source_offset", &br.offset)
	if replaySide {
		bind("error_kind", &br.errKind)
		bind("amplified_from", &br.amplifiedFrom)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("unexpected columns: %s", strings.Join(errs, "; "))
	}
	if br.headers != nil {
		if err := checkHeadersType(br.headers); err != nil {
			return nil, err
		}
	}
	if br.lineage != nil {
		if _, ok := br.lineage.Keys().(*array.String); !ok {
			return nil, fmt.Errorf("column lineage has keys of type %s", br.lineage.Keys().DataType())
		}
		if _, ok := br.lineage.Items().(*array.String); !ok {
			return nil, fmt.Errorf("column lineage has values of type %s", br.lineage.Items().DataType())
		}
	}

	return &br, nil
}

func checkHeadersType(m *array.Map) error {
	if _, ok := m.Keys().(*array.String); !ok {
		return fmt.Errorf("column response_headers has keys of type %s", m.Keys().DataType())
	}
	lists, ok := m.Items().(*array.List)
	if !ok {
		return fmt.Errorf("column response_headers has values of type %s", m.Items().DataType())
	}
	if _, ok := lists.ListValues().(*array.String); !ok {
		return fmt.Errorf("column response_headers has list elements of type %s", lists.ListValues().DataType())
	}

	return nil
}

// row reads row i into a new sideRow, copying every value.
func (br *batchReader) row(i int) *sideRow {
	r := br.light(i)
	if br.body.IsValid(i) {
		r.body = bytes.Clone(br.body.Value(i))
		if r.body == nil {
			r.body = []byte{}
		}
	}
	r.headers = readHeaders(br.headers, i)
	r.lineage = readStringMap(br.lineage, i)

	return r
}

// baseline reads what compare keeps of a baseline run's replay row: the
// correlation ID and the response (status, headers, body); the request line,
// latency, lineage and error kind are the compared run's business.
func (br *batchReader) baseline(i int) *sideRow {
	r := &sideRow{cid: strings.Clone(br.cid.Value(i)), headers: readHeaders(br.headers, i)}
	if br.status.IsValid(i) {
		r.status = int(br.status.Value(i))
	}
	if br.body.IsValid(i) {
		r.body = bytes.Clone(br.body.Value(i))
		if r.body == nil {
			r.body = []byte{}
		}
	}

	return r
}

// light reads what a row without a partner needs: the request line (for
// its endpoint), status, latency and error kind; no headers, body or
// lineage.
func (br *batchReader) light(i int) *sideRow {
	r := &sideRow{
		cid:    strings.Clone(br.cid.Value(i)),
		method: optString(br.method, i),
		path:   optString(br.path, i),
	}
	if br.status.IsValid(i) {
		r.status = int(br.status.Value(i))
	}
	if br.latency.IsValid(i) {
		r.latency, r.hasLatency = br.latency.Value(i), true
	}
	if br.errKind != nil {
		r.errKind = optString(br.errKind, i)
	}
	r.amplified = br.isAmplified(i)

	return r
}

// coordAt reads row i's source coordinates; ok is false when any is null.
// Its topic aliases the batch: clone it to keep it.
func (br *batchReader) coordAt(i int) coord {
	if br.topic.IsNull(i) || br.partition.IsNull(i) || br.offset.IsNull(i) {
		return coord{}
	}
	return coord{topic: br.topic.Value(i), partition: br.partition.Value(i), offset: br.offset.Value(i), ok: true}
}

// isAmplified reports whether row i is a replay row of an amplified copy.
func (br *batchReader) isAmplified(i int) bool {
	return br.amplifiedFrom != nil && br.amplifiedFrom.IsValid(i)
}

func optString(a *array.String, i int) string {
	if a.IsNull(i) {
		return ""
	}

	return strings.Clone(a.Value(i))
}

func readHeaders(m *array.Map, i int) map[string][]string {
	if m.IsNull(i) {
		return nil
	}
	keys := m.Keys().(*array.String)
	lists := m.Items().(*array.List)
	values := lists.ListValues().(*array.String)
	start, end := m.ValueOffsets(i)
	out := make(map[string][]string, end-start)
	for j := int(start); j < int(end); j++ {
		var vs []string
		if lists.IsValid(j) {
			vstart, vend := lists.ValueOffsets(j)
			vs = make([]string, 0, vend-vstart)
			for k := int(vstart); k < int(vend); k++ {
				vs = append(vs, strings.Clone(values.Value(k)))
			}
		}
		out[strings.Clone(keys.Value(j))] = vs
	}

	return out
}

func readStringMap(m *array.Map, i int) map[string]string {
	if m.IsNull(i) {
		return nil
	}
	keys := m.Keys().(*array.String)
	values := m.Items().(*array.String)
	start, end := m.ValueOffsets(i)
	out := make(map[string]string, end-start)
	for j := int(start); j < int(end); j++ {
		out[strings.Clone(keys.Value(j))] = strings.Clone(values.Value(j))
	}

	return out
}
