package admin

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/replaykit/replay/pipeline"
)

// WriteSummary writes st as the few lines replay ctl status prints.
func WriteSummary(w io.Writer, st Status) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(label, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t%s\n", label, fmt.Sprintf(format, args...))
	}
	s := st.Stats
	line("run", "%s → %s, up %s", st.RunID, st.Target, st.Uptime)
	if st.Control != nil {
		writeControlLines(line, *st.Control)
	}
	line("totals", "consumed %s, replayed %s, filtered %s, dead-lettered %s, in flight %s, breaker %s",
		count(s.Consumed), count(s.Replayed), count(s.Filtered), count(s.DeadLettered), count(s.InFlight), orDash(s.Breaker))
	if len(s.ReplayErrors) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(s.ReplayErrors)) {
			parts = append(parts, fmt.Sprintf("%s %s", k, count(s.ReplayErrors[k])))
		}
		line("errors", "%s", strings.Join(parts, ", "))
	}
	win := st.Window
	line(fmt.Sprintf("last %ds", win.Seconds), "%s req/s now (%s req/s average), %s replayed, %s errors (%s)",
		num(win.CurrentRate), num(win.Rate), count(win.Replayed), count(win.Errors), percent(win.ErrorRate))
	line("latency", "replay p50 %s  p90 %s  p99 %s   production p50 %s  p90 %s  p99 %s",
		ms(win.Replay.P50), ms(win.Replay.P90), ms(win.Replay.P99), ms(win.Production.P50), ms(win.Production.P90), ms(win.Production.P99))
	if win.MatchRate != nil {
		line("live match", "%s in the last %ds (%s matched, %s mismatched, %s lineage)",
			percent(*win.MatchRate), win.Seconds, count(win.Matched), count(win.Mismatched), count(win.Lineage))
	}
	if lt := s.LiveTotal; lt != nil {
		rate := "n/a"
		if lt.MatchRate != nil {
			rate = percent(*lt.MatchRate)
		}
		line("live total", "%s since the start (%s compared, %s matched, %s mismatched, %s lineage)",
			rate, count(lt.Compared), count(lt.Matched), count(lt.Mismatched), count(lt.Lineage))
	}
	if st.Lag != nil {
		var parts []string
		for _, p := range st.Lag.Partitions {
			parts = append(parts, fmt.Sprintf("%s/%d %s", p.Topic, p.Partition, count(p.Lag)))
		}
		detail := ""
		if len(parts) > 0 {
			detail = " (" + strings.Join(parts, ", ") + ")"
		}
		line("lag", "%s records%s", count(st.Lag.Total), detail)
	}
	return tw.Flush()
}

// WriteControl writes the control lines of a status summary, as replay ctl
// set, pause and resume print them.
func WriteControl(w io.Writer, c pipeline.ControlStatus) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	writeControlLines(func(label, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t%s\n", label, fmt.Sprintf(format, args...))
	}, c)
	return tw.Flush()
}

func writeControlLines(line func(label, format string, args ...any), c pipeline.ControlStatus) {
	state := "replaying"
	if c.Paused || c.PausedBy != "" {
		state = "PAUSED"
		if c.PausedBy != "" {
			state += " by " + c.PausedBy
		}
	}
	var pacing string
	switch c.Mode {
	case pipeline.ModeRate:
		pacing = "rate " + rateText(c.Rate) + fmt.Sprintf(", burst %d", c.Burst)
	case pipeline.ModePace:
		pacing = fmt.Sprintf("pace %s× captured", num(c.Pace))
	case pipeline.ModeRamp:
		pacing = fmt.Sprintf("ramp %s, stage %d of %d", RampString(c.Ramp), c.RampStage+1, len(c.Ramp))
		if !c.RampStageEndsAt.IsZero() {
			pacing += ", next at " + c.RampStageEndsAt.UTC().Format(time.TimeOnly) + " UTC"
		}
	default:
		pacing = c.Mode
	}
	effective := "unlimited"
	switch {
	case c.EffectivePace > 0:
		effective = num(c.EffectivePace) + "× captured pace"
	case c.EffectiveRate > 0:
		effective = rateText(c.EffectiveRate)
	}
	line("state", "%s", state)
	line("pacing", "%s (now %s)", pacing, effective)
	mult := "none"
	if len(c.Multipliers) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(c.Multipliers)) {
			parts = append(parts, fmt.Sprintf("%s ×%s", k, num(c.Multipliers[k])))
		}
		mult = strings.Join(parts, ", ") + ", others ×" + num(c.MultiplierDefault)
	} else if c.MultiplierDefault != 1 {
		mult = "all ×" + num(c.MultiplierDefault)
	}
	line("traffic", "dial %s%%, multipliers %s", num(c.DialPercent), mult)
	g := c.Guardrail
	guard := orDash(g.State)
	if g.Reason != "" {
		guard += ": " + g.Reason
	}
	if g.Requests > 0 {
		guard += fmt.Sprintf(" (error rate %s, p99 %s over %d replays)", percent(g.ErrorRate), ms(g.P99MS), g.Requests)
	}
	if !g.ResumeAt.IsZero() {
		guard += ", resumes at " + g.ResumeAt.UTC().Format(time.TimeOnly) + " UTC"
	}
	line("guardrail", "%s", guard)
	if !c.UpdatedAt.IsZero() {
		line("changed", "%s UTC by %s", c.UpdatedAt.UTC().Format(time.DateTime), c.UpdatedBy)
	}
}

func rateText(r float64) string {
	if r == 0 {
		return "unlimited"
	}
	return num(r) + "/s"
}

// count renders an integer with thousands separators: 12,345.
func count(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// num renders a float without trailing zeros: 12.5, 100, 0.333.
func num(v float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}

func percent(r float64) string { return fmt.Sprintf("%.2f%%", r*100) }

func ms(v float64) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1fms", v)
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}
