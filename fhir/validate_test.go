package fhir

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/format"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// examplesDir holds the official R4 examples, one folder per type (see
// testdata/SOURCES.md).
const examplesDir = "../testdata/examples"

// structureDefinitionsDir is the team's shared copy of the R4 4.0.1
// StructureDefinitions; tests that need it are skipped when it is absent.
const structureDefinitionsDir = "../../shared/fhir/definitions/structuredefinitions"

var updateRefTargets = flag.Bool("update-reftargets", false, "rewrite reftargets.go from the StructureDefinitions")

var (
	testValidatorOnce sync.Once
	testValidator     *Validator
	testValidatorErr  error
)

func newTestValidator(tb testing.TB) *Validator {
	tb.Helper()
	testValidatorOnce.Do(func() { testValidator, testValidatorErr = NewValidator() })
	if testValidatorErr != nil {
		tb.Fatal(testValidatorErr)
	}
	return testValidator
}

func readExample(tb testing.TB, typ, file string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(examplesDir, typ, file))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// knownBadExamples are the official examples that really are invalid
// (testdata/SOURCES.md), with what the validator must say about them.
//
// SOURCES.md also lists DiagnosticReport-gingival-mass.json, which fails
// fhir.schema.json under JavaScript or Python regular expressions only: its
// resultsInterpreter[0].display holds a no-break space (U+00A0), which their
// Unicode \s matches, so the string pattern ^[ \r\n\t\S]+$ fails. The
// pattern comes from the XML schema, where \s is the four ASCII blanks (as in
// Go): the string is a valid FHIR string, and the example is accepted.
var knownBadExamples = map[string]struct {
	status     int
	expression string
}{
	"MedicationRequest-medrx0301.json": {http.StatusUnprocessableEntity, "MedicationRequest.dispenseRequest.performer"},
	"Observation-clinical-gender.json": {http.StatusUnprocessableEntity, "Observation.performer[0]"},
}

func TestValidateAcceptsEveryOfficialExampleOfTheSupportedTypes(t *testing.T) {
	v := newTestValidator(t)
	types := append(TypeNames(), "Bundle")
	total := 0
	for _, typ := range types {
		files, _ := filepath.Glob(filepath.Join(examplesDir, typ, "*.json"))
		for _, f := range files {
			name := filepath.Base(f)
			if _, bad := knownBadExamples[name]; bad {
				continue
			}
			total++
			t.Run(name, func(t *testing.T) {
				if err := v.Validate(readExample(t, typ, name)); err != nil {
					t.Errorf("%v", err)
				}
			})
		}
	}
	if total < 200 {
		t.Fatalf("only %d examples found under %s", total, examplesDir)
	}
}

func TestValidateRejectsTheKnownBadOfficialExamples(t *testing.T) {
	v := newTestValidator(t)
	for name, want := range knownBadExamples {
		t.Run(name, func(t *testing.T) {
			typ := strings.SplitN(name, "-", 2)[0]
			err := v.Validate(readExample(t, typ, name))
			fe, ok := AsError(err)
			if !ok {
				t.Fatalf("got %v, want a %d at %s", err, want.status, want.expression)
			}
			t.Logf("%v", fe)
			if fe.Status != want.status || len(fe.Issues) != 1 || fe.Issues[0].Expression != want.expression {
				t.Errorf("got %v, want one issue, %d at %s", fe, want.status, want.expression)
			}
		})
	}
}

// patient is a valid resource the invalid cases below start from.
const patient = `{"resourceType": "Patient", "id": "p1", "active": true, "name": [{"family": "Martin", "given": ["Léa"]}], "birthDate": "1980-02-29"}`

