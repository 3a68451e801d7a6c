// Package envexpand expands ${NAME} references to environment variables in
// configuration values, so secrets (a header credential, a catalog password,
// S3 keys) can stay out of configuration files. Only the ${NAME} form is
// expanded; a bare $NAME or anything else after "$" is kept as written, since
// values such as regexes and passwords may contain "$".
package envexpand

import (
	"os"
	"slices"
	"strings"
)

// Expand replaces every ${NAME} in s by the environment variable NAME,
// and returns the names of the variables that are not set (s is then
// unusable). NAME is a shell identifier; anything else after "$", including
// "${" without a closing "}", is kept as it is.
func Expand(s string) (string, []string) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	var missing []string
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			break
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 || !envName(s[i+2:i+2+end]) {
			b.WriteString(s[:i+2])
			s = s[i+2:]
			continue
		}
		name := s[i+2 : i+2+end]
		b.WriteString(s[:i])
		if v, ok := os.LookupEnv(name); ok {
			b.WriteString(v)
		} else if !slices.Contains(missing, name) {
			missing = append(missing, name)
		}
		s = s[i+2+end+1:]
	}
	return b.String(), missing
}

// envName reports whether s is a shell variable name.
func envName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
