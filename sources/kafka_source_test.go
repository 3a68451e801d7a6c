package sources

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/replaykit/replay/schemas"
)

// source is the pipeline's Source, restated here because sources must not
// import pipeline.
type source interface {
	Poll(ctx context.Context) ([]schemas.Record, error)
	Commit(ctx context.Context, offsets schemas.Offsets) error
}

var (
	_ source = (*Kafka)(nil)
	_ source = (*File)(nil)
)

// startCluster starts an in-process Kafka-protocol broker listening on a
// random 127.0.0.1 port and returns its address.
func startCluster(t *testing.T, opts ...kfake.Opt) string {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testConfig(addr, group string, topics ...string) KafkaConfig {
	cfg := DefaultKafkaConfig()
	cfg.Brokers = []string{addr}
	cfg.Topics = topics
	cfg.Group = group
	cfg.StopAtEnd = true
	cfg.MaxPollRecords = 7 // several polls per partition
	return cfg
}

func newKafka(t *testing.T, ctx context.Context, cfg KafkaConfig) *Kafka {
	t.Helper()
	k, err := NewKafka(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatalf("NewKafka: %v", err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// produce writes rs with a franz-go producer (to the partition each names)
// and returns them with their offsets set.
func produce(t *testing.T, ctx context.Context, addr string, rs []*kgo.Record, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	return rs
}

// produceKcat writes "key:value" lines to one partition with kcat, an
// independent client (librdkafka).
func produceKcat(t *testing.T, addr, topic string, partition int32, lines []string) {
	t.Helper()
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatalf("kcat is required by this test and was not found in PATH (%v); install it: apt-get install -y kcat", err)
	}
	cmd := exec.Command("kcat", "-b", addr, "-t", topic, "-P", "-p", fmt.Sprint(partition), "-K", ":")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat produce to %s/%d: %v\n%s", topic, partition, err, out)
	}
}

// drain polls until io.EOF and returns the records per partition.
func drain(t *testing.T, ctx context.Context, src source) map[schemas.TopicPartition][]schemas.Record {
	t.Helper()
	got := make(map[schemas.TopicPartition][]schemas.Record)
	for {
		recs, err := src.Poll(ctx)
		if errors.Is(err, io.EOF) {
			if len(recs) != 0 {
				t.Fatalf("Poll returned %d records with io.EOF", len(recs))
			}
			return got
		}
		if err != nil {
			t.Fatalf("Poll: %v", err)
		}
		if len(recs) == 0 {
			t.Fatal("Poll returned no records and no error")
		}
		for _, r := range recs {
			got[r.TP()] = append(got[r.TP()], r)
		}
	}
}

func assertRecords(t *testing.T, got, want map[schemas.TopicPartition][]schemas.Record) {
	t.Helper()
	for tp, w := range want {
		g := got[tp]
		if len(g) != len(w) {
			t.Errorf("%s/%d: got %d records, want %d", tp.Topic, tp.Partition, len(g), len(w))
			continue
		}
		for i := range w {
			if g[i].Coordinates != w[i].Coordinates {
				t.Errorf("%s/%d record %d: coordinates %s, want %s", tp.Topic, tp.Partition, i, g[i].Coordinates, w[i].Coordinates)
			}
			if !bytes.Equal(g[i].Key, w[i].Key) {
				t.Errorf("%s: key %q, want %q", w[i].Coordinates, g[i].Key, w[i].Key)
			}
			if !bytes.Equal(g[i].Value, w[i].Value) {
				t.Errorf("%s: value differs (%d bytes, want %d)", w[i].Coordinates, len(g[i].Value), len(w[i].Value))
			}
			switch {
			case g[i].Timestamp.IsZero():
				t.Errorf("%s: zero timestamp", w[i].Coordinates)
			case !w[i].Timestamp.IsZero() && !g[i].Timestamp.Equal(w[i].Timestamp):
				t.Errorf("%s: timestamp %s, want %s", w[i].Coordinates, g[i].Timestamp, w[i].Timestamp)
			}
		}
	}
	for tp, g := range got {
		if _, ok := want[tp]; !ok {
			t.Errorf("%s/%d: got %d unexpected records", tp.Topic, tp.Partition, len(g))
		}
	}
}

func toRecord(r *kgo.Record) schemas.Record {
	return schemas.Record{
		Coordinates: schemas.Coordinates{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset},
		Key:         r.Key, Value: r.Value, Timestamp: r.Timestamp,
	}
}

// binaryValue returns n bytes cycling through every byte value.
func binaryValue(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seed + i)
	}
	return b
}

