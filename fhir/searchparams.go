package fhir

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

// searchParamsJSON is the R4 4.0.1 SearchParameters of the supported types
// and of Resource/DomainResource, trimmed (searchparams/NOTICE.md). Rebuild
// it with
//
//	go test ./fhir -run TestSearchParamsFileMatchesTheDefinitions -update
//
//go:embed searchparams/search-parameters.json
var searchParamsJSON []byte

// localSearchParamsJSON holds this server's own SearchParameters (same
// layout), e.g. Consent's dmp-actor: the professionals named in the nested
// provisions of a DMP policy, which R4's `actor` (root provision only)
// does not reach.
//
//go:embed searchparams/dmp-search-parameters.json
var localSearchParamsJSON []byte

// SearchParam is one search parameter of one resource type.
type SearchParam struct {
	Name       string   // the code: "patient", "code", "_lastUpdated"
	Type       string   // number|date|string|token|reference|composite|quantity|uri|special
	Expression string   // the FHIRPath for this resource type only
	Targets    []string // reference target types
	URL        string   // canonical of the definition
	// NoText: a token parameter whose :text values (display, text) are not
	// indexed, so :text is refused (the types of servedOnly).
	NoText bool
}

// spFile is the layout of searchparams/search-parameters.json.
type spFile struct {
	Source      string `json:"source"`
	FHIRVersion string `json:"fhirVersion"`
	// Types are the supported types the file was built for (TypeNames()).
	Types         []string `json:"types"`
	ResourceTypes []string `json:"resourceTypes"` // every R4 resource type
	Params        []spDef  `json:"params"`
	// Elements is the type model the expressions need: "Type.element" to
	// its [JSON key, FHIR type] pairs (several for a choice element).
	// Backbone elements are named as in the JSON schema (Observation_Component).
	Elements map[string][][2]string `json:"elements"`
}

// spDef is one SearchParameter, trimmed. Expression holds, per base, the
// union parts of the official expression that start with that base.
type spDef struct {
	URL         string            `json:"url"`
	Code        string            `json:"code"`
	Type        string            `json:"type"`
	Base        []string          `json:"base"`
	Expression  map[string]string `json:"expression"`
	XPathUsage  string            `json:"xpathUsage,omitempty"` // when not "normal"
	Target      []string          `json:"target,omitempty"`
	MultipleOr  *bool             `json:"multipleOr,omitempty"`
	MultipleAnd *bool             `json:"multipleAnd,omitempty"`
	Comparator  []string          `json:"comparator,omitempty"`
	Modifier    []string          `json:"modifier,omitempty"`
	Component   []spComponent     `json:"component,omitempty"`
}

type spComponent struct {
	Definition string `json:"definition"`
	Expression string `json:"expression"`
}

// searchModel is the parsed embedded file.
type searchModel struct {
	resourceTypes map[string]bool
	elements      map[string][]elemAlt
	params        map[string]map[string]SearchParam // type -> name -> param
	sorted        map[string][]SearchParam
	defs          map[string][]spUse // type -> definitions that apply, with their base
}

type spUse struct {
	def  *spDef
	base string // the type itself, "Resource" or "DomainResource"
}

var (
	searchModelOnce sync.Once
	searchModelVal  *searchModel
)

// servedOnly restricts the search parameters of a type to the ones listed:
// the others are neither indexed nor accepted in a search (nor announced
// in the CapabilityStatement). AuditEvent is written on every access, the
// hottest write of the server, and every index row it carries is paid on
// each read of a DMP; the access history is searched by patient, date, who
// (agent, altid: the professional's idNatPs), what (entity), action,
// outcome and type/subtype of the interaction. Its other R4 parameters
// (address, agent-name, agent-role, entity-name, entity-role, entity-type,
// policy, site, source, _profile, _security, _source, _tag) are left out, and
// so is the :text modifier of its tokens (SearchParam.NoText).
var servedOnly = map[string]map[string]bool{
	"AuditEvent": {
		"patient": true, "date": true, "agent": true, "altid": true, "entity": true,
		"action": true, "outcome": true, "type": true, "subtype": true,
		"_id": true, "_lastUpdated": true,
	},
}

// TextParam is the name under which the index holds the texts of token
// parameter name (its codings' display, its CodeableConcept's text), the
// values its :text modifier searches.
func TextParam(name string) string { return name + textSuffix }

// IsTextParam reports whether param is a TextParam name.
func IsTextParam(param string) bool { return strings.HasSuffix(param, textSuffix) }

// BaseParam is the parameter whose :text values a TextParam name holds
// ("code" for "code:text"); any other name as it is.
func BaseParam(param string) string {
	name, _ := strings.CutSuffix(param, textSuffix)
	return name
}

const textSuffix = ":text"

// noText says whether typ's tokens leave their texts unindexed (no :text):
// the types of servedOnly, whose index rows are paid on every access.
func noText(typ string) bool { return servedOnly[typ] != nil }

// notDomainResources are the types that derive from Resource directly.
var notDomainResources = map[string]bool{"Binary": true, "Bundle": true, "Parameters": true}

func loadSearchModel() *searchModel {
	searchModelOnce.Do(func() {
		m, err := parseSearchModel(searchParamsJSON)
		if err != nil {
			panic("fhir: embedded search parameters: " + err.Error())
		}
		searchModelVal = m
	})
	return searchModelVal
}

