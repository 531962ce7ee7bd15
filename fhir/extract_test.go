package fhir

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// extractExamplesDir holds the official R4 examples (testdata/SOURCES.md).
const extractExamplesDir = "../testdata/examples"

func loadExample(tb testing.TB, typ, file string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(extractExamplesDir, typ, file))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// bundleEntry returns the resource of the entry of an official example
// Bundle whose resourceType is typ (the first one).
func bundleEntry(tb testing.TB, file, typ string) []byte {
	tb.Helper()
	var b struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(loadExample(tb, "Bundle", file), &b); err != nil {
		tb.Fatal(err)
	}
	for _, e := range b.Entry {
		var r struct {
			ResourceType string `json:"resourceType"`
		}
		if json.Unmarshal(e.Resource, &r) == nil && r.ResourceType == typ {
			return e.Resource
		}
	}
	tb.Fatalf("no %s in %s", typ, file)
	return nil
}

// syntheaEntry returns the first resource of type typ in a Synthea bundle
// of testdata/synthea (testdata/SOURCES.md).
func syntheaEntry(file, typ string) func(testing.TB) []byte {
	return func(tb testing.TB) []byte {
		tb.Helper()
		raw, err := os.ReadFile(filepath.Join("../testdata/synthea/bundles", file))
		if err != nil {
			tb.Fatal(err)
		}
		var b struct {
			Entry []struct {
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(raw, &b); err != nil {
			tb.Fatal(err)
		}
		for _, e := range b.Entry {
			var r struct {
				ResourceType string `json:"resourceType"`
			}
			if json.Unmarshal(e.Resource, &r) == nil && r.ResourceType == typ {
				return e.Resource
			}
		}
		tb.Fatalf("no %s in %s", typ, file)
		return nil
	}
}

// ms formats Unix milliseconds as an RFC 3339 UTC instant.
func ms(v int64) string {
	switch v {
	case MinDate:
		return "MIN"
	case MaxDate:
		return "MAX"
	}
	return time.UnixMilli(v).UTC().Format("2006-01-02T15:04:05.000Z")
}

// values lists, sorted, every value of param in ix, as text:
// token "system|code", string its Norm, reference "Type/ID" and/or
// "url=URL", date "low..high", number "value system|code (unit)", uri the
// value.
func values(ix Index, param string) []string {
	var out []string
	for _, v := range ix.Tokens {
		if v.Param == param {
			out = append(out, v.System+"|"+v.Code)
		}
	}
	for _, v := range ix.Strings {
		if v.Param == param {
			out = append(out, v.Norm)
		}
	}
	for _, v := range ix.References {
		if v.Param == param {
			var parts []string
			if v.Type != "" || v.ID != "" {
				parts = append(parts, v.Type+"/"+v.ID)
			}
			if v.URL != "" {
				parts = append(parts, "url="+v.URL)
			}
			out = append(out, strings.Join(parts, " "))
		}
	}
	for _, v := range ix.Dates {
		if v.Param == param {
			out = append(out, ms(v.Low)+".."+ms(v.High))
		}
	}
	for _, v := range ix.Numbers {
		if v.Param == param {
			out = append(out, fmt.Sprintf("%s %s|%s (%s)", strconv.FormatFloat(v.Value, 'g', -1, 64), v.System, v.Code, v.Unit))
		}
	}
	for _, v := range ix.URIs {
		if v.Param == param {
			out = append(out, v.Value)
		}
	}
	slices.Sort(out)
	return out
}

// day, second and so on build the expected "low..high" of a date value.
func span(lo, hi string) string { return lo + ".." + hi }

type indexCase struct {
	name string
	body func(testing.TB) []byte
	want map[string][]string // param -> exactly its values (nil: none)
}

func checkIndex(t *testing.T, tc indexCase) {
	t.Helper()
	ix := ExtractIndex(tc.body(t))
	for param, want := range tc.want {
		got := values(ix, param)
		w := slices.Clone(want)
		slices.Sort(w)
		if !slices.Equal(got, w) {
			t.Errorf("%s:\n got  %q\n want %q", param, got, w)
		}
	}
}

func example(typ, file string) func(testing.TB) []byte {
	return func(tb testing.TB) []byte { return loadExample(tb, typ, file) }
}

func inline(s string) func(testing.TB) []byte {
	return func(testing.TB) []byte { return []byte(s) }
}

// TestExtractIndexOfficialExamples checks the key parameters of one
// official example of each supported type (inline resources for List and
// MedicationDispense, which have no official example here; Composition and
// MedicationStatement come from the official Bundle-father).
func TestExtractIndexOfficialExamples(t *testing.T) {
	cases := []indexCase{
		{name: "AllergyIntolerance-example", body: example("AllergyIntolerance", "AllergyIntolerance-example.json"), want: map[string][]string{
			"code":            {"http://snomed.info/sct|227493005", "http://www.nlm.nih.gov/research/umls/rxnorm|1160593"},
			"clinical-status": {"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical|active"},
			"criticality":     {"|high"},
			"patient":         {"Patient/example"},
			"recorder":        {"Practitioner/example"},
			// recordedDate 2014-10-09T14:58:00+11:00
			"date":      {span("2014-10-09T03:58:00.000Z", "2014-10-09T03:58:00.999Z")},
			"last-date": {span("2012-06-01T00:00:00.000Z", "2012-06-30T23:59:59.999Z")},
			"onset": {span("2012-06-12T00:00:00.000Z", "2012-06-12T23:59:59.999Z"),
				span("2004-01-01T00:00:00.000Z", "2004-12-31T23:59:59.999Z")},
			"code:text": {"cashew nuts", "cashew nut allergenic extract injectable product"},
		}},
		{name: "AuditEvent-example-disclosure", body: example("AuditEvent", "AuditEvent-example-disclosure.json"), want: map[string][]string{
			"date":    {span("2013-09-22T00:08:00.000Z", "2013-09-22T00:08:00.999Z")},
			"agent":   {"Practitioner/example"}, // the other agent has an identifier only
			"entity":  {"Patient/example"},      // Patient/example and Patient/example/_history/1
			"patient": {"Patient/example"},      // from entity.what; agent.who is a Practitioner
			// Not served for AuditEvent (servedOnly): never indexed.
			"address":    nil,
			"agent-name": nil,
			// Nor the texts of its tokens ("Export", "Disclosure"): no :text.
			"type:text":    nil,
			"subtype:text": nil,
		}},
		{name: "Binary-f006 has no indexed values", body: example("Binary", "Binary-f006.json"), want: map[string][]string{
			"_tag": nil, "_profile": nil, "identifier": nil,
		}},
		{name: "CarePlan in Synthea Dennis_Durgan", body: syntheaEntry("Dennis_Durgan_78f005f3-7b33-4a5b-84d9-28417b36dbab.json", "CarePlan"), want: map[string][]string{
			"category":      {"http://snomed.info/sct|326051000000105"},
			"subject":       {"url=urn:uuid:0ac13d55-d566-450a-aea0-f6a71f1ad73b"},
			"patient":       nil, // a urn:uuid reference without type cannot be told a Patient
			"date":          {span("1949-12-20T12:17:10.000Z", "MAX")},
			"activity-code": {"http://snomed.info/sct|409002", "http://snomed.info/sct|58332002"},
			"status":        {"|active"},
			"intent":        {"|order"},
			"_tag":          {"https://smarthealthit.org/tags|synthea-5-2019"},
		}},
		{name: "Claim in Synthea Chet_Thompson", body: syntheaEntry("Chet_Thompson_eda17701-070d-4fae-9f7d-c8cd6263b63a.json", "Claim"), want: map[string][]string{
			"patient":   {"url=urn:uuid:9e2f7a3b-94df-4b3d-bee2-360881649fa5"},
			"provider":  {"url=urn:uuid:8b58cdd1-3d79-3126-8fe0-da2c54d6805c"},
			"encounter": {"url=urn:uuid:1face0fb-2ef0-47ae-ac8d-74253c2dc655"},
			"created":   {span("1954-11-04T12:12:39.000Z", "1954-11-04T12:12:39.999Z")},
			"use":       {"|claim"},
			"priority":  {"http://terminology.hl7.org/CodeSystem/processpriority|normal"},
			"status":    {"|active"},
		}},
		{name: "Goal in Synthea Dennis_Durgan", body: syntheaEntry("Dennis_Durgan_78f005f3-7b33-4a5b-84d9-28417b36dbab.json", "Goal"), want: map[string][]string{
			"lifecycle-status":   {"|accepted"},
			"achievement-status": {"http://terminology.hl7.org/CodeSystem/goal-achievement|in-progress"},
			"subject":            {"url=urn:uuid:0ac13d55-d566-450a-aea0-f6a71f1ad73b"},
			"patient":            nil,
		}},
		{name: "Composition in Bundle-father", body: func(tb testing.TB) []byte { return bundleEntry(tb, "Bundle-father.json", "Composition") }, want: map[string][]string{
			"subject": {"Patient/d1 url=http://fhir.healthintersections.com.au/open/Patient/d1"},
			"patient": {"Patient/d1 url=http://fhir.healthintersections.com.au/open/Patient/d1"},
			"author":  {"Practitioner/example"},
			"type":    {"http://loinc.org|28655-9"},
			"section": {"http://loinc.org|29299-5", "http://loinc.org|10183-2", "http://loinc.org|48765-2"},
			"entry": {"url=urn:uuid:541a72a8-df75-4484-ac89-ac4923f03b81", "url=urn:uuid:124a6916-5d84-4b8c-b250-10cefb8e6e86",
				"url=urn:uuid:673f8db5-0ffd-4395-9657-6da00420bbc1", "url=urn:uuid:47600e0f-b6b5-4308-84b5-5dec157f7637"},
			"date":   {span("2013-02-01T12:30:02.000Z", "2013-02-01T12:30:02.999Z")},
			"title":  {"discharge summary"},
			"status": {"|final"},
		}},
		{name: "Condition-example", body: example("Condition", "Condition-example.json"), want: map[string][]string{
			"code":       {"http://snomed.info/sct|39065001"},
			"code:text":  {"burn of ear", "burnt ear"},
			"subject":    {"Patient/example"},
			"patient":    {"Patient/example"},
			"onset-date": {span("2012-05-24T00:00:00.000Z", "2012-05-24T23:59:59.999Z")},
		}},
		{name: "Consent-consent-example-basic", body: example("Consent", "Consent-consent-example-basic.json"), want: map[string][]string{
			"patient":      {"Patient/f001"},
			"organization": {"Organization/f001"},
			"date":         {span("2016-05-11T00:00:00.000Z", "2016-05-11T23:59:59.999Z")},
			"period":       {span("1964-01-01T00:00:00.000Z", "2016-01-01T23:59:59.999Z")},
			"status":       {"|active"},
		}},
		{name: "DiagnosticReport-102", body: example("DiagnosticReport", "DiagnosticReport-102.json"), want: map[string][]string{
			"code":    {"http://loinc.org|38269-7"},
			"date":    {span("2008-06-17T00:00:00.000Z", "2008-06-17T23:59:59.999Z")},
			"issued":  {span("2008-06-17T23:23:00.000Z", "2008-06-17T23:23:00.999Z")},
			"result":  {"Observation/bmd"},
			"patient": {"Patient/pat2"},
			"status":  {"|final"},
		}},
		{name: "DocumentReference-example", body: example("DocumentReference", "DocumentReference-example.json"), want: map[string][]string{
			"identifier": {"urn:ietf:rfc:3986|urn:oid:1.3.6.1.4.1.21367.2005.3.7", "urn:ietf:rfc:3986|urn:oid:1.3.6.1.4.1.21367.2005.3.7.1234"},
			"author":     {"Practitioner/xcda1", "url=#a2"},
			"patient":    {"Patient/xcda"},
			"date":       {span("2005-12-23T22:43:41.000Z", "2005-12-23T22:43:41.999Z")},
			// context.period 2004-12-23T08:00:00+11:00 .. 08:01:00+11:00
			"period":      {span("2004-12-22T21:00:00.000Z", "2004-12-22T21:01:00.999Z")},
			"type":        {"http://loinc.org|34108-1"},
			"contenttype": {"|application/hl7-v3+xml"},
			"location":    {"http://example.org/xds/mhd/Binary/07a6483f-732b-461e-86b6-edb665c45510"},
			"description": {"physical"},
		}},
		{name: "Encounter-f001", body: example("Encounter", "Encounter-f001.json"), want: map[string][]string{
			"class":        {"http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB"},
			"subject":      {"Patient/f001"},
			"patient":      {"Patient/f001"},
			"participant":  {"Practitioner/f002"},
			"practitioner": {"Practitioner/f002"},
			"status":       {"|finished"},
		}},
		{name: "ExplanationOfBenefit-EB3500", body: example("ExplanationOfBenefit", "ExplanationOfBenefit-EB3500.json"), want: map[string][]string{
			"identifier": {"http://www.BenefitsInc.com/fhir/explanationofbenefit|987654321"},
			"created":    {span("2014-08-16T00:00:00.000Z", "2014-08-16T23:59:59.999Z")},
			"patient":    {"Patient/pat1"},
			"provider":   {"Practitioner/1"},
			"coverage":   {"Coverage/9876B1"},
			"encounter":  {"Encounter/example"},
			"item-udi":   {"Device/example"},
		}},
		{name: "ImagingStudy-example", body: example("ImagingStudy", "ImagingStudy-example.json"), want: map[string][]string{
			"started":     {span("2011-01-01T08:01:20.000Z", "2011-01-01T08:01:20.999Z")},
			"subject":     {"Patient/dicom"},
			"patient":     {"Patient/dicom"},
			"modality":    {"http://dicom.nema.org/resources/ontology/DCM|CT"},
			"series":      {"|2.16.124.113543.6003.2588828330.45298.17418.2723805630"},
			"instance":    {"|2.16.124.113543.6003.189642796.63084.16748.2599092903"},
			"dicom-class": {"urn:ietf:rfc:3986|urn:oid:1.2.840.10008.5.1.4.1.1.2"},
			"bodysite":    {"http://snomed.info/sct|67734004"},
		}},
		{name: "Immunization-example", body: example("Immunization", "Immunization-example.json"), want: map[string][]string{
			"vaccine-code":      {"urn:oid:1.2.36.1.2001.1005.17|FLUVAX"},
			"vaccine-code:text": {"fluvax (influenza)"},
			"date":              {span("2013-01-10T00:00:00.000Z", "2013-01-10T23:59:59.999Z")},
			"patient":           {"Patient/example"},
			"performer":         {"Practitioner/example"},
			"lot-number":        {"aajn11k"},
		}},
		{name: "List (inline)", body: inline(`{"resourceType":"List","status":"current","mode":"working","title":"Liste des allergies",
			"code":{"coding":[{"system":"http://loinc.org","code":"52472-8"}]},"subject":{"reference":"Patient/example"},
			"source":{"reference":"Practitioner/example"},"date":"2012-11-26T07:30:23+11:00",
			"entry":[{"item":{"reference":"AllergyIntolerance/example"}},{"item":{"reference":"#c1"}}],
			"note":[{"text":"Vérifié avec la patiente"}]}`), want: map[string][]string{
			"code":    {"http://loinc.org|52472-8"},
			"subject": {"Patient/example"},
			"patient": {"Patient/example"},
			"source":  {"Practitioner/example"},
			"item":    {"AllergyIntolerance/example", "url=#c1"},
			"date":    {span("2012-11-25T20:30:23.000Z", "2012-11-25T20:30:23.999Z")},
			"title":   {"liste des allergies"},
			"notes":   {"verifie avec la patiente"},
			"status":  {"|current"},
		}},
		{name: "Medication-med0301", body: example("Medication", "Medication-med0301.json"), want: map[string][]string{
			"code":            {"http://hl7.org/fhir/sid/ndc|0069-2587-10"},
			"form":            {"http://snomed.info/sct|385219001"},
			"lot-number":      {"|9494788"},
			"expiration-date": {span("2017-05-22T00:00:00.000Z", "2017-05-22T23:59:59.999Z")},
			"manufacturer":    {"url=#org4"},
			"ingredient-code": {"http://www.nlm.nih.gov/research/umls/rxnorm|66955"},
			"ingredient":      nil,
		}},
		{name: "Device (inline)", body: inline(`{"resourceType":"Device","status":"active","patient":{"reference":"Patient/pat1"},
			"deviceName":[{"name":"Lecteur de glycémie","type":"user-friendly-name"}],"udiCarrier":[{"deviceIdentifier":"96702913868313"}]}`), want: map[string][]string{
			"patient":     {"Patient/pat1"},
			"device-name": {"lecteur de glycemie"},
			"status":      {"|active"},
		}},
		{name: "Location (inline)", body: inline(`{"resourceType":"Location","status":"active","name":"Hôpital Européen",
			"address":{"city":"Marseille","postalCode":"13003"},"identifier":[{"system":"https://finess.esante.gouv.fr","value":"130043664"}]}`), want: map[string][]string{
			"name":               {"hopital europeen"},
			"address-city":       {"marseille"},
			"address-postalcode": {"13003"},
			"identifier":         {"https://finess.esante.gouv.fr|130043664"},
		}},
		{name: "MedicationDispense (inline)", body: inline(`{"resourceType":"MedicationDispense","status":"completed",
			"medicationReference":{"reference":"Medication/med0306"},"subject":{"reference":"Patient/pat1"},
			"performer":[{"actor":{"reference":"Practitioner/f006"}}],"authorizingPrescription":[{"reference":"MedicationRequest/medrx0312"}],
			"whenPrepared":"2015-06-25T07:13:00+05:00","whenHandedOver":"2015-06-26","receiver":[{"reference":"Patient/pat1"}]}`), want: map[string][]string{
			"medication":     {"Medication/med0306"},
			"code":           nil,
			"subject":        {"Patient/pat1"},
			"patient":        {"Patient/pat1"},
			"performer":      {"Practitioner/f006"},
			"prescription":   {"MedicationRequest/medrx0312"},
			"whenprepared":   {span("2015-06-25T02:13:00.000Z", "2015-06-25T02:13:00.999Z")},
			"whenhandedover": {span("2015-06-26T00:00:00.000Z", "2015-06-26T23:59:59.999Z")},
			"status":         {"|completed"},
		}},
		{name: "MedicationRequest-medrx0323", body: example("MedicationRequest", "MedicationRequest-medrx0323.json"), want: map[string][]string{
			"medication": {"url=#med0318"},
			"code":       nil,
			// dosageInstruction.timing.event 2015-01-15T22:00:00+11:00
			"date":       {span("2015-01-15T11:00:00.000Z", "2015-01-15T11:00:00.999Z")},
			"subject":    {"Patient/pat1"},
			"patient":    {"Patient/pat1"},
			"intent":     {"|order"},
			"status":     {"|completed"},
			"authoredon": {span("2015-01-15T00:00:00.000Z", "2015-01-15T23:59:59.999Z")},
		}},
		{name: "MedicationStatement in Bundle-father", body: func(tb testing.TB) []byte { return bundleEntry(tb, "Bundle-father.json", "MedicationStatement") }, want: map[string][]string{
			"code":      nil, // text only
			"code:text": {"ventolin inhaler"},
			"subject":   {"Patient/d1 url=http://fhir.healthintersections.com.au/open/Patient/d1"},
			"status":    {"|active"},
		}},
		{name: "Observation-blood-pressure", body: example("Observation", "Observation-blood-pressure.json"), want: map[string][]string{
			"code": {"http://loinc.org|85354-9"},
			"component-code": {"http://loinc.org|8480-6", "http://snomed.info/sct|271649006",
				"http://acme.org/devices/clinical-codes|bp-s", "http://loinc.org|8462-4"},
			"combo-code":               nil, // code | component-code, not stored twice (unions.go)
			"component-value-quantity": {"107 http://unitsofmeasure.org|mm[Hg] (mmHg)", "60 http://unitsofmeasure.org|mm[Hg] (mmHg)"},
			"value-quantity":           nil,
			"subject":                  {"Patient/example"},
			"patient":                  {"Patient/example"},
			"performer":                {"Practitioner/example"},
			"date":                     {span("2012-09-17T00:00:00.000Z", "2012-09-17T23:59:59.999Z")},
			"identifier":               {"urn:ietf:rfc:3986|urn:uuid:187e0c12-8dd2-67e2-99b2-bf273c878281"},
			"_profile":                 {"http://hl7.org/fhir/StructureDefinition/vitalsigns"},
		}},
		{name: "Observation-body-height", body: example("Observation", "Observation-body-height.json"), want: map[string][]string{
			"code":           {"http://loinc.org|8302-2"},
			"value-quantity": {"66.89999999999999 http://unitsofmeasure.org|[in_i] (in)"},
			"category":       {"http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"},
		}},
		{name: "Organization-f001", body: example("Organization", "Organization-f001.json"), want: map[string][]string{
			"name":               {"burgers university medical center"},
			"identifier":         {"urn:oid:2.16.528.1|91654", "urn:oid:2.16.840.1.113883.2.4.6.1|17-0112278"},
			"address-city":       {"den burg"},
			"address-postalcode": {"9105 pz", "9100 aa"},
			"address":            {"galapagosweg 91", "po box 2311", "den burg", "9105 pz", "9100 aa", "nld"},
			"type":               {"urn:oid:2.16.840.1.113883.2.4.15.1060|V6", "http://terminology.hl7.org/CodeSystem/organization-type|prov"},
		}},
		{name: "Patient-example", body: example("Patient", "Patient-example.json"), want: map[string][]string{
			"family":       {"chalmers", "windsor"},
			"given":        {"peter", "james", "jim"},
			"name":         {"chalmers", "windsor", "peter", "james", "jim"},
			"birthdate":    {span("1974-12-25T00:00:00.000Z", "1974-12-25T23:59:59.999Z")},
			"gender":       {"|male"},
			"deceased":     {"|false"},
			"death-date":   nil,
			"phone":        {"|(03) 5555 6473", "|(03) 3410 5613", "|(03) 5555 8834"},
			"email":        nil,
			"address-city": {"pleasantville"},
			"address": {"534 erewhon st", "pleasantville", "rainbow", "vic", "3999",
				"534 erewhon st peasantville, rainbow, vic 3999"},
			"organization": {"Organization/1"},
			"identifier":   {"urn:oid:1.2.36.146.595.217.0.1|12345"},
			"active":       {"|true"},
		}},
		{name: "Practitioner-f001", body: example("Practitioner", "Practitioner-f001.json"), want: map[string][]string{
			"family":     {"van den broek"},
			"name":       {"van den broek", "eric", "md"},
			"email":      {"|E.M.vandenbroek@bmc.nl"},
			"phone":      {"|0205568263"},
			"telecom":    {"|0205568263", "|E.M.vandenbroek@bmc.nl", "|0205664440"},
			"identifier": {"urn:oid:2.16.528.1.1007.3.1|938273695", "urn:oid:2.16.840.1.113883.2.4.6.3|129IDH4OP733"},
		}},
		{name: "PractitionerRole-example", body: example("PractitionerRole", "PractitionerRole-example.json"), want: map[string][]string{
			"practitioner": {"Practitioner/example"},
			"organization": {"Organization/f001"},
			"role":         {"http://terminology.hl7.org/CodeSystem/v2-0286|RP"},
			"specialty":    {"http://snomed.info/sct|408443003"},
			"email":        {"|adam.southern@example.org"},
			"date":         {span("2012-01-01T00:00:00.000Z", "2012-03-31T23:59:59.999Z")},
			"location":     {"Location/1"},
			"active":       {"|true"},
		}},
		{name: "Procedure-example", body: example("Procedure", "Procedure-example.json"), want: map[string][]string{
			"code":             {"http://snomed.info/sct|80146002"},
			"date":             {span("2013-04-05T00:00:00.000Z", "2013-04-05T23:59:59.999Z")},
			"subject":          {"Patient/example"},
			"patient":          {"Patient/example"},
			"performer":        {"Practitioner/example"},
			"reason-code":      nil,
			"reason-code:text": {"generalized abdominal pain 24 hours. localized in rif with rebound and guarding"},
		}},
	}
	covered := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body(t)
			var r struct {
				ResourceType string `json:"resourceType"`
			}
			json.Unmarshal(body, &r)
			covered[r.ResourceType] = true
			checkIndex(t, tc)
		})
	}
	for _, typ := range TypeNames() {
		if !covered[typ] {
			t.Errorf("no example of %s", typ)
		}
	}
}

