package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/replaykit/replay/admin"
	"github.com/replaykit/replay/pipeline"
	"github.com/replaykit/replay/schemas"
)

// idleSource never has a record; idleSink stores nothing. The pipelines
// built on them are never run: the control API works on a pipeline before
// Run as it does during it.
type idleSource struct{}

func (idleSource) Poll(ctx context.Context) ([]schemas.Record, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
func (idleSource) Commit(context.Context, schemas.Offsets) error { return nil }

type idleSink struct{}

func (idleSink) Add(*schemas.Result) error                              { return nil }
func (idleSink) Buffered() (int, int64)                                 { return 0, 0 }
func (idleSink) Flush(context.Context) (schemas.Offsets, error)         { return schemas.Offsets{}, nil }
func (idleSink) HoldsReplay(schemas.Coordinates) bool                   { return false }
func (idleSink) Close() error                                           { return nil }
func (idleSink) Ping(context.Context) error                             { return nil }
func (idleSink) Resume(context.Context, []schemas.TopicPartition) error { return nil }

func idlePipeline(t *testing.T, logger *slog.Logger) *pipeline.Pipeline {
	t.Helper()
	cfg := pipeline.DefaultConfig()
	cfg.RunID = "ctl-1"
	cfg.Replay.Target = "http://127.0.0.1:1"
	cfg.Replay.Rate = 100
	p, err := pipeline.New(cfg, idleSource{}, idleSink{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// logLines collects log records as "msg k=v k=v" lines.
type logLines struct {
	mu    sync.Mutex
	msgs  []string
	lines []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.Key + "=" + a.Value.String())
		return true
	})
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	return nil
}
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logLines) WithGroup(string) slog.Handler      { return l }

func (l *logLines) find(msg string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for i, m := range l.msgs {
		if m == msg {
			out = append(out, l.lines[i])
		}
	}
	return out
}

func put(t *testing.T, url, body string, header ...string) (int, string) {
	t.Helper()
	return request(t, http.MethodPut, url, body, header...)
}

func TestControlGetAndPut(t *testing.T) {
	logs := &logLines{}
	logger := slog.New(logs)
	p := idlePipeline(t, logger)
	base := start(t, admin.Config{Token: "tok"}, admin.Deps{Stats: p, Control: p}, logger)
	auth := []string{"Authorization", "Bearer tok"}

	code, body := get(t, base+"/v1/control", auth...)
	var st pipeline.ControlStatus
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil {
		t.Fatalf("GET /v1/control = %d %v\n%s", code, err, body)
	}
	if st.Mode != pipeline.ModeRate || st.Rate != 100 || st.EffectiveRate != 100 || st.DialPercent != 100 || st.Paused || st.UpdatedBy != "config" {
		t.Errorf("initial control: %+v", st)
	}

	code, body = put(t, base+"/v1/control", `{"rate": 50, "dial_percent": 12.5, "paused": true, "ramp": [{"rate": 100, "duration": "2m"}]}`,
		append(auth, admin.ActorHeader, "alice@laptop")...)
	if code != http.StatusOK {
		t.Fatalf("PUT /v1/control = %d\n%s", code, body)
	}
	st = pipeline.ControlStatus{}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Rate != 50 || st.DialPercent != 12.5 || !st.Paused || len(st.Ramp) != 1 || st.Ramp[0].Duration.Minutes() != 2 ||
		!strings.HasPrefix(st.UpdatedBy, "alice@laptop from 127.0.0.1:") {
		t.Errorf("after PUT: %+v", st)
	}
	if !strings.Contains(body, `"duration": "2m0s"`) {
		t.Errorf("ramp durations are not strings in %s", body)
	}
	if c := p.Control(); c.Rate != 50 || !c.Paused {
		t.Errorf("the pipeline's control after PUT: %+v", c)
	}
	_, body = get(t, base+"/v1/control", auth...)
	if !strings.Contains(body, `"rate": 50`) || !strings.Contains(body, `"paused": true`) {
		t.Errorf("GET after PUT does not show the change:\n%s", body)
	}

	lines := logs.find("control changed through the admin API")
	if len(lines) != 1 {
		t.Fatalf("admin log lines for the change: %q, want one", lines)
	}
	for _, want := range []string{"actor=alice@laptop", "remote=127.0.0.1:", "run_id=", "from=rate=100 ramp=none dial_percent=100 paused=false",
		"to=rate=50 ramp=100/s:2m0s dial_percent=12.5 paused=true"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("log line %q lacks %q", lines[0], want)
		}
	}
	if pl := logs.find("control changed"); len(pl) != 1 || !strings.Contains(pl[0], "by=alice@laptop from 127.0.0.1:") {
		t.Errorf("pipeline log lines: %q, want one naming who", pl)
	}

	// A request without an actor is anonymous, still with its address.
	if code, body := put(t, base+"/v1/control", `{"paused": false}`, auth...); code != http.StatusOK ||
		!strings.Contains(body, `"updated_by": "anonymous from 127.0.0.1:`) {
		t.Errorf("anonymous PUT = %d\n%s", code, body)
	}
}

