package fhir

import (
	"github.com/santhosh-tekuri/jsonschema/v5"
)

// patternKeyword replaces the schema's pattern on the most common primitive
// types (string and markdown, code, uri, url and canonical, id) with a check
// written by hand: the regexps were a tenth of a Bundle's validation. Each
// check says what its pattern says (FuzzFastPatternsArePatterns); the other
// patterns stay regexps.
const patternKeyword = "fhirPattern"

// fastPatterns are the patterns checked by hand, by their text in the
// schema. \s in a Go regexp is [\t\n\f\r ] (ASCII only), so the checks work
// on bytes.
var fastPatterns = map[string]func(string) bool{
	// string, markdown: anything but a form feed, not empty
	`^[ \r\n\t\S]+$`: func(s string) bool {
		if s == "" {
			return false
		}
		for i := 0; i < len(s); i++ {
			if s[i] == '\f' {
				return false
			}
		}
		return true
	},
	// uri, url, canonical: no white space
	`^\S*$`: func(s string) bool {
		for i := 0; i < len(s); i++ {
			if isRegexpSpace(s[i]) {
				return false
			}
		}
		return true
	},
	// code: words of non-space separated by single white spaces
	`^[^\s]+(\s[^\s]+)*$`: func(s string) bool {
		if s == "" || isRegexpSpace(s[0]) || isRegexpSpace(s[len(s)-1]) {
			return false
		}
		for i := 1; i < len(s); i++ {
			if isRegexpSpace(s[i]) && isRegexpSpace(s[i-1]) {
				return false
			}
		}
		return true
	},
	`^[A-Za-z0-9\-\.]{1,64}$`: ValidID,
}

func isRegexpSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}

type patternExtCompiler struct{}

func (patternExtCompiler) Compile(_ jsonschema.CompilerContext, m map[string]any) (jsonschema.ExtSchema, error) {
	if p, ok := m[patternKeyword].(string); ok {
		if match := fastPatterns[p]; match != nil {
			return patternExt{p, match}, nil
		}
	}
	return nil, nil
}

type patternExt struct {
	pattern string
	match   func(string) bool
}

// Validate checks strings only, as pattern does.
func (e patternExt) Validate(ctx jsonschema.ValidationContext, v any) error {
	if s, ok := v.(string); ok && !e.match(s) {
		return ctx.Error(patternKeyword, "does not match pattern %q", e.pattern)
	}
	return nil
}
