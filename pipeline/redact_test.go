package pipeline

import (
	"strings"
	"testing"

	"github.com/replaykit/replay/schemas"
)

func TestRedactBody(t *testing.T) {
	paths := []string{"$.password", "$.card.number", "$..token", "$.items[*].secret"}
	tests := []struct {
		name, in, want string
	}{
		{"top-level field", `{"user":"ann","password":"p"}`, `{"password":"REDACTED","user":"ann"}`},
		{"nested field, numbers keep their digits", `{"card":{"number":4111111111111111111,"cvv":1.50}}`, `{"card":{"cvv":1.50,"number":"REDACTED"}}`},
		{"any depth", `{"token":"a","x":{"token":"b","y":[{"token":{"deep":1}}]}}`, `{"token":"REDACTED","x":{"token":"REDACTED","y":[{"token":"REDACTED"}]}}`},
		{"array elements", `{"items":[{"secret":1},{"secret":2,"keep":"<&>"}]}`, `{"items":[{"secret":"REDACTED"},{"keep":"<&>","secret":"REDACTED"}]}`},
		{"top-level array", `[{"token":"a"}]`, `[{"token":"REDACTED"}]`},
		{"whitespace around", " \n{\"password\":\"p\"}\n", `{"password":"REDACTED"}`},
		{"nothing selected: untouched bytes", `{ "user" : "ann" }`, `{ "user" : "ann" }`},
		{"not JSON", `password=hunter2`, `password=hunter2`},
		{"invalid JSON", `{"password":"p"`, `{"password":"p"`},
		{"two documents (NDJSON)", "{\"password\":\"p\"}\n{\"password\":\"q\"}", "{\"password\":\"p\"}\n{\"password\":\"q\"}"},
		{"a scalar", `"password"`, `"password"`},
		{"empty", ``, ``},
	}
	c := validConfig()
	c.RedactBodyPaths = paths
	comp, errs := c.compile()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			orig := string(in)
			got := comp.redactor.body(in)
			if string(got) != tt.want {
				t.Fatalf("body(%s) = %s, want %s", tt.in, got, tt.want)
			}
			if string(in) != orig {
				t.Fatalf("the input was modified: %s", in)
			}
		})
	}
}

func TestRedactExchangeCopiesOnlyWhenNeeded(t *testing.T) {
	c := validConfig()
	c.RedactBodyPaths = []string{"$.password"}
	comp, _ := c.compile()
	clean := &schemas.Exchange{Request: schemas.Request{Body: []byte(`{"a":1}`)}, Response: &schemas.Response{Body: []byte("x")}}
	if comp.redactor.exchange(clean) != clean {
		t.Error("an exchange with nothing to redact was copied")
	}
	secret := &schemas.Exchange{Request: schemas.Request{Body: []byte(`{"password":"p"}`)}, Response: &schemas.Response{Body: []byte(`{"password":"q"}`)}}
	got := comp.redactor.exchange(secret)
	if got == secret || string(secret.Request.Body) != `{"password":"p"}` || string(secret.Response.Body) != `{"password":"q"}` {
		t.Fatal("the original exchange was modified")
	}
	if string(got.Request.Body) != `{"password":"REDACTED"}` || string(got.Response.Body) != `{"password":"REDACTED"}` {
		t.Fatalf("redacted bodies %s / %s", got.Request.Body, got.Response.Body)
	}
}

func TestCompileBodyPath(t *testing.T) {
	for _, ok := range []string{"$.password", "$..token", "$.a[0].b", "$.items[*].secret", "$['odd key']", "$[?(@.kind == 'card')].number"} {
		if _, err := compileBodyPath(ok); err != nil {
			t.Errorf("compileBodyPath(%q) = %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"password": "must start at the document root",
		"$.a[":     "invalid JSONPath",
		"$":        "selects the whole body",
		"$..":      `ends with ".."`,
	} {
		if _, err := compileBodyPath(bad); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("compileBodyPath(%q) = %v, want an error containing %q", bad, err, want)
		}
	}
}
