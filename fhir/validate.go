package fhir

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// The HL7 R4 JSON schema (see schema/NOTICE.md). It is never edited: the
// validator rewrites an in-memory copy when it loads it.
//
//go:embed schema/fhir.schema.json
var r4Schema []byte

const (
	schemaURL = "http://hl7.org/fhir/json-schema/4.0"
	// resourceKeyword is the custom schema keyword that replaces every use of
	// the schema's huge ResourceList oneOf: it dispatches on the nested
	// object's resourceType instead of trying the 146 resource definitions.
	resourceKeyword = "fhirResource"
	maxIssues       = 20
	// maxCollected bounds the work spent on a very broken document.
	maxCollected = 1000
)

// Validator checks resources against the R4 JSON schema plus the rules the
// schema misses. Safe for concurrent use.
//
// The schema is loaded once; the definition of each resource type is
// compiled the first time a resource of that type is met (the 23 supported
// types are compiled by NewValidator).
type Validator struct {
	model  *schemaModel
	accept *acceptSchema // decides most valid documents without the library

	mu       sync.Mutex // guards compiler
	compiler *jsonschema.Compiler
	schemas  sync.Map // resource type name -> *jsonschema.Schema, fully compiled
}

// NewValidator loads the embedded R4 schema, derives the rules the schema
// misses from it and compiles the supported resource types.
func NewValidator() (*Validator, error) {
	dec := json.NewDecoder(bytes.NewReader(r4Schema))
	dec.UseNumber()
	var root map[string]any
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("fhir: embedded schema: %v", err)
	}
	defs, ok := root["definitions"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("fhir: embedded schema has no definitions")
	}
	model, err := buildModel(defs)
	if err != nil {
		return nil, err
	}
	rewriteSchema(root, defs)
	accept, err := compileAccept(defs, model.resources)
	if err != nil {
		return nil, err
	}
	doc, err := json.Marshal(root)
	if err != nil {
		return nil, fmt.Errorf("fhir: embedded schema: %v", err)
	}

	v := &Validator{model: model, accept: accept, compiler: jsonschema.NewCompiler()}
	v.compiler.Draft = jsonschema.Draft6
	v.compiler.LoadURL = func(s string) (io.ReadCloser, error) {
		return nil, fmt.Errorf("fhir: schema %s is not available offline", s)
	}
	v.compiler.RegisterExtension(resourceKeyword, nil, resourceExtCompiler{v})
	v.compiler.RegisterExtension(patternKeyword, nil, patternExtCompiler{})
	if err := v.compiler.AddResource(schemaURL, bytes.NewReader(doc)); err != nil {
		return nil, fmt.Errorf("fhir: embedded schema: %v", err)
	}
	for _, name := range TypeNames() {
		if _, err := v.schemaFor(name); err != nil {
			return nil, err
		}
	}
	if _, err := v.schemaFor("Bundle"); err != nil {
		return nil, err
	}
	return v, nil
}