func TestValidateRejectsInvalidResources(t *testing.T) {
	v := newTestValidator(t)
	tests := []struct {
		name       string
		body       string
		status     int
		code       string
		expression string
		diag       string // part of the diagnostics
	}{
		{"reference given as a string", `{"resourceType": "AllergyIntolerance", "patient": "Patient/1"}`,
			400, "structure", "AllergyIntolerance.patient", `a Reference must be an object like {"reference": "Patient/1"}`},
		{"reference in an array given as a string", `{"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "performer": [{"reference": "Practitioner/1"}, "Practitioner/2"]}`,
			400, "structure", "Observation.performer[1]", "a Reference must be an object"},
		{"two variants of one choice element", `{"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/1"}, "onsetDateTime": "2020-01-01", "onsetString": "childhood"}`,
			400, "structure", "AllergyIntolerance.onset[x]", "only one of onsetDateTime, onsetString may be present"},
		{"choice variant with only a primitive extension", `{"resourceType": "Patient", "deceasedBoolean": true, "_deceasedDateTime": {"extension": [{"url": "http://example.org", "valueString": "x"}]}}`,
			400, "structure", "Patient.deceased[x]", "only one of deceasedBoolean, deceasedDateTime may be present"},
		{"impossible date", `{"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/1"}, "recordedDate": "2020-13-45"}`,
			400, "value", "AllergyIntolerance.recordedDate", `value must be a valid dateTime (got "2020-13-45")`},
		{"bad dateTime in a choice variant", `{"resourceType": "Condition", "subject": {"reference": "Patient/1"}, "onsetDateTime": "yesterday"}`,
			400, "value", "Condition.onsetDateTime", `value must be a valid dateTime (got "yesterday")`},
		{"bad code deep in an array", `{"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/1"}, "reaction": [{"manifestation": [{"text": "rash"}, {"coding": [{"system": "http://snomed.info/sct", "code": " 123"}]}]}]}`,
			400, "value", "AllergyIntolerance.reaction[0].manifestation[1].coding[0].code", "value must be a valid code"},
		{"unknown element", `{"resourceType": "Patient", "foo": 1}`,
			400, "structure", "Patient.foo", "unknown element 'foo'"},
		{"unknown element in a backbone element", `{"resourceType": "Patient", "contact": [{"nickname": "Jo"}]}`,
			400, "structure", "Patient.contact[0].nickname", "unknown element 'nickname'"},
		{"bad id", `{"resourceType": "Patient", "id": "a b"}`,
			400, "value", "Patient.id", "id must be"},
		{"string for a boolean", `{"resourceType": "Patient", "active": "true"}`,
			400, "value", "Patient.active", `value must be a valid boolean (got "true")`},
		{"decimal for an integer", `{"resourceType": "Patient", "multipleBirthInteger": 1.5}`,
			400, "value", "Patient.multipleBirthInteger", "value must be a valid integer (got 1.5)"},
		{"zero for a positiveInt", `{"resourceType": "Immunization", "status": "completed", "vaccineCode": {"text": "x"}, "patient": {"reference": "Patient/1"}, "occurrenceString": "x", "protocolApplied": [{"doseNumberPositiveInt": 0}]}`,
			400, "value", "Immunization.protocolApplied[0].doseNumberPositiveInt", "value must be a valid positiveInt (got 0)"},
		{"string for a complex type", `{"resourceType": "Patient", "maritalStatus": "married"}`,
			400, "structure", "Patient.maritalStatus", `element must be a JSON object (got "married")`},
		{"object for an array", `{"resourceType": "Patient", "name": {"family": "Martin"}}`,
			400, "structure", "Patient.name", "element must be a JSON array"},
		{"code outside its value set", `{"resourceType": "Patient", "gender": "f"}`,
			400, "value", "Patient.gender", `(got "f")`},
		{"missing required element", `{"resourceType": "AllergyIntolerance"}`,
			400, "required", "AllergyIntolerance.patient", "element 'patient' is required"},
		{"bad element inside a contained resource", `{"resourceType": "MedicationRequest", "status": "active", "intent": "order", "subject": {"reference": "Patient/1"}, "medicationReference": {"reference": "#m1"}, "contained": [{"resourceType": "Medication", "id": "m1", "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1", "foo": true}]}}]}`,
			400, "structure", "MedicationRequest.contained[0].code.coding[0].foo", "unknown element 'foo'"},
		{"bad id of a contained resource", `{"resourceType": "Patient", "contained": [{"resourceType": "Organization", "id": "#o1"}]}`,
			400, "value", "Patient.contained[0].id", "id must be"},
		{"string reference inside a contained resource", `{"resourceType": "Patient", "contained": [{"resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "x"}, "subject": "Patient/1"}]}`,
			400, "structure", "Patient.contained[0].subject", "a Reference must be an object"},
		{"contained resource with contained resources", `{"resourceType": "Patient", "contained": [{"resourceType": "Patient", "id": "p", "contained": [{"resourceType": "Patient", "id": "q"}]}]}`,
			400, "structure", "Patient.contained[0].contained", "a contained resource cannot contain resources"},
		{"unknown type of a contained resource", `{"resourceType": "Patient", "contained": [{"resourceType": "Foo", "id": "x"}]}`,
			400, "structure", "Patient.contained[0]", "unknown resourceType 'Foo'"},
		{"bad element inside a Bundle entry", `{"resourceType": "Bundle", "type": "transaction", "entry": [
			{"resource": ` + patient + `, "request": {"method": "POST", "url": "Patient"}},
			{"resource": ` + patient + `, "request": {"method": "POST", "url": "Patient"}},
			{"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": "Patient/1", "foo": 1}}, "request": {"method": "POST", "url": "Observation"}}]}`,
			400, "structure", "Bundle.entry[2].resource.subject.foo", "unknown element 'foo'"},
		{"string reference inside a Bundle entry", `{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": ` + patient + `}, {"resource": ` + patient + `},
			{"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": "Patient/1"}}]}`,
			400, "structure", "Bundle.entry[2].resource.subject", "a Reference must be an object"},
		{"choice variants inside a Bundle entry of a type we do not store", `{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "FamilyMemberHistory", "status": "completed", "patient": {"reference": "Patient/1"}, "relationship": {"text": "mother"}, "bornDate": "1950", "bornString": "1950"}}]}`,
			400, "structure", "Bundle.entry[0].resource.born[x]", "only one of bornDate, bornString may be present"},
		{"unknown resourceType in a Bundle entry", `{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patiant"}}]}`,
			400, "structure", "Bundle.entry[0].resource", "unknown resourceType 'Patiant'"},
		{"unknown resourceType", `{"resourceType": "Patiant", "id": "1"}`,
			400, "structure", "resourceType", "unsupported resourceType 'Patiant'"},
		{"R4 type the server does not support", `{"resourceType": "Coverage", "id": "1"}`,
			400, "structure", "resourceType", "unsupported resourceType 'Coverage'"},
		{"no resourceType", `{"id": "1"}`,
			400, "structure", "", "no resourceType"},
		{"not an object", `["Patient"]`,
			400, "structure", "", "must be a JSON object"},
		{"malformed JSON", `{"resourceType": "Patient",`,
			400, "structure", "", "malformed JSON"},
		{"trailing data", patient + `{}`,
			400, "structure", "", "malformed JSON"},
		{"reference to a type the element does not allow", `{"resourceType": "AllergyIntolerance", "patient": {"reference": "Practitioner/1"}}`,
			422, "business-rule", "AllergyIntolerance.patient", "a reference to type Practitioner is not allowed here (allowed: Patient)"},
		{"reference to a contained resource of a type the element does not allow", `{"resourceType": "MedicationRequest", "status": "active", "intent": "order", "subject": {"reference": "Patient/1"}, "medicationReference": {"reference": "#o1"}, "contained": [{"resourceType": "Organization", "id": "o1"}]}`,
			422, "business-rule", "MedicationRequest.medicationReference", "a reference to type Organization is not allowed here (allowed: Medication)"},
		{"urn:uuid reference in a Bundle to a type the element does not allow", `{"resourceType": "Bundle", "type": "transaction", "entry": [
			{"fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a", "resource": {"resourceType": "Organization"}, "request": {"method": "POST", "url": "Organization"}},
			{"fullUrl": "urn:uuid:88f151c0-a954-468a-88bd-5ae15c08e059", "resource": {"resourceType": "Condition", "subject": {"reference": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}}, "request": {"method": "POST", "url": "Condition"}}]}`,
			422, "business-rule", "Bundle.entry[1].resource.subject", "a reference to type Organization is not allowed here (allowed: Patient, Group)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Validate([]byte(tc.body))
			fe, ok := AsError(err)
			if !ok {
				t.Fatalf("got %v, want %d at %q", err, tc.status, tc.expression)
			}
			if fe.Status != tc.status {
				t.Errorf("status %d, want %d (%v)", fe.Status, tc.status, fe)
			}
			if len(fe.Issues) != 1 {
				t.Fatalf("%d issues, want 1: %v", len(fe.Issues), fe)
			}
			is := fe.Issues[0]
			if is.Expression != tc.expression || is.Code != tc.code || !strings.Contains(is.Diagnostics, tc.diag) || is.Severity != "error" {
				t.Errorf("got %+v, want %s at %q with %q", is, tc.code, tc.expression, tc.diag)
			}
		})
	}
}

