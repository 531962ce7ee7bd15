package mongo

import (
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/dmp-fhir/dmp-fhir/store"
)

// indexSpec declares one index. Open creates them all; every query below
// names the index it is built for (and passes it as a hint), and the tests
// check that its filter and sort fit that index.
type indexSpec struct {
	coll   string
	name   string
	keys   bson.D
	unique bool
}

// Index names.
const (
	ixHistoryVersion  = "history_version"  // the version arbiter; Read, VRead
	ixHistoryInstance = "history_instance" // instance history
	ixHistoryType     = "history_type"     // type history
	ixHistorySystem   = "history_system"   // system history

	// Searches (search.go) and FindByToken, on resources.
	ixType        = "search_type"         // _id, no positive condition
	ixLastUpdated = "search_lastupdated"  // _lastUpdated, _sort=_lastUpdated
	ixDate        = "search_date"         // _sort=-date, date=ge/gt (max High)
	ixToken       = "search_token"        // tokens in id order (+ date=ge as a key filter); FindByToken
	ixTokenDate   = "search_token_date"   // a token + date=ge or _sort=-date
	ixString      = "search_string"       // string prefix, :contains
	ixStringExact = "search_string_exact" // string :exact
	ixRef         = "search_ref"          // references, chains
	ixDateLow     = "search_date_low"     // date conditions on Low (eq, le, lt, sa, ap)
	ixDateHigh    = "search_date_high"    // date conditions on High only (ge, gt, eb)
	ixNumber      = "search_number"       // number, quantity
	ixURI         = "search_uri"          // uri
	ixHas         = "search_has"          // :missing=false
	ixPat         = "search_pat"          // a patient's resources, in id order
	ixPatDate     = "search_pat_date"     // a patient's resources by date, newest first
	ixPatDateAsc  = "search_pat_date_asc" // a patient's resources by date, oldest first
	ixPatToken    = "search_pat_token"    // a patient's resources with a token
)

// skDesc and skAsc are the sort-key fields of a parameter: its largest
// value for a descending sort, its smallest (inverted) for an ascending one;
// both sort descending.
func skDesc(param string) string { return fSk + "." + param + ".d" }
func skAsc(param string) string  { return fSk + "." + param + ".a" }

// The sort keys of "date" (the clinical date of most types) are the ones
// indexes name.
var (
	fSkDateDesc = skDesc("date")
	fSkDateAsc  = skAsc("date")
)

var indexes = []indexSpec{
	// Unique (type, id, version): inserting version n+1 of a resource is
	// what decides which of several concurrent writers made it.
	{historyColl, ixHistoryVersion, bson.D{{Key: fType, Value: 1}, {Key: fID, Value: 1}, {Key: fVersion, Value: -1}}, true},
	{historyColl, ixHistoryInstance, bson.D{{Key: fType, Value: 1}, {Key: fID, Value: 1}, {Key: fLastUpdated, Value: -1}, {Key: fVersion, Value: -1}}, false},
	{historyColl, ixHistoryType, bson.D{{Key: fType, Value: 1}, {Key: fLastUpdated, Value: -1}, {Key: fID, Value: -1}, {Key: fVersion, Value: -1}}, false},
	{historyColl, ixHistorySystem, bson.D{{Key: fLastUpdated, Value: -1}, {Key: fType, Value: -1}, {Key: fID, Value: -1}, {Key: fVersion, Value: -1}}, false},

	// resources: a deleted resource's current document has no index values,
	// sort keys or tokens, so an index on one of them needs no deleted flag;
	// the others start with (type, deleted). Multikey (ix.*) indexes hold one
	// array each (MongoDB refuses two arrays in one index key): pat and sk.*
	// are scalars, which is why the patient's compound indexes use pat, not
	// ix.ref.
	{resourcesColl, ixType, keys(fType, 1, fDeleted, 1, fID, 1), false},
	{resourcesColl, ixLastUpdated, keys(fType, 1, fDeleted, 1, fLastUpdated, 1, fID, 1), false},
	{resourcesColl, ixDate, keys(fType, 1, fDeleted, 1, fSkDateDesc, -1, fID, 1), false},
	{resourcesColl, ixToken, keys(fType, 1, fTokens, 1, fID, 1, fSkDateDesc, -1), false},
	{resourcesColl, ixTokenDate, keys(fType, 1, fTokens, 1, fSkDateDesc, -1, fID, 1), false},
	{resourcesColl, ixString, keys(fType, 1, fStrings, 1, fID, 1), false},
	{resourcesColl, ixStringExact, keys(fType, 1, fStringsX, 1, fID, 1), false},
	{resourcesColl, ixRef, keys(fType, 1, fRefs, 1, fID, 1), false},
	{resourcesColl, ixDateLow, keys(fType, 1, fDateLow, 1, fID, 1), false},
	{resourcesColl, ixDateHigh, keys(fType, 1, fDateHigh, 1, fID, 1), false},
	{resourcesColl, ixNumber, keys(fType, 1, fNumbers, 1, fID, 1), false},
	{resourcesColl, ixURI, keys(fType, 1, fURIs, 1, fID, 1), false},
	{resourcesColl, ixHas, keys(fType, 1, fHas, 1, fID, 1), false},
	{resourcesColl, ixPat, keys(fType, 1, fPat, 1, fID, 1), false},
	{resourcesColl, ixPatDate, keys(fType, 1, fPat, 1, fSkDateDesc, -1, fID, 1), false},
	{resourcesColl, ixPatDateAsc, keys(fType, 1, fPat, 1, fSkDateAsc, -1, fID, 1), false},
	{resourcesColl, ixPatToken, keys(fType, 1, fPat, 1, fTokens, 1, fID, 1), false},
}

