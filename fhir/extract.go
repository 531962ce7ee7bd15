package fhir

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// ExtractIndex extracts the index values of a resource body from the
// official R4 SearchParameter definitions of its type (searchparams.go):
// each parameter's FHIRPath expression is evaluated on the resource, and
// every value it yields is read according to the parameter's type and the
// value's FHIR type (see the doc comments of Index and its value types).
//
// The resource type is read from the body; an unsupported type or a body
// that is not a JSON object gives an empty Index. Not indexed: _id and
// _lastUpdated (the store keeps them), composite parameters, and values of
// types a parameter cannot hold (e.g. a Range under a date parameter).
// Identical values of one parameter are kept once.
func ExtractIndex(body []byte) Index {
	plans, reads := allIndexPlans()
	return extractWith(body, plans, reads, false)
}

// allIndexPlans is every parameter's plan and, by type, the members they
// read (readsOf), both built once.
func allIndexPlans() (map[string][]indexParam, map[string]*memberTrie) {
	plans := loadIndexPlans()
	return plans, indexReads
}

// ExtractIndexOfStamped is ExtractIndex of a body Stamp returned: JSON this
// package encoded from validated parts, which is not validated again (a
// fifth of the audit trail's copy of a 100-resource AuditEvent was spent
// validating the same bytes twice).
func ExtractIndexOfStamped(stamped []byte) Index {
	plans, reads := allIndexPlans()
	return extractWith(stamped, plans, reads, true)
}

// extractWith is ExtractIndex with the parameters of plans only, decoding
// only the members reads (readsOf(plans)) says they read; valid says body
// is known to be valid JSON.
func extractWith(body []byte, plans map[string][]indexParam, reads map[string]*memberTrie, valid bool) Index {
	var ix Index
	doc, ok := decodeJSONObjectReading(body, valid, reads)
	if !ok {
		return ix
	}
	typ, _ := doc["resourceType"].(string)
	plan := plans[typ]
	if len(plan) == 0 {
		return ix
	}
	c := &fpContext{root: doc}
	self := []fpNode{{doc, typ}}
	asResource := []fpNode{{doc, "Resource"}}
	var items []fpNode
	for i := range plan {
		p := &plan[i]
		focus := self
		if p.root != typ {
			focus = asResource
			asResource[0].t = p.root
		}
		items = p.expr(c, focus, items[:0])
		if len(items) == 0 {
			continue
		}
		ix.add(p, items)
	}
	return ix
}

// mark remembers where each slice of an Index ended, to deduplicate the
// values one parameter added.
type mark struct{ tokens, strings, refs, dates, numbers, uris int }

func (ix *Index) mark() mark {
	return mark{len(ix.Tokens), len(ix.Strings), len(ix.References), len(ix.Dates), len(ix.Numbers), len(ix.URIs)}
}

func (ix *Index) add(p *indexParam, items []fpNode) {
	m := ix.mark()
	for _, n := range items {
		switch p.kind {
		case "token":
			ix.addToken(p.name, p.text, n)
		case "string":
			ix.addString(p.name, n)
		case "reference":
			ix.addReference(p.name, n)
		case "date":
			ix.addDate(p.name, n)
		case "number", "quantity":
			ix.addNumber(p.name, n)
		case "uri":
			ix.addURI(p.name, n)
		}
	}
	ix.Tokens = dedupe(ix.Tokens, m.tokens)
	ix.Strings = dedupe(ix.Strings, m.strings)
	ix.References = dedupe(ix.References, m.refs)
	ix.Dates = dedupe(ix.Dates, m.dates)
	ix.Numbers = dedupe(ix.Numbers, m.numbers)
	ix.URIs = dedupe(ix.URIs, m.uris)
}