func TestValidateAcceptsValidEdgeCases(t *testing.T) {
	v := newTestValidator(t)
	tests := []struct{ name, body string }{
		{"plain resource", patient},
		{"ordinary elements that look like choice variants", `{"resourceType": "Procedure", "status": "completed", "subject": {"reference": "Patient/1"}, "reasonCode": [{"text": "x"}], "reasonReference": [{"reference": "Condition/1"}], "instantiatesCanonical": ["http://example.org/pd"], "instantiatesUri": ["http://example.org/x"]}`},
		{"one choice variant with its primitive extension", `{"resourceType": "Patient", "deceasedDateTime": "2020-01-01", "_deceasedDateTime": {"id": "d"}}`},
		{"primitive array with an extension-only item", `{"resourceType": "Patient", "name": [{"given": ["Léa", "Marie"], "_given": [null, {"extension": [{"url": "http://example.org", "valueString": "x"}]}]}]}`},
		{"decimal kept exact", `{"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueQuantity": {"value": 0.1000000000000000055511151231257827}}`},
		{"references the server cannot type", `{"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}, "performer": [{"identifier": {"value": "123"}}, {"display": "Dr X"}]}`},
		{"conditional and absolute references", `{"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": "Patient?identifier=http://example.org|1"}, "performer": [{"reference": "https://example.org/fhir/Practitioner/1/_history/2"}]}`},
		{"reference to any resource", `{"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "focus": [{"reference": "Encounter/1"}]}`},
		{"contained resource of a type the server does not store", `{"resourceType": "Patient", "contained": [{"resourceType": "Coverage", "id": "c", "status": "active", "beneficiary": {"reference": "#"}, "payor": [{"display": "X"}]}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := v.Validate([]byte(tc.body)); err != nil {
				t.Errorf("%v", err)
			}
		})
	}
}

func TestValidateReportsSeveralIssuesSortedByLocationCappedAt20(t *testing.T) {
	v := newTestValidator(t)
	var b strings.Builder
	b.WriteString(`{"resourceType": "Patient", "active": "yes", "name": [`)
	for i := 0; i < 30; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"foo": 1}`)
	}
	b.WriteString(`]}`)
	fe, ok := AsError(v.Validate([]byte(b.String())))
	if !ok || fe.Status != 400 || len(fe.Issues) != 20 {
		t.Fatalf("got %v, want 20 issues", fe)
	}
	want := []string{"Patient.active", "Patient.name[0].foo", "Patient.name[1].foo", "Patient.name[2].foo"}
	for i, w := range want {
		if fe.Issues[i].Expression != w {
			t.Errorf("issue %d at %s, want %s", i, fe.Issues[i].Expression, w)
		}
	}
}

func TestValidatorIsSafeForConcurrentUse(t *testing.T) {
	v, err := NewValidator() // fresh: the nested types are compiled while validating
	if err != nil {
		t.Fatal(err)
	}
	bodies := [][]byte{
		readExample(t, "Bundle", "Bundle-xds.json"),
		readExample(t, "Bundle", "Bundle-micro.json"),
		readExample(t, "Patient", "Patient-example.json"),
		[]byte(`{"resourceType": "Patient", "contained": [{"resourceType": "Foo"}]}`),
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				for j, body := range bodies {
					err := v.Validate(body)
					if (err != nil) != (j == 3) {
						t.Errorf("body %d: %v", j, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// The choice groups are derived from the schema; the StructureDefinitions
// list the [x] elements of the supported types: both must agree.
func TestChoiceGroupsMatchTheStructureDefinitions(t *testing.T) {
	sds := readStructureDefinitions(t)
	v := newTestValidator(t)
	want := map[string]bool{}
	for _, sd := range sds {
		for _, e := range sd.Snapshot.Element {
			if strings.HasSuffix(e.Path, "[x]") {
				want[schemaChoiceKey(v.model, e.Path)] = true
			}
		}
	}
	got := map[string]bool{}
	for _, sd := range sds {
		for name, di := range v.model.defs {
			if name != sd.Type && !strings.HasPrefix(name, sd.Type+"_") {
				continue
			}
			for _, g := range di.choices {
				got[name+"."+g.prefix] = true
			}
		}
	}
	for k := range want {
		if !got[k] {
			t.Errorf("choice element %s not found in the schema", k)
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("%s is taken for a choice element but is not one", k)
		}
	}
	if len(want) < 25 {
		t.Errorf("only %d choice elements", len(want))
	}
}

// schemaChoiceKey maps Observation.component.value[x] to Observation_Component.value.
func schemaChoiceKey(m *schemaModel, path string) string {
	parts := strings.Split(strings.TrimSuffix(path, "[x]"), ".")
	def := parts[0]
	for _, p := range parts[1 : len(parts)-1] {
		pi := m.defs[def].props[p]
		if pi == nil {
			return path + " (unresolved)"
		}
		def = pi.typ
	}
	return def + "." + parts[len(parts)-1]
}

type structureDefinition struct {
	Type     string `json:"type"`
	Snapshot struct {
		Element []struct {
			Path string `json:"path"`
			Type []struct {
				Code          string   `json:"code"`
				TargetProfile []string `json:"targetProfile"`
			} `json:"type"`
		} `json:"element"`
	} `json:"snapshot"`
}

// readStructureDefinitions reads the StructureDefinitions of the supported types.
func readStructureDefinitions(t *testing.T) []structureDefinition {
	t.Helper()
	if _, err := os.Stat(structureDefinitionsDir); err != nil {
		t.Skipf("StructureDefinitions not available: %v", err)
	}
	var out []structureDefinition
	for _, typ := range TypeNames() {
		b, err := os.ReadFile(filepath.Join(structureDefinitionsDir, "StructureDefinition-"+typ+".json"))
		if os.IsNotExist(err) {
			t.Logf("no StructureDefinition for %s", typ)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var sd structureDefinition
		if err := json.Unmarshal(b, &sd); err != nil {
			t.Fatal(err)
		}
		out = append(out, sd)
	}
	return out
}

// reftargets.go is generated from the StructureDefinitions' targetProfile:
//
//	go test ./fhir -run TestReferenceTargetsMatchTheStructureDefinitions -update-reftargets
func TestReferenceTargetsMatchTheStructureDefinitions(t *testing.T) {
	sds := readStructureDefinitions(t)
	want := map[string][]string{}
	for _, sd := range sds {
		for _, e := range sd.Snapshot.Element {
			for _, ty := range e.Type {
				if ty.Code != "Reference" {
					continue
				}
				var targets []string
				for _, p := range ty.TargetProfile {
					targets = append(targets, strings.TrimPrefix(p, "http://hl7.org/fhir/StructureDefinition/"))
				}
				if len(targets) > 0 {
					want[e.Path] = targets
				}
			}
		}
	}
	if *updateRefTargets {
		var b bytes.Buffer
		b.WriteString("// Code generated by TestReferenceTargetsMatchTheStructureDefinitions -update-reftargets; DO NOT EDIT.\n\n")
		b.WriteString("package fhir\n\n")
		b.WriteString("// referenceTargets lists, for each Reference element of the supported types\n")
		b.WriteString("// (StructureDefinition element path), the resource types it may point to:\n")
		b.WriteString("// type.targetProfile in the R4 4.0.1 StructureDefinitions (npm\n")
		b.WriteString("// hl7.fhir.r4.examples@4.0.1, CC0-1.0). \"Resource\" means any type.\n")
		var missing []string
		for _, typ := range TypeNames() {
			if _, err := os.Stat(filepath.Join(structureDefinitionsDir, "StructureDefinition-"+typ+".json")); err != nil {
				missing = append(missing, typ)
			}
		}
		if len(missing) > 0 {
			fmt.Fprintf(&b, "// Not covered (no StructureDefinition at hand): %s.\n", strings.Join(missing, ", "))
		}
		b.WriteString("var referenceTargets = map[string][]string{\n")
		paths := make([]string, 0, len(want))
		for p := range want {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		for _, p := range paths {
			fmt.Fprintf(&b, "\t%q: {%s},\n", p, quoteList(want[p]))
		}
		b.WriteString("}\n")
		src, err := format.Source(b.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("reftargets.go", src, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote reftargets.go (%d elements)", len(want))
		return
	}
	if len(want) != len(referenceTargets) {
		t.Errorf("%d elements in reftargets.go, %d in the StructureDefinitions", len(referenceTargets), len(want))
	}
	for p, targets := range want {
		if got := referenceTargets[p]; strings.Join(got, ",") != strings.Join(targets, ",") {
			t.Errorf("%s: %v in reftargets.go, %v in the StructureDefinitions", p, got, targets)
		}
	}
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

func TestNewValidatorIsCheap(t *testing.T) {
	start := time.Now()
	if _, err := NewValidator(); err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	t.Logf("NewValidator took %v", d)
	if d > 5*time.Second { // generous: a loaded CI machine, -race
		t.Errorf("NewValidator took %v", d)
	}
}

func BenchmarkNewValidator(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := NewValidator(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidatePlainResource(b *testing.B) {
	v := newTestValidator(b)
	body := readExample(b, "Patient", "Patient-example.json")
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := v.Validate(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateBundle100 validates a transaction Bundle of 100 entries:
// the official examples of the supported types, in turn.
func BenchmarkValidateBundle100(b *testing.B) {
	v := newTestValidator(b)
	body := bundleOfExamples(b, 100)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := v.Validate(body); err != nil {
			b.Fatal(err)
		}
	}
}

// syntheaBundle is one of the team's shared Synthea transaction Bundles (117
// entries, 419 kB, 59 Observations, Claims, ExplanationOfBenefits...).
const syntheaBundle = "../../shared/fhir/synthea/bundles/Chet_Thompson_eda17701-070d-4fae-9f7d-c8cd6263b63a.json"

func BenchmarkValidateSyntheaBundle117(b *testing.B) {
	body, err := os.ReadFile(syntheaBundle)
	if err != nil {
		b.Skipf("Synthea bundle not available: %v", err)
	}
	v := newTestValidator(b)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := v.Validate(body); err != nil {
			b.Fatal(err)
		}
	}
}

func bundleOfExamples(tb testing.TB, n int) []byte {
	tb.Helper()
	var resources []json.RawMessage
	for _, typ := range TypeNames() {
		files, _ := filepath.Glob(filepath.Join(examplesDir, typ, "*.json"))
		for _, f := range files {
			if _, bad := knownBadExamples[filepath.Base(f)]; bad {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				tb.Fatal(err)
			}
			if len(b) < 20000 { // leave out the few large Binary/DiagnosticReport payloads
				resources = append(resources, b)
			}
		}
	}
	if len(resources) == 0 {
		tb.Fatal("no examples")
	}
	var buf bytes.Buffer
	buf.WriteString(`{"resourceType": "Bundle", "type": "transaction", "entry": [`)
	for i := 0; i < n; i++ {
		if i > 0 {
			buf.WriteByte(',')
		}
		r := resources[i%len(resources)]
		var head struct{ ResourceType string }
		_ = json.Unmarshal(r, &head)
		fmt.Fprintf(&buf, `{"fullUrl": "urn:uuid:00000000-0000-0000-0000-%012d", "resource": %s, "request": {"method": "POST", "url": %q}}`, i, r, head.ResourceType)
	}
	buf.WriteString(`]}`)
	return buf.Bytes()
}