// schemaFor returns the compiled definition of a resource type known to the
// schema, compiling it on first use; nil if the schema does not know the type.
func (v *Validator) schemaFor(resourceType string) (*jsonschema.Schema, error) {
	if s, ok := v.schemas.Load(resourceType); ok {
		return s.(*jsonschema.Schema), nil
	}
	if !v.model.resources[resourceType] {
		return nil, nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if s, ok := v.schemas.Load(resourceType); ok {
		return s.(*jsonschema.Schema), nil
	}
	s, err := v.compiler.Compile(schemaURL + "#/definitions/" + resourceType)
	if err != nil {
		return nil, fmt.Errorf("fhir: compiling the schema of %s: %v", resourceType, err)
	}
	// Published only once complete: a concurrent validation never sees a
	// schema that is still being compiled.
	v.schemas.Store(resourceType, s)
	return s, nil
}

// Validate checks one resource, as the client sent it. It returns nil, or an
// *Error: 400 for malformed or structurally invalid content, 422 when the
// content is well formed but breaks a rule (a reference to a type the
// element does not allow).
//
// The top-level resourceType must be one of the supported types, or Bundle
// (the envelope of batch/transaction requests and documents); resources
// nested in it (contained, Bundle.entry.resource, ...) may be of any R4 type.
func (v *Validator) Validate(body []byte) error {
	var doc any
	if validJSON(body) {
		// Valid JSON is decoded by decodeJSONObject, to the values
		// encoding/json gives (a fifth of a Bundle's validation was
		// encoding/json's decoding); anything else by encoding/json, for its
		// error.
		obj, ok := decodeJSONObject(body, true)
		if !ok {
			return Invalid("", "a resource must be a JSON object")
		}
		doc = obj
	} else {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			return Invalid("", "malformed JSON: "+jsonErr(err))
		}
		if _, err := dec.Token(); err != io.EOF {
			return Invalid("", "malformed JSON: unexpected data after the resource")
		}
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return Invalid("", "a resource must be a JSON object")
	}
	rawType, present := obj["resourceType"]
	if !present {
		return Invalid("", "the resource has no resourceType")
	}
	rt, ok := rawType.(string)
	if !ok || rt == "" {
		return Invalid("resourceType", "resourceType must be a non-empty string")
	}
	if _, ok := LookupType(rt); !ok && rt != "Bundle" {
		return Invalid("resourceType", fmt.Sprintf("unsupported resourceType '%s'", rt))
	}
	sch, err := v.schemaFor(rt)
	if err != nil {
		return err
	}
	if sch == nil {
		return Invalid("resourceType", fmt.Sprintf("unknown resourceType '%s'", rt))
	}

	w := walker{m: v.model}
	w.resource(obj, rt, rt, nil)
	if v.accept.accepts(rt, doc) {
		return w.result()
	}
	if err := sch.Validate(doc); err != nil {
		ve, ok := err.(*jsonschema.ValidationError)
		if !ok {
			return Invalid(rt, err.Error())
		}
		w.schemaIssues(ve, doc, rt)
	}
	return w.result()
}

// ---------------------------------------------------------------------------
// What the validator knows of the schema, read once at load time.

type schemaModel struct {
	defs      map[string]*defInfo
	resources map[string]bool // the resource types (definitions with a resourceType)
}

type defInfo struct {
	name     string
	props    map[string]*propInfo
	required []string
	choices  []*choiceGroup
}

type propInfo struct {
	name     string
	typ      string // definition of the element type; "" for an inline primitive
	array    bool
	resource bool     // a nested resource (the schema's ResourceList)
	prim     string   // FHIR primitive type, for messages; "" for complex types
	targets  []string // allowed reference target types; nil means any
}

// choiceGroup is the JSON form of one R4 choice element (onset[x]): its
// variants, each named prefix+TypeName.
type choiceGroup struct {
	prefix   string
	variants []string
}

const (
	defPrefix     = "#/definitions/"
	resourceList  = defPrefix + "ResourceList"
	referenceType = "Reference"
)

