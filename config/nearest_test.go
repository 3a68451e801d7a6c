package config

import "testing"

func TestNearest(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"brokerz", "brokers"}, {"wokers", "workers"}, {"max_in_flite", "max_in_flight"}, {"topcis", "topics"},
		{"xyz", ""}, {"target", "target"},
	} {
		if got := nearest(tt.in, []string{"brokers", "workers", "max_in_flight", "topics", "target", "group"}); got != tt.want {
			t.Errorf("nearest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
