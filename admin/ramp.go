package admin

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/replaykit/replay/pipeline"
)

// ParseRamp reads ramp stages in the compact syntax of replay ctl set
// --ramp: stages separated by commas, each a rate or a pace multiple and a
// duration, "100/s:2m,500/s:5m,2x:10m" = 100 requests per second for two
// minutes, then 500/s for five, then twice the captured pace for ten (held
// after). Durations are Go durations (90s, 2m, 1h30m).
func ParseRamp(spec string) ([]pipeline.RampStage, error) {
	var stages []pipeline.RampStage
	for i, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		fail := func(why string) error {
			return fmt.Errorf("ramp stage %d %q: %s; write stages like 100/s:2m or 2x:10m, separated by commas", i+1, part, why)
		}
		load, dur, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fail("no duration after a colon")
		}
		d, err := time.ParseDuration(strings.TrimSpace(dur))
		if err != nil || d <= 0 {
			return nil, fail(fmt.Sprintf("duration %q is not a positive duration like 90s or 2m", dur))
		}
		load = strings.TrimSpace(load)
		var st pipeline.RampStage
		switch {
		case strings.HasSuffix(load, "/s"):
			st.Rate, err = strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(load, "/s")), 64)
		case strings.HasSuffix(load, "x"), strings.HasSuffix(load, "×"):
			st.Pace, err = strconv.ParseFloat(strings.TrimSpace(strings.TrimRight(load, "x×")), 64)
		default:
			return nil, fail(fmt.Sprintf("%q is neither a rate (100/s) nor a pace multiple (2x)", load))
		}
		if err != nil || st.Rate < 0 || st.Pace < 0 || (st.Rate == 0 && st.Pace == 0) {
			return nil, fail(fmt.Sprintf("%q is not a positive number", load))
		}
		st.Duration = d
		stages = append(stages, st)
	}
	return stages, nil
}

// RampString renders ramp stages in the syntax ParseRamp reads:
// "100/s:2m0s,2x:10m0s"; "none" when there are none.
func RampString(stages []pipeline.RampStage) string {
	if len(stages) == 0 {
		return "none"
	}
	parts := make([]string, len(stages))
	for i, s := range stages {
		if s.Pace > 0 {
			parts[i] = fmt.Sprintf("%vx:%v", s.Pace, s.Duration)
		} else {
			parts[i] = fmt.Sprintf("%v/s:%v", s.Rate, s.Duration)
		}
	}
	return strings.Join(parts, ",")
}
