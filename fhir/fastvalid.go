package fhir

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// The accepting check: a walk of the compiled schema written for the
// resources that pass, which are nearly all of them. It answers "valid" only
// when the JSON-schema library would (every keyword it meets is one it
// checks exactly as the library does, or it gives up), and "not proven"
// otherwise, in which case Validate runs the library for its verdict and its
// messages. The library's walk and its garbage were most of validation, a
// fifth of a Bundle's ingest.
//
// It knows the keywords the rewritten R4 schema uses (rewriteSchema): $ref,
// type, properties, additionalProperties, required, items, enum, const,
// pattern, minimum, maximum and our fhirResource and fhirPattern. A schema
// with any other keyword is never accepted (acceptNode.unknown).

// acceptNode is one compiled schema of the accepting check.
type acceptNode struct {
	ref      *acceptNode // $ref: the definition it names (no sibling keywords)
	unknown  bool        // a keyword this check does not know: never accepted
	types    uint8       // allowed JSON types (jsonNull...); 0 = any
	props    map[string]*acceptNode
	closed   bool // additionalProperties: false
	required []string
	items    *acceptNode
	enum     []string // string values only (a non-string enum is unknown)
	hasConst bool
	constStr string
	pattern  *regexp.Regexp
	match    func(string) bool // fhirPattern
	hasMin   bool
	min      int64
	hasMax   bool
	max      int64
	resource bool // fhirResource: the definition of the value's resourceType
}

const (
	jsonNull uint8 = 1 << iota
	jsonBoolean
	jsonObject
	jsonArray
	jsonNumber
	jsonInteger
	jsonString
)

var jsonTypeBits = map[string]uint8{
	"null": jsonNull, "boolean": jsonBoolean, "object": jsonObject, "array": jsonArray,
	"number": jsonNumber, "integer": jsonInteger, "string": jsonString,
}

// acceptSchema is the accepting check of every definition of the schema.
type acceptSchema struct {
	defs      map[string]*acceptNode
	resources map[string]bool
}

// compileAccept compiles the rewritten definitions (as rewriteSchema leaves
// them) for the accepting check.
func compileAccept(defs map[string]any, resources map[string]bool) (*acceptSchema, error) {
	a := &acceptSchema{defs: make(map[string]*acceptNode, len(defs)), resources: resources}
	for name := range defs {
		a.defs[name] = &acceptNode{}
	}
	for name, d := range defs {
		dm, ok := d.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("fhir: schema definition %s is not an object", name)
		}
		a.fill(a.defs[name], dm)
	}
	return a, nil
}

func (a *acceptSchema) compile(m map[string]any) *acceptNode {
	n := &acceptNode{}
	a.fill(n, m)
	return n
}

// fill compiles the keywords of m into n; anything it cannot check exactly
// as the library does makes n unknown.
func (a *acceptSchema) fill(n *acceptNode, m map[string]any) {
	if ref, ok := m["$ref"]; ok {
		s, _ := ref.(string)
		target := a.defs[strings.TrimPrefix(s, defPrefix)]
		if !strings.HasPrefix(s, defPrefix) || target == nil {
			n.unknown = true
			return
		}
		for k := range m {
			if k != "$ref" && k != "description" {
				n.unknown = true // the library's draft 6 ignores them; so would we, but say so
				return
			}
		}
		n.ref = target
		return
	}
	for k, v := range m {
		switch k {
		case "description":
		case "type":
			switch t := v.(type) {
			case string:
				n.types |= typeBit(t, n)
			case []any:
				for _, x := range t {
					s, _ := x.(string)
					n.types |= typeBit(s, n)
				}
			default:
				n.unknown = true
			}
		case "properties":
			props, ok := v.(map[string]any)
			if !ok {
				n.unknown = true
				continue
			}
			n.props = make(map[string]*acceptNode, len(props))
			for pn, pv := range props {
				pm, ok := pv.(map[string]any)
				if !ok {
					n.unknown = true
					continue
				}
				n.props[pn] = a.compile(pm)
			}
		case "additionalProperties":
			if b, ok := v.(bool); !ok {
				n.unknown = true
			} else {
				n.closed = !b
			}
		case "required":
			req, ok := stringList(v)
			n.unknown = n.unknown || !ok
			n.required = req
		case "items":
			im, ok := v.(map[string]any)
			if !ok {
				n.unknown = true // a tuple of schemas
				continue
			}
			n.items = a.compile(im)
		case "enum":
			vals, ok := stringList(v)
			n.unknown = n.unknown || !ok || len(vals) == 0
			n.enum = vals
		case "const":
			s, ok := v.(string)
			if !ok {
				n.unknown = true
				continue
			}
			n.hasConst, n.constStr = true, s
		case "pattern":
			s, _ := v.(string)
			re, err := regexp.Compile(s)
			if err != nil {
				n.unknown = true
				continue
			}
			n.pattern = re
		case patternKeyword:
			s, _ := v.(string)
			if n.match = fastPatterns[s]; n.match == nil {
				n.unknown = true
			}
		case "minimum", "maximum":
			i, ok := schemaInt(v)
			if !ok {
				n.unknown = true
				continue
			}
			if k == "minimum" {
				n.hasMin, n.min = true, i
			} else {
				n.hasMax, n.max = true, i
			}
		case resourceKeyword:
			if b, ok := v.(bool); !ok || !b {
				n.unknown = true
			}
			n.resource = true
		default:
			n.unknown = true
		}
	}
}

