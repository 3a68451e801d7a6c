package pipeline

import (
	"context"
	"runtime/pprof"
)

// The pipeline's goroutines carry the pprof label StageLabel, set to the
// stage they are working on, so a CPU profile of a running replay says
// where the time goes: `go tool pprof -tagfocus stage=http`, or summed by
// label as replay-bench does. Goroutines a stage starts (the HTTP
// transport's connection readers and writers, iceberg-go's writers)
// inherit its label. Switching labels costs a pointer store, so the
// workers switch per request.
const StageLabel = "stage"

// Values of StageLabel.
const (
	StagePoll    = "poll"    // Source.Poll: the Kafka client's records turned into schemas.Record
	StageDecode  = "decode"  // decoding envelopes, redaction, filter, dial, dispatch
	StageRewrite = "rewrite" // the rewrite rules and the replay row's request
	StageHTTP    = "http"    // the request to the target, the response and its row
	StageAppend  = "append"  // Sink.Add: rows into Arrow builders
	StageFlush   = "flush"   // Sink.Flush and the source commit: Parquet files and Iceberg commits
)

// Label contexts, built once. They carry labels only: they are never used
// for cancellation or values.
var (
	stagePoll    = stageContext(StagePoll)
	stageDecode  = stageContext(StageDecode)
	stageRewrite = stageContext(StageRewrite)
	stageHTTP    = stageContext(StageHTTP)
	stageAppend  = stageContext(StageAppend)
	stageFlush   = stageContext(StageFlush)
)

func stageContext(stage string) context.Context {
	return pprof.WithLabels(context.Background(), pprof.Labels(StageLabel, stage))
}

// enterStage labels the calling goroutine with the stage of labels, a
// context from stageContext.
func enterStage(labels context.Context) { pprof.SetGoroutineLabels(labels) }
