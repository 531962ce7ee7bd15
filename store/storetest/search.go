package storetest

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dmp-fhir/dmp-fhir/store"
)

// RunSearch runs the search contract against the engine that open returns.
// The engine's store must implement store.Searcher. Resources are written
// through the store (so their index values come from fhir.ExtractIndex),
// and the expected results are computed from what the test wrote, by plain
// Go predicates: never from the index.
//
// On servers without transactions (FerretDB, where every write and search
// reads the whole collection) the fixtures are smaller: 120 observations
// instead of 300 for the brute-force table, 200 results by 9 instead of
// 1,000 by 37 for paging. The checks are the same.
func RunSearch(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store, se store.Searcher)
	}{
		{"MatchesBruteForce", testSearchBruteForce},
		{"SortsMultiValuedDates", testSearchMultiValuedSort},
		{"PagesEveryMatchOnceWhileWritesHappen", testSearchPagingStable},
		{"TotalAndCountZero", testSearchTotal},
		{"UpdatesAndDeletesMoveIndexValues", testSearchUpdateDelete},
		{"BadCursorIsRefused", testSearchBadCursor},
		{"OtherTypesNeverMatch", testSearchOtherTypes},
		{"FindsAuditEventsByWhatTheyListAndTheirCodes", testSearchAuditEntities},
		{"SecurityLabelsBesideThePatient", testSearchSecurityLabels},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			se, ok := s.(store.Searcher)
			if !ok {
				t.Fatalf("engine %s does not implement store.Searcher", s.Info().Engine)
			}
			tc.fn(t, s, se)
		})
	}
}

// Code systems used by the fixtures.
const (
	sysLOINC  = "http://loinc.org"
	sysSNOMED = "http://snomed.info/sct"
	sysUCUM   = "http://unitsofmeasure.org"
	sysNIR    = "urn:oid:1.2.250.1.213.1.4.8"
	sysCat    = "http://terminology.hl7.org/CodeSystem/observation-category"
	sysTags   = "urn:dmp:tags"
	profileA  = "http://example.org/fhir/StructureDefinition/obs-a"
	profileB  = "http://example.org/fhir/StructureDefinition/obs-b"
	profBase  = "http://example.org/fhir/StructureDefinition/"
)

// ---- conditions ----

func clauses(cs ...store.Clause) []store.Clause { return cs }

func anyOf(cs ...store.Condition) store.Clause { return store.Clause{Any: cs} }

func one(c store.Condition) store.Clause { return store.Clause{Any: []store.Condition{c}} }

// token is param=system|code (system "" is FHIR |code).
func token(param, system, code string) store.Condition {
	return store.Condition{Param: param, Kind: store.KindToken, System: system, Code: code}
}

// tokenCode is param=code, in any system.
func tokenCode(param, code string) store.Condition {
	return store.Condition{Param: param, Kind: store.KindToken, Code: code, AnySystem: true}
}

func not(c store.Condition) store.Condition { c.Not = true; return c }

func str(param, folded string, m store.StringMatch) store.Condition {
	return store.Condition{Param: param, Kind: store.KindString, Value: folded, Match: m}
}

func ref(param, typ, id string) store.Condition {
	return store.Condition{Param: param, Kind: store.KindReference, RefType: typ, RefID: id}
}

func date(param string, iv store.Interval) store.Condition {
	return store.Condition{Param: param, Kind: store.KindDate, Range: iv}
}

func missing(param string, k store.Kind, m bool) store.Condition {
	return store.Condition{Param: param, Kind: k, Missing: &m}
}

func f64(v int64) *float64 { f := float64(v); return &f }

func fl(v float64) *float64 { return &v }

// prefix turns a FHIR date prefix on the search range [a, b] into an
// Interval, as documented on store.Interval. ne is eq with Not (see dateCond).
func prefix(p string, a, b int64) store.Interval {
	switch p {
	case "eq", "ne":
		return store.Interval{LowAtLeast: f64(a), HighAtMost: f64(b)}
	case "gt":
		return store.Interval{HighAtLeast: f64(b + 1)}
	case "ge":
		return store.Interval{HighAtLeast: f64(a)}
	case "lt":
		return store.Interval{LowAtMost: f64(a - 1)}
	case "le":
		return store.Interval{LowAtMost: f64(b)}
	case "sa":
		return store.Interval{LowAtLeast: f64(b + 1)}
	case "eb":
		return store.Interval{HighAtMost: f64(a - 1)}
	}
	panic("unknown prefix " + p)
}

func dateCond(param, p string, a, b int64) store.Condition {
	c := date(param, prefix(p, a, b))
	c.Not = p == "ne"
	return c
}

// ---- dates ----

// Bounds of an open period (fhir.MinDate, fhir.MaxDate).
const (
	minDate int64 = -62135596800000
	maxDate int64 = 253402300799999
)

func ms(y int, m time.Month, d, hh, mm, ss int) int64 {
	return time.Date(y, m, d, hh, mm, ss, 0, time.UTC).UnixMilli()
}

// span is the closed range of instants a date value covers, in Unix ms.
type span struct{ low, high int64 }

func daySpan(y int, m time.Month, d int) span {
	return span{ms(y, m, d, 0, 0, 0), ms(y, m, d+1, 0, 0, 0) - 1}
}

func monthSpan(y int, m time.Month) span {
	return span{ms(y, m, 1, 0, 0, 0), ms(y, m+1, 1, 0, 0, 0) - 1}
}

func yearSpan(y int) span { return span{ms(y, 1, 1, 0, 0, 0), ms(y+1, 1, 1, 0, 0, 0) - 1} }

// ---- running searches ----

// collect pages through q (page size pageSize) and returns every resource,
// checking the page invariants on the way.
func collect(t *testing.T, se store.Searcher, q store.Query, pageSize int) []*store.Resource {
	t.Helper()
	q.Count = pageSize
	var all []*store.Resource
	for pages := 0; ; pages++ {
		if pages > 500 {
			t.Fatalf("paging does not end")
		}
		page, err := se.Search(ctx(), q)
		if err != nil {
			t.Fatalf("search %s: %v", describe(q), err)
		}
		if len(page.Resources) > pageSize {
			t.Fatalf("page of %d resources, Count %d", len(page.Resources), pageSize)
		}
		if !q.Total && page.Total != -1 {
			t.Fatalf("Total %d when not asked, want -1", page.Total)
		}
		for _, r := range page.Resources {
			if r.Type != q.Type {
				t.Fatalf("search of %s returned a %s (%s)", q.Type, r.Type, r.ID)
			}
			if r.Deleted || r.Body == nil {
				t.Fatalf("search returned %s/%s without a body", r.Type, r.ID)
			}
		}
		all = append(all, page.Resources...)
		if page.Next == "" {
			return all
		}
		if len(page.Resources) < pageSize {
			t.Fatalf("page of %d < Count %d with a Next cursor", len(page.Resources), pageSize)
		}
		if page.Next == q.After {
			t.Fatalf("the Next cursor does not move on (page %d)", pages)
		}
		q.After = page.Next
	}
}

func ids(rs []*store.Resource) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func describe(q store.Query) string {
	var b strings.Builder
	b.WriteString(q.Type + "?")
	for _, cl := range q.Where {
		b.WriteString("[")
		for i, c := range cl.Any {
			if i > 0 {
				b.WriteString(" OR ")
			}
			b.WriteString(describeCond(c))
		}
		b.WriteString("]")
	}
	for _, s := range q.Sort {
		fmt.Fprintf(&b, " sort(%s desc=%t)", s.Param, s.Desc)
	}
	return b.String()
}

func describeCond(c store.Condition) string {
	s := fmt.Sprintf("%s(kind %d)", c.Param, c.Kind)
	switch {
	case c.Has != nil:
		s = fmt.Sprintf("_has:%s:%s%v", c.Has.Type, c.Has.Param, c.Has.Where)
	case c.Chain != nil:
		s += fmt.Sprintf(":%s%v", c.Chain.Type, c.Chain.Where)
	case c.Missing != nil:
		s += fmt.Sprintf(":missing=%t", *c.Missing)
	default:
		s += fmt.Sprintf("=%+v", struct {
			Sys, Code, Val, RT, RID, URL string
			Any                          bool
			M                            store.StringMatch
			R                            string
		}{c.System, c.Code, c.Value, c.RefType, c.RefID, c.URL, c.AnySystem, c.Match, interval(c.Range)})
	}
	if c.Not {
		s = "NOT " + s
	}
	return s
}

func interval(iv store.Interval) string {
	f := func(p *float64) string {
		if p == nil {
			return "_"
		}
		return fmt.Sprintf("%.0f", *p)
	}
	return fmt.Sprintf("low[%s,%s] high[%s,%s]", f(iv.LowAtLeast), f(iv.LowAtMost), f(iv.HighAtLeast), f(iv.HighAtMost))
}

// bulk writes the bodies (type/id → body) in transactions of 500 when the
// engine has them, else one by one; it returns the stored versions by id.
func bulk(t *testing.T, s store.Store, typ string, ids []string, bodies [][]byte) map[string]*store.Resource {
	t.Helper()
	out := make(map[string]*store.Resource, len(ids))
	if s.Info().Transactions {
		for start := 0; start < len(ids); start += 500 {
			end := min(start+500, len(ids))
			got := map[string]*store.Resource{}
			err := s.Transaction(ctx(), func(tx store.Ops) error {
				clear(got)
				for i := start; i < end; i++ {
					r, _, err := tx.Put(ctx(), typ, ids[i], bodies[i], 0)
					if err != nil {
						return err
					}
					got[ids[i]] = r
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range got {
				out[k] = v
			}
		}
		return out
	}
	for i := range ids {
		r, _, err := s.Put(ctx(), typ, ids[i], bodies[i], 0)
		if err != nil {
			t.Fatal(err)
		}
		out[ids[i]] = r
	}
	return out
}

// ---- sort keys of the expected order ----

// key is one expected sort key: the value of a resource (ok false: none,
// which sorts last in either direction).
type key[M any] struct {
	val  func(m *M) (any, bool)
	desc bool
}

func cmpVal(a, b any) int {
	switch a := a.(type) {
	case int64:
		return cmp.Compare(a, b.(int64))
	case float64:
		return cmp.Compare(a, b.(float64))
	case string:
		return strings.Compare(a, b.(string))
	}
	panic(fmt.Sprintf("cmpVal %T", a))
}

// order sorts ms by keys then id ascending.
func order[M any](ms []*M, id func(*M) string, keys []key[M]) {
	slices.SortFunc(ms, func(x, y *M) int {
		for _, k := range keys {
			a, aok := k.val(x)
			b, bok := k.val(y)
			switch {
			case !aok && !bok:
				continue
			case !aok:
				return 1
			case !bok:
				return -1
			}
			c := cmpVal(a, b)
			if k.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return strings.Compare(id(x), id(y))
	})
}

// bfCase is one query checked against brute force: the resources that
// match (by a Go predicate over what the test wrote), in the expected
// order.
type bfCase[M any] struct {
	name  string
	where []store.Clause
	sort  []store.Sort
	keys  []key[M]
	match func(m *M) bool
}

// checkCases runs every case and compares with the brute-force answer; each
// query is paged (in about `pages` pages, at least 7 a page, so that every
// sort's cursors are used) and counted (Total).
func checkCases[M any](t *testing.T, se store.Searcher, typ string, all []*M, id func(*M) string, pages int, cases []bfCase[M]) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var want []*M
			for _, m := range all {
				if c.match(m) {
					want = append(want, m)
				}
			}
			order(want, id, c.keys)
			wantIDs := make([]string, len(want))
			for i, m := range want {
				wantIDs[i] = id(m)
			}
			q := store.Query{Type: typ, Where: c.where, Sort: c.sort}
			got := ids(collect(t, se, q, max(7, len(wantIDs)/pages+1)))
			if !slices.Equal(got, wantIDs) {
				t.Fatalf("%s\n got  %d %v\n want %d %v", describe(q), len(got), got, len(wantIDs), wantIDs)
			}
			q.Total, q.Count = true, 0
			page, err := se.Search(ctx(), q)
			if err != nil {
				t.Fatal(err)
			}
			if page.Total != len(wantIDs) || len(page.Resources) != 0 || page.Next != "" {
				t.Fatalf("Count 0 with Total: %d resources, Total %d, want 0 and %d", len(page.Resources), page.Total, len(wantIDs))
			}
		})
	}
}

