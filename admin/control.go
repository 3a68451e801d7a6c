package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"unicode"

	"github.com/replaykit/replay/internal/suggest"
	"github.com/replaykit/replay/pipeline"
)

// Controller reads and changes the live control of a run;
// *pipeline.Pipeline is one.
type Controller interface {
	Control() pipeline.ControlStatus
	UpdateControl(u pipeline.ControlUpdate, who string) (pipeline.ControlStatus, error)
}

var _ Controller = (*pipeline.Pipeline)(nil)

// ActorHeader names who makes a control change (replay ctl sends
// user@host); the admin server adds the client's address.
const ActorHeader = "X-Replay-Actor"

// maxControlBody bounds a PUT /v1/control body.
const maxControlBody = 1 << 20

// controlFields are the fields of a ControlUpdate as JSON names, for
// messages.
var controlFields = []string{"mode", "rate", "burst", "pace", "ramp", "dial_percent", "multipliers", "multiplier_default", "paused"}

// FieldProblem is one problem with a field of a request body.
type FieldProblem struct {
	Field   string `json:"field"`
	Problem string `json:"problem"`
}

// ErrorBody is the JSON body of every 4xx and 5xx answer of /v1/control:
// the error, and for a bad request the problem with each field.
type ErrorBody struct {
	Error  string         `json:"error"`
	Fields []FieldProblem `json:"fields,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "render JSON: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(raw, '\n'))
}

func (s *Server) getControl(w http.ResponseWriter, _ *http.Request) {
	st := s.deps.Control.Control()
	writeJSON(w, http.StatusOK, st)
}

// putControl applies a ControlUpdate. The body is decoded strictly: an
// unknown field, a wrong type or trailing data is a 400 naming the field;
// so is a change the pipeline rejects. The 200 answer is sent once the
// change is in force.
func (s *Server) putControl(w http.ResponseWriter, r *http.Request) {
	u, problem := decodeControlUpdate(http.MaxBytesReader(w, r.Body, maxControlBody))
	if problem != nil {
		writeJSON(w, http.StatusBadRequest, problem)
		return
	}
	actor := actorOf(r)
	who := actor + " from " + r.RemoteAddr
	before := s.deps.Control.Control()
	st, err := s.deps.Control.UpdateControl(u, who)
	if err != nil {
		fields := fieldProblems(err)
		if len(fields) == 0 {
			writeJSON(w, http.StatusInternalServerError, ErrorBody{Error: err.Error()})
			return
		}
		s.log.Warn("control change refused", "actor", actor, "remote", r.RemoteAddr, "err", err)
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "invalid control update: " + joinProblems(fields), Fields: fields})
		return
	}
	from, to := controlDiff(before.Control, st.Control)
	s.log.Info("control changed through the admin API", "run_id", s.deps.RunID, "actor", actor, "remote", r.RemoteAddr,
		"from", from, "to", to)
	writeJSON(w, http.StatusOK, st)
}

// decodeControlUpdate reads one JSON object into a ControlUpdate, strictly.
// Every unknown field and every value of the wrong type is reported, each
// with its field, not only the first.
func decodeControlUpdate(body io.Reader) (pipeline.ControlUpdate, *ErrorBody) {
	var u pipeline.ControlUpdate
	dec := json.NewDecoder(body)
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return u, decodeProblem(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return u, &ErrorBody{Error: "invalid control update: the body must hold one JSON object and nothing after it"}
	}
	if problems := fieldDecodeProblems(raw); len(problems) > 0 {
		return u, &ErrorBody{Error: "invalid control update: " + joinProblems(problems), Fields: problems}
	}
	strict := json.NewDecoder(bytes.NewReader(raw))
	strict.DisallowUnknownFields()
	if err := strict.Decode(&u); err != nil {
		return u, decodeProblem(err)
	}
	if u.Mode == nil && u.Rate == nil && u.Burst == nil && u.Pace == nil && u.Ramp == nil && u.DialPercent == nil &&
		u.Multipliers == nil && u.MultiplierDefault == nil && u.Paused == nil {
		return u, &ErrorBody{Error: "invalid control update: nothing to change; set at least one of " + strings.Join(controlFields, ", ")}
	}
	return u, nil
}

// fieldDecodeProblems checks each field of a JSON object on its own, in
// the order given: an unknown field (with the nearest known one) or a value
// that does not decode is a problem. It returns nil for anything but an
// object, which the strict decode then explains.
func fieldDecodeProblems(raw json.RawMessage) []FieldProblem {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	var out []FieldProblem
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil
		}
		name, _ := t.(string)
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil
		}
		if !slices.Contains(controlFields, name) {
			problem := "unknown field; the fields are " + strings.Join(controlFields, ", ")
			if s := suggest.Nearest(name, controlFields); s != "" {
				problem = "unknown field (did you mean " + s + "?)"
			}
			out = append(out, FieldProblem{Field: name, Problem: problem})
			continue
		}
		one, _ := json.Marshal(map[string]json.RawMessage{name: value})
		var u pipeline.ControlUpdate
		if err := json.Unmarshal(one, &u); err != nil {
			if eb := decodeProblem(err); len(eb.Fields) > 0 {
				out = append(out, eb.Fields...)
			} else {
				out = append(out, FieldProblem{Field: name, Problem: strings.TrimPrefix(eb.Error, "invalid control update: ")})
			}
		}
	}
	return out
}

// decodeProblem explains a JSON decoding error, naming the field when
// there is one.
func decodeProblem(err error) *ErrorBody {
	var (
		typeErr   *json.UnmarshalTypeError
		syntaxErr *json.SyntaxError
		tooLarge  *http.MaxBytesError
	)
	switch {
	case errors.As(err, &tooLarge):
		return &ErrorBody{Error: fmt.Sprintf("invalid control update: the body is larger than %d bytes", tooLarge.Limit)}
	case errors.As(err, &syntaxErr):
		return &ErrorBody{Error: fmt.Sprintf("invalid control update: not JSON at byte %d: %v", syntaxErr.Offset, err)}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &ErrorBody{Error: "invalid control update: the body is empty or cut short; send a JSON object such as {\"rate\": 200}"}
	case errors.As(err, &typeErr) && typeErr.Field != "":
		field := typeErr.Field
		p := FieldProblem{Field: field, Problem: fmt.Sprintf("must be %s, got %s", jsonKind(typeErr.Type.String()), typeErr.Value)}
		return &ErrorBody{Error: "invalid control update: " + p.Field + ": " + p.Problem, Fields: []FieldProblem{p}}
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		p := FieldProblem{Field: name, Problem: "unknown field; the fields are " + strings.Join(controlFields, ", ")}
		return &ErrorBody{Error: "invalid control update: " + name + ": unknown field", Fields: []FieldProblem{p}}
	}
	if strings.Contains(msg, "ramp stage") {
		p := FieldProblem{Field: "ramp", Problem: strings.TrimPrefix(msg, "json: ")}
		return &ErrorBody{Error: "invalid control update: ramp: " + p.Problem, Fields: []FieldProblem{p}}
	}
	return &ErrorBody{Error: "invalid control update: " + msg}
}

// jsonKind names a Go type the way a JSON client thinks of it.
func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "*"):
		return jsonKind(goType[1:])
	case strings.HasPrefix(goType, "float"), strings.HasPrefix(goType, "int"):
		return "a number"
	case goType == "bool":
		return "true or false"
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "map["):
		return "an object of numbers"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	}
	return "a " + goType
}

// fieldProblems collects the *pipeline.FieldError values in err's tree.
func fieldProblems(err error) []FieldProblem {
	var out []FieldProblem
	var walk func(error)
	walk = func(e error) {
		if fe, ok := e.(*pipeline.FieldError); ok {
			out = append(out, FieldProblem{Field: fe.Field, Problem: fe.Problem})
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, c := range u.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			if c := u.Unwrap(); c != nil {
				walk(c)
			}
		}
	}
	walk(err)
	return out
}

func joinProblems(ps []FieldProblem) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.Field + ": " + p.Problem
	}
	return strings.Join(parts, "; ")
}

// actorOf returns the actor the client names in ActorHeader, cleaned up for
// logs (printable, at most 100 characters), or "anonymous".
func actorOf(r *http.Request) string {
	a := strings.Map(func(c rune) rune {
		if unicode.IsPrint(c) {
			return c
		}
		return -1
	}, strings.TrimSpace(r.Header.Get(ActorHeader)))
	if rs := []rune(a); len(rs) > 100 {
		a = string(rs[:100])
	}
	if a == "" {
		return "anonymous"
	}
	return a
}

// controlDiff renders the fields that differ between a and b, as
// "rate=100 paused=false" → "rate=50 paused=true".
func controlDiff(a, b pipeline.Control) (from, to string) {
	var f, t []string
	add := func(name string, x, y any) {
		xs, ys := fmt.Sprint(x), fmt.Sprint(y)
		if xs != ys {
			f = append(f, name+"="+xs)
			t = append(t, name+"="+ys)
		}
	}
	add("mode", a.Mode, b.Mode)
	add("rate", a.Rate, b.Rate)
	add("burst", a.Burst, b.Burst)
	add("pace", a.Pace, b.Pace)
	add("ramp", RampString(a.Ramp), RampString(b.Ramp))
	add("dial_percent", a.DialPercent, b.DialPercent)
	add("multipliers", multipliersString(a.Multipliers), multipliersString(b.Multipliers))
	add("multiplier_default", a.MultiplierDefault, b.MultiplierDefault)
	add("paused", a.Paused, b.Paused)
	if len(f) == 0 {
		return "unchanged", "unchanged"
	}
	return strings.Join(f, " "), strings.Join(t, " ")
}

func multipliersString(m map[string]float64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%v", k, m[k])
	}
	return strings.Join(parts, ",")
}