func buildModel(defs map[string]any) (*schemaModel, error) {
	m := &schemaModel{defs: map[string]*defInfo{}, resources: map[string]bool{}}
	// Type names usable as choice suffixes: every primitive and general-purpose
	// complex type (not resources, not backbone elements such as Bundle_Entry).
	var suffixes []string
	for name, d := range defs {
		dm, _ := d.(map[string]any)
		props, _ := dm["properties"].(map[string]any)
		if rt, ok := props["resourceType"].(map[string]any); ok && rt["const"] == name {
			m.resources[name] = true
			continue
		}
		if name != "ResourceList" && !strings.Contains(name, "_") {
			suffixes = append(suffixes, strings.ToUpper(name[:1])+name[1:])
		}
	}
	// Longest first, so that DateTime wins over Time and PositiveInt over Int.
	sort.Slice(suffixes, func(i, j int) bool {
		if len(suffixes[i]) != len(suffixes[j]) {
			return len(suffixes[i]) > len(suffixes[j])
		}
		return suffixes[i] < suffixes[j]
	})

	for name, d := range defs {
		dm, _ := d.(map[string]any)
		props, ok := dm["properties"].(map[string]any)
		if !ok {
			continue
		}
		di := &defInfo{name: name, props: map[string]*propInfo{}}
		if req, ok := dm["required"].([]any); ok {
			for _, r := range req {
				if s, ok := r.(string); ok {
					di.required = append(di.required, s)
				}
			}
		}
		// candidate choice variants by prefix, with their description
		type variant struct{ name, suffix, desc string }
		byPrefix := map[string][]variant{}
		for pname, p := range props {
			pm, _ := p.(map[string]any)
			pi := &propInfo{name: pname}
			target := pm
			if pm["type"] == "array" {
				pi.array = true
				target, _ = pm["items"].(map[string]any)
			}
			if ref, ok := target["$ref"].(string); ok {
				if ref == resourceList {
					pi.resource = true
				} else {
					pi.typ = strings.TrimPrefix(ref, defPrefix)
					if isPrimitiveName(pi.typ) {
						pi.prim = pi.typ
					}
				}
			}
			di.props[pname] = pi
			if strings.HasPrefix(pname, "_") || pi.array {
				continue // R4 choice elements never repeat
			}
			for _, suf := range suffixes {
				if len(pname) > len(suf) && strings.HasSuffix(pname, suf) && isLower(pname[len(pname)-len(suf)-1]) {
					desc, _ := pm["description"].(string)
					prefix := pname[:len(pname)-len(suf)]
					byPrefix[prefix] = append(byPrefix[prefix], variant{pname, suf, desc})
					if pi.typ == "" && pi.prim == "" {
						pi.prim = strings.ToLower(suf[:1]) + suf[1:]
					}
					break
				}
			}
			if pi.typ == "" && pi.prim == "" {
				if _, ok := target["enum"]; ok {
					pi.prim = "code"
				}
			}
		}
		// A choice group is two or more variants of one prefix that share the
		// element's definition (same description): this keeps out ordinary
		// pairs such as Task.reasonCode / Task.reasonReference or
		// PaymentReconciliation.paymentDate / paymentIdentifier.
		for prefix, vs := range byPrefix {
			if len(vs) < 2 {
				continue
			}
			same := true
			for _, x := range vs[1:] {
				if x.desc != vs[0].desc {
					same = false
				}
			}
			if !same {
				continue
			}
			names := make([]string, len(vs))
			for i, x := range vs {
				names[i] = x.name
			}
			sort.Strings(names)
			di.choices = append(di.choices, &choiceGroup{prefix: prefix, variants: names})
		}
		sort.Slice(di.choices, func(i, j int) bool { return di.choices[i].prefix < di.choices[j].prefix })
		m.defs[name] = di
	}
	if err := m.applyReferenceTargets(referenceTargets); err != nil {
		return nil, err
	}
	return m, nil
}

// applyReferenceTargets attaches the allowed target types of reftargets.go
// (keyed by StructureDefinition element path) to the schema properties.
func (m *schemaModel) applyReferenceTargets(table map[string][]string) error {
	for path, targets := range table {
		p, err := m.propAt(path)
		if err != nil {
			return err
		}
		if p.typ != referenceType {
			return fmt.Errorf("fhir: reference target table: %s is not a Reference in the schema", path)
		}
		for _, t := range targets {
			if t == "Resource" {
				targets = nil // any resource
				break
			}
		}
		p.targets = targets
	}
	return nil
}

// propAt finds the schema property of a StructureDefinition element path
// such as MedicationRequest.dispenseRequest.performer or
// MedicationRequest.medication[x] (whose Reference variant is meant).
func (m *schemaModel) propAt(path string) (*propInfo, error) {
	parts := strings.Split(path, ".")
	def := m.defs[parts[0]]
	for i, part := range parts[1:] {
		if def == nil {
			break
		}
		if strings.HasSuffix(part, "[x]") {
			part = strings.TrimSuffix(part, "[x]") + referenceType
		}
		p := def.props[part]
		if p == nil {
			break
		}
		if i == len(parts)-2 {
			return p, nil
		}
		def = m.defs[p.typ]
	}
	return nil, fmt.Errorf("fhir: reference target table: %s is not in the schema", path)
}

func isPrimitiveName(name string) bool { return name != "" && isLower(name[0]) }

func isLower(b byte) bool { return b >= 'a' && b <= 'z' }

