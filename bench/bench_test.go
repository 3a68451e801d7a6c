package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replaykit/replay/schemas"
)

// TestCapturesAreValidAndSized checks the generated captures: envelopes
// replay decodes, GETs with a body of the size asked for, the same for
// the same index.
func TestCapturesAreValidAndSized(t *testing.T) {
	for _, size := range []int{1024, 1500, 16 << 10, 256 << 10} {
		raw := captureValue(7, Sizes{Min: size, Max: size})
		x, err := schemas.Decode(raw, schemas.Coordinates{Topic: "t"}, schemas.DecodeOptions{})
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if len(x.Response.Body) != size || !json.Valid(x.Response.Body) || x.Request.Method != "GET" {
			t.Errorf("size %d: body of %d bytes (valid JSON: %v), method %s", size, len(x.Response.Body), json.Valid(x.Response.Body), x.Request.Method)
		}
		if !bytes.Equal(raw, captureValue(7, Sizes{Min: size, Max: size})) {
			t.Errorf("size %d: capture 7 differs from one call to the next", size)
		}
	}
	for i := range 50 {
		if n := len(exchange(i, e2eSizes).Response.Body); n < e2eSizes.Min || n > e2eSizes.Max {
			t.Errorf("capture %d: body of %d bytes, want %d to %d", i, n, e2eSizes.Min, e2eSizes.Max)
		}
	}
}

// TestGorFile checks the .gor file GoReplay reads: per request a header
// line, the raw request and the separator.
func TestGorFile(t *testing.T) {
	reqs, err := bareRequests("http://127.0.0.1:9/", 2, e2eSizes, 0)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "r.gor")
	if err := writeGor(path, reqs); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	payloads := strings.Split(strings.TrimSuffix(string(raw), "\n🐵🙈🙉\n"), "\n🐵🙈🙉\n")
	if len(payloads) != 2 {
		t.Fatalf("%d payloads, want 2", len(payloads))
	}
	for i, p := range payloads {
		head, req, _ := strings.Cut(p, "\n")
		if f := strings.Fields(head); len(f) != 4 || f[0] != "1" {
			t.Errorf("payload %d: header line %q", i, head)
		}
		if !strings.HasPrefix(req, "GET /v1/titles/") || !strings.Contains(req, "\r\nX-Replay-Id: bench-0000000") || !strings.HasSuffix(req, "\r\n\r\n") {
			t.Errorf("payload %d: request %q", i, req)
		}
	}
}

// TestRateAndPaceStats checks the rate and pace numbers on arrivals made
// up for the purpose.
func TestRateAndPaceStats(t *testing.T) {
	start := time.Unix(0, 0)
	var got []time.Time
	for i := range 101 {
		d := time.Duration(i) * time.Millisecond
		if i == 50 {
			d += 300 * time.Microsecond // one late arrival: two gaps off by 300 µs
		}
		got = append(got, start.Add(d))
	}
	r := rateOf(got, 1000)
	if r.achieved != 1000 || r.p99Gap != 300*time.Microsecond {
		t.Errorf("rate stats %+v, want 1000/s and a p99 gap error of 300 µs", r)
	}
	want := burstOffsets(21, 2)
	if want(1) != 50*time.Microsecond || want(10) != 5*time.Millisecond+450*time.Microsecond {
		t.Errorf("burst offsets at 2×: %v, %v", want(1), want(10))
	}
	var paced []time.Time
	for i := range 21 {
		paced = append(paced, start.Add(want(i)))
	}
	if p := paceOf(paced, want); p.spanRatio != 1 || p.median != 0 || p.p99Offset != 0 {
		t.Errorf("pace stats of exact arrivals %+v", p)
	}
}

// TestTablePrint checks that every line of the table has the same width.
func TestTablePrint(t *testing.T) {
	tab := &Table{Header: []string{"machine"}, Notes: []string{"note"}}
	tab.add(Line{Item: "1", What: "end-to-end", Ours: perSec(12345.6), Baseline: "bare " + perSec(20000), Ratio: ratio(1, 2), Goal: "≥ 0.80"})
	tab.add(Line{What: "µs by stage", Ours: "decode 1.0"})
	var b bytes.Buffer
	tab.Print(&b)
	var widths []int
	sc := bufio.NewScanner(bytes.NewReader(b.Bytes()))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "|") {
			widths = append(widths, len([]rune(sc.Text())))
		}
	}
	if len(widths) != 4 || widths[0] != widths[1] || widths[1] != widths[2] || widths[2] != widths[3] {
		t.Errorf("table rows of widths %v:\n%s", widths, b.String())
	}
	if !strings.Contains(b.String(), "12,346/s") || !strings.Contains(b.String(), "| 0.50 ") {
		t.Errorf("table:\n%s", b.String())
	}
}
