package admin_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/replaykit/replay/admin"
	"github.com/replaykit/replay/pipeline"
)

func TestParseRamp(t *testing.T) {
	got, err := admin.ParseRamp("100/s:2m, 500/s:5m,2x:10m,0.5×:90s")
	want := []pipeline.RampStage{
		{Rate: 100, Duration: 2 * time.Minute}, {Rate: 500, Duration: 5 * time.Minute},
		{Pace: 2, Duration: 10 * time.Minute}, {Pace: 0.5, Duration: 90 * time.Second},
	}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("ParseRamp = %+v, %v; want %+v", got, err, want)
	}
	if s := admin.RampString(got); s != "100/s:2m0s,500/s:5m0s,2x:10m0s,0.5x:1m30s" {
		t.Errorf("RampString = %q", s)
	}
	if again, err := admin.ParseRamp(admin.RampString(got)); err != nil || !slices.Equal(again, want) {
		t.Errorf("RampString does not round-trip: %+v, %v", again, err)
	}
	for _, tc := range []struct{ spec, want string }{
		{"100/s", `stage 1 "100/s": no duration`},
		{"100/s:2m,500:5m", `stage 2 "500:5m": "500" is neither a rate`},
		{"100/s:soon", `duration "soon" is not a positive duration`},
		{"100/s:-2m", `is not a positive duration`},
		{"0/s:2m", `"0/s" is not a positive number`},
		{"fast/s:2m", `"fast/s" is not a positive number`},
		{"", `stage 1 "": no duration`},
	} {
		if _, err := admin.ParseRamp(tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRamp(%q) = %v, want an error containing %q", tc.spec, err, tc.want)
		}
	}
}
