package fhir

import (
	"regexp"
	"strings"
	"testing"
)

var patternCases = []string{"", " ", "a", "a b", "a  b", " a", "a ", "a\tb", "a\t\tb", "a\fb", "\f", "a\nb", "é", "\xff", "a\u00a0b",
	"http://x/y", "http://x/ y", "Patient/1", "urn:oid:1.2", strings.Repeat("x", 64), strings.Repeat("x", 65), "a-b.c", "a_b", "\r\n"}

func checkFastPatterns(t *testing.T, s string) {
	t.Helper()
	for pattern, match := range fastPatterns {
		if got, want := match(s), regexp.MustCompile(pattern).MatchString(s); got != want {
			t.Fatalf("%s on %q: %v, the regexp says %v", pattern, s, got, want)
		}
	}
}

func TestFastPatternsArePatterns(t *testing.T) {
	if len(fastPatterns) != 4 {
		t.Fatalf("%d fast patterns", len(fastPatterns))
	}
	for _, s := range patternCases {
		checkFastPatterns(t, s)
	}
}

func FuzzFastPatternsArePatterns(f *testing.F) {
	for _, s := range patternCases {
		f.Add(s)
	}
	f.Fuzz(checkFastPatterns)
}

// The primitives checked by hand are still checked: each bad value is
// refused with the message the pattern gave.
func TestPrimitivesCheckedByHandAreRefused(t *testing.T) {
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, body, want string }{
		{"an empty string", `{"resourceType":"Patient","name":[{"family":""}]}`, "Patient.name[0].family"},
		{"a string with a form feed", `{"resourceType":"Patient","name":[{"family":"a\fb"}]}`, "Patient.name[0].family"},
		{"a code with two spaces", `{"resourceType":"Patient","maritalStatus":{"coding":[{"code":"a  b"}]}}`, "Patient.maritalStatus.coding[0].code"},
		{"a code with a leading space", `{"resourceType":"Patient","maritalStatus":{"coding":[{"code":" M"}]}}`, "Patient.maritalStatus.coding[0].code"},
		{"a uri with a space", `{"resourceType":"Patient","identifier":[{"system":"urn:a b","value":"1"}]}`, "Patient.identifier[0].system"},
		{"an id with a space", `{"resourceType":"Patient","meta":{"versionId":"a b"}}`, "Patient.meta.versionId"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := v.Validate([]byte(c.body))
			e, ok := err.(*Error)
			if !ok || e.Status != 400 || len(e.Issues) == 0 {
				t.Fatalf("%s: %v, want a 400", c.body, err)
			}
			found := false
			for _, is := range e.Issues {
				found = found || is.Expression == c.want && strings.HasPrefix(is.Diagnostics, "value must be a valid ")
			}
			if !found {
				t.Fatalf("issues %+v, want one at %s saying the value is not valid", e.Issues, c.want)
			}
		})
	}
	if err := v.Validate([]byte(`{"resourceType":"Patient","gender":"female","name":[{"family":"Ça va"}],"identifier":[{"system":"urn:oid:1.2","value":"a b"}]}`)); err != nil {
		t.Fatalf("a valid Patient: %v", err)
	}
}
