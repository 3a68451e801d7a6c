package sources

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/replaykit/replay/schemas"
)

func writeFile(t *testing.T, content []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "captures.ndjson")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFilePoll(t *testing.T) {
	big := bytes.Repeat([]byte(`{"k":"0123456789abcdef"}`), (5<<20)/24+1) // > 5 MiB, one line
	mib := bytes.Repeat([]byte("m"), 1<<20)
	var many, mibs bytes.Buffer
	for range 2500 {
		many.WriteString("{}\n")
	}
	for range 10 {
		mibs.Write(mib)
		mibs.WriteByte('\n')
	}
	type line struct {
		offset int64
		value  []byte
	}
	tests := []struct {
		name    string
		content []byte
		want    []line // nil: only check the batch sizes
		batches []int  // records per Poll before io.EOF; nil: not checked
	}{
		{"lines", []byte("a\nb\nc\n"), []line{{0, []byte("a")}, {1, []byte("b")}, {2, []byte("c")}}, []int{3}},
		{"no final newline", []byte("a\nb"), []line{{0, []byte("a")}, {1, []byte("b")}}, nil},
		{"crlf", []byte("a\r\nb\r\n"), []line{{0, []byte("a")}, {1, []byte("b")}}, nil},
		{"blank lines skipped but counted", []byte("\na\n\n \t \r\nb\n\n"), []line{{1, []byte("a")}, {4, []byte("b")}}, nil},
		{"empty file", nil, []line{}, []int{}},
		{"only blank lines", []byte("\n\n  \n"), []line{}, []int{}},
		{"5 MiB line", append(append([]byte("x\n"), big...), "\ny\n"...), []line{{0, []byte("x")}, {1, big}, {2, []byte("y")}}, nil},
		{"line batches", many.Bytes(), nil, []int{1000, 1000, 500}},
		{"byte batches", mibs.Bytes(), nil, []int{4, 4, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.content)
			f, err := NewFile(FileConfig{Path: path, Format: FormatNDJSON})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()

			var got []schemas.Record
			batches := []int{}
			for {
				recs, err := f.Poll(t.Context())
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("Poll: %v", err)
				}
				batches = append(batches, len(recs))
				got = append(got, recs...)
			}
			if _, err := f.Poll(t.Context()); !errors.Is(err, io.EOF) {
				t.Fatalf("Poll after the end: %v, want io.EOF", err)
			}
			if tt.batches != nil && !slices.Equal(batches, tt.batches) {
				t.Errorf("batch sizes %v, want %v", batches, tt.batches)
			}
			for _, r := range got {
				if r.Topic != "file:"+path || r.Partition != 0 || r.Key != nil || !r.Timestamp.IsZero() {
					t.Fatalf("record %s: topic %q partition %d key %q timestamp %s; want topic %q, partition 0, no key, no timestamp",
						r.Coordinates, r.Topic, r.Partition, r.Key, r.Timestamp, "file:"+path)
				}
			}
			if tt.want == nil {
				return
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d records, want %d", len(got), len(tt.want))
			}
			for i, w := range tt.want {
				if got[i].Offset != w.offset || !bytes.Equal(got[i].Value, w.value) {
					t.Errorf("record %d: offset %d value %.40q (%d bytes), want offset %d value %.40q (%d bytes)",
						i, got[i].Offset, got[i].Value, len(got[i].Value), w.offset, w.value, len(w.value))
				}
			}
		})
	}
}

func TestFileMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.ndjson")
	_, err := NewFile(FileConfig{Path: path})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("NewFile: %v; want an error naming %s", err, path)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v is not os.ErrNotExist", err)
	}
}

func TestFileCommitAndCancel(t *testing.T) {
	path := writeFile(t, []byte("a\nb\n"))
	cfg := DefaultFileConfig()
	cfg.Path = path
	f, err := NewFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tp := schemas.TopicPartition{Topic: "file:" + path}
	if err := f.Commit(t.Context(), schemas.Offsets{tp: 2}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if got := f.Committed(); got[tp] != 2 || len(got) != 1 {
		t.Errorf("Committed: %v, want %v", got, schemas.Offsets{tp: 2})
	}
	if err := f.Commit(t.Context(), schemas.Offsets{{Topic: "captures"}: 1}); err == nil {
		t.Error("Commit of another topic's offsets succeeded")
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := f.Poll(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Poll with a canceled context: %v, want context.Canceled", err)
	}
}

func TestFileConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  FileConfig
		want []string
	}{
		{"default format", FileConfig{Path: "x"}, nil},
		{"ndjson", FileConfig{Path: "x", Format: "ndjson"}, nil},
		{"no path", DefaultFileConfig(), []string{"path: required"}},
		{"unknown format", FileConfig{Path: "x", Format: "csv"}, []string{`format: unknown "csv"; use ndjson`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := tt.cfg.Validate()
			if len(errs) != len(tt.want) {
				t.Fatalf("got errors %v, want %q", errs, tt.want)
			}
			for i, err := range errs {
				if !strings.HasPrefix(err.Error(), tt.want[i]) {
					t.Errorf("error %q, want prefix %q", err, tt.want[i])
				}
			}
		})
	}
}

// TestFileStartAtSkipsWrittenLines: lines below the FileStartAt offset are
// not returned, and AlreadyWritten counts the records among them (blank
// lines are not records).
func TestFileStartAtSkipsWrittenLines(t *testing.T) {
	path := writeFile(t, []byte("a\n\nb\nc\nd\n"))
	f, err := NewFile(FileConfig{Path: path}, FileStartAt(3))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []string
	for {
		recs, err := f.Poll(t.Context())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			got = append(got, fmt.Sprintf("%d:%s", r.Offset, r.Value))
		}
	}
	if want := []string{"3:c", "4:d"}; !slices.Equal(got, want) {
		t.Errorf("records %v, want %v", got, want)
	}
	if n := f.AlreadyWritten(); n != 2 {
		t.Errorf("AlreadyWritten = %d, want 2", n)
	}
}
