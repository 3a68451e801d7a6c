package sources

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/replaykit/replay/schemas"
)

// Values of KafkaConfig.Start.
const (
	StartEarliest = "earliest"
	StartLatest   = "latest"
)

// Values of KafkaSASL.Mechanism (matched case-insensitively).
const (
	SASLPlain       = "plain"
	SASLScramSHA256 = "scram-sha-256"
	SASLScramSHA512 = "scram-sha-512"
)

const (
	// startupTimeout bounds the broker checks NewKafka makes (ping, end
	// offsets, group offsets), so an unreachable cluster fails the start
	// instead of hanging it.
	startupTimeout = 15 * time.Second
	// closeTimeout bounds leaving the group in Close.
	closeTimeout = 10 * time.Second
)

// KafkaConfig configures the Kafka source: one consumer-group member reading
// the capture topics. Start from DefaultKafkaConfig.
type KafkaConfig struct {
	// Brokers are the seed brokers, as host:port.
	Brokers []string `yaml:"brokers"`
	// Topics are the capture topics to consume.
	Topics []string `yaml:"topics"`
	// Group is the consumer group. Replicas sharing a group split the
	// partitions between them; the group's committed offsets are where a
	// restart resumes.
	Group string `yaml:"group"`
	// Start is where a partition with no committed offset in Group begins:
	// "earliest" (the oldest record kept) or "latest" (only records produced
	// after the member is assigned the partition). It is also where a
	// partition resumes when its committed offset is no longer in the log.
	Start string `yaml:"start"`
	// StopAtEnd makes Poll return io.EOF once every partition of Topics has
	// been consumed up to the end offset it had when the source started.
	// Records produced after the start are not returned: a stop-at-end run is
	// a snapshot of the log at start. Partitions that are empty, or whose
	// committed offset is already at the end, count as done from the start.
	// Used by the demo, tests and one-off batch replays; it assumes this
	// source is the group's only member.
	StopAtEnd bool `yaml:"stop_at_end"`
	// ClientID names this client in broker logs and quotas.
	ClientID string `yaml:"client_id"`
	// MaxPollRecords caps the records one Poll returns.
	MaxPollRecords int `yaml:"max_poll_records"`
	// SessionTimeout is how long the group waits for a heartbeat before it
	// evicts this member (Kafka's session.timeout.ms). The broker bounds it
	// with group.min/max.session.timeout.ms.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// RebalanceTimeout is how long the group waits for members to rejoin
	// during a rebalance (Kafka's rebalance.timeout.ms).
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout"`
	// SASL authenticates to the brokers; an empty mechanism disables it.
	SASL KafkaSASL `yaml:"sasl"`
	// TLS encrypts the broker connections.
	TLS KafkaTLS `yaml:"tls"`
}

// KafkaSASL configures SASL authentication.
type KafkaSASL struct {
	// Mechanism is plain, scram-sha-256 or scram-sha-512; empty disables
	// SASL.
	Mechanism string `yaml:"mechanism"`
	// Username to authenticate as.
	Username string `yaml:"username"`
	// Password of Username. Prefer setting it from the environment.
	Password string `yaml:"password"`
}

