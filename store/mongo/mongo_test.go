package mongo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/dmp-fhir/dmp-fhir/internal/mongotest"
	"github.com/dmp-fhir/dmp-fhir/store"
	"github.com/dmp-fhir/dmp-fhir/store/storetest"
)

func TestMain(m *testing.M) { mongotest.Main(m) }

var bg = context.Background()

// open opens a store on a fresh database; the caller closes it.
func open(t *testing.T, database string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(bg, time.Minute)
	defer cancel()
	s, err := Open(ctx, mongotest.Start(t), database)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fresh opens a store on a fresh database and closes it at the end of the test.
func fresh(t *testing.T) *Store {
	s := open(t, mongotest.Database(t))
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, mongotest.Database(t)) })
}

func TestSearchContract(t *testing.T) {
	storetest.RunSearch(t, func(t *testing.T) store.Store { return open(t, mongotest.Database(t)) })
}

func TestInfo(t *testing.T) {
	s := fresh(t)
	info := s.Info()
	if info.Engine != "mongodb" {
		t.Errorf("engine %q", info.Engine)
	}
	if os.Getenv(mongotest.EnvURI) == "" {
		// The in-process FerretDB: no transactions, not concurrent-safe.
		if info.Transactions || info.ConcurrentSafe || !s.ferretDB {
			t.Errorf("FerretDB not recognised: %+v ferretDB=%v", info, s.ferretDB)
		}
	}
	if err := s.Ping(bg); err != nil {
		t.Fatal(err)
	}
}

// TestOpenCreatesIndexesIdempotently opens the same database twice and
// checks that every declared index is there, once, as declared.
func TestOpenCreatesIndexesIdempotently(t *testing.T) {
	db := mongotest.Database(t)
	for round := 1; round <= 2; round++ {
		s := open(t, db)
		for _, coll := range []string{resourcesColl, historyColl} {
			cur, err := s.db.Collection(coll).Indexes().List(bg)
			if err != nil {
				t.Fatal(err)
			}
			var got []struct {
				Name   string `bson:"name"`
				Key    bson.D `bson:"key"`
				Unique bool   `bson:"unique"`
			}
			if err := cur.All(bg, &got); err != nil {
				t.Fatal(err)
			}
			byName := map[string]int{}
			for i, ix := range got {
				byName[ix.Name] = i
			}
			want := 1 // _id
			for _, spec := range indexes {
				if spec.coll != coll {
					continue
				}
				want++
				i, ok := byName[spec.name]
				if !ok {
					t.Fatalf("round %d: index %s.%s missing; have %v", round, coll, spec.name, got)
				}
				ix := got[i]
				if g, w := keyString(ix.Key), keyString(spec.keys); g != w {
					t.Errorf("round %d: index %s keys %s, want %s", round, spec.name, g, w)
				}
				if ix.Unique != spec.unique {
					t.Errorf("round %d: index %s unique=%v, want %v", round, spec.name, ix.Unique, spec.unique)
				}
			}
			if len(got) != want {
				t.Errorf("round %d: %s has %d indexes, want %d: %v", round, coll, len(got), want, got)
			}
		}
		s.Close()
	}
}

// keyString writes an index key in order, its directions as integers
// whatever number type the server returned.
func keyString(d bson.D) string {
	var parts []string
	for _, e := range d {
		dir := e.Value
		switch n := e.Value.(type) {
		case int32:
			dir = int(n)
		case int64:
			dir = int(n)
		case float64:
			dir = int(n)
		}
		parts = append(parts, fmt.Sprintf("%s:%v", e.Key, dir))
	}
	return strings.Join(parts, ",")
}

