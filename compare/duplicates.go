package compare

// Duplicates: two distinct records (different source coordinates) that
// carry the same correlation ID. Before the join, compare reads the run's
// production rows once more (the correlation ID and the source
// coordinates only) and finds every such ID. The rule: the record at the
// lowest coordinates (topic, then partition, then offset) is the one
// joined, with its replay row (the replay row at the same coordinates);
// every other row of the ID, production or replay, is set aside as
// ClassDuplicate: counted in Counts.Duplicates, listed in
// Summary.Duplicates with its coordinates, in no other count.
//
// Memory: the pass holds one entry per correlation ID while they fit
// Config.MemoryBudget; past it, it reads the IDs again into Config.Partitions
// spill files by hash of the ID and finds the duplicates one partition at
// a time. The duplicates found are held for the join: memory in proportion
// to the duplicated IDs (a few coordinates each, at most
// maxDuplicateCoords), not to the run.

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/replaykit/replay/schemas"
)

// Bounds of what is kept of duplicates.
const (
	// maxDuplicateCoords bounds the set-aside coordinates kept per ID; the
	// count stays exact.
	maxDuplicateCoords = 8
	// duplicateExamples is the number of IDs listed in Summary.Duplicates.
	duplicateExamples = 20
	// idEntryOverhead approximates a correlation ID's entry in the pass's
	// map beyond the ID's bytes.
	idEntryOverhead = 96
)

// coord is a row's source coordinates; ok is false when a column is null.
type coord struct {
	topic     string
	partition int32
	offset    int64
	ok        bool
}

func (c coord) compare(d coord) int {
	return cmp.Or(strings.Compare(c.topic, d.topic), cmp.Compare(c.partition, d.partition), cmp.Compare(c.offset, d.offset))
}

// String is schemas.Coordinates' form: topic/partition@offset.
func (c coord) String() string {
	return schemas.Coordinates{Topic: c.topic, Partition: c.partition, Offset: c.offset}.String()
}

// dupGroup is one correlation ID carried by more than one record.
type dupGroup struct {
	joined  coord   // the lowest coordinates: the record joined
	aside   []coord // others, sorted, at most maxDuplicateCoords
	records int64   // production rows carrying the ID
}

func (g *dupGroup) add(c coord) {
	g.records++
	if c.compare(g.joined) < 0 {
		c, g.joined = g.joined, c
	}
	i, found := slices.BinarySearchFunc(g.aside, c, coord.compare)
	if !found && i < maxDuplicateCoords {
		g.aside = slices.Insert(g.aside, i, c)
		if len(g.aside) > maxDuplicateCoords {
			g.aside = g.aside[:maxDuplicateCoords]
		}
	}
}

// idSet finds the duplicates among IDs fed to it.
type idSet struct {
	first  map[string]coord
	dups   map[string]*dupGroup
	topics map[string]string // interned: a run has few topics
	held   int64
}

func newIDSet() *idSet {
	return &idSet{first: map[string]coord{}, dups: map[string]*dupGroup{}, topics: map[string]string{}}
}

// note adds one production row; cid and c.topic may alias a batch.
func (s *idSet) note(cid string, c coord) {
	if !c.ok {
		return // no coordinates (not written by replay): nothing to tell apart
	}
	first, seen := s.first[cid]
	if !seen {
		t, ok := s.topics[c.topic]
		if !ok {
			t = strings.Clone(c.topic)
			s.topics[t] = t
		}
		c.topic = t
		s.first[strings.Clone(cid)] = c
		s.held += int64(len(cid)) + idEntryOverhead
		return
	}
	if first == c {
		return // the same record twice is not two records
	}
	c.topic = s.topics[c.topic]
	if c.topic == "" {
		c.topic = strings.Clone(first.topic)
	}
	g := s.dups[cid]
	if g == nil {
		g = &dupGroup{joined: first, records: 1}
		s.dups[strings.Clone(cid)] = g
	}
	g.add(c)
}