// keys builds an index key from field, direction pairs.
func keys(kv ...any) bson.D {
	d := make(bson.D, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		d = append(d, bson.E{Key: kv[i].(string), Value: kv[i+1]})
	}
	return d
}

// indexByName returns the declared index called name.
func indexByName(name string) *indexSpec {
	for i := range indexes {
		if indexes[i].name == name {
			return &indexes[i]
		}
	}
	return nil
}

// hasKey reports whether the index has field among its keys.
func (ix *indexSpec) hasKey(field string) bool {
	for _, e := range ix.keys {
		if e.Key == field {
			return true
		}
	}
	return false
}

// query is one find: its collection, filter, sort and the index it is built
// for (sent as a hint; fields fixed by equality are left out of the sort).
type query struct {
	coll   string
	filter bson.D
	sort   bson.D
	index  string
	limit  int64
}

// latestQuery finds the newest version of typ/id: the truth about the
// current version, whatever the resources collection says.
func latestQuery(typ, id string) query {
	return query{
		coll:   historyColl,
		filter: bson.D{{Key: fType, Value: typ}, {Key: fID, Value: id}},
		sort:   bson.D{{Key: fVersion, Value: -1}},
		index:  ixHistoryVersion,
		limit:  1,
	}
}

func versionQuery(typ, id string, version int64) query {
	return query{
		coll:   historyColl,
		filter: bson.D{{Key: fType, Value: typ}, {Key: fID, Value: id}, {Key: fVersion, Value: version}},
		index:  ixHistoryVersion,
		limit:  1,
	}
}

func tokenQuery(typ string, q store.TokenQuery, limit int) query {
	return query{
		coll:   resourcesColl,
		filter: bson.D{{Key: fType, Value: typ}, {Key: fTokens, Value: queryTokenKey(q)}},
		sort:   bson.D{{Key: fID, Value: 1}},
		index:  ixToken,
		limit:  int64(limit),
	}
}

// defaultCount is the page size of a history query without Count.
const defaultCount = 50

var errHistoryIDWithoutType = errors.New("store: instance history needs a type")

// historyQuery lists versions newest first in the order (lastUpdated, type,
// id, version) all descending, the same order as the SQLite engine; After
// continues strictly after a key (keyset paging).
func historyQuery(q store.HistoryQuery) (query, error) {
	if q.ID != "" && q.Type == "" {
		return query{}, errHistoryIDWithoutType
	}
	hq := query{coll: historyColl, filter: bson.D{}, limit: int64(q.Count)}
	if hq.limit <= 0 {
		hq.limit = defaultCount
	}
	var order []string // the order fields not fixed by the filter
	switch {
	case q.ID != "":
		hq.index = ixHistoryInstance
		hq.filter = bson.D{{Key: fType, Value: q.Type}, {Key: fID, Value: q.ID}}
		order = []string{fLastUpdated, fVersion}
	case q.Type != "":
		hq.index = ixHistoryType
		hq.filter = bson.D{{Key: fType, Value: q.Type}}
		order = []string{fLastUpdated, fID, fVersion}
	default:
		hq.index = ixHistorySystem
		order = []string{fLastUpdated, fType, fID, fVersion}
	}
	for _, f := range order {
		hq.sort = append(hq.sort, bson.E{Key: f, Value: -1})
	}
	lu := bson.D{}
	if !q.Since.IsZero() {
		lu = append(lu, bson.E{Key: "$gte", Value: q.Since.UTC()})
	}
	if a := q.After; a != nil {
		// (lastUpdated, type, id, version) < After, lexicographically; the
		// $lte bound on lastUpdated keeps the scan on the index range.
		lu = append(lu, bson.E{Key: "$lte", Value: a.LastUpdated.UTC()})
		hq.filter = append(hq.filter, bson.E{Key: fLastUpdated, Value: lu})
		hq.filter = append(hq.filter, bson.E{Key: "$or", Value: afterClauses(a, order)})
		return hq, nil
	}
	if len(lu) > 0 {
		hq.filter = append(hq.filter, bson.E{Key: fLastUpdated, Value: lu})
	}
	return hq, nil
}

// afterClauses says "strictly after a in the descending order of fields":
// {f1 < a.f1} or {f1 = a.f1, f2 < a.f2} or ...
func afterClauses(a *store.HistoryKey, fields []string) bson.A {
	value := func(f string) any {
		switch f {
		case fLastUpdated:
			return a.LastUpdated.UTC().Truncate(time.Millisecond)
		case fType:
			return a.Type
		case fID:
			return a.ID
		default:
			return a.Version
		}
	}
	var clauses bson.A
	for i, f := range fields {
		c := bson.D{}
		for _, eq := range fields[:i] {
			c = append(c, bson.E{Key: eq, Value: value(eq)})
		}
		c = append(c, bson.E{Key: f, Value: bson.D{{Key: "$lt", Value: value(f)}}})
		clauses = append(clauses, c)
	}
	return clauses
}
