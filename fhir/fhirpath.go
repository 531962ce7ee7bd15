package fhir

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// This file is the FHIRPath subset used by the R4 SearchParameter
// expressions of the supported types: member paths with implicit array
// flattening, choice elements (value[x]), "|" union, parentheses, "as T" /
// "is T" and the functions where, exists, empty, not, first, resolve, as, is
// and ofType, the operators "=", "!=", "and", "or" and string, boolean and
// number literals.
//
// Expressions are compiled once against a type model (typeResolver): every
// member step knows, for each type it may be applied to, the JSON keys and
// FHIR types of the element, so that a choice element such as
// Observation.value becomes valueQuantity, valueCodeableConcept, ... and
// every value the evaluation yields carries its FHIR type (CodeableConcept,
// Reference, dateTime, Observation_Component, ...).

// fpNode is one item of a FHIRPath collection: a decoded JSON value
// (map[string]any, string, json.Number or bool; never an array, which is
// flattened) and its FHIR type: a data type ("CodeableConcept",
// "dateTime"), a backbone element as named by the JSON schema
// ("Observation_Component"), or a resource type.
type fpNode struct {
	v any
	t string
}

// elemAlt is one way an element appears in JSON: its key and FHIR type. A
// choice element has one per allowed type (valueQuantity/Quantity, ...).
type elemAlt struct {
	Key  string
	Type string
}

// typeResolver answers what element name of type t is; nil when t has no
// such element.
type typeResolver interface {
	element(t, name string) []elemAlt
}

// fpContext is the evaluation context of one resource.
type fpContext struct {
	root map[string]any // the resource, for contained references
}

// fpExpr is a compiled expression: it appends to dst the result of
// evaluating it on the focus collection.
type fpExpr func(c *fpContext, focus []fpNode, dst []fpNode) []fpNode

// compileFHIRPath parses expr and compiles it for a focus of type root.
func compileFHIRPath(expr, root string, r typeResolver) (fpExpr, error) {
	a, err := parseFHIRPath(expr)
	if err != nil {
		return nil, err
	}
	return compileParsed(a, expr, root, r)
}

// compileParsed compiles the expression a parsed from expr.
func compileParsed(a *fpAST, expr, root string, r typeResolver) (fpExpr, error) {
	fn, _, err := compileAST(a, []string{root}, r)
	if err != nil {
		return nil, fmt.Errorf("fhirpath %q: %w", expr, err)
	}
	return fn, nil
}

// parseFHIRPath parses expr.
func parseFHIRPath(expr string) (*fpAST, error) {
	p := &fpParser{src: expr}
	if err := p.lex(); err != nil {
		return nil, err
	}
	a, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		return nil, fmt.Errorf("fhirpath %q: unexpected %q", expr, p.toks[p.pos].text)
	}
	return a, nil
}

// ---- lexer ----

type fpTokKind int

const (
	tkIdent fpTokKind = iota + 1
	tkString
	tkNumber
	tkOp
)

type fpTok struct {
	kind fpTokKind
	text string
}

type fpParser struct {
	src  string
	toks []fpTok
	pos  int
}

func (p *fpParser) lex() error {
	s := p.src
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '_' || c == '$' || isLetter(c):
			j := i + 1
			for j < len(s) && (s[j] == '_' || isLetter(s[j]) || isDigit(s[j])) {
				j++
			}
			p.toks = append(p.toks, fpTok{tkIdent, s[i:j]})
			i = j
		case c == '`':
			j := strings.IndexByte(s[i+1:], '`')
			if j < 0 {
				return fmt.Errorf("fhirpath %q: unterminated identifier", s)
			}
			p.toks = append(p.toks, fpTok{tkIdent, s[i+1 : i+1+j]})
			i += j + 2
		case c == '\'':
			var b strings.Builder
			j := i + 1
			for ; j < len(s) && s[j] != '\''; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
					switch s[j] {
					case 'n':
						b.WriteByte('\n')
					case 't':
						b.WriteByte('\t')
					case 'r':
						b.WriteByte('\r')
					default:
						b.WriteByte(s[j])
					}
					continue
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return fmt.Errorf("fhirpath %q: unterminated string", s)
			}
			p.toks = append(p.toks, fpTok{tkString, b.String()})
			i = j + 1
		case isDigit(c):
			j := i + 1
			for j < len(s) && (isDigit(s[j]) || s[j] == '.' && j+1 < len(s) && isDigit(s[j+1])) {
				j++
			}
			p.toks = append(p.toks, fpTok{tkNumber, s[i:j]})
			i = j
		case c == '!' && i+1 < len(s) && s[i+1] == '=':
			p.toks = append(p.toks, fpTok{tkOp, "!="})
			i += 2
		case strings.IndexByte(".()|=,", c) >= 0:
			p.toks = append(p.toks, fpTok{tkOp, s[i : i+1]})
			i++
		default:
			return fmt.Errorf("fhirpath %q: unsupported character %q", s, c)
		}
	}
	return nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