// TestQueriesFitTheirIndexes checks, without explain, that every query the
// engine sends filters only on a prefix of the index it names, and that its
// sort is the index order after the fields fixed by equality.
func TestQueriesFitTheirIndexes(t *testing.T) {
	after := &store.HistoryKey{LastUpdated: time.Now(), Type: "Patient", ID: "p1", Version: 3}
	since := time.Now().Add(-time.Hour)
	queries := map[string]query{
		"read":                   latestQuery("Patient", "p1"),
		"vread":                  versionQuery("Patient", "p1", 2),
		"token system|code":      tokenQuery("Patient", store.TokenQuery{Param: "identifier", System: "urn:s", Code: "c"}, 10),
		"token code":             tokenQuery("Patient", store.TokenQuery{Param: "identifier", Code: "c"}, 10),
		"token |code":            tokenQuery("Patient", store.TokenQuery{Param: "identifier", Code: "c", NoSystem: true}, 10),
		"history system":         mustHistory(t, store.HistoryQuery{}),
		"history system since":   mustHistory(t, store.HistoryQuery{Since: since}),
		"history system after":   mustHistory(t, store.HistoryQuery{Since: since, After: after}),
		"history type":           mustHistory(t, store.HistoryQuery{Type: "Patient"}),
		"history type since":     mustHistory(t, store.HistoryQuery{Type: "Patient", Since: since}),
		"history type after":     mustHistory(t, store.HistoryQuery{Type: "Patient", After: after}),
		"history instance":       mustHistory(t, store.HistoryQuery{Type: "Patient", ID: "p1"}),
		"history instance since": mustHistory(t, store.HistoryQuery{Type: "Patient", ID: "p1", Since: since}),
		"history instance after": mustHistory(t, store.HistoryQuery{Type: "Patient", ID: "p1", Since: since, After: after}),
	}
	for name, q := range queries {
		if err := fits(q); err != nil {
			t.Errorf("%s: %v\nfilter %v sort %v", name, err, q.filter, q.sort)
		}
	}
	if _, err := historyQuery(store.HistoryQuery{ID: "p1"}); err == nil {
		t.Error("history by id without type must be refused (no index serves it)")
	}
}

func mustHistory(t *testing.T, q store.HistoryQuery) query {
	hq, err := historyQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	return hq
}

func fits(q query) error {
	i := slices.IndexFunc(indexes, func(s indexSpec) bool { return s.name == q.index })
	if i < 0 {
		return fmt.Errorf("index %q is not declared", q.index)
	}
	spec := indexes[i]
	if spec.coll != q.coll {
		return fmt.Errorf("index %s is on %s, the query on %s", spec.name, spec.coll, q.coll)
	}
	eq, fields := map[string]bool{}, map[string]bool{}
	collectFields(q.filter, eq, fields, true)
	for k, e := range spec.keys {
		if k < len(fields) && !fields[e.Key] {
			return fmt.Errorf("filter fields %v are not a prefix of index %s %v", fields, spec.name, spec.keys)
		}
	}
	if len(fields) > len(spec.keys) {
		return fmt.Errorf("filter fields %v exceed index %s %v", fields, spec.name, spec.keys)
	}
	j := 0
	for j < len(spec.keys) && eq[spec.keys[j].Key] {
		j++
	}
	if len(q.sort) == 0 {
		return nil
	}
	if j+len(q.sort) > len(spec.keys) {
		return fmt.Errorf("sort %v does not follow index %s %v after its equality prefix", q.sort, spec.name, spec.keys)
	}
	flip := 0
	for k, s := range q.sort {
		ik := spec.keys[j+k]
		if ik.Key != s.Key {
			return fmt.Errorf("sort %v does not follow index %s %v after its equality prefix", q.sort, spec.name, spec.keys)
		}
		d := 1
		if fmt.Sprint(ik.Value) != fmt.Sprint(s.Value) {
			d = -1
		}
		if flip != 0 && d != flip {
			return fmt.Errorf("sort %v mixes directions against index %s %v", q.sort, spec.name, spec.keys)
		}
		flip = d
	}
	return nil
}

// collectFields gathers the fields a filter constrains, and those it fixes
// by a top-level equality.
func collectFields(filter bson.D, eq, fields map[string]bool, top bool) {
	for _, e := range filter {
		if strings.HasPrefix(e.Key, "$") { // $or, $and
			for _, c := range e.Value.(bson.A) {
				collectFields(c.(bson.D), eq, fields, false)
			}
			continue
		}
		fields[e.Key] = true
		if d, ok := e.Value.(bson.D); top && (!ok || len(d) == 0 || !strings.HasPrefix(d[0].Key, "$")) {
			eq[e.Key] = true
		}
	}
}

func patient(identifiers string) []byte {
	return []byte(`{"resourceType":"Patient","identifier":[` + identifiers + `],"birthDate":"1970-01-01","x":1.50}`)
}