func TestKafkaStopAtEndReadsEveryRecordOnce(t *testing.T) {
	const topic, quiet = "captures", "quiet"
	addr := startCluster(t, kfake.SeedTopics(3, topic), kfake.SeedTopics(2, quiet))
	ctx := testContext(t)

	// franz-go writes to every partition: binary values, one large value,
	// a nil key, explicit timestamps.
	var rs []*kgo.Record
	base := time.UnixMilli(1_790_000_000_000)
	for p := range int32(3) {
		for i := range 12 {
			r := &kgo.Record{
				Topic: topic, Partition: p,
				Key:       []byte(fmt.Sprintf("kgo-%d-%d", p, i)),
				Value:     binaryValue(i, 1+i*37),
				Timestamp: base.Add(time.Duration(i) * time.Millisecond),
			}
			if i == 5 {
				r.Value = binaryValue(int(p), 256<<10)
			}
			if i == 7 {
				r.Key = nil
			}
			rs = append(rs, r)
		}
	}
	want := make(map[schemas.TopicPartition][]schemas.Record)
	for _, r := range produce(t, ctx, addr, rs) {
		rec := toRecord(r)
		want[rec.TP()] = append(want[rec.TP()], rec)
	}

	// kcat appends to partitions 1 and 2.
	for _, p := range []int32{1, 2} {
		tp := schemas.TopicPartition{Topic: topic, Partition: p}
		var lines []string
		for i := range 9 {
			key := fmt.Sprintf("kcat-%d-%d", p, i)
			value := fmt.Sprintf(`{"n":%d,"text":"ünï cödé\ttab","url":"http://x/y?a=b:c"}`, i)
			lines = append(lines, key+":"+value)
			want[tp] = append(want[tp], schemas.Record{
				Coordinates: schemas.Coordinates{Topic: topic, Partition: p, Offset: int64(len(want[tp]))},
				Key:         []byte(key), Value: []byte(value),
			})
		}
		produceKcat(t, addr, topic, p, lines)
	}

	src := newKafka(t, ctx, testConfig(addr, "snapshot", topic, quiet))

	// Records produced after the start are past the snapshot.
	produce(t, ctx, addr, []*kgo.Record{
		{Topic: topic, Partition: 0, Value: []byte("late")},
		{Topic: topic, Partition: 2, Value: []byte("late")},
		{Topic: quiet, Partition: 1, Value: []byte("late")},
	})

	got := drain(t, ctx, src)
	assertRecords(t, got, want)
	for tp, recs := range got {
		for i, r := range recs {
			if r.Offset != int64(i) {
				t.Fatalf("%s/%d: record %d has offset %d; want offsets 0,1,2… in order", tp.Topic, tp.Partition, i, r.Offset)
			}
		}
	}
	if _, err := src.Poll(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("Poll after the end: %v, want io.EOF", err)
	}
}

