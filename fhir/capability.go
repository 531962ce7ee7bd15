package fhir

import (
	"encoding/json"
	"sort"
	"strconv"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// Operation is an operation the server runs, named as in a CapabilityStatement.
type Operation struct {
	Name       string // without the $
	Definition string // canonical URL of its OperationDefinition
}

// Capabilities is what the REST layer really supports; CapabilityStatement
// turns it into the resource that GET /metadata answers.
type Capabilities struct {
	Software           string
	Version            string
	BaseURL            string
	TypeInteractions   []string // TypeRestfulInteraction codes: read, vread, update, ...
	SystemInteractions []string // SystemRestfulInteraction codes: history-system, ...
	TypeOperations     []Operation
	// TypeSpecificOperations are operations of one type only (Patient's
	// consent operations, $everything and $summary).
	TypeSpecificOperations map[string][]Operation
	// SystemOperations are operations on the whole server (the Bulk Data
	// $export).
	SystemOperations []Operation
	// Instantiates are the canonical CapabilityStatements this server
	// implements (the Bulk Data server's).
	Instantiates []string
	// Documentation is added to rest.documentation (what an operation
	// does not support, for instance).
	Documentation string
	// SMART says the REST API is protected by SMART on FHIR tokens, with
	// its token endpoint.
	SMART             bool
	TokenEndpoint     string
	ConditionalCreate bool
	ConditionalUpdate bool
	ConditionalRead   string // not-supported | modified-since | not-match | full-support
	// SearchParams lists, per type, the search parameters served (name -> type).
	SearchParams map[string]map[string]string
}

// enum turns a code into one of the samply enum types through its
// UnmarshalJSON, so that a typo fails loudly at start-up.
func enum[T any, PT interface {
	*T
	json.Unmarshaler
}](code string) T {
	var v T
	if err := PT(&v).UnmarshalJSON([]byte(strconv.Quote(code))); err != nil {
		panic("fhir: bad code " + code + ": " + err.Error())
	}
	return v
}

// CapabilityStatement builds the server's CapabilityStatement from the
// registry and what the REST layer declares.
func CapabilityStatement(c Capabilities, now time.Time) []byte {
	t := true
	versioned := models.ResourceVersionPolicyVersionedUpdate
	rest := models.CapabilityStatementRest{Mode: models.RestfulCapabilityModeServer}
	for _, name := range TypeNames() {
		r := models.CapabilityStatementRestResource{
			Type:         enum[models.ResourceType](name),
			Versioning:   &versioned,
			ReadHistory:  &t,
			UpdateCreate: &t,
		}
		for _, code := range c.TypeInteractions {
			r.Interaction = append(r.Interaction, models.CapabilityStatementRestResourceInteraction{Code: enum[models.TypeRestfulInteraction](code)})
		}
		cc, cu := c.ConditionalCreate, c.ConditionalUpdate
		r.ConditionalCreate, r.ConditionalUpdate = &cc, &cu
		if c.ConditionalRead != "" {
			cr := enum[models.ConditionalReadStatus](c.ConditionalRead)
			r.ConditionalRead = &cr
		}
		cd := models.ConditionalDeleteStatusNotSupported
		r.ConditionalDelete = &cd
		params := c.SearchParams[name]
		pnames := make([]string, 0, len(params))
		for p := range params {
			pnames = append(pnames, p)
		}
		sort.Strings(pnames)
		for _, pname := range pnames {
			sp := models.CapabilityStatementRestResourceSearchParam{Name: pname, Type: enum[models.SearchParamType](params[pname])}
			if d, ok := LookupSearchParam(name, pname); ok && d.NoText {
				sp.Documentation = ptr("The :text modifier is not supported: the texts of this parameter are not indexed.")
			}
			r.SearchParam = append(r.SearchParam, sp)
		}
		for _, op := range append(append([]Operation(nil), c.TypeOperations...), c.TypeSpecificOperations[name]...) {
			r.Operation = append(r.Operation, models.CapabilityStatementRestResourceOperation{Name: op.Name, Definition: op.Definition})
		}
		rest.Resource = append(rest.Resource, r)
	}
	if c.SMART {
		cors := true
		desc := "Bearer JWTs (SMART App Launch v2 scopes); the patient's consent decides every read (DMP rules)."
		smart := models.CodeableConcept{Coding: []models.Coding{{System: ptr("http://terminology.hl7.org/CodeSystem/restful-security-service"), Code: ptr("SMART-on-FHIR")}}}
		rest.Security = &models.CapabilityStatementRestSecurity{Cors: &cors, Service: []models.CodeableConcept{smart}, Description: &desc}
		if c.TokenEndpoint != "" {
			rest.Security.Extension = []models.Extension{{
				Url:       "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
				Extension: []models.Extension{{Url: "token", ValueUri: ptr(c.TokenEndpoint)}},
			}}
		}
	}
	for _, code := range c.SystemInteractions {
		rest.Interaction = append(rest.Interaction, models.CapabilityStatementRestInteraction{Code: enum[models.SystemRestfulInteraction](code)})
	}
	for _, op := range c.SystemOperations {
		rest.Operation = append(rest.Operation, models.CapabilityStatementRestResourceOperation{Name: op.Name, Definition: op.Definition})
	}
	if c.Documentation != "" {
		rest.Documentation = ptr(c.Documentation)
	}
	name, title := "DmpFhirServer", "dmp-fhir: FHIR R4 server of the Dossier Médical Partagé"
	version := c.Version
	if version == "" {
		version = "dev"
	}
	cs := models.CapabilityStatement{
		Url:            nil,
		Name:           &name,
		Title:          &title,
		Version:        &version,
		Status:         models.PublicationStatusActive,
		Date:           now.UTC().Format(time.RFC3339),
		Kind:           models.CapabilityStatementKindInstance,
		Software:       &models.CapabilityStatementSoftware{Name: c.Software, Version: &version},
		Implementation: &models.CapabilityStatementImplementation{Description: title, Url: &c.BaseURL},
		FhirVersion:    models.FHIRVersion4_0_1,
		Instantiates:   c.Instantiates,
		Format:         []string{"application/fhir+json", "json"},
		Rest:           []models.CapabilityStatementRest{rest},
	}
	b, err := Marshal(cs)
	if err != nil {
		panic(err)
	}
	return b
}

func ptr(s string) *string { return &s }