// ---- parser ----

type fpKind int

const (
	akIdent  fpKind = iota + 1 // name
	akFunc                     // name(args...)
	akDot                      // kids[0].kids[1]
	akString                   // name is the value
	akBool                     // name is "true" or "false"
	akNumber                   // name is the text
	akBinary                   // kids[0] name kids[1]: | and or = !=
	akTypeOp                   // kids[0] name(is|as) typeName
)

type fpAST struct {
	kind     fpKind
	name     string
	typeName string
	kids     []*fpAST
}

func (p *fpParser) peek() (fpTok, bool) {
	if p.pos < len(p.toks) {
		return p.toks[p.pos], true
	}
	return fpTok{}, false
}

func (p *fpParser) accept(kind fpTokKind, text string) bool {
	if t, ok := p.peek(); ok && t.kind == kind && t.text == text {
		p.pos++
		return true
	}
	return false
}

func (p *fpParser) expect(text string) error {
	if !p.accept(tkOp, text) {
		t, _ := p.peek()
		return fmt.Errorf("fhirpath %q: expected %q, got %q", p.src, text, t.text)
	}
	return nil
}

// Precedence, lowest first: or, and, = !=, |, is as, postfix.
func (p *fpParser) parseExpr() (*fpAST, error) {
	return p.parseBinary(0)
}

var fpLevels = [][]fpTok{
	{{tkIdent, "or"}},
	{{tkIdent, "and"}},
	{{tkOp, "="}, {tkOp, "!="}},
	{{tkOp, "|"}},
}

func (p *fpParser) parseBinary(level int) (*fpAST, error) {
	if level == len(fpLevels) {
		return p.parseTypeOp()
	}
	left, err := p.parseBinary(level + 1)
	if err != nil {
		return nil, err
	}
	for {
		var op string
		for _, t := range fpLevels[level] {
			if p.accept(t.kind, t.text) {
				op = t.text
				break
			}
		}
		if op == "" {
			return left, nil
		}
		right, err := p.parseBinary(level + 1)
		if err != nil {
			return nil, err
		}
		left = &fpAST{kind: akBinary, name: op, kids: []*fpAST{left, right}}
	}
}

func (p *fpParser) parseTypeOp() (*fpAST, error) {
	left, err := p.parsePostfix()
	if err != nil {
		return nil, err
	}
	for {
		var op string
		switch {
		case p.accept(tkIdent, "is"):
			op = "is"
		case p.accept(tkIdent, "as"):
			op = "as"
		default:
			return left, nil
		}
		tn, err := p.parseTypeName()
		if err != nil {
			return nil, err
		}
		left = &fpAST{kind: akTypeOp, name: op, typeName: tn, kids: []*fpAST{left}}
	}
}

// parseTypeName reads T, FHIR.T or System.T and returns T.
func (p *fpParser) parseTypeName() (string, error) {
	t, ok := p.peek()
	if !ok || t.kind != tkIdent {
		return "", fmt.Errorf("fhirpath %q: type name expected", p.src)
	}
	p.pos++
	name := t.text
	for p.pos+1 < len(p.toks) && p.toks[p.pos].text == "." && p.toks[p.pos+1].kind == tkIdent &&
		(name == "FHIR" || name == "System") {
		name = p.toks[p.pos+1].text
		p.pos += 2
	}
	return name, nil
}

