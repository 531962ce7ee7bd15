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
	ixResourcesToken  = "resources_token"  // FindByToken
)

var indexes = []indexSpec{
	// Unique (type, id, version): inserting version n+1 of a resource is
	// what decides which of several concurrent writers made it.
	{historyColl, ixHistoryVersion, bson.D{{Key: fType, Value: 1}, {Key: fID, Value: 1}, {Key: fVersion, Value: -1}}, true},
	{historyColl, ixHistoryInstance, bson.D{{Key: fType, Value: 1}, {Key: fID, Value: 1}, {Key: fLastUpdated, Value: -1}, {Key: fVersion, Value: -1}}, false},
	{historyColl, ixHistoryType, bson.D{{Key: fType, Value: 1}, {Key: fLastUpdated, Value: -1}, {Key: fID, Value: -1}, {Key: fVersion, Value: -1}}, false},
	{historyColl, ixHistorySystem, bson.D{{Key: fLastUpdated, Value: -1}, {Key: fType, Value: -1}, {Key: fID, Value: -1}, {Key: fVersion, Value: -1}}, false},
	// Multikey on ix.tok; a deleted resource's current document has no
	// index values, so the filter needs no deleted flag.
	{resourcesColl, ixResourcesToken, bson.D{{Key: fType, Value: 1}, {Key: fTokens, Value: 1}, {Key: fID, Value: 1}}, false},
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
		index:  ixResourcesToken,
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
