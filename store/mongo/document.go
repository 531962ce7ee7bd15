package mongo

import (
	"strconv"
	"strings"
	"time"

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
	fTokens      = fIx + "." + ixTokens
)

// document is one version of a resource as both collections store it: the
// resources document of Type/id is a copy of its newest history document
// under another _id.
type document struct {
	Key         string    `bson:"_id"`
	Type        string    `bson:"type"`
	ID          string    `bson:"id"`
	Version     int64     `bson:"version"`
	LastUpdated time.Time `bson:"lastUpdated"` // BSON date, milliseconds
	Deleted     bool      `bson:"deleted"`
	// Body is the JSON exactly as store.Prepare stamped it, kept as BSON
	// binary so that no byte changes (decimals' text, member order, unknown
	// elements, even invalid UTF-8 inside strings). Absent for a deletion.
	Body []byte `bson:"body,omitempty"`
	// Ix holds the flat index values lookups filter on; see indexValues.
	Ix indexValues `bson:"ix"`
}

// indexValues is the "ix" sub-document: one array per kind of search
// parameter, each a multikey-indexed list of strings (or, for the kinds to
// come, numbers and dates) that a lookup matches with ONE equality. Today:
// tokens. The search issue adds its kinds here as new fields (ix.ref,
// ix.str, ix.date...) with their own indexes, without touching the others.
type indexValues struct {
	// Tokens: for each token, its exact key param|system|code (system empty
	// for a token without a system) and its any-system key param|code. See
	// tokenKey.
	Tokens []string `bson:"tok,omitempty"`
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
		d.Ix = indexValuesOf(nv.Index)
	}
	return d
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
	seen := map[string]bool{}
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			v.Tokens = append(v.Tokens, k)
		}
	}
	for _, t := range ix.Tokens {
		add(tokenKey(t.Param, t.System, t.Code, true))
		add(tokenKey(t.Param, "", t.Code, false))
	}
	return v
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
