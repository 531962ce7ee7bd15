package api_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/dmp-fhir/dmp-fhir/fhir"
)

// summaryDoc is the part of a $summary document the tests read.
type summaryDoc struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Identifier   struct {
		System string `json:"system"`
		Value  string `json:"value"`
	} `json:"identifier"`
	Timestamp string `json:"timestamp"`
	Entry     []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Search   json.RawMessage `json:"search"`
	} `json:"entry"`
}

type summarySection struct {
	Title string `json:"title"`
	Code  struct {
		Coding []fhir.Coding `json:"coding"`
	} `json:"code"`
	Entry []struct {
		Reference string `json:"reference"`
	} `json:"entry"`
	EmptyReason *struct {
		Coding []fhir.Coding `json:"coding"`
	} `json:"emptyReason"`
	Text struct {
		Div string `json:"div"`
	} `json:"text"`
}

type summaryComposition struct {
	ResourceType string `json:"resourceType"`
	Type         struct {
		Coding []fhir.Coding `json:"coding"`
	} `json:"type"`
	Subject struct {
		Reference string `json:"reference"`
	} `json:"subject"`
	Section []summarySection `json:"section"`
}

// summary reads a $summary answer: the document, its Composition, and the
// section entries of each category as Type/id, in order.
func readSummary(t *testing.T, s *server, r response) (summaryDoc, summaryComposition, map[string][]string) {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("$summary: %d %s", r.status, r.body)
	}
	var doc summaryDoc
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.ResourceType != "Bundle" || doc.Type != "document" || len(doc.Entry) < 2 {
		t.Fatalf("not a document Bundle: %s", r.body)
	}
	var comp summaryComposition
	if err := json.Unmarshal(doc.Entry[0].Resource, &comp); err != nil || comp.ResourceType != "Composition" {
		t.Fatalf("the first entry is not a Composition: %s", doc.Entry[0].Resource)
	}
	sections := map[string][]string{}
	for i, sec := range comp.Section {
		cats := fhir.Categories()
		if i >= len(cats) || len(sec.Code.Coding) != 1 || sec.Code.Coding[0] != cats[i].Section {
			t.Fatalf("section %d: %+v", i, sec.Code)
		}
		refs := []string{}
		for _, e := range sec.Entry {
			refs = append(refs, strings.TrimPrefix(e.Reference, s.url+"/"))
		}
		sections[cats[i].Code] = refs
	}
	return doc, comp, sections
}

