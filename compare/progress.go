package compare

import (
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/sourcegraph/conc"
	"golang.org/x/term"
)

// progressInterval is how often progress is logged when Options.Progress is
// not a terminal.
var progressInterval = 5 * time.Second

// progress reports rows classified out of the rows the tables hold (each
// side's row counts once, so a joined pair counts two): a bar on a terminal,
// an info line every progressInterval and at the end otherwise. A nil
// *progress reports nothing.
type progress struct {
	total  int64
	done   atomic.Int64
	runID  string
	logger *slog.Logger
	bar    *progressbar.ProgressBar

	mu    sync.Mutex
	phase string

	stop chan struct{}
	wg   conc.WaitGroup
}

func newProgress(w io.Writer, logger *slog.Logger, runID string, total int64) *progress {
	if w == nil {
		return nil
	}
	p := &progress{total: total, runID: runID, logger: logger, phase: "starting"}
	if f, ok := w.(interface{ Fd() uintptr }); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("compare "+runID),
			progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("rows"),
			progressbar.OptionShowIts(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionFullWidth(),
			progressbar.OptionOnCompletion(func() { _, _ = io.WriteString(w, "\n") }),
		)

		return p
	}
	if p.logger == nil {
		p.logger = slog.New(slog.NewTextHandler(w, nil))
	}
	p.stop = make(chan struct{})
	p.wg.Go(func() {
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.log("compare progress")
			}
		}
	})

	return p
}

func (p *progress) setPhase(phase string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.phase = phase
	p.mu.Unlock()
	if p.bar != nil {
		p.bar.Describe("compare " + p.runID + ": " + phase)
	}
}

func (p *progress) add(n int64) {
	if p == nil {
		return
	}
	p.done.Add(n)
	if p.bar != nil {
		_ = p.bar.Add64(n)
	}
}

func (p *progress) log(msg string) {
	p.mu.Lock()
	phase := p.phase
	p.mu.Unlock()
	done := p.done.Load()
	pct := 100.0
	if p.total > 0 {
		pct = float64(done) * 100 / float64(p.total)
	}
	p.logger.Info(msg, "run_id", p.runID, "phase", phase, "rows", done, "total", p.total,
		"percent", float64(int(pct*10))/10)
}

// finish stops the ticker and reports the end.
func (p *progress) finish() {
	if p == nil {
		return
	}
	if p.bar != nil {
		if p.done.Load() < p.total {
			p.bar.ChangeMax64(p.done.Load())
		}
		_ = p.bar.Finish()

		return
	}
	close(p.stop)
	p.wg.Wait()
	p.log("compare progress done")
}