func TestKafkaStopAtEndAfterTransactionMarker(t *testing.T) {
	// A transactional producer leaves a commit marker at the last offset;
	// the source must still see the end.
	addr := startCluster(t, kfake.SeedTopics(1, "captures"))
	ctx := testContext(t)

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID("capture-writer"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	want := map[schemas.TopicPartition][]schemas.Record{}
	for i := range 3 {
		r := &kgo.Record{Topic: "captures", Value: []byte(fmt.Sprint(i))}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
		rec := toRecord(r)
		want[rec.TP()] = append(want[rec.TP()], rec)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}

	src := newKafka(t, ctx, testConfig(addr, "txn", "captures"))
	assertRecords(t, drain(t, ctx, src), want)
}

func TestKafkaResumesAfterCommittedOffsets(t *testing.T) {
	const topic, group = "captures", "resume"
	addr := startCluster(t, kfake.SeedTopics(3, topic))
	ctx := testContext(t)

	var rs []*kgo.Record
	for p := range int32(3) {
		for i := range 10 {
			rs = append(rs, &kgo.Record{Topic: topic, Partition: p, Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf("%d-%d", p, i))})
		}
	}
	all := make(map[schemas.TopicPartition][]schemas.Record)
	for _, r := range produce(t, ctx, addr, rs) {
		rec := toRecord(r)
		all[rec.TP()] = append(all[rec.TP()], rec)
	}
	tp := func(p int32) schemas.TopicPartition { return schemas.TopicPartition{Topic: topic, Partition: p} }

	first, err := NewKafka(ctx, testConfig(addr, group, topic), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	assertRecords(t, drain(t, ctx, first), all)
	// Partition 0 is durable up to offset 4, partition 1 entirely, 2 not at all.
	if err := first.Commit(ctx, schemas.Offsets{tp(0): 4, tp(1): 10}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	first.Close()
	first.Close() // idempotent
	if err := first.Commit(ctx, schemas.Offsets{tp(0): 5}); err == nil {
		t.Fatal("Commit after Close succeeded")
	}
	if _, err := first.Poll(ctx); !errors.Is(err, kgo.ErrClientClosed) {
		t.Fatalf("Poll after Close: %v, want kgo.ErrClientClosed", err)
	}

	// The group holds exactly the committed offsets.
	admCl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	committed, err := kadm.NewClient(admCl).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[int32]int64{0: 4, 1: 10} {
		if o, ok := committed.Lookup(topic, p); !ok || o.At != want {
			t.Errorf("committed offset of partition %d: %+v (found %v), want %d", p, o, ok, want)
		}
	}
	if o, ok := committed.Lookup(topic, 2); ok && o.At >= 0 {
		t.Errorf("partition 2 has a committed offset %d; none was committed", o.At)
	}

	second := newKafka(t, ctx, testConfig(addr, group, topic))
	assertRecords(t, drain(t, ctx, second), map[schemas.TopicPartition][]schemas.Record{
		tp(0): all[tp(0)][4:],
		tp(2): all[tp(2)],
	})
}

func TestKafkaStartLatestSkipsExistingRecords(t *testing.T) {
	const topic = "captures"
	addr := startCluster(t, kfake.SeedTopics(1, topic))
	ctx := testContext(t)
	var old []*kgo.Record
	for i := range 5 {
		old = append(old, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprint("old-", i))})
	}
	produce(t, ctx, addr, old)

	t.Run("stop at end", func(t *testing.T) {
		cfg := testConfig(addr, "latest-snapshot", topic)
		cfg.Start = StartLatest
		src := newKafka(t, ctx, cfg)
		if recs, err := src.Poll(ctx); !errors.Is(err, io.EOF) {
			t.Fatalf("Poll: %d records, %v; want io.EOF at once", len(recs), err)
		}
	})

	t.Run("follow", func(t *testing.T) {
		cfg := testConfig(addr, "latest-follow", topic)
		cfg.Start = StartLatest
		cfg.StopAtEnd = false
		src := newKafka(t, ctx, cfg)
		// The member resolves "latest" once it is assigned the partition,
		// which this test cannot observe: write a new record per attempt
		// until one arrives. No old record may ever arrive.
		for i := 0; ; i++ {
			produce(t, ctx, addr, []*kgo.Record{{Topic: topic, Value: []byte(fmt.Sprint("new-", i))}})
			pollCtx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			recs, err := src.Poll(pollCtx)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				continue
			}
			if err != nil {
				t.Fatalf("Poll: %v", err)
			}
			for _, r := range recs {
				if r.Offset < int64(len(old)) || !bytes.HasPrefix(r.Value, []byte("new-")) {
					t.Fatalf("got %s %q, an existing record", r.Coordinates, r.Value)
				}
			}
			return
		}
	})
}

func TestKafkaUnreachableBrokerFailsFast(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	began := time.Now()
	_, err = NewKafka(testContext(t), testConfig(addr, "g", "captures"), testLogger(t))
	if err == nil {
		t.Fatal("NewKafka succeeded against a closed port")
	}
	for _, want := range []string{addr, "source.kafka.brokers"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("NewKafka took %s to fail", d)
	}
}

func TestKafkaMissingTopic(t *testing.T) {
	addr := startCluster(t, kfake.SeedTopics(1, "captures"))
	_, err := NewKafka(testContext(t), testConfig(addr, "g", "captures", "nope"), testLogger(t))
	if err == nil || !strings.Contains(err.Error(), `"nope" does not exist`) {
		t.Fatalf("NewKafka: %v; want an error saying topic \"nope\" does not exist", err)
	}
	if strings.Contains(err.Error(), `"captures"`) {
		t.Errorf("error %q names the existing topic", err)
	}
}