func TestControlRejectsBadUpdates(t *testing.T) {
	p := idlePipeline(t, nil)
	base := start(t, admin.Config{}, admin.Deps{Stats: p, Control: p}, nil)
	before := p.Control()
	for _, tc := range []struct {
		name, body string
		fields     []string // the fields named, in order
		msg        string   // in "error"
	}{
		{"unknown field", `{"rat": 5}`, []string{"rat"}, "rat: unknown field (did you mean rate?)"},
		{"every unknown field and bad value", `{"rat": 5, "paused": "yes", "dail_percent": 20, "frobnicate": 1, "rate": "fast"}`,
			[]string{"rat", "paused", "dail_percent", "frobnicate", "rate"},
			"rat: unknown field (did you mean rate?); paused: must be true or false, got string; dail_percent: unknown field (did you mean dial_percent?); " +
				"frobnicate: unknown field; the fields are mode, rate,"},
		{"wrong type", `{"rate": "fast"}`, []string{"rate"}, "must be a number, got string"},
		{"wrong type bool", `{"paused": "yes"}`, []string{"paused"}, "must be true or false"},
		{"invalid values", `{"rate": -1, "burst": 0, "dial_percent": 150}`, []string{"rate", "burst", "dial_percent"}, "rate: must be"},
		{"multiplier below 1", `{"multipliers": {"tv": 0.5}}`, []string{"multipliers.tv"}, "multipliers.tv: must be from 1 to 100"},
		{"ramp without stages", `{"mode": "ramp"}`, []string{"ramp"}, "no stages"},
		{"ramp stage typo", `{"ramp": [{"rate": 5, "durtion": "2m"}]}`, []string{"ramp"}, `unknown field "durtion"`},
		{"ramp stage bad duration", `{"ramp": [{"rate": 5, "duration": "soon"}]}`, []string{"ramp"}, `want a duration like "2m"`},
		{"unknown mode", `{"mode": "warp"}`, []string{"mode"}, "must be rate, pace, ramp or max"},
		{"nothing to change", `{}`, nil, "nothing to change"},
		{"empty body", ``, nil, "empty"},
		{"not JSON", `rate=5`, nil, "not JSON"},
		{"two objects", `{"rate": 1} {"rate": 2}`, nil, "one JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := put(t, base+"/v1/control", tc.body)
			if code != http.StatusBadRequest {
				t.Fatalf("PUT %s = %d, want 400\n%s", tc.body, code, body)
			}
			var eb admin.ErrorBody
			if err := json.Unmarshal([]byte(body), &eb); err != nil {
				t.Fatalf("400 body is not JSON: %v\n%s", err, body)
			}
			var fields []string
			for _, f := range eb.Fields {
				fields = append(fields, f.Field)
				if f.Problem == "" {
					t.Errorf("field %s has no problem text", f.Field)
				}
			}
			if strings.Join(fields, ",") != strings.Join(tc.fields, ",") || !strings.Contains(eb.Error, tc.msg) {
				t.Errorf("PUT %s: error %q, fields %v; want %q naming %v", tc.body, eb.Error, fields, tc.msg, tc.fields)
			}
		})
	}
	after := p.Control()
	if after.Rate != before.Rate || after.Mode != before.Mode || after.DialPercent != before.DialPercent || after.UpdatedBy != "config" {
		t.Errorf("a rejected update changed the control: %+v", after)
	}

	// Only GET and PUT.
	resp, err := http.Post(base+"/v1/control", "application/json", bytes.NewReader([]byte(`{"rate":1}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/control = %d, want 405", resp.StatusCode)
	}
}

func TestControlNeedsTheToken(t *testing.T) {
	p := idlePipeline(t, nil)
	base := start(t, admin.Config{Token: "s3cret"}, admin.Deps{Stats: p, Control: p}, nil)
	if code, _ := get(t, base+"/v1/control"); code != http.StatusUnauthorized {
		t.Errorf("GET /v1/control without the token = %d, want 401", code)
	}
	if code, _ := put(t, base+"/v1/control", `{"paused": true}`, "Authorization", "Bearer wrong"); code != http.StatusUnauthorized {
		t.Errorf("PUT /v1/control with a wrong token = %d, want 401", code)
	}
	if p.Control().Paused {
		t.Error("an unauthorized PUT paused the pipeline")
	}
	if code, _ := get(t, base+"/v1/series"); code != http.StatusUnauthorized {
		t.Errorf("GET /v1/series without the token = %d, want 401", code)
	}
}

func TestControlAbsentWithoutController(t *testing.T) {
	base := start(t, admin.Config{}, admin.Deps{Stats: fakeStats{}}, nil)
	if code, _ := get(t, base+"/v1/control"); code != http.StatusNotFound {
		t.Errorf("GET /v1/control without a controller = %d, want 404", code)
	}
}
