package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// rampStageJSON is RampStage as the control API writes it: the duration as
// a Go duration string ("2m0s") rather than nanoseconds.
type rampStageJSON struct {
	Rate     float64         `json:"rate,omitempty"`
	Pace     float64         `json:"pace,omitempty"`
	Duration json.RawMessage `json:"duration"`
}

// MarshalJSON writes the duration as a string like "2m0s".
func (s RampStage) MarshalJSON() ([]byte, error) {
	d, err := json.Marshal(s.Duration.String())
	if err != nil {
		return nil, err
	}
	return json.Marshal(rampStageJSON{Rate: s.Rate, Pace: s.Pace, Duration: d})
}

// UnmarshalJSON reads the duration as a Go duration string ("2m", "90s")
// or as a number of nanoseconds. Unknown fields are an error, so a strict
// decoder of the control API stays strict inside ramp stages.
func (s *RampStage) UnmarshalJSON(b []byte) error {
	var raw rampStageJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("ramp stage: %w", err)
	}
	out := RampStage{Rate: raw.Rate, Pace: raw.Pace}
	if len(raw.Duration) > 0 && string(raw.Duration) != "null" {
		var str string
		var ns int64
		switch {
		case json.Unmarshal(raw.Duration, &str) == nil:
			d, err := time.ParseDuration(str)
			if err != nil {
				return fmt.Errorf("ramp stage duration: want a duration like \"2m\" or \"90s\", got %q", str)
			}
			out.Duration = d
		case json.Unmarshal(raw.Duration, &ns) == nil:
			out.Duration = time.Duration(ns)
		default:
			return fmt.Errorf("ramp stage duration: want a duration like \"2m\" or \"90s\", got %s", raw.Duration)
		}
	}
	*s = out
	return nil
}
