package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/replaykit/replay/pipeline"
)

// Options say what to measure and how much. DefaultOptions are what
// `make bench` runs.
type Options struct {
	Workers        int           // replay.workers, and the baselines' worker count
	Records        int           // end-to-end records
	Partitions     int32         // partitions of the capture topics
	SinkResults    int           // results (a production and a replay row each) of the sink line
	RateDuration   time.Duration // how long each rate of the rate-accuracy lines runs
	Rates          []float64     // requests per second of the rate-accuracy lines
	Pairs          int           // pairs of the compare line
	Backlog        int           // records of the large backlog of the memory lines
	Window         time.Duration // how long a memory run goes on once replaying
	VegetaDuration time.Duration // how long vegeta attacks
	// ReplayBin is the built replay binary, for the memory lines; empty:
	// those lines are skipped.
	ReplayBin string
	// GoReplay and Vegeta are the peers' binaries, PeerSetupDir where the
	// setup step left its logs (<name>.err when an install failed).
	GoReplay, Vegeta, PeerSetupDir string
	// Sets change the configuration of every replay run (the end-to-end,
	// size-scaling and memory lines) and the sink line's sink, as
	// replay's --set does: "sink.flush.rows=50000".
	Sets []string
	// Only, when not empty, names the measurements to take: e2e, sink,
	// consume, rate, compare, memory, sizes, peers.
	Only       []string
	Dir        string    // scratch directory
	CPUProfile string    // write the end-to-end CPU profile here, when set
	Progress   io.Writer // a line per step
}

// DefaultOptions are the sizes of the issue, with the rate lines
// shortened to 10 s each so the whole run stays under 10 minutes.
func DefaultOptions() Options {
	return Options{
		Workers: 8, Records: 200_000, Partitions: 12, SinkResults: 50_000,
		RateDuration: 10 * time.Second, Rates: []float64{1000, 5000, 10000},
		Pairs: 20_000, Backlog: 1_000_000, Window: 15 * time.Second, VegetaDuration: 5 * time.Second,
		Progress: io.Discard,
	}
}

// e2eSizes are the production bodies of the end-to-end line.
var e2eSizes = Sizes{Min: 1024, Max: 2048}

// Run takes every measurement and returns the table. It fails only when
// a measurement could not be taken (a run failed, rows were missing), never
// because a number missed its goal.
func Run(ctx context.Context, o Options) (*Table, error) {
	began := time.Now()
	r := &runner{o: o, t: &Table{}, began: began}
	r.t.Header = machine(o)
	br, err := startBroker(ctx)
	if err != nil {
		return nil, err
	}
	defer br.close()
	r.br = br
	r.step("produce %d captures (%d–%d byte bodies) to %d partitions", o.Records, e2eSizes.Min, e2eSizes.Max, o.Partitions)
	if r.e2e, err = br.produce(ctx, "captures-e2e", o.Partitions, o.Records, e2eSizes); err != nil {
		return nil, err
	}
	fast := startTarget(ctx, withStamps(max(o.Records, int(slices.Max(o.Rates)*o.RateDuration.Seconds())+1)))
	defer fast.close()
	r.fast = fast
	for _, m := range []struct {
		name string
		run  func(context.Context) error
	}{
		{"e2e", r.endToEnd}, {"sink", r.sink}, {"consume", r.consume}, {"rate", r.rate},
		{"compare", r.compare}, {"memory", r.memory}, {"sizes", r.sizes}, {"peers", r.peers},
	} {
		if len(o.Only) > 0 && !slices.Contains(o.Only, m.name) {
			continue
		}
		if err := m.run(ctx); err != nil {
			return nil, err
		}
	}
	r.t.Notes = append(r.t.Notes, fmt.Sprintf("Whole run: %s.", time.Since(began).Round(time.Second)))
	return r.t, nil
}