func (p *fpParser) parsePostfix() (*fpAST, error) {
	left, err := p.parseTerm()
	if err != nil {
		return nil, err
	}
	for p.accept(tkOp, ".") {
		inv, err := p.parseInvocation()
		if err != nil {
			return nil, err
		}
		left = &fpAST{kind: akDot, kids: []*fpAST{left, inv}}
	}
	return left, nil
}

func (p *fpParser) parseTerm() (*fpAST, error) {
	t, ok := p.peek()
	if !ok {
		return nil, fmt.Errorf("fhirpath %q: unexpected end", p.src)
	}
	switch t.kind {
	case tkString:
		p.pos++
		return &fpAST{kind: akString, name: t.text}, nil
	case tkNumber:
		p.pos++
		return &fpAST{kind: akNumber, name: t.text}, nil
	case tkOp:
		if t.text == "(" {
			p.pos++
			e, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			return e, p.expect(")")
		}
		return nil, fmt.Errorf("fhirpath %q: unexpected %q", p.src, t.text)
	}
	if t.text == "true" || t.text == "false" {
		p.pos++
		return &fpAST{kind: akBool, name: t.text}, nil
	}
	return p.parseInvocation()
}

func (p *fpParser) parseInvocation() (*fpAST, error) {
	t, ok := p.peek()
	if !ok || t.kind != tkIdent {
		return nil, fmt.Errorf("fhirpath %q: name expected", p.src)
	}
	p.pos++
	if !p.accept(tkOp, "(") {
		return &fpAST{kind: akIdent, name: t.text}, nil
	}
	call := &fpAST{kind: akFunc, name: t.text}
	if p.accept(tkOp, ")") {
		return call, nil
	}
	for {
		if fpTypeArgFuncs[t.text] {
			tn, err := p.parseTypeName()
			if err != nil {
				return nil, err
			}
			call.typeName = tn
		} else {
			a, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			call.kids = append(call.kids, a)
		}
		if p.accept(tkOp, ")") {
			return call, nil
		}
		if err := p.expect(","); err != nil {
			return nil, err
		}
	}
}

// fpTypeArgFuncs take a type name, not an expression.
var fpTypeArgFuncs = map[string]bool{"as": true, "is": true, "ofType": true}

// ---- compiler and evaluator ----

// quantityTypes are the specialisations of Quantity.
var quantityTypes = map[string]bool{
	"Quantity": true, "Age": true, "Count": true, "Distance": true, "Duration": true,
	"SimpleQuantity": true, "MoneyQuantity": true,
}

// fpIsA tells whether a value of FHIR type t is of type want.
func fpIsA(t, want string) bool {
	switch {
	case t == want:
		return true
	case want == "Quantity":
		return quantityTypes[t]
	case want == "Resource" || want == "DomainResource":
		return t == "Resource" || knownResourceType(t)
	}
	return false
}

func compileAST(a *fpAST, in []string, r typeResolver) (fpExpr, []string, error) {
	switch a.kind {
	case akString:
		n := fpNode{a.name, "string"}
		return constExpr(n), []string{"string"}, nil
	case akBool:
		n := fpNode{a.name == "true", "boolean"}
		return constExpr(n), []string{"boolean"}, nil
	case akNumber:
		n := fpNode{json.Number(a.name), "decimal"}
		return constExpr(n), []string{"decimal"}, nil
	case akIdent:
		return compileIdent(a.name, in, r)
	case akFunc:
		return compileFunc(a, in, r)
	case akDot:
		left, mid, err := compileAST(a.kids[0], in, r)
		if err != nil {
			return nil, nil, err
		}
		right, out, err := compileAST(a.kids[1], mid, r)
		if err != nil {
			return nil, nil, err
		}
		return func(c *fpContext, focus []fpNode, dst []fpNode) []fpNode {
			return right(c, left(c, focus, nil), dst)
		}, out, nil
	case akTypeOp:
		inner, mid, err := compileAST(a.kids[0], in, r)
		if err != nil {
			return nil, nil, err
		}
		if a.name == "is" {
			return func(c *fpContext, focus []fpNode, dst []fpNode) []fpNode {
				items := inner(c, focus, nil)
				if len(items) != 1 {
					return dst
				}
				return append(dst, fpNode{fpIsA(items[0].t, a.typeName), "boolean"})
			}, []string{"boolean"}, nil
		}
		out, err := filterTypes(mid, a.typeName)
		if err != nil {
			return nil, nil, err
		}
		tn := a.typeName
		return func(c *fpContext, focus []fpNode, dst []fpNode) []fpNode {
			start := len(dst)
			dst = inner(c, focus, dst)
			return keepType(dst, start, tn)
		}, out, nil
	case akBinary:
		return compileBinary(a, in, r)
	}
	return nil, nil, fmt.Errorf("unsupported expression")
}

