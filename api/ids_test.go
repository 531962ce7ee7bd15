package api_test

import (
	"regexp"
	"testing"
	"time"

	"github.com/dmp-fhir/dmp-fhir/api"
)

// Server-assigned ids are UUIDs version 7: unique, and a later id sorts
// after an earlier one (by the millisecond), so that the store's indexes on
// ids grow at their end.
func TestServerIDsAreTimeOrderedUUIDv7(t *testing.T) {
	v7 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 10000 {
		id := api.NewID()
		if !v7.MatchString(id) {
			t.Fatalf("%s is not a UUID version 7", id)
		}
		if seen[id] {
			t.Fatalf("%s twice", id)
		}
		seen[id] = true
	}
	first := api.NewID()
	time.Sleep(2 * time.Millisecond)
	if later := api.NewID(); later <= first {
		t.Fatalf("%s, made later, does not sort after %s", later, first)
	}
}