// rewriteSchema turns the published schema into the one compiled:
//   - every {"$ref": "#/definitions/ResourceList"} becomes {"fhirResource": true}
//     and the root oneOf over all resources is dropped (validation always
//     starts at #/definitions/<type>);
//   - descriptions are dropped (less to parse and to check against the
//     meta-schema);
//   - complex types must be JSON objects (the schema forgets it, so
//     "code": "abc" passed); Reference is left to the Go rule, which says
//     more, and the primitive extensions in arrays (_given: [null, {...}])
//     may be null;
//   - integer, positiveInt and unsignedInt are integers in their R4 range
//     (the schema types them "number" and their pattern never applies to
//     numbers, so 1.5 and -1 passed);
//   - xhtml must be a string;
//   - the FHIR version enums accept 4.0.1 (the schema stops at 4.0.0).
func rewriteSchema(root, defs map[string]any) {
	delete(root, "oneOf")
	delete(root, "discriminator")
	delete(root, "description")
	delete(defs, "ResourceList")

	intPatterns := map[string]map[string]any{}
	for name, min := range map[string]int64{"integer": -2147483648, "positiveInt": 1, "unsignedInt": 0} {
		d, _ := defs[name].(map[string]any)
		if pat, ok := d["pattern"].(string); ok {
			intPatterns[pat] = map[string]any{"type": "integer", "minimum": min, "maximum": 2147483647}
		}
	}
	var fix func(x any) any
	fix = func(x any) any {
		switch x := x.(type) {
		case map[string]any:
			if x["$ref"] == resourceList {
				return map[string]any{resourceKeyword: true}
			}
			if x["type"] == "number" {
				if pat, ok := x["pattern"].(string); ok {
					if repl, ok := intPatterns[pat]; ok {
						delete(x, "pattern")
						for k, v := range repl {
							x[k] = v
						}
					}
				}
			}
			if pat, ok := x["pattern"].(string); ok && fastPatterns[pat] != nil {
				delete(x, "pattern")
				x[patternKeyword] = pat
			}
			delete(x, "description")
			// The published schema predates the 4.0.1 technical
			// correction: its FHIR version enums stop at 4.0.0.
			if enum, ok := x["enum"].([]any); ok && len(enum) > 0 && enum[len(enum)-1] == "4.0.0" {
				x["enum"] = append(enum, "4.0.1")
			}
			for k, v := range x {
				if k == "properties" {
					props, _ := v.(map[string]any)
					for pn, pv := range props {
						props[pn] = fix(pv)
					}
					continue
				}
				if k == "enum" || k == "const" || k == "required" {
					continue
				}
				x[k] = fix(v)
			}
			return x
		case []any:
			for i, v := range x {
				x[i] = fix(v)
			}
			return x
		}
		return x
	}
	for name, d := range defs {
		dm, ok := d.(map[string]any)
		if !ok {
			continue
		}
		fix(dm)
		if _, ok := dm["properties"]; ok && name != referenceType {
			dm["type"] = "object"
		}
		// _given: [null, {...}] is how an element of a primitive array that
		// has only extensions is written.
		if props, ok := dm["properties"].(map[string]any); ok {
			for pn, pv := range props {
				pm, _ := pv.(map[string]any)
				if !strings.HasPrefix(pn, "_") || pm["type"] != "array" {
					continue
				}
				if items, _ := pm["items"].(map[string]any); items["$ref"] == defPrefix+"Element" {
					pm["items"] = map[string]any{"$ref": defPrefix + "ElementOrNull"}
				}
			}
		}
	}
	if el, ok := defs["Element"].(map[string]any); ok {
		orNull := map[string]any{}
		for k, v := range el {
			orNull[k] = v
		}
		orNull["type"] = []any{"object", "null"}
		defs["ElementOrNull"] = orNull
	}
	if x, ok := defs["xhtml"].(map[string]any); ok {
		x["type"] = "string"
	}
}

// ---------------------------------------------------------------------------
// The custom keyword: nested resources are checked against the definition of
// their own resourceType.

type resourceExtCompiler struct{ v *Validator }

func (c resourceExtCompiler) Compile(_ jsonschema.CompilerContext, m map[string]any) (jsonschema.ExtSchema, error) {
	if b, ok := m[resourceKeyword].(bool); ok && b {
		return resourceExtSchema(c), nil
	}
	return nil, nil
}

type resourceExtSchema struct{ v *Validator }

func (s resourceExtSchema) Validate(ctx jsonschema.ValidationContext, value any) error {
	obj, ok := value.(map[string]any)
	if !ok {
		return ctx.Error(resourceKeyword, "a nested resource must be a JSON object")
	}
	rt, _ := obj["resourceType"].(string)
	sch, err := s.v.schemaFor(rt)
	if err != nil {
		return ctx.Error(resourceKeyword, "%v", err)
	}
	if sch == nil {
		if rt == "" {
			return ctx.Error(resourceKeyword, "a nested resource must have a resourceType")
		}
		return ctx.Error(resourceKeyword, "unknown resourceType '%s'", rt)
	}
	return ctx.Validate(sch, resourceKeyword, value, "")
}

