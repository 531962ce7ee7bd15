package fhir

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// FoldString is the normalisation of string search values, applied alike to
// indexed values (String.Norm) and to the values of a search: lower case,
// accents removed, runs of white space made one space, trimmed. "Hélène "
// and "HELENE" both fold to "helene".
func FoldString(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range norm.NFD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		switch r {
		case 'ß':
			b.WriteString("ss")
		case 'æ', 'Æ':
			b.WriteString("ae")
		case 'œ', 'Œ':
			b.WriteString("oe")
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}
