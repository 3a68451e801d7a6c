package pipeline

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/replaykit/replay/normalize"
	"github.com/replaykit/replay/schemas"
)

// Pacing modes (ReplayConfig.Mode, Control.Mode).
const (
	// ModeRate starts at most Rate requests per second (token bucket with
	// Burst); Rate 0 means unlimited.
	ModeRate = "rate"
	// ModePace reproduces the captured inter-arrival gaps (captured_at),
	// divided by Pace: 2.0 replays twice as fast as production.
	ModePace = "pace"
	// ModeRamp runs Ramp's stages one after the other, then holds the last.
	ModeRamp = "ramp"
	// ModeMax replays as fast as the workers allow.
	ModeMax = "max"
)

// Guardrail states (GuardrailStatus.State).
const (
	GuardrailOK      = "ok"      // limits not crossed (or no limits set)
	GuardrailTripped = "tripped" // a limit was crossed: stepped back or paused
)

// RampStage is one stage of a ramp: a fixed Rate or a Pace multiple, held
// for Duration. Exactly one of Rate and Pace is set.
type RampStage struct {
	// Rate is requests per second during the stage.
	Rate float64 `yaml:"rate,omitempty" json:"rate,omitempty"`
	// Pace is the multiple of the captured pace during the stage.
	Pace float64 `yaml:"pace,omitempty" json:"pace,omitempty"`
	// Duration is how long the stage lasts (the last stage is held after
	// it).
	Duration time.Duration `yaml:"duration" json:"duration"`
}

// Control is the live-tunable part of a pipeline: how fast it replays and
// which traffic. It starts from the configuration and is changed with
// UpdateControl (the admin API's PUT /v1/control).
type Control struct {
	// Mode is rate, pace, ramp or max.
	Mode string `json:"mode"`
	// Rate is requests per second in rate mode; 0 = unlimited.
	Rate float64 `json:"rate"`
	// Burst is how many requests may start at once in rate mode.
	Burst int `json:"burst"`
	// Pace is the multiple of the captured pace in pace mode.
	Pace float64 `json:"pace"`
	// Ramp are the stages of ramp mode.
	Ramp []RampStage `json:"ramp,omitempty"`
	// DialPercent is the share of dial keys replayed, 0 to 100.
	DialPercent float64 `json:"dial_percent"`
	// Multipliers are the amplification factors by value of the amplify
	// key; values not listed get MultiplierDefault.
	Multipliers       map[string]float64 `json:"multipliers,omitempty"`
	MultiplierDefault float64            `json:"multiplier_default"`
	// Paused stops new replays (records wait, holding their in-flight
	// slots, so the source stops being polled).
	Paused bool `json:"paused"`
}

// ControlUpdate changes some fields of Control; nil fields stay as they are.
// It is the body of PUT /v1/control.
type ControlUpdate struct {
	Mode              *string            `json:"mode,omitempty"`
	Rate              *float64           `json:"rate,omitempty"`
	Burst             *int               `json:"burst,omitempty"`
	Pace              *float64           `json:"pace,omitempty"`
	Ramp              *[]RampStage       `json:"ramp,omitempty"`
	DialPercent       *float64           `json:"dial_percent,omitempty"`
	Multipliers       map[string]float64 `json:"multipliers,omitempty"` // replaces the whole map when non-nil
	MultiplierDefault *float64           `json:"multiplier_default,omitempty"`
	Paused            *bool              `json:"paused,omitempty"`
}

// GuardrailStatus is the state of the guardrails over their sliding window.
type GuardrailStatus struct {
	// State is ok or tripped.
	State string `json:"state"`
	// Reason says which limit was crossed, with the measured value; empty
	// when ok.
	Reason string `json:"reason,omitempty"`
	// Since is when the state last changed.
	Since time.Time `json:"since"`
	// ErrorRate and P99MS are the candidate's over the current window;
	// Requests is how many replays the window holds.
	ErrorRate float64 `json:"error_rate"`
	P99MS     float64 `json:"p99_ms"`
	Requests  int     `json:"requests"`
	// ResumeAt is when a tripped guardrail lifts by itself (cool-down);
	// zero when only an operator can lift it.
	ResumeAt time.Time `json:"resume_at,omitzero"`
	// Trips counts how often the guardrail tripped since start.
	Trips int64 `json:"trips"`
}