type runner struct {
	o     Options
	t     *Table
	br    *broker
	e2e   *topic
	fast  *target
	ours  float64 // end-to-end records/s, for the peers' lines
	n     int     // scratch directories handed out
	began time.Time
}

func (r *runner) step(format string, args ...any) {
	fmt.Fprintf(r.o.Progress, "replay-bench %5s: "+format+"\n",
		append([]any{time.Since(r.began).Round(time.Second).String()}, args...)...)
}

// dir returns a fresh scratch directory.
func (r *runner) dir(name string) string {
	r.n++
	return filepath.Join(r.o.Dir, fmt.Sprintf("%02d-%s", r.n, name))
}

// endToEnd is line 1: the whole replay against a bare pool, with the CPU
// per record by stage.
func (r *runner) endToEnd(ctx context.Context) error {
	o := r.o
	// The baseline runs half before and half after ours, so that load
	// from elsewhere on the machine weighs on both alike. Each half's
	// requests exist only while it runs: held through ours, their maps
	// would give the collector work that is not replay's.
	bareCPU := map[string]time.Duration{}
	half := func(from, to int) (bareResult, error) {
		reqs, err := bareRequests(r.fast.URL, to-from, e2eSizes, from)
		if err != nil {
			return bareResult{}, err
		}
		return profiled(bareCPU, func() (bareResult, error) { return runBarePool(ctx, o.Workers, reqs) })
	}
	r.step("end-to-end: bare pool, first half")
	before, err := half(0, o.Records/2)
	if err != nil {
		return err
	}
	r.step("end-to-end: replay run, %d records, CPU profiled", o.Records)
	cfg, err := runConfig(r.br.addrs, r.e2e, "bench-e2e", r.fast.URL, r.dir("e2e"), o.Workers, o.Sets)
	if err != nil {
		return err
	}
	run, err := runService(ctx, cfg, r.e2e, r.fast, true)
	if err != nil {
		return err
	}
	r.step("end-to-end: bare pool, second half")
	after, err := half(o.Records/2, o.Records)
	if err != nil {
		return err
	}
	if o.CPUProfile != "" {
		if err := os.WriteFile(o.CPUProfile, run.rawCPU, 0o644); err != nil {
			return fmt.Errorf("write CPU profile: %w", err)
		}
	}
	bare := float64(before.requests+after.requests) / (before.elapsed + after.elapsed).Seconds()
	r.ours = run.rate()
	r.t.add(Line{Item: "1", What: fmt.Sprintf("end-to-end: %s records of %d–%d B bodies, %d partitions, %d workers, both tables committed",
		group(float64(o.Records)), e2eSizes.Min, e2eSizes.Max, o.Partitions, o.Workers),
		Ours: perSec(run.rate()), Baseline: "bare net/http pool " + perSec(bare), Ratio: ratio(run.rate(), bare), Goal: "≥ 0.80"})
	bareUS := func(stage string) float64 { return float64(bareCPU[stage].Microseconds()) / float64(o.Records) }
	oursUS := float64(ourCPU(run.cpu).Microseconds()) / float64(run.records)
	r.t.add(Line{What: "CPU µs per record by stage (pprof labels)", Ours: stageSplit(run.cpu, run.records),
		Baseline: fmt.Sprintf("bare pool %.1f (client %.1f, runtime %.1f); target %.1f",
			bareUS(stageBare)+bareUS(stageUnlabeled), bareUS(stageBare), bareUS(stageUnlabeled), bareUS(stageTarget)),
		Ratio: fmt.Sprintf("%.2f (CPU, target included)", (bareUS(stageBare)+bareUS(stageUnlabeled)+bareUS(stageTarget))/(oursUS+float64(run.cpu[stageTarget].Microseconds())/float64(run.records))),
		Goal:  "—"})
	return nil
}

