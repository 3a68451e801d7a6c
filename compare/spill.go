package compare

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
)

// Spill files of the grace hash join hold sideRows in a compact,
// length-prefixed binary encoding:
//
//	record  = uvarint(len(payload)) payload
//	payload = str(cid) str(method) str(path) str(errKind) uvarint(status)
//	          latency bytes(body) headers lineage
//	str     = uvarint(len) bytes
//	latency = 0x00 | 0x01 float64 bits, little endian
//	bytes   = uvarint(0) for nil | uvarint(len+1) bytes
//	headers = uvarint(0) for nil | uvarint(n+1) n × (str(key) uvarint(m) m × str(value))
//	lineage = uvarint(0) for nil | uvarint(n+1) n × (str(key) str(value))
//
// Why not Arrow IPC or gob: the join works on sideRows, not on Arrow
// columns, and a partition file is written one row at a time as rows hash to
// it. Arrow IPC would need a builder per partition (64 partitions × 2 sides
// of column buffers held in memory, the very thing spilling avoids) and a
// batch boundary to flush on; gob writes type information per stream and
// decodes by reflection, several times slower. This format is written and
// read with one reusable buffer, costs a few bytes per field over the data
// itself, and a file is only ever read back by the process that wrote it, so
// it needs no versioning.

// spillBufferSize is the write buffer of each partition file.
const spillBufferSize = 32 << 10

// maxSpillRecord guards against reading a corrupt length prefix.
const maxSpillRecord = 1 << 31

// appendRow appends the encoded payload of r to buf.
func appendRow(buf []byte, r *sideRow) []byte {
	buf = appendStr(buf, r.cid)
	buf = appendStr(buf, r.method)
	buf = appendStr(buf, r.path)
	buf = appendStr(buf, r.errKind)
	buf = binary.AppendUvarint(buf, uint64(r.status))
	if r.hasLatency {
		buf = append(buf, 1)
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(r.latency))
	} else {
		buf = append(buf, 0)
	}
	if r.body == nil {
		buf = binary.AppendUvarint(buf, 0)
	} else {
		buf = binary.AppendUvarint(buf, uint64(len(r.body))+1)
		buf = append(buf, r.body...)
	}
	if r.headers == nil {
		buf = binary.AppendUvarint(buf, 0)
	} else {
		buf = binary.AppendUvarint(buf, uint64(len(r.headers))+1)
		for k, vs := range r.headers {
			buf = appendStr(buf, k)
			buf = binary.AppendUvarint(buf, uint64(len(vs)))
			for _, v := range vs {
				buf = appendStr(buf, v)
			}
		}
	}
	if r.lineage == nil {
		buf = binary.AppendUvarint(buf, 0)
	} else {
		buf = binary.AppendUvarint(buf, uint64(len(r.lineage))+1)
		for k, v := range r.lineage {
			buf = appendStr(buf, k)
			buf = appendStr(buf, v)
		}
	}

	return buf
}

func appendStr(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))

	return append(buf, s...)
}

// errCorrupt is returned for a spill record that does not decode.
var errCorrupt = errors.New("corrupt spill record")

// decoder reads one payload.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt

		return 0
	}
	d.b = d.b[n:]

	return v
}

func (d *decoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errCorrupt

		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]

	return out
}

func (d *decoder) str() string { return string(d.bytes(d.uvarint())) }

// count reads an element count, bounded by the bytes left (every element
// takes at least one byte), so a corrupt count cannot allocate much.
func (d *decoder) count(v uint64) int {
	if v > uint64(len(d.b)) {
		d.err = errCorrupt

		return 0
	}

	return int(v)
}

// decodeRow decodes a payload written by appendRow. The row copies what it
// keeps: payload may be reused.
func decodeRow(payload []byte) (*sideRow, error) {
	d := decoder{b: payload}
	r := &sideRow{cid: d.str(), method: d.str(), path: d.str(), errKind: d.str()}
	r.status = int(d.uvarint())
	if flag := d.bytes(1); len(flag) == 1 && flag[0] == 1 {
		if lat := d.bytes(8); len(lat) == 8 {
			r.hasLatency = true
			r.latency = math.Float64frombits(binary.LittleEndian.Uint64(lat))
		}
	}
	if n := d.uvarint(); n > 0 {
		r.body = append([]byte{}, d.bytes(n-1)...)
	}
	if n := d.uvarint(); n > 0 {
		cnt := d.count(n - 1)
		r.headers = make(map[string][]string, cnt)
		for range cnt {
			k := d.str()
			m := d.count(d.uvarint())
			vs := make([]string, 0, m)
			for range m {
				vs = append(vs, d.str())
			}
			r.headers[k] = vs
		}
	}
	if n := d.uvarint(); n > 0 {
		cnt := d.count(n - 1)
		r.lineage = make(map[string]string, cnt)
		for range cnt {
			k := d.str()
			r.lineage[k] = d.str()
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errCorrupt
	}
	if d.err != nil {
		return nil, d.err
	}

	return r, nil
}

// spillWriter writes rows to one partition file.
type spillWriter struct {
	f    *os.File
	w    *bufio.Writer
	buf  []byte
	rows int64
}

func createSpill(path string) (*spillWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create spill file: %w", err)
	}

	return &spillWriter{f: f, w: bufio.NewWriterSize(f, spillBufferSize)}, nil
}

func (s *spillWriter) write(r *sideRow) error {
	s.buf = appendRow(s.buf[:0], r)
	var prefix [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(prefix[:], uint64(len(s.buf)))
	if _, err := s.w.Write(prefix[:n]); err != nil {
		return fmt.Errorf("write spill file %s: %w", s.f.Name(), err)
	}
	if _, err := s.w.Write(s.buf); err != nil {
		return fmt.Errorf("write spill file %s: %w", s.f.Name(), err)
	}
	s.rows++

	return nil
}

// close flushes and closes the file.
func (s *spillWriter) close() error {
	err := s.w.Flush()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close spill file %s: %w", s.f.Name(), err)
	}

	return nil
}

// readSpill calls fn for every row of the file at path, in the order they
// were written.
func readSpill(path string, fn func(*sideRow) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open spill file: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, spillBufferSize)
	var buf []byte
	for {
		n, err := binary.ReadUvarint(br)
		if err == io.EOF {
			return nil
		}
		if err != nil || n > maxSpillRecord {
			return fmt.Errorf("read spill file %s: %w", path, errors.Join(errCorrupt, err))
		}
		if uint64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			return fmt.Errorf("read spill file %s: %w", path, errors.Join(errCorrupt, err))
		}
		r, err := decodeRow(buf)
		if err != nil {
			return fmt.Errorf("read spill file %s: %w", path, err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
}

// partitionFiles are the spill files of one side, one per partition.
type partitionFiles struct {
	writers []*spillWriter
	paths   []string
}

func createPartitions(dir, side string, n int) (*partitionFiles, error) {
	p := &partitionFiles{}
	for i := range n {
		path := filepath.Join(dir, fmt.Sprintf("%s-%04d.spill", side, i))
		w, err := createSpill(path)
		if err != nil {
			return nil, errors.Join(err, p.close())
		}
		p.writers = append(p.writers, w)
		p.paths = append(p.paths, path)
	}

	return p, nil
}

// close closes every file still open.
func (p *partitionFiles) close() error {
	var errs []error
	for i, w := range p.writers {
		if w != nil {
			errs = append(errs, w.close())
			p.writers[i] = nil
		}
	}

	return errors.Join(errs...)
}