// ---------------------------------------------------------------------------
// Issues.

type issue struct {
	Issue
	status int
	loc    []string // location segments, for ordering
}

type walker struct {
	m      *schemaModel
	issues []issue
	// bundles holds, for each Bundle being walked, its entries' fullUrl ->
	// resourceType, to resolve urn:uuid references.
	bundles []map[string]string
}

func (w *walker) add(status int, code, path string, loc []string, msg string) {
	if len(w.issues) >= maxCollected {
		return
	}
	w.issues = append(w.issues, issue{Issue: Issue{Severity: "error", Code: code, Expression: path, Diagnostics: msg}, status: status, loc: loc})
}

// result merges the issues: one per expression (the Go rules, recorded
// first, win over the schema's view of the same element), in document
// order, at most maxIssues. 400 unless every issue is a business rule.
func (w *walker) result() error {
	if len(w.issues) == 0 {
		return nil
	}
	seen := map[string]bool{}
	kept := w.issues[:0]
	for _, is := range w.issues {
		key := is.Expression + "\x00" + is.Diagnostics
		if is.Code != "business-rule" {
			key = is.Expression
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		kept = append(kept, is)
	}
	sort.SliceStable(kept, func(i, j int) bool { return lessLoc(kept[i].loc, kept[j].loc) })
	if len(kept) > maxIssues {
		kept = kept[:maxIssues]
	}
	e := &Error{Status: http.StatusUnprocessableEntity}
	for _, is := range kept {
		if is.status == http.StatusBadRequest {
			e.Status = http.StatusBadRequest
		}
		e.Issues = append(e.Issues, is.Issue)
	}
	return e
}

func lessLoc(a, b []string) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] == b[i] {
			continue
		}
		na, errA := strconv.Atoi(a[i])
		nb, errB := strconv.Atoi(b[i])
		if errA == nil && errB == nil {
			return na < nb
		}
		return a[i] < b[i]
	}
	return len(a) < len(b)
}

// ---------------------------------------------------------------------------
// Rules the schema misses, checked over the decoded document.

// resCtx is what references inside one resource can point to: "#" is the
// resource itself, "#x" its contained resource x.
type resCtx struct {
	typ       string
	contained map[string]string
}

func (w *walker) resource(obj map[string]any, rt, path string, loc []string) {
	def := w.m.defs[rt]
	if def == nil {
		return
	}
	w.checkID(obj, path, loc)
	rc := &resCtx{typ: rt}
	if list, ok := obj["contained"].([]any); ok {
		rc.contained = map[string]string{}
		for _, c := range list {
			if cm, ok := c.(map[string]any); ok {
				id, _ := cm["id"].(string)
				t, _ := cm["resourceType"].(string)
				rc.contained[id] = t
			}
		}
	}
	if rt == "Bundle" {
		urls := map[string]string{}
		entries, _ := obj["entry"].([]any)
		for _, e := range entries {
			em, _ := e.(map[string]any)
			u, _ := em["fullUrl"].(string)
			r, _ := em["resource"].(map[string]any)
			t, _ := r["resourceType"].(string)
			if u != "" && t != "" {
				urls[u] = t
			}
		}
		w.bundles = append(w.bundles, urls)
		defer func() { w.bundles = w.bundles[:len(w.bundles)-1] }()
	}
	w.object(obj, def, path, loc, rc)
}

func (w *walker) checkID(obj map[string]any, path string, loc []string) {
	if id, ok := obj["id"].(string); ok && !ValidID(id) {
		w.add(http.StatusBadRequest, "value", path+".id", appendLoc(loc, "id"),
			fmt.Sprintf("id must be 1 to 64 letters, digits, '-' or '.' (got %s)", shortJSON(id)))
	}
}

func (w *walker) object(obj map[string]any, def *defInfo, path string, loc []string, rc *resCtx) {
	for k, v := range obj {
		p := def.props[k]
		if p == nil || (p.prim != "" && !p.resource) {
			continue
		}
		if p.array {
			arr, ok := v.([]any)
			if !ok {
				continue // the schema reports it
			}
			for i, it := range arr {
				w.value(it, p, path+"."+k+"["+strconv.Itoa(i)+"]", appendLoc(loc, k, strconv.Itoa(i)), rc)
			}
			continue
		}
		w.value(v, p, path+"."+k, appendLoc(loc, k), rc)
	}
	for _, g := range def.choices {
		var present []string
		for _, name := range g.variants {
			_, a := obj[name]
			_, b := obj["_"+name]
			if a || b {
				present = append(present, name)
			}
		}
		if len(present) > 1 {
			w.add(http.StatusBadRequest, "structure", path+"."+g.prefix+"[x]", appendLoc(loc, g.prefix),
				"only one of "+strings.Join(present, ", ")+" may be present")
		}
	}
}