func TestKafkaSASL(t *testing.T) {
	addr := startCluster(t, kfake.SeedTopics(1, "captures"), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-512", "replay", "s3cret"))
	ctx := testContext(t)

	cfg := testConfig(addr, "sasl", "captures")
	cfg.SASL = KafkaSASL{Mechanism: "SCRAM-SHA-512", Username: "replay", Password: "s3cret"}
	r := &kgo.Record{Topic: "captures", Value: []byte("hello")}
	produce(t, ctx, addr, []*kgo.Record{r}, kgo.SASL(cfg.SASL.mechanism()))
	assertRecords(t, drain(t, ctx, newKafka(t, ctx, cfg)), map[schemas.TopicPartition][]schemas.Record{
		toRecord(r).TP(): {toRecord(r)},
	})

	cfg.SASL.Password = "wrong"
	_, err := NewKafka(ctx, cfg, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "source.kafka.sasl") {
		t.Fatalf("NewKafka with a wrong password: %v; want an error pointing at source.kafka.sasl", err)
	}
}

func TestKafkaConfigValidate(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name string
		edit func(*KafkaConfig)
		want []string // error prefixes, in order; none for a valid config
	}{
		{"default", func(*KafkaConfig) {}, nil},
		{"latest", func(c *KafkaConfig) { c.Start = StartLatest }, nil},
		{"sasl plain", func(c *KafkaConfig) { c.SASL = KafkaSASL{Mechanism: "plain", Username: "u", Password: "p"} }, nil},
		{"no brokers", func(c *KafkaConfig) { c.Brokers = nil }, []string{"brokers: required"}},
		{"broker without port", func(c *KafkaConfig) { c.Brokers = []string{"kafka:9092", "kafka"} }, []string{`brokers[1]: must be host:port, got "kafka"`}},
		{"no topics", func(c *KafkaConfig) { c.Topics = nil }, []string{"topics: required"}},
		{"empty topic", func(c *KafkaConfig) { c.Topics = []string{"a", " "} }, []string{"topics[1]: must not be empty"}},
		{"no group", func(c *KafkaConfig) { c.Group = "" }, []string{"group: required"}},
		{"group escaping the warehouse", func(c *KafkaConfig) { c.Group = "../g" }, []string{`group: "../g" contains ".."`}},
		{"group with a space", func(c *KafkaConfig) { c.Group = "my group" }, []string{`group: "my group" has characters outside [A-Za-z0-9._-]`}},
		{"topics Kafka refuses", func(c *KafkaConfig) { c.Topics = []string{"captures.v1", "..", "a/b", "_internal"} }, []string{
			`topics[1]: ".." is not a Kafka topic name`,
			`topics[2]: "a/b" is not a Kafka topic name`,
		}},
		{"bad start", func(c *KafkaConfig) { c.Start = "x" }, []string{`start: must be earliest or latest, got "x"`}},
		{"max poll records", func(c *KafkaConfig) { c.MaxPollRecords = 0 }, []string{"max_poll_records: must be positive"}},
		{"timeouts", func(c *KafkaConfig) { c.SessionTimeout, c.RebalanceTimeout = 0, -time.Second }, []string{"session_timeout: must be positive", "rebalance_timeout: must be positive"}},
		{"unknown sasl", func(c *KafkaConfig) { c.SASL = KafkaSASL{Mechanism: "x", Username: "u", Password: "p"} },
			[]string{`sasl.mechanism: unknown "x"; use plain, scram-sha-256 or scram-sha-512`}},
		{"sasl without user", func(c *KafkaConfig) { c.SASL = KafkaSASL{Mechanism: "scram-sha-256"} },
			[]string{"sasl.username: required", "sasl.password: required"}},
		{"sasl user without mechanism", func(c *KafkaConfig) { c.SASL = KafkaSASL{Username: "u"} }, []string{"sasl.mechanism: required"}},
		{"missing ca", func(c *KafkaConfig) { c.TLS = KafkaTLS{Enabled: true, CAFile: missing} },
			[]string{fmt.Sprintf("tls.ca_file: cannot read %q: no such file or directory", missing)}},
		{"ca not pem", func(c *KafkaConfig) { c.TLS = KafkaTLS{Enabled: true, CAFile: notPEM} }, []string{"tls.ca_file: no PEM certificate"}},
		{"cert without key", func(c *KafkaConfig) { c.TLS = KafkaTLS{Enabled: true, CertFile: notPEM} }, []string{"tls.key_file: required"}},
		{"bad key pair", func(c *KafkaConfig) { c.TLS = KafkaTLS{Enabled: true, CertFile: missing, KeyFile: missing} }, []string{"tls.cert_file: cannot load key pair"}},
		{"tls files while disabled", func(c *KafkaConfig) { c.TLS = KafkaTLS{CAFile: notPEM} }, []string{"tls.enabled: must be true when tls.ca_file is set"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultKafkaConfig()
			tt.edit(&cfg)
			errs := cfg.Validate()
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors %v, want %d %q", len(errs), errs, len(tt.want), tt.want)
			}
			for i, err := range errs {
				if !strings.HasPrefix(err.Error(), tt.want[i]) {
					t.Errorf("error %d: %q, want prefix %q", i, err, tt.want[i])
				}
			}
		})
	}
}
