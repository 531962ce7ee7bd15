package fhir

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestRewriteReferencesFastAndSlowAgree: the text scan and the full parse
// replace the same values, and leave text that only looks like a reference.
func TestRewriteReferencesFastAndSlowAgree(t *testing.T) {
	replace := func(v string) (string, bool) {
		if strings.HasPrefix(v, "urn:uuid:") || strings.Contains(v, "?") {
			return "Patient/p-" + v[len(v)-1:], true
		}
		return "", false
	}
	for _, body := range []string{
		`{"resourceType":"Observation","subject":{"reference":"urn:uuid:1"},"performer":[{"reference":"Practitioner?identifier=x|2"}],"note":[{"text":"see reference urn:uuid:3"}]}`,
		`{"resourceType":"DocumentReference","content":[{"attachment":{"url":"urn:uuid:4"}}],"subject": {"reference" : "Patient/keep"}}`,
		`{"resourceType":"Observation","subject":{"reference":"Patient/1"}}`,
		`{"resourceType":"Observation","note":[{"text":"a \"reference\":\"urn:uuid:5\" in text"}],"subject":{"reference":"urn:uuid:6"}}`,
	} {
		got, changed, err := RewriteReferences([]byte(body), replace)
		if err != nil {
			t.Fatal(err)
		}
		slowChanged := false
		slow, err := rewrite([]byte(body), "", replace, &slowChanged)
		if err != nil {
			t.Fatal(err)
		}
		if !slowChanged {
			slow = []byte(body)
		}
		var a, b any
		json.Unmarshal(got, &a)
		json.Unmarshal(slow, &b)
		if changed != slowChanged || !reflect.DeepEqual(a, b) {
			t.Errorf("%s\n fast %s (%v)\n slow %s (%v)", body, got, changed, slow, slowChanged)
		}
	}
}