// dedupe removes from s[from:] the values equal to an earlier one of
// s[from:], keeping the order.
func dedupe[T comparable](s []T, from int) []T {
	if len(s)-from < 2 {
		return s
	}
	k := from
	for i := from; i < len(s); i++ {
		dup := false
		for j := from; j < k; j++ {
			if s[j] == s[i] {
				dup = true
				break
			}
		}
		if !dup {
			s[k] = s[i]
			k++
		}
	}
	clear(s[k:])
	return s[:k]
}

// str returns a JSON string member.
func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// primitiveText is the text of a primitive value: a string, a number as
// written, a boolean as "true"/"false".
func primitiveText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return string(x), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// ---- tokens ----

// addToken adds the tokens of n, and their texts (display, text) under
// text, the parameter's :text name, unless it is "" (NoText).
func (ix *Index) addToken(param, text string, n fpNode) {
	switch n.t {
	case "Coding":
		if m, ok := n.v.(map[string]any); ok {
			ix.addCoding(param, text, m)
		}
	case "CodeableConcept":
		m, ok := n.v.(map[string]any)
		if !ok {
			return
		}
		if codings, ok := m["coding"].([]any); ok {
			for _, c := range codings {
				if cm, ok := c.(map[string]any); ok {
					ix.addCoding(param, text, cm)
				}
			}
		}
		if text != "" {
			ix.addText(text, str(m, "text"))
		}
	case "Identifier":
		if m, ok := n.v.(map[string]any); ok {
			if v := str(m, "value"); v != "" {
				ix.Tokens = append(ix.Tokens, Token{Param: param, System: str(m, "system"), Code: v})
			}
		}
	case "ContactPoint":
		if m, ok := n.v.(map[string]any); ok {
			if v := str(m, "value"); v != "" {
				ix.Tokens = append(ix.Tokens, Token{Param: param, Code: v})
			}
		}
	case "code", "string", "boolean", "uri", "url", "canonical", "id", "oid", "uuid", "markdown",
		"integer", "positiveInt", "unsignedInt", "decimal":
		if s, ok := primitiveText(n.v); ok && s != "" {
			ix.Tokens = append(ix.Tokens, Token{Param: param, Code: s})
		}
	}
}

func (ix *Index) addCoding(param, text string, m map[string]any) {
	if code := str(m, "code"); code != "" {
		ix.Tokens = append(ix.Tokens, Token{Param: param, System: str(m, "system"), Code: code})
	}
	if text != "" {
		ix.addText(text, str(m, "display"))
	}
}

// addText adds a String value; blank values are not indexed.
func (ix *Index) addText(param, s string) {
	if s == "" {
		return
	}
	if f := FoldString(s); f != "" {
		ix.Strings = append(ix.Strings, String{Param: param, Norm: f, Exact: s})
	}
}

// ---- strings ----

func (ix *Index) addString(param string, n fpNode) {
	switch n.t {
	case "HumanName":
		if m, ok := n.v.(map[string]any); ok {
			ix.addText(param, str(m, "family"))
			ix.addTextList(param, m["given"])
			ix.addTextList(param, m["prefix"])
			ix.addTextList(param, m["suffix"])
			ix.addText(param, str(m, "text"))
		}
	case "Address":
		if m, ok := n.v.(map[string]any); ok {
			ix.addTextList(param, m["line"])
			for _, k := range [...]string{"city", "district", "state", "postalCode", "country", "text"} {
				ix.addText(param, str(m, k))
			}
		}
	case "string", "markdown", "code", "id", "uri", "url", "canonical":
		if s, ok := n.v.(string); ok {
			ix.addText(param, s)
		}
	}
}

func (ix *Index) addTextList(param string, v any) {
	switch x := v.(type) {
	case string:
		ix.addText(param, x)
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok {
				ix.addText(param, s)
			}
		}
	}
}

// ---- references ----