// KafkaTLS configures TLS to the brokers.
type KafkaTLS struct {
	// Enabled turns TLS on. With no CA file the system roots verify the
	// brokers.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the CAs that sign the broker certificates.
	CAFile string `yaml:"ca_file"`
	// CertFile is the PEM client certificate for mutual TLS; set KeyFile too.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile.
	KeyFile string `yaml:"key_file"`
	// ServerName overrides the host name verified in broker certificates;
	// empty uses each broker's host.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify disables broker certificate verification. Only for
	// tests.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// DefaultKafkaConfig returns the configuration for a local broker: the
// "captures" topic on 127.0.0.1:9092, group "replay", from the earliest
// record.
func DefaultKafkaConfig() KafkaConfig {
	return KafkaConfig{
		Brokers:          []string{"127.0.0.1:9092"},
		Topics:           []string{"captures"},
		Group:            "replay",
		Start:            StartEarliest,
		ClientID:         "replay",
		MaxPollRecords:   1000,
		SessionTimeout:   45 * time.Second,
		RebalanceTimeout: time.Minute,
	}
}

// Validate returns every problem in c, each starting with the field path
// relative to KafkaConfig. It reads the TLS files to check them.
func (c *KafkaConfig) Validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if len(c.Brokers) == 0 {
		add("brokers: required; list at least one host:port")
	}
	for i, b := range c.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			add("brokers[%d]: must be host:port, got %q", i, b)
		}
	}
	if len(c.Topics) == 0 {
		add("topics: required; list at least one topic")
	}
	for i, t := range c.Topics {
		if strings.TrimSpace(t) == "" {
			add("topics[%d]: must not be empty", i)
		}
	}
	if c.Group == "" {
		add("group: required; name the consumer group, e.g. %q", "replay")
	}
	if c.Start != StartEarliest && c.Start != StartLatest {
		add("start: must be %s or %s, got %q", StartEarliest, StartLatest, c.Start)
	}
	if c.MaxPollRecords <= 0 {
		add("max_poll_records: must be positive, got %d", c.MaxPollRecords)
	}
	if c.SessionTimeout <= 0 {
		add("session_timeout: must be positive, got %s; the default is 45s", c.SessionTimeout)
	}
	if c.RebalanceTimeout <= 0 {
		add("rebalance_timeout: must be positive, got %s; the default is 1m", c.RebalanceTimeout)
	}
	errs = append(errs, c.SASL.validate()...)
	_, tlsErrs := c.TLS.load()
	return append(errs, tlsErrs...)
}

func (s *KafkaSASL) validate() []error {
	var errs []error
	switch strings.ToLower(s.Mechanism) {
	case "":
		if s.Username != "" || s.Password != "" {
			errs = append(errs, fmt.Errorf("sasl.mechanism: required when sasl.username or sasl.password is set; use %s, %s or %s", SASLPlain, SASLScramSHA256, SASLScramSHA512))
		}
		return errs
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
	default:
		errs = append(errs, fmt.Errorf("sasl.mechanism: unknown %q; use %s, %s or %s", s.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512))
	}
	if s.Username == "" {
		errs = append(errs, fmt.Errorf("sasl.username: required when sasl.mechanism is set"))
	}
	if s.Password == "" {
		errs = append(errs, fmt.Errorf("sasl.password: required when sasl.mechanism is set"))
	}
	return errs
}

// mechanism returns the franz-go SASL mechanism, nil when SASL is off.
// s must be valid.
func (s *KafkaSASL) mechanism() sasl.Mechanism {
	switch strings.ToLower(s.Mechanism) {
	case SASLPlain:
		return plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()
	case SASLScramSHA256:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()
	case SASLScramSHA512:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()
	}
	return nil
}

// load builds the TLS client configuration, nil when TLS is off, and returns
// every problem with its field path.
func (t *KafkaTLS) load() (*tls.Config, []error) {
	var errs []error
	if !t.Enabled {
		for _, f := range []struct{ name, value string }{
			{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile},
		} {
			if f.value != "" {
				errs = append(errs, fmt.Errorf("tls.enabled: must be true when tls.%s is set", f.name))
			}
		}
		return nil, errs
	}
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // opt-in, documented as test-only
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("tls.ca_file: cannot read %q: %w", t.CAFile, unwrapPath(err)))
		default:
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				errs = append(errs, fmt.Errorf("tls.ca_file: no PEM certificate in %q", t.CAFile))
			}
		}
	}
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		errs = append(errs, fmt.Errorf("tls.key_file: required when tls.cert_file is set"))
	case t.CertFile == "" && t.KeyFile != "":
		errs = append(errs, fmt.Errorf("tls.cert_file: required when tls.key_file is set"))
	case t.CertFile != "":
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("tls.cert_file: cannot load key pair %q, %q: %w", t.CertFile, t.KeyFile, unwrapPath(err)))
		} else {
			tc.Certificates = []tls.Certificate{cert}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return tc, nil
}

