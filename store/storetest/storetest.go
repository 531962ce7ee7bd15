// Package storetest is the contract test suite every storage engine runs:
// the same expectations, whichever engine is behind store.Store.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmp-fhir/dmp-fhir/store"
)

// Opener returns a fresh, empty store for one test; the suite closes it.
type Opener func(t *testing.T) store.Store

// Run runs the whole contract against the engine that open returns.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateThenReadReturnsBodyWithServerMeta", testCreateRead},
		{"CreateRefusesTakenID", testCreateTaken},
		{"ReadUnknownIsNotFound", testReadUnknown},
		{"PutCreatesThenUpdatesWithNewVersion", testPutVersions},
		{"PutWithIdenticalContentMakesNoVersion", testPutUnchanged},
		{"PutWithStaleIfMatchIsRefused", testPutIfMatch},
		{"DeleteIsLogicalAndKeptInHistory", testDelete},
		{"DeleteOfMissingIsNoOp", testDeleteMissing},
		{"PurgeRemovesEveryVersionForGood", testPurge},
		{"PutAfterDeleteRevives", testPutAfterDelete},
		{"VReadReturnsEachVersion", testVRead},
		{"HistoryListsNewestFirstAndPages", testHistoryPaging},
		{"HistorySinceFilters", testHistorySince},
		{"FindByTokenUsesCurrentVersionOnly", testFindByToken},
		{"DecimalsAndUnknownElementsSurvive", testExactJSON},
		{"TransactionCommitsAllOrNothing", testTransaction},
		{"TransactionFindsTheIndexValuesOfItsOwnWrites", testTransactionIndex},
		{"TransactionReadsAndWritesOfOneResourceSeeTheLatest", testTransactionReadWrite},
		{"ConcurrentIfMatchUpdatesHaveOneWinner", testConcurrentIfMatch},
		{"ConcurrentUpdatesAreAllKept", testConcurrentUpdates},
		{"ExactWriteCountsMoveWithEveryAcknowledgedWriteOfTheirType", testWriteCounts},
	}
	tests = append(tests, blobTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

func ctx() context.Context { return context.Background() }

func allergy(note string) []byte {
	return []byte(fmt.Sprintf(`{"resourceType":"AllergyIntolerance","identifier":[{"system":"urn:test","value":"a-1"}],"patient":{"reference":"Patient/p1"},"note":[{"text":%q}]}`, note))
}

func mustBody(t *testing.T, r *store.Resource) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("stored body is not JSON: %v\n%s", err, r.Body)
	}
	return m
}

func testCreateRead(t *testing.T, s store.Store) {
	created, err := s.Create(ctx(), "AllergyIntolerance", "a1", allergy("first"))
	if err != nil {
		t.Fatal(err)
	}
	if created.Version != 1 || created.ID != "a1" || created.Deleted {
		t.Fatalf("created = %+v", created)
	}
	got, err := s.Read(ctx(), "AllergyIntolerance", "a1")
	if err != nil {
		t.Fatal(err)
	}
	m := mustBody(t, got)
	meta, _ := m["meta"].(map[string]any)
	if m["id"] != "a1" || meta["versionId"] != "1" || meta["lastUpdated"] == nil {
		t.Fatalf("server meta missing: %s", got.Body)
	}
	if !got.LastUpdated.Equal(created.LastUpdated) {
		t.Fatalf("lastUpdated %v != %v", got.LastUpdated, created.LastUpdated)
	}
	if lu, _ := time.Parse(time.RFC3339Nano, meta["lastUpdated"].(string)); !lu.Equal(got.LastUpdated) {
		t.Fatalf("meta.lastUpdated %v does not match %v", meta["lastUpdated"], got.LastUpdated)
	}
}

