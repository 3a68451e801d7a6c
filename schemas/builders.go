package schemas

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// ErrInvalidRow is wrapped by the error a builder's Append returns for a row
// it cannot store (a missing run ID, correlation ID or exchange). Nothing of
// such a row is appended.
var ErrInvalidRow = errors.New("invalid row")

// How rows map onto columns, the same in every builder:
//
//   - A nil map (headers, lineage, attributes) is written as null; a non-nil
//     map, even an empty one, as a map with its entries, keys sorted. A nil
//     header value list is written as an empty list.
//   - A nil body (request, response, key, raw) is written as null; a non-nil
//     empty body as an empty binary value.
//   - A nil Response writes null status, headers, body and latency.
//   - error_kind, error_message and amplified_from are null when empty;
//     other strings are written as they are, empty included.
//   - Times are stored in microseconds, UTC (sub-microsecond precision is
//     dropped). A zero replayed_at or received_at is null; captured_at is
//     required, and a dead letter with a zero CapturedAt gets its ReceivedAt so
//     it lands in a real day partition.
//
// Bytes() estimates the Arrow memory a row takes: the variable-length data
// plus a fixed allowance per row for offsets, validity and fixed-width
// columns. It is meant for flush budgets, not accounting.

// rowOverhead is the fixed allowance per row in Bytes().
const rowOverhead = 128

// rowBuilder is the part every table builder shares.
type rowBuilder struct {
	rb    *array.RecordBuilder
	rows  int
	bytes int64

	// all are the column builders and those nested in them, depth first,
	// and held how much each held when the last record was cut: NewRecord
	// reserves that much again.
	all  []array.Builder
	held []held
	// keys is scratch for the sorted keys of one map.
	keys []string
}

// held is what one builder held: values and, for binary and string
// builders, data bytes.
type held struct{ values, data int }

// dataBuilder is a builder of variable-length values.
type dataBuilder interface {
	DataLen() int
	ReserveData(n int)
}

func newRowBuilder(mem memory.Allocator, tableName string) rowBuilder {
	r := rowBuilder{rb: array.NewRecordBuilder(mem, ArrowSchema(tableName))}
	for _, f := range r.rb.Fields() {
		r.all = nested(f, r.all)
	}
	r.held = make([]held, len(r.all))
	return r
}

// nested appends b and the builders nested in it, depth first.
func nested(b array.Builder, out []array.Builder) []array.Builder {
	out = append(out, b)
	switch t := b.(type) {
	case *array.MapBuilder:
		out = nested(t.ValueBuilder(), out) // the key-item struct
	case *array.ListBuilder:
		out = nested(t.ValueBuilder(), out)
	case *array.StructBuilder:
		for i := range t.NumField() {
			out = nested(t.FieldBuilder(i), out)
		}
	}
	return out
}

// column returns the typed builder of the named column. A mismatch is a bug in
// this package, caught by its tests.
func column[T array.Builder](r *rowBuilder, name string) T {
	idx := r.rb.Schema().FieldIndices(name)
	if len(idx) != 1 {
		panic(fmt.Sprintf("schemas: no column %q in %v", name, r.rb.Schema()))
	}

	return r.rb.Field(idx[0]).(T)
}

// Len returns the number of rows appended since the last NewRecord.
func (r *rowBuilder) Len() int { return r.rows }

// Bytes returns the approximate bytes appended since the last NewRecord.
func (r *rowBuilder) Bytes() int64 { return r.bytes }

// Schema returns the Arrow schema of the records built.
func (r *rowBuilder) Schema() *arrow.Schema { return r.rb.Schema() }

