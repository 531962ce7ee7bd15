package fhir

import (
	"os"
	"strings"
	"testing"
)

// documentReference is the official DocumentReference example with its type
// and class replaced: DMP documents as the DMP codes them.
func documentReference(tb testing.TB, typeSystem, typeCode, classCode string) []byte {
	tb.Helper()
	body := string(loadExample(tb, "DocumentReference", "DocumentReference-example.json"))
	body = strings.Replace(body, `"system": "http://loinc.org",
        "code": "34108-1"`, `"system": "`+typeSystem+`",
        "code": "`+typeCode+`"`, 1)
	body = strings.Replace(body, `"system": "http://ihe.net/xds/connectathon/classCodes",
          "code": "History and Physical"`, `"system": "`+SystemClasseDocument+`",
          "code": "`+classCode+`"`, 1)
	if !strings.Contains(body, typeCode) || !strings.Contains(body, `"code": "`+classCode+`"`) {
		tb.Fatalf("the DocumentReference example changed: %s", body)
	}
	return []byte(body)
}

func TestClassifyPutsEachExampleInItsDMPCategory(t *testing.T) {
	example := func(typ, file string) func(testing.TB) []byte {
		return func(tb testing.TB) []byte { return loadExample(tb, typ, file) }
	}
	doc := func(system, typeCode, class string) func(testing.TB) []byte {
		return func(tb testing.TB) []byte { return documentReference(tb, system, typeCode, class) }
	}
	tests := []struct {
		name string
		body func(testing.TB) []byte
		want string // "" for none
	}{
		{"a medication prescription", example("MedicationRequest", "MedicationRequest-medrx002.json"), "prescriptions"},
		{"an allergy", example("AllergyIntolerance", "AllergyIntolerance-example.json"), "allergies"},
		{"a known absence of drug allergy", example("AllergyIntolerance", "AllergyIntolerance-nkda.json"), "allergies"},
		{"a condition", example("Condition", "Condition-example.json"), "history"},
		{"a procedure", example("Procedure", "Procedure-appendectomy-narrative.json"), "history"},
		{"an immunization", example("Immunization", "Immunization-example.json"), "vaccinations"},
		{"an explanation of benefit", example("ExplanationOfBenefit", "ExplanationOfBenefit-EB3500.json"), "reimbursements"},
		{"an imaging study", example("ImagingStudy", "ImagingStudy-example-xr.json"), "imaging"},
		{"a radiology report (category RAD)", example("DiagnosticReport", "DiagnosticReport-ultrasound.json"), "imaging"},
		{"a CT report (category RAD)", example("DiagnosticReport", "DiagnosticReport-f201.json"), "imaging"},
		{"a cytology report", example("DiagnosticReport", "DiagnosticReport-pap.json"), "lab-results"},
		{"a lab panel in a Bundle", func(tb testing.TB) []byte { return bundleEntry(tb, "Bundle-lipids.json", "DiagnosticReport") }, "lab-results"},
		{"a lab observation", example("Observation", "Observation-bloodgroup.json"), "lab-results"},
		{"a Synthea lab observation", syntheaEntry("Chet_Thompson_eda17701-070d-4fae-9f7d-c8cd6263b63a.json", "DiagnosticReport"), "lab-results"},
		{"a vital sign is in no category", example("Observation", "Observation-heart-rate.json"), ""},
		{"an encounter is in no category", example("Encounter", "Encounter-example.json"), ""},
		{"a patient is in no category", example("Patient", "Patient-example.json"), ""},
		{"a practitioner is in no category", example("Practitioner", "Practitioner-example.json"), ""},
		{"a document of a type and class outside the DMP's", example("DocumentReference", "DocumentReference-example.json"), ""},
		{"DMP consultation report (11488-4, class 10)", doc(SystemLOINC, "11488-4", "10"), "reports"},
		{"DMP hospital stay report (34112-3)", doc(SystemLOINC, "34112-3", "10"), "reports"},
		{"DMP discharge letter (11490-0)", doc(SystemLOINC, "11490-0", "10"), "reports"},
		{"DMP emergency report (15507-7)", doc(SystemLOINC, "15507-7", "10"), "reports"},
		{"DMP operative report (34874-8)", doc(SystemLOINC, "34874-8", "10"), "reports"},
		{"DMP lab report: its type wins over its class 10", doc(SystemLOINC, "11502-2", "10"), "lab-results"},
		{"DMP lab report coded with LOINC's OID", doc("urn:oid:2.16.840.1.113883.6.1", "11502-2", "10"), "lab-results"},
		{"DMP imaging report (18748-4, class 31)", doc(SystemLOINC, "18748-4", "31"), "imaging"},
		{"DMP imaging KOS (IMG-KOS)", doc(SystemTypeDocComplementaire, "IMG-KOS", "31"), "imaging"},
		{"DMP medication prescription (57833-6, class 42)", doc(SystemLOINC, "57833-6", "42"), "prescriptions"},
		{"DMP nursing prescription (PRESC-INF)", doc(SystemTypeDocComplementaire, "PRESC-INF", "42"), "prescriptions"},
		{"DMP dispensation (60593-1, class 43)", doc(SystemLOINC, "60593-1", "43"), "prescriptions"},
		{"DMP vaccination history (11369-6)", doc(SystemLOINC, "11369-6", "52"), "vaccinations"},
		{"DMP reimbursement data (REMB, class 60)", doc(SystemTypeDocComplementaire, "REMB", "60"), "reimbursements"},
		{"an unlisted type of class 60 by its class", doc(SystemLOINC, "34108-1", "60"), "reimbursements"},
		{"an unlisted type of class 10 by its class", doc(SystemLOINC, "34108-1", "10"), "reports"},
		{"a medical certificate (89601-9, class 52) is in no category", doc(SystemLOINC, "89601-9", "52"), ""},
		{"a LOINC code under another system is not that code", doc("http://example.org/codes", "11502-2", "99"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Classify(tt.body(t))
			if got.Code != tt.want || ok != (tt.want != "") {
				t.Fatalf("category %q (%v), want %q", got.Code, ok, tt.want)
			}
		})
	}
}

