package schemas

import (
	"fmt"
	"regexp"
	"strings"
)

// The names a user gives that end up in storage: the run ID (a partition
// value of every table, so a directory name in the warehouse, a snapshot
// summary property, and a part of the compare report's path), each level of
// the sink's namespace (a directory of the warehouse), and the consumer group
// (a snapshot summary property that decides whose offsets a table holds).
// They must match NamePattern: 1 to 128 characters, letters, digits, '.',
// '_' and '-', starting with a letter or a digit, with no "..". So a name can
// never be a path separator, a parent directory, an escaped character, a
// comma (run IDs are joined with commas in replay.run-id) or whitespace.
const (
	// NamePattern is what CheckName accepts, besides refusing "..".
	NamePattern = `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`
	// NameMaxLen is the longest name CheckName accepts.
	NameMaxLen = 128
)

var nameRE = regexp.MustCompile(NamePattern)

// CheckName reports why name cannot name a run, a namespace level or a
// consumer group (see NamePattern), or nil. The message quotes the value and
// says what is allowed; callers prefix the field it came from.
func CheckName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("is empty; use 1 to %d letters, digits, '.', '_' or '-'", NameMaxLen)
	case len(name) > NameMaxLen:
		return fmt.Errorf("%q is %d characters long; use at most %d", name[:20]+"…", len(name), NameMaxLen)
	case strings.Contains(name, ".."):
		return fmt.Errorf("%q contains \"..\"; it becomes a directory of the warehouse, so it may not name a parent directory: use letters, digits, '.', '_' or '-' without \"..\"", name)
	case !nameRE.MatchString(name):
		return fmt.Errorf("%q has characters outside [A-Za-z0-9._-] or does not start with a letter or a digit; it becomes a directory of the warehouse and a snapshot property, so use only those (e.g. %q)", name, suggestName(name))
	}

	return nil
}

// suggestName turns name into one CheckName accepts, for an error message.
func suggestName(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		case r == '.' && !strings.HasSuffix(b.String(), "."):
			b.WriteRune(r)
		default:
			if s := b.String(); s != "" && !strings.HasSuffix(s, "-") {
				b.WriteByte('-')
			}
		}
	}
	out := strings.Trim(b.String(), ".-_")
	if out == "" {
		out = "run-1"
	}
	if len(out) > NameMaxLen {
		out = out[:NameMaxLen]
	}

	return out
}
