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
	"math"
	"net"
	"os"
	"regexp"
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
	// committed offset (or, with SetResume, the offset the sink resumes it
	// at) is already at the end, count as done from the start. "Done" is
	// judged from where a partition actually resumes: when the sink's
	// offsets (known only once the partition is assigned) reach the end,
	// the partition is done even if the group has no committed offset (its
	// offsets were deleted or expired), and a Poll waiting for records is
	// woken to return io.EOF; AlreadyWritten counts the records skipped.
	// Used by the demo, tests and one-off batch replays. It assumes this
	// source is the group's only member for the whole run: a partition
	// assigned to another member, or revoked and never assigned back, is
	// never done, so Poll never returns io.EOF.
	StopAtEnd bool `yaml:"stop_at_end"`
	// ClientID names this client in broker logs and quotas.
	ClientID string `yaml:"client_id"`
	// MaxPollRecords caps the records one Poll returns.
	MaxPollRecords int `yaml:"max_poll_records"`
	// SessionTimeout is how long the group waits for a heartbeat before it
	// evicts this member (Kafka's session.timeout.ms). The broker bounds it
	// with group.min/max.session.timeout.ms. A member that died without
	// leaving (SIGKILL, OOM, a lost node) holds its partitions this long,
	// unless it has an InstanceID and restarts with it.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// InstanceID makes this member static (Kafka's group.instance.id,
	// KIP-345): a process that restarts with the same ID after a crash
	// takes its old place in the group at once, instead of waiting
	// SessionTimeout for the dead member to be evicted. It must be stable
	// across restarts of one replica and distinct between replicas: a
	// second process with the same ID fences the first out of the group.
	// Empty (the default) = dynamic membership. In Kubernetes set it to
	// the pod name (deploy/k8s does, through REPLAY_SOURCE_KAFKA_INSTANCE_ID).
	// Up to 249 of [a-zA-Z0-9._-]. A graceful stop still leaves the group,
	// so its partitions move to the other replicas at once.
	InstanceID string `yaml:"instance_id"`
	// LagInterval is how often the consumer lag (end offsets minus the
	// group's committed offsets, for /metrics and /v1/status) is asked of
	// the brokers.
	LagInterval time.Duration `yaml:"lag_interval"`
	// RebalanceTimeout is how long the group waits for members to rejoin
	// during a rebalance (Kafka's rebalance.timeout.ms).
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout"`
	// FetchErrorTimeout is how long a partition may fail every fetch before
	// Poll gives up with its last error. Shorter failures (a leader moving, a
	// broker restarting, a coordinator loading) are logged and retried by
	// the client; authorization failures end the run at once.
	FetchErrorTimeout time.Duration `yaml:"fetch_error_timeout"`
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
		Brokers:           []string{"127.0.0.1:9092"},
		Topics:            []string{"captures"},
		Group:             "replay",
		Start:             StartEarliest,
		ClientID:          "replay",
		MaxPollRecords:    1000,
		SessionTimeout:    45 * time.Second,
		LagInterval:       5 * time.Second,
		FetchErrorTimeout: 2 * time.Minute,
		RebalanceTimeout:  time.Minute,
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
		if err := checkTopic(t); err != nil {
			add("topics[%d]: %v", i, err)
		}
	}
	if c.Group == "" {
		add("group: required; name the consumer group, e.g. %q", "replay")
	} else if err := schemas.CheckName(c.Group); err != nil {
		add("group: %v", err)
	}
	if c.Start != StartEarliest && c.Start != StartLatest {
		add("start: must be %s or %s, got %q", StartEarliest, StartLatest, c.Start)
	}
	if c.MaxPollRecords <= 0 {
		add("max_poll_records: must be positive, got %d", c.MaxPollRecords)
	}
	if c.FetchErrorTimeout <= 0 {
		add("fetch_error_timeout: must be positive, got %s; the default is 2m", c.FetchErrorTimeout)
	}
	if c.SessionTimeout <= 0 {
		add("session_timeout: must be positive, got %s; the default is 45s", c.SessionTimeout)
	}
	if c.RebalanceTimeout <= 0 {
		add("rebalance_timeout: must be positive, got %s; the default is 1m", c.RebalanceTimeout)
	}
	if c.InstanceID != "" && !validInstanceID(c.InstanceID) {
		add("instance_id: %q is not a valid group instance id; use up to 249 of a-z A-Z 0-9 . _ - (e.g. the pod name), or leave it empty for dynamic membership", c.InstanceID)
	}
	if c.LagInterval <= 0 {
		add("lag_interval: must be positive, got %s; the default is 5s", c.LagInterval)
	}
	errs = append(errs, c.SASL.validate()...)
	_, tlsErrs := c.TLS.load()
	return append(errs, tlsErrs...)
}

