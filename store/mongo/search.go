package mongo

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/store"
)

var _ store.Searcher = (*Store)(nil)

// Bounds of the first queries that chaining and _has run: a chain may match
// at most maxChainIDs referenced resources, a _has at most maxHasRefs
// referencing ones; past that the search fails (too costly) rather than
// send an unbounded $in.
const (
	maxChainIDs = 10000
	maxHasRefs  = 10000
)

// pred is the filter of one condition or one clause. Its docs are ANDed.
type pred struct {
	docs []bson.D
	// field is the one field every doc tests, "" when it tests several ($or,
	// $nor). vals, when set, is the whole test: field $in vals (strings and
	// regular expressions), so that an OR of such preds on one field is one
	// $in.
	field string
	vals  bson.A
	// class says how an index on field serves it: classPoint (equalities),
	// classPrefix (anchored regular expressions), classRange (a key range),
	// classNone (not as a range: a filter).
	class int
	// positive: only resources with index values match, so a deleted
	// resource (which has none) never does.
	positive bool
	// alt is an equivalent test on a sort-key field (sk.<param>.a|d), used
	// when the chosen index has that field.
	alt *pred
}

const (
	classNone = iota
	classRange
	classPrefix
	classPoint
)

func valsPred(field string, positive bool, vals ...any) pred {
	class := classPoint
	for _, v := range vals {
		if _, ok := v.(primitive.Regex); ok {
			class = classPrefix
		}
	}
	return pred{field: field, vals: bson.A(vals), class: class, positive: positive}
}

// filter is the pred as one filter document.
func (p pred) filter() bson.D {
	if p.vals != nil || p.docs == nil {
		if len(p.vals) == 1 {
			return bson.D{{Key: p.field, Value: p.vals[0]}}
		}
		vals := p.vals
		if vals == nil {
			vals = bson.A{}
		}
		return bson.D{{Key: p.field, Value: bson.D{{Key: "$in", Value: vals}}}}
	}
	if len(p.docs) == 1 {
		return p.docs[0]
	}
	and := make(bson.A, len(p.docs))
	for i, d := range p.docs {
		and[i] = d
	}
	return bson.D{{Key: "$and", Value: and}}
}

// never is a pred no resource meets (an empty $in on an indexed field).
func never(field string) pred {
	return pred{field: field, vals: bson.A{}, class: classPoint, positive: true}
}

// not is the negation of p: resources with no value meeting p, including
// those with no value (and deleted ones: the caller adds deleted false).
func not(p pred) pred {
	return pred{docs: []bson.D{{{Key: "$nor", Value: bson.A{p.filter()}}}}}
}

func regex(pattern string) primitive.Regex { return primitive.Regex{Pattern: pattern} }

// searcher translates queries; it runs the first queries of chains and
// _has on s.
type searcher struct {
	s   *Store
	ctx context.Context
}

// plan is a translated query: one find on resources.
type plan struct {
	q     query
	sort  []sortField
	total bson.D // the filter without the cursor's position, for Total
}

// sortField is one key of the order: a field and its direction; nullable
// fields (sort keys) may be absent, and then sort last (descending).
type sortField struct {
	field    string
	dir      int
	nullable bool
	date     bool // a BSON date (lastUpdated)
}

// Search runs q as one find on resources, with a hint naming the index the
// translation chose (see docs/MONGODB.md for the translation and indexes).
func (s *Store) Search(ctx context.Context, q store.Query) (*store.Page, error) {
	sr := searcher{s: s, ctx: ctx}
	p, err := sr.plan(q.Type, q.Where, q.Sort, nil)
	if err != nil {
		return nil, err
	}
	var after []any
	if q.After != "" {
		if after, err = decodeCursor(q.After, p.sort); err != nil {
			return nil, err
		}
	}
	page := &store.Page{Total: -1}
	if q.Total {
		n, err := s.resources.CountDocuments(ctx, p.total, options.Count().SetHint(p.q.index))
		if err != nil {
			return nil, wrap("search count", err)
		}
		page.Total = int(n)
	}
	if q.Count <= 0 {
		return page, nil
	}
	if after != nil {
		p.q.filter = appendAfter(p.q.filter, p.sort, after)
	}
	p.q.limit = int64(q.Count) + 1
	rows, err := sr.find(p.q, p.projection())
	if err != nil {
		return nil, wrap("search", err)
	}
	if len(rows) > q.Count {
		rows = rows[:q.Count]
		page.Next = encodeCursor(p.sort, rows[len(rows)-1])
	}
	page.Resources = make([]*store.Resource, len(rows))
	for i, r := range rows {
		page.Resources[i] = r.resource()
	}
	return page, nil
}