func TestExtractIndexDatePrecision(t *testing.T) {
	tests := []struct {
		in, want string // want "" for not a date
	}{
		{"2024", span("2024-01-01T00:00:00.000Z", "2024-12-31T23:59:59.999Z")},
		{"2024-02", span("2024-02-01T00:00:00.000Z", "2024-02-29T23:59:59.999Z")},
		{"2023-02", span("2023-02-01T00:00:00.000Z", "2023-02-28T23:59:59.999Z")},
		{"2024-02-29", span("2024-02-29T00:00:00.000Z", "2024-02-29T23:59:59.999Z")},
		{"2024-02-29T10:20:30Z", span("2024-02-29T10:20:30.000Z", "2024-02-29T10:20:30.999Z")},
		{"2024-02-29T10:20:30+02:00", span("2024-02-29T08:20:30.000Z", "2024-02-29T08:20:30.999Z")},
		{"2024-03-01T01:00:00+05:30", span("2024-02-29T19:30:00.000Z", "2024-02-29T19:30:00.999Z")},
		{"2024-02-29T23:20:30-05:00", span("2024-03-01T04:20:30.000Z", "2024-03-01T04:20:30.999Z")},
		{"2024-02-29T10:20:30", span("2024-02-29T10:20:30.000Z", "2024-02-29T10:20:30.999Z")}, // no zone: UTC
		{"2024-02-29T10:20:30.5Z", span("2024-02-29T10:20:30.500Z", "2024-02-29T10:20:30.500Z")},
		{"2024-02-29T10:20:30.123456+01:00", span("2024-02-29T09:20:30.123Z", "2024-02-29T09:20:30.123Z")},
		{"2024-02-29T10:20Z", span("2024-02-29T10:20:00.000Z", "2024-02-29T10:20:59.999Z")},
		{"0001", span("MIN", "0001-12-31T23:59:59.999Z")},
		{"9999-12-31T23:59:59.999Z", span("MAX", "MAX")},
		{"9999-12-31T23:59:59-01:00", ""}, // after MaxDate
		{"2023-02-29", ""},
		{"2024-13", ""},
		{"2024-1-01", ""},
		{"24", ""},
		{"2024-02-29T25:00:00Z", ""},
		{"2024-02-29T10:20:30+2:00", ""},
		{"2024-02-29T10:20:30.Z", ""},
		{"not a date", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			body := `{"resourceType":"Patient","birthDate":` + strconv.Quote(tt.in) + `}`
			got := values(ExtractIndex([]byte(body)), "birthdate")
			var want []string
			if tt.want != "" {
				want = []string{tt.want}
			}
			if !slices.Equal(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func TestExtractIndexPeriodsAndTiming(t *testing.T) {
	checkIndex(t, indexCase{body: inline(`{"resourceType":"Encounter","status":"finished",
		"period":{"start":"2024-02-10"},
		"location":[{"location":{"reference":"Location/1"},"period":{"end":"2024-03"}},
		            {"location":{"reference":"Location/2"},"period":{"start":"2024-03-01T10:00:00Z","end":"2024-03-01T12:00:00Z"}},
		            {"location":{"reference":"Location/3"},"period":{}}]}`),
		want: map[string][]string{
			"date": {span("2024-02-10T00:00:00.000Z", "MAX")},
			"location-period": {span("MIN", "2024-03-31T23:59:59.999Z"),
				span("2024-03-01T10:00:00.000Z", "2024-03-01T12:00:00.999Z")},
		}})
	checkIndex(t, indexCase{body: inline(`{"resourceType":"MedicationRequest","status":"active","intent":"order",
		"subject":{"reference":"Patient/1"},"medicationCodeableConcept":{"text":"x"},
		"dosageInstruction":[{"timing":{"event":["2024-01-01T08:00:00Z","2024-01-02"]}},{"timing":{"repeat":{"frequency":1}}}]}`),
		want: map[string][]string{
			"date": {span("2024-01-01T08:00:00.000Z", "2024-01-01T08:00:00.999Z"), span("2024-01-02T00:00:00.000Z", "2024-01-02T23:59:59.999Z")},
		}})
}

func TestExtractIndexStringFolding(t *testing.T) {
	body := `{"resourceType":"Patient","name":[{"family":"ÉLODIE  Durand ","given":["Hélène","  ","Zoë\tAnne"],"prefix":["Mme"],"text":"Œuvre Straße"}]}`
	ix := ExtractIndex([]byte(body))
	want := map[string]string{ // Norm -> Exact
		"elodie durand":  "ÉLODIE  Durand ",
		"helene":         "Hélène",
		"zoe anne":       "Zoë\tAnne",
		"mme":            "Mme",
		"oeuvre strasse": "Œuvre Straße",
	}
	got := map[string]string{}
	for _, s := range ix.Strings {
		if s.Param == "name" {
			got[s.Norm] = s.Exact
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("name strings:\n got  %q\n want %q", got, want)
	}
	if g := values(ix, "family"); !slices.Equal(g, []string{"elodie durand"}) {
		t.Errorf("family = %q", g)
	}
	if g := values(ix, "given"); !slices.Equal(g, []string{"helene", "zoe anne"}) {
		t.Errorf("given = %q (a blank given is not indexed)", g)
	}
}

func TestExtractIndexReferenceForms(t *testing.T) {
	refs := []struct {
		ref, want string
	}{
		{"Patient/123", "Patient/123"},
		{"Patient/123/_history/4", "Patient/123"},
		{"https://dmp.example.org/fhir/Patient/123", "Patient/123 url=https://dmp.example.org/fhir/Patient/123"},
		{"https://dmp.example.org/fhir/Patient/123/_history/2", "Patient/123 url=https://dmp.example.org/fhir/Patient/123/_history/2"},
		{"https://dmp.example.org/fhir/Nonsense/123", "url=https://dmp.example.org/fhir/Nonsense/123"},
		{"urn:uuid:541a72a8-df75-4484-ac89-ac4923f03b81", "url=urn:uuid:541a72a8-df75-4484-ac89-ac4923f03b81"},
		{"urn:oid:1.2.3", "url=urn:oid:1.2.3"},
		{"#p1", "url=#p1"},
		{"Patient?identifier=urn:oid:1.2|42", "url=Patient?identifier=urn:oid:1.2|42"},
		{"Patient/not an id", "url=Patient/not an id"},
		{"Unknown/123", "url=Unknown/123"},
	}
	for _, tt := range refs {
		t.Run(tt.ref, func(t *testing.T) {
			body := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"performer":[{"reference":` + strconv.Quote(tt.ref) + `}]}`
			if got := values(ExtractIndex([]byte(body)), "performer"); !slices.Equal(got, []string{tt.want}) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("identifier-only reference is not a reference value", func(t *testing.T) {
		body := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"performer":[{"identifier":{"system":"s","value":"v"},"display":"d"}]}`
		if got := values(ExtractIndex([]byte(body)), "performer"); got != nil {
			t.Errorf("got %q", got)
		}
	})
	t.Run("canonical reference parameter keeps the URL only", func(t *testing.T) {
		body := `{"resourceType":"Procedure","status":"completed","subject":{"reference":"Patient/1"},"instantiatesCanonical":["http://example.org/fhir/PlanDefinition/KDN5"],"instantiatesUri":["http://example.org/protocol"]}`
		ix := ExtractIndex([]byte(body))
		if got := values(ix, "instantiates-canonical"); !slices.Equal(got, []string{"url=http://example.org/fhir/PlanDefinition/KDN5"}) {
			t.Errorf("instantiates-canonical = %q", got)
		}
		if got := values(ix, "instantiates-uri"); !slices.Equal(got, []string{"http://example.org/protocol"}) {
			t.Errorf("instantiates-uri = %q", got)
		}
	})
}

func TestExtractIndexResolveIsPatient(t *testing.T) {
	tests := []struct {
		name    string
		subject string
		patient []string
	}{
		{"relative Patient", `{"reference":"Patient/p1"}`, []string{"Patient/p1"}},
		{"Group is not a patient", `{"reference":"Group/g1"}`, nil},
		{"absolute URL of a Patient", `{"reference":"http://x.org/fhir/Patient/p1"}`, []string{"Patient/p1 url=http://x.org/fhir/Patient/p1"}},
		{"absolute URL of a Group", `{"reference":"http://x.org/fhir/Group/p1"}`, nil},
		{"urn:uuid with type Patient", `{"reference":"urn:uuid:1","type":"Patient"}`, []string{"url=urn:uuid:1"}},
		{"urn:uuid without type", `{"reference":"urn:uuid:1"}`, nil},
		{"contained Patient", `{"reference":"#c1"}`, []string{"url=#c1"}},
		{"contained Group", `{"reference":"#c2"}`, nil},
		{"conditional reference to Patient", `{"reference":"Patient?identifier=a|b"}`, []string{"url=Patient?identifier=a|b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"resourceType":"Observation","status":"final","code":{"text":"x"},
				"contained":[{"resourceType":"Patient","id":"c1"},{"resourceType":"Group","id":"c2","type":"person","actual":true}],
				"subject":` + tt.subject + `}`
			ix := ExtractIndex([]byte(body))
			if got := values(ix, "patient"); !slices.Equal(got, tt.patient) {
				t.Errorf("patient = %q, want %q", got, tt.patient)
			}
			if got := values(ix, "subject"); len(got) != 1 {
				t.Errorf("subject = %q, want the one reference", got)
			}
		})
	}
}

func TestExtractIndexChoiceTypes(t *testing.T) {
	tests := []struct {
		name string
		body string
		want map[string][]string
	}{
		{"valueQuantity is value-quantity, not value-concept", `{"resourceType":"Observation","status":"final","code":{"text":"x"},
			"valueQuantity":{"value":185,"unit":"lbs","system":"http://unitsofmeasure.org","code":"[lb_av]"}}`,
			map[string][]string{"value-quantity": {"185 http://unitsofmeasure.org|[lb_av] (lbs)"}, "value-concept": nil, "value-string": nil, "value-date": nil}},
		{"valueCodeableConcept is value-concept and its text value-string", `{"resourceType":"Observation","status":"final","code":{"text":"x"},
			"valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"260385009"}],"text":"Négatif"}}`,
			map[string][]string{"value-concept": {"http://snomed.info/sct|260385009"}, "value-string": {"negatif"}, "value-quantity": nil}},
		{"valueString", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"Trace"}`,
			map[string][]string{"value-string": {"trace"}, "value-concept": nil}},
		{"valuePeriod is value-date", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valuePeriod":{"start":"2024","end":"2025"}}`,
			map[string][]string{"value-date": {span("2024-01-01T00:00:00.000Z", "2025-12-31T23:59:59.999Z")}}},
		{"effectivePeriod is date", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectivePeriod":{"start":"2024-05-01T10:00:00Z"}}`,
			map[string][]string{"date": {span("2024-05-01T10:00:00.000Z", "MAX")}}},
		{"effectiveInstant is date", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveInstant":"2024-05-01T10:00:00.250Z"}`,
			map[string][]string{"date": {span("2024-05-01T10:00:00.250Z", "2024-05-01T10:00:00.250Z")}}},
		{"component valueQuantity", `{"resourceType":"Observation","status":"final","code":{"text":"x"},
			"component":[{"code":{"text":"a"},"valueQuantity":{"value":1.5,"code":"mg"}},{"code":{"text":"b"},"valueString":"s"}]}`,
			map[string][]string{"component-value-quantity": {"1.5 |mg ()"}, "combo-value-quantity": nil, "value-quantity": nil}},
		{"onset.as(dateTime) is onset-date; onset.as(string) onset-info", `{"resourceType":"Condition","subject":{"reference":"Patient/1"},"onsetDateTime":"2020-03"}`,
			map[string][]string{"onset-date": {span("2020-03-01T00:00:00.000Z", "2020-03-31T23:59:59.999Z")}, "onset-info": nil, "onset-age": nil}},
		{"onsetAge is onset-age, not onset-date", `{"resourceType":"Condition","subject":{"reference":"Patient/1"},"onsetAge":{"value":52,"unit":"years","system":"http://unitsofmeasure.org","code":"a"}}`,
			map[string][]string{"onset-age": {"52 http://unitsofmeasure.org|a (years)"}, "onset-date": nil}},
		{"onsetString is onset-info", `{"resourceType":"Condition","subject":{"reference":"Patient/1"},"onsetString":"Dans l'enfance"}`,
			map[string][]string{"onset-info": {"dans l'enfance"}, "onset-date": nil}},
		{"performedString is not a date", `{"resourceType":"Procedure","status":"completed","subject":{"reference":"Patient/1"},"performedString":"hier"}`,
			map[string][]string{"date": nil}},
		{"medicationCodeableConcept is code, medicationReference medication", `{"resourceType":"MedicationStatement","status":"active","subject":{"reference":"Patient/1"},
			"medicationCodeableConcept":{"coding":[{"system":"http://www.whocc.no/atc","code":"N02BE01"}]}}`,
			map[string][]string{"code": {"http://www.whocc.no/atc|N02BE01"}, "medication": nil}},
		{"deceasedDateTime is death-date and deceased true", `{"resourceType":"Patient","deceasedDateTime":"2015-02-14T13:42:00+10:00"}`,
			map[string][]string{"death-date": {span("2015-02-14T03:42:00.000Z", "2015-02-14T03:42:00.999Z")}, "deceased": {"|true"}}},
		{"deceasedBoolean true", `{"resourceType":"Patient","deceasedBoolean":true}`,
			map[string][]string{"death-date": nil, "deceased": {"|true"}}},
		{"no deceased element is deceased false", `{"resourceType":"Patient"}`,
			map[string][]string{"deceased": {"|false"}}},
		{"Composition relatesTo target as Identifier or Reference", `{"resourceType":"Composition","status":"final","type":{"text":"t"},"date":"2024","author":[{"reference":"Practitioner/1"}],"title":"t",
			"relatesTo":[{"code":"replaces","targetIdentifier":{"system":"urn:oid:1.2","value":"doc1"}},{"code":"appends","targetReference":{"reference":"Composition/c0"}}]}`,
			map[string][]string{"related-id": {"urn:oid:1.2|doc1"}, "related-ref": {"Composition/c0"}, "identifier": nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkIndex(t, indexCase{body: inline(tt.body), want: tt.want}) })
	}
}

func TestExtractIndexMetaAndTokens(t *testing.T) {
	body := `{"resourceType":"Binary","id":"b1","contentType":"application/pdf",
		"meta":{"versionId":"3","lastUpdated":"2024-01-01T00:00:00Z","source":"https://dmp.example.org/import#42",
			"profile":["http://interopsante.org/fhir/StructureDefinition/FrBinary","http://interopsante.org/fhir/StructureDefinition/FrBinary"],
			"tag":[{"system":"https://dmp.example.org/tags","code":"masque","display":"Masqué au patient"},{"code":"nosystem"}],
			"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]}}`
	checkIndex(t, indexCase{body: inline(body), want: map[string][]string{
		"_tag":         {"https://dmp.example.org/tags|masque", "|nosystem"},
		"_tag:text":    {"masque au patient"},
		"_security":    {"http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R"},
		"_profile":     {"http://interopsante.org/fhir/StructureDefinition/FrBinary"}, // deduplicated
		"_source":      {"https://dmp.example.org/import#42"},
		"_id":          nil, // the store has the id
		"_lastUpdated": nil, // and meta.lastUpdated
	}})
	t.Run("Identifier, ContactPoint, boolean and code tokens", func(t *testing.T) {
		checkIndex(t, indexCase{body: inline(`{"resourceType":"Patient","active":false,"gender":"female",
			"identifier":[{"system":"urn:oid:1.2.250.1.213.1.4.8","value":"2800175123456"},{"value":"no-system"},{"system":"only-system"}],
			"telecom":[{"system":"email","value":"helene@example.fr"},{"system":"phone","value":"+33 1 23 45 67 89"},{"system":"email"}]}`),
			want: map[string][]string{
				"identifier": {"urn:oid:1.2.250.1.213.1.4.8|2800175123456", "|no-system"},
				"email":      {"|helene@example.fr"},
				"phone":      {"|+33 1 23 45 67 89"},
				"telecom":    {"|helene@example.fr", "|+33 1 23 45 67 89"},
				"active":     {"|false"},
				"gender":     {"|female"},
			}})
	})
}

func TestExtractIndexUnknownOrBrokenInput(t *testing.T) {
	for _, body := range []string{
		``, `null`, `[]`, `"Patient"`, `{}`, `{"resourceType":"Endpoint","name":"x"}`, `{"resourceType":42}`,
		`{"resourceType":"Patient","name":"not an array of objects"}`, `{"resourceType":"Patient"`,
	} {
		ix := ExtractIndex([]byte(body))
		if n := len(ix.Tokens) + len(ix.Strings) + len(ix.References) + len(ix.Dates) + len(ix.Numbers) + len(ix.URIs); n != 0 &&
			!strings.Contains(body, `"Patient"`) {
			t.Errorf("%s: %d values, want none", body, n)
		}
	}
	// Wrong shapes are skipped, the rest is indexed.
	ix := ExtractIndex([]byte(`{"resourceType":"Patient","gender":"male","name":[42,{"family":7},{"family":"Durand"}],"birthDate":19740101,"telecom":"x"}`))
	if got := values(ix, "family"); !slices.Equal(got, []string{"durand"}) {
		t.Errorf("family = %q", got)
	}
	if got := values(ix, "gender"); !slices.Equal(got, []string{"|male"}) {
		t.Errorf("gender = %q", got)
	}
}

func TestExtractIndexDeduplicates(t *testing.T) {
	ix := ExtractIndex([]byte(`{"resourceType":"Observation","status":"final",
		"code":{"coding":[{"system":"http://loinc.org","code":"1-1","display":"A"},{"system":"http://loinc.org","code":"1-1","display":"A"}],"text":"A"},
		"performer":[{"reference":"Practitioner/1"},{"reference":"Practitioner/1/_history/2"}]}`))
	if got := values(ix, "code"); !slices.Equal(got, []string{"http://loinc.org|1-1"}) {
		t.Errorf("code = %q", got)
	}
	if got := values(ix, "code:text"); !slices.Equal(got, []string{"a"}) {
		t.Errorf("code:text = %q", got)
	}
	if got := values(ix, "performer"); !slices.Equal(got, []string{"Practitioner/1"}) {
		t.Errorf("performer = %q", got)
	}
}

// TestExtractIndexAllExamples runs every official example through
// ExtractIndex: none may panic, and every one of a supported type yields
// values.
func TestExtractIndexAllExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(extractExamplesDir, "*", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatal("no examples", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ix := ExtractIndex(b)
		typ := filepath.Base(filepath.Dir(f))
		n := len(ix.Tokens) + len(ix.Strings) + len(ix.References) + len(ix.Dates) + len(ix.Numbers) + len(ix.URIs)
		if _, ok := LookupType(typ); ok && typ != "Binary" && n == 0 {
			t.Errorf("%s: no index values", f)
		}
	}
}

func FuzzExtractIndex(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(extractExamplesDir, "*", "*.json"))
	for i, file := range files {
		if i%4 != 0 {
			continue
		}
		if b, err := os.ReadFile(file); err == nil && len(b) < 20000 {
			f.Add(b)
		}
	}
	for _, s := range []string{
		`{"resourceType":"Observation","subject":{"reference":"#"},"valueQuantity":{"value":1e999}}`,
		`{"resourceType":"Patient","birthDate":"2024-02-30","deceasedBoolean":"yes","name":[null,{"given":[null,1]}]}`,
		`{"resourceType":"Encounter","period":{"start":"9999-12-31T23:59:59-14:00","end":"0001-01-01T00:00:00+14:00"}}`,
		`{"resourceType":"AuditEvent","entity":[{"what":{"reference":"/_history/"}}],"agent":[{"who":{"reference":"a/b/c/_history/"}}]}`,
		`{"resourceType":"Condition","onsetDateTime":"2024-01-01T10:00:60.Z","contained":[{"id":5}],"subject":{"reference":"#5"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ix := ExtractIndex(body)
		for _, d := range ix.Dates {
			if d.Low > d.High || d.Low < MinDate || d.High > MaxDate {
				t.Fatalf("bad date range %+v", d)
			}
		}
	})
}

func BenchmarkExtractIndexObservation(b *testing.B) {
	body := loadExample(b, "Observation", "Observation-blood-pressure.json")
	ExtractIndex(body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		ExtractIndex(body)
	}
}

func BenchmarkExtractIndexPatient(b *testing.B) {
	body := loadExample(b, "Patient", "Patient-example.json")
	ExtractIndex(body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		ExtractIndex(body)
	}
}

// FuzzExtractIndexValues puts one fuzzed string in every kind of typed
// position (dates, references, codes, names, quantities, choice elements).
func FuzzExtractIndexValues(f *testing.F) {
	for _, s := range []string{"2024-02-29T10:20:30.5+02:00", "Patient/1/_history/2", "http://x/fhir/Group/1", "#c1",
		"urn:uuid:1", "Hélène", "", "9999-12-31T23:59:60-14:00", "1e400", "Patient?x=/y/"} {
		f.Add(s)
	}
	templates := []string{
		`{"resourceType":"Observation","effectiveDateTime":%[1]s,"issued":%[1]s,"subject":{"reference":%[1]s,"type":%[1]s},"code":{"coding":[{"system":%[1]s,"code":%[1]s,"display":%[1]s}],"text":%[1]s},"valueString":%[1]s,"contained":[{"resourceType":"Patient","id":%[1]s}]}`,
		`{"resourceType":"Patient","birthDate":%[1]s,"name":[{"family":%[1]s,"given":[%[1]s]}],"telecom":[{"system":"email","value":%[1]s}],"deceasedDateTime":%[1]s,"meta":{"tag":[{"code":%[1]s}],"profile":[%[1]s],"source":%[1]s}}`,
		`{"resourceType":"Encounter","period":{"start":%[1]s,"end":%[1]s},"length":{"value":%[1]s}}`,
		`{"resourceType":"MedicationRequest","dosageInstruction":[{"timing":{"event":[%[1]s]}}],"medicationReference":{"reference":%[1]s}}`,
		`{"resourceType":"Observation","valueQuantity":{"value":%[2]s,"code":%[1]s}}`,
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, _ := json.Marshal(s)
		num := "0"
		if _, err := strconv.ParseFloat(s, 64); err == nil && json.Valid([]byte(s)) {
			num = s
		}
		for _, tpl := range templates {
			ix := ExtractIndex([]byte(fmt.Sprintf(tpl, q, num)))
			for _, d := range ix.Dates {
				if d.Low > d.High || d.Low < MinDate || d.High > MaxDate {
					t.Fatalf("bad date range %+v from %q", d, s)
				}
			}
		}
	})
}

// TestExtractIndexConcurrent runs ExtractIndex from several goroutines (run
// with -race): compiled expressions are shared, evaluation state is not.
func TestExtractIndexConcurrent(t *testing.T) {
	body := loadExample(t, "Observation", "Observation-blood-pressure.json")
	want := fmt.Sprint(ExtractIndex(body))
	done := make(chan string)
	for range 8 {
		go func() {
			var got string
			for range 20 {
				got = fmt.Sprint(ExtractIndex(body))
			}
			done <- got
		}()
	}
	for range 8 {
		if got := <-done; got != want {
			t.Errorf("concurrent ExtractIndex differs:\n%s\n%s", got, want)
		}
	}
}

// An index subset gives, for its parameters, exactly what the full index
// gives, and nothing for the others.
func TestIndexSubsetMatchesTheFullIndex(t *testing.T) {
	keep := func(typ, p string) bool { return p == "subject" || p == "patient" || p == "_security" || p == "code" }
	sub := NewIndexSubset(keep)
	for _, name := range []string{"Observation-blood-pressure.json", "Observation-example-genetics-3.json"} {
		body := example("Observation", name)(t)
		full, part := ExtractIndex(body), sub.Extract(body)
		var want, got []string
		for _, r := range full.References {
			if keep("Observation", r.Param) {
				want = append(want, r.Param+"="+r.Type+"/"+r.ID)
			}
		}
		for _, tk := range full.Tokens {
			if keep("Observation", tk.Param) {
				want = append(want, tk.Param+"="+tk.System+"|"+tk.Code)
			}
		}
		for _, r := range part.References {
			got = append(got, r.Param+"="+r.Type+"/"+r.ID)
		}
		for _, tk := range part.Tokens {
			got = append(got, tk.Param+"="+tk.System+"|"+tk.Code)
		}
		if len(want) == 0 || strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: subset %v, full index %v", name, got, want)
		}
		for _, st := range part.Strings { // a token's :text rows belong to it
			if st.Param != "code:text" {
				t.Errorf("%s: string value of %s outside the subset", name, st.Param)
			}
		}
		if len(part.Dates)+len(part.Numbers)+len(part.URIs) != 0 {
			t.Errorf("%s: values of parameters outside the subset: %+v", name, part)
		}
	}
}