// ---- the fixture world: patients, observations, medication requests ----

type coding struct{ system, code, display, norm string }

var obsCodes = []coding{
	{sysLOINC, "8867-4", "Heart rate", "heart rate"},
	{sysLOINC, "8310-5", "Body temperature", "body temperature"},
	{sysLOINC, "29463-7", "Body Weight", "body weight"},
	{sysSNOMED, "8867-4", "", ""}, // the same code in another system
	{"", "8867-4", "Pouls  local", "pouls local"},
	{sysLOINC, "2339-0", "Glucose [Mass/volume] in Blood", "glucose [mass/volume] in blood"},
}

var obsTexts = [][2]string{{"Fréquence cardiaque", "frequence cardiaque"}, {"Température", "temperature"}, {"POIDS", "poids"}, {"", ""}}

type quantity struct {
	value        float64
	system, code string
}

type obsM struct {
	id             string
	subject        string // "Patient/p3", "Group/p3", "Group/g1" or ""
	codes          []coding
	text, textNorm string
	status         string
	category       string
	effJSON        string // the effective[x] member, "" for none
	eff            *span
	value          *quantity
	valueDateJSON  string // a value[x] dateTime or Period member, "" for none
	valueDate      *span
	performer      string // an absolute URL, or ""
	profile        string
	tag            bool
	lu             int64
}

func (o *obsM) body() []byte {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Observation"`)
	var meta []string
	if o.profile != "" {
		meta = append(meta, fmt.Sprintf(`"profile":[%q]`, o.profile))
	}
	if o.tag {
		meta = append(meta, fmt.Sprintf(`"tag":[{"system":%q,"code":"dmp"}]`, sysTags))
	}
	if len(meta) > 0 {
		b.WriteString(`,"meta":{` + strings.Join(meta, ",") + `}`)
	}
	fmt.Fprintf(&b, `,"status":%q,"category":[{"coding":[{"system":%q,"code":%q}]}]`, o.status, sysCat, o.category)
	var cs []string
	for _, c := range o.codes {
		var parts []string
		if c.system != "" {
			parts = append(parts, fmt.Sprintf(`"system":%q`, c.system))
		}
		parts = append(parts, fmt.Sprintf(`"code":%q`, c.code))
		if c.display != "" {
			parts = append(parts, fmt.Sprintf(`"display":%q`, c.display))
		}
		cs = append(cs, "{"+strings.Join(parts, ",")+"}")
	}
	fmt.Fprintf(&b, `,"code":{"coding":[%s]`, strings.Join(cs, ","))
	if o.text != "" {
		fmt.Fprintf(&b, `,"text":%q`, o.text)
	}
	b.WriteString("}")
	if o.subject != "" {
		fmt.Fprintf(&b, `,"subject":{"reference":%q}`, o.subject)
	}
	if o.effJSON != "" {
		b.WriteString("," + o.effJSON)
	}
	if o.performer != "" {
		fmt.Fprintf(&b, `,"performer":[{"reference":%q}]`, o.performer)
	}
	if o.valueDateJSON != "" {
		b.WriteString("," + o.valueDateJSON)
	}
	if q := o.value; q != nil {
		fmt.Fprintf(&b, `,"valueQuantity":{"value":%v,"unit":%q`, q.value, q.code)
		if q.system != "" {
			fmt.Fprintf(&b, `,"system":%q`, q.system)
		}
		fmt.Fprintf(&b, `,"code":%q}`, q.code)
	}
	b.WriteString("}")
	return []byte(b.String())
}

func (o *obsM) hasCoding(system, code string) bool {
	return slices.ContainsFunc(o.codes, func(c coding) bool { return c.system == system && c.code == code })
}

func (o *obsM) hasCode(code string) bool {
	return slices.ContainsFunc(o.codes, func(c coding) bool { return c.code == code })
}

// textNorms are the folded :text values: code.text and every display.
func (o *obsM) textNorms() []string {
	var out []string
	if o.textNorm != "" {
		out = append(out, o.textNorm)
	}
	for _, c := range o.codes {
		if c.norm != "" {
			out = append(out, c.norm)
		}
	}
	return out
}

func (o *obsM) patient() string {
	if strings.HasPrefix(o.subject, "Patient/") {
		return strings.TrimPrefix(o.subject, "Patient/")
	}
	return ""
}

// randomEffective picks an effective[x] and the range it covers.
func randomEffective(rng *rand.Rand) (string, *span) {
	months := []time.Month{time.December, time.January, time.February}
	m := months[rng.Intn(3)]
	y := 2024
	if m == time.December {
		y = 2023
	}
	d := 1 + rng.Intn(28)
	switch rng.Intn(7) {
	case 0:
		return "", nil
	case 1, 2: // a day
		sp := daySpan(y, m, d)
		return fmt.Sprintf(`"effectiveDateTime":"%04d-%02d-%02d"`, y, m, d), &sp
	case 3: // an instant to the second
		hh, mm, ss := rng.Intn(24), rng.Intn(60), rng.Intn(60)
		t := ms(y, m, d, hh, mm, ss)
		return fmt.Sprintf(`"effectiveDateTime":"%04d-%02d-%02dT%02d:%02d:%02dZ"`, y, m, d, hh, mm, ss), &span{t, t + 999}
	case 4: // a closed period over days
		end := d + rng.Intn(40)
		endT := time.Date(y, m, end, 0, 0, 0, 0, time.UTC)
		sp := span{ms(y, m, d, 0, 0, 0), daySpan(endT.Year(), endT.Month(), endT.Day()).high}
		return fmt.Sprintf(`"effectivePeriod":{"start":"%04d-%02d-%02d","end":"%s"}`, y, m, d, endT.Format("2006-01-02")), &sp
	case 5: // a period still open
		sp := span{ms(y, m, d, 0, 0, 0), maxDate}
		return fmt.Sprintf(`"effectivePeriod":{"start":"%04d-%02d-%02d"}`, y, m, d), &sp
	default: // a month
		sp := monthSpan(y, m)
		return fmt.Sprintf(`"effectiveDateTime":"%04d-%02d"`, y, m), &sp
	}
}

func randomObservation(rng *rand.Rand, id string) *obsM {
	o := &obsM{id: id}
	switch x := rng.Float64(); {
	case x < 0.75:
		o.subject = fmt.Sprint("Patient/p", rng.Intn(len(patientFixtures)))
	case x < 0.85:
		o.subject = "Group/p3"
	case x < 0.9:
		o.subject = "Group/g1"
	}
	i := rng.Intn(len(obsCodes))
	o.codes = []coding{obsCodes[i]}
	if rng.Intn(10) < 3 {
		o.codes = append(o.codes, obsCodes[(i+1+rng.Intn(len(obsCodes)-1))%len(obsCodes)])
	}
	t := obsTexts[rng.Intn(len(obsTexts))]
	o.text, o.textNorm = t[0], t[1]
	o.status = []string{"final", "amended", "preliminary", "cancelled"}[rng.Intn(4)]
	o.category = []string{"vital-signs", "laboratory"}[rng.Intn(2)]
	o.effJSON, o.eff = randomEffective(rng)
	if rng.Intn(10) < 7 {
		q := &quantity{value: []float64{55, 60, 72, 72.5, 80, 100, 120.25}[rng.Intn(7)]}
		switch rng.Intn(4) {
		case 0:
			q.system, q.code = sysUCUM, "/min"
		case 1:
			q.system, q.code = sysUCUM, "Cel"
		case 2:
			q.system, q.code = sysUCUM, "kg"
		default:
			q.code = "kg"
		}
		o.value = q
	}
	// Those without a quantity have their effective date as their value
	// (no draw of rng: the rest of the world stays as it was).
	if o.value == nil && o.eff != nil {
		o.valueDateJSON, o.valueDate = strings.Replace(o.effJSON, `"effective`, `"value`, 1), o.eff
	}
	if rng.Intn(100) < 15 {
		o.performer = fmt.Sprint("http://other.example/fhir/Practitioner/", rng.Intn(4))
	}
	switch x := rng.Intn(100); {
	case x < 20:
		o.profile = profileA
	case x < 35:
		o.profile = profileB
	}
	o.tag = rng.Intn(5) == 0
	return o
}

type patM struct {
	id                 string
	family, familyNorm string
	given, givenNorm   []string
	nir, local         string
	birthJSON          string
	birth              *span
	gender             string
	lu                 int64
}

func (p *patM) body() []byte {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Patient"`)
	var idents []string
	if p.nir != "" {
		idents = append(idents, fmt.Sprintf(`{"system":%q,"value":%q}`, sysNIR, p.nir))
	}
	if p.local != "" {
		idents = append(idents, fmt.Sprintf(`{"value":%q}`, p.local))
	}
	if len(idents) > 0 {
		b.WriteString(`,"identifier":[` + strings.Join(idents, ",") + `]`)
	}
	var given []string
	for _, g := range p.given {
		given = append(given, fmt.Sprintf("%q", g))
	}
	fmt.Fprintf(&b, `,"name":[{"family":%q,"given":[%s]}],"gender":%q`, p.family, strings.Join(given, ","), p.gender)
	if p.birthJSON != "" {
		fmt.Fprintf(&b, `,"birthDate":%q`, p.birthJSON)
	}
	b.WriteString("}")
	return []byte(b.String())
}

func (p *patM) nameNorms() []string { return append([]string{p.familyNorm}, p.givenNorm...) }

func spanPtr(s span) *span { return &s }

