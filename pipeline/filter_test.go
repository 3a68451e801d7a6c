package pipeline

import (
	"testing"

	"github.com/replaykit/replay/schemas"
)

func TestFilter(t *testing.T) {
	tests := []struct {
		name   string
		filter FilterConfig
		method string
		path   string
		want   bool
	}{
		{"default GET", FilterConfig{Methods: []string{"GET", "HEAD", "OPTIONS"}}, "GET", "/a", true},
		{"default HEAD", FilterConfig{Methods: []string{"GET", "HEAD", "OPTIONS"}}, "HEAD", "/a", true},
		{"default POST", FilterConfig{Methods: []string{"GET", "HEAD", "OPTIONS"}}, "POST", "/a", false},
		{"methods case-insensitive", FilterConfig{Methods: []string{"post"}}, "POST", "/a", true},
		{"star selects all", FilterConfig{Methods: []string{"*"}}, "DELETE", "/a", true},
		{"include matches", FilterConfig{Methods: []string{"*"}, IncludePaths: []string{"^/v1/"}}, "GET", "/v1/titles", true},
		{"include misses", FilterConfig{Methods: []string{"*"}, IncludePaths: []string{"^/v1/"}}, "GET", "/v2/titles", false},
		{"any include matches", FilterConfig{Methods: []string{"*"}, IncludePaths: []string{"^/v1/", "^/v2/"}}, "GET", "/v2/titles", true},
		{"exclude wins over include", FilterConfig{Methods: []string{"*"}, IncludePaths: []string{"^/v1/"}, ExcludePaths: []string{"/health$"}}, "GET", "/v1/health", false},
		{"exclude misses", FilterConfig{Methods: []string{"*"}, ExcludePaths: []string{"/health$"}}, "GET", "/v1/healthy", true},
		{"method checked before path", FilterConfig{Methods: []string{"GET"}, IncludePaths: []string{"."}}, "PUT", "/x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			c.Filter = tt.filter
			comp, errs := c.compile()
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			x := &schemas.Exchange{Request: schemas.Request{Method: tt.method, Path: tt.path}}
			if got := comp.selector.selected(x); got != tt.want {
				t.Fatalf("selected(%s %s) = %v, want %v", tt.method, tt.path, got, tt.want)
			}
		})
	}
}