// ControlStatus is Control plus what the pipeline derived from it.
type ControlStatus struct {
	Control
	// EffectiveRate is the rate requested right now in requests per second
	// (the ramp stage's or Rate); 0 when unlimited or pacing by capture
	// time.
	EffectiveRate float64 `json:"effective_rate"`
	// EffectivePace is the pace multiple in force now (pace mode or a pace
	// ramp stage); 0 otherwise.
	EffectivePace float64 `json:"effective_pace"`
	// RampStage is the index of the current ramp stage (ramp mode), and
	// RampStageEndsAt when it ends (zero when held).
	RampStage       int       `json:"ramp_stage"`
	RampStageEndsAt time.Time `json:"ramp_stage_ends_at,omitzero"`
	// PausedBy is "operator" or "guardrail" when paused.
	PausedBy  string          `json:"paused_by,omitempty"`
	Guardrail GuardrailStatus `json:"guardrail"`
	// UpdatedAt and UpdatedBy say who changed the control last ("config"
	// at start).
	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by"`
}

// Observer is told about every finished replay, from the worker that ran
// it. It must be safe for concurrent use and cheap: it runs on the hot
// path. Set it with SetObserver before Run.
type Observer interface {
	ObserveReplay(o Observation)
}

// Observation is one finished replay.
type Observation struct {
	// Endpoint is the request's method and path template
	// ("GET /users/{id}"), as normalize names it with the routes given to
	// SetNormalizer: the name batch compare gives the pair.
	Endpoint string
	// Production is the captured exchange (its Response may be nil).
	Production *schemas.Exchange
	// Replay is the replay row: a response or an error kind.
	Replay *schemas.ReplayRow
	// Verdict is the live comparison's verdict, the class batch compare
	// gives the pair: VerdictMatch, VerdictMismatch, or VerdictLineage
	// (lineage differs on a shared key: excluded from the match rate).
	// Like batch compare, a pair is compared even when a side has no
	// response (a failed replay, a capture without a response): then only
	// the statuses are, 0 standing for none, so a failed replay of a
	// captured response is a mismatch. Verdict is "" when live comparison
	// is off, or the pair is not in its sample, or the replay is an
	// amplified copy (another correlation ID, which the tables do not join
	// with the production row).
	Verdict string
}

// Live comparison verdicts (Observation.Verdict).
const (
	VerdictMatch    = "match"
	VerdictMismatch = "mismatch"
	VerdictLineage  = "lineage_mismatch"
)

// SetObserver sets the observer of finished replays; call it before Run.
func (p *Pipeline) SetObserver(o Observer) { p.observer = o }

// defaultEndpoints names endpoints by the default path templating.
var defaultEndpoints = func() *normalize.Normalizer {
	n, err := normalize.Compile(normalize.Config{})
	if err != nil {
		panic("compile the default normalizer: " + err.Error())
	}
	return n
}()

// observe compares a finished replay live when live comparison is on (see
// liveCompare) and tells the observer, if any, about it with the verdict.
func (p *Pipeline) observe(x *schemas.Exchange, row *schemas.ReplayRow) {
	live := p.cfg.LiveCompare.Enabled
	if p.observer == nil && !live {
		return
	}
	o := Observation{
		Endpoint:   p.names.Endpoint(x.Request.Method, x.Request.Path),
		Production: x,
		Replay:     row,
	}
	if live {
		o.Verdict = p.liveCompare(o.Endpoint, x, row)
	}
	if p.observer != nil {
		p.observer.ObserveReplay(o)
	}
}

// validateControl returns the problems of c, naming fields as in the
// control API (mode, rate, …).
func validateControl(c Control) []error {
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch c.Mode {
	case ModeRate, ModePace, ModeRamp, ModeMax:
	default:
		fail("mode", "must be rate, pace, ramp or max, got %q", c.Mode)
	}
	if c.Rate < 0 || !finite(c.Rate) {
		fail("rate", "must be a number of requests per second ≥ 0 (0 = unlimited), got %v", c.Rate)
	}
	if c.Burst < 1 {
		fail("burst", "must be ≥ 1, got %d", c.Burst)
	}
	if c.Pace <= 0 || !finite(c.Pace) {
		fail("pace", "must be a multiple of the captured pace > 0 (1 = as captured, 2 = twice as fast), got %v", c.Pace)
	}
	if c.Mode == ModeRamp && len(c.Ramp) == 0 {
		fail("ramp", "mode is ramp but no stages are given; list stages like {rate: 100, duration: 2m}")
	}
	for i, s := range c.Ramp {
		f := fmt.Sprintf("ramp[%d]", i)
		switch {
		case (s.Rate > 0) == (s.Pace > 0):
			fail(f, "must set exactly one of rate or pace (> 0), got rate %v and pace %v", s.Rate, s.Pace)
		case !finite(s.Rate) || !finite(s.Pace):
			fail(f, "rate and pace must be finite numbers")
		}
		if s.Duration <= 0 {
			fail(f+".duration", "must be > 0, like 2m, got %v", s.Duration)
		}
	}
	if c.DialPercent < 0 || c.DialPercent > 100 || !finite(c.DialPercent) {
		fail("dial_percent", "must be a percentage from 0 to 100, got %v", c.DialPercent)
	}
	if c.MultiplierDefault < 1 || c.MultiplierDefault > maxMultiplier || !finite(c.MultiplierDefault) {
		fail("multiplier_default", "must be from 1 to %d (1 = replay once; use the dial to replay less), got %v", maxMultiplier, c.MultiplierDefault)
	}
	for _, k := range sortedKeys(c.Multipliers) {
		if v := c.Multipliers[k]; v < 1 || v > maxMultiplier || !finite(v) {
			fail("multipliers."+k, "must be from 1 to %d (1 = replay once; use the dial to replay less), got %v", maxMultiplier, v)
		}
	}
	return errs
}

