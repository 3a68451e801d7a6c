package suggest

import "testing"

func TestNearest(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"brokerz", "brokers"}, {"wokers", "workers"}, {"max_in_flite", "max_in_flight"}, {"topcis", "topics"},
		{"xyz", ""}, {"target", "target"},
	} {
		if got := Nearest(tt.in, []string{"brokers", "workers", "max_in_flight", "topics", "target", "group"}); got != tt.want {
			t.Errorf("Nearest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
