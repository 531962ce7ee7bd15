package api

import (
	"slices"
	"testing"
)

func TestReplacedFindsTheReplacedDocumentsHoweverTheKeyIsSpelled(t *testing.T) {
	cases := []struct {
		name, body string
		want       []string
	}{
		{"no relatesTo", `{"resourceType":"DocumentReference","status":"current"}`, nil},
		{"replaces", `{"resourceType":"DocumentReference","relatesTo":[{"code":"replaces","target":{"reference":"DocumentReference/d1"}}]}`, []string{"d1"}},
		{"a versioned, absolute reference", `{"relatesTo":[{"code":"replaces","target":{"reference":"https://x/fhir/DocumentReference/d2/_history/1"}}]}`, []string{"d2"}},
		{"other relations are not replacements", `{"relatesTo":[{"code":"appends","target":{"reference":"DocumentReference/d1"}}]}`, nil},
		{"the key spelled with an escape", `{"\u0072elatesTo":[{"code":"replaces","target":{"reference":"DocumentReference/d3"}}]}`, []string{"d3"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := replaced([]byte(tc.body)); !slices.Equal(got, tc.want) {
				t.Fatalf("replaced = %q, want %q", got, tc.want)
			}
		})
	}
}