// unwrapPath drops the "open /x:" prefix of a path error whose path the
// caller already quotes.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Kafka is a consumer-group member reading the capture topics. Offsets are
// committed only by Commit (auto-commit is off), so the group's offsets never
// run ahead of what the pipeline made durable.
//
// Rebalances are not blocked while polled records are in flight
// (kgo.BlockRebalanceOnPoll): the pipeline holds records across many polls
// and commits long after, which would stall a rebalance past its timeout.
// Instead Commit skips partitions this member no longer owns; what was in
// flight for them is read again by their new owner, and the sinks' offsets
// keep the tables exactly-once. Isolation is read-uncommitted, so records of
// aborted transactions are delivered like any other.
//
// Poll must be called from one goroutine; Commit and Close may be called from
// another.
type Kafka struct {
	cfg    KafkaConfig
	logger *slog.Logger
	cl     *kgo.Client

	mu     sync.Mutex
	parts  map[schemas.TopicPartition]*partitionState
	closed bool

	// remaining counts the partitions not yet done (StopAtEnd only). Poll
	// owns it and pending.
	remaining int
	pending   error // a poll error held back while its batch's records were returned
}

// partitionState is what the source knows of one partition. Keeping state
// per partition is what lets resume-from-sink set start offsets on
// assignment (kgo.AdjustFetchOffsetsFn) without reshaping the source.
type partitionState struct {
	owned bool // assigned to this member now

	// StopAtEnd only.
	end  int64 // end offset captured at start: the snapshot stops below it
	done bool  // every record below end has been returned, or none will be
}

// NewKafka joins cfg.Group and starts consuming cfg.Topics. It validates cfg,
// checks that a broker answers and that every topic exists, and with
// StopAtEnd captures the end offsets that Poll stops at. logger may be nil.
func NewKafka(ctx context.Context, cfg KafkaConfig, logger *slog.Logger) (*Kafka, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("invalid kafka source config: %w", errors.Join(errs...))
	}
	tc, errs := cfg.TLS.load()
	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid kafka source config: %w", errors.Join(errs...))
	}
	if logger == nil {
		logger = slog.Default()
	}
	k := &Kafka{
		cfg:    cfg,
		logger: logger,
		parts:  make(map[schemas.TopicPartition]*partitionState),
	}

	start := kgo.NewOffset().AtStart()
	if cfg.Start == StartLatest {
		start = kgo.NewOffset().AtEnd()
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.WithLogger(kgoLogger{logger.With("component", "kgo")}),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.DisableAutoCommit(),
		kgo.ConsumeStartOffset(start),
		kgo.ConsumeResetOffset(start),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.RebalanceTimeout(cfg.RebalanceTimeout),
		// Control records (transaction markers) are kept so that every
		// offset below the end is seen; Poll drops them. Without them a
		// stop-at-end run whose last offset is a marker would never finish.
		kgo.KeepControlRecords(),
		kgo.OnPartitionsAssigned(k.onAssigned),
		kgo.OnPartitionsRevoked(k.onRevoked),
		kgo.OnPartitionsLost(k.onLost),
	}
	if m := cfg.SASL.mechanism(); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("create kafka client: %w", err)
	}
	k.cl = cl

	if err := k.start(ctx); err != nil {
		k.closed = true
		cl.Close()
		return nil, err
	}
	logger.Info("kafka source started",
		"brokers", cfg.Brokers, "topics", cfg.Topics, "group", cfg.Group,
		"start", cfg.Start, "stop_at_end", cfg.StopAtEnd)
	return k, nil
}

