package mongo

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// writeIndexed writes a version of typ/id whose index values are ix (not
// what the body would give), so that tests control every value.
func writeIndexed(t *testing.T, s *Store, typ, id string, version int64, ix fhir.Index) *store.Resource {
	t.Helper()
	nv, err := store.Prepare(bg, typ, id, []byte(`{"resourceType":"`+typ+`"}`), version, store.Now())
	if err != nil {
		t.Fatal(err)
	}
	nv.Index = ix
	if taken, err := (ops{s: s}).write(bg, nv); err != nil || taken != nil {
		t.Fatal(taken, err)
	}
	return &nv.Resource
}

func ms(s string) int64 {
	for _, layout := range []string{"2006", "2006-01", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMilli()
		}
	}
	panic(s)
}

// year is the date range of a whole year.
func year(param string, y int) fhir.Date {
	lo := time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
	return fhir.Date{Param: param, Low: lo.UnixMilli(), High: lo.AddDate(1, 0, 0).UnixMilli() - 1}
}

func f(x float64) *float64 { return &x }

func ids(t *testing.T, s *Store, q store.Query) []string {
	t.Helper()
	if q.Count == 0 {
		q.Count = 1000
	}
	p, err := s.Search(bg, q)
	if err != nil {
		t.Fatalf("%+v: %v", q, err)
	}
	var out []string
	for _, r := range p.Resources {
		out = append(out, r.ID)
	}
	return out
}

func where(conds ...store.Condition) []store.Clause {
	var w []store.Clause
	for _, c := range conds {
		w = append(w, store.Clause{Any: []store.Condition{c}})
	}
	return w
}

// TestSearchDocumentLayout checks the ix, sk and pat written for every kind.
func TestSearchDocumentLayout(t *testing.T) {
	s := fresh(t)
	writeIndexed(t, s, "Observation", "o1", 1, fhir.Index{
		Tokens:     []fhir.Token{{Param: "code", System: "http://loinc.org", Code: "8867-4"}},
		Strings:    []fhir.String{{Param: "code:text", Norm: "heart rate", Exact: "Heart Rate"}},
		References: []fhir.Reference{{Param: "subject", Type: "Patient", ID: "p1"}, {Param: "patient", Type: "Patient", ID: "p1"}, {Param: "based-on", URL: "urn:uuid:1"}},
		Dates:      []fhir.Date{{Param: "date", Low: ms("2024-03-01"), High: ms("2024-03-02") - 1}, {Param: "date", Low: fhir.MinDate, High: ms("1970")}},
		Numbers:    []fhir.Number{{Param: "value-quantity", Value: 72, System: "http://unitsofmeasure.org", Code: "/min"}, {Param: "value-quantity", Value: -1.5}},
		URIs:       []fhir.URI{{Param: "_profile", Value: "http://x/p"}},
	})
	var h bson.M
	if err := s.history.FindOne(bg, bson.D{{Key: "_id", Value: "Observation/o1/1"}}).Decode(&h); err != nil {
		t.Fatal(err)
	}
	if len(h["ix"].(bson.M)) != 0 || h["sk"] != nil || h["pat"] != "p1" {
		t.Errorf("history document: ix %v sk %v pat %v; want no index values, pat p1", h["ix"], h["sk"], h["pat"])
	}
	var d bson.M
	if err := s.resources.FindOne(bg, bson.D{{Key: "_id", Value: "Observation/o1"}}).Decode(&d); err != nil {
		t.Fatal(err)
	}
	ix := d["ix"].(bson.M)
	k72, _ := numKey(72)
	km, _ := numKey(-1.5)
	want := map[string]string{
		"tok":  `[code|http://loinc.org|8867-4 code|8867-4]`,
		"str":  `[code:text|heart rate]`,
		"strx": `[code:text|Heart Rate]`,
		"ref":  `[subject|Patient/p1 subject|*/p1 patient|Patient/p1 patient|*/p1 based-on|urn:uuid:1]`,
		"dlo":  fmt.Sprintf(`[date|%s|%s date|0000000000000000|%s]`, dateKey(ms("2024-03-01")), dateKey(ms("2024-03-02")-1), dateKey(ms("1970"))),
		"dhi":  fmt.Sprintf(`[date|%s date|%s]`, dateKey(ms("2024-03-02")-1), dateKey(ms("1970"))),
		"num":  fmt.Sprintf(`[value-quantity|%s value-quantity|http://unitsofmeasure.org|/min|%s value-quantity|/min|%s value-quantity|%s]`, k72, k72, k72, km),
		"uri":  `[_profile|http://x/p]`,
		"has":  `[_profile based-on code code:text date patient subject value-quantity]`,
	}
	for k, w := range want {
		if g := fmt.Sprint(ix[k]); g != w {
			t.Errorf("ix.%s = %s\nwant %s", k, g, w)
		}
	}
	if d["pat"] != "p1" {
		t.Errorf("pat = %v", d["pat"])
	}
	sk := d["sk"].(bson.M)
	date := sk["date"].(bson.M)
	if date["d"] != dateKey(ms("2024-03-02")-1) || date["a"] != invertFixed("0000000000000000", decimalDigits) {
		t.Errorf("sk.date = %v", date)
	}
	if code := sk["code"].(bson.M); code["d"] != "8867-4" || code["a"] != invertString("8867-4") {
		t.Errorf("sk.code = %v", code)
	}
	if _, ok := sk["code:text"]; ok {
		t.Error("sk has a :text parameter")
	}
	if vq := sk["value-quantity"].(bson.M); vq["d"] != k72 || vq["a"] != invertFixed(km, hexDigits) {
		t.Errorf("sk.value-quantity = %v", vq)
	}
	// A deletion keeps pat and drops the rest.
	if _, _, err := s.Delete(bg, "Observation", "o1", 0); err != nil {
		t.Fatal(err)
	}
	d = nil
	if err := s.resources.FindOne(bg, bson.D{{Key: "_id", Value: "Observation/o1"}}).Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d["pat"] != "p1" || len(d["ix"].(bson.M)) != 0 || d["sk"] != nil {
		t.Errorf("deleted document: %v", d)
	}
}

func TestKeysOrder(t *testing.T) {
	nums := []float64{math.Inf(-1), -1e300, -2, -1.5, -1e-300, 0, 1e-300, 1, 1.5, 2, 1e300, math.Inf(1)}
	for i := 1; i < len(nums); i++ {
		a, _ := numKey(nums[i-1])
		b, _ := numKey(nums[i])
		if a >= b || invertFixed(a, hexDigits) <= invertFixed(b, hexDigits) {
			t.Errorf("numKey(%v)=%s, numKey(%v)=%s", nums[i-1], a, nums[i], b)
		}
	}
	if a, _ := numKey(math.Copysign(0, -1)); a != func() string { k, _ := numKey(0); return k }() {
		t.Error("-0 and 0 differ")
	}
	dates := []int64{fhir.MinDate, -1, 0, 1, ms("2024"), fhir.MaxDate}
	for i := 1; i < len(dates); i++ {
		a, b := dateKey(dates[i-1]), dateKey(dates[i])
		if a >= b || len(a) != dateKeyWidth || invertFixed(a, decimalDigits) <= invertFixed(b, decimalDigits) {
			t.Errorf("dateKey(%d)=%s, dateKey(%d)=%s", dates[i-1], a, dates[i], b)
		}
	}
	strs := []string{"", "a", "ab", "abc", "abd", "b", "z\u00ff", "\x7f", "é"}
	for i := 1; i < len(strs); i++ {
		if invertString(strs[i-1]) <= invertString(strs[i]) {
			t.Errorf("invertString(%q) <= invertString(%q)", strs[i-1], strs[i])
		}
	}
	if got := truncate("aéb", 2); got != "a" {
		t.Errorf("truncate = %q", got)
	}
}