func constExpr(n fpNode) fpExpr {
	return func(_ *fpContext, _ []fpNode, dst []fpNode) []fpNode { return append(dst, n) }
}

// filterTypes returns the types of in that are a want; an error when none is.
func filterTypes(in []string, want string) ([]string, error) {
	var out []string
	for _, t := range in {
		if fpIsA(t, want) {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no %s among %v", want, in)
	}
	return out, nil
}

// keepType keeps, in dst[start:], the items of type want.
func keepType(dst []fpNode, start int, want string) []fpNode {
	k := start
	for _, n := range dst[start:] {
		if fpIsA(n.t, want) {
			dst[k] = n
			k++
		}
	}
	return dst[:k]
}

type typedAlts struct {
	in   string
	alts []elemAlt
}

func compileIdent(name string, in []string, r typeResolver) (fpExpr, []string, error) {
	if name == "$this" {
		return func(_ *fpContext, focus []fpNode, dst []fpNode) []fpNode { return append(dst, focus...) }, in, nil
	}
	if name != "" && name[0] >= 'A' && name[0] <= 'Z' {
		// A type name: the focus, when it is of that type (Patient.name).
		out, err := filterTypes(in, name)
		if err != nil {
			return nil, nil, err
		}
		return func(_ *fpContext, focus []fpNode, dst []fpNode) []fpNode {
			start := len(dst)
			dst = append(dst, focus...)
			return keepType(dst, start, name)
		}, out, nil
	}
	var byType []typedAlts
	var out []string
	for _, t := range in {
		alts := r.element(t, name)
		if len(alts) == 0 {
			continue
		}
		byType = append(byType, typedAlts{t, alts})
		for _, a := range alts {
			out = appendUnique(out, a.Type)
		}
	}
	if len(byType) == 0 {
		return nil, nil, fmt.Errorf("no element %q in %v", name, in)
	}
	return func(_ *fpContext, focus []fpNode, dst []fpNode) []fpNode {
		for _, n := range focus {
			obj, ok := n.v.(map[string]any)
			if !ok {
				continue
			}
			var alts []elemAlt
			for i := range byType {
				if byType[i].in == n.t {
					alts = byType[i].alts
					break
				}
			}
			for _, a := range alts {
				switch v := obj[a.Key].(type) {
				case nil:
				case []any:
					for _, e := range v {
						if e != nil {
							dst = append(dst, fpNode{e, a.Type})
						}
					}
				default:
					dst = append(dst, fpNode{v, a.Type})
				}
			}
		}
		return dst
	}, out, nil
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func compileFunc(a *fpAST, in []string, r typeResolver) (fpExpr, []string, error) {
	nargs := func(n int) error {
		if len(a.kids) != n {
			return fmt.Errorf("%s() takes %d arguments", a.name, n)
		}
		return nil
	}
	switch a.name {
	case "where":
		if err := nargs(1); err != nil {
			return nil, nil, err
		}
		pred, _, err := compileAST(a.kids[0], in, r)
		if err != nil {
			return nil, nil, err
		}
		return func(c *fpContext, focus []fpNode, dst []fpNode) []fpNode {
			var buf []fpNode
			for i := range focus {
				buf = pred(c, focus[i:i+1], buf[:0])
				if v, ok := fpBool(buf); ok && v {
					dst = append(dst, focus[i])
				}
			}
			return dst
		}, in, nil
	case "exists", "empty":
		var pred fpExpr
		switch len(a.kids) {
		case 0:
		case 1:
			var err error
			if pred, _, err = compileAST(a.kids[0], in, r); err != nil {
				return nil, nil, err
			}
		default:
			return nil, nil, fmt.Errorf("%s() takes at most one argument", a.name)
		}
		empty := a.name == "empty"
		return func(c *fpContext, focus []fpNode, dst []fpNode) []fpNode {
			found := len(focus) > 0
			if pred != nil {
				found = false
				var buf []fpNode
				for i := range focus {
					buf = pred(c, focus[i:i+1], buf[:0])
					if v, ok := fpBool(buf); ok && v {
						found = true
						break
					}
				}
			}
			return append(dst, fpNode{found != empty, "boolean"})
		}, []string{"boolean"}, nil
	case "not":
		if err := nargs(0); err != nil {
			return nil, nil, err
		}
		return func(_ *fpContext, focus []fpNode, dst []fpNode) []fpNode {
			if v, ok := fpBool(focus); ok {
				return append(dst, fpNode{!v, "boolean"})
			}
			return dst
		}, []string{"boolean"}, nil
	case "first":
		if err := nargs(0); err != nil {
			return nil, nil, err
		}
		return func(_ *fpContext, focus []fpNode, dst []fpNode) []fpNode {
			if len(focus) == 0 {
				return dst
			}
			return append(dst, focus[0])
		}, in, nil
	case "resolve":
		if err := nargs(0); err != nil {
			return nil, nil, err
		}
		return func(c *fpContext, focus []fpNode, dst []fpNode) []fpNode {
			for _, n := range focus {
				if t := c.referencedType(n); t != "" {
					dst = append(dst, fpNode{nil, t})
				}
			}
			return dst
		}, []string{"Resource"}, nil
	case "as", "ofType":
		if a.typeName == "" {
			return nil, nil, fmt.Errorf("%s() takes a type", a.name)
		}
		out, err := filterTypes(in, a.typeName)
		if err != nil {
			return nil, nil, err
		}
		tn := a.typeName
		return func(_ *fpContext, focus []fpNode, dst []fpNode) []fpNode {
			start := len(dst)
			dst = append(dst, focus...)
			return keepType(dst, start, tn)
		}, out, nil
	case "is":
		if a.typeName == "" {
			return nil, nil, fmt.Errorf("is() takes a type")
		}
		tn := a.typeName
		return func(_ *fpContext, focus []fpNode, dst []fpNode) []fpNode {
			if len(focus) != 1 {
				return dst
			}
			return append(dst, fpNode{fpIsA(focus[0].t, tn), "boolean"})
		}, []string{"boolean"}, nil
	}
	return nil, nil, fmt.Errorf("unsupported function %s()", a.name)
}

func compileBinary(a *fpAST, in []string, r typeResolver) (fpExpr, []string, error) {
	left, lt, err := compileAST(a.kids[0], in, r)
	if err != nil {
		return nil, nil, err
	}
	right, rt, err := compileAST(a.kids[1], in, r)
	if err != nil {
		return nil, nil, err
	}
	switch a.name {
	case "|":
		out := append([]string(nil), lt...)
		for _, t := range rt {
			out = appendUnique(out, t)
		}
		return func(c *fpContext, focus []fpNode, dst []fpNode) []fpNode {
			return right(c, focus, left(c, focus, dst))
		}, out, nil
	case "and", "or":
		and := a.name == "and"
		return func(c *fpContext, focus []fpNode, dst []fpNode) []fpNode {
			l, lok := fpBool(left(c, focus, nil))
			r, rok := fpBool(right(c, focus, nil))
			var v, ok bool
			if and {
				switch {
				case lok && !l || rok && !r:
					v, ok = false, true
				case lok && rok:
					v, ok = true, true
				}
			} else {
				switch {
				case lok && l || rok && r:
					v, ok = true, true
				case lok && rok:
					v, ok = false, true
				}
			}
			if !ok {
				return dst
			}
			return append(dst, fpNode{v, "boolean"})
		}, []string{"boolean"}, nil
	case "=", "!=":
		neg := a.name == "!="
		return func(c *fpContext, focus []fpNode, dst []fpNode) []fpNode {
			l := left(c, focus, nil)
			r := right(c, focus, nil)
			if len(l) == 0 || len(r) == 0 {
				return dst
			}
			eq := len(l) == len(r)
			for i := 0; eq && i < len(l); i++ {
				eq = fpEqual(l[i].v, r[i].v)
			}
			return append(dst, fpNode{eq != neg, "boolean"})
		}, []string{"boolean"}, nil
	}
	return nil, nil, fmt.Errorf("unsupported operator %s", a.name)
}

// fpBool is the boolean value of a collection: a single boolean is itself,
// any other single item is true; empty (or several items) is unknown.
func fpBool(items []fpNode) (value, ok bool) {
	if len(items) != 1 {
		return false, false
	}
	if b, isBool := items[0].v.(bool); isBool {
		return b, true
	}
	return true, true
}

func fpEqual(a, b any) bool {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		fx, err1 := strconv.ParseFloat(string(x), 64)
		fy, err2 := strconv.ParseFloat(string(y), 64)
		return err1 == nil && err2 == nil && fx == fy
	}
	return reflect.DeepEqual(a, b)
}

// referencedType is the resource type a Reference (or a canonical/uri
// string) points to, "" when it cannot be told: from "Type/id", the last two
// segments of an absolute URL, a conditional "Type?...", a contained
// "#id", or else Reference.type.
func (c *fpContext) referencedType(n fpNode) string {
	switch v := n.v.(type) {
	case string:
		return c.refStringType(v)
	case map[string]any:
		if s, ok := v["reference"].(string); ok {
			if t := c.refStringType(s); t != "" {
				return t
			}
		}
		if s, ok := v["type"].(string); ok {
			if i := strings.LastIndexByte(s, '/'); i >= 0 {
				s = s[i+1:]
			}
			if knownResourceType(s) {
				return s
			}
		}
	}
	return ""
}

func (c *fpContext) refStringType(s string) string {
	if strings.HasPrefix(s, "#") {
		if c.root == nil {
			return ""
		}
		if s == "#" {
			t, _ := c.root["resourceType"].(string)
			return t
		}
		list, _ := c.root["contained"].([]any)
		for _, e := range list {
			if m, ok := e.(map[string]any); ok && m["id"] == s[1:] {
				t, _ := m["resourceType"].(string)
				if knownResourceType(t) {
					return t
				}
			}
		}
		return ""
	}
	if i := strings.IndexByte(s, '?'); i >= 0 {
		if t := s[:i]; knownResourceType(t) {
			return t
		}
		return ""
	}
	typ, _, ok := splitLiteralReference(s)
	if !ok {
		return ""
	}
	return typ
}

// splitLiteralReference reads "Type/id", "Type/id/_history/n", or an
// absolute URL ending in one of these, with Type a known R4 resource type
// and id a valid id.
func splitLiteralReference(s string) (typ, id string, ok bool) {
	if strings.HasPrefix(s, "urn:") {
		return "", "", false
	}
	if i := strings.Index(s, "/_history/"); i >= 0 {
		s = s[:i]
	}
	j := strings.LastIndexByte(s, '/')
	if j <= 0 {
		return "", "", false
	}
	id = s[j+1:]
	rest := s[:j]
	typ = rest[strings.LastIndexByte(rest, '/')+1:]
	if !knownResourceType(typ) || !isFHIRID(id) {
		return "", "", false
	}
	return typ, id, true
}

// isFHIRID tells whether s is a FHIR id: 1 to 64 of [A-Za-z0-9.-].
func isFHIRID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLetter(c) && !isDigit(c) && c != '-' && c != '.' {
			return false
		}
	}
	return true
}