func testCreateTaken(t *testing.T, s store.Store) {
	if _, err := s.Create(ctx(), "AllergyIntolerance", "a1", allergy("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx(), "AllergyIntolerance", "a1", allergy("y")); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	// The same id under another type is another resource.
	if _, err := s.Create(ctx(), "Condition", "a1", []byte(`{"resourceType":"Condition","subject":{"reference":"Patient/p1"}}`)); err != nil {
		t.Fatalf("same id, other type: %v", err)
	}
	// A deleted id stays taken: its history is still there.
	if _, _, err := s.Delete(ctx(), "Condition", "a1", 0); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := s.Create(ctx(), "Condition", "a1", []byte(`{"resourceType":"Condition","subject":{"reference":"Patient/p2"}}`)); !errors.Is(err, store.ErrExists) {
		t.Fatalf("create over a deleted id: %v, want ErrExists", err)
	}
	// A create refused inside a transaction does not spoil the rest of it
	// (the audit trail's copy skips events already stored that way).
	err := s.Transaction(ctx(), func(tx store.Ops) error {
		if _, err := tx.Create(ctx(), "AllergyIntolerance", "a1", allergy("z")); !errors.Is(err, store.ErrExists) {
			return fmt.Errorf("create in tx: %v, want ErrExists", err)
		}
		_, err := tx.Create(ctx(), "AllergyIntolerance", "a2", allergy("after"))
		return err
	})
	if errors.Is(err, store.ErrNoTransactions) {
		return
	}
	if err != nil {
		t.Fatalf("transaction: %v", err)
	}
	if got, err := s.Read(ctx(), "AllergyIntolerance", "a2"); err != nil || got.Version != 1 {
		t.Fatalf("a2 after the refused create: %+v %v", got, err)
	}
	if got, err := s.Read(ctx(), "AllergyIntolerance", "a1"); err != nil || mustBody(t, got)["note"].([]any)[0].(map[string]any)["text"] != "x" {
		t.Fatalf("a1 changed by the refused create: %v", err)
	}
}

func testReadUnknown(t *testing.T, s store.Store) {
	if _, err := s.Read(ctx(), "Patient", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read: %v, want ErrNotFound", err)
	}
	if _, err := s.VRead(ctx(), "Patient", "nope", 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("vread: %v, want ErrNotFound", err)
	}
}

func testPutVersions(t *testing.T, s store.Store) {
	r, out, err := s.Put(ctx(), "AllergyIntolerance", "a1", allergy("v1"), 0)
	if err != nil || out != store.Created || r.Version != 1 {
		t.Fatalf("first put: %+v %v %v", r, out, err)
	}
	r, out, err = s.Put(ctx(), "AllergyIntolerance", "a1", allergy("v2"), 1)
	if err != nil || out != store.Updated || r.Version != 2 {
		t.Fatalf("second put: %+v %v %v", r, out, err)
	}
	got, err := s.Read(ctx(), "AllergyIntolerance", "a1")
	if err != nil || got.Version != 2 {
		t.Fatalf("read: %+v %v", got, err)
	}
	if note := mustBody(t, got)["note"].([]any)[0].(map[string]any)["text"]; note != "v2" {
		t.Fatalf("read returns %v, want v2", note)
	}
}

func testPutUnchanged(t *testing.T, s store.Store) {
	first, _, err := s.Put(ctx(), "AllergyIntolerance", "a1", allergy("same"), 0)
	if err != nil {
		t.Fatal(err)
	}
	r, out, err := s.Put(ctx(), "AllergyIntolerance", "a1", first.Body, 0) // body with meta: still the same content
	if err != nil || out != store.Unchanged || r.Version != 1 {
		t.Fatalf("identical put: %+v %v %v", r, out, err)
	}
	h, err := s.History(ctx(), store.HistoryQuery{Type: "AllergyIntolerance", ID: "a1", Count: 10})
	if err != nil || len(h) != 1 {
		t.Fatalf("history has %d versions (%v), want 1", len(h), err)
	}
}

func testPutIfMatch(t *testing.T, s store.Store) {
	if _, _, err := s.Put(ctx(), "AllergyIntolerance", "a1", allergy("v1"), 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Put(ctx(), "AllergyIntolerance", "a1", allergy("v2"), 7); !errors.Is(err, store.ErrVersionMismatch) {
		t.Fatalf("stale If-Match: %v, want ErrVersionMismatch", err)
	}
	if _, _, err := s.Put(ctx(), "AllergyIntolerance", "nope", allergy("v2"), 1); !errors.Is(err, store.ErrVersionMismatch) {
		t.Fatalf("If-Match on missing resource: %v, want ErrVersionMismatch", err)
	}
	if r, _ := s.Read(ctx(), "AllergyIntolerance", "a1"); r.Version != 1 {
		t.Fatalf("refused write changed the resource: version %d", r.Version)
	}
}

func testDelete(t *testing.T, s store.Store) {
	if _, err := s.Create(ctx(), "AllergyIntolerance", "a1", allergy("v1")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Delete(ctx(), "AllergyIntolerance", "a1", 5); !errors.Is(err, store.ErrVersionMismatch) {
		t.Fatalf("delete with stale If-Match: %v", err)
	}
	d, out, err := s.Delete(ctx(), "AllergyIntolerance", "a1", 1)
	if err != nil || out != store.Deleted || d.Version != 2 || !d.Deleted {
		t.Fatalf("delete: %+v %v %v", d, out, err)
	}
	r, err := s.Read(ctx(), "AllergyIntolerance", "a1")
	if !errors.Is(err, store.ErrDeleted) || r == nil || r.Version != 2 {
		t.Fatalf("read after delete: %+v %v, want ErrDeleted with version 2", r, err)
	}
	if _, err := s.VRead(ctx(), "AllergyIntolerance", "a1", 1); err != nil {
		t.Fatalf("old version must stay readable: %v", err)
	}
	h, err := s.History(ctx(), store.HistoryQuery{Type: "AllergyIntolerance", ID: "a1", Count: 10})
	if err != nil || len(h) != 2 || !h[0].Deleted || h[1].Deleted {
		t.Fatalf("history after delete: %d entries %v", len(h), err)
	}
	if _, _, err := s.Delete(ctx(), "AllergyIntolerance", "a1", 0); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if ids, _ := s.FindByToken(ctx(), "AllergyIntolerance", store.TokenQuery{Param: "identifier", System: "urn:test", Code: "a-1"}, 10); len(ids) != 0 {
		t.Fatalf("a deleted resource is still found: %v", ids)
	}
}

func testPurge(t *testing.T, s store.Store) {
	const typ = "AllergyIntolerance"
	// a1: live with two versions; a2: deleted; a3: a neighbour that stays.
	for _, w := range []struct {
		id   string
		body []byte
	}{{"a1", allergy("v1")}, {"a1", allergy("v2")}, {"a2", allergy("v1")}, {"a3", allergy("v1")}} {
		if _, _, err := s.Put(ctx(), typ, w.id, w.body, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Delete(ctx(), typ, "a2", 0); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a1", "a2", "never-there"} {
		if err := s.Purge(ctx(), typ, id); err != nil {
			t.Fatalf("purge %s: %v", id, err)
		}
		if err := s.Purge(ctx(), typ, id); err != nil {
			t.Fatalf("purge %s again: %v", id, err)
		}
	}
	for _, id := range []string{"a1", "a2"} {
		if _, err := s.Read(ctx(), typ, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("read of purged %s: %v, want ErrNotFound", id, err)
		}
		for v := int64(1); v <= 2; v++ {
			if _, err := s.VRead(ctx(), typ, id, v); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("vread of purged %s version %d: %v, want ErrNotFound", id, v, err)
			}
		}
		if h, err := s.History(ctx(), store.HistoryQuery{Type: typ, ID: id, Count: 10}); err != nil || len(h) != 0 {
			t.Fatalf("history of purged %s: %d versions, %v", id, len(h), err)
		}
	}
	for _, hq := range []store.HistoryQuery{{Type: typ, Count: 10}, {Count: 10}} {
		h, err := s.History(ctx(), hq)
		if err != nil || len(h) != 1 || h[0].ID != "a3" {
			t.Fatalf("history %+v after the purges: %d versions, %v; want a3's only", hq, len(h), err)
		}
	}
	if ids, err := s.FindByToken(ctx(), typ, store.TokenQuery{Param: "identifier", System: "urn:test", Code: "a-1"}, 10); err != nil || !slices.Equal(ids, []string{"a3"}) {
		t.Fatalf("token lookup after the purges: %v %v, want [a3]", ids, err)
	}
	page, err := s.Search(ctx(), store.Query{Type: typ, Count: 10, Total: true})
	if err != nil || page.Total != 1 || len(page.Resources) != 1 || page.Resources[0].ID != "a3" {
		t.Fatalf("search after the purges: %+v %v, want a3 alone", page, err)
	}
	r, err := s.Create(ctx(), typ, "a1", allergy("again"))
	if err != nil || r.Version != 1 {
		t.Fatalf("create at a purged id: %+v %v, want version 1", r, err)
	}
}

func testDeleteMissing(t *testing.T, s store.Store) {
	_, out, err := s.Delete(ctx(), "AllergyIntolerance", "nope", 0)
	if err != nil || out != store.NoOp {
		t.Fatalf("delete missing: %v %v", out, err)
	}
	h, _ := s.History(ctx(), store.HistoryQuery{Type: "AllergyIntolerance", ID: "nope", Count: 10})
	if len(h) != 0 {
		t.Fatalf("delete of missing wrote history: %d", len(h))
	}
}

func testPutAfterDelete(t *testing.T, s store.Store) {
	s.Create(ctx(), "AllergyIntolerance", "a1", allergy("v1"))
	s.Delete(ctx(), "AllergyIntolerance", "a1", 0)
	r, out, err := s.Put(ctx(), "AllergyIntolerance", "a1", allergy("v3"), 0)
	if err != nil || out != store.Created || r.Version != 3 {
		t.Fatalf("put after delete: %+v %v %v", r, out, err)
	}
	if _, err := s.Read(ctx(), "AllergyIntolerance", "a1"); err != nil {
		t.Fatalf("read after revival: %v", err)
	}
}

func testVRead(t *testing.T, s store.Store) {
	for i := 1; i <= 3; i++ {
		if _, _, err := s.Put(ctx(), "AllergyIntolerance", "a1", allergy(fmt.Sprint("v", i)), 0); err != nil {
			t.Fatal(err)
		}
	}
	for i := int64(1); i <= 3; i++ {
		r, err := s.VRead(ctx(), "AllergyIntolerance", "a1", i)
		if err != nil || r.Version != i {
			t.Fatalf("vread %d: %+v %v", i, r, err)
		}
		if note := mustBody(t, r)["note"].([]any)[0].(map[string]any)["text"]; note != fmt.Sprint("v", i) {
			t.Fatalf("vread %d returns %v", i, note)
		}
	}
	if _, err := s.VRead(ctx(), "AllergyIntolerance", "a1", 4); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("vread of future version: %v", err)
	}
}

func testHistoryPaging(t *testing.T, s store.Store) {
	want := map[string]bool{}
	for i := 0; i < 7; i++ {
		id := fmt.Sprint("h", i)
		for v := 0; v < 2; v++ {
			if _, _, err := s.Put(ctx(), "AllergyIntolerance", id, allergy(fmt.Sprint(i, v)), 0); err != nil {
				t.Fatal(err)
			}
			want[fmt.Sprint(id, "/", v+1)] = true
		}
	}
	s.Create(ctx(), "Condition", "c1", []byte(`{"resourceType":"Condition","subject":{"reference":"Patient/p1"}}`))
	seen := map[string]bool{}
	var after *store.HistoryKey
	var prev *store.Resource
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		page, err := s.History(ctx(), store.HistoryQuery{Type: "AllergyIntolerance", Count: 4, After: after})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			if r.Type != "AllergyIntolerance" {
				t.Fatalf("type history returned a %s", r.Type)
			}
			k := fmt.Sprint(r.ID, "/", r.Version)
			if seen[k] {
				t.Fatalf("%s listed twice", k)
			}
			seen[k] = true
			if prev != nil && r.LastUpdated.After(prev.LastUpdated) {
				t.Fatalf("history not newest first: %v after %v", r.LastUpdated, prev.LastUpdated)
			}
			prev = r
		}
		k := page[len(page)-1].Key()
		after = &k
	}
	if len(seen) != len(want) {
		t.Fatalf("paged through %d versions, want %d", len(seen), len(want))
	}
	all, _ := s.History(ctx(), store.HistoryQuery{Count: 100})
	if len(all) != len(want)+1 {
		t.Fatalf("system history has %d versions, want %d", len(all), len(want)+1)
	}
}

func testHistorySince(t *testing.T, s store.Store) {
	s.Create(ctx(), "AllergyIntolerance", "old", allergy("old"))
	time.Sleep(5 * time.Millisecond)
	since := store.Now()
	time.Sleep(2 * time.Millisecond)
	s.Create(ctx(), "AllergyIntolerance", "new", allergy("new"))
	h, err := s.History(ctx(), store.HistoryQuery{Type: "AllergyIntolerance", Since: since, Count: 10})
	if err != nil || len(h) != 1 || h[0].ID != "new" {
		t.Fatalf("history since: %d entries %v", len(h), err)
	}
}

func testFindByToken(t *testing.T, s store.Store) {
	s.Create(ctx(), "Patient", "p1", []byte(`{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.250.1.213.1.4.8","value":"1840575123456"},{"value":"local-7"}]}`))
	s.Create(ctx(), "Patient", "p2", []byte(`{"resourceType":"Patient","identifier":[{"system":"urn:other","value":"1840575123456"}]}`))
	find := func(q store.TokenQuery) []string {
		ids, err := s.FindByToken(ctx(), "Patient", q, 10)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	cases := []struct {
		name string
		q    store.TokenQuery
		want string
	}{
		{"system and value", store.TokenQuery{Param: "identifier", System: "urn:oid:1.2.250.1.213.1.4.8", Code: "1840575123456"}, "[p1]"},
		{"value in any system", store.TokenQuery{Param: "identifier", Code: "1840575123456"}, "[p1 p2]"},
		{"value without system", store.TokenQuery{Param: "identifier", Code: "local-7", NoSystem: true}, "[p1]"},
		{"no system excludes systems", store.TokenQuery{Param: "identifier", Code: "1840575123456", NoSystem: true}, "[]"},
		{"unknown", store.TokenQuery{Param: "identifier", System: "urn:x", Code: "1"}, "[]"},
	}
	for _, c := range cases {
		if got := fmt.Sprint(find(c.q)); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
	// An update that drops the identifier drops it from the index.
	s.Put(ctx(), "Patient", "p1", []byte(`{"resourceType":"Patient","identifier":[{"value":"local-7"}]}`), 0)
	if got := fmt.Sprint(find(store.TokenQuery{Param: "identifier", System: "urn:oid:1.2.250.1.213.1.4.8", Code: "1840575123456"})); got != "[]" {
		t.Errorf("after update: got %s, want []", got)
	}
}

func testExactJSON(t *testing.T, s store.Store) {
	body := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50,"unit":"mg"},"_status":{"extension":[{"url":"http://example.org/x","valueString":"y"}]},"contained":[{"resourceType":"Patient","id":"p","birthDate":"2000"}],"futureElement":{"a":[1.000000000000000000001]}}`
	_, err := s.Create(ctx(), "Observation", "o1", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.Read(ctx(), "Observation", "o1")
	for _, want := range []string{`"value":1.50`, `"_status":{"extension"`, `"contained":[{"resourceType":"Patient"`, `1.000000000000000000001`} {
		if !contains(got.Body, want) {
			t.Errorf("stored body lost %s:\n%s", want, got.Body)
		}
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }

func testTransaction(t *testing.T, s store.Store) {
	if !s.Info().Transactions {
		err := s.Transaction(ctx(), func(tx store.Ops) error { t.Fatal("fn called without transactions"); return nil })
		if !errors.Is(err, store.ErrNoTransactions) {
			t.Fatalf("engine without transactions: %v, want ErrNoTransactions", err)
		}
		return
	}
	boom := errors.New("boom")
	err := s.Transaction(ctx(), func(tx store.Ops) error {
		if _, err := tx.Create(ctx(), "AllergyIntolerance", "t1", allergy("x")); err != nil {
			return err
		}
		if _, err := tx.Read(ctx(), "AllergyIntolerance", "t1"); err != nil {
			return fmt.Errorf("read own write: %w", err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("transaction error: %v", err)
	}
	if _, err := s.Read(ctx(), "AllergyIntolerance", "t1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rolled-back write is visible: %v", err)
	}
	err = s.Transaction(ctx(), func(tx store.Ops) error {
		for i := 0; i < 3; i++ {
			if _, err := tx.Create(ctx(), "AllergyIntolerance", fmt.Sprint("t", i), allergy("x")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := s.Read(ctx(), "AllergyIntolerance", fmt.Sprint("t", i)); err != nil {
			t.Fatalf("committed write t%d: %v", i, err)
		}
	}
}

// testTransactionReadWrite: inside a transaction, each read of a resource
// answers its latest version, and each write versions over it, however
// reads and writes of it and of others interleave (a handler reads what it
// is about to write; an engine that keeps a read for the write must let no
// write go by it).
func testTransactionReadWrite(t *testing.T, s store.Store) {
	if !s.Info().Transactions {
		t.Skip("no transactions")
	}
	const typ = "AllergyIntolerance"
	type step struct {
		op, id      string // read | put | delete
		wantVersion int64  // of the resource read or written; 0: not found
	}
	steps := []step{
		{"read", "rw1", 0},
		{"put", "rw1", 1},
		{"read", "rw1", 1},
		{"put", "rw1", 2},
		{"put", "rw1", 3}, // no read between two writes
		{"read", "rw1", 3},
		{"read", "rw2", 0},
		{"put", "rw1", 4}, // after a read of another resource
		{"put", "rw2", 1},
		{"read", "rw1", 4},
		{"put", "rw2", 2}, // after a read of another resource, then a write
		{"put", "rw1", 5},
		{"read", "rw1", 5},
		{"delete", "rw1", 6},
		{"read", "rw1", 0},
		{"put", "rw1", 7},
	}
	err := s.Transaction(ctx(), func(tx store.Ops) error {
		for i, st := range steps {
			var r *store.Resource
			var err error
			switch st.op {
			case "read":
				r, err = tx.Read(ctx(), typ, st.id)
				if st.wantVersion == 0 {
					if !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrDeleted) {
						return fmt.Errorf("step %d: read %s: %v, want not found", i, st.id, err)
					}
					continue
				}
			case "put":
				r, _, err = tx.Put(ctx(), typ, st.id, allergy(fmt.Sprint("note ", i)), 0)
			case "delete":
				r, _, err = tx.Delete(ctx(), typ, st.id, 0)
			}
			if err != nil {
				return fmt.Errorf("step %d: %s %s: %w", i, st.op, st.id, err)
			}
			if r.Version != st.wantVersion {
				return fmt.Errorf("step %d: %s %s: version %d, want %d", i, st.op, st.id, r.Version, st.wantVersion)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Read(ctx(), typ, "rw1")
	if err != nil || r.Version != 7 {
		t.Fatalf("after the transaction: %v, %v; want version 7", r, err)
	}
}

// allergyCoded is an allergy with one code (the token "code").
func allergyCoded(code string) []byte {
	return []byte(`{"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/p1"},"code":{"coding":[{"system":"urn:test","code":"` + code + `"}]}}`)
}

func testTransactionIndex(t *testing.T, s store.Store) {
	if !s.Info().Transactions {
		t.Skip("no transactions on this server")
	}
	code := func(c string) store.TokenQuery { return store.TokenQuery{Param: "code", System: "urn:test", Code: c} }
	find := func(ops store.Ops, c string) []string {
		t.Helper()
		ids, err := ops.FindByToken(ctx(), "AllergyIntolerance", code(c), 10)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	// Written in a transaction, then read back in it; a resource written
	// twice keeps its last values only; a failed transaction leaves none.
	err := s.Transaction(ctx(), func(tx store.Ops) error {
		for i, c := range []string{"x", "y", "x"} {
			if _, err := tx.Create(ctx(), "AllergyIntolerance", fmt.Sprint("c", i), allergyCoded(c)); err != nil {
				return err
			}
		}
		if got := find(tx, "x"); !slices.Equal(got, []string{"c0", "c2"}) {
			return fmt.Errorf("inside the transaction, code x finds %v, want [c0 c2]", got)
		}
		if _, _, err := tx.Put(ctx(), "AllergyIntolerance", "c1", allergyCoded("z"), 0); err != nil {
			return err
		}
		if _, _, err := tx.Put(ctx(), "AllergyIntolerance", "c1", allergyCoded("w"), 0); err != nil {
			return err
		}
		if _, err := tx.Create(ctx(), "AllergyIntolerance", "c3", allergyCoded("y")); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for c, want := range map[string][]string{"x": {"c0", "c2"}, "y": {"c3"}, "z": nil, "w": {"c1"}} {
		if got := find(s, c); !slices.Equal(got, want) {
			t.Errorf("after the commit, code %s finds %v, want %v", c, got, want)
		}
	}
	page, err := s.Search(ctx(), store.Query{Type: "AllergyIntolerance", Count: 10, Total: true, Where: []store.Clause{{Any: []store.Condition{
		{Param: "code", Kind: store.KindToken, System: "urn:test", Code: "y"}}}}})
	if err != nil || page.Total != 1 || len(page.Resources) != 1 || page.Resources[0].ID != "c3" {
		t.Fatalf("search code y after the commit: %+v %v, want c3", page, err)
	}
	boom := errors.New("boom")
	err = s.Transaction(ctx(), func(tx store.Ops) error {
		if _, err := tx.Create(ctx(), "AllergyIntolerance", "c9", allergyCoded("v")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("failed transaction: %v", err)
	}
	if got := find(s, "v"); len(got) != 0 {
		t.Fatalf("a rolled-back write left index values: %v", got)
	}
}

func testConcurrentIfMatch(t *testing.T, s store.Store) {
	if !s.Info().ConcurrentSafe {
		t.Skip("this server loses concurrent updates (FerretDB); run against a real MongoDB replica set")
	}
	if _, err := s.Create(ctx(), "AllergyIntolerance", "a1", allergy("v1")); err != nil {
		t.Fatal(err)
	}
	const writers = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			_, _, err := s.Put(ctx(), "AllergyIntolerance", "a1", allergy(fmt.Sprint("writer", w)), 1)
			switch {
			case err == nil:
				mu.Lock()
				wins++
				mu.Unlock()
			case errors.Is(err, store.ErrVersionMismatch), errors.Is(err, store.ErrConflict):
			default:
				t.Errorf("writer %d: %v", w, err)
			}
		}(w)
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d writers won version 2, want exactly 1", wins)
	}
}

func testConcurrentUpdates(t *testing.T, s store.Store) {
	if !s.Info().ConcurrentSafe {
		t.Skip("this server loses concurrent updates (FerretDB); run against a real MongoDB replica set")
	}
	const writers, each = 8, 10
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, _, err := s.Put(ctx(), "AllergyIntolerance", "a1", allergy(fmt.Sprint(w, "-", i)), 0); err != nil {
					t.Errorf("writer %d: %v", w, err)
				}
			}
		}(w)
	}
	wg.Wait()
	h, err := s.History(ctx(), store.HistoryQuery{Type: "AllergyIntolerance", ID: "a1", Count: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != writers*each {
		t.Fatalf("history has %d versions, want %d: acknowledged writes were lost", len(h), writers*each)
	}
	cur, _ := s.Read(ctx(), "AllergyIntolerance", "a1")
	if cur.Version != int64(writers*each) {
		t.Fatalf("current version %d, want %d", cur.Version, writers*each)
	}
}

// testWriteCounts: where an engine says its write counts are exact (a cache
// of consent decisions relies on them), each acknowledged write of a type
// has moved that type's count, whatever the path (create, put, delete,
// transaction, purge), and a write of another type has not. Engines that
// are not the only writer of their data must say their counts are not
// exact.
func testWriteCounts(t *testing.T, s store.Store) {
	if _, exact := s.WriteCount("Consent"); !exact {
		if s.Info().Engine == "sqlite" {
			t.Fatal("the embedded engine holds its directory: its counts are exact")
		}
		t.Skipf("%s: counts are not exact (other processes write the same data)", s.Info().Engine)
	}
	consent := func(note string) []byte {
		return []byte(`{"resourceType":"Consent","status":"active","patient":{"reference":"Patient/p1"},"policyRule":{"text":"` + note + `"}}`)
	}
	type counts struct{ consent, patient, allergy uint64 }
	now := func() counts {
		c, _ := s.WriteCount("Consent")
		p, _ := s.WriteCount("Patient")
		a, _ := s.WriteCount("AllergyIntolerance")
		return counts{c, p, a}
	}
	steps := []struct {
		name               string
		write              func() error
		consent, patient   bool // must move
		allergyMustNotMove bool
	}{
		{"create", func() error { _, err := s.Create(ctx(), "Consent", "c1", consent("a")); return err }, true, false, true},
		{"put", func() error { _, _, err := s.Put(ctx(), "Consent", "c1", consent("b"), 0); return err }, true, false, true},
		{"put of another type", func() error { _, _, err := s.Put(ctx(), "AllergyIntolerance", "a1", allergy("x"), 0); return err }, false, false, false},
		{"delete", func() error { _, _, err := s.Delete(ctx(), "Consent", "c1", 0); return err }, true, false, true},
		{"transaction of two types", func() error {
			return s.Transaction(ctx(), func(tx store.Ops) error {
				if _, _, err := tx.Put(ctx(), "Consent", "c1", consent("c"), 0); err != nil {
					return err
				}
				_, _, err := tx.Put(ctx(), "Patient", "p1", []byte(`{"resourceType":"Patient","active":false}`), 0)
				return err
			})
		}, true, true, true},
		{"purge", func() error { return s.Purge(ctx(), "Consent", "c1") }, true, false, true},
	}
	for _, st := range steps {
		before := now()
		if err := st.write(); errors.Is(err, store.ErrNoTransactions) {
			continue
		} else if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		after := now()
		if st.consent && after.consent == before.consent {
			t.Errorf("%s: the Consent count did not move (%d)", st.name, after.consent)
		}
		if st.patient && after.patient == before.patient {
			t.Errorf("%s: the Patient count did not move (%d)", st.name, after.patient)
		}
		if !st.consent && after.consent != before.consent {
			t.Errorf("%s: the Consent count moved (%d to %d) for a write of another type", st.name, before.consent, after.consent)
		}
		if st.allergyMustNotMove && after.allergy != before.allergy {
			t.Errorf("%s: the AllergyIntolerance count moved (%d to %d)", st.name, before.allergy, after.allergy)
		}
	}
}