// TestRangeRE checks the range expressions against every key of a small
// width, and a sample of wide ones.
func TestRangeRE(t *testing.T) {
	for _, alpha := range []string{decimalDigits, hexDigits} {
		all := keysOfWidth(alpha, 2)
		for _, lo := range all {
			for _, hi := range all {
				if lo > hi {
					continue
				}
				re := mustRE(t, rangeRE(lo, hi, alpha))
				for _, k := range all {
					if got, want := re.MatchString(k), lo <= k && k <= hi; got != want {
						t.Fatalf("[%s,%s] %s: %s matches %v", lo, hi, re, k, got)
					}
				}
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		a, b, k := dateKey(r.Int64N(2e15)-1e15), dateKey(r.Int64N(2e15)-1e15), dateKey(r.Int64N(2e15)-1e15)
		if i%3 == 0 {
			k = a
		}
		lo, hi := min(a, b), max(a, b)
		re := mustRE(t, rangeRE(lo, hi, decimalDigits))
		if got, want := re.MatchString(k), lo <= k && k <= hi; got != want {
			t.Fatalf("[%s,%s] %s matches %v", lo, hi, k, got)
		}
		if len(rangeRE(lo, hi, decimalDigits)) > 1000 {
			t.Fatalf("range expression of %d bytes", len(rangeRE(lo, hi, decimalDigits)))
		}
	}
}

func keysOfWidth(alpha string, n int) []string {
	if n == 0 {
		return []string{""}
	}
	var out []string
	for _, c := range alpha {
		for _, rest := range keysOfWidth(alpha, n-1) {
			out = append(out, string(c)+rest)
		}
	}
	return out
}

// TestSearchConditions checks each kind of condition on chosen data,
// including multi-valued parameters and values of other parameters that a
// careless range would take.
func TestSearchConditions(t *testing.T) {
	s := fresh(t)
	writeIndexed(t, s, "Observation", "a", 1, fhir.Index{
		Tokens:     []fhir.Token{{Param: "code", System: "http://loinc.org", Code: "8867-4"}, {Param: "status", Code: "final"}},
		Strings:    []fhir.String{{Param: "name", Norm: "helene dupont", Exact: "Hélène Dupont"}},
		References: []fhir.Reference{{Param: "subject", Type: "Patient", ID: "p1"}, {Param: "performer", Type: "Practitioner", ID: "d1"}},
		// date: 2010 and 2030, never 2020; issued 2020.
		Dates:   []fhir.Date{year("date", 2010), year("date", 2030), year("issued", 2020)},
		Numbers: []fhir.Number{{Param: "value-quantity", Value: 72, System: "http://unitsofmeasure.org", Code: "/min"}, {Param: "other", Value: 5}},
		URIs:    []fhir.URI{{Param: "url", Value: "http://example.org/fhir/a"}},
	})
	writeIndexed(t, s, "Observation", "b", 1, fhir.Index{
		Tokens:     []fhir.Token{{Param: "code", System: "http://snomed.info/sct", Code: "8867-4"}, {Param: "status", System: "urn:s", Code: "final"}},
		Strings:    []fhir.String{{Param: "name", Norm: "dupont", Exact: "Dupont"}},
		References: []fhir.Reference{{Param: "subject", Type: "Group", ID: "p1"}, {Param: "derived-from", URL: "http://other/Observation/1"}},
		Dates:      []fhir.Date{year("date", 2020)},
		Numbers:    []fhir.Number{{Param: "value-quantity", Value: 7.2, Code: "/min"}},
	})
	writeIndexed(t, s, "Observation", "c", 1, fhir.Index{
		Tokens: []fhir.Token{{Param: "status", Code: "amended"}},
		Dates:  []fhir.Date{{Param: "date", Low: ms("2015"), High: fhir.MaxDate}}, // open period
	})
	writeIndexed(t, s, "Observation", "gone", 1, fhir.Index{Tokens: []fhir.Token{{Param: "status", Code: "final"}}})
	if _, _, err := s.Delete(bg, "Observation", "gone", 0); err != nil {
		t.Fatal(err)
	}
	writeIndexed(t, s, "Condition", "other-type", 1, fhir.Index{Tokens: []fhir.Token{{Param: "status", Code: "final"}}})

	y := func(s string) *float64 { return f(float64(ms(s))) }
	endOf := func(s string, years int) *float64 {
		t, _ := time.Parse("2006", s)
		return f(float64(t.AddDate(years, 0, 0).UnixMilli() - 1))
	}
	tru, fal := true, false
	cases := []struct {
		name string
		w    []store.Clause
		want string
	}{
		{"token system|code", where(store.Condition{Param: "code", Kind: store.KindToken, System: "http://loinc.org", Code: "8867-4"}), "[a]"},
		{"token code", where(store.Condition{Param: "code", Kind: store.KindToken, Code: "8867-4", AnySystem: true}), "[a b]"},
		{"token |code", where(store.Condition{Param: "status", Kind: store.KindToken, Code: "final"}), "[a]"},
		{"token system|", where(store.Condition{Param: "status", Kind: store.KindToken, System: "urn:s"}), "[b]"},
		{"token :not", where(store.Condition{Param: "status", Kind: store.KindToken, Code: "final", AnySystem: true, Not: true}), "[c]"},
		{"token OR is one $in", []store.Clause{{Any: []store.Condition{
			{Param: "status", Kind: store.KindToken, Code: "amended", AnySystem: true},
			{Param: "code", Kind: store.KindToken, System: "http://snomed.info/sct", Code: "8867-4"}}}}, "[b c]"},
		{"string prefix", where(store.Condition{Param: "name", Kind: store.KindString, Value: "dup"}), "[b]"},
		{"string prefix 2", where(store.Condition{Param: "name", Kind: store.KindString, Value: "hel"}), "[a]"},
		{"string contains", where(store.Condition{Param: "name", Kind: store.KindString, Value: "pon", Match: store.StringContains}), "[a b]"},
		{"string exact", where(store.Condition{Param: "name", Kind: store.KindString, Value: "Dupont", Match: store.StringExact}), "[b]"},
		{"string exact is exact", where(store.Condition{Param: "name", Kind: store.KindString, Value: "dupont", Match: store.StringExact}), "[]"},
		{"string regexp metacharacters", where(store.Condition{Param: "name", Kind: store.KindString, Value: "d.p", Match: store.StringContains}), "[]"},
		{"ref Type/id", where(store.Condition{Param: "subject", Kind: store.KindReference, RefType: "Patient", RefID: "p1"}), "[a]"},
		{"ref id any type", where(store.Condition{Param: "subject", Kind: store.KindReference, RefID: "p1"}), "[a b]"},
		{"ref type only", where(store.Condition{Param: "subject", Kind: store.KindReference, RefType: "Group"}), "[b]"},
		{"ref url", where(store.Condition{Param: "derived-from", Kind: store.KindReference, URL: "http://other/Observation/1"}), "[b]"},
		{"ref OR across params", []store.Clause{{Any: []store.Condition{
			{Param: "subject", Kind: store.KindReference, RefType: "Patient", RefID: "p1"},
			{Param: "performer", Kind: store.KindReference, RefType: "Patient", RefID: "p1"}}}}, "[a]"},
		{"date eq 2020: not low of 2010 with high of 2030", where(store.Condition{Param: "date", Kind: store.KindDate, Range: store.Interval{LowAtLeast: y("2020"), HighAtMost: endOf("2020", 1)}}), "[b]"},
		{"date ge 2025", where(store.Condition{Param: "date", Kind: store.KindDate, Range: store.Interval{HighAtLeast: y("2025")}}), "[a c]"},
		{"date ge 2021: not issued's 2020", where(store.Condition{Param: "date", Kind: store.KindDate, Range: store.Interval{HighAtLeast: y("2021")}}), "[a c]"},
		{"date le 2012", where(store.Condition{Param: "date", Kind: store.KindDate, Range: store.Interval{LowAtMost: y("2012")}}), "[a]"},
		{"date sa 2016", where(store.Condition{Param: "date", Kind: store.KindDate, Range: store.Interval{LowAtLeast: y("2016")}}), "[a b]"},
		{"date eb 2016", where(store.Condition{Param: "date", Kind: store.KindDate, Range: store.Interval{HighAtMost: y("2016")}}), "[a]"},
		{"date ap (overlap) 2019..2021", where(store.Condition{Param: "date", Kind: store.KindDate, Range: store.Interval{LowAtMost: endOf("2021", 1), HighAtLeast: y("2019")}}), "[b c]"},
		{"date ap (overlap) 2009..2011", where(store.Condition{Param: "date", Kind: store.KindDate, Range: store.Interval{LowAtMost: endOf("2011", 1), HighAtLeast: y("2009")}}), "[a]"},
		{"date ne 2020", where(store.Condition{Param: "date", Kind: store.KindDate, Not: true, Range: store.Interval{LowAtLeast: y("2020"), HighAtMost: endOf("2020", 1)}}), "[a c]"},
		{"issued eq 2020", where(store.Condition{Param: "issued", Kind: store.KindDate, Range: store.Interval{LowAtLeast: y("2020"), HighAtMost: endOf("2020", 1)}}), "[a]"},
		{"date empty range", where(store.Condition{Param: "date", Kind: store.KindDate, Range: store.Interval{LowAtLeast: y("2021"), HighAtMost: y("2020")}}), "[]"},
		{"number any unit", where(store.Condition{Param: "value-quantity", Kind: store.KindNumber, Range: store.Interval{LowAtLeast: f(70), HighAtMost: f(75)}}), "[a]"},
		{"number gt 5 (not other's 5)", where(store.Condition{Param: "value-quantity", Kind: store.KindNumber, Range: store.Interval{HighAtLeast: f(5.000001)}}), "[a b]"},
		{"number lt 7.3", where(store.Condition{Param: "value-quantity", Kind: store.KindNumber, Range: store.Interval{LowAtMost: f(7.3)}}), "[b]"},
		{"number system|code", where(store.Condition{Param: "value-quantity", Kind: store.KindNumber, System: "http://unitsofmeasure.org", Code: "/min", Range: store.Interval{HighAtLeast: f(0)}}), "[a]"},
		{"number ||code", where(store.Condition{Param: "value-quantity", Kind: store.KindNumber, Code: "/min", Range: store.Interval{HighAtLeast: f(0)}}), "[a b]"},
		{"number system only", where(store.Condition{Param: "value-quantity", Kind: store.KindNumber, System: "http://unitsofmeasure.org", Range: store.Interval{HighAtLeast: f(0)}}), "[a]"},
		{"uri", where(store.Condition{Param: "url", Kind: store.KindURI, Value: "http://example.org/fhir/a"}), "[a]"},
		{"uri below", where(store.Condition{Param: "url", Kind: store.KindURI, Value: "http://example.org/", Match: store.StringPrefix}), "[a]"},
		{"missing true", where(store.Condition{Param: "name", Kind: store.KindString, Missing: &tru}), "[c]"},
		{"missing false", where(store.Condition{Param: "name", Kind: store.KindString, Missing: &fal}), "[a b]"},
		{"_id", []store.Clause{{Any: []store.Condition{{Param: "_id", Kind: store.KindID, Value: "c"}, {Param: "_id", Kind: store.KindID, Value: "gone"}}}}, "[c]"},
		{"_id :not-like", where(store.Condition{Param: "_id", Kind: store.KindID, Value: "c", Not: true}), "[a b]"},
		{"no condition", nil, "[a b c]"},
		{"AND", where(
			store.Condition{Param: "code", Kind: store.KindToken, Code: "8867-4", AnySystem: true},
			store.Condition{Param: "date", Kind: store.KindDate, Range: store.Interval{HighAtLeast: y("2020")}}), "[a b]"},
		{"mixed OR", []store.Clause{{Any: []store.Condition{
			{Param: "name", Kind: store.KindString, Value: "hel"},
			{Param: "status", Kind: store.KindToken, Code: "amended", AnySystem: true}}}}, "[a c]"},
		{"chain", where(store.Condition{Param: "subject", Kind: store.KindReference, RefType: "Patient", Chain: &store.Query{Type: "Patient",
			Where: where(store.Condition{Param: "name", Kind: store.KindString, Value: "mar"})}}), "[a]"},
		{"chain none", where(store.Condition{Param: "subject", Kind: store.KindReference, RefType: "Patient", Chain: &store.Query{Type: "Patient",
			Where: where(store.Condition{Param: "name", Kind: store.KindString, Value: "zzz"})}}), "[]"},
	}
	writeIndexed(t, s, "Patient", "p1", 1, fhir.Index{Strings: []fhir.String{{Param: "name", Norm: "martin", Exact: "Martin"}}})
	writeIndexed(t, s, "Patient", "p2", 1, fhir.Index{Strings: []fhir.String{{Param: "name", Norm: "zoe", Exact: "Zoé"}}})
	for _, tc := range cases {
		if got := fmt.Sprint(ids(t, s, store.Query{Type: "Observation", Where: tc.w})); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
	// _has: patients referred to by an Observation's subject with status final.
	has := store.Query{Type: "Patient", Where: where(store.Condition{Has: &store.HasQuery{Type: "Observation", Param: "subject",
		Where: where(store.Condition{Param: "status", Kind: store.KindToken, Code: "final", AnySystem: true})}})}
	if got := fmt.Sprint(ids(t, s, has)); got != "[p1]" {
		t.Errorf("_has: %s", got)
	}
	has.Where[0].Any[0].Not = true
	if got := fmt.Sprint(ids(t, s, has)); got != "[p2]" {
		t.Errorf("not _has: %s", got)
	}
}

// TestSearchPatientCompartment: a patient's search adds pat, which a
// resource in several compartments (patMany) and a deletion do not break.
func TestSearchPatientCompartment(t *testing.T) {
	s := fresh(t)
	ref := func(param, typ, id string) fhir.Reference { return fhir.Reference{Param: param, Type: typ, ID: id} }
	writeIndexed(t, s, "Observation", "own", 1, fhir.Index{References: []fhir.Reference{ref("subject", "Patient", "p1"), ref("patient", "Patient", "p1")}})
	writeIndexed(t, s, "Observation", "two", 1, fhir.Index{References: []fhir.Reference{ref("subject", "Patient", "p2"), ref("patient", "Patient", "p2"), ref("performer", "Patient", "p1")}})
	writeIndexed(t, s, "Observation", "p2only", 1, fhir.Index{References: []fhir.Reference{ref("subject", "Patient", "p2"), ref("patient", "Patient", "p2")}})
	writeIndexed(t, s, "Observation", "group", 1, fhir.Index{References: []fhir.Reference{ref("subject", "Group", "p1")}})
	writeIndexed(t, s, "Observation", "del", 1, fhir.Index{References: []fhir.Reference{ref("subject", "Patient", "p1"), ref("patient", "Patient", "p1")}})
	if _, _, err := s.Delete(bg, "Observation", "del", 0); err != nil {
		t.Fatal(err)
	}
	pats := map[string]string{}
	cur, err := s.resources.Find(bg, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var docs []document
	if err := cur.All(bg, &docs); err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		pats[d.ID] = d.Pat
	}
	if fmt.Sprint(pats) != "map[del:p1 group: own:p1 p2only:p2 two:*]" {
		t.Errorf("pat values: %v", pats)
	}
	compartment := []store.Clause{{Any: []store.Condition{
		{Param: "subject", Kind: store.KindReference, RefType: "Patient", RefID: "p1"},
		{Param: "performer", Kind: store.KindReference, RefType: "Patient", RefID: "p1"}}}}
	for name, tc := range map[string]struct {
		w    []store.Clause
		want string
	}{
		"patient=p1":    {where(store.Condition{Param: "patient", Kind: store.KindReference, RefType: "Patient", RefID: "p1"}), "[own]"},
		"patient=p2":    {where(store.Condition{Param: "patient", Kind: store.KindReference, RefType: "Patient", RefID: "p2"}), "[p2only two]"},
		"performer=p1":  {where(store.Condition{Param: "performer", Kind: store.KindReference, RefType: "Patient", RefID: "p1"}), "[two]"},
		"compartment":   {compartment, "[own two]"},
		"patient=p1,p2": {[]store.Clause{{Any: []store.Condition{{Param: "patient", Kind: store.KindReference, RefType: "Patient", RefID: "p1"}, {Param: "patient", Kind: store.KindReference, RefType: "Patient", RefID: "p2"}}}}, "[own p2only two]"},
	} {
		q := store.Query{Type: "Observation", Where: tc.w}
		if got := fmt.Sprint(ids(t, s, q)); got != tc.want {
			t.Errorf("%s: %s, want %s", name, got, tc.want)
		}
		sr := searcher{s: s, ctx: bg}
		p, err := sr.plan(q.Type, q.Where, nil, nil)
		if err != nil || !strings.HasPrefix(p.q.index, "search_pat") {
			t.Errorf("%s: index %s (%v), want a patient index", name, p.q.index, err)
		}
	}
}

// TestSearchSortAndPaging sorts on each kind of sort key, in both
// directions, with multi-valued and missing values, and pages through with
// every page size.
func TestSearchSortAndPaging(t *testing.T) {
	s := fresh(t)
	// id: date values; missing for m1, m2.
	data := map[string][]int{"a": {2010, 2030}, "b": {2020}, "c": {2015}, "d": {2020}, "m1": nil, "m2": nil, "e": {2005, 2012}}
	for id, years := range data {
		var ix fhir.Index
		for _, y := range years {
			ix.Dates = append(ix.Dates, year("date", y))
			ix.Strings = append(ix.Strings, fhir.String{Param: "name", Norm: fmt.Sprint("n", y), Exact: fmt.Sprint(y)})
			ix.Numbers = append(ix.Numbers, fhir.Number{Param: "value", Value: float64(y - 2015)})
		}
		ix.Tokens = []fhir.Token{{Param: "status", Code: "final"}}
		writeIndexed(t, s, "Observation", id, 1, ix)
	}
	cases := []struct {
		sort []store.Sort
		want string
	}{
		// asc: smallest Low; desc: largest High; missing last; then id.
		{[]store.Sort{{Param: "date", Kind: store.KindDate}}, "[e a c b d m1 m2]"},
		{[]store.Sort{{Param: "date", Kind: store.KindDate, Desc: true}}, "[a b d c e m1 m2]"},
		{[]store.Sort{{Param: "name", Kind: store.KindString}}, "[e a c b d m1 m2]"},
		{[]store.Sort{{Param: "name", Kind: store.KindString, Desc: true}}, "[a b d c e m1 m2]"},
		{[]store.Sort{{Param: "value", Kind: store.KindNumber}}, "[e a c b d m1 m2]"},
		{[]store.Sort{{Param: "value", Kind: store.KindNumber, Desc: true}}, "[a b d c e m1 m2]"},
		{[]store.Sort{{Param: "status", Kind: store.KindToken, Desc: true}, {Param: "date", Kind: store.KindDate, Desc: true}}, "[a b d c e m1 m2]"},
		{[]store.Sort{{Param: "_id", Kind: store.KindID, Desc: true}}, "[m2 m1 e d c b a]"},
		{nil, "[a b c d e m1 m2]"},
		{[]store.Sort{{Param: "nothing", Kind: store.KindString}}, "[a b c d e m1 m2]"},
	}
	for _, tc := range cases {
		q := store.Query{Type: "Observation", Sort: tc.sort}
		if got := fmt.Sprint(ids(t, s, q)); got != tc.want {
			t.Errorf("sort %+v: %s, want %s", tc.sort, got, tc.want)
		}
		for _, withPatient := range []bool{false, true} {
			q := q
			if withPatient {
				q.Where = where(store.Condition{Param: "status", Kind: store.KindToken, Code: "final", AnySystem: true})
			}
			for size := 1; size <= 7; size++ {
				got, total := pageAll(t, s, q, size)
				if fmt.Sprint(got) != tc.want || total != 7 {
					t.Errorf("sort %+v page %d: %v (total %d), want %s", tc.sort, size, got, total, tc.want)
				}
			}
		}
	}
	// Cursors are checked.
	p, err := s.Search(bg, store.Query{Type: "Observation", Count: 2, Sort: cases[0].sort})
	if err != nil || p.Next == "" {
		t.Fatal(p, err)
	}
	for _, bad := range []string{"garbage!", "e30", p.Next + "x", encodeTestCursor(t, cursor{Sig: signature(sortFields(nil)), Vals: []any{"a"}})} {
		if _, err := s.Search(bg, store.Query{Type: "Observation", Count: 2, Sort: cases[0].sort, After: bad}); !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("cursor %q: %v", bad, err)
		}
	}
	if _, err := s.Search(bg, store.Query{Type: "Observation", Total: true, Sort: cases[0].sort, After: "garbage!"}); !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("bad cursor with Count 0: %v", err)
	}
	// ... against the order they were made for.
	if _, err := s.Search(bg, store.Query{Type: "Observation", Count: 2, After: p.Next}); !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("cursor of another order: %v", err)
	}
	// Count 0: the total only.
	p, err = s.Search(bg, store.Query{Type: "Observation", Total: true})
	if err != nil || len(p.Resources) != 0 || p.Total != 7 || p.Next != "" {
		t.Errorf("count only: %+v %v", p, err)
	}
	p, err = s.Search(bg, store.Query{Type: "Observation", Count: 3})
	if err != nil || p.Total != -1 {
		t.Errorf("no total asked: %+v %v", p, err)
	}
}

