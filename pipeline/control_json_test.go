package pipeline

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestRampStageJSON(t *testing.T) {
	out, err := json.Marshal([]RampStage{{Rate: 100, Duration: 2 * time.Minute}, {Pace: 2, Duration: 90 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"rate":100,"duration":"2m0s"},{"pace":2,"duration":"1m30s"}]`; string(out) != want {
		t.Errorf("Marshal = %s, want %s", out, want)
	}
	for _, tc := range []struct {
		in   string
		want RampStage
		err  string
	}{
		{`{"rate":100,"duration":"2m"}`, RampStage{Rate: 100, Duration: 2 * time.Minute}, ""},
		{`{"pace":1.5,"duration":90000000000}`, RampStage{Pace: 1.5, Duration: 90 * time.Second}, ""},
		{`{"rate":5}`, RampStage{Rate: 5}, ""},
		{`{"rate":5,"duration":"soon"}`, RampStage{}, `want a duration like "2m"`},
		{`{"rate":5,"duration":true}`, RampStage{}, `want a duration like "2m"`},
		{`{"rate":5,"durtion":"2m"}`, RampStage{}, `unknown field "durtion"`},
	} {
		var got RampStage
		err := json.Unmarshal([]byte(tc.in), &got)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Unmarshal(%s) = %v, want an error containing %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("Unmarshal(%s) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	// Round trip through ControlUpdate, as the control API decodes it.
	var u ControlUpdate
	if err := json.Unmarshal([]byte(`{"mode":"ramp","ramp":[{"rate":100,"duration":"2m"},{"pace":2,"duration":"10m"}]}`), &u); err != nil {
		t.Fatal(err)
	}
	if u.Ramp == nil || len(*u.Ramp) != 2 || (*u.Ramp)[1] != (RampStage{Pace: 2, Duration: 10 * time.Minute}) {
		t.Errorf("ControlUpdate.Ramp = %+v", u.Ramp)
	}
}
