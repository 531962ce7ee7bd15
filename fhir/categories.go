package fhir

import (
	"bytes"
	"encoding/json"
)

// The record as DMP categories: the one mapping, from each category a
// patient sees in the DMP (Mon espace santé) to the FHIR resources that
// hold it, with the codes that tell them apart (../shared/dmp/DOMAIN.md
// §2.5 and §3, and docs/CATEGORIES.md, which a test keeps in step with
// this table). GET /fhir/Patient/{id}/$summary builds one Composition
// section per category from it.

// Code systems of the mapping.
const (
	SystemLOINC = "http://loinc.org"
	// SystemClasseDocument is TRE_A03-ClasseDocument (XDS classCode ->
	// DocumentReference.category): 10 compte rendu, 31 imagerie, 42
	// prescription, 43 dispensation, 60 remboursement, ...
	SystemClasseDocument = "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
	// SystemTypeDocComplementaire is TRE_A05-TypeDocComplementaire: the
	// DMP's own document types where LOINC has none (REMB, IMG-KOS, PRESC-*).
	SystemTypeDocComplementaire = "https://mos.esante.gouv.fr/NOS/TRE_A05-TypeDocComplementaire/FHIR/TRE-A05-TypeDocComplementaire"
	// SystemV2DiagnosticService is HL7 v2 table 0074, DiagnosticReport.category.
	SystemV2DiagnosticService = "http://terminology.hl7.org/CodeSystem/v2-0074"
	// SystemObservationCategory is Observation.category's R4 code system.
	SystemObservationCategory = "http://terminology.hl7.org/CodeSystem/observation-category"
)

// sameSystems lists the other names of a code system (its OID) that a
// resource may carry instead of the canonical URL.
var sameSystems = map[string][]string{
	SystemLOINC:                 {"urn:oid:2.16.840.1.113883.6.1"},
	SystemClasseDocument:        {"urn:oid:1.2.250.1.213.1.1.4.1"},
	SystemTypeDocComplementaire: {"urn:oid:1.2.250.1.213.1.1.4.12"},
	SystemV2DiagnosticService:   {"urn:oid:2.16.840.1.113883.12.74"},
}

// Coding is a code in a code system, with its display.
type Coding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

// Category is one DMP category.
type Category struct {
	// Code is the category's stable key: prescriptions, reports,
	// lab-results, imaging, allergies, history, vaccinations, reimbursements.
	Code string
	// Title is the category as the DMP names it to patients and
	// professionals (French); Display is its English name.
	Title, Display string
	// Section is the LOINC code of the category's section in the
	// $summary Composition: the International Patient Summary's section
	// code where IPS has one, else the DMP's main document type of the
	// category.
	Section Coding
}

// The DMP categories, in the order of the $summary sections.
var categories = []Category{
	{Code: "prescriptions", Title: "Ordonnances et traitements", Display: "Prescriptions and dispensations",
		Section: Coding{SystemLOINC, "10160-0", "History of Medication use Narrative"}},
	{Code: "reports", Title: "Comptes rendus de consultation et d'hospitalisation", Display: "Consultation and hospital reports",
		Section: Coding{SystemLOINC, "11488-4", "Consult note"}},
	{Code: "lab-results", Title: "Résultats de biologie", Display: "Laboratory results",
		Section: Coding{SystemLOINC, "30954-2", "Relevant diagnostic tests/laboratory data Narrative"}},
	{Code: "imaging", Title: "Imagerie médicale", Display: "Imaging",
		Section: Coding{SystemLOINC, "18748-4", "Diagnostic imaging study"}},
	{Code: "allergies", Title: "Allergies et intolérances", Display: "Allergies and intolerances",
		Section: Coding{SystemLOINC, "48765-2", "Allergies and adverse reactions Document"}},
	{Code: "history", Title: "Antécédents médicaux", Display: "Medical history",
		Section: Coding{SystemLOINC, "11348-0", "History of Past illness Narrative"}},
	{Code: "vaccinations", Title: "Vaccinations", Display: "Vaccinations",
		Section: Coding{SystemLOINC, "11369-6", "History of Immunization Narrative"}},
	{Code: "reimbursements", Title: "Remboursements", Display: "Reimbursements",
		Section: Coding{SystemLOINC, "48768-6", "Payment sources Document"}},
}

