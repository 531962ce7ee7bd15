package sqlite_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/dmp-fhir/dmp-fhir/store"
	"github.com/dmp-fhir/dmp-fhir/store/sqlite"
	"github.com/dmp-fhir/dmp-fhir/store/storetest"
)

func open(t *testing.T) store.Store {
	s, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestContract(t *testing.T) { storetest.Run(t, open) }

func TestSearchContract(t *testing.T) { storetest.RunSearch(t, open) }

// TestThousandIDsInOneClause: a clause of 1,000 _id values (an _include's
// targets) with another clause runs, and finds what it should.
func TestThousandIDsInOneClause(t *testing.T) {
	s, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var ids store.Clause
	err = s.Transaction(ctx, func(tx store.Ops) error {
		for i := 0; i < 1000; i++ {
			id := fmt.Sprint("o", i)
			status := "final"
			if i%2 == 1 {
				status = "preliminary"
			}
			body := fmt.Sprintf(`{"resourceType":"Observation","status":%q,"code":{"text":"x"}}`, status)
			if _, err := tx.Create(ctx, "Observation", id, []byte(body)); err != nil {
				return err
			}
			ids.Any = append(ids.Any, store.Condition{Param: "_id", Kind: store.KindID, Value: id})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	final := store.Clause{Any: []store.Condition{{Param: "status", Kind: store.KindToken, Code: "final", AnySystem: true}}}
	for _, where := range [][]store.Clause{{ids, final}, {final, ids}} {
		page, err := s.Search(ctx, store.Query{Type: "Observation", Where: where, Count: 1000, Total: true})
		if err != nil {
			t.Fatal(err)
		}
		if page.Total != 500 || len(page.Resources) != 500 {
			t.Fatalf("%d matches (total %d), want the 500 final ones", len(page.Resources), page.Total)
		}
	}
}
