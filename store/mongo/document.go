package mongo

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// Collection names.
const (
	resourcesColl = "resources" // the current version of each resource, _id "Type/id"
	historyColl   = "history"   // every version, deletions included, _id "Type/id/version"
)

// Field names, shared by the documents, the filters and the index
// declarations.
const (
	fType        = "type"
	fID          = "id"
	fVersion     = "version"
	fLastUpdated = "lastUpdated"
	fDeleted     = "deleted"
	fBody        = "body"
	fIx          = "ix"
	fSk          = "sk"
	fPat         = "pat"
	fTokens      = fIx + "." + ixTokens
	fStrings     = fIx + ".str"
	fStringsX    = fIx + ".strx"
	fRefs        = fIx + ".ref"
	fDateLow     = fIx + ".dlo"
	fDateHigh    = fIx + ".dhi"
	fNumbers     = fIx + ".num"
	fURIs        = fIx + ".uri"
	fHas         = fIx + ".has"
)

// document is one version of a resource as both collections store it: the
// resources document of Type/id is a copy of its newest history document
// under another _id, plus the index values and sort keys (history has ix {}
// and no sk).
type document struct {
	Key         string    `bson:"_id"`
	Type        string    `bson:"type"`
	ID          string    `bson:"id"`
	Version     int64     `bson:"version"`
	LastUpdated time.Time `bson:"lastUpdated"` // BSON date, milliseconds
	Deleted     bool      `bson:"deleted"`
	// Pat is the patient compartment the version belongs to (see
	// patientOf): the patient's id, patMany for several patients, absent
	// for none. The shard key of a sharded cluster (docs/MONGODB.md).
	Pat string `bson:"pat,omitempty"`
	// Body is the JSON exactly as store.Prepare stamped it, kept as BSON
	// binary so that no byte changes (decimals' text, member order, unknown
	// elements, even invalid UTF-8 inside strings). Absent for a deletion.
	Body []byte `bson:"body,omitempty"`
	// Ix holds the flat index values searches filter on; see indexValues.
	Ix indexValues `bson:"ix"`
	// Sk holds the per-parameter sort keys; see sortKeysOf.
	Sk bson.D `bson:"sk,omitempty"`
}

// indexValues is the "ix" sub-document: one array of strings per kind of
// search parameter, each multikey-indexed, each string starting with the
// parameter's name and "|", so that a search condition is ONE predicate on
// one array: an equality, an $in, an anchored regular expression (which an
// index serves as the range of its literal prefix), or a range. A deleted
// resource's document has none.
type indexValues struct {
	// Tokens: for each token, its exact key param|system|code (system empty
	// for a token without a system) and its any-system key param|code. See
	// tokenKey.
	Tokens []string `bson:"tok,omitempty"`
	// Strings: param|norm, the folded value (prefix and :contains search).
	Strings []string `bson:"str,omitempty"`
	// StringsExact: param|exact, the value as written (:exact).
	StringsExact []string `bson:"strx,omitempty"`
	// Refs: param|Type/id and param|*/id (any type) for a reference with
	// an id, param|url for one with a URL (both when the extractor gives
	// both).
	Refs []string `bson:"ref,omitempty"`
	// DateLow: param|low|high per date value, low and high as dateKey: a
	// range on low is a key range, and one regular expression tests low
	// and high of the same value.
	DateLow []string `bson:"dlo,omitempty"`
	// DateHigh: param|high per date value, for conditions on high only.
	DateHigh []string `bson:"dhi,omitempty"`
	// Numbers: param|key (numKey); for a quantity with a unit also
	// param|system|code|key (either may be empty) and, with a code,
	// param|code|key (any system); system and code escaped as in tokenKey.
	Numbers []string `bson:"num,omitempty"`
	// URIs: param|value.
	URIs []string `bson:"uri,omitempty"`
	// Has: the names of the parameters with at least one value (:missing).
	Has []string `bson:"has,omitempty"`
}

const ixTokens = "tok"

func resourceKey(typ, id string) string { return typ + "/" + id }

func historyKey(typ, id string, version int64) string {
	return typ + "/" + id + "/" + strconv.FormatInt(version, 10)
}

