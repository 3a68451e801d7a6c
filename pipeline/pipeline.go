package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/conc"
	"github.com/sourcegraph/conc/panics"
	"github.com/sourcegraph/conc/pool"

	"github.com/replaykit/replay/normalize"
	"github.com/replaykit/replay/schemas"
)

// Pipeline replays the records of a Source against the target and hands
// both sides to a Sink. Create it with New, run it once with Run; SetRate,
// Revoke, Assign and Stats may be called from other goroutines while it
// runs.
type Pipeline struct {
	cfg        Config
	src        Source
	sink       Sink
	holder     ReplayHolder // the sink, when it is one; else nil
	log        *slog.Logger
	decodeOpts schemas.DecodeOptions
	selector   *selector
	redactor   *redactor
	replayer   *replayer
	baseline   *replayer // replay.baseline's; nil when it is off
	pacer      *pacer
	guard      *guardrail
	breaker    *breaker
	endpoints  []endpoint // where requests go, for the production check
	control    *controller
	observer   Observer              // nil: nobody observes
	names      *normalize.Normalizer // names endpoints for observations
	dialKey    keyExpr               // what the sticky dial hashes
	amplifyKey *keyExpr              // picks the amplification factor; nil: off
	orderKey   *keyExpr              // per-key ordering; nil: off

	stats       stats
	health      health        // for Unready and Wedged (health.go)
	deadLetters deadLetterLog // dead letters by reason and shape, duplicate IDs (deadletters.go)
	recent      *recentIDs    // the last Decode.DuplicateWindow IDs; nil: off. Intake goroutine only.
	inFlight    atomic.Int64
	started     atomic.Bool
	active      atomic.Pointer[run] // the Run in progress, for Revoke and Assign
}

// New validates cfg and builds a pipeline from src to sink. A nil logger
// discards logs. Unless cfg.Replay.AllowProductionTarget is set, it
// refuses (with an error wrapping ErrProductionTarget) a target that is
// one of cfg.Replay.ProductionHosts by name or by address; the address
// check looks the names up, bounded by a short timeout.
func New(cfg Config, src Source, sink Sink, logger *slog.Logger) (*Pipeline, error) {
	if src == nil || sink == nil {
		return nil, errors.New("new pipeline: source and sink must not be nil")
	}
	c, eps, err := check(cfg)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	holder, _ := sink.(ReplayHolder)
	ctl := newController(c.control, logger, cfg.RunID)
	guard := newGuardrail(cfg.Replay.Guardrails, logger, cfg.RunID)
	p := &Pipeline{
		cfg:        cfg,
		src:        src,
		sink:       sink,
		holder:     holder,
		log:        logger,
		decodeOpts: schemas.DecodeOptions{MaxBodyBytes: cfg.Decode.MaxBodyBytes},
		selector:   c.selector,
		redactor:   c.redactor,
		replayer:   newReplayer(cfg, c),
		baseline:   newBaselineReplayer(cfg, c),
		breaker:    newBreaker(cfg.Replay.Breaker, logger, cfg.RunID),
		endpoints:  eps,
		control:    ctl,
		guard:      guard,
		pacer:      newPacer(ctl, guard, logger, cfg.RunID),
		names:      defaultEndpoints,
		dialKey:    c.dialKey,
		amplifyKey: c.amplifyKey,
		orderKey:   c.orderKey,
		recent:     newRecentIDs(cfg.Decode.DuplicateWindow),
	}
	guard.onChange = p.pacer.poke
	return p, nil
}

// Check returns the error New would return for cfg, without a source or a
// sink: an invalid field, or a production target (ErrProductionTarget).
// Callers run it before they create anything (tables, a group member), so
// that a run New would refuse leaves nothing behind.
func Check(cfg Config) error {
	_, _, err := check(cfg)
	return err
}

func check(cfg Config) (*compiled, []endpoint, error) {
	c, errs := cfg.compile()
	if cfg.RunID == "" {
		errs = append(errs, &FieldError{Field: "run_id", Problem: "must not be empty; the caller sets it before New"})
	}
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("invalid pipeline configuration: %w", errors.Join(errs...))
	}
	eps := endpoints(cfg, c)
	if !cfg.Replay.AllowProductionTarget && len(c.productionHosts) > 0 {
		if err := checkProductionTargets(context.Background(), eps, c.productionHosts); err != nil {
			return nil, nil, fmt.Errorf("invalid pipeline configuration: %w", err)
		}
	}
	return c, eps, nil
}