// TestSummaryIsADocumentWithOneSectionPerCategoryNewestFirst: a record with
// something of most categories gives a valid FHIR document whose
// Composition has the eight DMP sections in order, each with its entries
// newest first on their care date (undated last), an empty one saying so,
// and what is in no category (an encounter, a vital sign) left out.
func TestSummaryIsADocumentWithOneSectionPerCategoryNewestFirst(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *server) {
		create := func(body string) string {
			t.Helper()
			typ := strings.Split(strings.Split(body, `"resourceType":"`)[1], `"`)[0]
			r := s.do("POST", "/"+typ, []byte(body))
			if r.status != 201 {
				t.Fatalf("create %s: %d %s", typ, r.status, r.body)
			}
			return typ + "/" + r.json(t)["id"].(string)
		}
		pid := strings.TrimPrefix(create(`{"resourceType":"Patient","name":[{"family":"Martin"}]}`), "Patient/")
		subj := `"subject":{"reference":"Patient/` + pid + `"}`
		pat := `"patient":{"reference":"Patient/` + pid + `"}`
		loinc := func(code string) string {
			return `{"coding":[{"system":"http://loinc.org","code":"` + code + `"}]}`
		}
		doc := func(typeSystem, typeCode, class, date string) string {
			return create(`{"resourceType":"DocumentReference","status":"current","type":{"coding":[{"system":"` + typeSystem + `","code":"` + typeCode + `"}]},"category":[{"coding":[{"system":"` + fhir.SystemClasseDocument + `","code":"` + class + `"}]}],` + subj + `,"date":"` + date + `","content":[{"attachment":{"contentType":"application/pdf","data":"JVBERi0="}}]}`)
		}
		medreq := create(`{"resourceType":"MedicationRequest","status":"active","intent":"order","medicationCodeableConcept":{"text":"Amoxicilline 1 g"},` + subj + `,"authoredOn":"2023-05-01"}`)
		reportOld := doc(fhir.SystemLOINC, "34112-3", "10", "2022-01-01T10:00:00Z")
		reportNew := doc(fhir.SystemLOINC, "11488-4", "10", "2024-02-01T10:00:00Z")
		remb := doc(fhir.SystemTypeDocComplementaire, "REMB", "60", "2024-03-01T10:00:00Z")
		// Out of the summary, in $everything: a report replaced by a newer
		// version (superseded), an archived one.
		replaced := doc(fhir.SystemLOINC, "11488-4", "10", "2021-01-01T10:00:00Z")
		replacement := create(`{"resourceType":"DocumentReference","status":"current","relatesTo":[{"code":"replaces","target":{"reference":"` + replaced + `"}}],"type":` + loinc("11488-4") + `,` + subj + `,"date":"2023-01-01T10:00:00Z","content":[{"attachment":{"contentType":"application/pdf","data":"JVBERi0="}}]}`)
		archived := create(`{"resourceType":"DocumentReference","extension":[{"url":"https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-ext-is-archived","valueBoolean":true}],"status":"current","type":` + loinc("11488-4") + `,` + subj + `,"date":"2024-05-01T10:00:00Z","content":[{"attachment":{"contentType":"application/pdf","data":"JVBERi0="}}]}`)
		labReport := create(`{"resourceType":"DiagnosticReport","status":"final","code":` + loinc("24323-8") + `,` + subj + `,"effectiveDateTime":"2023-01-01"}`)
		labObs := create(`{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":` + loinc("2339-0") + `,` + subj + `,"effectiveDateTime":"2023-06-01"}`)
		create(`{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":` + loinc("8867-4") + `,` + subj + `,"effectiveDateTime":"2024-01-01"}`)
		study := create(`{"resourceType":"ImagingStudy","status":"available",` + subj + `,"started":"2021-09-01T09:00:00Z"}`)
		allergy := create(`{"resourceType":"AllergyIntolerance","code":{"text":"Pénicilline"},` + pat + `,"recordedDate":"2020-03-01"}`)
		condOld := create(`{"resourceType":"Condition","code":{"text":"Asthme"},` + subj + `,"onsetDateTime":"2010-06-01"}`)
		condUndated := create(`{"resourceType":"Condition","code":{"text":"Migraine"},` + subj + `}`)
		proc := create(`{"resourceType":"Procedure","status":"completed","code":{"text":"Appendicectomie"},` + subj + `,"performedDateTime":"2015-04-01"}`)
		create(`{"resourceType":"Encounter","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},` + subj + `}`)

		r := s.do("GET", "/Patient/"+pid+"/$summary", nil)
		doc0, comp, sections := readSummary(t, s, r)
		want := map[string][]string{
			"prescriptions":  {medreq},
			"reports":        {reportNew, replacement, reportOld},
			"lab-results":    {labObs, labReport},
			"imaging":        {study},
			"allergies":      {allergy},
			"history":        {proc, condOld, condUndated},
			"vaccinations":   {},
			"reimbursements": {remb},
		}
		if len(comp.Section) != len(fhir.Categories()) {
			t.Fatalf("%d sections, want %d", len(comp.Section), len(fhir.Categories()))
		}
		for cat, refs := range want {
			if strings.Join(sections[cat], " ") != strings.Join(refs, " ") {
				t.Errorf("section %s: %v, want %v", cat, sections[cat], refs)
			}
		}
		if vac := comp.Section[6]; vac.EmptyReason == nil || vac.EmptyReason.Coding[0].Code != "unavailable" || len(vac.Entry) != 0 {
			t.Errorf("empty section: %+v", vac)
		}
		if !strings.Contains(comp.Section[4].Text.Div, "Pénicilline") {
			t.Errorf("the allergies narrative does not name the allergy: %s", comp.Section[4].Text.Div)
		}
		if comp.Type.Coding[0].Code != "60591-5" || comp.Subject.Reference != s.url+"/Patient/"+pid {
			t.Errorf("composition type %v, subject %s", comp.Type.Coding, comp.Subject.Reference)
		}
		// The Patient and every section entry are in the document, once,
		// and nothing else.
		inDoc := map[string]bool{}
		for _, e := range doc0.Entry[1:] {
			ref := strings.TrimPrefix(e.FullURL, s.url+"/")
			if inDoc[ref] || e.Search != nil {
				t.Errorf("entry %s: twice, or with a search element", ref)
			}
			inDoc[ref] = true
		}
		wantInDoc := map[string]bool{"Patient/" + pid: true}
		for _, refs := range want {
			for _, ref := range refs {
				wantInDoc[ref] = true
			}
		}
		if d := diff(inDoc, wantInDoc); d != "" {
			t.Errorf("document entries: %s", d)
		}
		if !strings.HasPrefix(doc0.Identifier.Value, "urn:uuid:") || doc0.Timestamp == "" || !strings.HasPrefix(doc0.Entry[0].FullURL, "urn:uuid:") {
			t.Errorf("document identifier %+v, timestamp %q, composition fullUrl %q", doc0.Identifier, doc0.Timestamp, doc0.Entry[0].FullURL)
		}
		// $everything has them all.
		got, _, _ := everythingPages(t, s, "/Patient/"+pid+"/$everything?_type=DocumentReference", 0)
		if d := diff(got, map[string]bool{reportOld: true, reportNew: true, remb: true, replaced: true, replacement: true, archived: true}); d != "" {
			t.Errorf("$everything documents: %s", d)
		}
		// It is valid FHIR R4.
		if err := validator(t).Validate(r.body); err != nil {
			t.Errorf("the document is not valid FHIR: %v", err)
		}
		// Unknown patient: 404.
		if r := s.do("GET", "/Patient/nobody/$summary", nil); r.status != 404 {
			t.Errorf("$summary of an unknown patient: %d", r.status)
		}
	})
}

