package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/conc"
	"github.com/sourcegraph/conc/panics"
	"github.com/sourcegraph/conc/pool"
	"golang.org/x/time/rate"

	"github.com/replaykit/replay/schemas"
)

// Pipeline replays the records of a Source against the target and hands
// both sides to a Sink. Create it with New, run it once with Run.
type Pipeline struct {
	cfg        Config
	src        Source
	sink       Sink
	log        *slog.Logger
	decodeOpts schemas.DecodeOptions
	selector   *selector
	redactor   redactor
	replayer   *replayer
	limiter    *rate.Limiter

	stats    stats
	inFlight atomic.Int64
	started  atomic.Bool
}

// New validates cfg and builds a pipeline from src to sink. A nil logger
// discards logs.
func New(cfg Config, src Source, sink Sink, logger *slog.Logger) (*Pipeline, error) {
	if src == nil || sink == nil {
		return nil, errors.New("new pipeline: source and sink must not be nil")
	}
	c, errs := cfg.compile()
	if cfg.RunID == "" {
		errs = append(errs, &FieldError{Field: "run_id", Problem: "must not be empty; the caller sets it before New"})
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid pipeline configuration: %w", errors.Join(errs...))
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Pipeline{
		cfg:        cfg,
		src:        src,
		sink:       sink,
		log:        logger,
		decodeOpts: schemas.DecodeOptions{MaxBodyBytes: cfg.Decode.MaxBodyBytes},
		selector:   c.selector,
		redactor:   c.redactor,
		replayer:   newReplayer(cfg, c),
		limiter:    rate.NewLimiter(rateLimit(cfg.Replay.Rate), c.burst),
	}, nil
}

func rateLimit(rps float64) rate.Limit {
	if rps == 0 {
		return rate.Inf
	}
	return rate.Limit(rps)
}

// SetRate changes the replay rate (requests per second, 0 = unlimited)
// while the pipeline runs; the burst stays as configured.
func (p *Pipeline) SetRate(rps float64) error {
	if rps < 0 || math.IsNaN(rps) || math.IsInf(rps, 0) {
		return fmt.Errorf("set replay rate: must be a number ≥ 0 (0 = unlimited), got %v", rps)
	}
	p.limiter.SetLimit(rateLimit(rps))
	p.log.Info("replay rate changed", "run_id", p.cfg.RunID, "rate", rps)
	return nil
}

// run is the state of one Run shared by its goroutines.
type run struct {
	slots      chan struct{} // in-flight budget: a record holds one from poll until the sink took it
	seq        *sequencer
	workers    *pool.Pool
	stopIntake context.CancelFunc
	stopWork   context.CancelFunc
	abandoned  atomic.Int64 // replays cancelled at shutdown, left for the next run

	mu    sync.Mutex
	fatal []error // worker panics

	// Owned by the sink goroutine.
	pending     TableRows       // rows added since the last flush
	uncommitted schemas.Offsets // flushed but not yet committed to the source
}

func (r *run) fail(err error) {
	r.mu.Lock()
	r.fatal = append(r.fatal, err)
	r.mu.Unlock()
	r.stopIntake()
}

func (r *run) err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(r.fatal...)
}