// row is a document as a search reads it: no index values, and only the
// sort keys the order needs.
type row struct {
	document `bson:",inline"`
	Raw      bson.Raw `bson:"-"`
}

func (p *plan) projection() bson.D {
	proj := bson.D{{Key: "_id", Value: 0}}
	for _, f := range []string{fType, fID, fVersion, fLastUpdated, fDeleted, fBody} {
		proj = append(proj, bson.E{Key: f, Value: 1})
	}
	for _, sf := range p.sort {
		if strings.HasPrefix(sf.field, fSk+".") {
			proj = append(proj, bson.E{Key: sf.field, Value: 1})
		}
	}
	return proj
}

func (sr searcher) find(q query, projection bson.D) ([]*row, error) {
	opts := options.Find().SetHint(q.index).SetSort(q.sort).SetProjection(projection)
	if q.limit > 0 {
		opts.SetLimit(q.limit)
	}
	cur, err := sr.s.db.Collection(q.coll).Find(sr.ctx, q.filter, opts)
	if err != nil {
		return nil, err
	}
	defer cur.Close(sr.ctx)
	var rows []*row
	for cur.Next(sr.ctx) {
		r := &row{Raw: slices.Clone(cur.Current)}
		if err := cur.Decode(&r.document); err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return rows, cur.Err()
}

// plan translates a search of typ: the clauses, the order, and extra preds
// ANDed (used by _has).
func (sr searcher) plan(typ string, where []store.Clause, sorts []store.Sort, extra []pred) (*plan, error) {
	if typ == "" {
		return nil, errors.New("mongodb search: no type")
	}
	var preds []pred
	for _, cl := range where {
		p, err := sr.clause(typ, cl)
		if err != nil {
			return nil, err
		}
		preds = append(preds, p)
	}
	preds = append(preds, extra...)
	pat := impliedPatients(typ, where)
	order := sortFields(sorts)

	index := chooseIndex(preds, pat != nil, order[0].field)
	spec := indexByName(index)

	filter := bson.D{{Key: fType, Value: typ}}
	positive := pat != nil
	for _, p := range preds {
		positive = positive || p.positive
	}
	if spec.hasKey(fDeleted) || !positive {
		filter = append(filter, bson.E{Key: fDeleted, Value: false})
	}
	if pat != nil {
		filter = append(filter, bson.E{Key: fPat, Value: bson.D{{Key: "$in", Value: append(pat, patMany)}}})
	}
	for _, p := range preds {
		if p.alt != nil && spec.hasKey(p.alt.field) {
			p = *p.alt
		}
		filter = and(filter, p.filter())
	}
	q := query{coll: resourcesColl, filter: filter, index: index}
	for _, sf := range order {
		q.sort = append(q.sort, bson.E{Key: sf.field, Value: sf.dir})
	}
	return &plan{q: q, sort: order, total: slices.Clone(filter)}, nil
}

// and adds the entries of d to the top-level filter f; an entry whose key f
// already has goes into a top-level $and.
func and(f, d bson.D) bson.D {
	for _, e := range d {
		if !slices.ContainsFunc(f, func(x bson.E) bool { return x.Key == e.Key }) {
			f = append(f, e)
			continue
		}
		i := slices.IndexFunc(f, func(x bson.E) bool { return x.Key == "$and" })
		if i < 0 {
			f = append(f, bson.E{Key: "$and", Value: bson.A{}})
			i = len(f) - 1
		}
		f[i].Value = append(f[i].Value.(bson.A), bson.D{e})
	}
	return f
}

// chooseIndex picks the index of a search: the patient's compound indexes
// when the query names the patient, else the index of the most selective
// condition that an index bounds (equalities before prefixes before
// ranges), else the index that gives the order.
func chooseIndex(preds []pred, pat bool, sort0 string) string {
	has := func(field string, class int) bool {
		for _, p := range preds {
			if p.field == field && p.class >= class {
				return true
			}
			if p.alt != nil && p.alt.field == field && p.alt.class >= class {
				return true
			}
		}
		return false
	}
	if pat {
		switch {
		case sort0 == fSkDateDesc:
			return ixPatDate
		case sort0 == fSkDateAsc:
			return ixPatDateAsc
		case has(fTokens, classPoint):
			return ixPatToken
		}
		return ixPat
	}
	switch {
	case has(fID, classPoint):
		return ixType
	case has(fRefs, classPoint):
		return ixRef
	case has(fTokens, classPoint) && sort0 == fSkDateDesc:
		return ixTokenDate
	case has(fTokens, classPoint):
		return ixToken
	case has(fStringsX, classPoint):
		return ixStringExact
	case has(fURIs, classPoint):
		return ixURI
	case has(fStrings, classPrefix):
		return ixString
	case has(fRefs, classPrefix):
		return ixRef
	case has(fTokens, classPrefix):
		return ixToken
	case has(fURIs, classPrefix):
		return ixURI
	case has(fSkDateDesc, classRange):
		return ixDate
	case has(fNumbers, classRange):
		return ixNumber
	case has(fDateLow, classRange):
		return ixDateLow
	case has(fDateHigh, classRange):
		return ixDateHigh
	case has(fLastUpdated, classRange):
		return ixLastUpdated
	case has(fHas, classPoint):
		return ixHas
	case sort0 == fSkDateDesc:
		return ixDate
	case sort0 == fLastUpdated:
		return ixLastUpdated
	}
	return ixType
}

// impliedPatients returns the patient ids of the first clause that puts the
// resource in a patient's compartment (every condition a plain reference to
// Patient/id under a compartment parameter of typ or "patient"), or nil.
// Such a resource has pat id or patMany (patientOf), so the search adds
// pat $in [ids..., patMany], which the patient's indexes serve.
func impliedPatients(typ string, where []store.Clause) bson.A {
	params := map[string]bool{"patient": true}
	if rt, ok := fhir.LookupType(typ); ok {
		for _, p := range rt.PatientCompartment {
			params[p] = true
		}
	}
	for _, cl := range where {
		var ids bson.A
		for _, c := range cl.Any {
			if c.Kind != store.KindReference || c.Not || c.Missing != nil || c.Chain != nil || c.Has != nil ||
				c.RefType != "Patient" || c.RefID == "" || c.URL != "" || !params[c.Param] {
				ids = nil
				break
			}
			if !slices.Contains(ids, any(c.RefID)) {
				ids = append(ids, c.RefID)
			}
		}
		if ids != nil {
			return ids
		}
	}
	return nil
}

// sortFields is the order of a search: the sort keys, then the id
// ascending. A date, string, token, number or uri parameter sorts on its
// sort key (sk.<param>.d descending, sk.<param>.a "ascending" as the
// inverted key descending), so that resources without a value come last.
func sortFields(sorts []store.Sort) []sortField {
	var out []sortField
	add := func(sf sortField) {
		if !slices.ContainsFunc(out, func(x sortField) bool { return x.field == sf.field }) {
			out = append(out, sf)
		}
	}
	for _, s := range sorts {
		dir := 1
		if s.Desc {
			dir = -1
		}
		switch s.Kind {
		case store.KindID:
			add(sortField{field: fID, dir: dir})
		case store.KindLastUpdated:
			add(sortField{field: fLastUpdated, dir: dir, date: true})
		default:
			f := skAsc(s.Param)
			if s.Desc {
				f = skDesc(s.Param)
			}
			add(sortField{field: f, dir: -1, nullable: true})
		}
	}
	add(sortField{field: fID, dir: 1})
	return out
}

// clause translates an OR of conditions: one condition's pred; several
// preds that are value sets on one field, one $in; otherwise an $or.
func (sr searcher) clause(typ string, cl store.Clause) (pred, error) {
	if len(cl.Any) == 0 {
		return pred{}, errors.New("mongodb search: empty clause")
	}
	var ps []pred
	for i := range cl.Any {
		p, err := sr.condition(typ, &cl.Any[i])
		if err != nil {
			return pred{}, err
		}
		ps = append(ps, p)
	}
	if len(ps) == 1 {
		return ps[0], nil
	}
	merged := pred{field: ps[0].field, class: classPoint, positive: true}
	or := bson.A{}
	for _, p := range ps {
		if merged.field != "" && p.vals != nil && p.field == merged.field {
			merged.vals = append(merged.vals, p.vals...)
			merged.class = min(merged.class, p.class)
			merged.positive = merged.positive && p.positive
		} else {
			merged.field = ""
		}
		or = append(or, p.filter())
	}
	if merged.field != "" {
		if merged.vals == nil {
			merged.vals = bson.A{}
		}
		return merged, nil
	}
	positive := true
	for _, p := range ps {
		positive = positive && p.positive
	}
	return pred{docs: []bson.D{{{Key: "$or", Value: or}}}, positive: positive}, nil
}

// condition translates one condition to one predicate on one indexed field
// (or its negation).
func (sr searcher) condition(typ string, c *store.Condition) (pred, error) {
	if c.Missing != nil {
		p := valsPred(fHas, true, c.Param)
		if *c.Missing != c.Not {
			return not(p), nil
		}
		return p, nil
	}
	p, err := sr.positive(typ, c)
	if err != nil {
		return pred{}, err
	}
	if c.Not {
		return not(p), nil
	}
	return p, nil
}

func (sr searcher) positive(typ string, c *store.Condition) (pred, error) {
	bad := func(msg string) (pred, error) {
		return pred{}, fmt.Errorf("mongodb search: %s: %s", c.Param, msg)
	}
	if c.Has != nil {
		ids, err := sr.hasIDs(typ, c.Has)
		if err != nil {
			return pred{}, err
		}
		return valsPred(fID, false, ids...), nil
	}
	if c.Chain != nil {
		keys, err := sr.chainKeys(c)
		if err != nil {
			return pred{}, err
		}
		return valsPred(fRefs, true, keys...), nil
	}
	switch c.Kind {
	case store.KindToken:
		switch {
		case c.Code != "" && c.System != "":
			return valsPred(fTokens, true, tokenKey(c.Param, c.System, c.Code, true)), nil
		case c.Code != "" && c.AnySystem:
			return valsPred(fTokens, true, tokenKey(c.Param, "", c.Code, false)), nil
		case c.Code != "":
			return valsPred(fTokens, true, tokenKey(c.Param, "", c.Code, true)), nil
		case c.System != "": // system|: any code of the system
			return valsPred(fTokens, true, regex("^"+quote(escape(c.Param)+"|"+escape(c.System)+"|"))), nil
		}
		return bad("a token needs a system or a code")
	case store.KindString:
		switch c.Match {
		case store.StringExact:
			return valsPred(fStringsX, true, c.Param+"|"+c.Value), nil
		case store.StringContains:
			// Bounded by the parameter's prefix; the rest is a filter on
			// the index keys.
			p := valsPred(fStrings, true, regex("^"+quote(c.Param+"|")+".*"+quote(c.Value)))
			return p, nil
		}
		return valsPred(fStrings, true, regex("^"+quote(c.Param+"|"+c.Value))), nil
	case store.KindURI:
		if c.Match == store.StringPrefix {
			return valsPred(fURIs, true, regex("^"+quote(c.Param+"|"+c.Value))), nil
		}
		return valsPred(fURIs, true, c.Param+"|"+c.Value), nil
	case store.KindReference:
		switch {
		case c.URL != "":
			return valsPred(fRefs, true, c.Param+"|"+c.URL), nil
		case c.RefID != "" && c.RefType != "":
			return valsPred(fRefs, true, c.Param+"|"+c.RefType+"/"+c.RefID), nil
		case c.RefID != "":
			return valsPred(fRefs, true, c.Param+"|*/"+c.RefID), nil
		case c.RefType != "":
			return valsPred(fRefs, true, regex("^"+quote(c.Param+"|"+c.RefType+"/"))), nil
		}
		return bad("a reference needs an id or a URL")
	case store.KindDate:
		return datePred(c.Param, c.Range), nil
	case store.KindNumber:
		return numberPred(c), nil
	case store.KindID:
		return valsPred(fID, false, c.Value), nil
	case store.KindLastUpdated:
		lo, hi := point(c.Range)
		r := bson.D{}
		if lo != nil {
			r = append(r, bson.E{Key: "$gte", Value: time.UnixMilli(clampMS(math.Ceil(*lo))).UTC()})
		}
		if hi != nil {
			r = append(r, bson.E{Key: "$lte", Value: time.UnixMilli(clampMS(math.Floor(*hi))).UTC()})
		}
		if len(r) == 0 {
			return pred{docs: []bson.D{{{Key: fLastUpdated, Value: bson.D{{Key: "$exists", Value: true}}}}}, field: fLastUpdated}, nil
		}
		return pred{docs: []bson.D{{{Key: fLastUpdated, Value: r}}}, field: fLastUpdated, class: classRange}, nil
	}
	return bad(fmt.Sprintf("unsupported kind %d", c.Kind))
}

// point turns the bounds on a range [v, v] (a number, a lastUpdated) into
// bounds on v: the larger lower bound and the smaller upper bound.
func point(r store.Interval) (lo, hi *float64) {
	lo = maxPtr(r.LowAtLeast, r.HighAtLeast)
	hi = minPtr(r.LowAtMost, r.HighAtMost)
	return lo, hi
}

func maxPtr(a, b *float64) *float64 {
	if a == nil || b != nil && *b > *a {
		return b
	}
	return a
}

func minPtr(a, b *float64) *float64 {
	if a == nil || b != nil && *b < *a {
		return b
	}
	return a
}

// datePred tests the date values of param against r. A condition on Low
// (with or without High) reads ix.dlo, "param|low|high": the bounds on
// Low are a key range ($elemMatch, which MongoDB turns into index bounds on
// one element), and one regular expression checks Low and High of the SAME
// value, so a multi-valued parameter is matched exactly. A condition on
// High only reads ix.dhi, "param|high", alike. FerretDB does not apply
// $elemMatch to one element; the regular expression makes its answers exact
// too.
//
// alt: a bound on High alone (ge, gt) holds for some value iff it holds for
// the largest High, sk.<param>.d; one on Low alone (le, lt) iff for the
// smallest Low, sk.<param>.a (inverted); exact whatever the number of
// values, and served by the compound indexes that hold the sort key.
func datePred(param string, r store.Interval) pred {
	const lowest, highest = "0000000000000000", "9999999999999999"
	key := func(x *float64, atLeast bool, def string) string {
		switch {
		case x == nil:
			return def
		case atLeast:
			return dateKeyAtLeast(*x)
		}
		return dateKeyAtMost(*x)
	}
	// Low <= High, so a bound on one is also one on the other.
	loLo := key(r.LowAtLeast, true, lowest)
	loHi := min(key(r.LowAtMost, false, highest), key(r.HighAtMost, false, highest))
	hiLo := max(key(r.HighAtLeast, true, lowest), key(r.LowAtLeast, true, lowest))
	hiHi := key(r.HighAtMost, false, highest)
	prefix := param + "|"

	var p pred
	if r.LowAtLeast == nil && r.LowAtMost == nil {
		if hiLo > hiHi {
			return never(fDateHigh)
		}
		re := "^" + quote(prefix) + rangeRE(hiLo, hiHi, decimalDigits) + "$"
		p = pred{field: fDateHigh, class: classRange, positive: true, docs: []bson.D{
			{{Key: fDateHigh, Value: bson.D{{Key: "$elemMatch", Value: bson.D{{Key: "$gte", Value: prefix + hiLo}, {Key: "$lte", Value: prefix + hiHi}}}}}},
			{{Key: fDateHigh, Value: regex(re)}},
		}}
	} else {
		if loLo > loHi || hiLo > hiHi {
			return never(fDateLow)
		}
		re := "^" + quote(prefix) + rangeRE(loLo, loHi, decimalDigits) + `\|` + rangeRE(hiLo, hiHi, decimalDigits) + "$"
		p = pred{field: fDateLow, class: classRange, positive: true, docs: []bson.D{
			{{Key: fDateLow, Value: bson.D{{Key: "$elemMatch", Value: bson.D{{Key: "$gte", Value: prefix + loLo}, {Key: "$lte", Value: prefix + loHi + "|~"}}}}}},
			{{Key: fDateLow, Value: regex(re)}},
		}}
	}
	switch {
	case r.HighAtLeast != nil && r.LowAtLeast == nil && r.LowAtMost == nil && r.HighAtMost == nil:
		f := skDesc(param)
		p.alt = &pred{field: f, class: classRange, positive: true,
			docs: []bson.D{{{Key: f, Value: bson.D{{Key: "$gte", Value: hiLo}}}}}}
	case r.LowAtMost != nil && r.LowAtLeast == nil && r.HighAtLeast == nil && r.HighAtMost == nil:
		f := skAsc(param)
		p.alt = &pred{field: f, class: classRange, positive: true,
			docs: []bson.D{{{Key: f, Value: bson.D{{Key: "$gte", Value: invertFixed(loHi, decimalDigits)}}}}}}
	}
	return p
}

// numberPred tests the number values of a parameter (one value, [v, v])
// against the bounds, with the quantity's unit when given: a key range on
// "param[|system|code]|key" ($elemMatch) and the regular expression that
// checks one element, as for dates.
func numberPred(c *store.Condition) pred {
	lo, hi := point(c.Range)
	loKey, hiKey := "0000000000000000", "ffffffffffffffff"
	if lo != nil {
		loKey, _ = numKey(*lo)
	}
	if hi != nil {
		hiKey, _ = numKey(*hi)
	}
	if loKey > hiKey {
		return never(fNumbers)
	}
	param := escape(c.Param) + "|"
	var prefix, prefixRE string // prefix: literal, for the key range
	switch {
	case c.Code != "" && c.System != "":
		prefix = param + escape(c.System) + "|" + escape(c.Code) + "|"
	case c.Code != "":
		prefix = param + escape(c.Code) + "|"
	case c.System != "": // any unit of the system
		prefixRE = quote(param+escape(c.System)+"|") + `(?:[^\\|]|\\.)*\|`
	default:
		prefix = param
	}
	p := pred{field: fNumbers, class: classRange, positive: true}
	if prefixRE == "" {
		prefixRE = quote(prefix)
		p.docs = append(p.docs, bson.D{{Key: fNumbers, Value: bson.D{{Key: "$elemMatch", Value: bson.D{{Key: "$gte", Value: prefix + loKey}, {Key: "$lte", Value: prefix + hiKey}}}}}})
	}
	p.docs = append(p.docs, bson.D{{Key: fNumbers, Value: regex("^" + prefixRE + rangeRE(loKey, hiKey, hexDigits) + "$")}})
	return p
}

// tooCostly is the error of a chain or _has whose first query matches more
// than its bound.
func tooCostly(expr, msg string) error {
	return fhir.NewError(http.StatusBadRequest, "too-costly", expr, msg)
}

// chainKeys runs the chain's first query (the referenced resources of
// Chain.Type that meet Chain.Where, at most maxChainIDs) and returns the
// reference keys that point to them.
func (sr searcher) chainKeys(c *store.Condition) ([]any, error) {
	ch := c.Chain
	p, err := sr.plan(ch.Type, ch.Where, nil, nil)
	if err != nil {
		return nil, err
	}
	p.q.limit = maxChainIDs + 1
	rows, err := sr.find(p.q, bson.D{{Key: "_id", Value: 0}, {Key: fID, Value: 1}})
	if err != nil {
		return nil, wrap("search chain", err)
	}
	if len(rows) > maxChainIDs {
		return nil, tooCostly(c.Param, fmt.Sprintf("the chained search on %s matches more than %d resources; narrow it", ch.Type, maxChainIDs))
	}
	keys := make([]any, len(rows))
	for i, r := range rows {
		keys[i] = c.Param + "|" + ch.Type + "/" + r.ID
	}
	return keys, nil
}

// hasIDs runs the first query of _has (resources of Has.Type that meet
// Has.Where and whose Has.Param refers to a typ, at most maxHasRefs of
// them) and returns the ids of the typ resources they refer to.
func (sr searcher) hasIDs(typ string, h *store.HasQuery) ([]any, error) {
	prefix := h.Param + "|" + typ + "/"
	refers := valsPred(fRefs, true, regex("^"+quote(prefix)))
	p, err := sr.plan(h.Type, h.Where, nil, []pred{refers})
	if err != nil {
		return nil, err
	}
	p.q.limit = maxHasRefs + 1
	rows, err := sr.find(p.q, bson.D{{Key: "_id", Value: 0}, {Key: fID, Value: 1}, {Key: fRefs, Value: 1}})
	if err != nil {
		return nil, wrap("search _has", err)
	}
	if len(rows) > maxHasRefs {
		return nil, tooCostly("_has:"+h.Type+":"+h.Param, fmt.Sprintf("more than %d %s resources meet the _has condition; narrow it", maxHasRefs, h.Type))
	}
	var ids []any
	seen := map[string]bool{}
	for _, r := range rows {
		for _, k := range r.Ix.Refs {
			if id, ok := strings.CutPrefix(k, prefix); ok && !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	slices.SortFunc(ids, func(a, b any) int { return strings.Compare(a.(string), b.(string)) })
	return ids, nil
}

// Cursors. A page's Next is the sort values of its last row and its id,
// with a fingerprint of the order, as base64url JSON; the next page adds
// "strictly after these values in this order" to the filter.

type cursor struct {
	Sig  uint32 `json:"s"`
	Vals []any  `json:"v"` // per sort field: string, null (no value), or Unix ms (lastUpdated)
}

func signature(order []sortField) uint32 {
	h := fnv.New32a()
	for _, sf := range order {
		fmt.Fprintf(h, "%s:%d;", sf.field, sf.dir)
	}
	return h.Sum32()
}

func encodeCursor(order []sortField, r *row) string {
	c := cursor{Sig: signature(order)}
	for _, sf := range order {
		switch {
		case sf.field == fID:
			c.Vals = append(c.Vals, r.ID)
		case sf.date:
			c.Vals = append(c.Vals, r.LastUpdated.UnixMilli())
		default:
			v, err := r.Raw.LookupErr(strings.Split(sf.field, ".")...)
			if s, ok := v.StringValueOK(); err == nil && ok {
				c.Vals = append(c.Vals, s)
			} else {
				c.Vals = append(c.Vals, nil)
			}
		}
	}
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string, order []sortField) ([]any, error) {
	bad := func() ([]any, error) { return nil, fmt.Errorf("%w: %q", store.ErrBadCursor, s) }
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return bad()
	}
	var c cursor
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if dec.Decode(&c) != nil || c.Sig != signature(order) || len(c.Vals) != len(order) {
		return bad()
	}
	vals := make([]any, len(order))
	for i, sf := range order {
		switch v := c.Vals[i].(type) {
		case string:
			if sf.date {
				return bad()
			}
			vals[i] = v
		case json.Number:
			ms, err := v.Int64()
			if !sf.date || err != nil {
				return bad()
			}
			vals[i] = time.UnixMilli(ms).UTC()
		case nil:
			if !sf.nullable {
				return bad()
			}
		default:
			return bad()
		}
	}
	return vals, nil
}

// appendAfter adds to filter "strictly after vals in order": a bound on the
// first sort field (so that the index scan starts at the cursor) and the
// lexicographic $or: {f1 after v1} or {f1 = v1, f2 after v2} or ... A
// nullable field sorts descending with the resources without a value last:
// after a value v come the smaller values and the nulls; after null,
// nothing.
func appendAfter(filter bson.D, order []sortField, vals []any) bson.D {
	eq := func(i int) bson.E { return bson.E{Key: order[i].field, Value: vals[i]} } // nil: null or absent
	var branches bson.A
	for i, sf := range order {
		var afters []bson.D
		switch {
		case vals[i] == nil: // only nulls, which all equal null
		case sf.dir < 0 && sf.nullable:
			afters = append(afters,
				bson.D{{Key: sf.field, Value: bson.D{{Key: "$lt", Value: vals[i]}}}},
				bson.D{{Key: sf.field, Value: nil}})
		case sf.dir < 0:
			afters = append(afters, bson.D{{Key: sf.field, Value: bson.D{{Key: "$lt", Value: vals[i]}}}})
		default:
			afters = append(afters, bson.D{{Key: sf.field, Value: bson.D{{Key: "$gt", Value: vals[i]}}}})
		}
		for _, a := range afters {
			b := bson.D{}
			for j := 0; j < i; j++ {
				b = append(b, eq(j))
			}
			branches = append(branches, append(b, a...))
		}
	}
	first := order[0]
	var bound bson.D
	switch {
	case vals[0] == nil:
		bound = bson.D{{Key: first.field, Value: nil}}
	case first.dir < 0 && first.nullable: // v and below, nulls included
		bound = bson.D{{Key: first.field, Value: bson.D{{Key: "$not", Value: bson.D{{Key: "$gt", Value: vals[0]}}}}}}
	case first.dir < 0:
		bound = bson.D{{Key: first.field, Value: bson.D{{Key: "$lte", Value: vals[0]}}}}
	default:
		bound = bson.D{{Key: first.field, Value: bson.D{{Key: "$gte", Value: vals[0]}}}}
	}
	filter = and(slices.Clone(filter), bound)
	if len(branches) == 0 {
		branches = bson.A{bson.D{{Key: fID, Value: bson.D{{Key: "$in", Value: bson.A{}}}}}}
	}
	return and(filter, bson.D{{Key: "$or", Value: branches}})
}
