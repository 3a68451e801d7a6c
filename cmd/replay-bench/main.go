// Command replay-bench measures replay against baselines taken in the same
// run, on this machine, and prints one table (see BENCHMARKS.md): the
// end-to-end replay against a bare net/http pool, the sink against bare
// pqarrow writes, consumption against a bare kgo loop, rate and pace
// accuracy, compare against a bare JSON decode, peak memory over a long
// backlog, payload size scaling, and GoReplay and vegeta as peers. It
// exits 1 only when a measurement could not be taken, never because a
// number missed its goal. `make bench` runs it; the measurements live in
// package bench, this file only wires flags.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/replaykit/replay/bench"
)

func main() {
	o := bench.DefaultOptions()
	o.Progress = os.Stderr
	flag.IntVar(&o.Workers, "workers", o.Workers, "replay.workers, and the baselines' worker count")
	flag.IntVar(&o.Records, "records", o.Records, "captures of the end-to-end line")
	flag.IntVar(&o.SinkResults, "sink-results", o.SinkResults, "results of the sink line (a production and a replay row each)")
	flag.DurationVar(&o.RateDuration, "rate-duration", o.RateDuration, "how long each rate of the rate-accuracy lines runs")
	flag.IntVar(&o.Pairs, "pairs", o.Pairs, "pairs of the compare line")
	flag.IntVar(&o.Backlog, "backlog", o.Backlog, "captures of the large backlog of the memory lines")
	flag.DurationVar(&o.Window, "memory-window", o.Window, "how long each memory run replays before its peak RSS is read")
	flag.DurationVar(&o.VegetaDuration, "vegeta-duration", o.VegetaDuration, "how long vegeta attacks")
	flag.StringVar(&o.ReplayBin, "replay", "", "the built replay binary, for the memory lines (make build); empty skips them")
	flag.StringVar(&o.GoReplay, "goreplay", "", "GoReplay binary (make bench-setup installs it)")
	flag.StringVar(&o.Vegeta, "vegeta", "", "vegeta binary (make bench-setup installs it)")
	flag.StringVar(&o.PeerSetupDir, "peer-logs", "", "where make bench-setup left <peer>.err when an install failed")
	flag.StringVar(&o.CPUProfile, "cpuprofile", "", "write the end-to-end run's CPU profile (with stage labels) to this file")
	flag.Func("set", "change a field of every replay run's configuration, as replay run --set does (repeatable): -set sink.flush.rows=50000",
		func(v string) error { o.Sets = append(o.Sets, v); return nil })
	flag.Func("only", "take only these measurements, comma-separated: e2e, sink, consume, rate, compare, memory, sizes, peers",
		func(v string) error { o.Only = strings.Split(v, ","); return nil })
	flag.Parse()
	os.Exit(run(o))
}

func run(o bench.Options) int {
	dir, err := os.MkdirTemp("", "replay-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "replay-bench:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	o.Dir = dir
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	t, err := bench.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "replay-bench:", err)
		return 1
	}
	t.Print(os.Stdout)
	return 0
}