// profiled runs f under a CPU profile and adds its CPU by stage to cpu.
func profiled(cpu map[string]time.Duration, f func() (bareResult, error)) (bareResult, error) {
	p, err := startCPUProfile()
	if err != nil {
		return bareResult{}, err
	}
	res, err := f()
	byStage, perr := p.stop()
	if err != nil {
		return res, err
	}
	for k, v := range byStage {
		cpu[k] += v
	}
	return res, perr
}

// ourStages are replay's own stages in flow order: franz-go's goroutines,
// the pipeline's, and the runtime (garbage collection) they cause.
var ourStages = []string{stageKafkaClient, pipeline.StagePoll, pipeline.StageDecode, pipeline.StageRewrite,
	pipeline.StageHTTP, pipeline.StageAppend, pipeline.StageFlush, stageUnlabeled}

// ourCPU is the CPU of replay's own stages.
func ourCPU(cpu map[string]time.Duration) time.Duration {
	var sum time.Duration
	for _, s := range ourStages {
		sum += cpu[s]
	}
	return sum
}

// stageSplit renders the CPU of a profiled run per record: the
// pipeline's stages in flow order, then the rest of the process.
func stageSplit(cpu map[string]time.Duration, records int) string {
	us := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/float64(records)) }
	var parts []string
	for _, s := range ourStages {
		parts = append(parts, s+" "+us(cpu[s]))
	}
	return fmt.Sprintf("replay %s = %s; target %s, broker %s",
		us(ourCPU(cpu)), strings.Join(parts, ", "), us(cpu[stageTarget]), us(cpu[stageBroker]))
}

// sink is line 2.
func (r *runner) sink(ctx context.Context) error {
	o := r.o
	r.step("sink: %d results through the Iceberg sink, then bare pqarrow", o.SinkResults)
	results := sinkResults("bench-sink", o.SinkResults, e2eSizes)
	full, err := runConfig(nil, r.e2e, "bench-sink", r.fast.URL, r.dir("sink-config"), o.Workers, o.Sets)
	if err != nil {
		return err
	}
	cfg := full.Sink
	ours, err := sinkOurs(ctx, cfg, r.dir("sink"), results)
	if err != nil {
		return err
	}
	bare, err := sinkBare(ctx, cfg, r.dir("pqarrow"), results, ours.cuts)
	if err != nil {
		return err
	}
	codec := cfg.Compression
	if cfg.CompressionLevel != -1 {
		codec += fmt.Sprintf(" level %d", cfg.CompressionLevel)
	}
	r.t.add(Line{Item: "2", What: fmt.Sprintf("sink: %s production + replay rows, %d commits per table (flush every %s rows)",
		group(float64(ours.rows)), len(ours.cuts), group(float64(cfg.Flush.Rows))),
		Ours:     fmt.Sprintf("%s rows (%s)", perSec(ours.rate()), mib(ours.bytes)),
		Baseline: fmt.Sprintf("bare pqarrow, %s, dictionary %s: %s rows (%s)", codec, cfg.Dictionary, perSec(bare.rate()), mib(bare.bytes)),
		Ratio:    ratio(ours.rate(), bare.rate()), Goal: "≥ 0.80"})
	return nil
}

// consume is line 3.
func (r *runner) consume(ctx context.Context) error {
	r.step("consume: bare kgo loop, replay's source and decode, bare kgo loop")
	b1, err := consumeBare(ctx, r.br.addrs, r.e2e, "bench-consume-bare-1")
	if err != nil {
		return err
	}
	ours, err := consumeOurs(ctx, r.br.addrs, r.e2e, "bench-consume")
	if err != nil {
		return err
	}
	b2, err := consumeBare(ctx, r.br.addrs, r.e2e, "bench-consume-bare-2")
	if err != nil {
		return err
	}
	bare := float64(b1.records+b2.records) / (b1.elapsed + b2.elapsed).Seconds()
	r.t.add(Line{Item: "3", What: fmt.Sprintf("consume: %s records read from kfake and decoded", group(float64(ours.records))),
		Ours: perSec(ours.rate()), Baseline: "bare kgo poll loop, counting " + perSec(bare), Ratio: ratio(ours.rate(), bare), Goal: "≥ 0.90"})
	return nil
}

