package schemas

import (
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want string // "" accepted, else a part of the message
	}{
		{"run-42", ""},
		{"checkout.v2_try-1", ""},
		{"demo-20261203-150405.000", ""},
		{"0", ""},
		{strings.Repeat("a", NameMaxLen), ""},
		{"", "is empty"},
		{strings.Repeat("a", NameMaxLen+1), "129 characters long"},
		{"..", `contains ".."`},
		{"../x", `contains ".."`},
		{"a..b", `contains ".."`},
		{"a/b", `"a/b" has characters outside [A-Za-z0-9._-]`},
		{"/abs", "has characters outside"},
		{`a\b`, "has characters outside"},
		{"a,b", "has characters outside"}, // run IDs are joined with commas
		{"a b", "has characters outside"},
		{"a%2Fb", "has characters outside"},
		{"run\n1", "has characters outside"},
		{"ünï", "has characters outside"},
		{".hidden", "does not start with a letter or a digit"},
		{"-x", "does not start with a letter or a digit"},
		{"_x", "does not start with a letter or a digit"},
	} {
		err := CheckName(tc.name)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckName(%q) = %v, want nil", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("CheckName(%q) = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

// The name an error message suggests is accepted.
func TestSuggestNameIsAccepted(t *testing.T) {
	for _, in := range []string{"a/b", "../x", " run 1 ", "ünï", "...", "a,,b", "-x-", strings.Repeat("/a", 200)} {
		if got := suggestName(in); CheckName(got) != nil {
			t.Errorf("suggestName(%q) = %q, which CheckName refuses: %v", in, got, CheckName(got))
		}
	}
}
