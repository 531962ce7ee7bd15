package fhir

import (
	"slices"
	"strings"
	"sync"
)

// A union parameter is a search parameter whose values are exactly those of
// other parameters of its type together: its expression is theirs joined by
// '|', term for term. R4 defines four, on Observation: combo-code is code |
// component-code, combo-value-quantity value-quantity |
// component-value-quantity, and likewise combo-value-concept and
// combo-data-absent-reason. ExtractIndex leaves them out, since their
// values would be stored a second time (a fifth of an Observation's index
// rows, every one a B-tree insert or two in the store's write lock), and a
// search on one is a search on its parts (UnionParts).

// UnionParts returns the parameters whose values make up those of union
// parameter name of resourceType, sorted; nil when name is not a union
// parameter.
func UnionParts(resourceType, name string) []string {
	return unionParams()[resourceType][name]
}

// IsUnionParam says whether name is a union parameter of resourceType.
func IsUnionParam(resourceType, name string) bool {
	return UnionParts(resourceType, name) != nil
}

// unionParams finds, once, the union parameters of every supported type
// from the expressions: a parameter whose terms are covered exactly by
// those of two or more other parameters of its type and kind.
var unionParams = sync.OnceValue(func() map[string]map[string][]string {
	out := map[string]map[string][]string{}
	for typ, params := range loadSearchModel().sorted {
		terms := map[string][]string{}
		for _, p := range params {
			if p.Expression != "" && p.Type != "composite" && p.Type != "special" && !notIndexed[p.Name] {
				terms[p.Name] = expressionTerms(p.Expression)
			}
		}
		for _, p := range params {
			whole := terms[p.Name]
			if len(whole) < 2 {
				continue
			}
			var candidates []string
			for _, q := range params {
				if t := terms[q.Name]; q.Name != p.Name && q.Type == p.Type && len(t) > 0 && len(t) < len(whole) && subset(t, whole) {
					candidates = append(candidates, q.Name)
				}
			}
			if parts := exactCover(whole, candidates, terms); len(parts) >= 2 {
				if out[typ] == nil {
					out[typ] = map[string][]string{}
				}
				slices.Sort(parts)
				out[typ][p.Name] = parts
			}
		}
	}
	return out
})

// expressionTerms splits a FHIRPath expression on its top-level '|' (not
// inside parentheses, brackets or quotes) into trimmed terms.
func expressionTerms(expr string) []string {
	var terms []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '`' || c == '"':
			quote = c
		case c == '(' || c == '[' || c == '{':
			depth++
		case c == ')' || c == ']' || c == '}':
			depth--
		case c == '|' && depth == 0:
			terms = append(terms, strings.TrimSpace(expr[start:i]))
			start = i + 1
		}
	}
	return append(terms, strings.TrimSpace(expr[start:]))
}

func subset(small, big []string) bool {
	for _, t := range small {
		if !slices.Contains(big, t) {
			return false
		}
	}
	return true
}

// exactCover picks candidates whose terms cover whole, each term once; nil
// when none do.
func exactCover(whole, candidates []string, terms map[string][]string) []string {
	if len(whole) == 0 {
		return []string{}
	}
	for i, c := range candidates {
		t := terms[c]
		if !subset(t, whole) {
			continue
		}
		rest := slices.DeleteFunc(slices.Clone(whole), func(w string) bool { return slices.Contains(t, w) })
		if len(rest) != len(whole)-len(t) {
			continue // a term twice in whole
		}
		if more := exactCover(rest, candidates[i+1:], terms); more != nil {
			return append([]string{c}, more...)
		}
	}
	return nil
}
