package pipeline

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/replaykit/replay/schemas"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func newTestPacer(t *testing.T, c Control, g GuardrailConfig) (*pacer, *controller, *guardrail) {
	t.Helper()
	if c.Burst == 0 {
		c.Burst = 1
	}
	if c.Pace == 0 {
		c.Pace = 1
	}
	if c.MultiplierDefault == 0 {
		c.MultiplierDefault = 1
	}
	if c.DialPercent == 0 {
		c.DialPercent = 100
	}
	if errs := validateControl(c); len(errs) > 0 {
		t.Fatalf("control %+v: %v", c, errs)
	}
	if g.Window == 0 {
		g.Window = 10 * time.Second
	}
	if g.MinRequests == 0 {
		g.MinRequests = 1
	}
	if g.Action == "" {
		g.Action = GuardrailStepBack
	}
	log := slog.New(slog.DiscardHandler)
	ctl := newController(c, log, "run")
	guard := newGuardrail(g, log, "run")
	pc := newPacer(ctl, guard, log, "run")
	guard.onChange = pc.poke
	return pc, ctl, guard
}

func TestPaceModeScalesCapturedGaps(t *testing.T) {
	pc, ctl, _ := newTestPacer(t, Control{Mode: ModePace, Pace: 2}, GuardrailConfig{})
	captured := []time.Duration{0, 100 * time.Millisecond, 100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second}
	for i, c := range captured {
		// The dispatcher asks at t0 + 1ms·i: well before each request is due.
		p := pc.reserve(t0.Add(time.Duration(i)*time.Millisecond), t0.Add(-time.Hour).Add(c))
		if want := t0.Add(c / 2); !p.readyAt.Equal(want) {
			t.Errorf("request %d captured at +%v: ready at +%v, want +%v (half the captured gap)", i, c, p.readyAt.Sub(t0), want.Sub(t0))
		}
		if p.paused || p.cancel != nil {
			t.Errorf("request %d: paused %v, cancel %v", i, p.paused, p.cancel != nil)
		}
	}
	// A request captured before the anchor, or one the replay is late for,
	// is due at once.
	if p := pc.reserve(t0.Add(5*time.Second), t0.Add(-time.Hour)); !p.readyAt.Equal(t0.Add(5 * time.Second)) {
		t.Errorf("late request ready at +%v, want now (+5s)", p.readyAt.Sub(t0))
	}
	// A new pace re-anchors: the next request is due now, the one after
	// it by the new scale.
	four := 4.0
	if _, err := ctl.update(ControlUpdate{Pace: &four}, "test"); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(10 * time.Second)
	base := t0.Add(time.Hour)
	if p := pc.reserve(now, base); !p.readyAt.Equal(now) {
		t.Errorf("first request after the change ready at %v, want now", p.readyAt.Sub(now))
	}
	if p := pc.reserve(now, base.Add(time.Second)); !p.readyAt.Equal(now.Add(250 * time.Millisecond)) {
		t.Errorf("second request after the change ready at +%v, want +250ms", p.readyAt.Sub(now))
	}
}

func TestRateModeSpacesStarts(t *testing.T) {
	pc, ctl, _ := newTestPacer(t, Control{Mode: ModeRate, Rate: 10, Burst: 1}, GuardrailConfig{})
	for i := range 5 {
		p := pc.reserve(t0, t0)
		if want := t0.Add(time.Duration(i) * 100 * time.Millisecond); !p.readyAt.Equal(want) {
			t.Errorf("start %d ready at +%v, want +%v", i, p.readyAt.Sub(t0), want.Sub(t0))
		}
	}
	// Rate 0 is unlimited; max mode is always now.
	zero := 0.0
	if _, err := ctl.update(ControlUpdate{Rate: &zero}, "test"); err != nil {
		t.Fatal(err)
	}
	if p := pc.reserve(t0, t0); !p.readyAt.Equal(t0) {
		t.Errorf("rate 0: ready at +%v, want now", p.readyAt.Sub(t0))
	}
	mode := ModeMax
	if _, err := ctl.update(ControlUpdate{Mode: &mode}, "test"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if p := pc.reserve(t0, t0); !p.readyAt.Equal(t0) {
			t.Errorf("max: ready at +%v, want now", p.readyAt.Sub(t0))
		}
	}
}