// stringList reads a list of strings (required, a string enum); ok is
// false for anything else.
func stringList(v any) (list []string, ok bool) {
	items, ok := v.([]any)
	if !ok {
		return nil, false
	}
	for _, x := range items {
		s, isString := x.(string)
		if !isString {
			return nil, false
		}
		list = append(list, s)
	}
	return list, true
}

func typeBit(t string, n *acceptNode) uint8 {
	b, ok := jsonTypeBits[t]
	if !ok {
		n.unknown = true
	}
	return b
}

func schemaInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int64:
		return x, true
	case json.Number:
		i, err := x.Int64()
		return i, err == nil
	}
	return 0, false
}

// accepts reports whether the definition of resource type rt surely accepts
// doc (decoded as encoding/json decodes with UseNumber).
func (a *acceptSchema) accepts(rt string, doc any) bool {
	n := a.defs[rt]
	return n != nil && a.resources[rt] && a.node(n, doc)
}

func (a *acceptSchema) node(n *acceptNode, v any) bool {
	for n.ref != nil {
		n = n.ref
	}
	if n.unknown {
		return false
	}
	var bit uint8
	switch x := v.(type) {
	case nil:
		bit = jsonNull
	case bool:
		bit = jsonBoolean
	case string:
		bit = jsonString
		if n.pattern != nil && !n.pattern.MatchString(x) {
			return false
		}
		if n.match != nil && !n.match(x) {
			return false
		}
	case json.Number:
		bit = jsonNumber
		i, isInt := literalInt(string(x))
		if isInt {
			bit |= jsonInteger
		}
		if (n.hasMin || n.hasMax) && !isInt {
			return false // a fraction or an exponent: left to the library
		}
		if n.hasMin && i < n.min || n.hasMax && i > n.max {
			return false
		}
	case map[string]any:
		bit = jsonObject
		for _, r := range n.required {
			if _, ok := x[r]; !ok {
				return false
			}
		}
		if n.props != nil || n.closed {
			for k, val := range x {
				p := n.props[k]
				if p == nil {
					if n.closed {
						return false
					}
					continue
				}
				if !a.node(p, val) {
					return false
				}
			}
		}
	case []any:
		bit = jsonArray
		if n.items != nil {
			for _, it := range x {
				if !a.node(n.items, it) {
					return false
				}
			}
		}
	default:
		return false
	}
	if n.types != 0 && n.types&bit == 0 {
		return false
	}
	if n.enum != nil {
		s, ok := v.(string)
		if !ok || !containsString(n.enum, s) {
			return false
		}
	}
	if n.hasConst {
		if s, ok := v.(string); !ok || s != n.constStr {
			return false
		}
	}
	if n.resource {
		obj, ok := v.(map[string]any)
		if !ok {
			return false
		}
		rt, _ := obj["resourceType"].(string)
		if !a.accepts(rt, obj) {
			return false
		}
	}
	return true
}

// literalInt parses a JSON number written as an integer (no fraction, no
// exponent) that fits an int64. Integers written otherwise (1.0, 1e2) are
// integers to the library too, but rare: they are left to it.
func literalInt(s string) (int64, bool) {
	if strings.ContainsAny(s, ".eE") {
		return 0, false
	}
	i, err := strconv.ParseInt(s, 10, 64)
	return i, err == nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
