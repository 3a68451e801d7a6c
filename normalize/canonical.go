package normalize

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"
)

// The canonical form of a JSON document is what Result.Production and
// Result.Replay hold and what equality is decided on: compact, object members
// sorted by key bytes, strings and numbers written the RFC 8785 (JCS) way.
//
// Numbers: the parser hands over int64 (integers that fit), float64 (decimals)
// and json.Number (integers beyond int64, decimals with 18 or more fraction
// digits, and everything when the encoding/json fallback parses a body). All
// three are written as the shortest exact decimal in ECMAScript form, so 1,
// 1.0, 1e0 and 10e-1 are all "1", and 12345678901234567890123 keeps every
// digit. Two numbers are equal exactly when their canonical texts are equal.

// encoder writes canonical JSON. It keeps a key stack between calls so that
// encoding allocates nothing once warm; encoders are pooled.
type encoder struct {
	keys []string
}

var encoderPool = sync.Pool{New: func() any { return &encoder{keys: make([]string, 0, 64)} }}

// appendCanonical appends the canonical JSON of v to buf.
func appendCanonical(buf []byte, v any) []byte {
	e := encoderPool.Get().(*encoder)
	buf = e.append(buf, v)
	e.keys = e.keys[:0]
	encoderPool.Put(e)
	return buf
}

func (e *encoder) append(buf []byte, v any) []byte {
	switch t := v.(type) {
	case nil:
		return append(buf, "null"...)
	case bool:
		if t {
			return append(buf, "true"...)
		}
		return append(buf, "false"...)
	case string:
		return appendString(buf, t)
	case int64, float64, json.Number:
		return appendNumber(buf, v)
	case []any:
		buf = append(buf, '[')
		for i, x := range t {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = e.append(buf, x)
		}
		return append(buf, ']')
	case map[string]any:
		start := len(e.keys)
		for k := range t {
			e.keys = append(e.keys, k)
		}
		end := len(e.keys)
		slices.Sort(e.keys[start:end])
		buf = append(buf, '{')
		for i := start; i < end; i++ {
			if i > start {
				buf = append(buf, ',')
			}
			k := e.keys[i] // re-read: nested objects may grow e.keys
			buf = appendString(buf, k)
			buf = append(buf, ':')
			buf = e.append(buf, t[k])
		}
		e.keys = e.keys[:start]
		return append(buf, '}')
	default:
		// Only values built by this package reach the encoder; the
		// conversions in toJSONValue keep it so.
		panic("normalize: cannot encode " + strconv.Quote(typeName(v)))
	}
}

