package sources

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"sync"

	"github.com/replaykit/replay/schemas"
)

// FormatNDJSON is the newline-delimited format: one record per line.
const FormatNDJSON = "ndjson"

const (
	// fileBatchLines and fileBatchBytes bound one Poll of a File: it returns
	// at most this many lines, and stops adding lines once it holds this
	// many bytes (a single longer line is still returned whole).
	fileBatchLines = 1000
	fileBatchBytes = 4 << 20
)

// FileConfig configures the file source, for local runs and tests.
type FileConfig struct {
	// Path of the capture file.
	Path string `yaml:"path"`
	// Format of the file: ndjson (one record per line), the default.
	Format string `yaml:"format"`
	// Fresh replays the whole file again for a run the tables already
	// hold rows of, replacing those rows (the --fresh flag of replay run).
	// Without it a re-run resumes where the tables end, like a Kafka
	// consumer group: lines already written are neither replayed nor
	// written again. The source only carries it; the service acts on it.
	Fresh bool `yaml:"fresh"`
}

// DefaultFileConfig returns a FileConfig with the default format and no path.
func DefaultFileConfig() FileConfig { return FileConfig{Format: FormatNDJSON} }

// Validate returns every problem in c, each starting with the field path
// relative to FileConfig.
func (c *FileConfig) Validate() []error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, errors.New("path: required; name the capture file to read"))
	}
	if c.Format != "" && c.Format != FormatNDJSON {
		errs = append(errs, fmt.Errorf("format: unknown %q; use %s", c.Format, FormatNDJSON))
	}
	return errs
}

// FileTopic is the topic of the records of the capture file at path: the
// file is one partition, 0, of it.
func FileTopic(path string) string { return "file:" + path }

// FileOption adjusts NewFile.
type FileOption func(*File)

// FileStartAt makes the source skip every line below offset (a 0-based line
// number, as in the records' offsets): where the sink's tables end for the
// file. Records skipped are counted by AlreadyWritten.
func FileStartAt(offset int64) FileOption {
	return func(f *File) { f.start = offset }
}

// File reads a newline-delimited capture file. Each non-blank line is one
// record: Topic "file:" + path, Partition 0, Offset the 0-based line number
// (blank lines are skipped but counted, so offsets match line numbers), Value
// the line without its line ending, no key and no timestamp. Lines may be of
// any length.
//
// Poll must be called from one goroutine; Commit may be called from another.
type File struct {
	path  string
	topic string
	f     *os.File
	r     *bufio.Reader
	line  int64 // number of the next line to read
	eof   bool
	start int64 // lines below it are skipped (FileStartAt)
	// skipped counts the records below start; Poll writes it, and
	// AlreadyWritten reads it under mu.
	skipped int64

	mu        sync.Mutex
	committed schemas.Offsets
}

// NewFile opens cfg.Path for reading.
func NewFile(cfg FileConfig, opts ...FileOption) (*File, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("invalid file source config: %w", errors.Join(errs...))
	}
	f, err := os.Open(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("open capture file %q: %w; check source.file.path", cfg.Path, unwrapPath(err))
	}
	src := &File{
		path:      cfg.Path,
		topic:     FileTopic(cfg.Path),
		f:         f,
		r:         bufio.NewReaderSize(f, 64<<10),
		committed: make(schemas.Offsets),
	}
	for _, opt := range opts {
		opt(src)
	}
	return src, nil
}

// Poll returns the next lines as records, up to 1000 lines or about 4 MiB per
// call. It returns io.EOF once the file is exhausted and ctx.Err() when ctx
// has ended.
func (f *File) Poll(ctx context.Context) ([]schemas.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var (
		recs []schemas.Record
		size int
	)
	for !f.eof && len(recs) < fileBatchLines && size < fileBatchBytes {
		line, err := f.r.ReadBytes('\n')
		switch {
		case errors.Is(err, io.EOF):
			f.eof = true
			if len(line) == 0 {
				continue
			}
		case err != nil:
			return recs, fmt.Errorf("read capture file %q at line %d: %w", f.path, f.line+1, err)
		}
		n := f.line
		f.line++
		line = trimLineEnd(line)
		if isBlank(line) {
			continue
		}
		if n < f.start {
			f.mu.Lock()
			f.skipped++
			f.mu.Unlock()
			continue
		}
		size += len(line)
		recs = append(recs, schemas.Record{
			Coordinates: schemas.Coordinates{Topic: f.topic, Partition: 0, Offset: n},
			Value:       line,
		})
	}
	if len(recs) == 0 && f.eof {
		return nil, io.EOF
	}
	return recs, nil
}

// Commit records offsets as committed. A file has nothing to persist, so this
// only checks that the offsets belong to this file.
func (f *File) Commit(_ context.Context, offsets schemas.Offsets) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for tp, next := range offsets {
		if tp.Topic != f.topic || tp.Partition != 0 {
			return fmt.Errorf("commit offsets of capture file %q: partition %s/%d is not from this file", f.path, tp.Topic, tp.Partition)
		}
		f.committed[tp] = next
	}
	return nil
}

// AlreadyWritten returns how many records Poll skipped because they are
// below the FileStartAt offset.
func (f *File) AlreadyWritten() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.skipped
}

// Committed returns a copy of the offsets passed to Commit so far.
func (f *File) Committed() schemas.Offsets {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.committed)
}

// Close closes the file.
func (f *File) Close() error {
	if err := f.f.Close(); err != nil {
		return fmt.Errorf("close capture file %q: %w", f.path, err)
	}
	return nil
}

// trimLineEnd drops a trailing "\n" or "\r\n".
func trimLineEnd(line []byte) []byte {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	return bytes.TrimSuffix(line, []byte{'\r'})
}

func isBlank(line []byte) bool { return len(bytes.TrimSpace(line)) == 0 }
