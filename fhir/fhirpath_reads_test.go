package fhir

import (
	"encoding/json"
	"reflect"
	"testing"
)

// An event the server writes for a search: its entities' types and roles
// are read by no parameter AuditEvent serves.
const searchAuditEvent = `{"resourceType":"AuditEvent","id":"e1","meta":{"versionId":"1","lastUpdated":"2026-11-26T10:53:40.456Z"},"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest","display":"RESTful Operation"},"subtype":[{"system":"http://hl7.org/fhir/restful-interaction","code":"search-type","display":"search-type"}],"action":"E","period":{"start":"2026-11-26T10:53:40.198Z"},"recorded":"2026-11-26T10:53:40.198Z","outcome":"0","purposeOfEvent":[{"coding":[{"system":"https://mos.esante.gouv.fr/NOS/TRE_R248-ModeAcces/FHIR/TRE-R248-ModeAcces","code":"normal"}]}],"agent":[{"who":{"type":"Practitioner","identifier":{"system":"urn:oid:1.2.250.1.71.4.2.1","value":"810000000042"},"display":"Dr Banc d'Essai"},"altId":"810000000042","requestor":true,"network":{"address":"127.0.0.1","type":"2"}}],"source":{"observer":{"type":"Device","display":"dmp-fhir"}},"entity":[{"what":{"reference":"Patient/p1"},"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"1"},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"1"}},{"what":{"reference":"Observation/o1"},"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"2"},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"4"}},{"what":{"reference":"#c1"}},{"what":{"identifier":{"value":"544713872870c37e60ed3852"}},"type":{"code":"XrequestId"}}],"contained":[{"resourceType":"Patient","id":"c1"}]}`

// Decoding only the members the parameters read gives the index of the
// whole decoding: for every example, for the event above, and for a subset
// of the parameters (the consent decision's).
func TestExtractionReadsWhatItsParametersRead(t *testing.T) {
	plans, reads := allIndexPlans()
	subset := NewIndexSubset(func(typ, param string) bool { return param == "patient" || param == "subject" || param == "_security" })
	check := func(name string, body []byte) {
		if !json.Valid(body) {
			return
		}
		if got, want := ExtractIndex(body), extractWith(body, plans, nil, false); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: read by member %+v\nwhole %+v", name, got, want)
		}
		if got, want := subset.Extract(body), extractWith(body, subset.plans, nil, false); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: subset read by member %+v\nwhole %+v", name, got, want)
		}
	}
	check("the search's AuditEvent", []byte(searchAuditEvent))
	forEachExampleBody(t, func(f string, body []byte) { check(f, body) })

	// the trie leaves some members out: the test compares something
	if ix := ExtractIndex([]byte(searchAuditEvent)); len(ix.References) < 3 {
		t.Fatalf("the event's references: %+v", ix.References)
	}
	tr := reads["AuditEvent"]
	if tr == nil || tr.member("entity") == nil || tr.member("entity").member("role") != nil || tr.member("purposeOfEvent") != nil {
		t.Fatalf("AuditEvent's trie reads entity.role or purposeOfEvent, or not entity: %+v", tr)
	}
	if obs := reads["Observation"]; obs == nil || obs.member("valueQuantity") == nil || obs.member("referenceRange") != nil {
		t.Fatal("Observation's trie misses valueQuantity (a choice of value) or reads referenceRange")
	}
}

func TestFHIRPathReads(t *testing.T) {
	cases := []struct {
		expr string
		want []fpPath
		ok   bool
	}{
		{"AuditEvent.entity.what", []fpPath{{"entity", "what"}}, true},
		{"AuditEvent.agent.who.where(resolve() is Patient) | AuditEvent.entity.what.where(resolve() is Patient)", []fpPath{{"agent", "who"}, {"entity", "what"}}, true},
		{"(Observation.value as Quantity) | (Observation.value as SampledData)", []fpPath{{"value"}, {"value"}}, true},
		{"Patient.extension('http://x').value", []fpPath{{"extension"}}, true},
		{"Resource.meta.tag", []fpPath{{"meta", "tag"}}, true},
		{"Observation", nil, false},
		{"extension('http://x')", nil, false},
		{"Patient.name.where(given = 'x') | Patient.birthDate", []fpPath{{"name"}, {"birthDate"}}, true},
	}
	for _, c := range cases {
		a, err := parseFHIRPath(c.expr)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := fpReads(a)
		if ok != c.ok || ok && !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %v %v, want %v %v", c.expr, got, ok, c.want, c.ok)
		}
	}
}