// safeASCII marks the ASCII bytes written as they are inside a string.
var safeASCII = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendString writes s as RFC 8785 does: only '"', '\\' and control
// characters are escaped, everything else is written as UTF-8. Invalid UTF-8
// becomes U+FFFD, as encoding/json does.
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if safeASCII[b] {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch b {
			case '"', '\\':
				buf = append(buf, '\\', b)
			case '\b':
				buf = append(buf, '\\', 'b')
			case '\f':
				buf = append(buf, '\\', 'f')
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, "\uFFFD"...)
			i++
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// isNumber reports whether v is one of the number types a parsed document
// holds.
func isNumber(v any) bool {
	switch v.(type) {
	case int64, float64, json.Number:
		return true
	}
	return false
}

// appendNumber appends the canonical text of a number (int64, float64 or
// json.Number).
func appendNumber(buf []byte, v any) []byte {
	switch t := v.(type) {
	case int64:
		return strconv.AppendInt(buf, t, 10)
	case float64:
		return appendFloat(buf, t)
	case json.Number:
		return appendDecimal(buf, string(t))
	}
	panic("normalize: not a number: " + typeName(v))
}

// appendFloat writes f as ECMAScript's Number.prototype.toString does, which
// is what RFC 8785 prescribes.
func appendFloat(buf []byte, f float64) []byte {
	switch {
	case f == 0: // and -0
		return append(buf, '0')
	case math.IsInf(f, 0) || math.IsNaN(f):
		// ojg turns an exponent past float64's range (1e400) into ±Inf;
		// the digits are gone, so write a number that overflows the same
		// way rather than invalid JSON.
		if f < 0 {
			return append(buf, "-1e+999"...)
		}
		return append(buf, "1e+999"...)
	}
	neg := f < 0
	if neg {
		f = -f
	}
	var tmp [32]byte
	e := strconv.AppendFloat(tmp[:0], f, 'e', -1, 64) // d[.ddd]e±xx
	var digits [24]byte
	nd := 0
	i := 0
	for ; i < len(e) && e[i] != 'e'; i++ {
		if e[i] != '.' {
			digits[nd] = e[i]
			nd++
		}
	}
	exp, _ := strconv.Atoi(string(e[i+1:]))
	for nd > 1 && digits[nd-1] == '0' {
		nd--
	}
	return appendDecimalDigits(buf, neg, digits[:nd], exp+1)
}

// appendDecimal writes the exact decimal value of a JSON number literal in
// canonical form, keeping every significant digit.
func appendDecimal(buf []byte, s string) []byte {
	literal := s
	neg := false
	if s != "" && s[0] == '-' {
		neg = true
		s = s[1:]
	}
	var stack [64]byte
	digits := stack[:0]
	point := 0 // digits before the decimal point
	i := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		digits = append(digits, s[i])
		point++
	}
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			digits = append(digits, s[i])
		}
	}
	exp := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		expNeg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			expNeg = s[i] == '-'
			i++
		}
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			if exp < 1e9 { // saturate: such a number is written in exponent form anyway
				exp = exp*10 + int(s[i]-'0')
			}
		}
		if expNeg {
			exp = -exp
		}
	}
	if i != len(s) {
		// Not a number literal; json.Number only ever holds literals from
		// a parser, but never write invalid JSON.
		return appendString(buf, literal)
	}
	lead := 0
	for lead < len(digits) && digits[lead] == '0' {
		lead++
	}
	digits = digits[lead:]
	point -= lead
	for len(digits) > 0 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
	}
	if len(digits) == 0 {
		return append(buf, '0')
	}
	return appendDecimalDigits(buf, neg, digits, point+exp)
}

// appendDecimalDigits writes 0.digits × 10^n (digits without leading or
// trailing zeros) following ECMAScript's Number::toString: plain notation
// for 1e-7 ≤ |x| < 1e21, exponent notation otherwise. One addition for
// exact numbers: an integer whose every digit is significant stays plain at
// any length, so a 23-digit id reads as one (a float64 never has more than
// 17 significant digits, so this changes nothing for it).
func appendDecimalDigits(buf []byte, neg bool, digits []byte, n int) []byte {
	if neg {
		buf = append(buf, '-')
	}
	k := len(digits)
	switch {
	case k <= n && (n <= 21 || k == n):
		buf = append(buf, digits...)
		for range n - k {
			buf = append(buf, '0')
		}
	case 0 < n && n <= 21:
		buf = append(buf, digits[:n]...)
		buf = append(buf, '.')
		buf = append(buf, digits[n:]...)
	case -6 < n && n <= 0:
		buf = append(buf, '0', '.')
		for range -n {
			buf = append(buf, '0')
		}
		buf = append(buf, digits...)
	default:
		buf = append(buf, digits[0])
		if k > 1 {
			buf = append(buf, '.')
			buf = append(buf, digits[1:]...)
		}
		buf = append(buf, 'e')
		e := n - 1
		if e >= 0 {
			buf = append(buf, '+')
		}
		buf = strconv.AppendInt(buf, int64(e), 10)
	}
	return buf
}

// numberFloat returns the float64 nearest to a number value.
func numberFloat(v any) float64 {
	switch t := v.(type) {
	case int64:
		return float64(t)
	case float64:
		return t
	case json.Number:
		f, _ := strconv.ParseFloat(string(t), 64) // ±Inf when out of range
		return f
	}
	return math.NaN()
}

// numbersEqual reports whether two number values have the same canonical
// text.
func numbersEqual(a, b any) bool {
	if x, ok := a.(int64); ok {
		if y, ok := b.(int64); ok {
			return x == y
		}
	}
	var ta, tb [64]byte
	return string(appendNumber(ta[:0], a)) == string(appendNumber(tb[:0], b))
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case int64, float64, json.Number:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "unsupported type"
}
