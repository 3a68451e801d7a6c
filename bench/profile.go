package bench

import (
	"bytes"
	"fmt"
	"runtime/pprof"
	"time"

	"github.com/google/pprof/profile"

	"github.com/replaykit/replay/pipeline"
)

// The label every goroutine of a measured run carries: the pipeline's own
// stages (pipeline.Stage*), and the harness's below.
const (
	stageLabel       = pipeline.StageLabel
	stageBroker      = "broker"       // kfake, serving fetches
	stageTarget      = "target"       // the local HTTP target
	stageKafkaClient = "kafka-client" // franz-go's own goroutines in the replay process: fetching, decompressing, group heartbeats
	stageBare        = "bare"         // a baseline's goroutines
	stageUnlabeled   = "runtime"      // no label: the garbage collector's workers, the scheduler
)

// cpuProfile records a CPU profile until stop is called, then returns the
// CPU time of every value of the stage label.
type cpuProfile struct {
	buf bytes.Buffer
}

func startCPUProfile() (*cpuProfile, error) {
	p := &cpuProfile{}
	if err := pprof.StartCPUProfile(&p.buf); err != nil {
		return nil, fmt.Errorf("start CPU profile: %w", err)
	}
	return p, nil
}

// stop ends the profile and sums its samples by stage; the raw profile is
// in p.buf for -cpuprofile.
func (p *cpuProfile) stop() (map[string]time.Duration, error) {
	pprof.StopCPUProfile()
	prof, err := profile.Parse(bytes.NewReader(p.buf.Bytes()))
	if err != nil {
		return nil, fmt.Errorf("parse CPU profile: %w", err)
	}
	cpu := -1
	for i, st := range prof.SampleType {
		if st.Type == "cpu" {
			cpu = i
		}
	}
	if cpu < 0 {
		return nil, fmt.Errorf("CPU profile has no cpu sample type: %v", prof.SampleType)
	}
	out := map[string]time.Duration{}
	for _, s := range prof.Sample {
		stage := stageUnlabeled
		if v := s.Label[stageLabel]; len(v) > 0 {
			stage = v[0]
		}
		out[stage] += time.Duration(s.Value[cpu])
	}
	return out, nil
}
