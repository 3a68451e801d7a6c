package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/replaykit/replay/config"
)

// The memory budget of a replay run process, counted as docs/operations.md
// ("Memory") derives it. Every term is an upper bound for what its part can
// hold at once; together they size the container's memory limit.
const (
	// runtimeBase covers the Go runtime, the binary, the admin server and
	// metrics, and the catalog client.
	runtimeBase = 64 << 20
	// connBuffers is held per worker and per side (target, baseline): the
	// HTTP connection's read and write buffers and TLS state.
	connBuffers = 64 << 10
	// recordOverhead is a record's headers, maps and row structs besides its
	// bodies.
	recordOverhead = 16 << 10
	// brokerMaxMessage is Kafka's default message.max.bytes (1 MiB and a
	// record batch header): the most raw bytes an undecodable record,
	// headed for dead_letters with nothing else, can hold.
	brokerMaxMessage = 1<<20 + 12
	// fetchPerBroker is franz-go's default FetchMaxBytes: the client keeps
	// one fetch response buffered per broker it fetches from. replay does
	// not change it.
	fetchPerBroker = 50 << 20
	// liveDecodeFactor is how many times its bytes a JSON body takes once
	// decoded for live comparison (BenchmarkLiveCompare: 17.5 KB allocated
	// per pair of 1.3 KiB bodies, about 7×).
	liveDecodeFactor = 8
	// sinkFactor: the Arrow builders grow by doubling, so flush.bytes of
	// rows can take up to twice that, and the flush encodes them to Parquet
	// beside them.
	sinkFactor = 3
)

// budget is the memory bound of one replay run process, by part.
type budget struct {
	Base      int64 // runtime and connections
	Records   int64 // records polled and not yet handed to the sink
	PerRecord int64 // one of them at most
	Sink      int64 // rows buffered for the next flush, and the flush
	Fetch     int64 // the Kafka client's buffered fetches
	Live      int64 // live comparison's decoded bodies
}

func (b budget) Total() int64 {
	return b.Base + b.Records*b.PerRecord + b.Sink + b.Fetch + b.Live
}

// memoryBudget derives the budget from cfg. It fails the test when a bound
// is missing (decode.max_body_bytes: 0 is no limit).
func memoryBudget(t *testing.T, cfg config.Config) budget {
	t.Helper()
	p := cfg.Pipeline
	body := int64(p.Decode.MaxBodyBytes)
	if body <= 0 {
		t.Fatalf("decode.max_body_bytes is %d (no limit): the memory of a record has no bound; set it", body)
	}
	resp := p.Replay.MaxResponseBytes
	sides := int64(1)
	if p.Replay.Baseline != "" {
		sides = 2
	}
	copies := 1.0 // replays of one record: the record and its amplified copies
	if p.Amplify.Key != "" {
		copies = p.Amplify.Default
		for _, f := range p.Amplify.Factors {
			copies = max(copies, f)
		}
	}
	workers := int64(p.Replay.Workers)
	b := budget{
		Base: runtimeBase + workers*sides*connBuffers,
		// The intake admits a whole poll before it waits for slots.
		Records: int64(p.Limits.MaxInFlight + cfg.Source.Kafka.MaxPollRecords),
		// A decodable record: its raw capture (both bodies base64-encoded
		// are 8/3 of their bytes, plus the JSON around them), the decoded
		// request and response bodies, and a response per replay and side.
		// An undecodable one: its raw bytes only.
		PerRecord: max(3*body+2*body+int64(math.Ceil(copies))*sides*resp, brokerMaxMessage) + recordOverhead,
		Sink:      sinkFactor * cfg.Sink.Flush.Bytes,
		Fetch:     int64(len(cfg.Source.Kafka.Brokers)) * fetchPerBroker,
	}
	if p.LiveCompare.Enabled {
		b.Live = workers * liveDecodeFactor * (body + resp)
	}
	return b
}

// shutdownBound is the longest a replay run process takes from SIGTERM to
// exit: the drain of in-flight replays, the final flush and the final
// commit are each bounded by shutdown_grace; then the Kafka source leaves
// its group (sources.closeTimeout) and the admin server stops
// (admin.shutdownTimeout). Both timeouts are read from the source.
func shutdownBound(t *testing.T, cfg config.Config) time.Duration {
	t.Helper()
	leave := constDuration(t, filepath.Join(repoRoot, "sources", "kafka_source.go"), "closeTimeout")
	admin := constDuration(t, filepath.Join(repoRoot, "admin", "server.go"), "shutdownTimeout")
	return 3*cfg.Pipeline.ShutdownGrace + leave + admin
}

// constDuration reads the package-level constant name, written as
// N * time.Unit, from the Go file at path.
func constDuration(t *testing.T, path, name string) time.Duration {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	units := map[string]time.Duration{"Millisecond": time.Millisecond, "Second": time.Second, "Minute": time.Minute}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, id := range vs.Names {
				if id.Name != name || i >= len(vs.Values) {
					continue
				}
				if bin, ok := vs.Values[i].(*ast.BinaryExpr); ok && bin.Op == token.MUL {
					lit, okN := bin.X.(*ast.BasicLit)
					sel, okU := bin.Y.(*ast.SelectorExpr)
					if okN && okU && lit.Kind == token.INT {
						n, err := strconv.Atoi(lit.Value)
						if unit, known := units[sel.Sel.Name]; known && err == nil {
							return time.Duration(n) * unit
						}
					}
				}
				t.Fatalf("%s: constant %s is not written as N * time.Unit; update deploy/budget_test.go", path, name)
			}
		}
	}
	t.Fatalf("%s: no constant %s; the shutdown sequence changed: update shutdownBound and docs/operations.md", path, name)
	return 0
}

// adminPort returns the port of admin.listen. Its host must be every
// interface: the kubelet's probes, Prometheus and the published port of a
// container all reach the process at the container's address.
func adminPort(t *testing.T, cfg config.Config) int32 {
	t.Helper()
	if !cfg.Admin.Enabled() {
		t.Fatal("admin.listen is empty: no probes, metrics or controls")
	}
	host, port, err := net.SplitHostPort(cfg.Admin.Listen)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		t.Errorf("admin.listen %s: probes and scrapes come to the container's address; listen on 0.0.0.0", cfg.Admin.Listen)
	}
	n, err := strconv.ParseInt(port, 10, 32)
	if err != nil || n == 0 {
		t.Fatalf("admin.listen %s: want a fixed port", cfg.Admin.Listen)
	}
	return int32(n)
}

// TestBoundsOfTheDefaults pins the arithmetic on the embedded default, so
// a change in a default shows up here and in docs/operations.md together.
func TestBoundsOfTheDefaults(t *testing.T) {
	cfg := config.Default()
	b := memoryBudget(t, cfg)
	// 3·8 + 2·8 + 8 MiB + 16 KiB per record, 4096 + 1000 records.
	if want := int64(48<<20 + 16<<10); b.PerRecord != want {
		t.Errorf("per record = %d, want %d", b.PerRecord, want)
	}
	if b.Records != 5096 {
		t.Errorf("records = %d, want 5096", b.Records)
	}
	if got, want := shutdownBound(t, cfg), 105*time.Second; got != want {
		t.Errorf("shutdown bound of the default = %s, want %s (3 × 30s + 10s + 5s)", got, want)
	}
}