// SetRate switches to rate mode at rps requests per second (0 =
// unlimited) while the pipeline runs; the burst stays as it is. It is
// UpdateControl with who "api".
func (p *Pipeline) SetRate(rps float64) error {
	mode := ModeRate
	_, err := p.UpdateControl(ControlUpdate{Mode: &mode, Rate: &rps}, "api")
	return err
}

// run is the state of one Run shared by its goroutines.
type run struct {
	slots      chan struct{} // in-flight budget: a record holds one from poll until the sink took it
	tokens     chan struct{} // worker budget: a replay holds one from dispatch until it ends
	seq        *sequencer
	workers    *pool.Pool
	stopIntake context.CancelFunc
	stopWork   context.CancelFunc
	stop       <-chan struct{} // closed when shutdown begins: ends retry backoffs
	// halt is closed when no more requests may start: shutdown began or
	// the run failed (the intake's context ended), but not at the end of
	// the input, after which requests queued behind their ordering key
	// still go out.
	halt  <-chan struct{}
	lanes *keyLanes // per-key ordering

	flushReqs chan flushRequest // Revoke → sink goroutine
	sinkDone  chan struct{}     // closed when the sink goroutine ended
	sinkErr   error             // how it ended; read after sinkDone
	revokeMu  sync.Mutex        // one Revoke or Assign at a time

	mu    sync.Mutex
	fatal []error // worker panics, production target

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

// release frees n in-flight slots.
func (p *Pipeline) release(r *run, n int) {
	for range n {
		<-r.slots
	}
	p.inFlight.Add(-int64(n))
}

// Run replays until ctx ends or the source is exhausted, then shuts down in
// order: stop polling, let in-flight replays finish (bounded by
// ShutdownGrace), hand their results to the sink, flush, commit. When ctx
// ends, records that were polled but not replayed yet (waiting for a
// worker, the pacer or the breaker, or queued behind their ordering key)
// are not written, and no offset passes them: they are replayed after a
// restart. At the end of the input, records queued behind their ordering
// key are still replayed. It returns nil after a clean shutdown, whether
// ctx ended or the source returned io.EOF. It returns an error when the
// source, the sink or a worker failed, or a record was captured from the
// target (ErrProductionTarget); results flushed before the failure are
// still committed. After a clean shutdown it returns an error wrapping
// ErrDeadLetters when the run's dead letters are over
// Decode.MaxDeadLetterRatio of the records it read, or are all of them
// (deadletters.go); everything, dead letters included, is committed by
// then. Run may be called once.
func (p *Pipeline) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return errors.New("run pipeline: Run may be called only once")
	}
	defer p.replayer.close()
	if p.baseline != nil {
		defer p.baseline.close()
	}
	rc := p.cfg.Replay
	p.log.Info("replay pipeline started", "run_id", p.cfg.RunID, "target", rc.Target, "baseline", rc.Baseline, "workers", rc.Workers,
		"mode", rc.Mode, "rate", rc.Rate, "burst", p.control.ctl.Burst, "pace", rc.Pace, "ramp_stages", len(rc.Ramp),
		"dial_percent", p.cfg.Dial.Percent, "max_in_flight", p.cfg.Limits.MaxInFlight,
		"retry_attempts", rc.Retry.Attempts, "breaker_errors", rc.Breaker.Errors)

	intakeCtx, stopIntake := context.WithCancel(ctx)
	defer stopIntake()
	// In-flight work outlives ctx: it ends on its own request timeout, or
	// when the grace period after ctx ends has elapsed, or on a sink failure.
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()

	r := &run{
		slots:       make(chan struct{}, p.cfg.Limits.MaxInFlight),
		tokens:      make(chan struct{}, rc.Workers),
		seq:         newSequencer(p.cfg.Limits.MaxInFlight),
		workers:     pool.New().WithMaxGoroutines(rc.Workers),
		stopIntake:  stopIntake,
		stopWork:    stopWork,
		stop:        ctx.Done(),
		halt:        intakeCtx.Done(),
		lanes:       newKeyLanes(),
		flushReqs:   make(chan flushRequest),
		sinkDone:    make(chan struct{}),
		uncommitted: schemas.Offsets{},
	}
	p.active.Store(r)
	defer p.active.Store(nil)

	var ctxDoneAt atomic.Int64 // unix nanos, to log how long intake took to stop
	stopTimingCtx := context.AfterFunc(ctx, func() { ctxDoneAt.Store(time.Now().UnixNano()) })
	defer stopTimingCtx()

	var bg conc.WaitGroup
	bg.Go(func() {
		enterStage(stageAppend)
		defer close(r.sinkDone)
		if rec := panics.Try(func() { r.sinkErr = p.sinkLoop(ctx, workCtx, r) }); rec != nil {
			r.sinkErr = fmt.Errorf("sink goroutine panicked: %w", rec.AsError())
			stopIntake()
			stopWork()
		}
	})
	drained := make(chan struct{})
	bg.Go(func() { p.graceWatchdog(ctx, drained, stopWork) })
	stopReports := make(chan struct{})
	bg.Go(func() { p.reportDeadLetters(stopReports) })

	var intakeErr error
	// The intake switches between the poll and decode labels (stages.go);
	// pprof.Do gives the caller's goroutine its own labels back after.
	pprof.Do(intakeCtx, pprof.Labels(StageLabel, StageDecode), func(intakeCtx context.Context) {
		if rec := panics.Try(func() { intakeErr = p.intake(intakeCtx, workCtx, r) }); rec != nil {
			intakeErr = fmt.Errorf("intake panicked: %w", rec.AsError())
		}
	})
	if !errors.Is(intakeErr, io.EOF) {
		// At the end of the input, requests queued behind their ordering
		// key still go out: the workers drain them below.
		stopIntake()
	}
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
	stopIntake()
	close(drained)
	close(stopReports)
	heldBack := r.seq.close()
	p.log.Info("shutdown: in-flight replays drained", "run_id", p.cfg.RunID, "duration", time.Since(stopped),
		"abandoned", p.stats.abandoned.Load(), "held_back", heldBack)

	bg.Wait() // the sink goroutine recovers its own panics; the others cannot panic
	p.log.Info("replay pipeline stopped", "run_id", p.cfg.RunID, "shutdown_duration", time.Since(stopped))
	if err := errors.Join(intakeErr, r.err(), r.sinkErr); err != nil {
		return err
	}
	// Everything read is written: now judge what could not be decoded.
	return p.finishDeadLetters()
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
		enterStage(stagePoll)
		recs, err := p.src.Poll(ctx)
		enterStage(stageDecode)
		batch := r.seq.newBatch()
		p.stats.consumed.Add(int64(len(recs)))
		for i := range recs {
			if !p.admit(ctx, workCtx, r, batch, &recs[i]) {
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
// at once (dead letter, not selected by the filter or the sticky dial,
// already held by the sink) or dispatches its replay: one request, or one
// per amplified copy. Records of a revoked partition are ignored. It
// returns false when ctx ended first or the run must stop; rec is then not
// registered, so no offset at or after it is committed.
func (p *Pipeline) admit(ctx, workCtx context.Context, r *run, batch uint64, rec *schemas.Record) bool {
	if ctx.Err() != nil {
		return false
	}
	tp := rec.TP()
	if why := r.seq.admits(tp, batch); why != admitted {
		p.countRefused(why)
		return true
	}
	select {
	case r.slots <- struct{}{}:
		p.inFlight.Add(1)
	case <-ctx.Done():
		return false
	}

	x, err := schemas.Decode(rec.Value, rec.Coordinates, p.decodeOpts)
	if err != nil {
		dl := p.deadLetter(rec, err)
		if p.completeNow(r, batch, &schemas.Result{Source: rec.Coordinates, DeadLetter: dl}) {
			p.stats.deadLettered.Add(1)
			p.recordDeadLetter(dl)
		}
		return true
	}
	p.stats.decoded.Add(1)
	if p.recent != nil {
		if first, dup := p.recent.see(x.CorrelationID, rec.Coordinates); dup {
			p.recordDuplicate(x.CorrelationID, first, rec.Coordinates)
		}
	}
	if x.CapturedAt.IsZero() {
		x.CapturedAt = recordTime(rec, time.Now())
	}
	res := &schemas.Result{
		Source:     rec.Coordinates,
		Production: &schemas.ProductionRow{RunID: p.cfg.RunID, Exchange: p.redactor.exchange(x)},
	}
	if !p.selector.selected(x) {
		if p.completeNow(r, batch, res) {
			p.stats.filtered.Add(1)
		}
		return true
	}
	ctl, _ := p.control.get() // live: the dial and multipliers may change between records
	if key, _ := p.dialKey.eval(x); !dialedIn(key, ctl.DialPercent) {
		if p.completeNow(r, batch, res) {
			p.stats.dialedOut.Add(1)
		}
		return true
	}
	if !p.cfg.Replay.AllowProductionTarget {
		if err := capturedFromEndpoint(x, p.endpoints); err != nil {
			p.release(r, 1)
			r.fail(err)
			return false
		}
	}
	if p.holder != nil && p.holder.HoldsReplay(rec.Coordinates) {
		if p.completeNow(r, batch, res) {
			p.stats.skippedHeld.Add(1)
		}
		return true
	}
	t, why := r.seq.register(tp, batch)
	if t == nil { // refused since the check above
		p.release(r, 1)
		p.countRefused(why)
		return true
	}
	n := 1
	if p.amplifyKey != nil {
		n = copiesOf(factor(*p.amplifyKey, x, ctl), x.CorrelationID)
	}
	var key string
	ordered := false
	if p.orderKey != nil {
		key, ordered = p.orderKey.eval(x)
	}
	for _, j := range jobs(t, x, res, n) {
		j.key, j.ordered = key, ordered
		switch p.dispatch(ctx, workCtx, r, j) {
		case dispatchDiscarded:
			return true // its other requests go nowhere either
		case dispatchStopped:
			return false
		}
	}
	return true
}

// completeNow registers a record whose result is known without a replay.
// It returns false when the record's partition no longer admits it
// (revoked, or a record before it abandoned): the record is then dropped
// and its slot freed.
func (p *Pipeline) completeNow(r *run, batch uint64, res *schemas.Result) bool {
	why := r.seq.registerDone(res.Source.TP(), batch, res)
	if why == admitted {
		return true
	}
	p.release(r, 1)
	p.countRefused(why)
	return false
}

func (p *Pipeline) countRefused(why refusal) {
	if why == refusedBlocked {
		p.stats.abandoned.Add(1)
	} else {
		p.stats.discarded.Add(1)
	}
}

// dispatchResult says how dispatch ended.
type dispatchResult uint8

const (
	dispatchStarted   dispatchResult = iota // the request runs on a worker, or is queued behind its ordering key
	dispatchDiscarded                       // its record was discarded (revoked, or abandoned by another of its requests): nothing sent
	dispatchStopped                         // ctx ended: its record was abandoned
)

// dispatch waits for a worker, the pacer and the breaker (see await), then
// starts j on a worker. When ctx ends first, j's record is abandoned:
// neither written nor passed by a committed offset. A request whose
// ordering key another request holds is queued on the key instead, and
// dispatch returns at once (see order.go).
func (p *Pipeline) dispatch(ctx, workCtx context.Context, r *run, j *replayJob) dispatchResult {
	if j.ordered && !r.lanes.enter(j) {
		p.stats.keyQueued.Add(1)
		return dispatchStarted
	}
	switch w, probe := p.await(ctx.Done(), r, j.t, j.x.CapturedAt, false); w {
	case waitReady:
		r.workers.Go(func() { p.work(workCtx, r, j, probe) })
		return dispatchStarted
	case waitDiscarded:
		if j.ordered { // j held its key: the next request of the key takes it
			if next, probe := p.passKey(ctx.Done(), r, j.key, false); next != nil {
				r.workers.Go(func() { p.work(workCtx, r, next, probe) })
			}
		}
		return dispatchDiscarded
	default:
		p.abandon(r, j.t)
		if j.ordered {
			p.abandonKey(r, j.key)
		}
		return dispatchStopped
	}
}

// abandon discards t, which will not be finished, with every record behind
// it in its partition (see sequencer.abandon), and frees their slots.
func (p *Pipeline) abandon(r *run, t *ticket) {
	n := r.seq.abandon(t)
	p.release(r, n)
	p.stats.abandoned.Add(int64(n))
}

// waitResult says how await ended.
type waitResult uint8

const (
	waitReady     waitResult = iota // t is dispatched: start its request now
	waitDiscarded                   // t was discarded meanwhile
	waitStopped                     // stop was closed first
)

// await waits for a worker token (unless the caller holds one), the pacer
// and the breaker, in that order, then marks t dispatched. Every wait ends
// early when t is discarded (its partition revoked while it was pending,
// or a request of its record abandoned) or stop is closed. On waitReady
// the caller holds a token and, when probe is set, runs the breaker's
// probe; otherwise a token taken here was given back.
func (p *Pipeline) await(stop <-chan struct{}, r *run, t *ticket, captured time.Time, haveToken bool) (w waitResult, probe bool) {
	var (
		tookToken bool
		paced     *pacing
		timer     *time.Timer
	)
	unpace := func() {
		if paced != nil && paced.cancel != nil {
			paced.cancel()
		}
		paced = nil
	}
	giveUp := func() {
		if tookToken {
			<-r.tokens
		}
		unpace()
		if timer != nil {
			timer.Stop()
		}
	}
	for {
		discarded, revoked := r.seq.watch(t)
		if discarded {
			giveUp()
			return waitDiscarded, false
		}
		select {
		case <-stop:
			giveUp()
			return waitStopped, false
		default:
		}
		if !haveToken {
			select {
			case r.tokens <- struct{}{}:
				haveToken, tookToken = true, true
			case <-revoked:
				continue
			case <-stop:
				continue
			}
		}
		now := time.Now()
		if paced != nil && !paced.recheck.IsZero() && !now.Before(paced.recheck) {
			unpace() // the pacing changed by itself: a ramp stage or a cool-down ended
		}
		if paced == nil {
			pc := p.pacer.reserve(now, captured)
			paced = &pc
		}
		var wake, repace <-chan struct{}
		var wait time.Duration
		switch {
		case paced.paused:
			repace = paced.notify
			if !paced.recheck.IsZero() {
				wait = max(paced.recheck.Sub(now), time.Millisecond)
			}
		case now.Before(paced.readyAt):
			repace = paced.notify
			wait = paced.readyAt.Sub(now)
			if !paced.recheck.IsZero() && paced.recheck.Before(paced.readyAt) {
				wait = max(paced.recheck.Sub(now), time.Millisecond)
			}
		default:
			ok, probe, breakerWake, breakerWait := p.breaker.acquire(now)
			if ok {
				if !r.seq.dispatch(t) {
					if probe {
						p.breaker.cancelProbe()
					}
					giveUp()
					return waitDiscarded, false
				}
				if timer != nil {
					timer.Stop()
				}
				return waitReady, probe
			}
			wake, wait = breakerWake, breakerWait
		}
		var tick <-chan time.Time
		if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			tick = timer.C
		}
		select {
		case <-wake:
		case <-repace:
			unpace()
		case <-tick:
		case <-revoked:
		case <-stop:
		}
	}
}

// work replays j and, when j holds an ordering key, the requests queued
// behind it, one after another with the same worker token (see
// order.go).
func (p *Pipeline) work(ctx context.Context, r *run, j *replayJob, probe bool) {
	defer func() { <-r.tokens }()
	for j != nil {
		p.replayOne(ctx, r, j, probe)
		if !j.ordered {
			return
		}
		j, probe = p.passKey(r.halt, r, j.key, true)
	}
}

// replayOne replays j and, when it was the last request of its record to
// finish, completes the record's result. A replay abandoned at shutdown,
// or whose worker panicked, abandons its record with every record behind
// it in its partition, so nothing at or after its offset is committed; a
// panic also fails the run.
func (p *Pipeline) replayOne(ctx context.Context, r *run, j *replayJob, probe bool) {
	reported := false
	rec := panics.Try(func() {
		var row, base *schemas.ReplayRow
		var o outcome
		if j.copy == 0 { // the record's own replay goes to the baseline too; copies only to the target
			row, base, o = p.replayTargets(ctx, r.stop, j.x)
		} else {
			row, o = p.replayer.replay(ctx, r.stop, j.x)
		}
		p.breaker.report(probe, o)
		if row != nil && o != outcomeNeutral {
			p.guard.report(time.Now(), row)
		}
		reported = true
		if row == nil {
			p.abandon(r, j.t)
			return
		}
		p.stats.replayed.Add(1)
		p.stats.retries.Add(int64(row.Attempts - 1))
		if row.ErrorKind != "" {
			p.stats.replayError(row.ErrorKind)
		}
		if j.copy > 0 {
			p.stats.amplified.Add(1)
		} else {
			j.rec.res.Baseline = base
		}
		p.observe(j.rec.x, row)
		if j.finish(row) {
			r.seq.complete(j.t, j.rec.res)
		}
	})
	if rec != nil {
		if probe && !reported {
			p.breaker.cancelProbe()
		}
		p.abandon(r, j.t)
		r.fail(fmt.Errorf("replay worker panicked on %s: %w", j.x.Source, rec.AsError()))
	}
}

func (p *Pipeline) deadLetter(rec *schemas.Record, err error) *schemas.DeadLetterRow {
	reason := deadLetterReason(err)
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
// flushes by policy, commits what each flush made durable, and serves
// Revoke's flush requests. When the sequencer closes it does the final
// flush and commit.
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
	defer p.health.beat.Store(0)
	for {
		p.health.beat.Store(time.Now().UnixNano())
		select {
		case t, ok := <-r.seq.out:
			if !ok {
				return p.finalFlush(ctx, r)
			}
			if err := p.take(r, t); err != nil {
				return abort(err)
			}
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
		case req := <-r.flushReqs:
			commitErr, fatalErr := p.revokeFlush(workCtx, r, req)
			req.reply <- errors.Join(fatalErr, commitErr)
			if fatalErr != nil {
				return abort(fatalErr)
			}
			resetTimer()
		}
	}
}

// take hands one released result to the sink and frees its slot. A result
// fenced off by a Revoke that gave up waiting is dropped instead.
func (p *Pipeline) take(r *run, t *ticket) error {
	enterStage(stageAppend)
	defer p.release(r, 1)
	if !r.seq.writable(t) {
		p.stats.discarded.Add(1)
		return nil
	}
	if err := p.sink.Add(t.result); err != nil {
		return fmt.Errorf("add result of %s to sink: %w", t.result.Source, err)
	}
	countRows(&r.pending, t.result)
	return nil
}

// revokeFlush serves a Revoke: it hands the sink every result released so
// far, flushes and commits. A flush failure is fatal to the run; a commit
// failure is only Revoke's.
func (p *Pipeline) revokeFlush(ctx context.Context, r *run, req flushRequest) (commitErr, fatalErr error) {
	for n := len(r.seq.out); n > 0; n-- {
		t, ok := <-r.seq.out
		if !ok {
			break
		}
		if err := p.take(r, t); err != nil {
			return nil, err
		}
	}
	if err := p.flushSink(ctx, r, "revoke"); err != nil {
		return nil, err
	}
	if err := p.commit(req.ctx, r); err != nil {
		p.stats.commitErrors.Add(1)
		return err, nil
	}
	return nil, nil
}

func countRows(t *TableRows, res *schemas.Result) {
	if res.Production != nil {
		t.Production++
	}
	if res.Replay != nil {
		t.Replay += 1 + int64(len(res.Copies))
	}
	if res.Baseline != nil {
		t.Baseline++
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
	enterStage(stageFlush)
	rows, bytes := p.sink.Buffered()
	if rows == 0 {
		return nil
	}
	start := time.Now()
	offsets, err := p.sink.Flush(ctx)
	if err != nil {
		return fmt.Errorf("flush %d rows (%d bytes) to sink: %w", rows, bytes, err)
	}
	p.observeFlush(rows, time.Since(start))
	p.stats.flushes.Add(1)
	p.stats.written.production.Add(r.pending.Production)
	p.stats.written.replay.Add(r.pending.Replay)
	p.stats.written.baseline.Add(r.pending.Baseline)
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

// commit hands the flushed offsets to the source, except those of
// partitions revoked and not assigned again.
func (p *Pipeline) commit(ctx context.Context, r *run) error {
	r.seq.dropFenced(r.uncommitted)
	if len(r.uncommitted) == 0 {
		return nil
	}
	if err := p.commitSource(ctx, r.uncommitted); err != nil {
		err = fmt.Errorf("commit offsets of %d partitions: %w", len(r.uncommitted), err)
		p.health.commitFailed(err)
		return err
	}
	p.health.committed()
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
