package api

import (
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// This file turns FHIR search parameters into a store.Query, with the
// search parameter definitions of package fhir. It knows no HTTP: the
// handlers in search.go call it with the request's parameters.

// searchRequest is a parsed search: the store query and what shapes the
// answer.
type searchRequest struct {
	Query       store.Query
	Includes    []include
	RevIncludes []include
	Summary     string   // "", true, text, data, count, false
	Elements    []string // _elements
	TotalMode   string   // none | estimate | accurate | "" (not asked)
	Cursor      string   // _cursor: the signed continuation
	Ignored     []string // unknown parameters ignored in lenient mode
}

// include is one _include or _revinclude: resources of SourceType whose
// reference parameter Param points (to TargetType, or any type).
type include struct {
	SourceType string
	Param      string
	TargetType string
	Iterate    bool
}

// resultParams shape the answer rather than select resources.
var resultParams = map[string]bool{
	"_count": true, "_sort": true, "_total": true, "_summary": true, "_elements": true,
	"_include": true, "_revinclude": true, "_format": true, "_pretty": true, "_cursor": true,
}

// searchError is a 400 naming the parameter.
func searchError(param, msg string) error {
	return fhir.NewError(http.StatusBadRequest, "invalid", param, msg)
}

// parseSearch reads the parameters of a search on typ. base is this
// server's FHIR base URL (references to it are local). With strict, unknown
// parameters are refused (Prefer: handling=strict); otherwise they are
// ignored and listed.
func parseSearch(typ string, params url.Values, base string, strict bool) (*searchRequest, error) {
	sr := &searchRequest{Query: store.Query{Type: typ, Count: defaultPageSize}}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic clause order and messages
	for _, key := range keys {
		values := params[key]
		if key == "_include:iterate" || key == "_revinclude:iterate" || resultParams[key] {
			if err := sr.resultParam(typ, key, values); err != nil {
				return nil, err
			}
			continue
		}
		for _, v := range values {
			clauses, known, err := parseClause(typ, key, v, base)
			if err != nil {
				return nil, err
			}
			if !known {
				if strict {
					return nil, fhir.NewError(http.StatusBadRequest, "not-supported", key, "unknown or unsupported search parameter "+strconv.Quote(key)+" for "+typ)
				}
				sr.Ignored = append(sr.Ignored, key)
				break
			}
			sr.Query.Where = append(sr.Query.Where, clauses...)
		}
	}
	if sr.Summary == "count" {
		sr.Query.Count = 0
	}
	if sr.Query.Count == 0 || sr.TotalMode == "accurate" || sr.TotalMode == "estimate" {
		sr.Query.Total = true
	}
	return sr, nil
}

func (sr *searchRequest) resultParam(typ, key string, values []string) error {
	last := values[len(values)-1]
	switch key {
	case "_count":
		n, err := strconv.Atoi(last)
		if err != nil || n < 0 {
			return searchError(key, "_count must be a non-negative integer")
		}
		sr.Query.Count = min(n, maxPageSize)
	case "_sort":
		sorts, err := parseSort(typ, last)
		if err != nil {
			return err
		}
		sr.Query.Sort = sorts
	case "_total":
		switch last {
		case "none", "estimate", "accurate":
			sr.TotalMode = last
		default:
			return searchError(key, "_total must be none, estimate or accurate")
		}
	case "_summary":
		switch last {
		case "true", "text", "data", "count", "false":
			sr.Summary = last
		default:
			return searchError(key, "_summary must be true, text, data, count or false")
		}
	case "_elements":
		for _, v := range values {
			for _, e := range strings.Split(v, ",") {
				if e = strings.TrimSpace(e); e != "" {
					sr.Elements = append(sr.Elements, e)
				}
			}
		}
	case "_include", "_revinclude", "_include:iterate", "_revinclude:iterate":
		for _, v := range values {
			inc, err := parseInclude(key, v)
			if err != nil {
				return err
			}
			if strings.HasPrefix(key, "_include") {
				if inc.SourceType != typ && !inc.Iterate {
					return searchError(key, "_include must name the searched type ("+typ+"), or use :iterate")
				}
				sr.Includes = append(sr.Includes, inc)
			} else {
				sr.RevIncludes = append(sr.RevIncludes, inc)
			}
		}
	case "_cursor":
		sr.Cursor = last
	}
	return nil
}

// parseInclude reads Type:param[:TargetType], with :iterate on the key.
func parseInclude(key, v string) (include, error) {
	iterate := false
	if strings.HasSuffix(key, ":iterate") {
		iterate = true
	}
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return include{}, searchError(key, key+" must be Type:parameter or Type:parameter:TargetType")
	}
	inc := include{SourceType: parts[0], Param: parts[1], Iterate: iterate}
	if len(parts) == 3 {
		inc.TargetType = parts[2]
	}
	if _, ok := fhir.LookupType(inc.SourceType); !ok {
		return include{}, searchError(key, "unknown type "+strconv.Quote(inc.SourceType)+" in "+key)
	}
	sp, ok := fhir.LookupSearchParam(inc.SourceType, inc.Param)
	if !ok || sp.Type != "reference" {
		return include{}, searchError(key, inc.SourceType+":"+inc.Param+" is not a reference search parameter")
	}
	if inc.TargetType != "" {
		if _, ok := fhir.LookupType(inc.TargetType); !ok {
			return include{}, searchError(key, "unknown target type "+strconv.Quote(inc.TargetType))
		}
	}
	return inc, nil
}