// topicRE is Kafka's rule for topic names (kafka.common.internals.Topic):
// 1 to 249 of these characters, and neither "." nor "..". A topic name
// becomes part of the replay.offset.<topic>.<partition> and
// replay.owner.<topic>.<partition> snapshot properties; within this rule
// the partition is whatever follows the last dot, so the keys parse back.
var topicRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)

// checkTopic reports why t cannot name a Kafka topic.
func checkTopic(t string) error {
	switch {
	case strings.TrimSpace(t) == "":
		return errors.New("must not be empty")
	case t == "." || t == ".." || !topicRE.MatchString(t):
		return fmt.Errorf("%q is not a Kafka topic name: use 1 to 249 letters, digits, '.', '_' or '-', and not \".\" or \"..\"", t)
	}

	return nil
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
		// A TLS setting with TLS off would be ignored: the operator meant
		// TLS, and the connection would be plaintext.
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"ca_file", t.CAFile != ""}, {"cert_file", t.CertFile != ""}, {"key_file", t.KeyFile != ""},
			{"server_name", t.ServerName != ""}, {"insecure_skip_verify", t.InsecureSkipVerify},
		} {
			if f.set {
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
// Where a partition starts is the sink's to say (SetResume): on every
// assignment the offsets the sink returns win over the group's committed
// offsets, which are only a convenience for lag monitoring.
//
// Rebalances are not blocked while polled records are in flight
// (kgo.BlockRebalanceOnPoll): the pipeline holds records across many polls
// and commits long after, which would stall a rebalance past its timeout.
// Instead the source calls the function given to SetRevoke before it lets go
// of revoked or lost partitions, so the pipeline can flush and commit them,
// and Commit skips partitions this member no longer owns; what was still in
// flight for them is read again by their new owner, and the sinks' offsets
// keep the tables exactly-once. Isolation is read-uncommitted, so records of
// aborted transactions are delivered like any other.
//
// Poll must be called from one goroutine; Commit and Close may be called from
// another. The SetResume and SetRevoke functions run on the client's group
// goroutine.
type Kafka struct {
	cfg    KafkaConfig
	logger *slog.Logger
	cl     *kgo.Client

	// ready is closed by the first Poll. Offsets for an assignment are
	// chosen only after it (see adjustOffsets), when SetResume has been
	// called and the stop-at-end snapshot taken.
	ready     chan struct{}
	readyOnce sync.Once

	mu     sync.Mutex
	parts  map[schemas.TopicPartition]*partitionState
	closed bool
	resume ResumeFunc
	revoke RevokeFunc
	// fatal is set when resuming partitions failed: they must not be read
	// from a wrong place, so every Poll returns it.
	fatal error
	// remaining counts the partitions not yet done (StopAtEnd only).
	remaining int
	// wake cancels the context of the PollRecords call in progress, if
	// any: adjustOffsets calls it when an assignment leaves no partition to
	// read, so that a Poll blocked on paused partitions returns io.EOF.
	wake context.CancelFunc
	// alreadyWritten counts the records of the snapshot (StopAtEnd) or
	// since the group's committed offsets that the sink's resume offsets
	// skipped: the tables already held them.
	alreadyWritten int64

	// pending is a poll error held back while its batch's records were
	// returned. Only Poll touches it.
	pending error
	// failing holds, per partition (topic "" for the group), when its
	// current run of fetch errors began. Only Poll touches it.
	failing map[schemas.TopicPartition]*failure

	lag lagTracker // end offsets, positions and commits, for Lag
	mon monitor    // refreshes the lag, logs waits (kafka_monitor.go)
}

// failure is one partition's current run of fetch errors.
type failure struct{ first, last time.Time }

// ResumeFunc returns, for newly assigned partitions, the offset each should
// start at; partitions it leaves out start at the group's committed offset,
// or at KafkaConfig.Start. It is the sink's Resume.
type ResumeFunc func(ctx context.Context, tps []schemas.TopicPartition) (schemas.Offsets, error)

// RevokeFunc is called with partitions this member is about to lose, before
// the source lets go of them, so the caller can flush and commit them.
type RevokeFunc func(ctx context.Context, tps []schemas.TopicPartition)

// partitionState is what the source knows of one partition. Keeping state
// per partition is what lets resume-from-sink set start offsets on
// assignment (kgo.AdjustFetchOffsetsFn) without reshaping the source.
type partitionState struct {
	owned    bool // assigned to this member now: Commit accepts its offsets
	revoking bool // being revoked: Poll drops its records

	// StopAtEnd only.
	end  int64 // end offset captured at start: the snapshot stops below it
	from int64 // where the group's offset (or Start) would begin it
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
		ready:  make(chan struct{}),
		mon:    monitor{assigned: make(chan struct{}, 1)},
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
		// Heartbeat well within the session: a third of it, at most kgo's
		// default of 3s.
		kgo.HeartbeatInterval(min(3*time.Second, cfg.SessionTimeout/3)),
		kgo.RebalanceTimeout(cfg.RebalanceTimeout),
		// Control records (transaction markers) are kept so that every
		// offset below the end is seen; Poll drops them. Without them a
		// stop-at-end run whose last offset is a marker would never finish.
		kgo.KeepControlRecords(),
		kgo.OnPartitionsAssigned(k.onAssigned),
		kgo.AdjustFetchOffsetsFn(k.adjustOffsets),
		kgo.OnPartitionsRevoked(k.onRevoked),
		kgo.OnPartitionsLost(k.onLost),
	}
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
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
	k.startMonitor()
	logger.Info("kafka source started",
		"brokers", cfg.Brokers, "topics", cfg.Topics, "group", cfg.Group,
		"start", cfg.Start, "stop_at_end", cfg.StopAtEnd, "instance_id", cfg.InstanceID)
	return k, nil
}

// ProbeKafka makes the checks NewKafka makes before it consumes (cfg is
// valid, a broker answers, every topic exists) with a client that joins no
// group, so that a run can be refused before it creates anything. NewKafka
// makes them again.
func ProbeKafka(ctx context.Context, cfg KafkaConfig) error {
	if errs := cfg.Validate(); len(errs) > 0 {
		return fmt.Errorf("invalid kafka source config: %w", errors.Join(errs...))
	}
	tc, _ := cfg.TLS.load()
	opts := []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.ClientID(cfg.ClientID)}
	if m := cfg.SASL.mechanism(); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("create kafka client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, startupTimeout)
	defer cancel()
	_, err = checkTopics(ctx, cl, cfg)
	return err
}

// checkTopics checks that a broker answers and that every topic of cfg
// exists, and returns the topics' end offsets.
func checkTopics(ctx context.Context, cl *kgo.Client, cfg KafkaConfig) (kadm.ListedOffsets, error) {
	brokers := strings.Join(cfg.Brokers, ", ")
	if err := cl.Ping(ctx); err != nil {
		hint := "check source.kafka.brokers"
		if cfg.SASL.Mechanism != "" || cfg.TLS.Enabled {
			hint = "check source.kafka.brokers, source.kafka.sasl and source.kafka.tls"
		}
		return nil, fmt.Errorf("cannot reach kafka brokers %s: %w; %s", brokers, err, hint)
	}

	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, cfg.Topics...)
	if err != nil {
		return nil, fmt.Errorf("list end offsets of topics %s on %s: %w", strings.Join(cfg.Topics, ", "), brokers, err)
	}
	var missing []string
	for _, t := range cfg.Topics {
		ps := ends[t]
		if o, ok := ps[-1]; len(ps) == 0 || (ok && errors.Is(o.Err, kerr.UnknownTopicOrPartition)) {
			missing = append(missing, fmt.Sprintf("%q", t))
		}
	}
	switch len(missing) {
	case 0:
	case 1:
		return nil, fmt.Errorf("kafka topic %s does not exist on %s; create it or fix source.kafka.topics", missing[0], brokers)
	default:
		return nil, fmt.Errorf("kafka topics %s do not exist on %s; create them or fix source.kafka.topics", strings.Join(missing, ", "), brokers)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("list end offsets of topics %s: %w", strings.Join(cfg.Topics, ", "), err)
	}
	return ends, nil
}

