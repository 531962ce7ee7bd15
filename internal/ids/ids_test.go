package ids

import (
	"regexp"
	"testing"
	"time"
)

// Ids are UUIDs version 7 and valid FHIR ids: unique, and a later id sorts
// after an earlier one (by the millisecond), so that the store's indexes on
// ids grow at their end.
func TestIDsAreTimeOrderedUUIDv7(t *testing.T) {
	v7 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 10000 {
		id := New()
		if !v7.MatchString(id) {
			t.Fatalf("%s is not a UUID version 7", id)
		}
		if seen[id] {
			t.Fatalf("%s twice", id)
		}
		seen[id] = true
	}
	first := New()
	time.Sleep(2 * time.Millisecond)
	if later := New(); later <= first {
		t.Fatalf("%s, made later, does not sort after %s", later, first)
	}
}