// CategoryRule puts resources of Type in Category: all of them when Param
// is empty, else those with a Param token (of the index, fhir.ExtractIndex)
// whose system is System and whose code is one of Codes.
type CategoryRule struct {
	Type     string
	Param    string
	System   string
	Codes    []string
	Category string
}

// categoryRules is the mapping, tried in order: the first rule that matches
// decides. A DocumentReference is classified by its type (typeCode) before
// its category (classCode): a lab report (11502-2) is of class 10 like a
// consultation report. A DiagnosticReport is imaging by its code or
// category, lab results otherwise.
var categoryRules = []CategoryRule{
	// DocumentReference.type: the DMP's typeCodes (JDV_J07 / JDV_J66).
	{"DocumentReference", "type", SystemLOINC, []string{"11502-2"}, "lab-results"},
	{"DocumentReference", "type", SystemLOINC, []string{"18748-4", "52040-3"}, "imaging"},
	{"DocumentReference", "type", SystemTypeDocComplementaire, []string{"IMG-KOS"}, "imaging"},
	{"DocumentReference", "type", SystemLOINC, []string{"57833-6", "57832-8", "57828-6", "55115-0", "60593-1"}, "prescriptions"},
	{"DocumentReference", "type", SystemTypeDocComplementaire, []string{"PRESC-BIO", "PRESC-KINE", "PRESC-INF", "PRESC-PEDI", "PRESC-ORTHOPHO", "PRESC-ORTHOPTIE", "PRESC-AAT", "DISP_AUT"}, "prescriptions"},
	{"DocumentReference", "type", SystemLOINC, []string{"11488-4", "34112-3", "11490-0", "15507-7", "34874-8", "77436-4", "78513-9", "60568-3"}, "reports"},
	{"DocumentReference", "type", SystemLOINC, []string{"11369-6", "87273-9", "96874-3"}, "vaccinations"},
	{"DocumentReference", "type", SystemTypeDocComplementaire, []string{"REMB"}, "reimbursements"},
	// DocumentReference.category: the classCode (TRE_A03), for the types above that are not listed.
	{"DocumentReference", "category", SystemClasseDocument, []string{"10"}, "reports"},
	{"DocumentReference", "category", SystemClasseDocument, []string{"31"}, "imaging"},
	{"DocumentReference", "category", SystemClasseDocument, []string{"42", "43"}, "prescriptions"},
	{"DocumentReference", "category", SystemClasseDocument, []string{"60"}, "reimbursements"},
	// DiagnosticReport: imaging by code or department, else lab results.
	{"DiagnosticReport", "code", SystemLOINC, []string{"18748-4"}, "imaging"},
	{"DiagnosticReport", "category", SystemV2DiagnosticService, []string{"RAD", "CT", "CUS", "MR", "NMR", "NMS", "OUS", "RUS", "VUS", "XRC"}, "imaging"},
	{"DiagnosticReport", "category", SystemLOINC, []string{"LP29684-5"}, "imaging"},
	{"DiagnosticReport", "", "", nil, "lab-results"},
	// Observation: lab and imaging results; vital signs, surveys, social
	// history... are in no DMP category.
	{"Observation", "category", SystemObservationCategory, []string{"laboratory"}, "lab-results"},
	{"Observation", "category", SystemObservationCategory, []string{"imaging"}, "imaging"},
	// Whole types.
	{"MedicationRequest", "", "", nil, "prescriptions"},
	{"MedicationDispense", "", "", nil, "prescriptions"},
	{"ImagingStudy", "", "", nil, "imaging"},
	{"AllergyIntolerance", "", "", nil, "allergies"},
	{"Condition", "", "", nil, "history"},
	{"Procedure", "", "", nil, "history"},
	{"Immunization", "", "", nil, "vaccinations"},
	{"ExplanationOfBenefit", "", "", nil, "reimbursements"},
	{"Claim", "", "", nil, "reimbursements"},
}