func parseSearchModel(data []byte) (*searchModel, error) {
	var f, local spFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(localSearchParamsJSON, &local); err != nil {
		return nil, fmt.Errorf("local search parameters: %w", err)
	}
	f.Params = append(f.Params, local.Params...)
	for k, v := range local.Elements {
		f.Elements[k] = v
	}
	m := &searchModel{
		resourceTypes: make(map[string]bool, len(f.ResourceTypes)),
		elements:      make(map[string][]elemAlt, len(f.Elements)),
		params:        map[string]map[string]SearchParam{},
		sorted:        map[string][]SearchParam{},
		defs:          map[string][]spUse{},
	}
	for _, t := range f.ResourceTypes {
		m.resourceTypes[t] = true
	}
	for k, v := range f.Elements {
		alts := make([]elemAlt, len(v))
		for i, p := range v {
			alts[i] = elemAlt{Key: p[0], Type: p[1]}
		}
		m.elements[k] = alts
	}
	for _, typ := range TypeNames() {
		params := map[string]SearchParam{}
		var uses []spUse
		// The type's own parameters first, then the Resource-level ones
		// whose code the type does not define itself.
		for pass := 0; pass < 2; pass++ {
			for i := range f.Params {
				d := &f.Params[i]
				if only := servedOnly[typ]; only != nil && !only[d.Code] {
					continue
				}
				for _, b := range d.Base {
					own := b == typ
					inherited := b == "Resource" || b == "DomainResource" && !notDomainResources[typ]
					if pass == 0 && !own || pass == 1 && !inherited {
						continue
					}
					if _, dup := params[d.Code]; dup {
						continue
					}
					params[d.Code] = SearchParam{
						Name:       d.Code,
						Type:       d.Type,
						Expression: d.Expression[b],
						Targets:    d.Target,
						URL:        d.URL,
						NoText:     d.Type == "token" && noText(typ),
					}
					uses = append(uses, spUse{def: d, base: b})
				}
			}
		}
		list := make([]SearchParam, 0, len(params))
		for _, p := range params {
			list = append(list, p)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
		m.params[typ] = params
		m.sorted[typ] = list
		m.defs[typ] = uses
	}
	return m, nil
}

// element implements typeResolver from the embedded type model.
func (m *searchModel) element(t, name string) []elemAlt {
	return m.elements[t+"."+name]
}

// knownResourceType tells whether t is an R4 resource type (any of the 146,
// not only the supported ones).
func knownResourceType(t string) bool {
	return loadSearchModel().resourceTypes[t]
}

// LookupSearchParam returns the search parameter name of a supported
// resource type, including the Resource-level ones (_id, _lastUpdated,
// _tag, _security, _profile, _source).
func LookupSearchParam(resourceType, name string) (SearchParam, bool) {
	p, ok := loadSearchModel().params[resourceType][name]
	return p, ok
}

// SearchParams returns the search parameters of a supported resource type,
// sorted by Name (nil for an unsupported type).
func SearchParams(resourceType string) []SearchParam {
	return slices.Clone(loadSearchModel().sorted[resourceType])
}

// indexParam is one parameter ExtractIndex fills: its compiled expression
// and how its values are read.
type indexParam struct {
	name string
	kind string // the SearchParameter type
	root string // the type of the focus: the resource type, or Resource
	expr fpExpr
	// text is the name the values of a token's :text are indexed under
	// ("code:text"), "" for other kinds and NoText tokens.
	text string
	// reads are the members of the resource expr reads (fpReads); readsAll
	// when it cannot tell.
	reads    []fpPath
	readsAll bool
}

// readsOf is, for each type of plans, the trie of the members its
// parameters read; a type with a parameter that may read anything has none.
func readsOf(plans map[string][]indexParam) map[string]*memberTrie {
	out := make(map[string]*memberTrie, len(plans))
	for typ, plan := range plans {
		var paths []fpPath
		all := false
		for _, p := range plan {
			all = all || p.readsAll
			paths = append(paths, p.reads...)
		}
		if !all {
			out[typ] = newMemberTrie(paths)
		}
	}
	return out
}

var (
	indexPlansOnce sync.Once
	indexPlans     map[string][]indexParam
	indexReads     map[string]*memberTrie // readsOf(indexPlans)
	indexPlanErrs  []error
)

// notIndexed are Resource-level parameters the store answers itself.
var notIndexed = map[string]bool{"_id": true, "_lastUpdated": true}

// loadIndexPlans compiles, once, the expression of every parameter that
// ExtractIndex fills: all but union parameters (unions.go).
func loadIndexPlans() map[string][]indexParam {
	indexPlansOnce.Do(func() {
		indexPlans, indexPlanErrs = buildIndexPlans(IsUnionParam)
		indexReads = readsOf(indexPlans)
	})
	return indexPlans
}

// buildIndexPlans compiles the expression of every parameter but those skip
// names.
func buildIndexPlans(skip func(typ, name string) bool) (map[string][]indexParam, []error) {
	m := loadSearchModel()
	plans := map[string][]indexParam{}
	var errs []error
	for typ, uses := range m.defs {
		var plan []indexParam
		for _, u := range uses {
			d := u.def
			expr := d.Expression[u.base]
			if expr == "" || notIndexed[d.Code] || d.Type == "composite" || d.Type == "special" || skip != nil && skip(typ, d.Code) {
				continue
			}
			root := typ
			if u.base != typ {
				root = u.base
			}
			a, err := parseFHIRPath(expr)
			var fn fpExpr
			if err == nil {
				fn, err = compileParsed(a, expr, root, m)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", typ, d.Code, err))
				continue
			}
			reads, known := fpReads(a)
			p := indexParam{name: d.Code, kind: d.Type, root: root, expr: fn, reads: reads, readsAll: !known}
			if d.Type == "token" && !noText(typ) {
				p.text = TextParam(d.Code)
			}
			plan = append(plan, p)
		}
		sort.SliceStable(plan, func(i, j int) bool { return plan[i].name < plan[j].name })
		plans[typ] = plan
	}
	return plans, errs
}