// findDuplicates returns every correlation ID of the run carried by more
// than one record (see the top of this file).
func (j *job) findDuplicates(ctx context.Context) (map[string]*dupGroup, error) {
	errSpill := errors.New("over the memory budget")
	s := newIDSet()
	err := j.scanIDs(ctx, func(cid string, c coord) error {
		s.note(cid, c)
		if s.held > j.cfg.MemoryBudget {
			return errSpill
		}
		return nil
	})
	if err == nil {
		return s.dups, nil
	}
	if !errors.Is(err, errSpill) {
		return nil, err
	}
	j.logger.Info("correlation ids exceed the memory budget; finding duplicates through spill files", "run_id", j.runID,
		"memory_budget", j.cfg.MemoryBudget, "partitions", j.cfg.Partitions, "dir", j.dir)
	s = nil
	return j.findDuplicatesSpilled(ctx)
}

// findDuplicatesSpilled writes every ID to a partition file by hash, then
// finds the duplicates of each partition in memory.
func (j *job) findDuplicatesSpilled(ctx context.Context) (map[string]*dupGroup, error) {
	files := make([]*os.File, j.cfg.Partitions)
	writers := make([]*bufio.Writer, j.cfg.Partitions)
	defer func() {
		for _, f := range files {
			if f != nil {
				_ = f.Close()
				_ = os.Remove(f.Name())
			}
		}
	}()
	for i := range files {
		f, err := os.Create(filepath.Join(j.dir, fmt.Sprintf("ids-%04d.spill", i)))
		if err != nil {
			return nil, fmt.Errorf("create a spill file: %w; check compare.spill_dir", err)
		}
		files[i], writers[i] = f, bufio.NewWriterSize(f, spillBufferSize)
	}
	var buf []byte
	err := j.scanIDs(ctx, func(cid string, c coord) error {
		if !c.ok {
			return nil
		}
		buf = appendStr(buf[:0], cid)
		buf = appendStr(buf, c.topic)
		buf = binary.AppendUvarint(buf, uint64(c.partition))
		buf = binary.AppendUvarint(buf, uint64(c.offset))
		w := writers[j.partition(cid)]
		if _, err := w.Write(binary.AppendUvarint(nil, uint64(len(buf)))); err != nil {
			return err
		}
		_, err := w.Write(buf)
		return err
	})
	if err != nil {
		return nil, err
	}
	dups := map[string]*dupGroup{}
	for i, w := range writers {
		if err := w.Flush(); err != nil {
			return nil, fmt.Errorf("write spill file %s: %w", files[i].Name(), err)
		}
		if _, err := files[i].Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		s := newIDSet()
		r := bufio.NewReaderSize(files[i], spillBufferSize)
		for {
			n, err := binary.ReadUvarint(r)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil || n > maxSpillRecord {
				return nil, fmt.Errorf("read spill file %s: %w", files[i].Name(), errors.Join(err, errCorrupt))
			}
			payload := make([]byte, n)
			if _, err := io.ReadFull(r, payload); err != nil {
				return nil, fmt.Errorf("read spill file %s: %w", files[i].Name(), err)
			}
			d := decoder{b: payload}
			cid, topic := d.str(), d.str()
			c := coord{topic: topic, partition: int32(d.uvarint()), offset: int64(d.uvarint()), ok: true}
			if d.err != nil {
				return nil, fmt.Errorf("read spill file %s: %w", files[i].Name(), d.err)
			}
			s.note(cid, c)
		}
		for cid, g := range s.dups {
			dups[cid] = g
		}
	}
	return dups, nil
}