var sortKinds = map[string]store.Kind{
	"date": store.KindDate, "string": store.KindString, "token": store.KindToken,
	"number": store.KindNumber, "quantity": store.KindNumber, "uri": store.KindURI,
}

func parseSort(typ, v string) ([]store.Sort, error) {
	var out []store.Sort
	for _, key := range strings.Split(v, ",") {
		key = strings.TrimSpace(key)
		desc := strings.HasPrefix(key, "-")
		name := strings.TrimPrefix(key, "-")
		switch name {
		case "":
			continue
		case "_id":
			out = append(out, store.Sort{Param: name, Kind: store.KindID, Desc: desc})
			continue
		case "_lastUpdated":
			out = append(out, store.Sort{Param: name, Kind: store.KindLastUpdated, Desc: desc})
			continue
		}
		sp, ok := fhir.LookupSearchParam(typ, name)
		if !ok {
			return nil, searchError("_sort", "unknown search parameter "+strconv.Quote(name)+" in _sort")
		}
		kind, ok := sortKinds[sp.Type]
		if !ok {
			return nil, searchError("_sort", "cannot sort on "+sp.Type+" parameter "+strconv.Quote(name))
		}
		if parts := fhir.UnionParts(typ, name); parts != nil {
			return nil, searchError("_sort", "cannot sort on "+strconv.Quote(name)+", the union of "+strings.Join(parts, " and ")+": sort on one of those")
		}
		out = append(out, store.Sort{Param: name, Kind: kind, Desc: desc})
	}
	return out, nil
}

// parseClause reads one parameter=value pair into clauses, all of which a
// resource must meet: one OR clause, or several for a union parameter's
// (expandUnions). known is false for a parameter the server does not know.
func parseClause(typ, key, value, base string) ([]store.Clause, bool, error) {
	clause, known, err := parseOrClause(typ, key, value, base)
	if err != nil || !known {
		return nil, known, err
	}
	clauses, err := expandUnions(typ, key, clause)
	return clauses, err == nil, err
}

// maxUnionClauses bounds the clauses a union parameter's values expand to.
const maxUnionClauses = 64

