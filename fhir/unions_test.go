package fhir

import (
	"reflect"
	"slices"
	"testing"
)

// The union parameters found from R4's expressions are Observation's four
// combo- parameters: a change of the definitions or of the finding shows
// here first.
func TestTheUnionParametersAreObservationsCombos(t *testing.T) {
	want := map[string]map[string][]string{"Observation": {
		"combo-code":               {"code", "component-code"},
		"combo-data-absent-reason": {"component-data-absent-reason", "data-absent-reason"},
		"combo-value-concept":      {"component-value-concept", "value-concept"},
		"combo-value-quantity":     {"component-value-quantity", "value-quantity"},
	}}
	if got := unionParams(); !reflect.DeepEqual(got, want) {
		t.Fatalf("union parameters %v, want %v", got, want)
	}
	if UnionParts("Observation", "code") != nil || UnionParts("Patient", "combo-code") != nil {
		t.Fatal("UnionParts names parts of a parameter that is no union")
	}
}

// On every example, the values a union parameter's own expression gives are
// those of its parts together (:text ones included): leaving its values out
// of the index and searching its parts instead finds the same resources.
func TestAUnionParametersValuesAreThoseOfItsParts(t *testing.T) {
	all, errs := buildIndexPlans(nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	reads := readsOf(all)
	checked := 0
	forEachExampleBody(t, func(f string, body []byte) {
		res, err := ParseResource(body)
		if err != nil || unionParams()[res.Type] == nil {
			return
		}
		ix := extractWith(body, all, reads, false)
		for union, parts := range unionParams()[res.Type] {
			for _, suffix := range []string{"", ":text"} {
				got := values(ix, union+suffix)
				var want []string
				for _, p := range parts {
					want = append(want, values(ix, p+suffix)...)
				}
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(slices.Compact(got), slices.Compact(want)) {
					t.Fatalf("%s: %s%s is %q, its parts %v give %q", f, union, suffix, got, parts, want)
				}
				checked += len(got)
			}
		}
		if stored := ExtractIndex(body); len(values(stored, "combo-code")) > 0 {
			t.Fatalf("%s: ExtractIndex stores combo-code", f)
		}
	})
	if checked < 100 {
		t.Fatalf("only %d union values checked", checked)
	}
}