// TestDocumentLayout checks what lands in the collections.
func TestDocumentLayout(t *testing.T) {
	s := fresh(t)
	r, err := s.Create(bg, "Patient", "p1", patient(`{"system":"urn:a|b","value":"c|d"},{"value":"local"}`))
	if err != nil {
		t.Fatal(err)
	}
	var h, c bson.M
	if err := s.history.FindOne(bg, bson.D{{Key: "_id", Value: "Patient/p1/1"}}).Decode(&h); err != nil {
		t.Fatal(err)
	}
	if err := s.resources.FindOne(bg, bson.D{{Key: "_id", Value: "Patient/p1"}}).Decode(&c); err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]bson.M{"history": h, "resources": c} {
		body, ok := d["body"].(primitive.Binary) // kept as bytes, not converted to BSON
		if !ok || !bytes.Equal(body.Data, r.Body) {
			t.Errorf("%s body = %T %v, want the stamped bytes %s", name, d["body"], d["body"], r.Body)
		}
		if d["type"] != "Patient" || d["id"] != "p1" || d["version"] != int64(1) || d["deleted"] != false {
			t.Errorf("%s fields: %v", name, d)
		}
		if lu, ok := d["lastUpdated"].(primitive.DateTime); !ok || !lu.Time().Equal(r.LastUpdated) {
			t.Errorf("%s lastUpdated = %T %v, want date %v", name, d["lastUpdated"], d["lastUpdated"], r.LastUpdated)
		}
		if name == "history" { // index values live in resources only
			if len(d["ix"].(bson.M)) != 0 || d["sk"] != nil || d["pat"] != "p1" {
				t.Errorf("history ix %v sk %v pat %v; want {}, none, p1", d["ix"], d["sk"], d["pat"])
			}
			continue
		}
		var idTokens []any // the identifier's keys (the extractor adds other parameters')
		for _, k := range d["ix"].(bson.M)["tok"].(bson.A) {
			if strings.HasPrefix(k.(string), "identifier|") {
				idTokens = append(idTokens, k)
			}
		}
		tok := fmt.Sprint(idTokens)
		want := `[identifier|urn:a\|b|c\|d identifier|c\|d identifier||local identifier|local]`
		if tok != want {
			t.Errorf("%s ix.tok = %s, want %s", name, tok, want)
		}
	}
	// Escaping keeps the separators apart: no other split of the same text matches.
	for _, q := range []store.TokenQuery{
		{Param: "identifier", System: "urn:a", Code: "b|c|d"},
		{Param: "identifier", System: "urn:a|b|c", Code: "d"},
		{Param: "identifier", Code: "d"},
	} {
		if ids, err := s.FindByToken(bg, "Patient", q, 10); err != nil || len(ids) != 0 {
			t.Errorf("%+v found %v %v", q, ids, err)
		}
	}
	if ids, err := s.FindByToken(bg, "Patient", store.TokenQuery{Param: "identifier", System: "urn:a|b", Code: "c|d"}, 10); err != nil || fmt.Sprint(ids) != "[p1]" {
		t.Errorf("escaped token: %v %v", ids, err)
	}

	if _, _, err := s.Delete(bg, "Patient", "p1", 0); err != nil {
		t.Fatal(err)
	}
	c = nil
	if err := s.resources.FindOne(bg, bson.D{{Key: "_id", Value: "Patient/p1"}}).Decode(&c); err != nil {
		t.Fatal(err)
	}
	if c["version"] != int64(2) || c["deleted"] != true || c["body"] != nil || len(c["ix"].(bson.M)) != 0 {
		t.Errorf("current document after delete: %v", c)
	}
	if n, _ := s.history.CountDocuments(bg, bson.D{{Key: "type", Value: "Patient"}, {Key: "id", Value: "p1"}}); n != 2 {
		t.Errorf("history has %d versions, want 2", n)
	}
}

