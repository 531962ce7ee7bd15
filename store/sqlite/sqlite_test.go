package sqlite_test

import (
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