// patientFixtures: p14 is deleted after the observations referencing it
// are written.
var patientFixtures = []patM{
	{id: "p0", family: "Dupont", familyNorm: "dupont", given: []string{"Jean-Marc"}, givenNorm: []string{"jean-marc"}, nir: "1800575000000", birthJSON: "1980-05-02", birth: spanPtr(daySpan(1980, 5, 2)), gender: "male"},
	{id: "p1", family: "DUPONT", familyNorm: "dupont", given: []string{"Hélène"}, givenNorm: []string{"helene"}, nir: "2790375000001", local: "local-1", birthJSON: "1979", birth: spanPtr(yearSpan(1979)), gender: "female"},
	{id: "p2", family: "Dupontel", familyNorm: "dupontel", given: []string{"Zoé"}, givenNorm: []string{"zoe"}, nir: "2850575000002", gender: "female"},
	{id: "p3", family: "Léger", familyNorm: "leger", given: []string{"Éric"}, givenNorm: []string{"eric"}, nir: "1700375000003", local: "local-3", birthJSON: "1970-03", birth: spanPtr(monthSpan(1970, 3)), gender: "male"},
	{id: "p4", family: "Lefèvre", familyNorm: "lefevre", given: []string{"Hélène", "Marie"}, givenNorm: []string{"helene", "marie"}, nir: "2900575000004", birthJSON: "1990-12-31", birth: spanPtr(daySpan(1990, 12, 31)), gender: "female"},
	{id: "p5", family: "Martin", familyNorm: "martin", given: []string{"jean"}, givenNorm: []string{"jean"}, local: "local-5", birthJSON: "1985-06-15", birth: spanPtr(daySpan(1985, 6, 15)), gender: "male"},
	{id: "p6", family: "Hélène", familyNorm: "helene", given: []string{"Anne"}, givenNorm: []string{"anne"}, nir: "2650575000006", birthJSON: "1965", birth: spanPtr(yearSpan(1965)), gender: "female"},
	{id: "p7", family: "Martin-Dupont", familyNorm: "martin-dupont", given: []string{"Luc"}, givenNorm: []string{"luc"}, nir: "1950575000007", gender: "male"},
	{id: "p8", family: "d'Ormesson", familyNorm: "d'ormesson", given: []string{"Jean"}, givenNorm: []string{"jean"}, birthJSON: "1925-06-16", birth: spanPtr(daySpan(1925, 6, 16)), gender: "male"},
	{id: "p9", family: "Müller", familyNorm: "muller", given: []string{"Jürgen"}, givenNorm: []string{"jurgen"}, nir: "1600575000009", birthJSON: "1960-01", birth: spanPtr(monthSpan(1960, 1)), gender: "male"},
	{id: "p10", family: "Dupond", familyNorm: "dupond", given: []string{"Marc"}, givenNorm: []string{"marc"}, nir: "1820575000010", birthJSON: "1982-02-02", birth: spanPtr(daySpan(1982, 2, 2)), gender: "male"},
	{id: "p11", family: "Zola", familyNorm: "zola", given: []string{"Émile"}, givenNorm: []string{"emile"}, birthJSON: "1840-04-02", birth: spanPtr(daySpan(1840, 4, 2)), gender: "male"},
	{id: "p12", family: "Lefevre", familyNorm: "lefevre", given: []string{"Anne"}, givenNorm: []string{"anne"}, nir: "2950575000012", gender: "female"},
	{id: "p13", family: "Martin", familyNorm: "martin", given: []string{"Élodie"}, givenNorm: []string{"elodie"}, nir: "2000575000013", birthJSON: "2000-01-01", birth: spanPtr(daySpan(2000, 1, 1)), gender: "female"},
	{id: "p14", family: "Supprimé", familyNorm: "supprime", given: []string{"Paul"}, givenNorm: []string{"paul"}, nir: "1990575000014", gender: "male"},
}

type mrM struct {
	id, patient, status string
	authored            span
	authJSON            string
}

func (m *mrM) body() []byte {
	return []byte(fmt.Sprintf(`{"resourceType":"MedicationRequest","status":%q,"intent":"order","medicationCodeableConcept":{"coding":[{"system":%q,"code":"8867-4"}]},"subject":{"reference":"Patient/%s"},"authoredOn":%q}`,
		m.status, sysLOINC, m.patient, m.authJSON))
}

// world is what testSearchBruteForce wrote, as it stands after the updates
// and deletions: the live resources only.
type world struct {
	obs      []*obsM
	patients []*patM
	mrs      []*mrM
	nirP14   string
	t2, t3   int64 // the first lastUpdated of the 2nd and 3rd observation batches
}

func (w *world) alivePatient(id string) *patM {
	for _, p := range w.patients {
		if p.id == id {
			return p
		}
	}
	return nil
}

// buildWorld writes the fixtures: patients, nObs observations in three
// batches (distinct lastUpdated ranges), nObs/7 medication requests (one
// with an observation's id), then updates a tenth of the observations (new
// code, status and date) and deletes a twentieth (some of them updated
// first), and patient p14.
func buildWorld(t *testing.T, s store.Store, nObs int) *world {
	rng := rand.New(rand.NewSource(42))
	w := &world{}
	var pids []string
	var pbodies [][]byte
	for i := range patientFixtures {
		p := patientFixtures[i]
		w.patients = append(w.patients, &p)
		pids = append(pids, p.id)
		pbodies = append(pbodies, p.body())
	}
	for id, r := range bulk(t, s, "Patient", pids, pbodies) {
		w.alivePatient(id).lu = r.LastUpdated.UnixMilli()
	}

	for i := 0; i < nObs; i++ {
		w.obs = append(w.obs, randomObservation(rng, fmt.Sprint("o", i)))
	}
	byID := map[string]*obsM{}
	third := nObs / 3
	for b, start := range []int{0, third, 2 * third} {
		time.Sleep(3 * time.Millisecond)
		var oids []string
		var obodies [][]byte
		end := start + third
		if b == 2 {
			end = nObs
		}
		for _, o := range w.obs[start:end] {
			oids = append(oids, o.id)
			obodies = append(obodies, o.body())
			byID[o.id] = o
		}
		first := int64(1<<63 - 1)
		for id, r := range bulk(t, s, "Observation", oids, obodies) {
			byID[id].lu = r.LastUpdated.UnixMilli()
			first = min(first, byID[id].lu)
		}
		switch b {
		case 1:
			w.t2 = first
		case 2:
			w.t3 = first
		}
	}

	var mids []string
	var mbodies [][]byte
	for i := 0; i < nObs/7; i++ {
		m := &mrM{id: fmt.Sprint("mr", i), patient: fmt.Sprint("p", rng.Intn(len(patientFixtures))),
			status: []string{"active", "completed", "stopped"}[rng.Intn(3)]}
		if i == 0 {
			m.id = "o3" // the same id as an observation: another resource
		}
		d := 1 + rng.Intn(31)
		m.authored, m.authJSON = daySpan(2024, time.January, d), fmt.Sprintf("2024-01-%02d", d)
		w.mrs = append(w.mrs, m)
		mids = append(mids, m.id)
		mbodies = append(mbodies, m.body())
	}
	bulk(t, s, "MedicationRequest", mids, mbodies)

	// Updates: the old code, status and date must stop matching.
	perm := rng.Perm(nObs)
	updates, deletes := nObs/10, nObs/20
	for _, i := range perm[:updates] {
		o := w.obs[i]
		o.codes = []coding{obsCodes[1]}
		o.status = "amended"
		o.effJSON, o.eff = `"effectiveDateTime":"2024-03-10"`, spanPtr(daySpan(2024, time.March, 10))
		r, out, err := s.Put(ctx(), "Observation", o.id, o.body(), 0)
		if err != nil || out != store.Updated {
			t.Fatalf("update %s: %v %v", o.id, out, err)
		}
		o.lu = r.LastUpdated.UnixMilli()
	}
	deleted := map[string]bool{}
	for _, i := range perm[updates-deletes/3 : updates-deletes/3+deletes] { // some of them updated first
		if _, _, err := s.Delete(ctx(), "Observation", w.obs[i].id, 0); err != nil {
			t.Fatal(err)
		}
		deleted[w.obs[i].id] = true
	}
	w.obs = slices.DeleteFunc(w.obs, func(o *obsM) bool { return deleted[o.id] })
	if _, _, err := s.Delete(ctx(), "Patient", "p14", 0); err != nil {
		t.Fatal(err)
	}
	w.nirP14 = w.patients[14].nir
	w.patients = w.patients[:14]
	return w
}

// ---- brute force ----

// The sort keys of a date: the low bound ascending, the high bound
// descending; none when the observation has no such date.
var (
	obsDateLow       = spanKey(func(o *obsM) *span { return o.eff }, false)
	obsDateHigh      = spanKey(func(o *obsM) *span { return o.eff }, true)
	obsValueDateLow  = spanKey(func(o *obsM) *span { return o.valueDate }, false)
	obsValueDateHigh = spanKey(func(o *obsM) *span { return o.valueDate }, true)
)

func spanKey(date func(*obsM) *span, high bool) func(*obsM) (any, bool) {
	return func(o *obsM) (any, bool) {
		sp := date(o)
		switch {
		case sp == nil:
			return nil, false
		case high:
			return sp.high, true
		}
		return sp.low, true
	}
}

func obsCodeMin(o *obsM) (any, bool) {
	return slices.MinFunc(o.codes, func(a, b coding) int { return strings.Compare(a.code, b.code) }).code, true
}

func obsCodeMax(o *obsM) (any, bool) {
	return slices.MaxFunc(o.codes, func(a, b coding) int { return strings.Compare(a.code, b.code) }).code, true
}

func obsValue(o *obsM) (any, bool) {
	if o.value == nil {
		return nil, false
	}
	return o.value.value, true
}

func obsStatus(o *obsM) (any, bool) { return o.status, true }
func obsLU(o *obsM) (any, bool)     { return o.lu, true }
func obsIDKey(o *obsM) (any, bool)  { return o.id, true }