// start checks the cluster and, with StopAtEnd, captures the snapshot.
func (k *Kafka) start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startupTimeout)
	defer cancel()
	ends, err := checkTopics(ctx, k.cl, k.cfg)
	if err != nil {
		return err
	}
	if !k.cfg.StopAtEnd {
		return nil
	}
	adm := kadm.NewClient(k.cl)

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
		st.end, st.from, st.done = e.Offset, from, from >= e.Offset
		if st.done {
			done[e.Topic] = append(done[e.Topic], e.Partition)
		} else {
			k.remaining++
			records += e.Offset - from
		}
	})
	// Where the tables say a partition resumes is known only once it is
	// assigned (adjustOffsets), which corrects these counts.
	k.logger.Info("kafka source will stop at the end offsets seen at start",
		"group", k.cfg.Group, "partitions", len(k.parts), "partitions_to_read", k.remaining,
		"records_to_read", records, "from", "group offsets or source.kafka.start; the tables' offsets apply on assignment")
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
// Once the SetResume function failed, every Poll returns its error. After
// Close, Poll returns an error wrapping kgo.ErrClientClosed.
func (k *Kafka) Poll(ctx context.Context) ([]schemas.Record, error) {
	k.readyOnce.Do(func() { close(k.ready) })
	if err := k.pending; err != nil {
		k.pending = nil
		return nil, err
	}
	for {
		k.mu.Lock()
		closed, fatal, remaining := k.closed, k.fatal, k.remaining
		k.mu.Unlock()
		switch {
		case closed:
			return nil, fmt.Errorf("poll kafka topics %s: %w", strings.Join(k.cfg.Topics, ", "), kgo.ErrClientClosed)
		case fatal != nil:
			return nil, fatal
		case k.cfg.StopAtEnd && remaining == 0:
			return nil, io.EOF
		}
		fetches, woken := k.pollRecords(ctx)
		if woken {
			// An assignment finished the snapshot while the poll waited.
			// What the poll returned anyway is dropped by records unless
			// an assignment since made its partition wanted again.
			if recs := k.records(fetches); len(recs) > 0 {
				return recs, nil
			}
			continue
		}
		k.lag.fetched(fetches)
		recs := k.records(fetches)
		k.mu.Lock()
		fatal = k.fatal
		k.mu.Unlock()
		if fatal != nil {
			// Records of other partitions are read again after the restart.
			return nil, fatal
		}
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

// pollRecords polls the client. It returns woken when the poll was cut
// short by wake (an assignment left nothing to read) rather than by ctx:
// the caller must look at remaining again, and take only the records of
// the fetches (their error is the wake's).
func (k *Kafka) pollRecords(ctx context.Context) (fetches kgo.Fetches, woken bool) {
	if !k.cfg.StopAtEnd {
		return k.cl.PollRecords(ctx, k.cfg.MaxPollRecords), false
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	k.mu.Lock()
	if k.remaining == 0 {
		k.mu.Unlock()
		return nil, true
	}
	k.wake = cancel
	k.mu.Unlock()
	fetches = k.cl.PollRecords(pctx, k.cfg.MaxPollRecords)
	k.mu.Lock()
	k.wake = nil
	k.mu.Unlock()
	if pctx.Err() != nil && ctx.Err() == nil {
		return fetches, true
	}
	return fetches, false
}

// AlreadyWritten returns how many records this source skipped because the
// sink's resume offsets (SetResume) were past where the group's committed
// offset, or KafkaConfig.Start, would have begun: records the tables
// already held. With StopAtEnd it counts only records below the end
// offsets captured at start; without, only partitions the group had
// committed offsets for.
func (k *Kafka) AlreadyWritten() int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.alreadyWritten
}

// records converts a poll's records, dropping control records, records of
// partitions being revoked or no longer owned and, with StopAtEnd, records
// past the snapshot; it marks partitions done.
func (k *Kafka) records(fetches kgo.Fetches) []schemas.Record {
	recs := make([]schemas.Record, 0, fetches.NumRecords())
	var finished map[string][]int32
	k.mu.Lock()
	fetches.EachRecord(func(r *kgo.Record) {
		st := k.parts[schemas.TopicPartition{Topic: r.Topic, Partition: r.Partition}]
		// The client drops what it buffered for a partition before it
		// revokes it, but a poll that took the records out of its buffers
		// just before can return them after: they belong to the next owner.
		if st == nil || !st.owned || st.revoking {
			return
		}
		if k.cfg.StopAtEnd {
			// A partition created after the start has only the state its
			// assignment made (end 0): all of it is past the end.
			if st.done || r.Offset >= st.end {
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

// fetchError returns the error of a poll that the caller must see, if any.
// The client retries failed fetches on its own, so most errors are
// transient: they are logged when a partition starts failing, and become
// fatal only when the partition has failed every fetch for
// FetchErrorTimeout. Authorization failures are fatal at once. Data loss is
// handled by the client (it resets and resumes) and is logged.
func (k *Kafka) fetchError(ctx context.Context, fetches kgo.Fetches) error {
	if fetches.IsClientClosed() {
		return fmt.Errorf("poll kafka topics %s: %w", strings.Join(k.cfg.Topics, ", "), kgo.ErrClientClosed)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if k.failing == nil {
		k.failing = map[schemas.TopicPartition]*failure{}
	}
	// A partition that delivered records is healthy again.
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if p.Err == nil && len(p.Records) > 0 {
			delete(k.failing, schemas.TopicPartition{Topic: p.Topic, Partition: p.Partition})
		}
	})
	now := time.Now()
	var first error
	fetches.EachError(func(topic string, partition int32, err error) {
		var loss *kgo.ErrDataLoss
		if errors.As(err, &loss) {
			k.logger.Warn("kafka data loss detected; consuming resumed at the reset offset",
				"topic", topic, "partition", partition, "offset", loss.ConsumedTo, "reset_to", loss.ResetTo)
			return
		}
		wrapped := fmt.Errorf("poll kafka topic %s partition %d: %w", topic, partition, err)
		if topic == "" {
			wrapped = fmt.Errorf("poll kafka group %q: %w", k.cfg.Group, err)
		}
		if isAuthError(err) {
			if first == nil {
				first = fmt.Errorf("%w; check source.kafka.sasl and the ACLs of this client", wrapped)
			}
			return
		}
		tp := schemas.TopicPartition{Topic: topic, Partition: partition}
		f, ok := k.failing[tp]
		// Errors further apart than the client's retry backoff are not one run.
		if !ok || now.Sub(f.last) > 30*time.Second {
			k.failing[tp] = &failure{first: now, last: now}
			k.logger.Warn("kafka fetch failed; the client retries", "topic", topic, "partition", partition, "err", err)
			return
		}
		f.last = now
		if now.Sub(f.first) >= k.cfg.FetchErrorTimeout && first == nil {
			first = fmt.Errorf("%w; every fetch has failed for %s (source.kafka.fetch_error_timeout)",
				wrapped, now.Sub(f.first).Round(time.Second))
		}
	})
	return first
}

// isAuthError reports whether err is an authentication or authorization
// failure, which retrying does not fix.
func isAuthError(err error) bool {
	for _, e := range []error{kerr.TopicAuthorizationFailed, kerr.GroupAuthorizationFailed,
		kerr.ClusterAuthorizationFailed, kerr.SaslAuthenticationFailed} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
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

	var (
		cerr    error
		evicted []string // partitions refused because this member left the group
		done    = make(map[string]map[int32]kgo.EpochOffset, len(commit))
	)
	k.cl.CommitOffsetsSync(ctx, commit, func(_ *kgo.Client, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = fmt.Errorf("commit kafka offsets for group %q: %w", k.cfg.Group, err)
			return
		}
		topics := responseTopics(req, resp)
		for i, t := range resp.Topics {
			topic := topics[i]
			for _, p := range t.Partitions {
				at := commit[topic][p.Partition].Offset
				err := kerr.ErrorForCode(p.ErrorCode)
				switch {
				case err == nil:
					if done[topic] == nil {
						done[topic] = make(map[int32]kgo.EpochOffset)
					}
					done[topic][p.Partition] = commit[topic][p.Partition]
				case isNotMemberError(err):
					evicted = append(evicted, fmt.Sprintf("%s/%d@%d", topic, p.Partition, at))
					if errors.Is(err, kerr.FencedInstanceID) && cerr == nil {
						cerr = fmt.Errorf("commit offset %d of topic %s partition %d for group %q: %w; another replica runs with source.kafka.instance_id %q: give every replica its own",
							at, topic, p.Partition, k.cfg.Group, err, k.cfg.InstanceID)
					}
				case cerr == nil:
					cerr = fmt.Errorf("commit offset %d of topic %s partition %d for group %q: %w",
						at, topic, p.Partition, k.cfg.Group, err)
				}
			}
		}
	})
	k.lag.committed(done)
	if len(evicted) > 0 && cerr == nil {
		// The group no longer counts this member (its session expired, or
		// the group rebalanced without it): the partitions are another
		// member's now, and it resumes them from the Iceberg tables, which
		// hold everything this member flushed. The group's offsets are
		// only a convenience for lag monitoring, so this is no failure.
		k.logger.Warn("kafka offsets not committed: this member is no longer in the group; the partitions' next owner resumes from the tables",
			"group", k.cfg.Group, "partitions", strings.Join(evicted, ","))
	}
	return cerr
}

// responseTopics returns the topic name of each of resp.Topics. From
// OffsetCommit v10 on, a response names topics by ID only, so names are
// looked up in the request, which carries both.
func responseTopics(req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse) []string {
	byID := make(map[[16]byte]string, len(req.Topics))
	for _, t := range req.Topics {
		byID[t.TopicID] = t.Topic
	}
	out := make([]string, len(resp.Topics))
	for i, t := range resp.Topics {
		out[i] = t.Topic
		if out[i] == "" {
			out[i] = byID[t.TopicID]
		}
	}
	return out
}

// isNotMemberError reports whether a commit failed because the group does
// not count this member any more: it was evicted, a rebalance went on
// without it, or (static membership) another process took its instance ID.
// A rebalance in progress is not one: the member may keep its partitions,
// and the next flush commits again.
func isNotMemberError(err error) bool {
	return errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) ||
		errors.Is(err, kerr.FencedInstanceID)
}

// Close leaves the group, so its partitions are reassigned at once rather
// than after the session timeout, and closes the client; a static member
// (InstanceID) leaves too. It does not commit: commit what is durable
// first. Leaving is bounded by a timeout when the brokers do not answer; a
// failed leave is logged, since the group then evicts the member after
// SessionTimeout anyway. Close is idempotent.
func (k *Kafka) Close() {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return
	}
	k.closed = true
	k.mu.Unlock()

	k.mon.stop()
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	err := k.leaveGroup(ctx)
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
	k.mon.poke()
}

func (k *Kafka) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	k.letGo(ctx, revoked, slog.LevelInfo, "partition revoked")
}

func (k *Kafka) onLost(ctx context.Context, _ *kgo.Client, lost map[string][]int32) {
	k.letGo(ctx, lost, slog.LevelWarn, "partition lost")
}

// SetResume sets the function that says where newly assigned partitions
// start: on every assignment, after the group's committed offsets are
// fetched and before fetching begins, the source calls fn with the
// partitions, starts each at the offset fn returns for it, and leaves the
// others at the group's committed offset or KafkaConfig.Start. It logs the
// start of every partition and where it came from (iceberg, group or start).
//
// If fn fails, the partitions are not fetched at all (rather than from a
// wrong place) and every later Poll returns the error: close the source and
// exit, a restart resumes correctly. An error while the group is already
// rebalancing again is not fatal; fn is called again on the next assignment.
//
// Call it before the first Poll; assignments made before then wait for it.
func (k *Kafka) SetResume(fn ResumeFunc) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.resume = fn
}

// SetRevoke sets the function called with partitions this member is losing
// (revoked by a rebalance, or lost with the group session), before the
// source lets go of them. While fn runs, Poll returns no record of those
// partitions and Commit still commits their offsets; once it returns, Commit
// skips them and Poll never returns a record of theirs fetched before,
// whatever the client had buffered. Records a Poll returned before fn was
// called are the caller's to account for. fn must not call Close.
//
// Call it before the first Poll.
func (k *Kafka) SetRevoke(fn RevokeFunc) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.revoke = fn
}

