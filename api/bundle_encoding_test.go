package api_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/dmp-fhir/dmp-fhir/api"
	"github.com/dmp-fhir/dmp-fhir/fhir"
)

// TestMarshalBundleSaysWhatFhirMarshalSays: the searchset encoding that
// splices the stored resources gives the same JSON as encoding the whole
// Bundle with fhir.Marshal (same values, same member order), for every
// shape of Bundle and entry, escapes and odd bytes included.
func TestMarshalBundleSaysWhatFhirMarshalSays(t *testing.T) {
	str := func(s string) *string { return &s }
	num := func(n int) *int { return &n }
	mode := func(m models.SearchEntryMode) *models.BundleEntrySearch { return &models.BundleEntrySearch{Mode: &m} }
	obs := json.RawMessage(`{"resourceType":"Observation","id":"o1","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Fréquence &amp; \u2028 cardiaque</div>"},"status":"final"}`)
	pat := json.RawMessage(`{"resourceType":"Patient","id":"p1","name":[{"family":"Lefèvre"}]}`)
	links := []models.BundleLink{
		{Relation: "self", Url: "http://h/fhir/Observation?patient=p1&_sort=-date"},
		{Relation: "next", Url: "http://h/fhir/Observation?_cursor=a.b\"c\\d\te\x01f&x=é"},
	}
	cases := []struct {
		name string
		b    models.Bundle
	}{
		{"searchset with matches and an include", models.Bundle{Id: str("b1"), Type: models.BundleTypeSearchset, Timestamp: str("2026-01-01T00:00:00Z"), Total: num(2), Link: links,
			Entry: []models.BundleEntry{
				{FullUrl: str("http://h/fhir/Observation/o1"), Resource: obs, Search: mode(models.SearchEntryModeMatch)},
				{FullUrl: str("http://h/fhir/Patient/p1"), Resource: pat, Search: mode(models.SearchEntryModeInclude)},
				{Resource: fhir.OperationOutcome(fhir.Issue{Severity: "warning", Code: "not-supported", Diagnostics: "x <y>"}), Search: mode(models.SearchEntryModeOutcome)},
			}}},
		{"total 0, no entry", models.Bundle{Type: models.BundleTypeSearchset, Total: num(0), Link: links[:1]}},
		{"no link, no total", models.Bundle{Type: models.BundleTypeSearchset, Entry: []models.BundleEntry{{FullUrl: str("u"), Resource: pat}}}},
		{"entries with other members and none", models.Bundle{Type: models.BundleTypeSearchset, Entry: []models.BundleEntry{
			{FullUrl: str("u"), Resource: pat, Request: &models.BundleEntryRequest{Method: models.HTTPVerbGET, Url: "Patient/p1"}},
			{FullUrl: str("v")},
			{Search: mode(models.SearchEntryModeMatch)},
		}}},
		{"a Bundle with meta", models.Bundle{Meta: &models.Meta{VersionId: str("1")}, Type: models.BundleTypeSearchset, Link: links,
			Entry: []models.BundleEntry{{FullUrl: str("u"), Resource: obs, Search: mode(models.SearchEntryModeMatch)}}}},
		{"invalid UTF-8 in a link", models.Bundle{Type: models.BundleTypeSearchset, Link: []models.BundleLink{{Relation: "self", Url: "http://h\xff/fhir"}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want, err := fhir.Marshal(c.b)
			if err != nil {
				t.Fatal(err)
			}
			got, err := api.MarshalBundle(c.b)
			if err != nil {
				t.Fatal(err)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, got)
			}
			json.Unmarshal(want, &w)
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
			if gk, wk := topKeys(t, got), topKeys(t, want); !reflect.DeepEqual(gk, wk) {
				t.Fatalf("member order %v, want %v", gk, wk)
			}
		})
	}
}

// topKeys lists the members of a JSON object in order.
func topKeys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.Token() // {
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}