// scanIDs calls fn with the correlation ID and coordinates of every
// production row of the run; cid and c.topic alias the batch.
func (j *job) scanIDs(ctx context.Context, fn func(cid string, c coord) error) error {
	batches, err := j.sink.ScanRunBatches(ctx, schemas.TableProduction, j.runID, append([]string{"correlation_id"}, coordColumns...)...)
	if err != nil {
		return err
	}
	for rec, err := range batches {
		if err != nil {
			return err
		}
		err := func() error {
			defer rec.Release()
			if err := context.Cause(ctx); err != nil {
				return err
			}
			br := &batchReader{}
			for name, dst := range map[string]any{"correlation_id": &br.cid, "source_topic": &br.topic,
				"source_partition": &br.partition, "source_offset": &br.offset} {
				idx := rec.Schema().FieldIndices(name)
				ok := len(idx) == 1
				if ok {
					switch d := dst.(type) {
					case **array.String:
						*d, ok = rec.Column(idx[0]).(*array.String)
					case **array.Int32:
						*d, ok = rec.Column(idx[0]).(*array.Int32)
					case **array.Int64:
						*d, ok = rec.Column(idx[0]).(*array.Int64)
					}
				}
				if !ok {
					return fmt.Errorf("read %s: no column %s of the expected type", j.sink.QualifiedName(schemas.TableProduction), name)
				}
			}
			for i := range int(rec.NumRows()) {
				if err := fn(br.cid.Value(i), br.coordAt(i)); err != nil {
					return err
				}
			}
			return nil
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// setAside reports whether the row of cid at c is a duplicate the join
// leaves out: a record at lower coordinates carries its ID.
func (j *job) setAside(cid string, c coord) bool {
	g := j.dups[cid]
	return g != nil && c.ok && c != g.joined
}

// DuplicateSummary counts the correlation IDs carried by more than one
// record of the run and lists the first of them.
type DuplicateSummary struct {
	// IDs is the number of correlation IDs carried by more than one
	// record; Rows the production rows set aside (every such record but
	// the one joined), equal to Overall.Duplicates.
	IDs  int64 `json:"ids"`
	Rows int64 `json:"rows"`
	// Rule says which record of a duplicated ID is joined.
	Rule string `json:"rule"`
	// Examples are the first duplicateExamples IDs, smallest first.
	Examples []DuplicateID `json:"examples"`
}

// DuplicateID is one correlation ID carried by more than one record.
type DuplicateID struct {
	CorrelationID string `json:"correlation_id"`
	Records       int64  `json:"records"` // production rows carrying it
	// Joined is the coordinates (topic/partition@offset) of the record
	// joined; SetAside those of the others (at most maxDuplicateCoords).
	Joined   string   `json:"joined"`
	SetAside []string `json:"set_aside"`
}

// DuplicateRule is DuplicateSummary.Rule.
const DuplicateRule = "the record at the lowest source coordinates (topic, partition, offset) is joined; the others are set aside"

// summarizeDuplicates builds the summary of dups.
func summarizeDuplicates(dups map[string]*dupGroup) DuplicateSummary {
	out := DuplicateSummary{IDs: int64(len(dups)), Rule: DuplicateRule, Examples: []DuplicateID{}}
	ids := make([]string, 0, len(dups))
	for cid, g := range dups {
		out.Rows += g.records - 1
		ids = append(ids, cid)
	}
	slices.Sort(ids)
	for _, cid := range ids[:min(len(ids), duplicateExamples)] {
		g := dups[cid]
		ex := DuplicateID{CorrelationID: cid, Records: g.records, Joined: g.joined.String()}
		for _, c := range g.aside {
			ex.SetAside = append(ex.SetAside, c.String())
		}
		out.Examples = append(out.Examples, ex)
	}
	return out
}

// addDuplicates adds the duplicates tile and section to v when s has
// duplicate IDs.
func addDuplicates(v *reportView, s *Summary) {
	if s.Duplicates.IDs == 0 {
		return
	}
	v.Tiles = append(v.Tiles, reportTile{Label: "Duplicate IDs", Value: reportInt(s.Duplicates.IDs),
		Hint: "lowest coordinates joined; " + reportInt(s.Duplicates.Rows) + " rows set aside", Class: "note"})
	d := s.Duplicates
	v.Duplicates = &d
}