// start checks the cluster and, with StopAtEnd, captures the snapshot.
func (k *Kafka) start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startupTimeout)
	defer cancel()
	brokers := strings.Join(k.cfg.Brokers, ", ")

	if err := k.cl.Ping(ctx); err != nil {
		hint := "check source.kafka.brokers"
		if k.cfg.SASL.Mechanism != "" || k.cfg.TLS.Enabled {
			hint = "check source.kafka.brokers, source.kafka.sasl and source.kafka.tls"
		}
		return fmt.Errorf("cannot reach kafka brokers %s: %w; %s", brokers, err, hint)
	}

	adm := kadm.NewClient(k.cl)
	ends, err := adm.ListEndOffsets(ctx, k.cfg.Topics...)
	if err != nil {
		return fmt.Errorf("list end offsets of topics %s on %s: %w", strings.Join(k.cfg.Topics, ", "), brokers, err)
	}
	var missing []string
	for _, t := range k.cfg.Topics {
		ps := ends[t]
		if o, ok := ps[-1]; len(ps) == 0 || (ok && errors.Is(o.Err, kerr.UnknownTopicOrPartition)) {
			missing = append(missing, fmt.Sprintf("%q", t))
		}
	}
	switch len(missing) {
	case 0:
	case 1:
		return fmt.Errorf("kafka topic %s does not exist on %s; create it or fix source.kafka.topics", missing[0], brokers)
	default:
		return fmt.Errorf("kafka topics %s do not exist on %s; create them or fix source.kafka.topics", strings.Join(missing, ", "), brokers)
	}
	if err := ends.Error(); err != nil {
		return fmt.Errorf("list end offsets of topics %s: %w", strings.Join(k.cfg.Topics, ", "), err)
	}
	if !k.cfg.StopAtEnd {
		return nil
	}

	starts, err := adm.ListStartOffsets(ctx, k.cfg.Topics...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fmt.Errorf("list start offsets of topics %s: %w", strings.Join(k.cfg.Topics, ", "), err)
	}
	committed, err := adm.FetchOffsets(ctx, k.cfg.Group)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return fmt.Errorf("fetch committed offsets of group %q: %w", k.cfg.Group, err)
	}

	var (
		records int64
		done    = make(map[string][]int32)
	)
	k.mu.Lock()
	ends.Each(func(e kadm.ListedOffset) {
		// A partition starts at its committed offset, else at Start; a
		// committed offset below the log start resumes at the log start.
		from := e.Offset
		if s, ok := starts.Lookup(e.Topic, e.Partition); ok && k.cfg.Start == StartEarliest {
			from = s.Offset
		}
		if c, ok := committed.Lookup(e.Topic, e.Partition); ok && c.Err == nil && c.At >= 0 {
			from = c.At
			if s, ok := starts.Lookup(e.Topic, e.Partition); ok && from < s.Offset {
				from = s.Offset
			}
		}
		// The group may have assigned the partition already.
		tp := schemas.TopicPartition{Topic: e.Topic, Partition: e.Partition}
		st := k.parts[tp]
		if st == nil {
			st = &partitionState{}
			k.parts[tp] = st
		}
		st.end, st.done = e.Offset, from >= e.Offset
		if st.done {
			done[e.Topic] = append(done[e.Topic], e.Partition)
		} else {
			k.remaining++
			records += e.Offset - from
		}
	})
	k.logger.Info("kafka source will stop at the end offsets seen at start",
		"group", k.cfg.Group, "partitions", len(k.parts), "partitions_to_read", k.remaining, "records_to_read", records)
	k.mu.Unlock()
	// Nothing is wanted from partitions already done (see records).
	k.cl.PauseFetchPartitions(done)
	return nil
}