// NewRecord returns the rows appended so far as one record and resets the
// builder. The caller releases the record. The builder then reserves as
// much room as the record took, so that the next one, most likely of the
// same size, is filled without growing every buffer step by step (each
// step a copy and, with Go's allocator, a zeroed allocation); the room is
// bounded by the flush size, like the record.
func (r *rowBuilder) NewRecord() arrow.RecordBatch {
	r.rows, r.bytes = 0, 0
	for i, b := range r.all {
		r.held[i] = held{values: b.Len()}
		if d, ok := b.(dataBuilder); ok {
			r.held[i].data = d.DataLen()
		}
	}
	rec := r.rb.NewRecordBatch()
	for i, b := range r.all {
		b.Reserve(r.held[i].values)
		if d, ok := b.(dataBuilder); ok {
			d.ReserveData(r.held[i].data)
		}
	}

	return rec
}

// Release frees the builder's memory, including rows not yet turned into a
// record. The builder cannot be used afterwards.
func (r *rowBuilder) Release() {
	if r.rb != nil {
		r.rb.Release()
		r.rb = nil
	}
}

// Check reports, wrapping ErrInvalidRow, why the row cannot be stored: no
// exchange, run ID or correlation ID. Append checks it; a caller adding
// several rows at once checks them all first.
func (r *ProductionRow) Check() error {
	if r == nil || r.Exchange == nil {
		return fmt.Errorf("%w for %s: no exchange", ErrInvalidRow, TableProduction)
	}

	return checkIDs(TableProduction, r.RunID, r.Exchange.CorrelationID)
}

// Check reports, wrapping ErrInvalidRow, why the row cannot be stored: no
// run ID or correlation ID.
func (r *ReplayRow) Check() error {
	if r == nil {
		return fmt.Errorf("%w for %s: nil row", ErrInvalidRow, TableReplay)
	}

	return checkIDs(TableReplay, r.RunID, r.CorrelationID)
}

// Check reports, wrapping ErrInvalidRow, why the row cannot be stored: no
// run ID or correlation ID.
func (r *DeadLetterRow) Check() error {
	if r == nil {
		return fmt.Errorf("%w for %s: nil row", ErrInvalidRow, TableDeadLetters)
	}

	return checkIDs(TableDeadLetters, r.RunID, r.CorrelationID)
}

func checkIDs(table, runID, correlationID string) error {
	if runID == "" {
		return fmt.Errorf("%w for %s: run_id is empty", ErrInvalidRow, table)
	}
	if correlationID == "" {
		return fmt.Errorf("%w for %s: correlation_id is empty", ErrInvalidRow, table)
	}

	return nil
}

// coordinates are the three source columns every table has.
type coordinates struct {
	topic     *array.StringBuilder
	partition *array.Int32Builder
	offset    *array.Int64Builder
}

func newCoordinates(r *rowBuilder) coordinates {
	return coordinates{
		topic:     column[*array.StringBuilder](r, "source_topic"),
		partition: column[*array.Int32Builder](r, "source_partition"),
		offset:    column[*array.Int64Builder](r, "source_offset"),
	}
}

func (c coordinates) append(src Coordinates) int64 {
	c.topic.Append(src.Topic)
	c.partition.Append(src.Partition)
	c.offset.Append(src.Offset)

	return int64(len(src.Topic))
}

// response are the four response columns of production and replay rows.
type response struct {
	status  *array.Int32Builder
	headers *array.MapBuilder
	body    *array.BinaryBuilder
	latency *array.Float64Builder
}

func newResponse(r *rowBuilder) response {
	return response{
		status:  column[*array.Int32Builder](r, "response_status"),
		headers: column[*array.MapBuilder](r, "response_headers"),
		body:    column[*array.BinaryBuilder](r, "response_body"),
		latency: column[*array.Float64Builder](r, "response_latency_ms"),
	}
}

func (c response) append(resp *Response, scratch *[]string) int64 {
	if resp == nil {
		c.status.AppendNull()
		c.headers.AppendNull()
		c.body.AppendNull()
		c.latency.AppendNull()

		return 0
	}
	c.status.Append(int32(resp.Status))
	c.latency.Append(resp.LatencyMS)

	return appendHeaders(c.headers, resp.Headers, scratch) + AppendBinary(c.body, resp.Body)
}