func testSearchBruteForce(t *testing.T, s store.Store, se store.Searcher) {
	nObs, pages := 300, 4
	if !s.Info().Transactions {
		nObs, pages = 120, 2
	}
	w := buildWorld(t, s, nObs)
	jan := monthSpan(2024, time.January)
	a, b := jan.low, jan.high

	number := func(iv store.Interval, system, code string) store.Condition {
		return store.Condition{Param: "value-quantity", Kind: store.KindNumber, Range: iv, System: system, Code: code}
	}
	uri := func(v string, m store.StringMatch) store.Condition {
		return store.Condition{Param: "_profile", Kind: store.KindURI, Value: v, Match: m}
	}
	id := func(v string) store.Condition { return store.Condition{Kind: store.KindID, Value: v} }
	lastUpdated := func(iv store.Interval) store.Condition {
		return store.Condition{Kind: store.KindLastUpdated, Range: iv}
	}
	chain := func(typ string, where ...store.Clause) store.Condition {
		return store.Condition{Param: "subject", Kind: store.KindReference, Chain: &store.Query{Type: typ, Where: where}}
	}
	has := func(where ...store.Clause) store.Condition {
		return store.Condition{Has: &store.HasQuery{Type: "Observation", Param: "patient", Where: where}}
	}
	inJan := func(o *obsM) bool { return o.eff != nil && o.eff.low >= a && o.eff.high <= b }
	hasPrefix := func(vals []string, p string) bool {
		return slices.ContainsFunc(vals, func(v string) bool { return strings.HasPrefix(v, p) })
	}
	patientOf := func(o *obsM) *patM { return w.alivePatient(o.patient()) }
	statusIn := func(o *obsM, ss ...string) bool { return slices.Contains(ss, o.status) }

	obsCases := []bfCase[obsM]{
		// tokens
		{name: "token system|code", where: clauses(one(token("code", sysLOINC, "8867-4"))),
			match: func(o *obsM) bool { return o.hasCoding(sysLOINC, "8867-4") }},
		{name: "token code in any system", where: clauses(one(tokenCode("code", "8867-4"))),
			match: func(o *obsM) bool { return o.hasCode("8867-4") }},
		{name: "token |code without system", where: clauses(one(token("code", "", "8867-4"))),
			match: func(o *obsM) bool { return o.hasCoding("", "8867-4") }},
		{name: "token system| any code", where: clauses(one(token("code", sysLOINC, ""))),
			match: func(o *obsM) bool {
				return slices.ContainsFunc(o.codes, func(c coding) bool { return c.system == sysLOINC })
			}},
		{name: "token :not", where: clauses(one(not(token("code", sysLOINC, "8867-4")))),
			match: func(o *obsM) bool { return !o.hasCoding(sysLOINC, "8867-4") }},
		{name: "token :not on status", where: clauses(one(not(tokenCode("status", "final")))),
			match: func(o *obsM) bool { return o.status != "final" }},
		{name: "token OR in one clause", where: clauses(anyOf(token("code", sysLOINC, "8310-5"), token("code", "", "8867-4"))),
			match: func(o *obsM) bool { return o.hasCoding(sysLOINC, "8310-5") || o.hasCoding("", "8867-4") }},
		{name: "token _tag", where: clauses(one(token("_tag", sysTags, "dmp"))),
			match: func(o *obsM) bool { return o.tag }},
		{name: "token category", where: clauses(one(token("category", sysCat, "vital-signs"))),
			match: func(o *obsM) bool { return o.category == "vital-signs" }},
		{name: "token :text prefix (text)", where: clauses(one(str("code:text", "frequence", store.StringPrefix))),
			match: func(o *obsM) bool { return hasPrefix(o.textNorms(), "frequence") }},
		{name: "token :text prefix (display)", where: clauses(one(str("code:text", "body", store.StringPrefix))),
			match: func(o *obsM) bool { return hasPrefix(o.textNorms(), "body") }},
		{name: "token :text folded white space", where: clauses(one(str("code:text", "pouls l", store.StringPrefix))),
			match: func(o *obsM) bool { return hasPrefix(o.textNorms(), "pouls l") }},
		{name: "token :text contains", where: clauses(one(str("code:text", "temp", store.StringContains))),
			match: func(o *obsM) bool {
				return slices.ContainsFunc(o.textNorms(), func(v string) bool { return strings.Contains(v, "temp") })
			}},
		{name: "token or :text in one clause", where: clauses(anyOf(token("code", sysLOINC, "2339-0"), str("code:text", "poids", store.StringPrefix))),
			match: func(o *obsM) bool { return o.hasCoding(sysLOINC, "2339-0") || hasPrefix(o.textNorms(), "poids") }},

		// references
		{name: "reference type and id", where: clauses(one(ref("subject", "Patient", "p3"))),
			match: func(o *obsM) bool { return o.subject == "Patient/p3" }},
		{name: "reference id of any type", where: clauses(one(ref("subject", "", "p3"))),
			match: func(o *obsM) bool { return o.subject == "Patient/p3" || o.subject == "Group/p3" }},
		{name: "reference patient (Patient subjects only)", where: clauses(one(ref("patient", "", "p3"))),
			match: func(o *obsM) bool { return o.subject == "Patient/p3" }},
		{name: "reference other type", where: clauses(one(ref("subject", "Group", "g1"))),
			match: func(o *obsM) bool { return o.subject == "Group/g1" }},
		{name: "reference URL", where: clauses(one(store.Condition{Param: "performer", Kind: store.KindReference, URL: "http://other.example/fhir/Practitioner/2"})),
			match: func(o *obsM) bool { return o.performer == "http://other.example/fhir/Practitioner/2" }},
		{name: "reference OR", where: clauses(anyOf(ref("patient", "Patient", "p1"), ref("patient", "Patient", "p2"))),
			match: func(o *obsM) bool { return o.subject == "Patient/p1" || o.subject == "Patient/p2" }},

		// dates, each FHIR prefix on the search range 2024-01
		{name: "date eq", where: clauses(one(dateCond("date", "eq", a, b))), match: inJan},
		{name: "date ne", where: clauses(one(dateCond("date", "ne", a, b))), match: func(o *obsM) bool { return !inJan(o) }},
		{name: "date gt", where: clauses(one(dateCond("date", "gt", a, b))), match: func(o *obsM) bool { return o.eff != nil && o.eff.high > b }},
		{name: "date ge", where: clauses(one(dateCond("date", "ge", a, b))), match: func(o *obsM) bool { return o.eff != nil && o.eff.high >= a }},
		{name: "date lt", where: clauses(one(dateCond("date", "lt", a, b))), match: func(o *obsM) bool { return o.eff != nil && o.eff.low < a }},
		{name: "date le", where: clauses(one(dateCond("date", "le", a, b))), match: func(o *obsM) bool { return o.eff != nil && o.eff.low <= b }},
		{name: "date sa", where: clauses(one(dateCond("date", "sa", a, b))), match: func(o *obsM) bool { return o.eff != nil && o.eff.low > b }},
		{name: "date eb", where: clauses(one(dateCond("date", "eb", a, b))), match: func(o *obsM) bool { return o.eff != nil && o.eff.high < a }},
		{name: "date ge and lt (two clauses)", where: clauses(one(dateCond("date", "ge", a, b)), one(dateCond("date", "lt", ms(2024, 2, 1, 0, 0, 0), ms(2024, 2, 2, 0, 0, 0)-1))),
			match: func(o *obsM) bool { return o.eff != nil && o.eff.high >= a && o.eff.low < ms(2024, 2, 1, 0, 0, 0) }},
		{name: "date eq a range of days", where: clauses(one(dateCond("date", "eq", ms(2024, 1, 10, 0, 0, 0), ms(2024, 1, 20, 0, 0, 0)-1))),
			match: func(o *obsM) bool {
				return o.eff != nil && o.eff.low >= ms(2024, 1, 10, 0, 0, 0) && o.eff.high < ms(2024, 1, 20, 0, 0, 0)
			}},

		// numbers and quantities
		{name: "quantity ge any unit", where: clauses(one(number(store.Interval{HighAtLeast: fl(72)}, "", ""))),
			match: func(o *obsM) bool { return o.value != nil && o.value.value >= 72 }},
		{name: "quantity range with system and code", where: clauses(one(number(store.Interval{LowAtLeast: fl(60), HighAtMost: fl(80)}, sysUCUM, "/min"))),
			match: func(o *obsM) bool {
				return o.value != nil && o.value.value >= 60 && o.value.value <= 80 && o.value.system == sysUCUM && o.value.code == "/min"
			}},
		{name: "quantity code in any system", where: clauses(one(number(store.Interval{LowAtLeast: fl(75.5)}, "", "kg"))),
			match: func(o *obsM) bool { return o.value != nil && o.value.value >= 75.5 && o.value.code == "kg" }},
		{name: "quantity eq decimal", where: clauses(one(number(store.Interval{LowAtLeast: fl(72.45), HighAtMost: fl(72.55)}, "", ""))),
			match: func(o *obsM) bool { return o.value != nil && o.value.value == 72.5 }},
		{name: "quantity lt", where: clauses(one(number(store.Interval{LowAtMost: fl(59.99)}, "", ""))),
			match: func(o *obsM) bool { return o.value != nil && o.value.value < 60 }},

		// uri
		{name: "uri exact", where: clauses(one(uri(profileA, store.StringExact))),
			match: func(o *obsM) bool { return o.profile == profileA }},
		{name: "uri below", where: clauses(one(uri(profBase, store.StringPrefix))),
			match: func(o *obsM) bool { return o.profile != "" }},
		{name: "uri exact is not below", where: clauses(one(uri(profBase, store.StringExact))),
			match: func(o *obsM) bool { return false }},

		// _id and _lastUpdated
		{name: "_id several (OR)", where: clauses(anyOf(id("o3"), id("o17"), id("o170"), id("nope"))),
			match: func(o *obsM) bool { return o.id == "o3" || o.id == "o17" || o.id == "o170" }},
		{name: "_id and a token", where: clauses(anyOf(id("o3"), id("o17"), id("o170")), one(tokenCode("code", "8867-4"))),
			match: func(o *obsM) bool { return (o.id == "o3" || o.id == "o17" || o.id == "o170") && o.hasCode("8867-4") }},
		{name: "_lastUpdated ge", where: clauses(one(lastUpdated(store.Interval{HighAtLeast: f64(w.t2)}))),
			match: func(o *obsM) bool { return o.lu >= w.t2 }},
		{name: "_lastUpdated lt", where: clauses(one(lastUpdated(store.Interval{LowAtMost: f64(w.t2 - 1)}))),
			match: func(o *obsM) bool { return o.lu < w.t2 }},
		{name: "_lastUpdated range", where: clauses(one(lastUpdated(store.Interval{LowAtLeast: f64(w.t2), HighAtMost: f64(w.t3 - 1)}))),
			match: func(o *obsM) bool { return o.lu >= w.t2 && o.lu < w.t3 }},

		// missing
		{name: "date missing", where: clauses(one(missing("date", store.KindDate, true))),
			match: func(o *obsM) bool { return o.eff == nil }},
		{name: "quantity not missing", where: clauses(one(missing("value-quantity", store.KindNumber, false))),
			match: func(o *obsM) bool { return o.value != nil }},
		{name: "profile missing", where: clauses(one(missing("_profile", store.KindURI, true))),
			match: func(o *obsM) bool { return o.profile == "" }},
		{name: "subject missing", where: clauses(one(missing("subject", store.KindReference, true))),
			match: func(o *obsM) bool { return o.subject == "" }},
		{name: "performer not missing", where: clauses(one(missing("performer", store.KindReference, false))),
			match: func(o *obsM) bool { return o.performer != "" }},
		{name: "code:text missing", where: clauses(one(missing("code:text", store.KindString, true))),
			match: func(o *obsM) bool { return len(o.textNorms()) == 0 }},

		// chains
		{name: "chain subject:Patient.identifier", where: clauses(one(chain("Patient", one(token("identifier", sysNIR, "1700375000003"))))),
			match: func(o *obsM) bool { return o.subject == "Patient/p3" }},
		{name: "chain to a deleted patient", where: clauses(one(chain("Patient", one(token("identifier", sysNIR, w.nirP14))))),
			match: func(o *obsM) bool { return false }},
		{name: "chain subject:Patient.family", where: clauses(one(chain("Patient", one(str("family", "dupont", store.StringPrefix))))),
			match: func(o *obsM) bool { p := patientOf(o); return p != nil && strings.HasPrefix(p.familyNorm, "dupont") }},
		{name: "chain with a negated inner test skips deleted patients", where: clauses(one(chain("Patient", one(not(tokenCode("gender", "female")))))),
			match: func(o *obsM) bool { p := patientOf(o); return p != nil && p.gender != "female" }},
		{name: "chain with a missing inner value, beside a reference", where: clauses(
			anyOf(ref("subject", "Patient", "p14"), ref("subject", "Patient", "p2"), ref("subject", "Patient", "p5")),
			one(chain("Patient", one(missing("birthdate", store.KindDate, true))))),
			match: func(o *obsM) bool {
				p := patientOf(o)
				return p != nil && (p.id == "p2" || p.id == "p5") && p.birth == nil
			}},
		{name: "reference to a deleted patient still matches", where: clauses(one(ref("subject", "Patient", "p14"))),
			match: func(o *obsM) bool { return o.subject == "Patient/p14" }},
		{name: "chain with two clauses and a token", where: clauses(
			one(chain("Patient", one(tokenCode("gender", "female")), one(dateCond("birthdate", "lt", yearSpan(1980).low, yearSpan(1980).high)))),
			one(tokenCode("code", "8867-4"))),
			match: func(o *obsM) bool {
				p := patientOf(o)
				return p != nil && p.gender == "female" && p.birth != nil && p.birth.low < yearSpan(1980).low && o.hasCode("8867-4")
			}},

		// AND of clauses, OR within
		{name: "patient and code and status OR", where: clauses(one(ref("patient", "Patient", "p3")), one(tokenCode("code", "8867-4")), anyOf(tokenCode("status", "final"), tokenCode("status", "amended"))),
			match: func(o *obsM) bool {
				return o.subject == "Patient/p3" && o.hasCode("8867-4") && statusIn(o, "final", "amended")
			}},
		{name: "category and date and not status", where: clauses(one(token("category", sysCat, "vital-signs")), one(dateCond("date", "ge", a, b)), one(not(tokenCode("status", "cancelled")))),
			match: func(o *obsM) bool {
				return o.category == "vital-signs" && o.eff != nil && o.eff.high >= a && o.status != "cancelled"
			}},
		{name: "no clause: every observation", match: func(o *obsM) bool { return true }},

		// sorts
		{name: "sort -date", where: clauses(one(tokenCode("code", "8867-4"))), sort: []store.Sort{{Param: "date", Kind: store.KindDate, Desc: true}},
			keys: []key[obsM]{{val: obsDateHigh, desc: true}}, match: func(o *obsM) bool { return o.hasCode("8867-4") }},
		{name: "sort date", sort: []store.Sort{{Param: "date", Kind: store.KindDate}},
			keys: []key[obsM]{{val: obsDateLow}}, match: func(o *obsM) bool { return true }},
		{name: "patient sort -date", where: clauses(one(ref("patient", "Patient", "p3"))), sort: []store.Sort{{Param: "date", Kind: store.KindDate, Desc: true}},
			keys: []key[obsM]{{val: obsDateHigh, desc: true}}, match: func(o *obsM) bool { return o.subject == "Patient/p3" }},
		// A patient's record in the orders a patient's record is read in
		// (the embedded engine reads them along its own index).
		{name: "patient sort date", where: clauses(one(ref("patient", "Patient", "p3"))), sort: []store.Sort{{Param: "date", Kind: store.KindDate}},
			keys: []key[obsM]{{val: obsDateLow}}, match: func(o *obsM) bool { return o.subject == "Patient/p3" }},
		// By a date most observations lack, which the embedded engine's
		// patient index leaves out (unsortedByPatient): the general plan.
		{name: "patient sort value-date", where: clauses(one(ref("patient", "Patient", "p9"))), sort: []store.Sort{{Param: "value-date", Kind: store.KindDate}},
			keys: []key[obsM]{{val: obsValueDateLow}}, match: func(o *obsM) bool { return o.subject == "Patient/p9" }},
		{name: "patient sort -value-date", where: clauses(one(ref("patient", "Patient", "p9"))), sort: []store.Sort{{Param: "value-date", Kind: store.KindDate, Desc: true}},
			keys: []key[obsM]{{val: obsValueDateHigh, desc: true}}, match: func(o *obsM) bool { return o.subject == "Patient/p9" }},
		{name: "patient in id order", where: clauses(one(ref("patient", "Patient", "p3"))),
			match: func(o *obsM) bool { return o.subject == "Patient/p3" }},
		{name: "patient sort -_id", where: clauses(one(ref("subject", "Patient", "p3"))), sort: []store.Sort{{Kind: store.KindID, Desc: true}},
			keys: []key[obsM]{{val: obsIDKey, desc: true}}, match: func(o *obsM) bool { return o.subject == "Patient/p3" }},
		{name: "compartment OR, category, not cancelled, sort -date",
			where: clauses(one(token("category", sysCat, "vital-signs")), one(ref("patient", "Patient", "p3")),
				anyOf(ref("subject", "Patient", "p3"), ref("performer", "Patient", "p3")), one(not(tokenCode("status", "cancelled")))),
			sort: []store.Sort{{Param: "date", Kind: store.KindDate, Desc: true}},
			keys: []key[obsM]{{val: obsDateHigh, desc: true}},
			match: func(o *obsM) bool {
				return o.subject == "Patient/p3" && o.category == "vital-signs" && o.status != "cancelled"
			}},
		{name: "two patients sort -date", where: clauses(anyOf(ref("patient", "Patient", "p3"), ref("patient", "Patient", "p1"))), sort: []store.Sort{{Param: "date", Kind: store.KindDate, Desc: true}},
			keys: []key[obsM]{{val: obsDateHigh, desc: true}}, match: func(o *obsM) bool { return o.subject == "Patient/p3" || o.subject == "Patient/p1" }},
		{name: "patient and one id", where: clauses(one(ref("patient", "Patient", "p3")), one(store.Condition{Kind: store.KindID, Value: "o7"})), sort: []store.Sort{{Param: "date", Kind: store.KindDate, Desc: true}},
			keys: []key[obsM]{{val: obsDateHigh, desc: true}}, match: func(o *obsM) bool { return o.subject == "Patient/p3" && o.id == "o7" }},
		{name: "sort token code", sort: []store.Sort{{Param: "code", Kind: store.KindToken}},
			keys: []key[obsM]{{val: obsCodeMin}}, match: func(o *obsM) bool { return true }},
		{name: "sort -token code", sort: []store.Sort{{Param: "code", Kind: store.KindToken, Desc: true}},
			keys: []key[obsM]{{val: obsCodeMax, desc: true}}, match: func(o *obsM) bool { return true }},
		{name: "sort quantity", where: clauses(one(dateCond("date", "ge", a, b))), sort: []store.Sort{{Param: "value-quantity", Kind: store.KindNumber}},
			keys: []key[obsM]{{val: obsValue}}, match: func(o *obsM) bool { return o.eff != nil && o.eff.high >= a }},
		{name: "sort -_lastUpdated", sort: []store.Sort{{Kind: store.KindLastUpdated, Desc: true}},
			keys: []key[obsM]{{val: obsLU, desc: true}}, match: func(o *obsM) bool { return true }},
		{name: "sort _lastUpdated", where: clauses(one(tokenCode("status", "final"))), sort: []store.Sort{{Kind: store.KindLastUpdated}},
			keys: []key[obsM]{{val: obsLU}}, match: func(o *obsM) bool { return o.status == "final" }},
		{name: "sort -_id", where: clauses(one(token("category", sysCat, "laboratory"))), sort: []store.Sort{{Kind: store.KindID, Desc: true}},
			keys: []key[obsM]{{val: obsIDKey, desc: true}}, match: func(o *obsM) bool { return o.category == "laboratory" }},
		{name: "sort status then -date", sort: []store.Sort{{Param: "status", Kind: store.KindToken}, {Param: "date", Kind: store.KindDate, Desc: true}},
			keys: []key[obsM]{{val: obsStatus}, {val: obsDateHigh, desc: true}}, match: func(o *obsM) bool { return true }},
		{name: "sort -date then quantity", where: clauses(one(not(tokenCode("status", "final")))),
			sort: []store.Sort{{Param: "date", Kind: store.KindDate, Desc: true}, {Param: "value-quantity", Kind: store.KindNumber}},
			keys: []key[obsM]{{val: obsDateHigh, desc: true}, {val: obsValue}}, match: func(o *obsM) bool { return o.status != "final" }},
	}
	checkCases(t, se, "Observation", w.obs, func(o *obsM) string { return o.id }, pages, obsCases)

	// A clause without conditions is an empty OR: an engine may refuse it,
	// but it never matches anything (an access clause with no allowed value
	// must not widen the search).
	for _, where := range [][]store.Clause{
		clauses(store.Clause{}),
		clauses(one(tokenCode("status", "final")), store.Clause{}),
	} {
		p, err := se.Search(ctx(), store.Query{Type: "Observation", Where: where, Count: 10, Total: true})
		if err == nil && (len(p.Resources) != 0 || p.Total != 0) {
			t.Errorf("%s: %d resources, Total %d: an empty clause matches nothing", describe(store.Query{Type: "Observation", Where: where}), len(p.Resources), p.Total)
		}
	}

	patID := func(p *patM) string { return p.id }
	hasObs := func(p *patM, pred func(o *obsM) bool) bool {
		return slices.ContainsFunc(w.obs, func(o *obsM) bool { return o.subject == "Patient/"+p.id && pred(o) })
	}
	familyKey := func(p *patM) (any, bool) { return p.familyNorm, true }
	nameMin := func(p *patM) (any, bool) { return slices.Min(p.nameNorms()), true }
	birthHigh := func(p *patM) (any, bool) {
		if p.birth == nil {
			return nil, false
		}
		return p.birth.high, true
	}
	y1980 := yearSpan(1980)
	patCases := []bfCase[patM]{
		{name: "string prefix folds accents and case", where: clauses(one(str("name", "helene", store.StringPrefix))),
			match: func(p *patM) bool { return hasPrefix(p.nameNorms(), "helene") }},
		{name: "string prefix", where: clauses(one(str("family", "dupon", store.StringPrefix))),
			match: func(p *patM) bool { return strings.HasPrefix(p.familyNorm, "dupon") }},
		{name: "string exact", where: clauses(one(str("family", "Dupont", store.StringExact))),
			match: func(p *patM) bool { return p.family == "Dupont" }},
		{name: "string exact is case sensitive", where: clauses(one(str("family", "dupont", store.StringExact))),
			match: func(p *patM) bool { return p.family == "dupont" }},
		{name: "string exact keeps accents", where: clauses(one(str("family", "Lefèvre", store.StringExact))),
			match: func(p *patM) bool { return p.family == "Lefèvre" }},
		{name: "string contains", where: clauses(one(str("family", "pon", store.StringContains))),
			match: func(p *patM) bool { return strings.Contains(p.familyNorm, "pon") }},
		{name: "string given prefix", where: clauses(one(str("given", "jean", store.StringPrefix))),
			match: func(p *patM) bool { return hasPrefix(p.givenNorm, "jean") }},
		{name: "identifier system|value", where: clauses(one(token("identifier", sysNIR, "1700375000003"))),
			match: func(p *patM) bool { return p.nir == "1700375000003" }},
		{name: "identifier |value", where: clauses(one(token("identifier", "", "local-3"))),
			match: func(p *patM) bool { return p.local == "local-3" }},
		{name: "identifier system|", where: clauses(one(token("identifier", sysNIR, ""))),
			match: func(p *patM) bool { return p.nir != "" }},
		{name: "birthdate lt", where: clauses(one(dateCond("birthdate", "lt", y1980.low, y1980.high))),
			match: func(p *patM) bool { return p.birth != nil && p.birth.low < y1980.low }},
		{name: "birthdate eq year", where: clauses(one(dateCond("birthdate", "eq", y1980.low, y1980.high))),
			match: func(p *patM) bool { return p.birth != nil && p.birth.low >= y1980.low && p.birth.high <= y1980.high }},
		{name: "birthdate missing", where: clauses(one(missing("birthdate", store.KindDate, true))),
			match: func(p *patM) bool { return p.birth == nil }},
		{name: "gender and name", where: clauses(one(tokenCode("gender", "female")), one(str("name", "h", store.StringPrefix))),
			match: func(p *patM) bool { return p.gender == "female" && hasPrefix(p.nameNorms(), "h") }},
		{name: "_has Observation code", where: clauses(one(has(one(token("code", sysLOINC, "8310-5"))))),
			match: func(p *patM) bool { return hasObs(p, func(o *obsM) bool { return o.hasCoding(sysLOINC, "8310-5") }) }},
		{name: "_has with two clauses, and gender", where: clauses(one(has(one(tokenCode("code", "2339-0")), one(tokenCode("status", "final")))), one(tokenCode("gender", "male"))),
			match: func(p *patM) bool {
				return p.gender == "male" && hasObs(p, func(o *obsM) bool { return o.hasCode("2339-0") && o.status == "final" })
			}},
		{name: "not _has", where: clauses(one(not(has(one(tokenCode("code", "29463-7")))))),
			match: func(p *patM) bool { return !hasObs(p, func(o *obsM) bool { return o.hasCode("29463-7") }) }},
		{name: "sort family", sort: []store.Sort{{Param: "family", Kind: store.KindString}},
			keys: []key[patM]{{val: familyKey}}, match: func(p *patM) bool { return true }},
		{name: "sort -family", sort: []store.Sort{{Param: "family", Kind: store.KindString, Desc: true}},
			keys: []key[patM]{{val: familyKey, desc: true}}, match: func(p *patM) bool { return true }},
		{name: "sort name (smallest part)", sort: []store.Sort{{Param: "name", Kind: store.KindString}},
			keys: []key[patM]{{val: nameMin}}, match: func(p *patM) bool { return true }},
		{name: "sort -birthdate (missing last)", sort: []store.Sort{{Param: "birthdate", Kind: store.KindDate, Desc: true}},
			keys: []key[patM]{{val: birthHigh, desc: true}}, match: func(p *patM) bool { return true }},
		{name: "one patient by _id, sort birthdate", where: clauses(one(store.Condition{Param: "_id", Kind: store.KindID, Value: "p3"})), sort: []store.Sort{{Param: "birthdate", Kind: store.KindDate}},
			match: func(p *patM) bool { return p.id == "p3" }},
	}
	checkCases(t, se, "Patient", w.patients, patID, pages, patCases)

	mrCases := []bfCase[mrM]{
		{name: "patient and status", where: clauses(one(ref("patient", "Patient", "p3")), one(tokenCode("status", "active"))),
			match: func(m *mrM) bool { return m.patient == "p3" && m.status == "active" }},
		{name: "authoredon ge", where: clauses(one(dateCond("authoredon", "ge", daySpan(2024, 1, 15).low, daySpan(2024, 1, 15).high))),
			match: func(m *mrM) bool { return m.authored.high >= daySpan(2024, 1, 15).low }},
		{name: "_id shared with an observation", where: clauses(one(id("o3"))),
			match: func(m *mrM) bool { return m.id == "o3" }},
	}
	checkCases(t, se, "MedicationRequest", w.mrs, func(m *mrM) string { return m.id }, pages, mrCases)
}