// newDocument is the history document of nv.
func newDocument(nv *store.NewVersion) *document {
	r := &nv.Resource
	d := &document{
		Key:         historyKey(r.Type, r.ID, r.Version),
		Type:        r.Type,
		ID:          r.ID,
		Version:     r.Version,
		LastUpdated: r.LastUpdated.UTC().Truncate(time.Millisecond),
		Deleted:     r.Deleted,
	}
	if !r.Deleted {
		d.Body = r.Body
		d.setIndex(nv.Index)
	}
	return d
}

// setIndex sets the index values, sort keys and patient compartment of d
// from ix.
func (d *document) setIndex(ix fhir.Index) {
	d.Ix = indexValuesOf(ix)
	d.Sk = sortKeysOf(ix)
	d.Pat = patientOf(d.Type, d.ID, ix)
}

// history is d as the history collection stores it: without index values
// and sort keys (nothing searches history; FerretDB's roll-forward extracts
// them again), with pat (a shard key must be in every document).
func (d *document) history() *document {
	h := *d
	h.Ix, h.Sk = indexValues{}, nil
	return &h
}

// current is d as the resources collection stores it.
func (d *document) current() *document {
	c := *d
	c.Key = resourceKey(d.Type, d.ID)
	return &c
}

func (d *document) resource() *store.Resource {
	return &store.Resource{
		Type:        d.Type,
		ID:          d.ID,
		Version:     d.Version,
		LastUpdated: d.LastUpdated.UTC(),
		Deleted:     d.Deleted,
		Body:        d.Body,
	}
}

func indexValuesOf(ix fhir.Index) indexValues {
	var v indexValues
	seen := map[*[]string]map[string]bool{}
	add := func(list *[]string, k string) {
		if seen[list] == nil {
			seen[list] = map[string]bool{}
		}
		if !seen[list][k] {
			seen[list][k] = true
			*list = append(*list, k)
		}
	}
	has := map[string]bool{}
	for _, t := range ix.Tokens {
		has[t.Param] = true
		add(&v.Tokens, tokenKey(t.Param, t.System, t.Code, true))
		add(&v.Tokens, tokenKey(t.Param, "", t.Code, false))
	}
	for _, s := range ix.Strings {
		has[s.Param] = true
		add(&v.Strings, s.Param+"|"+s.Norm)
		add(&v.StringsExact, s.Param+"|"+s.Exact)
	}
	for _, r := range ix.References {
		if r.ID != "" {
			has[r.Param] = true
			add(&v.Refs, r.Param+"|"+r.Type+"/"+r.ID)
			add(&v.Refs, r.Param+"|*/"+r.ID)
		}
		if r.URL != "" {
			has[r.Param] = true
			add(&v.Refs, r.Param+"|"+r.URL)
		}
	}
	for _, d := range ix.Dates {
		has[d.Param] = true
		lo, hi := dateKey(d.Low), dateKey(d.High)
		add(&v.DateLow, d.Param+"|"+lo+"|"+hi)
		add(&v.DateHigh, d.Param+"|"+hi)
	}
	for _, n := range ix.Numbers {
		k, ok := numKey(n.Value)
		if !ok {
			continue
		}
		has[n.Param] = true
		add(&v.Numbers, escape(n.Param)+"|"+k)
		if n.System != "" || n.Code != "" {
			add(&v.Numbers, escape(n.Param)+"|"+escape(n.System)+"|"+escape(n.Code)+"|"+k)
		}
		if n.Code != "" {
			add(&v.Numbers, escape(n.Param)+"|"+escape(n.Code)+"|"+k)
		}
	}
	for _, u := range ix.URIs {
		has[u.Param] = true
		add(&v.URIs, u.Param+"|"+u.Value)
	}
	for p := range has {
		v.Has = append(v.Has, p)
	}
	slices.Sort(v.Has)
	return v
}

