package api

import (
	"regexp"
	"testing"
)

func TestConditionalRefIsThePattern(t *testing.T) {
	pattern := regexp.MustCompile(`^[A-Z][A-Za-z]+\?.+`)
	for _, v := range []string{"Patient?identifier=a|b", "Patient?", "P?x", "PatientX?x", "patient?x", "Pa?\nx", "Pa?x\n",
		"Pa1?x", "Patient/1", "urn:uuid:1", "", "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999", "É?x", "Ab??"} {
		if got, want := conditionalRef(v), pattern.MatchString(v); got != want {
			t.Errorf("conditionalRef(%q) = %v, the pattern says %v", v, got, want)
		}
	}
}