// TestCategoryTableIsConsistent: every rule names a category, a supported
// type and one of its token search parameters; every care date is a date
// parameter of its type; every category has a distinct LOINC section.
func TestCategoryTableIsConsistent(t *testing.T) {
	sections := map[string]bool{}
	for _, c := range Categories() {
		if c.Section.System != SystemLOINC || c.Section.Code == "" || sections[c.Section.Code] {
			t.Errorf("category %s: section %+v", c.Code, c.Section)
		}
		sections[c.Section.Code] = true
	}
	if len(Categories()) != 8 {
		t.Errorf("%d categories, want the DMP's 8", len(Categories()))
	}
	used := map[string]bool{}
	for _, r := range CategoryRules() {
		if _, ok := LookupCategory(r.Category); !ok {
			t.Errorf("rule %+v: unknown category", r)
		}
		used[r.Category] = true
		if _, ok := LookupType(r.Type); !ok {
			t.Errorf("rule %+v: unsupported type", r)
		}
		if r.Param != "" {
			if sp, ok := LookupSearchParam(r.Type, r.Param); !ok || sp.Type != "token" {
				t.Errorf("rule %+v: %s is not a token parameter of %s", r, r.Param, r.Type)
			}
			if len(r.Codes) == 0 || r.System == "" {
				t.Errorf("rule %+v: a conditional rule needs a system and codes", r)
			}
		}
	}
	for _, c := range Categories() {
		if !used[c.Code] {
			t.Errorf("category %s has no rule", c.Code)
		}
	}
	for typ, p := range careDates {
		if sp, ok := LookupSearchParam(typ, p); !ok || sp.Type != "date" {
			t.Errorf("care date %s of %s is not a date parameter", p, typ)
		}
		if rt, _ := LookupType(typ); len(rt.PatientCompartment) == 0 {
			t.Errorf("care date for %s, outside the patient compartment", typ)
		}
	}
}

// TestCategoriesDocumentNamesEveryCode keeps docs/CATEGORIES.md in step
// with the table: every category, section code, type and code of a rule is
// written there.
func TestCategoriesDocumentNamesEveryCode(t *testing.T) {
	raw, err := os.ReadFile("../docs/CATEGORIES.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	want := []string{}
	for _, c := range Categories() {
		want = append(want, "`"+c.Code+"`", c.Title, c.Section.Code)
	}
	for _, r := range CategoryRules() {
		want = append(want, r.Type)
		want = append(want, r.Codes...)
	}
	for typ, p := range careDates {
		want = append(want, "| "+typ+" | `"+p+"` |")
	}
	for _, w := range want {
		if !strings.Contains(doc, w) {
			t.Errorf("docs/CATEGORIES.md does not mention %q", w)
		}
	}
}