// letGo runs the revoke function on partitions this member is losing, then
// marks them not owned.
func (k *Kafka) letGo(ctx context.Context, tps map[string][]int32, level slog.Level, msg string) {
	list := sortedTPs(tps)
	if len(list) == 0 {
		return // kgo calls onRevoked at the end of every session
	}
	k.mu.Lock()
	for _, tp := range list {
		k.state(tp).revoking = true
	}
	fn := k.revoke
	k.mu.Unlock()
	if fn != nil {
		began := time.Now()
		fn(ctx, list)
		k.logger.Log(ctx, level, "partitions handed back", "group", k.cfg.Group, "partitions", len(list), "duration", time.Since(began))
	}
	k.setOwned(tps, false, level, msg)
	k.lag.forget(list)
}

// adjustOffsets is the client's AdjustFetchOffsetsFn: it runs after the
// group's committed offsets of newly assigned partitions are fetched and
// before fetching starts, and moves each partition to the offset the resume
// function returns for it.
func (k *Kafka) adjustOffsets(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	select {
	case <-k.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	k.mu.Lock()
	resume, fatal := k.resume, k.fatal
	k.mu.Unlock()
	if fatal != nil {
		return nil, fatal
	}
	var tps []schemas.TopicPartition
	for topic, ps := range offsets {
		for p := range ps {
			tps = append(tps, schemas.TopicPartition{Topic: topic, Partition: p})
		}
	}
	slices.SortFunc(tps, compareTPs)

	var resumed schemas.Offsets
	if resume != nil && len(tps) > 0 {
		var err error
		resumed, err = resume(ctx, tps)
		if err != nil && ctx.Err() != nil {
			// The group is rebalancing again: the client drops this
			// assignment and calls us anew with the next.
			return nil, err
		}
		if err != nil {
			err = fmt.Errorf("resume %d partitions of group %q from the sink: %w", len(tps), k.cfg.Group, err)
			k.mu.Lock()
			if k.fatal == nil {
				k.fatal = err
			}
			k.mu.Unlock()
			return nil, err
		}
	}

	var pause, unpause map[string][]int32
	k.mu.Lock()
	for _, tp := range tps {
		o := offsets[tp.Topic][tp.Partition]
		attrs := []any{"group", k.cfg.Group, "topic", tp.Topic, "partition", tp.Partition}
		at, fromSink := resumed[tp]
		st := k.parts[tp]
		if fromSink {
			// The records between where the group (or Start) would have
			// begun the partition and where the tables resume it are in
			// the tables already.
			base, limit := o.EpochOffset().Offset, int64(math.MaxInt64)
			if k.cfg.StopAtEnd && st != nil {
				base, limit = st.from, st.end
			}
			if skipped := min(at, limit) - base; base >= 0 && skipped > 0 {
				k.alreadyWritten += skipped
				attrs = append(attrs, "already_written", skipped)
			}
		}
		switch {
		case fromSink:
			// No epoch: the offset comes from elsewhere than this
			// partition's log, so the client must not check it for data
			// loss against the leader epoch.
			o = kgo.NewOffset().At(at).WithEpoch(-1)
			offsets[tp.Topic][tp.Partition] = o
			attrs = append(attrs, "offset", at, "from", "iceberg")
		case o.EpochOffset().Offset >= 0:
			attrs = append(attrs, "offset", o.EpochOffset().Offset, "from", "group")
		default:
			attrs = append(attrs, "offset", k.cfg.Start, "from", "start")
		}
		k.logger.Info("partition starts", attrs...)

		// With StopAtEnd, a partition is done when it starts at or past
		// the end captured at start. Such a partition never delivers a
		// record, so records cannot mark it done: only this can.
		if k.cfg.StopAtEnd && fromSink && st != nil {
			switch done := at >= st.end; {
			case done && !st.done:
				st.done = true
				k.remaining--
				pause = addTP(pause, tp)
			case !done && st.done:
				st.done = false
				k.remaining++
				unpause = addTP(unpause, tp)
			}
		}
	}
	wake := k.wake
	if k.remaining > 0 || !k.cfg.StopAtEnd {
		wake = nil
	}
	k.mu.Unlock()
	if pause != nil {
		k.cl.PauseFetchPartitions(pause)
	}
	if wake != nil {
		// Every partition is paused now: a Poll waiting for records
		// would wait forever.
		k.logger.Info("every partition starts at or past its end offset; stopping", "group", k.cfg.Group)
		wake()
	}
	if unpause != nil {
		k.cl.ResumeFetchPartitions(unpause)
	}
	return offsets, nil
}

func addTP(m map[string][]int32, tp schemas.TopicPartition) map[string][]int32 {
	if m == nil {
		m = make(map[string][]int32)
	}
	m[tp.Topic] = append(m[tp.Topic], tp.Partition)
	return m
}

func sortedTPs(tps map[string][]int32) []schemas.TopicPartition {
	var out []schemas.TopicPartition
	for topic, ps := range tps {
		for _, p := range ps {
			out = append(out, schemas.TopicPartition{Topic: topic, Partition: p})
		}
	}
	slices.SortFunc(out, compareTPs)
	return out
}

func compareTPs(a, b schemas.TopicPartition) int {
	if c := strings.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return int(a.Partition) - int(b.Partition)
}

// state returns the state of tp, creating it. k.mu is held.
func (k *Kafka) state(tp schemas.TopicPartition) *partitionState {
	st := k.parts[tp]
	if st == nil {
		st = &partitionState{}
		k.parts[tp] = st
	}
	return st
}

func (k *Kafka) setOwned(tps map[string][]int32, owned bool, level slog.Level, msg string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, topic := range slices.Sorted(maps.Keys(tps)) {
		ps := slices.Sorted(slices.Values(tps[topic]))
		for _, p := range ps {
			st := k.state(schemas.TopicPartition{Topic: topic, Partition: p})
			st.owned, st.revoking = owned, false
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