// testSearchMultiValuedSort: a parameter with several values sorts
// ascending by its smallest value (a date's Low) and descending by its
// largest (a date's High); resources without a value come last both ways.
func testSearchMultiValuedSort(t *testing.T, s store.Store, se store.Searcher) {
	allergy := func(onsets ...string) []byte {
		var rs []string
		for _, o := range onsets {
			rs = append(rs, fmt.Sprintf(`{"manifestation":[{"text":"urticaire"}],"onset":%q}`, o))
		}
		b := `{"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/p1"}`
		if len(rs) > 0 {
			b += `,"reaction":[` + strings.Join(rs, ",") + `]`
		}
		return []byte(b + "}")
	}
	fixtures := map[string][]byte{
		"a1": allergy("2020-01-01", "2024-06-01"),                                                  // smallest 2020, largest 2024
		"a2": allergy("2021-01-01"),                                                                // 2021 both ways
		"a3": allergy("2019-06-01", "2022-01-01"),                                                  // smallest 2019, largest 2022
		"a4": allergy(),                                                                            // none
		"a5": allergy("2021-01-01"),                                                                // ties with a2: id decides
		"a0": allergy("2023-02-01T10:00:00Z", "2018"),                                              // smallest 2018, largest 2023
		"a6": allergy("2022-01-01T00:00:00Z", "2022"),                                              // the year 2022 ends last among 2022 values
		"b1": []byte(`{"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/p2"}}`), // none
	}
	for id, body := range fixtures {
		if _, err := s.Create(ctx(), "AllergyIntolerance", id, body); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		sort []store.Sort
		want string
	}{
		{[]store.Sort{{Param: "onset", Kind: store.KindDate}}, "[a0 a3 a1 a2 a5 a6 a4 b1]"},
		{[]store.Sort{{Param: "onset", Kind: store.KindDate, Desc: true}}, "[a1 a0 a6 a3 a2 a5 a4 b1]"},
	}
	for _, c := range cases {
		for _, size := range []int{100, 3, 1} {
			got := fmt.Sprint(ids(collect(t, se, store.Query{Type: "AllergyIntolerance", Sort: c.sort}, size)))
			if got != c.want {
				t.Errorf("sort %+v (page size %d): got %s, want %s", c.sort, size, got, c.want)
			}
		}
	}
}