// rate is line 4: fixed rates, then pace mode.
func (r *runner) rate(ctx context.Context) error {
	o := r.o
	for i, rps := range o.Rates {
		n := int(rps * o.RateDuration.Seconds())
		r.step("rate: %.0f/s for %s, replay then a scheduled bare pool", rps, o.RateDuration)
		got, err := replayPaced(ctx, r.fast, o.Workers, n, func(int) time.Duration { return 0 }, func(c *pipeline.Config) {
			c.Replay.Mode, c.Replay.Rate, c.Replay.Burst = pipeline.ModeRate, rps, 1
		})
		if err != nil {
			return err
		}
		ours := rateOf(got, rps)
		period := time.Duration(float64(time.Second) / rps)
		got, err = schedulePaced(ctx, r.fast, o.Workers, n, func(i int) time.Duration { return time.Duration(i) * period })
		if err != nil {
			return err
		}
		bare := rateOf(got, rps)
		item := ""
		if i == 0 {
			item = "4"
		}
		r.t.add(Line{Item: item, What: fmt.Sprintf("rate %s/s for %s: achieved rate", group(rps), o.RateDuration),
			Ours: fmt.Sprintf("%.1f/s", ours.achieved), Baseline: "requested " + perSec(rps),
			Ratio: fmt.Sprintf("%.4f", ours.achieved/rps), Goal: "within 1%"})
		r.t.add(Line{What: fmt.Sprintf("rate %s/s: p99 inter-request gap error", group(rps)),
			Ours: fmt.Sprintf("%d µs", ours.p99Gap.Microseconds()), Baseline: fmt.Sprintf("scheduled bare pool %d µs", bare.p99Gap.Microseconds()),
			Ratio: ratio(float64(ours.p99Gap), float64(bare.p99Gap)), Goal: "—"})
	}
	const pace, n = 4, 4000
	r.step("pace: %d captures in bursts at %d× pace, replay then a scheduled bare pool", n, pace)
	want := burstOffsets(n, pace)
	got, err := replayPaced(ctx, r.fast, o.Workers, n, burstGap, func(c *pipeline.Config) {
		c.Replay.Mode, c.Replay.Pace = pipeline.ModePace, pace
	})
	if err != nil {
		return err
	}
	ours := paceOf(got, want)
	got, err = schedulePaced(ctx, r.fast, o.Workers, n, want)
	if err != nil {
		return err
	}
	bare := paceOf(got, want)
	r.t.add(Line{What: fmt.Sprintf("pace %d×: replayed span over captured span / %d (bursts of 10 at 100 µs, 10 ms apart)", pace, pace),
		Ours: fmt.Sprintf("%.4f", ours.spanRatio), Baseline: "1 (the captured gaps, scaled)", Ratio: fmt.Sprintf("%.4f", ours.spanRatio), Goal: "within 1%"})
	r.t.add(Line{What: fmt.Sprintf("pace %d×: median / p99 error of each arrival vs its scaled capture offset", pace),
		Ours:     fmt.Sprintf("%d / %d µs", ours.median.Microseconds(), ours.p99Offset.Microseconds()),
		Baseline: fmt.Sprintf("scheduled bare pool %d / %d µs", bare.median.Microseconds(), bare.p99Offset.Microseconds()),
		Ratio:    ratio(float64(ours.median), float64(bare.median)), Goal: "—"})
	return nil
}

