package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

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

// TestConcurrentSearchesOfNewShapesDoNotDeadlock: more concurrent searches
// than read connections, each of a statement shape not prepared yet, all
// end (a search in its read transaction once waited for a second
// connection to prepare its statement, and the pool deadlocked).
func TestConcurrentSearchesOfNewShapesDoNotDeadlock(t *testing.T) {
	s, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := s.Create(ctx, "Observation", "o1", []byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"}}`)); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 64)
	for g := 0; g < 64; g++ {
		go func() {
			// g+1 OR'ed statuses: a statement text of its own.
			var cl store.Clause
			for i := 0; i <= g; i++ {
				cl.Any = append(cl.Any, store.Condition{Param: "status", Kind: store.KindToken, Code: fmt.Sprint("s", i), AnySystem: true})
			}
			_, err := s.Search(ctx, store.Query{Type: "Observation", Where: []store.Clause{cl}, Count: 10, Total: true})
			errs <- err
		}()
	}
	for range 64 {
		if err := <-errs; err != nil {
			t.Fatalf("a search did not end: %v", err)
		}
	}
}

// TestADataDirectoryIsOpenedByOneStoreAtATime: a second Open of a data
// directory in use is refused at once, naming the holder, so that no
// process writes the database behind the one whose write counts are
// exact; once the first closes, the directory opens again.
func TestADataDirectoryIsOpenedByOneStoreAtATime(t *testing.T) {
	dir := t.TempDir()
	first, err := sqlite.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, exact := first.WriteCount("Consent"); !exact {
		t.Fatal("the holder of the directory says its counts are not exact")
	}
	second, err := sqlite.Open(dir)
	if err == nil {
		second.Close()
		first.Close()
		t.Fatal("a second store opened the directory in use")
	}
	if want := fmt.Sprintf("in use by another process (pid %d)", os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Errorf("refusal %q does not say %q", err, want)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := sqlite.Open(dir)
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	again.Close()
}
