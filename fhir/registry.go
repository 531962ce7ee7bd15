package fhir

import "sort"

// ResourceType describes one resource type the server supports.
type ResourceType struct {
	Name string
	// PatientCompartment lists the search parameters that put a resource of
	// this type in a patient's compartment (CompartmentDefinition-patient, R4).
	PatientCompartment []string
}

// registry holds every supported type; adding a type is one line here.
var registry = map[string]ResourceType{}

func register(name string, patientParams ...string) {
	registry[name] = ResourceType{Name: name, PatientCompartment: patientParams}
}

func init() {
	register("Patient", "link")
	register("Practitioner")
	register("PractitionerRole")
	register("Organization")
	register("Encounter", "patient")
	register("Medication")
	register("MedicationRequest", "subject")
	register("MedicationStatement", "subject")
	register("MedicationDispense", "subject", "patient", "receiver")
	register("DocumentReference", "subject", "author")
	register("Binary")
	register("List", "subject", "source")
	register("Composition", "subject", "author", "attester")
	register("DiagnosticReport", "subject")
	register("Observation", "subject", "performer")
	register("ImagingStudy", "patient")
	register("AllergyIntolerance", "patient", "recorder", "asserter")
	register("Condition", "patient", "asserter")
	register("Procedure", "patient", "performer")
	register("Immunization", "patient")
	register("ExplanationOfBenefit", "patient", "payee")
	// Claim, CarePlan and Goal come with the Synthea records hospitals and
	// tests send beside the DMP's own types (a reimbursement's claim, a care
	// plan and its goals).
	register("Claim", "patient", "payee")
	register("CarePlan", "patient", "performer")
	register("Goal", "patient")
	// Location and Device arrive with hospital and Synthea data (an
	// encounter's place, a patient's implant). R4 puts Device in no patient
	// compartment; dmp-fhir files it under its patient, so that the consent
	// decision covers a patient's implants.
	register("Location")
	register("Device", "patient")
	register("Consent", "patient")
	register("AuditEvent", "patient")
}

// LookupType returns the supported type with that exact name.
func LookupType(name string) (ResourceType, bool) {
	t, ok := registry[name]
	return t, ok
}

// TypeNames returns the names of all supported types, sorted.
func TypeNames() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