// compare is line 5.
func (r *runner) compare(ctx context.Context) error {
	r.step("compare: %d pairs, then decoding their bodies", r.o.Pairs)
	res, err := runCompare(ctx, r.dir("compare"), r.o.Pairs)
	if err != nil {
		return err
	}
	pairs := float64(res.pairs)
	r.t.add(Line{Item: "5", What: fmt.Sprintf("compare: %s pairs of 1–2 KiB JSON, 10%% differing: scan, join, normalize, diff, write", group(pairs)),
		Ours: perSec(pairs / res.elapsed.Seconds()), Baseline: "encoding/json decode of both bodies " + perSec(pairs/res.decode.Seconds()),
		Ratio: fmt.Sprintf("%.2f× the decode time", res.elapsed.Seconds()/res.decode.Seconds()), Goal: "≤ 2×"})
	return nil
}

// memory is line 6.
func (r *runner) memory(ctx context.Context) error {
	o := r.o
	if o.ReplayBin == "" {
		r.t.add(Line{Item: "6", What: "memory: peak RSS of replay run", Ours: "skipped: no -replay binary given"})
		return nil
	}
	r.step("memory: produce a backlog of %d captures", o.Backlog)
	big, err := r.br.produce(ctx, "captures-backlog", o.Partitions, o.Backlog, e2eSizes)
	if err != nil {
		return err
	}
	slow := startTarget(ctx, withDelay(5*time.Millisecond))
	defer slow.close()
	hang := startTarget(ctx, withHang())
	defer hang.close()
	for i, c := range []struct {
		name string
		tgt  *target
	}{{"5 ms target", slow}, {"hanging target", hang}} {
		var peaks [2]memoryResult
		for j, t := range []*topic{r.e2e, big} {
			r.step("memory: %s, backlog of %d, %s window", c.name, t.records, o.Window)
			peaks[j], err = measureMemory(ctx, o.ReplayBin, r.br.addrs, t, c.tgt, fmt.Sprintf("bench-memory-%d-%d", i, j), r.dir("memory"), o.Window, o.Sets)
			if err != nil {
				return err
			}
		}
		item := ""
		if i == 0 {
			item = "6"
		}
		r.t.add(Line{Item: item, What: fmt.Sprintf("memory: peak RSS, %s backlog, %s, default budgets, %s window (%s replayed)",
			group(float64(big.records)), c.name, o.Window, group(float64(peaks[1].replayed))),
			Ours: mib(peaks[1].peakRSS), Baseline: fmt.Sprintf("%s backlog: %s", group(float64(r.e2e.records)), mib(peaks[0].peakRSS)),
			Ratio: ratio(float64(peaks[1].peakRSS), float64(peaks[0].peakRSS)), Goal: "≈ 1.00, < 512 MiB"})
	}
	return nil
}

// sizes is line 7.
func (r *runner) sizes(ctx context.Context) error {
	o := r.o
	for i, c := range []struct {
		size, records int
	}{{1 << 10, 40_000}, {16 << 10, 8_000}, {256 << 10, 600}} {
		sz := Sizes{Min: c.size, Max: c.size}
		r.step("size scaling: %d captures of %d KiB bodies", c.records, c.size>>10)
		t, err := r.br.produce(ctx, fmt.Sprintf("captures-%dk", c.size>>10), o.Partitions, c.records, sz)
		if err != nil {
			return err
		}
		// The candidate answers with a body of the same size.
		body := titleBody(1, c.size, newRand(1))
		tgt := startTarget(ctx, withBody(body))
		cfg, err := runConfig(r.br.addrs, t, fmt.Sprintf("bench-size-%d", c.size), tgt.URL, r.dir("size"), o.Workers, o.Sets)
		if err != nil {
			tgt.close()
			return err
		}
		run, err := runService(ctx, cfg, t, tgt, false)
		if err != nil {
			tgt.close()
			return err
		}
		reqs, err := bareRequests(tgt.URL, c.records, sz, 0)
		if err != nil {
			tgt.close()
			return err
		}
		bare, err := runBarePool(ctx, o.Workers, reqs)
		tgt.close()
		if err != nil {
			return err
		}
		item := ""
		if i == 0 {
			item = "7"
		}
		perMiB := func(rate float64, bytes int64, records int) string {
			return fmt.Sprintf("%.1f MiB/s", rate*float64(bytes)/float64(records)/(1<<20))
		}
		r.t.add(Line{Item: item, What: fmt.Sprintf("size scaling: %d KiB bodies (captured and answered), %s records", c.size>>10, group(float64(c.records))),
			Ours:     fmt.Sprintf("%s, %s of capture log", perSec(run.rate()), perMiB(run.rate(), t.bytes, t.records)),
			Baseline: fmt.Sprintf("bare pool %s, %s of responses", perSec(bare.rate()), perMiB(bare.rate(), bare.bytes, bare.requests)),
			Ratio:    ratio(run.rate(), bare.rate()), Goal: "—"})
	}
	return nil
}