func timestamp(t time.Time) arrow.Timestamp { return arrow.Timestamp(t.UnixMicro()) }

func appendTime(b *array.TimestampBuilder, t time.Time) { b.Append(timestamp(t)) }

// appendOptTime writes the zero time as null.
func appendOptTime(b *array.TimestampBuilder, t time.Time) {
	if t.IsZero() {
		b.AppendNull()

		return
	}
	b.Append(timestamp(t))
}

func appendString(b *array.StringBuilder, s string) int64 {
	b.Append(s)

	return int64(len(s))
}

// AppendOptString appends s, or null for "", and returns the bytes added.
// The Append* helpers are shared by every row builder of replay's tables,
// the comparison tables included.
func AppendOptString(b *array.StringBuilder, s string) int64 {
	if s == "" {
		b.AppendNull()

		return 0
	}
	b.Append(s)

	return int64(len(s))
}

// AppendBinary appends v, or null for nil, and returns the bytes added.
func AppendBinary(b *array.BinaryBuilder, v []byte) int64 {
	if v == nil {
		b.AppendNull()

		return 0
	}
	b.Append(v)

	return int64(len(v))
}

// appendHeaders appends h with sorted keys (sorted in scratch), or null
// for nil, and returns the approximate bytes added.
func appendHeaders(b *array.MapBuilder, h map[string][]string, scratch *[]string) int64 {
	if h == nil {
		b.AppendNull()

		return 0
	}
	b.Append(true)
	keys := b.KeyBuilder().(*array.StringBuilder)
	lists := b.ItemBuilder().(*array.ListBuilder)
	values := lists.ValueBuilder().(*array.StringBuilder)
	var n int64
	*scratch = sortKeys(*scratch, h)
	for _, k := range *scratch {
		keys.Append(k)
		lists.Append(true)
		n += int64(len(k)) + 8
		for _, v := range h[k] {
			values.Append(v)
			n += int64(len(v)) + 4
		}
	}

	return n
}

// AppendStringMap appends m with sorted keys, or null for nil, and returns
// the approximate bytes added.
func AppendStringMap(b *array.MapBuilder, m map[string]string) int64 {
	var scratch []string

	return appendStringMap(b, m, &scratch)
}

// appendStringMap is AppendStringMap with the keys sorted in scratch.
func appendStringMap(b *array.MapBuilder, m map[string]string, scratch *[]string) int64 {
	if m == nil {
		b.AppendNull()

		return 0
	}
	b.Append(true)
	keys := b.KeyBuilder().(*array.StringBuilder)
	values := b.ItemBuilder().(*array.StringBuilder)
	var n int64
	*scratch = sortKeys(*scratch, m)
	for _, k := range *scratch {
		keys.Append(k)
		values.Append(m[k])
		n += int64(len(k)+len(m[k])) + 8
	}

	return n
}

// sortKeys returns m's keys, sorted, in dst's memory.
func sortKeys[V any](dst []string, m map[string]V) []string {
	dst = dst[:0]
	for k := range m {
		dst = append(dst, k)
	}
	slices.Sort(dst)

	return dst
}

// ProductionBuilder builds production_responses records.
type ProductionBuilder struct {
	rowBuilder
	runID, correlationID *array.StringBuilder
	capturedAt           *array.TimestampBuilder
	source               coordinates
	method, scheme, host *array.StringBuilder
	path, query          *array.StringBuilder
	reqHeaders           *array.MapBuilder
	reqBody              *array.BinaryBuilder
	resp                 response
	lineage, attributes  *array.MapBuilder
}

