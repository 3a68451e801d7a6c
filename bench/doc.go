// Package bench measures replay against baselines taken in the same run on
// the same machine, and renders the table `make bench` prints (through
// cmd/replay-bench) and BENCHMARKS.md quotes. Every line pairs a
// measurement with its baseline, measured back to back, and their ratio:
// on a small, shared machine absolute numbers drift from run to run, the
// ratios hold.
//
// Everything runs on loopback: franz-go's kfake broker on a TCP port, local
// HTTP targets (a small fixed JSON answer, a 5 ms one, one that hangs, one
// answering bodies of a given size), warehouses in a scratch directory.
// The end-to-end run goes through service.Run exactly as `replay run`
// does, in this process, with a CPU profile whose pprof labels split the
// CPU by stage (the pipeline labels its goroutines; the broker, the targets
// and franz-go's goroutines are labelled here). The memory lines run the
// built replay binary as a child process, so the broker holding the
// backlog is not counted in its peak RSS; the peers (GoReplay, vegeta) are
// processes of their own too.
//
// The measurements, one file each: endtoend.go (the whole replay, and the
// size-scaling runs) against barepool.go (a bare net/http pool), sink.go
// (the Iceberg sink against bare pqarrow writes), consume.go (the Kafka
// source and decode against a bare kgo poll loop), rate.go (rate and pace
// accuracy against a scheduled bare pool), compare.go (the batch compare
// against a bare JSON decode), memory.go (peak RSS over a long backlog),
// peers.go. The captures are generated (captures.go): GETs of catalog
// titles with realistic headers and JSON bodies of a chosen size that
// compress about as well as real text.
//
// It is a harness, not a test: it never fails on a slow number, only
// when a measurement could not be taken. Nothing here runs in `make
// test`. github.com/google/pprof/profile (the pprof tool's own parser)
// reads the CPU profile; golang.org/x/text/message prints the numbers.
package bench