func (w *walker) value(v any, p *propInfo, path string, loc []string, rc *resCtx) {
	switch {
	case p.resource:
		obj, ok := v.(map[string]any)
		if !ok {
			return // the schema keyword reports it
		}
		rt, _ := obj["resourceType"].(string)
		if !w.m.resources[rt] {
			return // the schema keyword reports it
		}
		if p.name == "contained" {
			// contained resources point to their siblings through the container
			w.checkID(obj, path, loc)
			if _, ok := obj["contained"]; ok { // dom-2
				w.add(http.StatusBadRequest, "structure", path+".contained", appendLoc(loc, "contained"), "a contained resource cannot contain resources")
			}
			w.object(obj, w.m.defs[rt], path, loc, rc)
			return
		}
		w.resource(obj, rt, path, loc)
	case p.typ == referenceType:
		obj, ok := v.(map[string]any)
		if !ok {
			w.add(http.StatusBadRequest, "structure", path, loc, `a Reference must be an object like {"reference": "Patient/1"}`)
			return
		}
		if p.targets != nil {
			w.checkTarget(obj, p, path, loc, rc)
		}
		w.object(obj, w.m.defs[referenceType], path, loc, rc)
	case p.typ != "":
		obj, ok := v.(map[string]any)
		if !ok {
			return
		}
		if def := w.m.defs[p.typ]; def != nil {
			w.object(obj, def, path, loc, rc)
		}
	}
}

func (w *walker) checkTarget(ref map[string]any, p *propInfo, path string, loc []string, rc *resCtx) {
	typ := ""
	if s, ok := ref["reference"].(string); ok {
		typ = w.referencedType(s, rc)
	}
	if typ == "" {
		if t, ok := ref["type"].(string); ok {
			typ = strings.TrimPrefix(t, "http://hl7.org/fhir/StructureDefinition/")
		}
	}
	if typ == "" || !w.m.resources[typ] {
		return // unknown: nothing to say
	}
	for _, t := range p.targets {
		if t == typ {
			return
		}
	}
	w.add(http.StatusUnprocessableEntity, "business-rule", path, loc,
		fmt.Sprintf("a reference to type %s is not allowed here (allowed: %s)", typ, strings.Join(p.targets, ", ")))
}

// referencedType returns the resource type a literal reference points to, or
// "" when it cannot be told.
func (w *walker) referencedType(s string, rc *resCtx) string {
	if strings.HasPrefix(s, "#") {
		if s == "#" {
			return rc.typ
		}
		return rc.contained[s[1:]]
	}
	if n := len(w.bundles); n > 0 {
		if t, ok := w.bundles[n-1][s]; ok {
			return t
		}
	}
	if strings.HasPrefix(s, "urn:") {
		return ""
	}
	if i := strings.IndexByte(s, '?'); i >= 0 { // conditional reference: Patient?identifier=...
		s = s[:i]
		if !strings.Contains(s, "/") {
			return s
		}
	}
	if i := strings.Index(s, "/_history/"); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 {
		return ""
	}
	return parts[len(parts)-2]
}

func appendLoc(loc []string, segs ...string) []string {
	out := make([]string, 0, len(loc)+len(segs))
	return append(append(out, loc...), segs...)
}

// ---------------------------------------------------------------------------
// The schema's view: jsonschema's error tree mapped to its deepest causes.

func (w *walker) schemaIssues(ve *jsonschema.ValidationError, doc any, rt string) {
	if len(ve.Causes) == 0 {
		w.schemaLeaf(ve, doc, rt)
		return
	}
	for _, c := range ve.Causes {
		w.schemaIssues(c, doc, rt)
	}
}