// peers is line 8.
func (r *runner) peers(ctx context.Context) error {
	o := r.o
	n := min(o.Records, 50_000)
	reqs, err := bareRequests(r.fast.URL, n, e2eSizes, 0)
	if err != nil {
		return err
	}
	r.step("peers: bare pool, %d requests", n)
	bare, err := runBarePool(ctx, o.Workers, reqs)
	if err != nil {
		return err
	}
	baseline := "bare pool " + perSec(bare.rate())
	ours := Line{Item: "8", What: fmt.Sprintf("peers, %d workers each: replay (line 1, with decode and both Iceberg tables)", o.Workers),
		Ours: perSec(r.ours), Baseline: baseline, Ratio: ratio(r.ours, bare.rate()), Goal: "—"}
	if r.ours == 0 {
		ours.Ours, ours.Ratio = "not measured: run e2e too", "—"
	}
	r.t.add(ours)
	for _, p := range []struct {
		peer
		what string
		run  func(bin, dir string) (peerResult, error)
	}{
		{peer{"goreplay", o.GoReplay, filepath.Join(o.PeerSetupDir, "goreplay.err")},
			fmt.Sprintf("GoReplay, %s requests from a .gor file", group(float64(n))),
			func(bin, dir string) (peerResult, error) { return runGoReplay(ctx, bin, dir, r.fast, o.Workers, reqs) }},
		{peer{"vegeta", o.Vegeta, filepath.Join(o.PeerSetupDir, "vegeta.err")},
			fmt.Sprintf("vegeta attack -rate 0, %s", o.VegetaDuration),
			func(bin, dir string) (peerResult, error) {
				return runVegeta(ctx, bin, dir, r.fast, o.Workers, reqs, o.VegetaDuration)
			}},
	} {
		if why := p.unavailable(); why != "" {
			r.t.add(Line{What: p.what, Ours: "unavailable: " + why, Baseline: baseline, Ratio: "—", Goal: "—"})
			continue
		}
		r.step("peers: %s", p.name)
		dir := r.dir(p.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		res, err := p.run(p.bin, dir)
		if err != nil {
			r.t.add(Line{What: p.what, Ours: "unavailable: " + err.Error(), Baseline: baseline, Ratio: "—", Goal: "—"})
			continue
		}
		r.t.add(Line{What: p.what, Ours: perSec(res.rate()), Baseline: baseline, Ratio: ratio(res.rate(), bare.rate()), Goal: "—"})
	}
	return nil
}

// machine describes where the table was measured.
func machine(o Options) []string {
	model := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
		f.Close()
	}
	host, _ := os.Hostname()
	return []string{
		fmt.Sprintf("replay-bench on %s: %d CPUs (%s), GOMAXPROCS %d, %s %s/%s, %s",
			host, runtime.NumCPU(), model, runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH,
			time.Now().UTC().Format("2006-01-02 15:04 MST")),
		fmt.Sprintf("workers %d; everything on loopback in this process (kfake broker, HTTP targets, warehouses under %s) except the memory lines' replay processes and the peers",
			o.Workers, o.Dir),
	}
}
