package mongo

import (
	"encoding/hex"
	"fmt"
	"math"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/dmp-fhir/dmp-fhir/fhir"
)

// Sortable keys. Every ordered value (a date's bounds, a number) is stored
// as a fixed-width string whose byte order is the order of the values, so
// that string comparisons on "param|key" are numeric comparisons within a
// parameter, and so that a range can also be written as a regular
// expression over one array element (see rangeRE).

const (
	decimalDigits = "0123456789"
	hexDigits     = "0123456789abcdef"
	dateKeyWidth  = 16
)

// dateKey is the sortable key of an instant in Unix milliseconds: the
// milliseconds since fhir.MinDate (0001-01-01), so that negative instants
// need no sign, as 16 decimal digits. Instants outside [MinDate,
// MinDate+10^16) are clamped (fhir.MinDate..MaxDate fit with room to spare).
func dateKey(ms int64) string {
	v := ms - fhir.MinDate
	if ms < fhir.MinDate {
		v = 0
	}
	if v > 9999999999999999 || v < 0 { // v < 0: overflow of a huge ms
		v = 9999999999999999
	}
	return fmt.Sprintf("%016d", v)
}

// dateKeyAtLeast is the key of the smallest whole millisecond >= x, and
// dateKeyAtMost of the largest <= x: query bounds arrive as float64.
func dateKeyAtLeast(x float64) string { return dateKey(clampMS(math.Ceil(x))) }
func dateKeyAtMost(x float64) string  { return dateKey(clampMS(math.Floor(x))) }

func clampMS(x float64) int64 {
	switch {
	case math.IsNaN(x):
		return 0
	case x < float64(fhir.MinDate):
		return fhir.MinDate
	case x > 9e15:
		return 9e15
	}
	return int64(x)
}

// numKey is the sortable key of a float64: its IEEE bits with the sign bit
// flipped for a positive number and all bits flipped for a negative one, as
// 16 hex digits. -0 is 0; NaN has no key.
func numKey(v float64) (string, bool) {
	if math.IsNaN(v) {
		return "", false
	}
	if v == 0 {
		v = 0 // -0
	}
	b := math.Float64bits(v)
	if b>>63 == 0 {
		b ^= 1 << 63
	} else {
		b = ^b
	}
	return fmt.Sprintf("%016x", b), true
}

// invertFixed reverses the order of fixed-width keys over alphabet: each
// digit d becomes its mirror, so a > b iff invertFixed(a) < invertFixed(b).
func invertFixed(s, alphabet string) string {
	b := []byte(s)
	n := len(alphabet) - 1
	for i, c := range b {
		b[i] = alphabet[n-strings.IndexByte(alphabet, c)]
	}
	return string(b)
}

// invertString reverses the byte order of arbitrary strings: each byte b
// becomes the two hex digits of 255-b, and a final "~" (above every hex
// digit) makes a string sort after its own extensions. So a < b iff
// invertString(a) > invertString(b), for all strings.
func invertString(s string) string {
	b := make([]byte, len(s))
	for i := 0; i < len(s); i++ {
		b[i] = 255 - s[i]
	}
	return hex.EncodeToString(b) + "~"
}

// sortStringMax bounds the bytes of a string sort key: strings that share
// their first sortStringMax bytes sort as equal (then by id).
const sortStringMax = 64

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// rangeRE is a regular expression (no anchors) matching exactly the
// strings of the width of lo and hi over alphabet (ordered, no regexp
// metacharacters) that lie in [lo, hi]. Its size is linear in the width.
// It lets one array element be tested against both bounds of a range,
// which two comparison operators on an array field cannot do (each may be
// met by a different element).
func rangeRE(lo, hi, alphabet string) string {
	n := len(lo)
	if n == 0 {
		return ""
	}
	first, last := alphabet[0], alphabet[len(alphabet)-1]
	if lo == strings.Repeat(string(first), n) && hi == strings.Repeat(string(last), n) {
		return anyRE(alphabet, n)
	}
	if lo == hi {
		return lo
	}
	if lo[0] == hi[0] {
		return lo[:1] + rangeRE(lo[1:], hi[1:], alphabet)
	}
	// lo[0] < hi[0]: lo[0] then >= the rest of lo; the digits strictly
	// between then anything; hi[0] then <= the rest of hi.
	var parts []string
	parts = append(parts, lo[:1]+rangeRE(lo[1:], strings.Repeat(string(last), n-1), alphabet))
	a, b := strings.IndexByte(alphabet, lo[0])+1, strings.IndexByte(alphabet, hi[0])-1
	if a <= b {
		parts = append(parts, classRE(alphabet[a:b+1])+anyRE(alphabet, n-1))
	}
	parts = append(parts, hi[:1]+rangeRE(strings.Repeat(string(first), n-1), hi[1:], alphabet))
	return "(?:" + strings.Join(parts, "|") + ")"
}

// classRE is a character class of chars (in alphabet order), written with
// ranges: "[3-9a-c]".
func classRE(chars string) string {
	if len(chars) == 1 {
		return chars
	}
	var b strings.Builder
	b.WriteByte('[')
	for i := 0; i < len(chars); {
		j := i
		for j+1 < len(chars) && chars[j+1] == chars[j]+1 {
			j++
		}
		b.WriteByte(chars[i])
		switch {
		case j == i+1:
			b.WriteByte(chars[j])
		case j > i+1:
			b.WriteByte('-')
			b.WriteByte(chars[j])
		}
		i = j + 1
	}
	b.WriteByte(']')
	return b.String()
}

func anyRE(alphabet string, n int) string {
	switch n {
	case 0:
		return ""
	case 1:
		return classRE(alphabet)
	}
	return fmt.Sprintf("%s{%d}", classRE(alphabet), n)
}

// quote escapes s for a regular expression; the result means the same to
// Go's RE2 (FerretDB) and to PCRE (MongoDB).
func quote(s string) string { return regexp.QuoteMeta(s) }