// NewProductionBuilder returns a builder of production_responses records
// allocating from mem. The caller releases it.
func NewProductionBuilder(mem memory.Allocator) *ProductionBuilder {
	b := &ProductionBuilder{rowBuilder: newRowBuilder(mem, TableProduction)}
	r := &b.rowBuilder
	b.runID = column[*array.StringBuilder](r, "run_id")
	b.correlationID = column[*array.StringBuilder](r, "correlation_id")
	b.capturedAt = column[*array.TimestampBuilder](r, "captured_at")
	b.source = newCoordinates(r)
	b.method = column[*array.StringBuilder](r, "request_method")
	b.scheme = column[*array.StringBuilder](r, "request_scheme")
	b.host = column[*array.StringBuilder](r, "request_host")
	b.path = column[*array.StringBuilder](r, "request_path")
	b.query = column[*array.StringBuilder](r, "request_query")
	b.reqHeaders = column[*array.MapBuilder](r, "request_headers")
	b.reqBody = column[*array.BinaryBuilder](r, "request_body")
	b.resp = newResponse(r)
	b.lineage = column[*array.MapBuilder](r, "lineage")
	b.attributes = column[*array.MapBuilder](r, "attributes")

	return b
}

// Append adds one row. It appends nothing and returns the error of
// row.Check when the row cannot be stored.
func (b *ProductionBuilder) Append(row *ProductionRow) error {
	if err := row.Check(); err != nil {
		return err
	}
	x := row.Exchange
	n := int64(rowOverhead)
	n += appendString(b.runID, row.RunID)
	n += appendString(b.correlationID, x.CorrelationID)
	appendTime(b.capturedAt, x.CapturedAt)
	n += b.source.append(x.Source)
	n += appendString(b.method, x.Request.Method)
	n += appendString(b.scheme, x.Request.Scheme)
	n += appendString(b.host, x.Request.Host)
	n += appendString(b.path, x.Request.Path)
	n += appendString(b.query, x.Request.Query)
	n += appendHeaders(b.reqHeaders, x.Request.Headers, &b.keys)
	n += AppendBinary(b.reqBody, x.Request.Body)
	n += b.resp.append(x.Response, &b.keys)
	n += appendStringMap(b.lineage, x.Lineage, &b.keys)
	n += appendStringMap(b.attributes, x.Attributes, &b.keys)
	b.rows++
	b.bytes += n

	return nil
}

// ReplayBuilder builds replay_responses or baseline_responses records.
type ReplayBuilder struct {
	rowBuilder
	runID, correlationID    *array.StringBuilder
	capturedAt, replayedAt  *array.TimestampBuilder
	target                  *array.StringBuilder
	source                  coordinates
	method, path, query     *array.StringBuilder
	reqHeaders              *array.MapBuilder
	reqBody                 *array.BinaryBuilder
	resp                    response
	errorKind, errorMessage *array.StringBuilder
	attempts                *array.Int32Builder
	lineage                 *array.MapBuilder
	amplifiedFrom           *array.StringBuilder
}

// NewReplayBuilder returns a builder of replay_responses records allocating
// from mem. The caller releases it.
func NewReplayBuilder(mem memory.Allocator) *ReplayBuilder {
	return newReplayBuilder(mem, TableReplay)
}

// NewBaselineBuilder returns a builder of baseline_responses records (the
// replay_responses schema) allocating from mem. The caller releases it.
func NewBaselineBuilder(mem memory.Allocator) *ReplayBuilder {
	return newReplayBuilder(mem, TableBaseline)
}

func newReplayBuilder(mem memory.Allocator, tableName string) *ReplayBuilder {
	b := &ReplayBuilder{rowBuilder: newRowBuilder(mem, tableName)}
	r := &b.rowBuilder
	b.runID = column[*array.StringBuilder](r, "run_id")
	b.correlationID = column[*array.StringBuilder](r, "correlation_id")
	b.capturedAt = column[*array.TimestampBuilder](r, "captured_at")
	b.replayedAt = column[*array.TimestampBuilder](r, "replayed_at")
	b.target = column[*array.StringBuilder](r, "target")
	b.source = newCoordinates(r)
	b.method = column[*array.StringBuilder](r, "request_method")
	b.path = column[*array.StringBuilder](r, "request_path")
	b.query = column[*array.StringBuilder](r, "request_query")
	b.reqHeaders = column[*array.MapBuilder](r, "request_headers")
	b.reqBody = column[*array.BinaryBuilder](r, "request_body")
	b.resp = newResponse(r)
	b.errorKind = column[*array.StringBuilder](r, "error_kind")
	b.errorMessage = column[*array.StringBuilder](r, "error_message")
	b.attempts = column[*array.Int32Builder](r, "attempts")
	b.lineage = column[*array.MapBuilder](r, "lineage")
	b.amplifiedFrom = column[*array.StringBuilder](r, "amplified_from")

	return b
}