func (ix *Index) addReference(param string, n fpNode) {
	switch n.t {
	case "Reference":
		m, ok := n.v.(map[string]any)
		if !ok {
			return
		}
		if s := str(m, "reference"); s != "" {
			ix.References = append(ix.References, referenceValue(param, s))
		}
	case "canonical", "uri", "url":
		if s, ok := n.v.(string); ok && s != "" {
			ix.References = append(ix.References, Reference{Param: param, URL: s})
		}
	}
}

// referenceValue reads a literal reference: "Type/id" (or
// "Type/id/_history/n") gives Type and ID; an absolute URL ending in such a
// path gives Type and ID and keeps the URL (the server's own base is not
// known here); anything else (urn:uuid:, #contained, conditional, other
// URLs) is kept in URL only.
func referenceValue(param, s string) Reference {
	typ, id, ok := splitLiteralReference(s)
	if !ok || strings.HasPrefix(s, "#") || strings.ContainsAny(s, "?#") {
		return Reference{Param: param, URL: s}
	}
	if isAbsoluteURL(s) {
		return Reference{Param: param, Type: typ, ID: id, URL: s}
	}
	if strings.Count(strings.SplitN(s, "/_history/", 2)[0], "/") != 1 {
		// a relative path with more segments: not a local reference
		return Reference{Param: param, URL: s}
	}
	return Reference{Param: param, Type: typ, ID: id}
}