// expandUnions rewrites the conditions of clause on a union parameter
// (fhir.UnionParts: Observation's combo-code is code | component-code, whose
// values the index does not store a second time) into conditions on its
// parts, with the same meaning: a value test holds when it holds for any
// part; a negated one (:not, ne) and :missing=true when they hold for every
// part. The OR of such ANDs is distributed into clauses (an AND of ORs).
func expandUnions(typ, key string, clause store.Clause) ([]store.Clause, error) {
	union := false
	for _, c := range clause.Any {
		union = union || fhir.IsUnionParam(typ, fhir.BaseParam(c.Param))
	}
	if !union {
		return []store.Clause{clause}, nil
	}
	// Each condition as clauses (an AND of ORs); the clause's OR of them,
	// distributed.
	var out [][]store.Condition
	for i, c := range clause.Any {
		var cnf [][]store.Condition
		parts := fhir.UnionParts(typ, fhir.BaseParam(c.Param))
		switch {
		case parts == nil:
			cnf = [][]store.Condition{{c}}
		case c.Not || c.Missing != nil && *c.Missing:
			for _, p := range parts {
				cnf = append(cnf, []store.Condition{onPart(c, p)})
			}
		default:
			var any []store.Condition
			for _, p := range parts {
				any = append(any, onPart(c, p))
			}
			cnf = [][]store.Condition{any}
		}
		if i == 0 {
			out = cnf
			continue
		}
		var next [][]store.Condition
		for _, a := range out {
			for _, b := range cnf {
				next = append(next, append(slices.Clone(a), b...))
			}
		}
		if len(next) > maxUnionClauses {
			return nil, searchError(key, "too many values for "+key+" with :not, ne or :missing: send fewer, or search its parts ("+strings.Join(parts, ", ")+")")
		}
		out = next
	}
	clauses := make([]store.Clause, len(out))
	for i, any := range out {
		clauses[i] = store.Clause{Any: any}
	}
	return clauses, nil
}

// onPart is condition c on part p of its union parameter.
func onPart(c store.Condition, p string) store.Condition {
	if fhir.IsTextParam(c.Param) {
		p = fhir.TextParam(p)
	}
	c.Param = p
	return c
}

// parseOrClause reads one parameter=value pair into an OR clause. known is
// false for a parameter the server does not know.
func parseOrClause(typ, key, value, base string) (store.Clause, bool, error) {
	if strings.HasPrefix(key, "_has:") {
		c, err := parseHas(key, value, base)
		return c, err == nil, err
	}
	name, modifier, _ := strings.Cut(key, ":")
	chain := ""
	if i := strings.IndexByte(name, '.'); i >= 0 {
		name, chain = name[:i], name[i+1:]
	} else if i := strings.IndexByte(modifier, '.'); i >= 0 {
		modifier, chain = modifier[:i], modifier[i+1:]
	}
	var sp fhir.SearchParam
	switch name {
	case "_id":
		sp = fhir.SearchParam{Name: "_id", Type: "id"}
	case "_lastUpdated":
		sp = fhir.SearchParam{Name: "_lastUpdated", Type: "lastUpdated"}
	default:
		var ok bool
		if sp, ok = fhir.LookupSearchParam(typ, name); !ok || sp.Type == "composite" || sp.Type == "special" {
			return store.Clause{}, false, nil
		}
	}
	if chain != "" {
		c, err := parseChain(sp, modifier, chain, value, base)
		return c, true, err
	}
	if modifier == "missing" {
		b, err := strconv.ParseBool(value)
		if err != nil {
			return store.Clause{}, true, searchError(key, ":missing takes true or false")
		}
		kind := kindOf(sp.Type)
		return store.Clause{Any: []store.Condition{{Param: sp.Name, Kind: kind, Missing: &b}}}, true, nil
	}
	var clause store.Clause
	for _, v := range splitValues(value) {
		cond, err := parseCondition(sp, key, modifier, v, base)
		if err != nil {
			return store.Clause{}, true, err
		}
		clause.Any = append(clause.Any, cond)
	}
	if len(clause.Any) == 0 {
		return store.Clause{}, true, searchError(key, "parameter "+key+" has no value")
	}
	return clause, true, nil
}

func kindOf(paramType string) store.Kind {
	switch paramType {
	case "token":
		return store.KindToken
	case "string":
		return store.KindString
	case "reference":
		return store.KindReference
	case "date":
		return store.KindDate
	case "number", "quantity":
		return store.KindNumber
	case "uri":
		return store.KindURI
	case "id":
		return store.KindID
	case "lastUpdated":
		return store.KindLastUpdated
	}
	return 0
}

// splitValues splits on commas not escaped with a backslash.
func splitValues(v string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '\\' && i+1 < len(v) && v[i+1] == ',':
			cur.WriteByte(',')
			i++
		case v[i] == ',':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(v[i])
		}
	}
	return append(out, cur.String())
}