// apply returns c with u's fields applied.
func (u ControlUpdate) apply(c Control) Control {
	if u.Mode != nil {
		c.Mode = *u.Mode
	}
	if u.Rate != nil {
		c.Rate = *u.Rate
	}
	if u.Burst != nil {
		c.Burst = *u.Burst
	}
	if u.Pace != nil {
		c.Pace = *u.Pace
	}
	if u.Ramp != nil {
		c.Ramp = append([]RampStage(nil), (*u.Ramp)...)
	}
	if u.DialPercent != nil {
		c.DialPercent = *u.DialPercent
	}
	if u.Multipliers != nil {
		c.Multipliers = make(map[string]float64, len(u.Multipliers))
		for k, v := range u.Multipliers {
			c.Multipliers[k] = v
		}
	}
	if u.MultiplierDefault != nil {
		c.MultiplierDefault = *u.MultiplierDefault
	}
	if u.Paused != nil {
		c.Paused = *u.Paused
	}
	return c
}

// controller holds the live Control and wakes waiters on every change.
type controller struct {
	log   *slog.Logger
	runID string

	mu        sync.Mutex
	ctl       Control
	updatedAt time.Time
	updatedBy string
	changed   chan struct{} // closed and replaced on every change
}

func newController(c Control, log *slog.Logger, runID string) *controller {
	return &controller{log: log, runID: runID, ctl: c, updatedAt: time.Now().UTC(), updatedBy: "config", changed: make(chan struct{})}
}

// get returns the current control and a channel closed at its next change.
func (c *controller) get() (Control, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ctl, c.changed
}

// update applies u, validated as a whole; who is logged with the change.
func (c *controller) update(u ControlUpdate, who string) (Control, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := u.apply(c.ctl)
	if errs := validateControl(next); len(errs) > 0 {
		return c.ctl, fmt.Errorf("update control: %w", errors.Join(errs...))
	}
	prev := c.ctl
	c.ctl = next
	c.updatedAt, c.updatedBy = time.Now().UTC(), who
	close(c.changed)
	c.changed = make(chan struct{})
	c.log.Info("control changed", "run_id", c.runID, "by", who, "from", controlSummary(prev), "to", controlSummary(next))
	return next, nil
}

// controlSummary is a one-line description of c for logs.
func controlSummary(c Control) string {
	s := fmt.Sprintf("mode=%s rate=%v burst=%d pace=%v stages=%d dial=%v%% multiplier_default=%v multipliers=%v paused=%v",
		c.Mode, c.Rate, c.Burst, c.Pace, len(c.Ramp), c.DialPercent, c.MultiplierDefault, c.Multipliers, c.Paused)
	return s
}

// Control returns the live control and what the pipeline derived from it.
// Safe to call concurrently with Run.
func (p *Pipeline) Control() ControlStatus {
	p.control.mu.Lock()
	st := ControlStatus{Control: p.control.ctl, UpdatedAt: p.control.updatedAt, UpdatedBy: p.control.updatedBy}
	p.control.mu.Unlock()
	st.Multipliers = maps.Clone(st.Multipliers)
	st.Ramp = slices.Clone(st.Ramp)
	p.pacerStatus(&st)
	return st
}

// UpdateControl applies u to the live control and returns the result. The
// change is validated as a whole (an invalid one changes nothing and its
// error names the fields) and logged with who made it. Safe to call
// concurrently with Run.
func (p *Pipeline) UpdateControl(u ControlUpdate, who string) (ControlStatus, error) {
	if who == "" {
		who = "unknown"
	}
	if _, err := p.control.update(u, who); err != nil {
		return p.Control(), err
	}
	if u.Paused != nil && !*u.Paused {
		p.guard.lift(who) // resuming also lifts a tripped guardrail
	}
	p.pacer.poke()
	return p.Control(), nil
}