// Poll returns the next records, at most MaxPollRecords, in offset order per
// partition. It blocks until at least one record is available, returns
// ctx.Err() when ctx ends, and with StopAtEnd returns io.EOF once every
// partition is done. Records at or past a partition's captured end offset are
// filtered out, so a stop-at-end run returns exactly the log as it was at
// start.
//
// Fetch errors (authorization, a deleted topic, a lost group session, a
// corrupt batch) are returned wrapped with the topic and partition; when a
// poll also carried records, the records come first and the error with the
// next call. Detected data loss is logged: the client has already resumed.
// After Close, Poll returns an error wrapping kgo.ErrClientClosed.
func (k *Kafka) Poll(ctx context.Context) ([]schemas.Record, error) {
	if err := k.pending; err != nil {
		k.pending = nil
		return nil, err
	}
	for {
		k.mu.Lock()
		closed := k.closed
		k.mu.Unlock()
		if closed {
			return nil, fmt.Errorf("poll kafka topics %s: %w", strings.Join(k.cfg.Topics, ", "), kgo.ErrClientClosed)
		}
		if k.cfg.StopAtEnd && k.remaining == 0 {
			return nil, io.EOF
		}
		fetches := k.cl.PollRecords(ctx, k.cfg.MaxPollRecords)
		recs := k.records(fetches)
		err := k.fetchError(ctx, fetches)
		if len(recs) > 0 {
			// Return what was fetched; report the error on the next call.
			// A context error needs no holding: the next call sees ctx.
			if err != nil && ctx.Err() == nil {
				k.pending = err
			}
			return recs, nil
		}
		if err != nil {
			return nil, err
		}
		// Only control records or records past the snapshot: poll again.
	}
}

// records converts a poll's records, dropping control records and, with
// StopAtEnd, records past the snapshot; it marks partitions done.
func (k *Kafka) records(fetches kgo.Fetches) []schemas.Record {
	recs := make([]schemas.Record, 0, fetches.NumRecords())
	var finished map[string][]int32
	k.mu.Lock()
	fetches.EachRecord(func(r *kgo.Record) {
		if k.cfg.StopAtEnd {
			// A partition created after the start has no state, or only the
			// state its assignment made (end 0): all of it is past the end.
			st := k.parts[schemas.TopicPartition{Topic: r.Topic, Partition: r.Partition}]
			if st == nil || st.done || r.Offset >= st.end {
				return
			}
			if r.Offset+1 >= st.end {
				st.done = true
				k.remaining--
				if finished == nil {
					finished = make(map[string][]int32)
				}
				finished[r.Topic] = append(finished[r.Topic], r.Partition)
				k.logger.Info("partition read up to its end offset at start",
					"topic", r.Topic, "partition", r.Partition, "offset", st.end, "partitions_left", k.remaining)
			}
		}
		if r.Attrs.IsControl() {
			return
		}
		recs = append(recs, schemas.Record{
			Coordinates: schemas.Coordinates{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset},
			Key:         r.Key,
			Value:       r.Value,
			Timestamp:   r.Timestamp,
		})
	})
	k.mu.Unlock()
	if finished != nil {
		// Nothing more is wanted from these: stop fetching past the end.
		// Outside k.mu: the client's own locks may be held while it runs
		// the assignment callbacks, which take k.mu.
		k.cl.PauseFetchPartitions(finished)
	}
	return recs
}