// TestSummaryAndEverythingAreAudited: each is one AuditEvent, a read, that
// lists what it returned; a refusal is audited too.
func TestSummaryAndEverythingAreAudited(t *testing.T) {
	s := newConsentServer(t, engines[0])
	rec := s.seedRecord(t)
	doctor := "Bearer " + s.practitioner(psAuthorized, false)
	if r := s.do("GET", "/Patient/"+rec.patient+"/$summary", nil, "Authorization", doctor); r.status != 200 {
		t.Fatalf("$summary: %d %s", r.status, r.body)
	}
	if r := s.do("POST", "/Patient/"+rec.patient+"/$everything", []byte(`{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Observation"}]}`), "Authorization", doctor); r.status != 200 {
		t.Fatalf("$everything: %d %s", r.status, r.body)
	}
	if r := s.do("GET", "/Patient/"+rec.patient+"/$everything", nil, "Authorization", "Bearer "+s.practitioner(psStranger, false)); r.status != 403 {
		t.Fatalf("$everything by a stranger: %d", r.status)
	}
	if err := s.auditor.Materialize(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := s.do("GET", "/AuditEvent?patient="+rec.patient+"&_count=200", nil, "Authorization", "Bearer "+s.patient(rec.patient))
	var b struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	json.Unmarshal(r.body, &b)
	var summaryRead, everythingRead, refused bool
	for _, e := range b.Entry {
		ev := string(e.Resource)
		read := strings.Contains(ev, `"action":"R"`) && strings.Contains(ev, psAuthorized) && strings.Contains(ev, `"outcome":"0"`)
		// The summary lists the reports, the Observation-only $everything the observation only.
		if read && strings.Contains(ev, "DocumentReference/"+rec.plain) && !strings.Contains(ev, "DocumentReference/"+rec.masked) {
			summaryRead = true
		}
		if read && strings.Contains(ev, "Observation/"+rec.obs) && !strings.Contains(ev, "DocumentReference/") {
			everythingRead = true
		}
		if strings.Contains(ev, psStranger) && strings.Contains(ev, `"outcome":"4"`) {
			refused = true
		}
	}
	if !summaryRead || !everythingRead || !refused {
		t.Fatalf("AuditEvents: summary %v, everything %v, refusal %v", summaryRead, everythingRead, refused)
	}
}