func TestRampAdvancesThroughStagesAndHoldsTheLast(t *testing.T) {
	ramp := []RampStage{{Rate: 10, Duration: time.Second}, {Rate: 100, Duration: 2 * time.Second}, {Pace: 3, Duration: time.Minute}}
	pc, _, _ := newTestPacer(t, Control{Mode: ModeRamp, Ramp: ramp}, GuardrailConfig{})
	status := func(now time.Time) ControlStatus {
		var st ControlStatus
		pc.status(&st, now)
		return st
	}
	pc.reserve(t0, t0) // the ramp starts at the first reservation
	for _, c := range []struct {
		at          time.Duration
		stage       int
		rate, pace  float64
		endsAfterT0 time.Duration // 0: held
	}{
		{0, 0, 10, 0, time.Second},
		{999 * time.Millisecond, 0, 10, 0, time.Second},
		{time.Second, 1, 100, 0, 3 * time.Second},
		{3 * time.Second, 2, 0, 3, 0},
		{time.Hour, 2, 0, 3, 0},
	} {
		st := status(t0.Add(c.at))
		var ends time.Duration
		if !st.RampStageEndsAt.IsZero() {
			ends = st.RampStageEndsAt.Sub(t0)
		}
		if st.RampStage != c.stage || st.EffectiveRate != c.rate || st.EffectivePace != c.pace || ends != c.endsAfterT0 {
			t.Errorf("at +%v: stage %d rate %v pace %v ends +%v, want stage %d rate %v pace %v ends +%v",
				c.at, st.RampStage, st.EffectiveRate, st.EffectivePace, ends, c.stage, c.rate, c.pace, c.endsAfterT0)
		}
	}
	// While a stage runs, a reservation says when to look again.
	pc2, _, _ := newTestPacer(t, Control{Mode: ModeRamp, Ramp: ramp}, GuardrailConfig{})
	if p := pc2.reserve(t0, t0); !p.recheck.Equal(t0.Add(time.Second)) {
		t.Errorf("recheck at +%v, want at the end of stage 0 (+1s)", p.recheck.Sub(t0))
	}
}

func TestPausedReservesNothingUntilResumed(t *testing.T) {
	pc, ctl, _ := newTestPacer(t, Control{Mode: ModeMax}, GuardrailConfig{})
	yes, no := true, false
	before := pc.reserve(t0, t0)
	if _, err := ctl.update(ControlUpdate{Paused: &yes}, "test"); err != nil {
		t.Fatal(err)
	}
	pc.poke()
	select {
	case <-before.notify:
	default:
		t.Fatal("a pause did not wake a dispatcher waiting on an earlier reservation")
	}
	p := pc.reserve(t0, t0)
	if !p.paused || !p.recheck.IsZero() {
		t.Fatalf("paused by an operator: %+v, want paused with no recheck", p)
	}
	if _, err := ctl.update(ControlUpdate{Paused: &no}, "test"); err != nil {
		t.Fatal(err)
	}
	if p := pc.reserve(t0, t0); p.paused || !p.readyAt.Equal(t0) {
		t.Fatalf("resumed: %+v, want ready now", p)
	}
}

// row is a replay finished at done after latency (so sent at done −
// latency: the guardrail judges only replays sent after its last trip);
// status 0 means a refused connection.
func row(done time.Time, status int, latency time.Duration) *schemas.ReplayRow {
	sent := done.Add(-latency).UTC()
	if status == 0 {
		return &schemas.ReplayRow{ErrorKind: schemas.ErrorRefused, ReplayedAt: sent}
	}
	return &schemas.ReplayRow{ReplayedAt: sent, Response: &schemas.Response{Status: status, LatencyMS: float64(latency) / float64(time.Millisecond)}}
}