func isAbsoluteURL(s string) bool {
	i := strings.Index(s, "://")
	if i <= 0 {
		return false
	}
	for j := 0; j < i; j++ {
		c := s[j]
		if !isLetter(c) && !(j > 0 && (isDigit(c) || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return true
}

// ---- dates ----

func (ix *Index) addDate(param string, n fpNode) {
	switch n.t {
	case "date", "dateTime", "instant":
		if s, ok := n.v.(string); ok {
			if lo, hi, ok := DateRange(s); ok {
				ix.Dates = append(ix.Dates, Date{Param: param, Low: lo, High: hi})
			}
		}
	case "Period":
		m, ok := n.v.(map[string]any)
		if !ok {
			return
		}
		start, hasStart := m["start"].(string)
		end, hasEnd := m["end"].(string)
		if !hasStart && !hasEnd {
			return
		}
		lo, hi := MinDate, MaxDate
		if hasStart {
			l, _, ok := DateRange(start)
			if !ok {
				return
			}
			lo = l
		}
		if hasEnd {
			_, h, ok := DateRange(end)
			if !ok {
				return
			}
			hi = h
		}
		if lo > hi {
			return
		}
		ix.Dates = append(ix.Dates, Date{Param: param, Low: lo, High: hi})
	case "Timing":
		m, ok := n.v.(map[string]any)
		if !ok {
			return
		}
		events, _ := m["event"].([]any)
		for _, e := range events {
			if s, ok := e.(string); ok {
				if lo, hi, ok := DateRange(s); ok {
					ix.Dates = append(ix.Dates, Date{Param: param, Low: lo, High: hi})
				}
			}
		}
	}
}

// DateRange returns the closed range of instants, in Unix milliseconds, that
// a FHIR date, dateTime or instant covers: a year, month or day covers all
// of it, a time to the second covers that second (ms .000 to .999), a time
// with a fraction is that millisecond (further digits dropped). A value
// without a zone is read as UTC. The range is clipped to [MinDate,
// MaxDate]. ok is false when s is not such a value.
func DateRange(s string) (low, high int64, ok bool) {
	num := func(i, n int) (int, bool) {
		if i+n > len(s) {
			return 0, false
		}
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok := num(0, 4)
	if !ok || year == 0 {
		return 0, 0, false
	}
	month, day := 1, 1
	var start, end time.Time
	switch {
	case len(s) == 4:
		start = time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)
		end = start.AddDate(1, 0, 0)
		return clipRange(start, end)
	case len(s) == 7 && s[4] == '-':
		if month, ok = num(5, 2); !ok || month < 1 || month > 12 {
			return 0, 0, false
		}
		start = time.Date(year, time.Month(month), 1, 0, 0, 0, 0, time.UTC)
		end = start.AddDate(0, 1, 0)
		return clipRange(start, end)
	case len(s) >= 10 && s[4] == '-' && s[7] == '-':
		if month, ok = num(5, 2); !ok || month < 1 || month > 12 {
			return 0, 0, false
		}
		if day, ok = num(8, 2); !ok || day < 1 || day > daysIn(year, month) {
			return 0, 0, false
		}
	default:
		return 0, 0, false
	}
	if len(s) == 10 {
		start = time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
		return clipRange(start, start.AddDate(0, 0, 1))
	}
	// Time: Thh:mm[:ss[.fff]][Z|±hh:mm]
	if s[10] != 'T' {
		return 0, 0, false
	}
	hour, ok1 := num(11, 2)
	minute, ok2 := num(14, 2)
	if !ok1 || !ok2 || len(s) < 16 || s[13] != ':' || hour > 23 || minute > 59 {
		return 0, 0, false
	}
	i := 16
	sec, nsec := 0, 0
	precision := time.Minute
	if i < len(s) && s[i] == ':' {
		v, ok := num(i+1, 2)
		if !ok || v > 60 {
			return 0, 0, false
		}
		sec, i, precision = v, i+3, time.Second
		if i < len(s) && s[i] == '.' {
			j := i + 1
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			if j == i+1 {
				return 0, 0, false
			}
			frac := s[i+1 : j]
			ms := 0
			for k := 0; k < 3; k++ {
				ms *= 10
				if k < len(frac) {
					ms += int(frac[k] - '0')
				}
			}
			nsec, i, precision = ms*int(time.Millisecond), j, time.Millisecond
		}
	}
	loc := time.UTC
	switch {
	case i == len(s):
	case s[i] == 'Z' && i+1 == len(s):
	case (s[i] == '+' || s[i] == '-') && i+6 == len(s) && s[i+3] == ':':
		zh, ok1 := num(i+1, 2)
		zm, ok2 := num(i+4, 2)
		if !ok1 || !ok2 || zh > 14 || zm > 59 {
			return 0, 0, false
		}
		off := (zh*60 + zm) * 60
		if s[i] == '-' {
			off = -off
		}
		loc = time.FixedZone("", off)
	default:
		return 0, 0, false
	}
	start = time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc)
	return clipRange(start, start.Add(precision))
}

// clipRange returns [start, end) as a closed range in ms.
func clipRange(start, end time.Time) (int64, int64, bool) {
	lo, hi := start.UnixMilli(), end.UnixMilli()-1
	lo = max(lo, MinDate)
	hi = min(hi, MaxDate)
	if lo > hi {
		return 0, 0, false
	}
	return lo, hi, true
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// ---- numbers and quantities ----

func (ix *Index) addNumber(param string, n fpNode) {
	switch {
	case quantityTypes[n.t]:
		m, ok := n.v.(map[string]any)
		if !ok {
			return
		}
		v, ok := numberValue(m["value"])
		if !ok {
			return
		}
		ix.Numbers = append(ix.Numbers, Number{Param: param, Value: v,
			System: str(m, "system"), Code: str(m, "code"), Unit: str(m, "unit")})
	case n.t == "integer" || n.t == "decimal" || n.t == "positiveInt" || n.t == "unsignedInt":
		if v, ok := numberValue(n.v); ok {
			ix.Numbers = append(ix.Numbers, Number{Param: param, Value: v})
		}
	}
}

func numberValue(v any) (float64, bool) {
	num, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(num), 64)
	return f, err == nil
}

// ---- uris ----

func (ix *Index) addURI(param string, n fpNode) {
	switch n.t {
	case "uri", "url", "canonical", "oid", "uuid", "string", "code", "id":
		if s, ok := n.v.(string); ok && s != "" {
			ix.URIs = append(ix.URIs, URI{Param: param, Value: s})
		}
	}
}
