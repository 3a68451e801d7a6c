package normalize

import "testing"

func TestLineageDiffers(t *testing.T) {
	for _, c := range []struct {
		a, b map[string]string
		want bool
	}{
		{nil, nil, false},
		{map[string]string{"s": "1"}, nil, false},
		{map[string]string{"s": "1"}, map[string]string{"s": "1"}, false},
		{map[string]string{"s": "1", "t": "2"}, map[string]string{"s": "1"}, false},
		{map[string]string{"s": "1"}, map[string]string{"u": "9"}, false}, // no shared key
		{map[string]string{"s": "1"}, map[string]string{"s": "2"}, true},
		{map[string]string{"s": "1", "t": "2", "u": "3"}, map[string]string{"t": "9"}, true},
	} {
		if got := LineageDiffers(c.a, c.b); got != c.want {
			t.Errorf("LineageDiffers(%v, %v) = %v, want %v", c.a, c.b, got, c.want)
		}
		if got := LineageDiffers(c.b, c.a); got != c.want {
			t.Errorf("LineageDiffers(%v, %v) = %v, want %v", c.b, c.a, got, c.want)
		}
	}
}