// TestErrorsAreStoreErrors checks that normal conditions come back as the
// store's sentinels and not as driver errors.
func TestErrorsAreStoreErrors(t *testing.T) {
	s := fresh(t)
	if _, err := s.Create(bg, "Patient", "p1", patient(`{"value":"x"}`)); err != nil {
		t.Fatal(err)
	}
	// A version the arbiter already holds: what a concurrent writer meets.
	nv, err := store.Prepare(bg, "Patient", "p1", patient(`{"value":"y"}`), 1, store.Now())
	if err != nil {
		t.Fatal(err)
	}
	taken, err := ops{s: s}.write(bg, nv)
	if err != nil || taken == nil {
		t.Fatalf("writing a taken version: taken=%v err=%v", taken, err)
	}
	err = ops{s: s}.lost(bg, taken, nv, 1, 1)
	if !errors.Is(err, store.ErrVersionMismatch) {
		t.Errorf("conditional writer that lost: %v", err)
	}
	err = ops{s: s}.lost(bg, taken, nv, 0, maxAttempts)
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("writer out of attempts: %v", err)
	}
	if r, _ := s.Read(bg, "Patient", "p1"); r.Version != 1 || !bytes.Contains(r.Body, []byte(`"x"`)) {
		t.Errorf("the losing write changed the resource: %s", r.Body)
	}
	if _, err := s.Create(bg, "Patient", "p1", patient(`{"value":"z"}`)); !errors.Is(err, store.ErrExists) {
		t.Errorf("create on a taken id: %v", err)
	}
	if _, err := s.VRead(bg, "Patient", "p1", 9); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("vread of a missing version: %v", err)
	}
	if _, err := s.Create(bg, "Patient", "bad", []byte(`not json`)); err == nil {
		t.Error("malformed JSON accepted")
	}
}

// TestConcurrentWritersAllKept races writers on one resource. The version
// arbiter is a unique-index insert, which FerretDB does get right (unlike its
// updates), so this runs on FerretDB too: every acknowledged write has its
// own version, and once the writers are done both Read and the resources
// document hold the highest one.
func TestConcurrentWritersAllKept(t *testing.T) {
	s := fresh(t)
	const writers, each = 8, 6
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[int64]string{}
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				note := fmt.Sprint(w, "-", i)
				r, _, err := s.Put(bg, "Patient", "p1", patient(`{"value":"`+note+`"}`), 0)
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				mu.Lock()
				if prev, dup := acked[r.Version]; dup {
					t.Errorf("version %d acknowledged to %s and %s", r.Version, prev, note)
				}
				acked[r.Version] = note
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	const total = writers * each
	for v, note := range acked {
		r, err := s.VRead(bg, "Patient", "p1", v)
		if err != nil || !bytes.Contains(r.Body, []byte(`"`+note+`"`)) {
			t.Errorf("acknowledged version %d (%s) lost: %v", v, note, err)
		}
	}
	h, err := s.History(bg, store.HistoryQuery{Type: "Patient", ID: "p1", Count: 1000})
	if err != nil || len(h) != total {
		t.Fatalf("history has %d versions (%v), want %d", len(h), err, total)
	}
	cur, err := s.Read(bg, "Patient", "p1")
	if err != nil || cur.Version != total {
		t.Fatalf("read after the race: %+v %v, want version %d", cur, err, total)
	}
	var c document
	if err := s.resources.FindOne(bg, bson.D{{Key: "_id", Value: "Patient/p1"}}).Decode(&c); err != nil || c.Version != total {
		t.Fatalf("current document after the race: version %d %v, want %d", c.Version, err, total)
	}
	if ids, _ := s.FindByToken(bg, "Patient", store.TokenQuery{Param: "identifier", Code: acked[total]}, 10); fmt.Sprint(ids) != "[p1]" {
		t.Fatalf("the last version's token is not found: %v", ids)
	}
}

// TestConcurrentIfMatchOneWinner: of writers that all saw version 1, the
// arbiter lets exactly one make version 2.
func TestConcurrentIfMatchOneWinner(t *testing.T) {
	s := fresh(t)
	for round := 0; round < 3; round++ {
		id := fmt.Sprint("p", round)
		if _, err := s.Create(bg, "Patient", id, patient(`{"value":"v1"}`)); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				_, _, err := s.Put(bg, "Patient", id, patient(fmt.Sprintf(`{"value":"w%d"}`, w)), 1)
				switch {
				case err == nil:
					mu.Lock()
					wins++
					mu.Unlock()
				case errors.Is(err, store.ErrVersionMismatch):
				default:
					t.Errorf("writer %d: %v", w, err)
				}
			}(w)
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("round %d: %d writers won version 2, want 1", round, wins)
		}
		if r, err := s.Read(bg, "Patient", id); err != nil || r.Version != 2 {
			t.Fatalf("round %d: read %+v %v", round, r, err)
		}
	}
}