// pagingObs is an observation of the paging test: its date (a day, or
// none) and lastUpdated.
type pagingObs struct {
	id   string
	day  int // days after 2023-01-01, -1 for no date
	code string
	lu   int64
}

func (o *pagingObs) body() []byte {
	eff := ""
	if o.day >= 0 {
		eff = fmt.Sprintf(`,"effectiveDateTime":%q`, time.Date(2023, 1, 1+o.day, 0, 0, 0, 0, time.UTC).Format("2006-01-02"))
	}
	return []byte(fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":%q,"code":%q}]}%s}`, sysLOINC, o.code, eff))
}

// testSearchPagingStable pages through 1,000 results by 37 (200 by 9
// without transactions) under several sorts while new resources are
// written between pages: every resource that existed throughout is listed
// exactly once, and the listing is in order.
func testSearchPagingStable(t *testing.T, s store.Store, se store.Searcher) {
	n, pageSize := 1000, 37
	if !s.Info().Transactions {
		n, pageSize = 200, 9
	}
	rng := rand.New(rand.NewSource(7))
	all := map[string]*pagingObs{}
	newObs := func(id string) *pagingObs {
		o := &pagingObs{id: id, day: rng.Intn(60), code: []string{"8867-4", "8310-5"}[rng.Intn(2)]}
		if rng.Intn(10) == 0 {
			o.day = -1
		}
		return o
	}
	var pids []string
	var bodies [][]byte
	for i := 0; i < n; i++ {
		o := newObs(fmt.Sprint("o", i))
		all[o.id] = o
		pids = append(pids, o.id)
		bodies = append(bodies, o.body())
	}
	for id, r := range bulk(t, s, "Observation", pids, bodies) {
		all[id].lu = r.LastUpdated.UnixMilli()
	}
	day := func(o *pagingObs) (any, bool) {
		if o.day < 0 {
			return nil, false
		}
		return int64(o.day), true
	}
	lu := func(o *pagingObs) (any, bool) { return o.lu, true }
	variants := []struct {
		name  string
		where []store.Clause
		sort  []store.Sort
		keys  []key[pagingObs]
		match func(o *pagingObs) bool
	}{
		{name: "by id", match: func(*pagingObs) bool { return true }},
		{name: "by -date", sort: []store.Sort{{Param: "date", Kind: store.KindDate, Desc: true}},
			keys: []key[pagingObs]{{val: day, desc: true}}, match: func(*pagingObs) bool { return true }},
		{name: "code by date", where: clauses(one(token("code", sysLOINC, "8867-4"))), sort: []store.Sort{{Param: "date", Kind: store.KindDate}},
			keys: []key[pagingObs]{{val: day}}, match: func(o *pagingObs) bool { return o.code == "8867-4" }},
		{name: "by _lastUpdated", sort: []store.Sort{{Kind: store.KindLastUpdated}},
			keys: []key[pagingObs]{{val: lu}}, match: func(*pagingObs) bool { return true }},
	}
	added := 0
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			before := map[string]bool{}
			for id, o := range all {
				if v.match(o) {
					before[id] = true
				}
			}
			q := store.Query{Type: "Observation", Where: v.where, Sort: v.sort, Count: pageSize, Total: true}
			var listed []*pagingObs
			seen := map[string]bool{}
			for pages := 0; ; pages++ {
				if pages > 100 {
					t.Fatal("paging does not end")
				}
				page, err := se.Search(ctx(), q)
				if err != nil {
					t.Fatal(err)
				}
				if pages == 0 && page.Total != len(before) {
					t.Fatalf("Total %d, want %d", page.Total, len(before))
				}
				for _, r := range page.Resources {
					if seen[r.ID] {
						t.Fatalf("%s listed twice (page %d)", r.ID, pages)
					}
					seen[r.ID] = true
					o := all[r.ID]
					if o == nil {
						t.Fatalf("unknown resource %s", r.ID)
					}
					listed = append(listed, o)
				}
				if page.Next == "" {
					break
				}
				q.After = page.Next
				// A write between pages, sorting anywhere.
				o := newObs(fmt.Sprint("n", added))
				added++
				r, err := s.Create(ctx(), "Observation", o.id, o.body())
				if err != nil {
					t.Fatal(err)
				}
				o.lu = r.LastUpdated.UnixMilli()
				all[o.id] = o
			}
			for id := range before {
				if !seen[id] {
					t.Errorf("%s was never listed", id)
				}
			}
			sorted := slices.Clone(listed)
			order(sorted, func(o *pagingObs) string { return o.id }, v.keys)
			if !slices.Equal(sorted, listed) {
				for i := range listed {
					if listed[i] != sorted[i] {
						t.Fatalf("out of order at %d: got %s, want %s", i, listed[i].id, sorted[i].id)
					}
				}
			}
		})
	}
}