func encodeTestCursor(t *testing.T, c cursor) string {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func mustRE(t *testing.T, expr string) *regexp.Regexp {
	t.Helper()
	re, err := regexp.Compile("^" + expr + "$")
	if err != nil {
		t.Fatal(err)
	}
	return re
}

// pageAll runs q page by page and returns all ids and the total.
func pageAll(t *testing.T, s *Store, q store.Query, size int) ([]string, int) {
	t.Helper()
	q.Count, q.Total = size, true
	var out []string
	total := -1
	for n := 0; n < 100; n++ {
		p, err := s.Search(bg, q)
		if err != nil {
			t.Fatalf("%+v: %v", q, err)
		}
		if total < 0 {
			total = p.Total
		}
		for _, r := range p.Resources {
			out = append(out, r.ID)
		}
		if p.Next == "" {
			return out, total
		}
		if len(p.Resources) != size {
			t.Fatalf("a page of %d before the end (size %d)", len(p.Resources), size)
		}
		q.After = p.Next
	}
	t.Fatal("no end of pages")
	return nil, 0
}

// TestReindex rewrites index values from the stored bodies.
func TestReindex(t *testing.T) {
	s := fresh(t)
	body := `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2024-03-01"}`
	r, err := s.Create(bg, "Observation", "o1", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := indexValuesOf(fhir.ExtractIndex(r.Body))
	if len(want.Tokens) == 0 {
		t.Skip("the extractor indexes no tokens of this Observation yet")
	}
	// Forget the index values, as if the definitions had changed.
	for _, c := range []string{resourcesColl} {
		if _, err := s.db.Collection(c).UpdateMany(bg, bson.D{}, bson.D{{Key: "$set", Value: bson.D{{Key: fIx, Value: bson.D{}}}}, {Key: "$unset", Value: bson.D{{Key: fSk, Value: ""}, {Key: fPat, Value: ""}}}}); err != nil {
			t.Fatal(err)
		}
	}
	code := store.Query{Type: "Observation", Count: 10, Where: where(store.Condition{Param: "code", Kind: store.KindToken, System: "http://loinc.org", Code: "8867-4"})}
	if got := ids(t, s, code); len(got) != 0 {
		t.Fatalf("found without index values: %v", got)
	}
	defer func(n int) { reindexBatch = n }(reindexBatch)
	reindexBatch = 4
	for i := 0; i < reindexBatch+3; i++ { // more than one batch
		if _, err := s.Create(bg, "Observation", fmt.Sprintf("x%04d", i), []byte(`{"resourceType":"Observation","status":"final"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Delete(bg, "Observation", "x0000", 0); err != nil {
		t.Fatal(err)
	}
	var calls []int
	if err := s.Reindex(bg, func(done int) { calls = append(calls, done) }); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 2 || calls[len(calls)-1] != reindexBatch+3 {
		t.Errorf("progress calls %v", calls)
	}
	if got := fmt.Sprint(ids(t, s, code)); got != "[o1]" {
		t.Errorf("after reindex: %s", got)
	}
	var d document
	if err := s.resources.FindOne(bg, bson.D{{Key: "_id", Value: "Observation/o1"}}).Decode(&d); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(d.Ix) != fmt.Sprint(want) || d.Pat != "p1" || d.Sk == nil {
		t.Errorf("after reindex: ix %v pat %q sk %v", d.Ix, d.Pat, d.Sk)
	}
}

// The differential test: random resources, random queries, the engine's
// answer against the contract evaluated in memory.

type fake struct {
	id string
	lu int64
	ix fhir.Index
}

func randomIndex(r *rand.Rand) fhir.Index {
	var ix fhir.Index
	n := func(k int) int { return r.IntN(k + 1) }
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	for i := n(2); i > 0; i-- {
		ix.Tokens = append(ix.Tokens, fhir.Token{Param: pick("code", "status"), System: pick("", "s1", "s2"), Code: pick("a", "b", "c")})
	}
	for i := n(2); i > 0; i-- {
		v := pick("dupont", "durand", "du", "martin", "ma rtin")
		ix.Strings = append(ix.Strings, fhir.String{Param: pick("name", "family"), Norm: v, Exact: strings.ToUpper(v[:1]) + v[1:]})
	}
	for i := n(2); i > 0; i-- {
		ix.References = append(ix.References, fhir.Reference{Param: pick("subject", "performer"), Type: pick("Patient", "Group"), ID: pick("p1", "p2")})
	}
	for i := n(3); i > 0; i-- {
		y := 2000 + r.IntN(30)
		d := year(pick("date", "issued"), y)
		if r.IntN(4) == 0 {
			d.High = year("", y+r.IntN(5)).High
		}
		if r.IntN(10) == 0 {
			d.High = fhir.MaxDate
		}
		ix.Dates = append(ix.Dates, d)
	}
	for i := n(2); i > 0; i-- {
		ix.Numbers = append(ix.Numbers, fhir.Number{Param: pick("value", "other"), Value: float64(r.IntN(11)-5) / 2, System: pick("", "u"), Code: pick("", "mg", "g")})
	}
	return ix
}

func randomCondition(r *rand.Rand) store.Condition {
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	var c store.Condition
	switch r.IntN(7) {
	case 0:
		c = store.Condition{Param: pick("code", "status"), Kind: store.KindToken, System: pick("", "s1"), Code: pick("a", "b", "")}
		c.AnySystem = c.System == "" && r.IntN(2) == 0
		if c.Code == "" && c.System == "" {
			c.Code = "a"
		}
	case 1:
		c = store.Condition{Param: pick("name", "family"), Kind: store.KindString, Value: pick("du", "dup", "mar", "rt", "Dupont", "tin"), Match: store.StringMatch(r.IntN(3))}
	case 2:
		c = store.Condition{Param: pick("subject", "performer"), Kind: store.KindReference, RefType: pick("", "Patient", "Group"), RefID: pick("p1", "p2")}
	case 3, 4:
		c = store.Condition{Param: pick("date", "issued"), Kind: store.KindDate}
		a := float64(year("", 2000+r.IntN(30)).Low)
		b := float64(year("", 2000+r.IntN(30)).High)
		if a > b && r.IntN(3) > 0 {
			a, b = b, a
		}
		switch r.IntN(8) {
		case 0:
			c.Range = store.Interval{LowAtLeast: &a, HighAtMost: &b}
		case 1:
			c.Range = store.Interval{HighAtLeast: &a}
		case 2:
			c.Range = store.Interval{LowAtMost: &b}
		case 3:
			c.Range = store.Interval{LowAtLeast: &a}
		case 4:
			c.Range = store.Interval{HighAtMost: &b}
		case 5:
			c.Range = store.Interval{LowAtMost: &b, HighAtLeast: &a}
		case 6:
			c.Range = store.Interval{LowAtLeast: &a, LowAtMost: &b, HighAtLeast: &a, HighAtMost: &b}
		default:
			c.Range = store.Interval{LowAtLeast: &a, HighAtMost: &b}
			c.Not = true
		}
	case 5:
		c = store.Condition{Param: pick("value", "other"), Kind: store.KindNumber, System: pick("", "", "u"), Code: pick("", "mg")}
		a, b := float64(r.IntN(11)-5)/2, float64(r.IntN(11)-5)/2
		switch r.IntN(3) {
		case 0:
			c.Range = store.Interval{LowAtLeast: &a, HighAtMost: &b}
		case 1:
			c.Range = store.Interval{HighAtLeast: &a}
		default:
			c.Range = store.Interval{LowAtMost: &b}
		}
	default:
		m := r.IntN(2) == 0
		c = store.Condition{Param: pick("name", "date", "code", "value"), Missing: &m}
	}
	if c.Missing == nil && !c.Not && r.IntN(6) == 0 {
		c.Not = true
	}
	return c
}

func (x *fake) matches(c *store.Condition) bool {
	if c.Missing != nil {
		has := slices.Contains(paramsOf(x.ix), c.Param)
		return has != (*c.Missing != c.Not)
	}
	return x.matchesValue(c) != c.Not
}

func paramsOf(ix fhir.Index) []string {
	var ps []string
	for _, v := range ix.Tokens {
		ps = append(ps, v.Param)
	}
	for _, v := range ix.Strings {
		ps = append(ps, v.Param)
	}
	for _, v := range ix.References {
		ps = append(ps, v.Param)
	}
	for _, v := range ix.Dates {
		ps = append(ps, v.Param)
	}
	for _, v := range ix.Numbers {
		ps = append(ps, v.Param)
	}
	return ps
}

func in(v float64, r store.Interval) bool {
	return (r.LowAtLeast == nil || v >= *r.LowAtLeast) && (r.LowAtMost == nil || v <= *r.LowAtMost) &&
		(r.HighAtLeast == nil || v >= *r.HighAtLeast) && (r.HighAtMost == nil || v <= *r.HighAtMost)
}

func (x *fake) matchesValue(c *store.Condition) bool {
	switch c.Kind {
	case store.KindToken:
		for _, t := range x.ix.Tokens {
			if t.Param == c.Param && (c.Code == "" || t.Code == c.Code) && (c.AnySystem || t.System == c.System) {
				return true
			}
		}
	case store.KindString:
		for _, s := range x.ix.Strings {
			if s.Param == c.Param && (c.Match == store.StringExact && s.Exact == c.Value ||
				c.Match == store.StringPrefix && strings.HasPrefix(s.Norm, c.Value) ||
				c.Match == store.StringContains && strings.Contains(s.Norm, c.Value)) {
				return true
			}
		}
	case store.KindReference:
		for _, ref := range x.ix.References {
			if ref.Param == c.Param && ref.ID == c.RefID && (c.RefType == "" || ref.Type == c.RefType) {
				return true
			}
		}
	case store.KindDate:
		for _, d := range x.ix.Dates {
			r := c.Range
			if d.Param == c.Param && (r.LowAtLeast == nil || float64(d.Low) >= *r.LowAtLeast) && (r.LowAtMost == nil || float64(d.Low) <= *r.LowAtMost) &&
				(r.HighAtLeast == nil || float64(d.High) >= *r.HighAtLeast) && (r.HighAtMost == nil || float64(d.High) <= *r.HighAtMost) {
				return true
			}
		}
	case store.KindNumber:
		for _, n := range x.ix.Numbers {
			if n.Param == c.Param && (c.System == "" || n.System == c.System) && (c.Code == "" || n.Code == c.Code) && in(n.Value, c.Range) {
				return true
			}
		}
	case store.KindLastUpdated:
		return in(float64(x.lu), c.Range)
	}
	return false
}

// sortValue is the value a sort key takes: ok false when the resource has
// none.
func (x *fake) sortValue(s store.Sort) (v any, ok bool) {
	better := func(a, b float64) bool { return s.Desc && a > b || !s.Desc && a < b }
	switch s.Kind {
	case store.KindDate:
		var best float64
		for _, d := range x.ix.Dates {
			if d.Param != s.Param {
				continue
			}
			val := float64(d.Low)
			if s.Desc {
				val = float64(d.High)
			}
			if !ok || better(val, best) {
				best, ok = val, true
			}
		}
		return best, ok
	case store.KindNumber:
		var best float64
		for _, n := range x.ix.Numbers {
			if n.Param == s.Param && (!ok || better(n.Value, best)) {
				best, ok = n.Value, true
			}
		}
		return best, ok
	case store.KindString, store.KindToken:
		var best string
		var vals []string
		for _, v := range x.ix.Strings {
			if v.Param == s.Param {
				vals = append(vals, v.Norm)
			}
		}
		for _, v := range x.ix.Tokens {
			if v.Param == s.Param {
				vals = append(vals, v.Code)
			}
		}
		for _, v := range vals {
			if !ok || s.Desc && v > best || !s.Desc && v < best {
				best, ok = v, true
			}
		}
		return best, ok
	case store.KindLastUpdated:
		return float64(x.lu), true
	case store.KindID:
		return x.id, true
	}
	return nil, false
}

func compareFakes(a, b *fake, sorts []store.Sort) int {
	for _, s := range sorts {
		va, oka := a.sortValue(s)
		vb, okb := b.sortValue(s)
		switch {
		case !oka && !okb:
			continue
		case !oka:
			return 1
		case !okb:
			return -1
		}
		var c int
		switch va := va.(type) {
		case float64:
			c = cmp.Compare(va, vb.(float64))
		case string:
			c = strings.Compare(va, vb.(string))
		}
		if s.Desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return strings.Compare(a.id, b.id)
}

func TestSearchAgainstModel(t *testing.T) {
	s := fresh(t)
	r := rand.New(rand.NewPCG(7, 11))
	var fakes []*fake
	for i := 0; i < 60; i++ {
		x := &fake{id: fmt.Sprintf("r%02d", i), ix: randomIndex(r)}
		res := writeIndexed(t, s, "Observation", x.id, 1, x.ix)
		x.lu = res.LastUpdated.UnixMilli()
		fakes = append(fakes, x)
	}
	sortChoices := [][]store.Sort{
		nil,
		{{Param: "date", Kind: store.KindDate, Desc: true}},
		{{Param: "date", Kind: store.KindDate}},
		{{Param: "issued", Kind: store.KindDate}, {Param: "name", Kind: store.KindString, Desc: true}},
		{{Param: "value", Kind: store.KindNumber}},
		{{Param: "code", Kind: store.KindToken, Desc: true}},
		{{Param: "_lastUpdated", Kind: store.KindLastUpdated}},
		{{Param: "_lastUpdated", Kind: store.KindLastUpdated, Desc: true}},
		{{Param: "_id", Kind: store.KindID, Desc: true}},
	}
	for i := 0; i < 150; i++ {
		var q store.Query
		q.Type = "Observation"
		for c := r.IntN(3); c >= 0; c-- {
			var cl store.Clause
			for k := r.IntN(2); k >= 0; k-- {
				cl.Any = append(cl.Any, randomCondition(r))
			}
			if r.IntN(3) == 0 { // an OR of the same parameter
				c2 := cl.Any[0]
				c3 := randomCondition(r)
				if c3.Kind == c2.Kind && c2.Missing == nil && c3.Missing == nil {
					c3.Param = c2.Param
					cl.Any = append(cl.Any, c3)
				}
			}
			q.Where = append(q.Where, cl)
		}
		q.Sort = sortChoices[r.IntN(len(sortChoices))]
		var want []*fake
		for _, x := range fakes {
			ok := true
			for _, cl := range q.Where {
				any := false
				for k := range cl.Any {
					any = any || x.matches(&cl.Any[k])
				}
				ok = ok && any
			}
			if ok {
				want = append(want, x)
			}
		}
		slices.SortStableFunc(want, func(a, b *fake) int { return compareFakes(a, b, q.Sort) })
		var wantIDs []string
		for _, x := range want {
			wantIDs = append(wantIDs, x.id)
		}
		size := 4 + r.IntN(30)
		got, total := pageAll(t, s, q, size)
		if fmt.Sprint(got) != fmt.Sprint(wantIDs) || total != len(wantIDs) {
			sr := searcher{s: s, ctx: bg}
			p, _ := sr.plan(q.Type, q.Where, q.Sort, nil)
			t.Fatalf("query %d %s (page %d):\n got %v (total %d)\nwant %v\nfilter %v\nsort %v index %s", i, describe(q), size, got, total, wantIDs, p.q.filter, p.q.sort, p.q.index)
		}
	}
}

func describe(q store.Query) string {
	var parts []string
	for _, cl := range q.Where {
		var ors []string
		for _, c := range cl.Any {
			s := fmt.Sprintf("%s kind=%d", c.Param, c.Kind)
			if c.Missing != nil {
				s += fmt.Sprintf(" missing=%v", *c.Missing)
			}
			if c.Not {
				s += " not"
			}
			s += fmt.Sprintf(" sys=%q code=%q any=%v val=%q match=%d ref=%s/%s", c.System, c.Code, c.AnySystem, c.Value, c.Match, c.RefType, c.RefID)
			r := c.Range
			for _, b := range []struct {
				n string
				v *float64
			}{{"la", r.LowAtLeast}, {"lm", r.LowAtMost}, {"ha", r.HighAtLeast}, {"hm", r.HighAtMost}} {
				if b.v != nil {
					s += fmt.Sprintf(" %s=%v", b.n, *b.v)
				}
			}
			ors = append(ors, s)
		}
		parts = append(parts, "("+strings.Join(ors, " OR ")+")")
	}
	return strings.Join(parts, " AND ") + fmt.Sprintf(" sort %+v", q.Sort)
}

// searchFit says how a search query uses its index.
type searchFit struct {
	sortByIndex bool     // the order is the index's after its equality prefix
	residual    []string // top-level filter fields the index does not hold (checked on the documents)
}

// fitsSearch checks, without explain, that a search query is served by the
// index it names: every field it filters on (at any depth) is a key of some
// declared resources index (or is a key of an order that no index gives,
// sorted in memory); the index's first key (type) is fixed and its
// second is bounded by the filter (so the scan is a range of the index,
// not of the type, unless the index is a (type, deleted) one); and it
// reports whether the sort is the index order and which fields are left to
// a filter on the documents.
func fitsSearch(q query) (searchFit, error) {
	var fit searchFit
	spec := indexByName(q.index)
	if spec == nil || spec.coll != resourcesColl || q.coll != resourcesColl {
		return fit, fmt.Errorf("index %q is not a declared resources index", q.index)
	}
	indexed := map[string]bool{}
	for _, ix := range indexes {
		if ix.coll == resourcesColl {
			for _, k := range ix.keys {
				indexed[k.Key] = true
			}
		}
	}
	all := map[string]bool{}
	var collect func(d bson.D)
	collect = func(d bson.D) {
		for _, e := range d {
			if strings.HasPrefix(e.Key, "$") {
				for _, c := range e.Value.(bson.A) {
					collect(c.(bson.D))
				}
				continue
			}
			all[e.Key] = true
		}
	}
	collect(q.filter)
	for f := range all {
		// A sort key no index holds is sorted in memory; the cursor's
		// position on it is a filter on the documents, like that sort.
		if !indexed[f] && !slices.ContainsFunc(q.sort, func(e bson.E) bool { return e.Key == f }) {
			return fit, fmt.Errorf("field %s is in no index", f)
		}
	}
	top := map[string]string{} // field: "point" (equalities) or "bound" (a range)
	var walk func(d bson.D)
	walk = func(d bson.D) {
		for _, e := range d {
			switch {
			case e.Key == "$and":
				for _, c := range e.Value.(bson.A) {
					walk(c.(bson.D))
				}
				continue
			case strings.HasPrefix(e.Key, "$"): // $or, $nor: a filter
				fit.residual = append(fit.residual, e.Key)
				continue
			}
			class := "point"
			switch v := e.Value.(type) {
			case primitiveRegex:
				class = "bound"
			case bson.D:
				class = "bound"
				if len(v) == 1 && v[0].Key == "$in" && !slices.ContainsFunc(v[0].Value.(bson.A), func(x any) bool { _, re := x.(primitiveRegex); return re }) {
					class = "point"
				}
			}
			if top[e.Key] != "point" {
				top[e.Key] = class
			}
		}
	}
	walk(q.filter)
	keys := spec.keys
	if top[keys[0].Key] != "point" {
		return fit, fmt.Errorf("index %s: %s is not fixed", spec.name, keys[0].Key)
	}
	if top[keys[1].Key] == "" {
		return fit, fmt.Errorf("index %s: %s is not bounded by %v", spec.name, keys[1].Key, q.filter)
	}
	for f := range top {
		if !spec.hasKey(f) {
			fit.residual = append(fit.residual, f)
		}
	}
	slices.Sort(fit.residual)
	j := 0
	for j < len(keys) && top[keys[j].Key] == "point" {
		j++
	}
	var sort bson.D // the sort without the fields the filter fixes
	for _, e := range q.sort {
		if top[e.Key] != "point" {
			sort = append(sort, e)
		}
	}
	fit.sortByIndex = len(sort) <= len(keys)-j
	flip := 0
	for k := 0; fit.sortByIndex && k < len(sort); k++ {
		ik := keys[j+k]
		if ik.Key != sort[k].Key {
			fit.sortByIndex = false
			break
		}
		d := 1
		if fmt.Sprint(ik.Value) != fmt.Sprint(sort[k].Value) {
			d = -1
		}
		if flip != 0 && d != flip {
			fit.sortByIndex = false
		}
		flip = d
	}
	return fit, nil
}

// TestSearchQueriesFitTheirIndexes translates every shape of condition,
// alone and in pairs, with every order, first pages and later ones, and
// checks each against its index; the benchmark shapes must be fully served.
func TestSearchQueriesFitTheirIndexes(t *testing.T) {
	s := fresh(t)
	sr := searcher{s: s, ctx: bg}
	y2020 := f(float64(ms("2020")))
	y2021 := f(float64(ms("2021") - 1))
	tru, fal := true, false
	pat := func(param, id string) store.Condition {
		return store.Condition{Param: param, Kind: store.KindReference, RefType: "Patient", RefID: id}
	}
	conds := map[string][]store.Condition{
		"token system|code": {{Param: "code", Kind: store.KindToken, System: "http://loinc.org", Code: "8867-4"}},
		"token code":        {{Param: "code", Kind: store.KindToken, Code: "8867-4", AnySystem: true}},
		"token |code":       {{Param: "code", Kind: store.KindToken, Code: "8867-4"}},
		"token system|":     {{Param: "code", Kind: store.KindToken, System: "http://loinc.org"}},
		"token :not":        {{Param: "status", Kind: store.KindToken, Code: "final", AnySystem: true, Not: true}},
		"token OR":          {{Param: "status", Kind: store.KindToken, Code: "final", AnySystem: true}, {Param: "status", Kind: store.KindToken, Code: "amended", AnySystem: true}},
		"string":            {{Param: "name", Kind: store.KindString, Value: "dup"}},
		"string OR":         {{Param: "name", Kind: store.KindString, Value: "dup"}, {Param: "name", Kind: store.KindString, Value: "mar"}},
		"string :contains":  {{Param: "name", Kind: store.KindString, Value: "pon", Match: store.StringContains}},
		"string :exact":     {{Param: "name", Kind: store.KindString, Value: "Dupont", Match: store.StringExact}},
		"uri":               {{Param: "url", Kind: store.KindURI, Value: "http://x", Match: store.StringExact}},
		"uri :below":        {{Param: "url", Kind: store.KindURI, Value: "http://x", Match: store.StringPrefix}},
		"ref":               {{Param: "performer", Kind: store.KindReference, RefType: "Practitioner", RefID: "d1"}},
		"ref any type":      {{Param: "subject", Kind: store.KindReference, RefID: "p1"}},
		"ref url":           {{Param: "subject", Kind: store.KindReference, URL: "http://x/Patient/1"}},
		"ref type only":     {{Param: "subject", Kind: store.KindReference, RefType: "Group"}},
		"patient":           {pat("patient", "p1")},
		"patient OR":        {pat("patient", "p1"), pat("patient", "p2")},
		"compartment":       {pat("subject", "p1"), pat("performer", "p1")},
		"date eq":           {{Param: "date", Kind: store.KindDate, Range: store.Interval{LowAtLeast: y2020, HighAtMost: y2021}}},
		"date ge":           {{Param: "date", Kind: store.KindDate, Range: store.Interval{HighAtLeast: y2020}}},
		"date le":           {{Param: "date", Kind: store.KindDate, Range: store.Interval{LowAtMost: y2020}}},
		"date sa":           {{Param: "date", Kind: store.KindDate, Range: store.Interval{LowAtLeast: y2021}}},
		"date eb":           {{Param: "date", Kind: store.KindDate, Range: store.Interval{HighAtMost: y2020}}},
		"date ap":           {{Param: "date", Kind: store.KindDate, Range: store.Interval{LowAtMost: y2021, HighAtLeast: y2020}}},
		"date ne":           {{Param: "date", Kind: store.KindDate, Not: true, Range: store.Interval{LowAtLeast: y2020, HighAtMost: y2021}}},
		"issued ge":         {{Param: "issued", Kind: store.KindDate, Range: store.Interval{HighAtLeast: y2020}}},
		"number":            {{Param: "value-quantity", Kind: store.KindNumber, Range: store.Interval{LowAtLeast: f(1), HighAtMost: f(2)}}},
		"quantity unit":     {{Param: "value-quantity", Kind: store.KindNumber, System: "u", Code: "mg", Range: store.Interval{HighAtLeast: f(1)}}},
		"quantity system":   {{Param: "value-quantity", Kind: store.KindNumber, System: "u", Range: store.Interval{HighAtLeast: f(1)}}},
		"_id":               {{Param: "_id", Kind: store.KindID, Value: "o1"}},
		"_id OR":            {{Param: "_id", Kind: store.KindID, Value: "o1"}, {Param: "_id", Kind: store.KindID, Value: "o2"}},
		"_lastUpdated":      {{Param: "_lastUpdated", Kind: store.KindLastUpdated, Range: store.Interval{HighAtLeast: y2020}}},
		"missing true":      {{Param: "name", Kind: store.KindString, Missing: &tru}},
		"missing false":     {{Param: "name", Kind: store.KindString, Missing: &fal}},
		"mixed OR":          {{Param: "name", Kind: store.KindString, Value: "dup"}, {Param: "code", Kind: store.KindToken, Code: "x", AnySystem: true}},
		"chain":             {{Param: "subject", Kind: store.KindReference, RefType: "Patient", Chain: &store.Query{Type: "Patient", Where: where(store.Condition{Param: "name", Kind: store.KindString, Value: "mar"})}}},
		"_has":              {{Has: &store.HasQuery{Type: "Observation", Param: "subject", Where: where(store.Condition{Param: "code", Kind: store.KindToken, Code: "x", AnySystem: true})}}},
	}
	sorts := map[string][]store.Sort{
		"":              nil,
		"-date":         {{Param: "date", Kind: store.KindDate, Desc: true}},
		"date":          {{Param: "date", Kind: store.KindDate}},
		"_lastUpdated":  {{Param: "_lastUpdated", Kind: store.KindLastUpdated}},
		"-_lastUpdated": {{Param: "_lastUpdated", Kind: store.KindLastUpdated, Desc: true}},
		"-_id":          {{Param: "_id", Kind: store.KindID, Desc: true}},
		"name,-code":    {{Param: "name", Kind: store.KindString}, {Param: "code", Kind: store.KindToken, Desc: true}},
		"value":         {{Param: "value-quantity", Kind: store.KindNumber}},
	}
	type shape struct {
		name  string
		where []store.Clause
		sort  []store.Sort
	}
	var shapes []shape
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range conds {
			if !yield(k) {
				return
			}
		}
	})
	for _, sn := range slices.Sorted(func(yield func(string) bool) {
		for k := range sorts {
			if !yield(k) {
				return
			}
		}
	}) {
		shapes = append(shapes, shape{"(none) sort " + sn, nil, sorts[sn]})
		for _, a := range names {
			shapes = append(shapes, shape{a + " sort " + sn, []store.Clause{{Any: conds[a]}}, sorts[sn]})
			for _, b := range names {
				if a < b {
					shapes = append(shapes, shape{a + " & " + b + " sort " + sn, []store.Clause{{Any: conds[a]}, {Any: conds[b]}}, sorts[sn]})
				}
			}
		}
	}
	typ := "Observation"
	plans := map[string]*plan{}
	for _, sh := range shapes {
		p, err := sr.plan(typ, sh.where, sh.sort, nil)
		if err != nil {
			t.Fatalf("%s: %v", sh.name, err)
		}
		plans[sh.name] = p
		// A later page: the cursor's bound and $or, with a value and with
		// none (past the last value, among the resources without one).
		for _, null := range []bool{false, true} {
			vals := make([]any, len(p.sort))
			for i, sf := range p.sort {
				switch {
				case sf.date:
					vals[i] = time.Now()
				case sf.nullable && null:
				default:
					vals[i] = "k"
				}
			}
			q := p.q
			q.filter = appendAfter(q.filter, p.sort, vals)
			for _, qq := range []query{p.q, q} {
				if _, err := fitsSearch(qq); err != nil {
					t.Errorf("%s: %v\nfilter %v\nsort %v", sh.name, err, qq.filter, qq.sort)
				}
			}
			// (After a null, the sort key is fixed: any index order will do.)
			if fa, fb := mustFit(t, p.q), mustFit(t, q); !null && fa.sortByIndex != fb.sortByIndex {
				t.Errorf("%s: the cursor changes how the order is served", sh.name)
			}
		}
	}
	// The first query of _has, with its extra "refers to the type" test.
	hp, err := sr.plan("Observation", where(conds["token code"]...), nil, []pred{valsPred(fRefs, true, regex("^"+quote("subject|Patient/")))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fitsSearch(hp.q); err != nil {
		t.Errorf("_has first query: %v", err)
	}

	expect := []struct {
		shape       string
		index       string
		sortByIndex bool
		residual    string
	}{
		// The benchmark shapes.
		{"patient sort -date", ixPatDate, true, "[ix.ref]"},                           // Observation?patient=X&_sort=-date&_count=20
		{"patient & token |code sort ", ixPatToken, true, "[ix.ref]"},                 // MedicationRequest?patient=X&status=active
		{"date ge & token system|code sort ", ixToken, true, "[]"},                    // Observation?code=http://loinc.org|8867-4&date=ge2020
		{"date ge & token system|code sort -date", ixTokenDate, true, "[]"},           // ... &_sort=-date
		{"patient sort date", ixPatDateAsc, true, "[ix.ref]"},                         //
		{"date ge & patient sort -date", ixPatDate, true, "[ix.ref]"},                 //
		{"compartment sort ", ixPat, true, "[ix.ref]"},                                // the auth clause, OR of compartment parameters
		{"patient OR sort -date", ixPatDate, true, "[ix.ref]"},                        //
		{"(none) sort ", ixType, true, "[]"},                                          //
		{"(none) sort -date", ixDate, true, "[]"},                                     //
		{"date ge sort -date", ixDate, true, "[]"},                                    //
		{"(none) sort _lastUpdated", ixLastUpdated, true, "[]"},                       //
		{"_lastUpdated sort _lastUpdated", ixLastUpdated, true, "[]"},                 //
		{"token code sort ", ixToken, true, "[]"},                                     //
		{"token OR sort ", ixToken, true, "[]"},                                       //
		{"token code sort -date", ixTokenDate, true, "[]"},                            //
		{"ref sort ", ixRef, true, "[]"},                                              //
		{"string :exact sort ", ixStringExact, true, "[]"},                            //
		{"uri sort ", ixURI, true, "[]"},                                              //
		{"_id OR sort ", ixType, true, "[]"},                                          //
		{"missing false sort ", ixHas, true, "[]"},                                    //
		{"chain sort ", ixRef, true, "[]"},                                            //
		{"_has sort ", ixType, true, "[]"},                                            //
		{"date eq sort ", ixDateLow, false, "[]"},                                     // a range, then the id order in memory
		{"string sort ", ixString, false, "[]"},                                       //
		{"token :not sort ", ixType, true, "[$nor]"},                                  //
		{"missing true & token code sort ", ixToken, true, "[$nor]"},                  //
		{"ref & token code sort name,-code", ixRef, false, "[ix.tok]"},                // sorts other than date: in memory
		{"number & token system|code sort value", ixToken, false, "[ix.num]"},         //
		{"date ge & token system|code sort date", ixToken, false, "[]"},               //
		{"date le & patient sort date", ixPatDateAsc, true, "[ix.ref]"},               //
		{"issued ge & token code sort ", ixToken, true, "[ix.dhi]"},                   //
		{"mixed OR sort ", ixType, true, "[$or]"},                                     // an $or of two fields bounds no index
		{"quantity unit & ref any type sort -_lastUpdated", ixRef, false, "[ix.num]"}, //
	}
	for _, e := range expect {
		p := plans[e.shape]
		if p == nil {
			t.Errorf("no shape %q", e.shape)
			continue
		}
		fit := mustFit(t, p.q)
		if p.q.index != e.index || fit.sortByIndex != e.sortByIndex || fmt.Sprint(fit.residual) != e.residual {
			t.Errorf("%s: index %s sorted by index %v residual %v; want %s %v %s\nfilter %v\nsort %v",
				e.shape, p.q.index, fit.sortByIndex, fit.residual, e.index, e.sortByIndex, e.residual, p.q.filter, p.q.sort)
		}
	}
	if testing.Verbose() {
		for _, sh := range shapes {
			if strings.Contains(sh.name, " & ") {
				continue
			}
			p := plans[sh.name]
			fit := mustFit(t, p.q)
			t.Logf("%-40s %-22s sorted=%-5v residual=%v", sh.name, p.q.index, fit.sortByIndex, fit.residual)
		}
	}
}

type primitiveRegex = primitive.Regex

func mustFit(t *testing.T, q query) searchFit {
	t.Helper()
	fit, err := fitsSearch(q)
	if err != nil {
		t.Fatal(err)
	}
	return fit
}