// splitToken splits system|code on the first unescaped pipe.
func splitToken(v string) (system, code string, hasPipe bool) {
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' {
			i++
			continue
		}
		if v[i] == '|' {
			return unescape(v[:i]), unescape(v[i+1:]), true
		}
	}
	return "", unescape(v), false
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	return strings.NewReplacer(`\|`, `|`, `\$`, `$`, `\,`, `,`, `\\`, `\`).Replace(s)
}

func parseCondition(sp fhir.SearchParam, key, modifier, v, base string) (store.Condition, error) {
	c := store.Condition{Param: sp.Name, Kind: kindOf(sp.Type)}
	bad := func(msg string) (store.Condition, error) { return store.Condition{}, searchError(key, msg) }
	switch sp.Type {
	case "id":
		if modifier != "" {
			return bad("_id takes no modifier")
		}
		c.Value = v
	case "token":
		switch modifier {
		case "":
		case "not":
			c.Not = true
		case "text":
			if sp.NoText {
				return bad("modifier :text is not supported on " + sp.Name + " here: its texts are not indexed")
			}
			return store.Condition{Param: fhir.TextParam(sp.Name), Kind: store.KindString, Value: fhir.FoldString(v), Match: store.StringPrefix}, nil
		default:
			return bad("modifier :" + modifier + " is not supported on token parameter " + sp.Name)
		}
		system, code, pipe := splitToken(v)
		c.System, c.Code = system, code
		c.AnySystem = !pipe
		if pipe && system == "" && code == "" {
			return bad("token value needs a system or a code")
		}
		if !pipe && code == "" {
			return bad("token value needs a code")
		}
	case "string":
		switch modifier {
		case "":
			c.Value, c.Match = fhir.FoldString(v), store.StringPrefix
		case "contains":
			c.Value, c.Match = fhir.FoldString(v), store.StringContains
		case "exact":
			c.Value, c.Match = v, store.StringExact
		default:
			return bad("modifier :" + modifier + " is not supported on string parameter " + sp.Name)
		}
		if strings.TrimSpace(v) == "" {
			return bad("string value is empty")
		}
	case "uri":
		switch modifier {
		case "":
			c.Match = store.StringExact
		case "below":
			c.Match = store.StringPrefix
		default:
			return bad("modifier :" + modifier + " is not supported on uri parameter " + sp.Name)
		}
		c.Value = v
	case "reference":
		refType := ""
		switch {
		case modifier == "":
		case modifier == "identifier" || modifier == "above" || modifier == "below":
			return bad("modifier :" + modifier + " is not supported on reference parameter " + sp.Name)
		default:
			if _, ok := fhir.LookupType(modifier); !ok {
				return bad("unknown type modifier :" + modifier)
			}
			refType = modifier
		}
		if err := parseReference(&c, sp, refType, v, base); err != nil {
			return bad(err.Error())
		}
	case "date", "lastUpdated":
		if modifier != "" {
			return bad("modifier :" + modifier + " is not supported on date parameter " + sp.Name)
		}
		prefix, rest := splitPrefix(v)
		low, high, err := parseDateRange(rest)
		if err != nil {
			return bad("malformed date " + strconv.Quote(rest) + ": use YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[.sss](Z|+hh:mm), with an optional prefix eq, ne, gt, lt, ge, le, sa, eb or ap")
		}
		if prefix == "ap" {
			low, high = approximateDates(low, high)
		}
		if err := setInterval(&c, prefix, float64(low), float64(high), true); err != nil {
			return bad(err.Error())
		}
	case "number", "quantity":
		if modifier != "" {
			return bad("modifier :" + modifier + " is not supported on " + sp.Type + " parameter " + sp.Name)
		}
		prefix, rest := splitPrefix(v)
		num := rest
		if sp.Type == "quantity" {
			parts := strings.SplitN(rest, "|", 3)
			num = parts[0]
			if len(parts) == 3 {
				c.System, c.Code = parts[1], parts[2]
			} else if len(parts) == 2 {
				return bad("quantity must be number, number|system|code or number||code")
			}
		}
		value, half, err := parseNumber(num)
		if err != nil {
			return bad("malformed number " + strconv.Quote(num))
		}
		low, high := value-half, value+half
		switch prefix {
		case "ap":
			d := math.Abs(value) * 0.1
			low, high = value-d, value+d
			prefix = "apnum"
		case "gt", "lt", "ge", "le", "sa", "eb":
			low, high = value, value
		}
		if err := setInterval(&c, prefix, low, high, false); err != nil {
			return bad(err.Error())
		}
	default:
		return bad("parameter type " + sp.Type + " is not supported")
	}
	return c, nil
}

// parseReference reads Type/id, id, an absolute URL (local when it starts
// with this server's base) or a urn/canonical.
func parseReference(c *store.Condition, sp fhir.SearchParam, refType, v, base string) error {
	if v == "" {
		return errString("reference value is empty")
	}
	if base != "" && strings.HasPrefix(v, base+"/") {
		v = strings.TrimPrefix(v, base+"/")
	}
	if strings.Contains(v, "://") || strings.HasPrefix(v, "urn:") {
		c.URL = v
		return nil
	}
	parts := strings.Split(v, "/")
	switch {
	case len(parts) == 1:
		c.RefID = parts[0]
		c.RefType = refType
		if ours := supportedTargets(sp); c.RefType == "" && len(ours) == 1 {
			c.RefType = ours[0]
		}
	case len(parts) == 2 || (len(parts) == 4 && parts[2] == "_history"):
		if _, ok := fhir.LookupType(parts[0]); !ok {
			return errString("unknown resource type " + strconv.Quote(parts[0]) + " in reference")
		}
		if refType != "" && refType != parts[0] {
			return errString("the reference " + v + " is not of type " + refType)
		}
		c.RefType, c.RefID = parts[0], parts[1]
	default:
		return errString("malformed reference " + strconv.Quote(v) + ": use Type/id, id or an absolute URL")
	}
	if !fhir.ValidID(c.RefID) {
		return errString("malformed id in reference " + strconv.Quote(v))
	}
	return nil
}

// supportedTargets are the target types of a reference parameter that this
// server stores.
func supportedTargets(sp fhir.SearchParam) []string {
	var ours []string
	for _, t := range sp.Targets {
		if _, ok := fhir.LookupType(t); ok {
			ours = append(ours, t)
		}
	}
	return ours
}

type errString string

func (e errString) Error() string { return string(e) }

// parseChain reads param[:Type].chained=value: the referenced resource must
// be of Type and meet chained=value (one level).
func parseChain(sp fhir.SearchParam, modifier, chain, value, base string) (store.Clause, error) {
	key := sp.Name + "." + chain
	if sp.Type != "reference" {
		return store.Clause{}, searchError(key, "only reference parameters can be chained")
	}
	if strings.Contains(chain, ".") {
		return store.Clause{}, searchError(key, "chains of more than one level are not supported")
	}
	target := modifier
	if target == "" {
		ours := supportedTargets(sp)
		if len(ours) != 1 {
			return store.Clause{}, searchError(key, "chain on "+sp.Name+" is ambiguous: name the type, e.g. "+sp.Name+":Patient."+chain)
		}
		target = ours[0]
	}
	if _, ok := fhir.LookupType(target); !ok {
		return store.Clause{}, searchError(key, "unknown type "+strconv.Quote(target)+" in chain")
	}
	inner, known, err := parseClause(target, chain, value, base)
	if err != nil {
		return store.Clause{}, err
	}
	if !known {
		return store.Clause{}, searchError(key, "unknown search parameter "+strconv.Quote(chain)+" on "+target)
	}
	return store.Clause{Any: []store.Condition{{
		Param: sp.Name, Kind: store.KindReference, RefType: target,
		Chain: &store.Query{Type: target, Where: inner},
	}}}, nil
}

// parseHas reads _has:Type:param:searchParam=value (one level).
func parseHas(key, value, base string) (store.Clause, error) {
	parts := strings.SplitN(key, ":", 4)
	if len(parts) != 4 || strings.HasPrefix(parts[3], "_has") {
		return store.Clause{}, searchError(key, "_has takes _has:Type:reference-parameter:search-parameter (one level)")
	}
	typ, param, inner := parts[1], parts[2], parts[3]
	if _, ok := fhir.LookupType(typ); !ok {
		return store.Clause{}, searchError(key, "unknown type "+strconv.Quote(typ)+" in _has")
	}
	if sp, ok := fhir.LookupSearchParam(typ, param); !ok || sp.Type != "reference" {
		return store.Clause{}, searchError(key, typ+":"+param+" is not a reference search parameter")
	}
	clauses, known, err := parseClause(typ, inner, value, base)
	if err != nil {
		return store.Clause{}, err
	}
	if !known {
		return store.Clause{}, searchError(key, "unknown search parameter "+strconv.Quote(inner)+" on "+typ)
	}
	return store.Clause{Any: []store.Condition{{Has: &store.HasQuery{Type: typ, Param: param, Where: clauses}}}}, nil
}

var prefixes = map[string]bool{"eq": true, "ne": true, "gt": true, "lt": true, "ge": true, "le": true, "sa": true, "eb": true, "ap": true}

func splitPrefix(v string) (string, string) {
	if len(v) >= 2 && prefixes[v[:2]] {
		return v[:2], v[2:]
	}
	return "eq", v
}

// setInterval turns a prefix and the search range [a, b] into bounds on
// the stored range [Low, High], as store.Interval documents. Dates are in
// whole milliseconds, so "strictly after b" is b+1; numbers use the next
// float.
func setInterval(c *store.Condition, prefix string, a, b float64, dates bool) error {
	after := func(x float64) *float64 {
		if dates {
			x++
		} else {
			x = math.Nextafter(x, math.Inf(1))
		}
		return &x
	}
	before := func(x float64) *float64 {
		if dates {
			x--
		} else {
			x = math.Nextafter(x, math.Inf(-1))
		}
		return &x
	}
	pa, pb := &a, &b
	r := &c.Range
	switch prefix {
	case "eq":
		r.LowAtLeast, r.HighAtMost = pa, pb
	case "ne":
		r.LowAtLeast, r.HighAtMost = pa, pb
		c.Not = true
	case "gt":
		r.HighAtLeast = after(b)
	case "ge":
		r.HighAtLeast = pa
	case "lt":
		r.LowAtMost = before(a)
	case "le":
		r.LowAtMost = pb
	case "sa":
		r.LowAtLeast = after(b)
	case "eb":
		r.HighAtMost = before(a)
	case "ap":
		// Overlap with the widened range.
		r.LowAtMost, r.HighAtLeast = pb, pa
	case "apnum":
		r.LowAtLeast, r.HighAtMost = pa, pb
	default:
		return errString("unknown prefix " + prefix)
	}
	return nil
}

// parseDateRange reads a FHIR search date as the closed range of
// milliseconds it covers, with the very rules that indexed values follow
// (fhir.DateRange): a value without a zone is read as UTC.
func parseDateRange(v string) (int64, int64, error) {
	low, high, ok := fhir.DateRange(v)
	if !ok {
		return 0, 0, errString("malformed date")
	}
	return low, high, nil
}

// approximateDates widens [low, high] by 10% of its distance to now on each
// side, the "ap" prefix's latitude.
func approximateDates(low, high int64) (int64, int64) {
	now := time.Now().UnixMilli()
	gap := now - low
	if gap < 0 {
		gap = -gap
	}
	d := gap / 10
	if d < 24*3600*1000 {
		d = 24 * 3600 * 1000
	}
	return low - d, high + d
}

// parseNumber reads a decimal and half its precision unit: "100" has
// precision 1 (so eq100 is [99.5, 100.5]), "100.0" 0.1, "1e2" 100.
func parseNumber(s string) (float64, float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, 0, errString("malformed number")
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		exp, _ = strconv.Atoi(s[i+1:])
	}
	decimals := 0
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		decimals = len(mant) - i - 1
	}
	return v, 0.5 * math.Pow(10, float64(exp-decimals)), nil
}

// compartmentClause is the clause of a compartment search
// (GET /fhir/Patient/{id}/{type}): any of the type's patient compartment
// parameters refers to the patient.
func compartmentClause(typ, patientID string) (store.Clause, bool) {
	rt, _ := fhir.LookupType(typ)
	var clause store.Clause
	for _, p := range rt.PatientCompartment {
		clause.Any = append(clause.Any, store.Condition{Param: p, Kind: store.KindReference, RefType: "Patient", RefID: patientID})
	}
	if typ == "Patient" {
		clause.Any = append(clause.Any, store.Condition{Param: "_id", Kind: store.KindID, Value: patientID})
	}
	return clause, len(clause.Any) > 0
}