func (w *walker) schemaLeaf(ve *jsonschema.ValidationError, doc any, rt string) {
	loc := splitPointer(ve.InstanceLocation)
	path := fhirPath(rt, loc)
	value := at(doc, loc)
	def, prop, keyword := splitSchemaLocation(ve.AbsoluteKeywordLocation)

	switch keyword {
	case "additionalProperties":
		obj, _ := value.(map[string]any)
		di := w.m.defs[def]
		if obj == nil || di == nil {
			break
		}
		var unknown []string
		for k := range obj {
			if _, ok := di.props[k]; !ok {
				unknown = append(unknown, k)
			}
		}
		sort.Strings(unknown)
		for _, k := range unknown {
			w.add(http.StatusBadRequest, "structure", path+"."+k, appendLoc(loc, k), "unknown element '"+k+"'")
		}
		return
	case "required":
		obj, _ := value.(map[string]any)
		di := w.m.defs[def]
		if obj == nil || di == nil {
			break
		}
		for _, k := range di.required {
			if _, ok := obj[k]; !ok {
				w.add(http.StatusBadRequest, "required", path+"."+k, appendLoc(loc, k), "element '"+k+"' is required")
			}
		}
		return
	case resourceKeyword:
		w.add(http.StatusBadRequest, "structure", path, loc, ve.Message)
		return
	}

	prim := w.primitiveAt(def, prop)
	switch keyword {
	case "type":
		expected := strings.TrimPrefix(ve.Message, "expected ")
		if i := strings.Index(expected, ","); i >= 0 {
			expected = expected[:i]
		}
		switch {
		case strings.HasPrefix(expected, "object"):
			w.add(http.StatusBadRequest, "structure", path, loc, "element must be a JSON object (got "+shortJSON(value)+")")
		case expected == "array":
			w.add(http.StatusBadRequest, "structure", path, loc, "element must be a JSON array (got "+shortJSON(value)+")")
		default:
			w.add(http.StatusBadRequest, "value", path, loc, "value must be a valid "+prim+" (got "+shortJSON(value)+")")
		}
	case "pattern", patternKeyword, "minimum", "maximum":
		w.add(http.StatusBadRequest, "value", path, loc, "value must be a valid "+prim+" (got "+shortJSON(value)+")")
	case "enum":
		w.add(http.StatusBadRequest, "value", path, loc, ve.Message+" (got "+shortJSON(value)+")")
	default:
		w.add(http.StatusBadRequest, "structure", path, loc, ve.Message)
	}
}

// primitiveAt names the FHIR type of a failing value for messages.
func (w *walker) primitiveAt(def, prop string) string {
	if prop == "" {
		if isPrimitiveName(def) {
			return def
		}
	} else if di := w.m.defs[def]; di != nil {
		if p := di.props[prop]; p != nil && p.prim != "" {
			return p.prim
		}
	}
	return "value"
}

// splitSchemaLocation reads an absolute keyword location such as
// ...#/definitions/AllergyIntolerance/properties/onsetDateTime/pattern or
// ...#/definitions/dateTime/pattern.
func splitSchemaLocation(s string) (def, prop, keyword string) {
	i := strings.Index(s, defPrefix)
	if i < 0 {
		return "", "", ""
	}
	parts := strings.Split(s[i+len(defPrefix):], "/")
	def = parts[0]
	keyword = parts[len(parts)-1]
	if len(parts) >= 3 && parts[1] == "properties" {
		prop = unescapePointer(parts[2])
	}
	return def, prop, keyword
}

func splitPointer(p string) []string {
	if p == "" {
		return nil
	}
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, s := range parts {
		parts[i] = unescapePointer(s)
	}
	return parts
}

func unescapePointer(s string) string {
	if !strings.Contains(s, "~") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
}

// fhirPath writes a location as AllergyIntolerance.reaction[0].manifestation[1].
func fhirPath(rt string, loc []string) string {
	var b strings.Builder
	b.WriteString(rt)
	for _, s := range loc {
		if _, err := strconv.Atoi(s); err == nil {
			b.WriteString("[" + s + "]")
		} else {
			b.WriteString("." + s)
		}
	}
	return b.String()
}

func at(doc any, loc []string) any {
	for _, s := range loc {
		switch d := doc.(type) {
		case map[string]any:
			doc = d[s]
		case []any:
			i, err := strconv.Atoi(s)
			if err != nil || i < 0 || i >= len(d) {
				return nil
			}
			doc = d[i]
		default:
			return nil
		}
	}
	return doc
}

// shortJSON shows a value in a message, cut when long.
func shortJSON(v any) string {
	var s string
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return "?"
		}
		s = string(b)
	}
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}
