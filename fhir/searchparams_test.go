package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
)

// searchParamsSource is the team's shared copy of the R4 4.0.1
// SearchParameters (hl7.org search-parameters.json); the tests that need it
// are skipped when it is absent.
const searchParamsSource = "../../shared/fhir/definitions/search-parameters.json"

const searchParamsFile = "searchparams/search-parameters.json"

var updateSearchParams = flag.Bool("update", false, "rewrite "+searchParamsFile+" from "+searchParamsSource)

// TestSearchParamsFileMatchesTheDefinitions rebuilds the embedded file from
// the official definitions and checks it is what is embedded. Regenerate
// with
//
//	go test ./fhir -run TestSearchParamsFileMatchesTheDefinitions -update
func TestSearchParamsFileMatchesTheDefinitions(t *testing.T) {
	src, err := os.ReadFile(searchParamsSource)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip(searchParamsSource + " is absent")
	}
	if err != nil {
		t.Fatal(err)
	}
	got, err := buildSearchParamsFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if *updateSearchParams {
		if err := os.WriteFile(searchParamsFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", searchParamsFile, len(got))
		return
	}
	if !bytes.Equal(got, searchParamsJSON) {
		t.Fatalf("%s is not what the definitions give; run go test ./fhir -run %s -update", searchParamsFile, t.Name())
	}
}