// fetchError returns the first error of a poll that the caller must see.
// Data loss is handled by the client (it resets and resumes) and is logged.
func (k *Kafka) fetchError(ctx context.Context, fetches kgo.Fetches) error {
	if fetches.IsClientClosed() {
		return fmt.Errorf("poll kafka topics %s: %w", strings.Join(k.cfg.Topics, ", "), kgo.ErrClientClosed)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var first error
	fetches.EachError(func(topic string, partition int32, err error) {
		var loss *kgo.ErrDataLoss
		switch {
		case errors.As(err, &loss):
			k.logger.Warn("kafka data loss detected; consuming resumed at the reset offset",
				"topic", topic, "partition", partition, "offset", loss.ConsumedTo, "reset_to", loss.ResetTo)
		case first != nil:
		case topic == "":
			first = fmt.Errorf("poll kafka group %q: %w", k.cfg.Group, err)
		default:
			first = fmt.Errorf("poll kafka topic %s partition %d: %w", topic, partition, err)
		}
	})
	return first
}

// Commit commits offsets (the next offset to read per partition) for the
// group and waits for the broker to confirm. Partitions no longer assigned to
// this member are skipped, so a slow commit cannot rewind the offsets of the
// member that owns them now.
func (k *Kafka) Commit(ctx context.Context, offsets schemas.Offsets) error {
	if len(offsets) == 0 {
		return nil
	}
	commit := make(map[string]map[int32]kgo.EpochOffset, len(offsets))
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return fmt.Errorf("commit kafka offsets for group %q: source is closed", k.cfg.Group)
	}
	for tp, next := range offsets {
		if st := k.parts[tp]; st == nil || !st.owned {
			k.logger.Info("skipping commit for a partition not assigned to this member",
				"topic", tp.Topic, "partition", tp.Partition, "offset", next)
			continue
		}
		if commit[tp.Topic] == nil {
			commit[tp.Topic] = make(map[int32]kgo.EpochOffset)
		}
		commit[tp.Topic][tp.Partition] = kgo.EpochOffset{Epoch: -1, Offset: next}
	}
	k.mu.Unlock()
	if len(commit) == 0 {
		return nil
	}

	var cerr error
	k.cl.CommitOffsetsSync(ctx, commit, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = fmt.Errorf("commit kafka offsets for group %q: %w", k.cfg.Group, err)
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil && cerr == nil {
					cerr = fmt.Errorf("commit offset %d of topic %s partition %d for group %q: %w",
						commit[t.Topic][p.Partition].Offset, t.Topic, p.Partition, k.cfg.Group, err)
				}
			}
		}
	})
	return cerr
}

// Close leaves the group, so its partitions are reassigned at once rather
// than after the session timeout, and closes the client. It does not commit:
// commit what is durable first. Leaving is bounded by a timeout when the
// brokers do not answer; a failed leave is logged, since the group then
// evicts the member after SessionTimeout anyway. Close is idempotent.
func (k *Kafka) Close() {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return
	}
	k.closed = true
	k.mu.Unlock()

	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	err := k.cl.LeaveGroupContext(ctx)
	k.cl.Close()
	if err != nil {
		k.logger.Warn("kafka source closed without leaving its group; its partitions wait for the session timeout",
			"group", k.cfg.Group, "session_timeout", k.cfg.SessionTimeout, "duration", time.Since(began), "err", err)
		return
	}
	k.logger.Info("kafka source closed", "group", k.cfg.Group, "duration", time.Since(began))
}

func (k *Kafka) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	k.setOwned(assigned, true, slog.LevelInfo, "partition assigned")
}

func (k *Kafka) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	k.setOwned(revoked, false, slog.LevelInfo, "partition revoked")
}

func (k *Kafka) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	k.setOwned(lost, false, slog.LevelWarn, "partition lost")
}

func (k *Kafka) setOwned(tps map[string][]int32, owned bool, level slog.Level, msg string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, topic := range slices.Sorted(maps.Keys(tps)) {
		ps := slices.Sorted(slices.Values(tps[topic]))
		for _, p := range ps {
			tp := schemas.TopicPartition{Topic: topic, Partition: p}
			st := k.parts[tp]
			if st == nil {
				st = &partitionState{}
				k.parts[tp] = st
			}
			st.owned = owned
			k.logger.Log(context.Background(), level, msg, "group", k.cfg.Group, "topic", topic, "partition", p)
		}
	}
}

// kgoLogger sends franz-go's warnings and errors to slog.
type kgoLogger struct{ l *slog.Logger }

func (kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (g kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	switch level {
	case kgo.LogLevelError:
		g.l.Error(msg, keyvals...)
	case kgo.LogLevelWarn:
		g.l.Warn(msg, keyvals...)
	case kgo.LogLevelInfo:
		g.l.Info(msg, keyvals...)
	default:
		g.l.Debug(msg, keyvals...)
	}
}