// TestCurrentDocumentNeverGoesBack: a writer whose resources update comes
// after a newer version's (a slow winner) leaves the newer one in place.
func TestCurrentDocumentNeverGoesBack(t *testing.T) {
	s := fresh(t)
	for v := int64(1); v <= 3; v++ {
		if _, _, err := s.Put(bg, "Patient", "p1", patient(fmt.Sprintf(`{"value":"v%d"}`, v)), 0); err != nil {
			t.Fatal(err)
		}
	}
	old, err := s.history.FindOne(bg, bson.D{{Key: "_id", Value: "Patient/p1/2"}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	var d document
	if err := bson.Unmarshal(old, &d); err != nil {
		t.Fatal(err)
	}
	s2 := *s
	s2.ferretDB = false // the plain guarded replace, as on MongoDB
	if err := (ops{s: &s2}).settle(bg, &d); err != nil {
		t.Fatal(err)
	}
	var c document
	if err := s.resources.FindOne(bg, bson.D{{Key: "_id", Value: "Patient/p1"}}).Decode(&c); err != nil || c.Version != 3 {
		t.Fatalf("current document went back to %d (%v)", c.Version, err)
	}
	// A lagging current document does not fool Read: history decides.
	if _, err := s.resources.UpdateOne(bg, bson.D{{Key: "_id", Value: "Patient/p1"}}, bson.D{{Key: "$set", Value: bson.D{{Key: fVersion, Value: 1}}}}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Read(bg, "Patient", "p1"); err != nil || r.Version != 3 {
		t.Fatalf("read with a lagging current document: %+v %v", r, err)
	}
	// The next write rolls it forward.
	if _, _, err := s.Put(bg, "Patient", "p1", patient(`{"value":"v4"}`), 3); err != nil {
		t.Fatal(err)
	}
	if err := s.resources.FindOne(bg, bson.D{{Key: "_id", Value: "Patient/p1"}}).Decode(&c); err != nil || c.Version != 4 {
		t.Fatalf("current document after the next write: %d (%v)", c.Version, err)
	}
}

// TestHistoryPagesThroughTies pages through versions that share one
// lastUpdated, across types and ids, and checks the order and that no
// version is listed twice or skipped.
func TestHistoryPagesThroughTies(t *testing.T) {
	s := fresh(t)
	now := store.Now()
	var want []store.HistoryKey
	for _, typ := range []string{"Condition", "Patient"} {
		for _, id := range []string{"a", "b"} {
			for v := int64(1); v <= 3; v++ {
				nv, err := store.Prepare(bg, typ, id, []byte(`{"resourceType":"`+typ+`"}`), v, now)
				if err != nil {
					t.Fatal(err)
				}
				if taken, err := (ops{s: s}).write(bg, nv); err != nil || taken != nil {
					t.Fatal(taken, err)
				}
				want = append(want, nv.Key())
			}
		}
	}
	slices.Reverse(want) // all one lastUpdated: type, id, version descending
	for _, page := range []int{1, 4, 5, 100} {
		var got []store.HistoryKey
		var after *store.HistoryKey
		for n := 0; n < 20; n++ {
			h, err := s.History(bg, store.HistoryQuery{Count: page, After: after})
			if err != nil {
				t.Fatal(err)
			}
			if len(h) == 0 {
				break
			}
			for _, r := range h {
				got = append(got, r.Key())
			}
			k := h[len(h)-1].Key()
			after = &k
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("page size %d:\n got %v\nwant %v", page, got, want)
		}
	}
	h, err := s.History(bg, store.HistoryQuery{Type: "Patient", Count: 2, After: &want[1]})
	if err != nil || len(h) != 2 || h[0].Key() != want[2] || h[1].Key() != want[3] {
		t.Errorf("type history after %v: %v %v", want[1], h, err)
	}
	h, err = s.History(bg, store.HistoryQuery{Type: "Patient", ID: "a", After: &want[3]})
	if err != nil || len(h) != 2 || h[0].Version != 2 || h[1].Version != 1 {
		t.Errorf("instance history after %v: %v %v", want[3], h, err)
	}
}

func TestTransactionWithoutReplicaSet(t *testing.T) {
	s := fresh(t)
	if s.Info().Transactions {
		t.Skip("the server runs transactions; the contract suite tests them")
	}
	called := false
	err := s.Transaction(bg, func(tx store.Ops) error { called = true; return nil })
	if !errors.Is(err, store.ErrNoTransactions) || called {
		t.Fatalf("transaction without a replica set: %v (fn called: %v)", err, called)
	}
}