// Run replays until ctx ends or the source is exhausted, then shuts down in
// order: stop polling, let in-flight replays finish (bounded by
// ShutdownGrace), hand their results to the sink, flush, commit. It returns
// nil after a clean shutdown, whether ctx ended or the source returned
// io.EOF. It returns an error when the source, the sink or a worker failed;
// results flushed before the failure are still committed. Run may be called
// once.
func (p *Pipeline) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return errors.New("run pipeline: Run may be called only once")
	}
	defer p.replayer.close()
	rc := p.cfg.Replay
	p.log.Info("replay pipeline started", "run_id", p.cfg.RunID, "target", rc.Target, "workers", rc.Workers,
		"rate", rc.Rate, "burst", p.limiter.Burst(), "max_in_flight", p.cfg.Limits.MaxInFlight)

	intakeCtx, stopIntake := context.WithCancel(ctx)
	defer stopIntake()
	// In-flight work outlives ctx: it ends on its own request timeout, or
	// when the grace period after ctx ends has elapsed, or on a sink failure.
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()

	r := &run{
		slots:       make(chan struct{}, p.cfg.Limits.MaxInFlight),
		seq:         newSequencer(p.cfg.Limits.MaxInFlight),
		workers:     pool.New().WithMaxGoroutines(rc.Workers),
		stopIntake:  stopIntake,
		stopWork:    stopWork,
		uncommitted: schemas.Offsets{},
	}

	var ctxDoneAt atomic.Int64 // unix nanos, to log how long intake took to stop
	stopTimingCtx := context.AfterFunc(ctx, func() { ctxDoneAt.Store(time.Now().UnixNano()) })
	defer stopTimingCtx()

	var bg conc.WaitGroup
	var sinkErr error
	bg.Go(func() {
		if rec := panics.Try(func() { sinkErr = p.sinkLoop(ctx, workCtx, r) }); rec != nil {
			sinkErr = fmt.Errorf("sink goroutine panicked: %w", rec.AsError())
			stopIntake()
			stopWork()
		}
	})
	drained := make(chan struct{})
	bg.Go(func() { p.graceWatchdog(ctx, drained, stopWork) })

	var intakeErr error
	if rec := panics.Try(func() { intakeErr = p.intake(intakeCtx, workCtx, r) }); rec != nil {
		intakeErr = fmt.Errorf("intake panicked: %w", rec.AsError())
	}
	stopIntake()
	stopped := time.Now()
	var reason string
	switch {
	case errors.Is(intakeErr, io.EOF):
		reason, intakeErr = "end of input", nil
	case intakeErr != nil:
		reason = "source error"
	case ctx.Err() != nil:
		reason = "context done"
	default:
		reason = "pipeline error"
	}
	var intakeStop time.Duration
	if at := ctxDoneAt.Load(); at != 0 {
		intakeStop = stopped.Sub(time.Unix(0, at))
	}
	p.log.Info("shutdown: intake stopped", "run_id", p.cfg.RunID, "reason", reason, "duration", intakeStop,
		"in_flight", p.inFlight.Load())

	r.workers.Wait() // tasks recover their own panics, see work
	close(drained)
	heldBack := r.seq.close()
	p.log.Info("shutdown: in-flight replays drained", "run_id", p.cfg.RunID, "duration", time.Since(stopped),
		"abandoned", r.abandoned.Load(), "held_back", heldBack)

	bg.Wait() // both goroutines recover their own panics
	p.log.Info("replay pipeline stopped", "run_id", p.cfg.RunID, "shutdown_duration", time.Since(stopped))
	return errors.Join(intakeErr, r.err(), sinkErr)
}

// graceWatchdog cancels in-flight work when ShutdownGrace has elapsed after
// ctx ended and the workers have not drained yet.
func (p *Pipeline) graceWatchdog(ctx context.Context, drained <-chan struct{}, stopWork context.CancelFunc) {
	select {
	case <-ctx.Done():
	case <-drained:
		return
	}
	t := time.NewTimer(p.cfg.ShutdownGrace)
	defer t.Stop()
	select {
	case <-t.C:
		p.log.Warn("shutdown: grace period elapsed; cancelling in-flight replays, they will be replayed after a restart",
			"run_id", p.cfg.RunID, "shutdown_grace", p.cfg.ShutdownGrace, "in_flight", p.inFlight.Load())
		stopWork()
	case <-drained:
	}
}