// sortKeysOf is the "sk" sub-document: for each date, string, token
// (code), number and uri parameter with a value, {a: ..., d: ...} where d
// is the largest value (a date's High) and a the smallest (a date's Low)
// in reversed order (invertFixed, invertString), so that BOTH directions
// sort descending on a plain field and a resource without a value (no
// field, null) comes last in both. Strings are cut to sortStringMax bytes.
// Parameters named "x:text" get none.
func sortKeysOf(ix fhir.Index) bson.D {
	type minmax struct {
		kind     byte // 'd' date, 'n' number, 's' string-like
		min, max string
	}
	keys := map[string]*minmax{}
	put := func(param string, kind byte, lo, hi string) {
		if strings.Contains(param, ":") {
			return
		}
		m := keys[param]
		if m == nil {
			keys[param] = &minmax{kind: kind, min: lo, max: hi}
			return
		}
		if m.kind != kind {
			return // one parameter, one kind
		}
		m.min, m.max = min(m.min, lo), max(m.max, hi)
	}
	for _, d := range ix.Dates {
		put(d.Param, 'd', dateKey(d.Low), dateKey(d.High))
	}
	for _, n := range ix.Numbers {
		if k, ok := numKey(n.Value); ok {
			put(n.Param, 'n', k, k)
		}
	}
	for _, s := range ix.Strings {
		v := truncate(s.Norm, sortStringMax)
		put(s.Param, 's', v, v)
	}
	for _, t := range ix.Tokens {
		v := truncate(t.Code, sortStringMax)
		put(t.Param, 's', v, v)
	}
	for _, u := range ix.URIs {
		v := truncate(u.Value, sortStringMax)
		put(u.Param, 's', v, v)
	}
	params := make([]string, 0, len(keys))
	for p := range keys {
		params = append(params, p)
	}
	slices.Sort(params)
	var sk bson.D
	for _, p := range params {
		m := keys[p]
		var a string
		switch m.kind {
		case 'd':
			a = invertFixed(m.min, decimalDigits)
		case 'n':
			a = invertFixed(m.min, hexDigits)
		default:
			a = invertString(m.min)
		}
		sk = append(sk, bson.E{Key: p, Value: bson.D{{Key: "a", Value: a}, {Key: "d", Value: m.max}}})
	}
	return sk
}

// patMany is the pat of a resource in several patients' compartments.
// Resource ids never contain "*".
const patMany = "*"

// patientOf is the patient compartment of a resource: the ids of the
// Patient references under the type's patient compartment parameters
// (fhir.ResourceType.PatientCompartment) and under "patient", plus its own
// id for a Patient. One id gives that id, several patMany, none "". So a
// resource whose compartment parameter (or "patient") refers to Patient/X
// always has pat X or patMany, which searches add as an indexed predicate.
func patientOf(typ, id string, ix fhir.Index) string {
	params := map[string]bool{"patient": true}
	if rt, ok := fhir.LookupType(typ); ok {
		for _, p := range rt.PatientCompartment {
			params[p] = true
		}
	}
	pat := ""
	if typ == "Patient" {
		pat = id
	}
	for _, r := range ix.References {
		if r.Type != "Patient" || r.ID == "" || !params[r.Param] {
			continue
		}
		switch pat {
		case "", r.ID:
			pat = r.ID
		default:
			return patMany
		}
	}
	return pat
}

// tokenKey encodes a token as one string. With exact, the key is
// param|system|code and matches that system only (system "" matches tokens
// without a system, FHIR `|code`); without, it is param|code and matches the
// code in any system (FHIR `code`). The parts are escaped (\ and |), so an
// exact key always has two unescaped separators and an any-system key one:
// no value of one form can be taken for the other.
func tokenKey(param, system, code string, exact bool) string {
	if exact {
		return escape(param) + "|" + escape(system) + "|" + escape(code)
	}
	return escape(param) + "|" + escape(code)
}

// queryTokenKey is the one key a TokenQuery matches.
func queryTokenKey(q store.TokenQuery) string {
	switch {
	case q.NoSystem:
		return tokenKey(q.Param, "", q.Code, true)
	case q.System != "":
		return tokenKey(q.Param, q.System, q.Code, true)
	default:
		return tokenKey(q.Param, "", q.Code, false)
	}
}

var escaper = strings.NewReplacer(`\`, `\\`, `|`, `\|`)

func escape(s string) string { return escaper.Replace(s) }