// buildSearchParamsFile trims the R4 SearchParameter Bundle to the
// parameters of the supported types and of Resource/DomainResource, keeps
// per base only the union parts of the expression that start with it, and
// records the type model (JSON keys and FHIR types of the elements) the
// expressions need, read from the R4 JSON schema.
func buildSearchParamsFile(src []byte) ([]byte, error) {
	var bundle struct {
		Entry []struct {
			Resource struct {
				URL         string        `json:"url"`
				Code        string        `json:"code"`
				Type        string        `json:"type"`
				Base        []string      `json:"base"`
				Expression  string        `json:"expression"`
				XPathUsage  string        `json:"xpathUsage"`
				Target      []string      `json:"target"`
				MultipleOr  *bool         `json:"multipleOr"`
				MultipleAnd *bool         `json:"multipleAnd"`
				Comparator  []string      `json:"comparator"`
				Modifier    []string      `json:"modifier"`
				Component   []spComponent `json:"component"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(src, &bundle); err != nil {
		return nil, err
	}
	sr, err := newSchemaResolver("schema/fhir.schema.json")
	if err != nil {
		return nil, err
	}
	wanted := map[string]bool{"Resource": true, "DomainResource": true}
	for _, n := range TypeNames() {
		wanted[n] = true
	}
	f := spFile{
		Source:        "HL7 FHIR R4 4.0.1 search-parameters.json, trimmed (see NOTICE.md)",
		FHIRVersion:   "4.0.1",
		Types:         TypeNames(),
		ResourceTypes: sr.resourceTypes,
	}
	var errs []error
	for _, e := range bundle.Entry {
		r := e.Resource
		if r.Expression == "" {
			continue // _text, _content, _query: no expression, not supported
		}
		d := spDef{URL: r.URL, Code: r.Code, Type: r.Type, Expression: map[string]string{},
			Target: r.Target, MultipleOr: r.MultipleOr, MultipleAnd: r.MultipleAnd,
			Comparator: r.Comparator, Modifier: r.Modifier, Component: r.Component}
		if r.XPathUsage != "normal" {
			d.XPathUsage = r.XPathUsage
		}
		for _, b := range r.Base {
			if !wanted[b] {
				continue
			}
			var kept []string
			for _, part := range splitUnion(r.Expression) {
				if expressionRoot(part) == b {
					kept = append(kept, part)
				}
			}
			if len(kept) == 0 {
				errs = append(errs, fmt.Errorf("%s: no part of %q is about %s", r.URL, r.Expression, b))
				continue
			}
			expr := strings.Join(kept, " | ")
			if r.Type != "composite" {
				if _, err := compileFHIRPath(expr, b, sr); err != nil {
					errs = append(errs, fmt.Errorf("%s (%s): %w", r.Code, b, err))
					continue
				}
			}
			d.Base = append(d.Base, b)
			d.Expression[b] = expr
		}
		if len(d.Base) > 0 {
			f.Params = append(f.Params, d)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.SliceStable(f.Params, func(i, j int) bool {
		a, b := f.Params[i], f.Params[j]
		if a.Code != b.Code {
			return a.Code < b.Code
		}
		return a.URL < b.URL
	})
	f.Elements = sr.recorded
	return marshalSearchParamsFile(&f)
}

// marshalSearchParamsFile writes one parameter and one element per line.
func marshalSearchParamsFile(f *spFile) ([]byte, error) {
	var b bytes.Buffer
	put := func(v any) error {
		j, err := json.Marshal(v)
		if err != nil {
			return err
		}
		b.Write(j)
		return nil
	}
	b.WriteString("{\n\"source\": ")
	put(f.Source)
	b.WriteString(",\n\"fhirVersion\": ")
	put(f.FHIRVersion)
	b.WriteString(",\n\"types\": ")
	put(f.Types)
	b.WriteString(",\n\"resourceTypes\": ")
	put(f.ResourceTypes)
	b.WriteString(",\n\"params\": [")
	for i := range f.Params {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
		if err := put(&f.Params[i]); err != nil {
			return nil, err
		}
	}
	b.WriteString("\n],\n\"elements\": {")
	keys := make([]string, 0, len(f.Elements))
	for k := range f.Elements {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
		put(k)
		b.WriteString(": ")
		put(f.Elements[k])
	}
	b.WriteString("\n}\n}\n")
	return b.Bytes(), nil
}

// splitUnion splits an expression at its top-level "|".
func splitUnion(expr string) []string {
	var parts []string
	depth, start := 0, 0
	inString := false
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case inString:
			if c == '\\' {
				i++
			} else if c == '\'' {
				inString = false
			}
		case c == '\'':
			inString = true
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == '|' && depth == 0:
			parts = append(parts, strings.TrimSpace(expr[start:i]))
			start = i + 1
		}
	}
	return append(parts, strings.TrimSpace(expr[start:]))
}

// expressionRoot is the first name of an expression part:
// "(MedicationRequest.medication as Reference)" gives MedicationRequest.
func expressionRoot(part string) string {
	s := strings.TrimLeft(part, "( ")
	i := 0
	for i < len(s) && (isLetter(s[i]) || isDigit(s[i])) {
		i++
	}
	return s[:i]
}

// schemaResolver answers typeResolver from the R4 JSON schema and records
// every answer, for the embedded type model.
type schemaResolver struct {
	defs          map[string]map[string]map[string]any // definition -> property -> schema
	primitives    map[string]bool
	patterns      map[string]string // primitive pattern -> primitive name
	resourceTypes []string
	recorded      map[string][][2]string
}

func newSchemaResolver(path string) (*schemaResolver, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var schema struct {
		Discriminator struct {
			Mapping map[string]string `json:"mapping"`
		} `json:"discriminator"`
		Definitions map[string]struct {
			Pattern    string                    `json:"pattern"`
			Properties map[string]map[string]any `json:"properties"`
		} `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		return nil, err
	}
	s := &schemaResolver{defs: map[string]map[string]map[string]any{}, primitives: map[string]bool{},
		patterns: map[string]string{}, recorded: map[string][][2]string{}}
	for name, d := range schema.Definitions {
		if name != "" && name[0] >= 'a' && name[0] <= 'z' {
			s.primitives[name] = true
			if d.Pattern != "" {
				s.patterns[d.Pattern] = name
			}
			continue
		}
		s.defs[name] = d.Properties
	}
	for t := range schema.Discriminator.Mapping {
		s.resourceTypes = append(s.resourceTypes, t)
	}
	sort.Strings(s.resourceTypes)
	if len(s.resourceTypes) != 146 {
		return nil, fmt.Errorf("%s: %d resource types, want the 146 of R4", path, len(s.resourceTypes))
	}
	return s, nil
}

// Elements of Resource and of DomainResource (R4).
var (
	resourceElements       = []string{"id", "meta", "implicitRules", "language"}
	domainResourceElements = []string{"id", "meta", "implicitRules", "language", "text", "contained", "extension", "modifierExtension"}
)

func (s *schemaResolver) element(t, name string) []elemAlt {
	def := t
	switch t {
	case "Resource":
		if !slices.Contains(resourceElements, name) {
			return nil
		}
		def = "Patient"
	case "DomainResource":
		if !slices.Contains(domainResourceElements, name) {
			return nil
		}
		def = "Patient"
	}
	props, ok := s.defs[def]
	if !ok {
		return nil
	}
	var alts []elemAlt
	if p, ok := props[name]; ok {
		if typ := s.propType(p, ""); typ != "" {
			alts = append(alts, elemAlt{Key: name, Type: typ})
		}
	} else {
		keys := make([]string, 0, len(props))
		for k := range props {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if len(k) <= len(name) || !strings.HasPrefix(k, name) || k[len(name)] < 'A' || k[len(name)] > 'Z' {
				continue
			}
			suffix := k[len(name):]
			if typ := s.propType(props[k], suffix); typ != "" {
				alts = append(alts, elemAlt{Key: k, Type: typ})
			}
		}
	}
	if len(alts) > 0 {
		pairs := make([][2]string, len(alts))
		for i, a := range alts {
			pairs[i] = [2]string{a.Key, a.Type}
		}
		s.recorded[t+"."+name] = pairs
	}
	return alts
}

// propType is the FHIR type of a schema property; choiceSuffix, for a
// choice variant (valueDateTime), is the type part of its name.
func (s *schemaResolver) propType(p map[string]any, choiceSuffix string) string {
	x := p
	if items, ok := p["items"].(map[string]any); ok {
		x = items
	}
	if choiceSuffix != "" {
		lc := strings.ToLower(choiceSuffix[:1]) + choiceSuffix[1:]
		switch {
		case s.primitives[lc]:
			return lc
		case s.defs[choiceSuffix] != nil:
			return choiceSuffix
		}
		return "" // not a variant: a longer element name (valueSet, ...)
	}
	if ref, ok := x["$ref"].(string); ok {
		return strings.TrimPrefix(ref, "#/definitions/")
	}
	if _, ok := x["enum"]; ok {
		return "code"
	}
	if pat, ok := x["pattern"].(string); ok {
		if name, ok := s.patterns[pat]; ok {
			return name
		}
	}
	return ""
}

func TestSearchParamsLookup(t *testing.T) {
	tests := []struct {
		name            string
		typ, param      string
		want            SearchParam
		wantExprMissing string
	}{
		{name: "a multi-base expression keeps only the parts of its type", typ: "Observation", param: "code",
			want:            SearchParam{Name: "code", Type: "token", Expression: "Observation.code", URL: "http://hl7.org/fhir/SearchParameter/clinical-code"},
			wantExprMissing: "Condition"},
		{name: "patient filters Observation.subject by type", typ: "Observation", param: "patient",
			want: SearchParam{Name: "patient", Type: "reference", Expression: "Observation.subject.where(resolve() is Patient)",
				Targets: []string{"Patient", "Group"}, URL: "http://hl7.org/fhir/SearchParameter/clinical-patient"}},
		{name: "a parenthesised cast keeps its parentheses", typ: "MedicationRequest", param: "code",
			want: SearchParam{Name: "code", Type: "token", Expression: "(MedicationRequest.medication as CodeableConcept)",
				URL: "http://hl7.org/fhir/SearchParameter/clinical-code"}},
		{name: "Resource-level _tag applies to every type", typ: "Binary", param: "_tag",
			want: SearchParam{Name: "_tag", Type: "token", Expression: "Resource.meta.tag", URL: "http://hl7.org/fhir/SearchParameter/Resource-tag"}},
		{name: "_lastUpdated is known even if the store indexes it", typ: "Patient", param: "_lastUpdated",
			want: SearchParam{Name: "_lastUpdated", Type: "date", Expression: "Resource.meta.lastUpdated", URL: "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated"}},
		{name: "email filters telecom", typ: "Practitioner", param: "email",
			want: SearchParam{Name: "email", Type: "token", Expression: "Practitioner.telecom.where(system='email')", URL: "http://hl7.org/fhir/SearchParameter/individual-email"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := LookupSearchParam(tt.typ, tt.param)
			if !ok {
				t.Fatalf("LookupSearchParam(%s, %s): not found", tt.typ, tt.param)
			}
			if tt.want.Targets == nil {
				got.Targets = nil
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if tt.wantExprMissing != "" && strings.Contains(got.Expression, tt.wantExprMissing) {
				t.Errorf("expression %q mentions %s", got.Expression, tt.wantExprMissing)
			}
		})
	}
}

func TestSearchParamsUnknown(t *testing.T) {
	for _, c := range [][2]string{{"Observation", "nope"}, {"Endpoint", "name"}, {"Foo", "_id"}, {"Observation", "_text"}} {
		if p, ok := LookupSearchParam(c[0], c[1]); ok {
			t.Errorf("LookupSearchParam(%s, %s) = %+v, want not found", c[0], c[1], p)
		}
	}
	if got := SearchParams("Foo"); got != nil {
		t.Errorf("SearchParams(Foo) = %v, want nil", got)
	}
}

func TestSearchParamsSortedAndComplete(t *testing.T) {
	for _, typ := range TypeNames() {
		list := SearchParams(typ)
		if !sort.SliceIsSorted(list, func(i, j int) bool { return list[i].Name < list[j].Name }) {
			t.Errorf("%s: not sorted by name", typ)
		}
		names := map[string]bool{}
		for _, p := range list {
			if names[p.Name] {
				t.Errorf("%s: %s twice", typ, p.Name)
			}
			names[p.Name] = true
			if p.Expression == "" || p.URL == "" || p.Type == "" {
				t.Errorf("%s: incomplete %+v", typ, p)
			}
		}
		for _, n := range []string{"_id", "_lastUpdated", "_tag", "_security", "_profile", "_source"} {
			if only := servedOnly[typ]; only != nil && !only[n] {
				continue
			}
			if !names[n] {
				t.Errorf("%s: no %s", typ, n)
			}
		}
	}
	if n := len(SearchParams("Observation")); n < 40 {
		t.Errorf("Observation has %d parameters, want the ~45 of R4", n)
	}
}

// TestEveryIndexedExpressionCompiles proves the embedded expressions all
// compile against the embedded type model, those of union parameters too
// (the only parameters left out of ExtractIndex are composite ones, union
// ones, _id and _lastUpdated).
func TestEveryIndexedExpressionCompiles(t *testing.T) {
	plans := loadIndexPlans()
	for _, err := range indexPlanErrs {
		t.Error(err)
	}
	if _, errs := buildIndexPlans(nil); len(errs) > 0 {
		t.Error(errs)
	}
	for _, typ := range TypeNames() {
		inPlan := map[string]bool{}
		for _, p := range plans[typ] {
			inPlan[p.name] = true
		}
		for _, p := range SearchParams(typ) {
			skipped := p.Type == "composite" || p.Type == "special" || p.Name == "_id" || p.Name == "_lastUpdated" || IsUnionParam(typ, p.Name)
			if inPlan[p.Name] == skipped {
				t.Errorf("%s %s (%s): indexed=%v", typ, p.Name, p.Type, inPlan[p.Name])
			}
		}
	}
}

// TestSearchParamsFileCoversTheRegistry fails when a type was registered
// after the embedded file was built (no shared definitions needed).
func TestSearchParamsFileCoversTheRegistry(t *testing.T) {
	var f spFile
	if err := json.Unmarshal(searchParamsJSON, &f); err != nil {
		t.Fatal(err)
	}
	for _, typ := range TypeNames() {
		if !slices.Contains(f.Types, typ) {
			t.Errorf("%s is registered but %s was built without it: run go test ./fhir -run TestSearchParamsFileMatchesTheDefinitions -update", typ, searchParamsFile)
		}
	}
}

// AuditEvent serves only the parameters its access history is searched by:
// the others are neither accepted nor indexed.
func TestAuditEventServesOnlyItsParameters(t *testing.T) {
	for _, tc := range []struct {
		name   string
		served bool
	}{
		{"patient", true}, {"date", true}, {"agent", true}, {"altid", true}, {"entity", true},
		{"action", true}, {"outcome", true}, {"type", true}, {"subtype", true},
		{"address", false}, {"entity-name", false}, {"entity-type", false}, {"entity-role", false},
		{"agent-name", false}, {"policy", false}, {"source", false}, {"_tag", false}, {"_security", false},
	} {
		if _, ok := LookupSearchParam("AuditEvent", tc.name); ok != tc.served {
			t.Errorf("AuditEvent %s: served %v, want %v", tc.name, ok, tc.served)
		}
	}
	if _, ok := LookupSearchParam("Observation", "_tag"); !ok {
		t.Error("Observation lost _tag: the restriction must stay AuditEvent's")
	}
}