// intake polls the source and admits records until ctx ends or the source
// fails or ends (io.EOF).
func (p *Pipeline) intake(ctx, workCtx context.Context, r *run) error {
	for {
		recs, err := p.src.Poll(ctx)
		p.stats.consumed.Add(int64(len(recs)))
		for i := range recs {
			if !p.admit(ctx, workCtx, r, &recs[i]) {
				return nil
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			return io.EOF
		case ctx.Err() != nil:
			return nil
		default:
			return fmt.Errorf("poll source: %w", err)
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// admit takes an in-flight slot for rec, decodes it and either completes it
// at once (dead letter, not selected) or, after the pacer, submits its
// replay to the pool. It returns false when ctx ended first; rec is then
// not registered, so no offset at or after it is committed.
func (p *Pipeline) admit(ctx, workCtx context.Context, r *run, rec *schemas.Record) bool {
	if ctx.Err() != nil {
		return false
	}
	select {
	case r.slots <- struct{}{}:
		p.inFlight.Add(1)
	case <-ctx.Done():
		return false
	}

	x, err := schemas.Decode(rec.Value, rec.Coordinates, p.decodeOpts)
	if err != nil {
		p.stats.deadLettered.Add(1)
		r.seq.complete(r.seq.register(rec.TP()), &schemas.Result{Source: rec.Coordinates, DeadLetter: p.deadLetter(rec, err)})
		return true
	}
	p.stats.decoded.Add(1)
	if x.CapturedAt.IsZero() {
		x.CapturedAt = recordTime(rec, time.Now())
	}
	res := &schemas.Result{
		Source:     rec.Coordinates,
		Production: &schemas.ProductionRow{RunID: p.cfg.RunID, Exchange: p.redactor.exchange(x)},
	}
	if !p.selector.selected(x) {
		p.stats.filtered.Add(1)
		r.seq.complete(r.seq.register(rec.TP()), res)
		return true
	}

	if err := p.limiter.Wait(ctx); err != nil {
		// Either ctx ended, or its deadline comes before the next token.
		<-ctx.Done()
		<-r.slots
		p.inFlight.Add(-1)
		return false
	}
	t := r.seq.register(rec.TP())
	r.workers.Go(func() { p.work(workCtx, r, t, x, res) })
	return true
}

// work replays one exchange and completes its result. A panic fails the
// run; the record is then never completed, so nothing at or after its
// offset is committed.
func (p *Pipeline) work(ctx context.Context, r *run, t *ticket, x *schemas.Exchange, res *schemas.Result) {
	rec := panics.Try(func() {
		row := p.replayer.replay(ctx, x)
		if row == nil {
			r.abandoned.Add(1)
			return
		}
		p.stats.replayed.Add(1)
		if row.ErrorKind != "" {
			p.stats.replayError(row.ErrorKind)
		}
		res.Replay = row
		r.seq.complete(t, res)
	})
	if rec != nil {
		r.fail(fmt.Errorf("replay worker panicked on %s: %w", x.Source, rec.AsError()))
	}
}

func (p *Pipeline) deadLetter(rec *schemas.Record, err error) *schemas.DeadLetterRow {
	reason := "decode_error"
	var de *schemas.DecodeError
	if errors.As(err, &de) {
		reason = de.Reason
	}
	now := time.Now()
	return &schemas.DeadLetterRow{
		RunID:         p.cfg.RunID,
		CorrelationID: schemas.DeriveCorrelationID(rec.Coordinates),
		CapturedAt:    recordTime(rec, now),
		ReceivedAt:    now.UTC(),
		Source:        rec.Coordinates,
		Key:           rec.Key,
		Raw:           rec.Value,
		Reason:        reason,
		Error:         err.Error(),
	}
}

// recordTime is the record's timestamp, or now when the source has none.
func recordTime(rec *schemas.Record, now time.Time) time.Time {
	if rec.Timestamp.IsZero() {
		return now.UTC()
	}
	return rec.Timestamp.UTC()
}

// sinkLoop is the one goroutine that talks to the sink: it adds results in
// the order the sequencer releases them, frees their in-flight slots,
// flushes by policy and commits what each flush made durable. When the
// sequencer closes it does the final flush and commit.
func (p *Pipeline) sinkLoop(ctx, workCtx context.Context, r *run) error {
	var tick <-chan time.Time
	resetTimer := func() {}
	if iv := p.cfg.Flush.Interval; iv > 0 {
		timer := time.NewTimer(iv)
		defer timer.Stop()
		tick = timer.C
		resetTimer = func() { timer.Reset(iv) }
	}
	abort := func(err error) error {
		// Nothing more can be written: stop intake and in-flight work.
		r.stopIntake()
		r.stopWork()
		return err
	}
	for {
		select {
		case res, ok := <-r.seq.out:
			if !ok {
				return p.finalFlush(ctx, r)
			}
			if err := p.sink.Add(res); err != nil {
				return abort(fmt.Errorf("add result of %s to sink: %w", res.Source, err))
			}
			<-r.slots
			p.inFlight.Add(-1)
			countRows(&r.pending, res)
			if p.flushDue() {
				if err := p.flush(workCtx, r, "size"); err != nil {
					return abort(err)
				}
				resetTimer()
			}
		case <-tick:
			if err := p.flush(workCtx, r, "interval"); err != nil {
				return abort(err)
			}
			resetTimer()
		}
	}
}

func countRows(t *TableRows, res *schemas.Result) {
	if res.Production != nil {
		t.Production++
	}
	if res.Replay != nil {
		t.Replay++
	}
	if res.DeadLetter != nil {
		t.DeadLetter++
	}
}

func (p *Pipeline) flushDue() bool {
	f := p.cfg.Flush
	if f.Rows <= 0 && f.Bytes <= 0 {
		return false
	}
	rows, bytes := p.sink.Buffered()
	return (f.Rows > 0 && rows >= f.Rows) || (f.Bytes > 0 && bytes >= f.Bytes)
}

// flush flushes the sink if anything is buffered, then commits. A commit
// failure here is logged and retried with the next flush: the rows are
// durable, and offsets only grow.
func (p *Pipeline) flush(ctx context.Context, r *run, reason string) error {
	if err := p.flushSink(ctx, r, reason); err != nil {
		return err
	}
	if err := p.commit(ctx, r); err != nil {
		p.stats.commitErrors.Add(1)
		p.log.Warn("commit offsets failed; retrying after the next flush", "run_id", p.cfg.RunID, "error", err)
	}
	return nil
}

func (p *Pipeline) flushSink(ctx context.Context, r *run, reason string) error {
	rows, bytes := p.sink.Buffered()
	if rows == 0 {
		return nil
	}
	start := time.Now()
	offsets, err := p.sink.Flush(ctx)
	if err != nil {
		return fmt.Errorf("flush %d rows (%d bytes) to sink: %w", rows, bytes, err)
	}
	p.stats.flushes.Add(1)
	p.stats.written.production.Add(r.pending.Production)
	p.stats.written.replay.Add(r.pending.Replay)
	p.stats.written.deadLetter.Add(r.pending.DeadLetter)
	r.pending = TableRows{}
	for tp, off := range offsets {
		if off > r.uncommitted[tp] {
			r.uncommitted[tp] = off
		}
	}
	p.log.Debug("flushed", "run_id", p.cfg.RunID, "reason", reason, "rows", rows, "bytes", bytes,
		"partitions", len(offsets), "duration", time.Since(start))
	return nil
}

// commit hands the flushed offsets to the source.
func (p *Pipeline) commit(ctx context.Context, r *run) error {
	if len(r.uncommitted) == 0 {
		return nil
	}
	if err := p.src.Commit(ctx, r.uncommitted); err != nil {
		return fmt.Errorf("commit offsets of %d partitions: %w", len(r.uncommitted), err)
	}
	p.stats.commits.Add(1)
	p.stats.committedOffsets(r.uncommitted)
	r.uncommitted = schemas.Offsets{}
	return nil
}

// finalFlush flushes and commits everything left, each step bounded by
// ShutdownGrace. A commit failure here is returned: there is no next flush
// to retry it.
func (p *Pipeline) finalFlush(ctx context.Context, r *run) error {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.ShutdownGrace)
	defer cancel()
	start := time.Now()
	rows, bytes := p.sink.Buffered()
	if err := p.flushSink(fctx, r, "shutdown"); err != nil {
		return err
	}
	p.log.Info("shutdown: final flush done", "run_id", p.cfg.RunID, "rows", rows, "bytes", bytes, "duration", time.Since(start))

	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.ShutdownGrace)
	defer cancel()
	start = time.Now()
	partitions := len(r.uncommitted)
	if err := p.commit(cctx, r); err != nil {
		p.stats.commitErrors.Add(1)
		return fmt.Errorf("final commit: %w", err)
	}
	p.log.Info("shutdown: final commit done", "run_id", p.cfg.RunID, "partitions", partitions, "duration", time.Since(start))
	return nil
}
