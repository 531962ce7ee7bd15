// Code generated from the R4 StructureDefinitions (isSummary or min > 0, top level); DO NOT EDIT by hand.

package fhir

// summaryElements lists, per type, the top-level elements that _summary=true
// keeps (besides resourceType, id and meta). "name*" is a choice element
// (name followed by a type). Composition, List, MedicationDispense and
// MedicationStatement come from the specification's element tables, as their
// StructureDefinitions are not in shared/.
var summaryElements = map[string][]string{
	"AllergyIntolerance":   {"identifier", "clinicalStatus", "verificationStatus", "type", "category", "criticality", "code", "patient", "asserter"},
	"AuditEvent":           {"type", "subtype", "action", "recorded", "outcome", "outcomeDesc", "purposeOfEvent", "agent", "source"},
	"Binary":               {"contentType", "securityContext"},
	"Bundle":               {"identifier", "type", "timestamp", "total", "link", "entry", "signature"},
	"Composition":          {"identifier", "status", "type", "category", "subject", "encounter", "date", "author", "title", "confidentiality", "attester", "custodian", "relatesTo", "event"},
	"Condition":            {"identifier", "clinicalStatus", "verificationStatus", "code", "bodySite", "subject", "encounter", "onset*", "recordedDate", "recorder", "asserter"},
	"Consent":              {"identifier", "status", "scope", "category", "patient", "dateTime", "performer", "organization", "source*", "policyRule", "verification", "provision"},
	"DiagnosticReport":     {"identifier", "status", "category", "code", "subject", "encounter", "effective*", "issued", "performer", "resultsInterpreter", "media"},
	"DocumentReference":    {"masterIdentifier", "identifier", "status", "docStatus", "type", "category", "subject", "date", "author", "relatesTo", "description", "securityLabel", "content", "context"},
	"Encounter":            {"identifier", "status", "class", "type", "serviceType", "subject", "episodeOfCare", "participant", "appointment", "reasonCode", "reasonReference", "diagnosis"},
	"ExplanationOfBenefit": {"status", "type", "use", "patient", "billablePeriod", "created", "insurer", "provider", "outcome", "insurance", "total"},
	"ImagingStudy":         {"identifier", "status", "modality", "subject", "encounter", "started", "basedOn", "referrer", "interpreter", "endpoint", "numberOfSeries", "numberOfInstances", "procedureReference", "procedureCode", "location", "reasonCode", "reasonReference", "note", "description", "series"},
	"Immunization":         {"status", "vaccineCode", "patient", "occurrence*", "primarySource", "performer", "note", "isSubpotent"},
	"List":                 {"identifier", "status", "mode", "title", "code", "subject", "encounter", "date", "source"},
	"Medication":           {"identifier", "code", "status", "manufacturer", "amount"},
	"MedicationDispense":   {"identifier", "partOf", "status", "statusReason*", "category", "medication*", "subject", "context", "supportingInformation", "performer", "location", "authorizingPrescription", "type", "quantity", "daysSupply", "whenPrepared", "whenHandedOver", "destination", "receiver", "note", "dosageInstruction", "substitution", "detectedIssue", "eventHistory"},
	"MedicationRequest":    {"status", "intent", "priority", "doNotPerform", "reported*", "medication*", "subject", "authoredOn", "requester", "performerType", "instantiatesCanonical", "instantiatesUri", "basedOn", "groupIdentifier"},
	"MedicationStatement":  {"identifier", "basedOn", "partOf", "status", "statusReason", "category", "medication*", "subject", "context", "effective*", "dateAsserted", "informationSource", "derivedFrom", "reasonCode", "reasonReference", "note", "dosage"},
	"Observation":          {"identifier", "basedOn", "partOf", "status", "code", "subject", "focus", "encounter", "effective*", "issued", "performer", "value*", "hasMember", "derivedFrom", "component"},
	"Organization":         {"identifier", "active", "type", "name", "partOf"},
	"Patient":              {"identifier", "active", "name", "telecom", "gender", "birthDate", "deceased*", "address", "managingOrganization", "link"},
	"Practitioner":         {"identifier", "active", "name", "telecom", "address", "gender", "birthDate"},
	"PractitionerRole":     {"identifier", "active", "period", "practitioner", "organization", "code", "specialty", "location", "telecom"},
	"Procedure":            {"identifier", "instantiatesCanonical", "instantiatesUri", "basedOn", "partOf", "status", "statusReason", "category", "code", "subject", "encounter", "performed*", "recorder", "asserter", "performer", "location", "reasonCode", "reasonReference", "bodySite", "outcome"},
}