// Categories returns the DMP categories, in the order of the $summary sections.
func Categories() []Category { return append([]Category(nil), categories...) }

// CategoryRules returns the mapping's rules, in the order they are tried.
func CategoryRules() []CategoryRule { return append([]CategoryRule(nil), categoryRules...) }

// LookupCategory returns the category with that code.
func LookupCategory(code string) (Category, bool) {
	for _, c := range categories {
		if c.Code == code {
			return c, true
		}
	}
	return Category{}, false
}

// CategoryTypes returns the resource types that can belong to a category,
// in the order of the rules.
func CategoryTypes() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range categoryRules {
		if !seen[r.Type] {
			seen[r.Type] = true
			out = append(out, r.Type)
		}
	}
	return out
}

// CategoryOf classifies a resource of type typ, whose index values are ix,
// into its DMP category; false when it belongs to none (an encounter, a
// vital sign, a document of another class such as a certificate).
func CategoryOf(typ string, ix Index) (Category, bool) {
	for _, r := range categoryRules {
		if r.Type != typ || (r.Param != "" && !hasToken(ix, r)) {
			continue
		}
		return LookupCategory(r.Category)
	}
	return Category{}, false
}

// Classify is CategoryOf for a resource body.
func Classify(body []byte) (Category, bool) {
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	if json.NewDecoder(bytes.NewReader(body)).Decode(&head) != nil {
		return Category{}, false
	}
	return CategoryOf(head.ResourceType, ExtractIndex(body))
}

func hasToken(ix Index, r CategoryRule) bool {
	for _, t := range ix.Tokens {
		if t.Param != r.Param || !sameSystem(t.System, r.System) {
			continue
		}
		for _, c := range r.Codes {
			if t.Code == c {
				return true
			}
		}
	}
	return false
}

func sameSystem(got, want string) bool {
	if got == want {
		return true
	}
	for _, alias := range sameSystems[want] {
		if got == alias {
			return true
		}
	}
	return false
}

// careDates names, per type of the patient compartment, the date search
// parameter that places a resource in the time of care: $everything's
// start and end select on it, $summary sorts each section on it, newest
// first. Types without one (Patient, Device, Consent, AuditEvent, ...) are
// not limited by start and end.
var careDates = map[string]string{
	"AllergyIntolerance":   "date",           // recordedDate
	"CarePlan":             "date",           // period
	"Claim":                "created",        //
	"Composition":          "date",           //
	"Condition":            "onset-date",     // onset[x]
	"DiagnosticReport":     "date",           // effective[x]
	"DocumentReference":    "date",           // when the document was made
	"Encounter":            "date",           // period
	"ExplanationOfBenefit": "created",        //
	"Goal":                 "start-date",     // start[x]
	"ImagingStudy":         "started",        //
	"Immunization":         "date",           // occurrence[x]
	"List":                 "date",           //
	"MedicationDispense":   "whenhandedover", //
	"MedicationRequest":    "authoredon",     //
	"MedicationStatement":  "effective",      //
	"Observation":          "date",           // effective[x]
	"Procedure":            "date",           // performed[x]
}

// CareDateParam returns the date search parameter of typ that dates the
// care it records; "" when the type has none.
func CareDateParam(typ string) string { return careDates[typ] }

// CareDate returns the latest instant (Unix milliseconds) of the resource's
// care date, and false when it has none.
func CareDate(typ string, ix Index) (int64, bool) {
	p := careDates[typ]
	if p == "" {
		return 0, false
	}
	var latest int64
	found := false
	for _, d := range ix.Dates {
		if d.Param != p {
			continue
		}
		high := d.High
		if high == MaxDate { // an open period: still going on, date it by its start
			high = d.Low
		}
		if !found || high > latest {
			latest, found = high, true
		}
	}
	return latest, found
}