// testSearchTotal: Total when asked (-1 otherwise), on every page; Count 0
// gives only the total; a page that ends exactly at the last match has no
// Next.
func testSearchTotal(t *testing.T, s store.Store, se store.Searcher) {
	for i := 0; i < 30; i++ {
		code := "8867-4"
		if i%6 == 5 {
			code = "8310-5"
		}
		o := &pagingObs{id: fmt.Sprint("o", i), day: i, code: code}
		if _, err := s.Create(ctx(), "Observation", o.id, o.body()); err != nil {
			t.Fatal(err)
		}
	}
	where := clauses(one(token("code", sysLOINC, "8867-4")))
	q := store.Query{Type: "Observation", Where: where, Count: 10, Total: true}
	p1, err := se.Search(ctx(), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(p1.Resources) != 10 || p1.Total != 25 || p1.Next == "" {
		t.Fatalf("first page: %d resources, Total %d, Next %q; want 10, 25, a cursor", len(p1.Resources), p1.Total, p1.Next)
	}
	q.After = p1.Next
	p2, err := se.Search(ctx(), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(p2.Resources) != 10 || p2.Total != 25 {
		t.Fatalf("second page: %d resources, Total %d; want 10, 25", len(p2.Resources), p2.Total)
	}
	q.After, q.Total = "", false
	p, err := se.Search(ctx(), q)
	if err != nil || p.Total != -1 {
		t.Fatalf("Total not asked: %d (%v), want -1", p.Total, err)
	}
	q.Count, q.Total = 0, true
	p, err = se.Search(ctx(), q)
	if err != nil || len(p.Resources) != 0 || p.Total != 25 || p.Next != "" {
		t.Fatalf("Count 0: %d resources, Total %d, Next %q (%v); want 0, 25, none", len(p.Resources), p.Total, p.Next, err)
	}
	q.Count = 25
	p, err = se.Search(ctx(), q)
	if err != nil || len(p.Resources) != 25 || p.Next != "" {
		t.Fatalf("a page holding every match: %d resources, Next %q (%v); want 25 and no Next", len(p.Resources), p.Next, err)
	}
	p, err = se.Search(ctx(), store.Query{Type: "Observation", Where: clauses(one(tokenCode("code", "nope"))), Count: 10, Total: true})
	if err != nil || len(p.Resources) != 0 || p.Total != 0 || p.Next != "" {
		t.Fatalf("no match: %d resources, Total %d, Next %q (%v)", len(p.Resources), p.Total, p.Next, err)
	}
}

// testSearchUpdateDelete: only current versions are indexed; an update
// moves the values, a deletion removes them, a revival restores them.
func testSearchUpdateDelete(t *testing.T, s store.Store, se store.Searcher) {
	obs := func(code, day, subject string) []byte {
		return []byte(fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":%q,"code":%q}]},"subject":{"reference":%q},"effectiveDateTime":%q}`, sysLOINC, code, subject, day))
	}
	find := func(where ...store.Clause) string {
		t.Helper()
		return fmt.Sprint(ids(collect(t, se, store.Query{Type: "Observation", Where: where}, 10)))
	}
	y2020, y2021 := yearSpan(2020), yearSpan(2021)
	byCodeA := one(token("code", sysLOINC, "A"))
	byCodeB := one(token("code", sysLOINC, "B"))
	in2020 := one(dateCond("date", "eq", y2020.low, y2020.high))
	in2021 := one(dateCond("date", "eq", y2021.low, y2021.high))
	ofP1 := one(ref("subject", "Patient", "p1"))
	noDate := one(missing("date", store.KindDate, true))

	if _, err := s.Create(ctx(), "Observation", "x", obs("A", "2020-05-05", "Patient/p1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx(), "Observation", "y", obs("A", "2020-06-06", "Patient/p2")); err != nil {
		t.Fatal(err)
	}
	if got := find(byCodeA); got != "[x y]" {
		t.Fatalf("before update: %s", got)
	}
	if _, _, err := s.Put(ctx(), "Observation", "x", obs("B", "2021-05-05", "Patient/p2"), 0); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cl   store.Clause
		want string
	}{
		{"old code", byCodeA, "[y]"}, {"new code", byCodeB, "[x]"}, {"old date", in2020, "[y]"}, {"new date", in2021, "[x]"},
		{"old subject", ofP1, "[]"}, {"not the old code", one(not(token("code", sysLOINC, "A"))), "[x]"},
	} {
		if got := find(c.cl); got != c.want {
			t.Errorf("after update, %s: %s, want %s", c.name, got, c.want)
		}
	}
	if _, _, err := s.Delete(ctx(), "Observation", "x", 0); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cl   store.Clause
		want string
	}{
		{"code", byCodeB, "[]"}, {"date", in2021, "[]"}, {"_id", one(store.Condition{Kind: store.KindID, Value: "x"}), "[]"},
		{"missing date", noDate, "[]"}, {"not code", one(not(token("code", sysLOINC, "A"))), "[]"},
		{"_lastUpdated", one(store.Condition{Kind: store.KindLastUpdated, Range: store.Interval{HighAtLeast: fl(0)}}), "[y]"},
	} {
		if got := find(c.cl); got != c.want {
			t.Errorf("after delete, %s: %s, want %s", c.name, got, c.want)
		}
	}
	if got := find(); got != "[y]" {
		t.Errorf("after delete, every observation: %s, want [y]", got)
	}
	if _, out, err := s.Put(ctx(), "Observation", "x", obs("B", "2021-05-05", "Patient/p1"), 0); err != nil || out != store.Created {
		t.Fatalf("revive: %v %v", out, err)
	}
	if got := find(byCodeB, ofP1); got != "[x]" {
		t.Errorf("after revival: %s, want [x]", got)
	}
	// The patient that a chain reaches must be current too.
	if _, err := s.Create(ctx(), "Patient", "p1", []byte(`{"resourceType":"Patient","identifier":[{"system":"urn:x","value":"old"}]}`)); err != nil {
		t.Fatal(err)
	}
	chain := func(v string) store.Clause {
		return one(store.Condition{Param: "subject", Kind: store.KindReference,
			Chain: &store.Query{Type: "Patient", Where: clauses(one(token("identifier", "urn:x", v)))}})
	}
	if got := find(chain("old")); got != "[x]" {
		t.Errorf("chain: %s, want [x]", got)
	}
	if _, _, err := s.Put(ctx(), "Patient", "p1", []byte(`{"resourceType":"Patient","identifier":[{"system":"urn:x","value":"new"}]}`), 0); err != nil {
		t.Fatal(err)
	}
	if got := find(chain("old")) + find(chain("new")); got != "[][x]" {
		t.Errorf("chain after the patient's update: %s, want [][x]", got)
	}
}

// testSearchBadCursor: an After the engine cannot read is ErrBadCursor.
func testSearchBadCursor(t *testing.T, s store.Store, se store.Searcher) {
	for i := 0; i < 3; i++ {
		if _, err := s.Create(ctx(), "Observation", fmt.Sprint("o", i), (&pagingObs{day: i, code: "A"}).body()); err != nil {
			t.Fatal(err)
		}
	}
	for _, after := range []string{"!!not a cursor!!", "\x00\xff", "Zm9vYmFy%%%"} {
		_, err := se.Search(ctx(), store.Query{Type: "Observation", Count: 1, After: after})
		if !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("After %q: %v, want ErrBadCursor", after, err)
		}
	}
	// A good cursor still works after those.
	p, err := se.Search(ctx(), store.Query{Type: "Observation", Count: 1})
	if err != nil || p.Next == "" {
		t.Fatalf("first page: %v %q", err, p.Next)
	}
	if _, err := se.Search(ctx(), store.Query{Type: "Observation", Count: 1, After: p.Next}); err != nil {
		t.Fatalf("next page: %v", err)
	}
}

// testSearchOtherTypes: resources of other types never match, even with
// the same parameter values and ids.
func testSearchOtherTypes(t *testing.T, s store.Store, se store.Searcher) {
	bodies := map[string]string{
		"Observation":       `{"resourceType":"Observation","status":"final","identifier":[{"system":"urn:x","value":"1"}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2024-01-01"}`,
		"MedicationRequest": `{"resourceType":"MedicationRequest","status":"active","intent":"order","identifier":[{"system":"urn:x","value":"1"}],"medicationCodeableConcept":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"},"authoredOn":"2024-01-01"}`,
		"Condition":         `{"resourceType":"Condition","identifier":[{"system":"urn:x","value":"1"}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"},"recordedDate":"2024-01-01"}`,
	}
	for typ, b := range bodies {
		for _, id := range []string{"same", typ} {
			if _, err := s.Create(ctx(), typ, id, []byte(b)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for typ := range bodies {
		for _, where := range [][]store.Clause{
			nil,
			clauses(one(token("identifier", "urn:x", "1"))),
			clauses(one(token("code", sysLOINC, "8867-4"))),
			clauses(one(ref("subject", "Patient", "p1"))),
			clauses(one(ref("patient", "", "p1"))),
			clauses(one(store.Condition{Kind: store.KindID, Value: "same"})),
			clauses(one(missing("identifier", store.KindToken, false))),
		} {
			q := store.Query{Type: typ, Where: where, Total: true}
			got := ids(collect(t, se, q, 10))
			want := []string{typ, "same"}
			if len(where) > 0 && where[0].Any[0].Kind == store.KindID {
				want = []string{"same"}
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: got %v, want %v", describe(q), got, want)
			}
		}
	}
	p, err := se.Search(ctx(), store.Query{Type: "Immunization", Count: 10, Total: true})
	if err != nil || len(p.Resources) != 0 || p.Total != 0 {
		t.Fatalf("a type without resources: %v %v", p, err)
	}
}

// testSearchAuditEntities: AuditEvent.entity (the resources an access
// listed) and its codes (action, outcome), which an engine may keep outside
// its indexes by value, answer every form of search a reference or token
// parameter does, alone or beside the patient, sorted, and follow updates
// and deletions.
func testSearchAuditEntities(t *testing.T, s store.Store, se store.Searcher) {
	type event struct {
		id, action, outcome, patient string
		docs                         []string
	}
	var events []*event
	for i := range 40 {
		e := &event{id: fmt.Sprintf("ae%02d", i), action: []string{"R", "C"}[i%2], patient: fmt.Sprintf("p%d", i%3),
			outcome: []string{"0", "", "0", "4"}[i%4]}
		if i%10 != 9 { // an access that listed no resource
			e.docs = []string{fmt.Sprintf("d%d", i%5), fmt.Sprintf("d%d", i*7%11)}
		}
		events = append(events, e)
	}
	body := func(e *event) []byte {
		outcome := ""
		if e.outcome != "" {
			outcome = `"outcome":"` + e.outcome + `",`
		}
		var ents []string
		if len(e.docs) > 0 {
			ents = append(ents, `{"what":{"reference":"Patient/`+e.patient+`"}}`)
		}
		for _, d := range e.docs {
			ents = append(ents, `{"what":{"reference":"DocumentReference/`+d+`"}}`)
		}
		b := `{"resourceType":"AuditEvent","type":{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest"},` +
			`"action":"` + e.action + `","recorded":"2024-01-02T03:04:05Z",` + outcome + `"agent":[{"who":{"reference":"Practitioner/pr1"},"requestor":true}],` +
			`"source":{"observer":{"display":"test"}}`
		if len(ents) > 0 {
			b += `,"entity":[` + strings.Join(ents, ",") + `]`
		}
		return []byte(b + "}")
	}
	var evIDs []string
	var evBodies [][]byte
	for _, e := range events {
		evIDs, evBodies = append(evIDs, e.id), append(evBodies, body(e))
	}
	bulk(t, s, "AuditEvent", evIDs, evBodies)
	var docIDs []string
	var docBodies [][]byte
	for i := range 11 {
		status := []string{"current", "superseded"}[i%2]
		docIDs = append(docIDs, fmt.Sprintf("d%d", i))
		docBodies = append(docBodies, []byte(`{"resourceType":"DocumentReference","status":"`+status+`","content":[{"attachment":{"contentType":"text/plain"}}]}`))
	}
	bulk(t, s, "DocumentReference", docIDs, docBodies)

	entity := func(typ, id string) store.Condition { return ref("entity", typ, id) }
	lists := func(e *event, ds ...string) bool {
		return slices.ContainsFunc(e.docs, func(d string) bool { return slices.Contains(ds, d) })
	}
	check := func(name string, q store.Query, want []string) {
		t.Helper()
		q.Total = true
		got := ids(collect(t, se, q, 7))
		if len(q.Sort) == 0 {
			slices.Sort(got)
			slices.Sort(want)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s (%s): got %v, want %v", name, describe(q), got, want)
		}
	}
	eventsWhere := func(match func(e *event) bool) []string {
		var out []string
		for _, e := range events {
			if match(e) {
				out = append(out, e.id)
			}
		}
		return out
	}
	run := func() {
		t.Helper()
		audit := func(where ...store.Clause) store.Query { return store.Query{Type: "AuditEvent", Where: where} }
		check("one resource", audit(one(entity("DocumentReference", "d1"))),
			eventsWhere(func(e *event) bool { return lists(e, "d1") }))
		check("an id of any type", audit(one(entity("", "d3"))),
			eventsWhere(func(e *event) bool { return lists(e, "d3") }))
		check("either of two", audit(anyOf(entity("DocumentReference", "d2"), entity("DocumentReference", "d6"))),
			eventsWhere(func(e *event) bool { return lists(e, "d2", "d6") }))
		check("beside the patient", audit(one(ref("patient", "Patient", "p1")), one(entity("DocumentReference", "d4"))),
			eventsWhere(func(e *event) bool { return e.patient == "p1" && lists(e, "d4") }))
		check("beside the action", audit(one(tokenCode("action", "C")), one(entity("DocumentReference", "d0"))),
			eventsWhere(func(e *event) bool { return e.action == "C" && lists(e, "d0") }))
		check("an action alone", audit(one(tokenCode("action", "C"))),
			eventsWhere(func(e *event) bool { return e.action == "C" }))
		check("either outcome", audit(anyOf(tokenCode("outcome", "4"), tokenCode("outcome", "8"))),
			eventsWhere(func(e *event) bool { return e.outcome == "4" }))
		check("not that outcome", audit(one(not(tokenCode("outcome", "0")))),
			eventsWhere(func(e *event) bool { return e.outcome != "0" }))
		check("no outcome", audit(one(missing("outcome", store.KindToken, true))),
			eventsWhere(func(e *event) bool { return e.outcome == "" }))
		check("type in its system", audit(one(token("type", "http://terminology.hl7.org/CodeSystem/audit-event-type", "rest")), one(ref("patient", "Patient", "p2"))),
			eventsWhere(func(e *event) bool { return e.patient == "p2" && len(e.docs) > 0 })) // the patient is named by an entity
		check("type in another system", audit(one(token("type", "urn:other", "rest"))), nil)
		byAction := eventsWhere(func(e *event) bool { return e.action == "C" })
		byAction = append(byAction, eventsWhere(func(e *event) bool { return e.action == "R" })...)
		check("sorted by action", store.Query{Type: "AuditEvent", Sort: []store.Sort{{Param: "action", Kind: store.KindToken}}}, byAction)
		check("not that resource", audit(one(not(entity("DocumentReference", "d1")))),
			eventsWhere(func(e *event) bool { return !lists(e, "d1") }))
		check("missing", audit(one(missing("entity", store.KindReference, true))),
			eventsWhere(func(e *event) bool { return len(e.docs) == 0 }))
		check("present", audit(one(missing("entity", store.KindReference, false))),
			eventsWhere(func(e *event) bool { return len(e.docs) > 0 }))
		current := []string{"d0", "d2", "d4", "d6", "d8", "d10"}
		check("chained to the document's status", audit(one(store.Condition{Param: "entity", Kind: store.KindReference,
			Chain: &store.Query{Type: "DocumentReference", Where: clauses(one(tokenCode("status", "current")))}})),
			eventsWhere(func(e *event) bool { return lists(e, current...) }))
		var created []string
		for _, d := range docIDs {
			if len(eventsWhere(func(e *event) bool { return e.action == "C" && lists(e, d) })) > 0 {
				created = append(created, d)
			}
		}
		check("documents listed by a creation (_has)", store.Query{Type: "DocumentReference", Where: clauses(one(store.Condition{
			Has: &store.HasQuery{Type: "AuditEvent", Param: "entity", Where: clauses(one(tokenCode("action", "C")))}}))}, created)
	}
	run()

	// An update lists other resources; a deletion lists none.
	events[0].docs = []string{"d10"}
	if _, _, err := s.Put(ctx(), "AuditEvent", events[0].id, body(events[0]), 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Delete(ctx(), "AuditEvent", events[1].id, 0); err != nil {
		t.Fatal(err)
	}
	events = slices.Delete(events, 1, 2)
	run()
}

// testSearchSecurityLabels: _security tests (the consent's "not masked",
// positive, OR, without a system, in any system, systems and codes holding
// '|') beside a patient, the shape of every professional's search, which an
// engine may answer from its index of the patient's record, give what the
// labels say, in both orders and across pages.
func testSearchSecurityLabels(t *testing.T, s store.Store, se store.Searcher) {
	const lab = "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
	type label struct{ system, code string }
	sets := [][]label{
		nil,
		{{lab, "MASQUE_PS"}},
		{{lab, "N"}},
		{{lab, "MASQUE_PS"}, {lab, "N"}},
		{{lab, "INVISIBLE_PATIENT"}, {lab, "N"}},
		{{"urn:other", "MASQUE_PS"}},
		{{"", "MASQUE_PS"}},
		{{"urn:a|b", "c"}},
		{{"urn:a", "b|c"}},
	}
	type obs struct {
		id, patient string
		labels      []label
	}
	var all []*obs
	var obsIDs []string
	var bodies [][]byte
	for i := range 54 {
		o := &obs{id: fmt.Sprintf("sl%02d", i), patient: fmt.Sprintf("slp%d", i%2), labels: sets[i%len(sets)]}
		var sec []string
		for _, l := range o.labels {
			if l.system == "" {
				sec = append(sec, `{"code":"`+l.code+`"}`)
			} else {
				sec = append(sec, `{"system":"`+l.system+`","code":"`+l.code+`"}`)
			}
		}
		meta := ""
		if len(sec) > 0 {
			meta = `"meta":{"security":[` + strings.Join(sec, ",") + `]},`
		}
		all = append(all, o)
		obsIDs = append(obsIDs, o.id)
		bodies = append(bodies, []byte(`{"resourceType":"Observation",`+meta+`"status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},`+
			`"subject":{"reference":"Patient/`+o.patient+`"},"effectiveDateTime":"2024-01-`+fmt.Sprintf("%02d", 1+i%28)+`"}`))
	}
	bulk(t, s, "Observation", obsIDs, bodies)

	has := func(o *obs, system, code string, anySystem bool) bool {
		return slices.ContainsFunc(o.labels, func(l label) bool { return l.code == code && (anySystem || l.system == system) })
	}
	sec := func(system, code string, not bool) store.Condition {
		return store.Condition{Param: "_security", Kind: store.KindToken, System: system, Code: code, Not: not}
	}
	anySec := func(code string) store.Condition {
		return store.Condition{Param: "_security", Kind: store.KindToken, Code: code, AnySystem: true}
	}
	cases := []struct {
		name  string
		where []store.Clause
		match func(o *obs) bool
	}{
		{"not masked", clauses(one(sec(lab, "MASQUE_PS", true))), func(o *obs) bool { return !has(o, lab, "MASQUE_PS", false) }},
		{"neither masked nor invisible", clauses(one(sec(lab, "MASQUE_PS", true)), one(sec(lab, "INVISIBLE_PATIENT", true))),
			func(o *obs) bool { return !has(o, lab, "MASQUE_PS", false) && !has(o, lab, "INVISIBLE_PATIENT", false) }},
		{"masked", clauses(one(sec(lab, "MASQUE_PS", false))), func(o *obs) bool { return has(o, lab, "MASQUE_PS", false) }},
		{"normal or masked elsewhere", clauses(anyOf(sec(lab, "N", false), sec("urn:other", "MASQUE_PS", false))),
			func(o *obs) bool { return has(o, lab, "N", false) || has(o, "urn:other", "MASQUE_PS", false) }},
		{"masked without a system", clauses(one(sec("", "MASQUE_PS", false))), func(o *obs) bool { return has(o, "", "MASQUE_PS", false) }},
		{"not masked without a system", clauses(one(sec("", "MASQUE_PS", true))), func(o *obs) bool { return !has(o, "", "MASQUE_PS", false) }},
		{"masked in any system", clauses(one(anySec("MASQUE_PS"))), func(o *obs) bool { return has(o, "", "MASQUE_PS", true) }},
		{"a system holding |", clauses(one(sec("urn:a|b", "c", false))), func(o *obs) bool { return has(o, "urn:a|b", "c", false) }},
		{"a code holding |", clauses(one(sec("urn:a", "b|c", false))), func(o *obs) bool { return has(o, "urn:a", "b|c", false) }},
		{"not a code holding |", clauses(one(sec("urn:a", "b|c", true))), func(o *obs) bool { return !has(o, "urn:a", "b|c", false) }},
	}
	for _, tc := range cases {
		for _, sorts := range [][]store.Sort{nil, {{Param: "date", Kind: store.KindDate, Desc: true}}} {
			q := store.Query{Type: "Observation", Sort: sorts, Total: true,
				Where: append(clauses(one(ref("patient", "Patient", "slp1"))), tc.where...)}
			var want []string
			for _, o := range all {
				if o.patient == "slp1" && tc.match(o) {
					want = append(want, o.id)
				}
			}
			got := ids(collect(t, se, q, 4))
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s (sorted %v): got %v, want %v", tc.name, sorts != nil, got, want)
			}
			q.Count = 2
			if page, err := se.Search(ctx(), q); err != nil || page.Total != len(want) {
				t.Errorf("%s (sorted %v): total %v (%v), want %d", tc.name, sorts != nil, page, err, len(want))
			}
		}
	}
}