// Append adds one row. It appends nothing and returns the error of
// row.Check when the row cannot be stored.
func (b *ReplayBuilder) Append(row *ReplayRow) error {
	if err := row.Check(); err != nil {
		return err
	}
	n := int64(rowOverhead)
	n += appendString(b.runID, row.RunID)
	n += appendString(b.correlationID, row.CorrelationID)
	appendTime(b.capturedAt, row.CapturedAt)
	appendOptTime(b.replayedAt, row.ReplayedAt)
	n += appendString(b.target, row.Target)
	n += b.source.append(row.Source)
	n += appendString(b.method, row.Request.Method)
	n += appendString(b.path, row.Request.Path)
	n += appendString(b.query, row.Request.Query)
	n += appendHeaders(b.reqHeaders, row.Request.Headers, &b.keys)
	n += AppendBinary(b.reqBody, row.Request.Body)
	n += b.resp.append(row.Response, &b.keys)
	n += AppendOptString(b.errorKind, row.ErrorKind)
	n += AppendOptString(b.errorMessage, row.ErrorMessage)
	b.attempts.Append(int32(row.Attempts))
	n += appendStringMap(b.lineage, row.Lineage, &b.keys)
	n += AppendOptString(b.amplifiedFrom, row.AmplifiedFrom)
	b.rows++
	b.bytes += n

	return nil
}

// DeadLetterBuilder builds dead_letters records.
type DeadLetterBuilder struct {
	rowBuilder
	runID, correlationID   *array.StringBuilder
	capturedAt, receivedAt *array.TimestampBuilder
	source                 coordinates
	key, raw               *array.BinaryBuilder
	reason, err            *array.StringBuilder
}

// NewDeadLetterBuilder returns a builder of dead_letters records allocating
// from mem. The caller releases it.
func NewDeadLetterBuilder(mem memory.Allocator) *DeadLetterBuilder {
	b := &DeadLetterBuilder{rowBuilder: newRowBuilder(mem, TableDeadLetters)}
	r := &b.rowBuilder
	b.runID = column[*array.StringBuilder](r, "run_id")
	b.correlationID = column[*array.StringBuilder](r, "correlation_id")
	b.capturedAt = column[*array.TimestampBuilder](r, "captured_at")
	b.receivedAt = column[*array.TimestampBuilder](r, "received_at")
	b.source = newCoordinates(r)
	b.key = column[*array.BinaryBuilder](r, "key")
	b.raw = column[*array.BinaryBuilder](r, "raw")
	b.reason = column[*array.StringBuilder](r, "reason")
	b.err = column[*array.StringBuilder](r, "error")

	return b
}

// Append adds one row. It appends nothing and returns the error of
// row.Check when the row cannot be stored.
func (b *DeadLetterBuilder) Append(row *DeadLetterRow) error {
	if err := row.Check(); err != nil {
		return err
	}
	captured := row.CapturedAt
	if captured.IsZero() {
		captured = row.ReceivedAt
	}
	n := int64(rowOverhead)
	n += appendString(b.runID, row.RunID)
	n += appendString(b.correlationID, row.CorrelationID)
	appendTime(b.capturedAt, captured)
	appendOptTime(b.receivedAt, row.ReceivedAt)
	n += b.source.append(row.Source)
	n += AppendBinary(b.key, row.Key)
	n += AppendBinary(b.raw, row.Raw)
	n += appendString(b.reason, row.Reason)
	n += appendString(b.err, row.Error)
	b.rows++
	b.bytes += n

	return nil
}