func TestGuardrailStepsTheRampBackThenPauses(t *testing.T) {
	ramp := []RampStage{{Rate: 10, Duration: time.Second}, {Rate: 100, Duration: time.Minute}}
	pc, _, g := newTestPacer(t, Control{Mode: ModeRamp, Ramp: ramp},
		GuardrailConfig{MaxErrorRate: 0.2, Window: 2 * time.Second, MinRequests: 10, Action: GuardrailStepBack})
	status := func(now time.Time) ControlStatus {
		var st ControlStatus
		pc.status(&st, now)
		return st
	}
	pc.reserve(t0, t0)
	now := t0.Add(1500 * time.Millisecond)
	if st := status(now); st.RampStage != 1 {
		t.Fatalf("stage %d at +1.5s, want 1", st.RampStage)
	}
	wake := pc.reserve(now, now).notify
	// Healthy traffic never trips it; nor do errors below min_requests.
	for i := range 20 {
		at := now.Add(time.Duration(i) * 10 * time.Millisecond)
		g.report(at, row(at, 200, 5*time.Millisecond))
	}
	if st := status(now); st.Guardrail.State != GuardrailOK {
		t.Fatalf("healthy traffic tripped the guardrail: %+v", st.Guardrail)
	}
	// The target fails: 10 errors out of 30 is 33% > 20%.
	now = now.Add(400 * time.Millisecond)
	for i := range 10 {
		at := now.Add(time.Duration(i) * 100 * time.Millisecond)
		g.report(at, row(at, 503, time.Millisecond))
	}
	now = now.Add(time.Second)
	select {
	case <-wake:
	default:
		t.Fatal("the trip did not wake dispatchers")
	}
	st := status(now)
	if st.Guardrail.State != GuardrailTripped || st.RampStage != 0 || st.Paused || st.Guardrail.Trips != 1 ||
		!strings.Contains(st.Guardrail.Reason, "error rate") {
		t.Fatalf("after the failures: %+v, want tripped, stepped back to stage 0, not paused", st)
	}
	if p := pc.reserve(now, now); p.paused || p.cancel == nil {
		t.Fatalf("stepped back: %+v, want paced at stage 0's rate", p)
	}
	// Replies of requests sent before the trip, arriving after it, are not
	// judged: the overload that tripped it cannot trip it again.
	for i := range 30 {
		at := now.Add(time.Duration(i) * time.Millisecond)
		r := row(at, 503, time.Millisecond)
		r.ReplayedAt = st.Guardrail.Since.Add(-time.Millisecond)
		g.report(at, r)
	}
	if st := status(now); st.Guardrail.Trips != 1 || st.RampStage != 0 || st.Paused {
		t.Fatalf("replies sent before the trip: %+v, want still 1 trip, held at stage 0", st)
	}
	// Held: stage 0 does not advance while tripped.
	if st := status(now.Add(10 * time.Second)); st.RampStage != 0 || !st.RampStageEndsAt.IsZero() {
		t.Fatalf("held stage advanced: %+v", st)
	}
	// Still failing at stage 0: the next trip pauses.
	later := now.Add(20 * time.Second)
	for i := range 10 {
		at := later.Add(time.Duration(i) * 60 * time.Millisecond)
		g.report(at, row(at, 0, 0))
	}
	later = later.Add(time.Second)
	st = status(later)
	if !st.Paused || st.PausedBy != "guardrail" || st.Guardrail.Trips != 2 {
		t.Fatalf("second trip: %+v, want paused by the guardrail", st)
	}
	if p := pc.reserve(later, later); !p.paused || !p.recheck.IsZero() {
		t.Fatalf("paused without cool-down: %+v, want paused until an operator resumes", p)
	}
	// An operator lifts it; stage 0 then runs its full duration again.
	if !g.lift("test") {
		t.Fatal("lift reported no trip in force")
	}
	resumed := later.Add(time.Second)
	if st := status(resumed); st.Paused || st.Guardrail.State != GuardrailOK || st.RampStage != 0 ||
		!st.RampStageEndsAt.Equal(resumed.Add(time.Second)) {
		t.Fatalf("after lifting: %+v", st)
	}
}

func TestGuardrailP99AndCooldown(t *testing.T) {
	pc, _, g := newTestPacer(t, Control{Mode: ModeRate, Rate: 50, Burst: 1},
		GuardrailConfig{MaxP99: 100 * time.Millisecond, Window: time.Second, MinRequests: 5, Action: GuardrailStepBack,
			Cooldown: 30 * time.Second})
	now := t0
	for i := range 100 {
		lat := 10 * time.Millisecond
		if i%10 == 0 { // 10% slow: p99 is slow
			lat = 800 * time.Millisecond
		}
		at := now.Add(time.Duration(i) * time.Millisecond)
		g.report(at, row(at, 200, lat))
	}
	var st ControlStatus
	pc.status(&st, now)
	if st.Guardrail.State != GuardrailTripped || !st.Paused || st.PausedBy != "guardrail" ||
		!strings.Contains(st.Guardrail.Reason, "p99") || st.Guardrail.P99MS < 800 || st.Guardrail.P99MS > 1000 {
		t.Fatalf("slow p99 in rate mode: %+v, want paused by the guardrail with p99 ≈ 800ms", st)
	}
	p := pc.reserve(now.Add(time.Second), now)
	if !p.paused || !p.recheck.Equal(st.Guardrail.ResumeAt) || st.Guardrail.ResumeAt.Sub(now) < 29*time.Second {
		t.Fatalf("cool-down: reservation %+v, resume at %v", p, st.Guardrail.ResumeAt)
	}
	after := st.Guardrail.ResumeAt
	if p := pc.reserve(after, after); p.paused {
		t.Fatalf("still paused after the cool-down: %+v", p)
	}
}

func TestLatencyBins(t *testing.T) {
	for _, d := range []time.Duration{0, 300 * time.Microsecond, time.Millisecond, 7 * time.Millisecond, 250 * time.Millisecond, 3 * time.Second, time.Hour} {
		i := latencyBin(d)
		if up := binUpper(i); up < d && i < latencyBins-1 {
			t.Errorf("%v in bin %d with upper bound %v", d, i, up)
		}
		if i > 0 && binUpper(i-1) >= d {
			t.Errorf("%v in bin %d but fits bin %d (upper %v)", d, i, i-1, binUpper(i-1))
		}
	}
}
