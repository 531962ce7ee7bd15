package api_test

import (
	"strings"
	"testing"

	"github.com/dmp-fhir/dmp-fhir/api"
)

// TestBundleLimitsAndErrorsNameTheEntryAndElement: the entry count and
// body size limits answer 413; an entry's error names the entry's index and
// the element, whether the Bundle's validation, the entry's handler or the
// transaction's linking found it. Transactions run on the embedded engine
// (the MongoDB of the tests has none); batches on both.
func TestBundleLimitsAndErrorsNameTheEntryAndElement(t *testing.T) {
	patient := `{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}`
	bundle := func(typ string, entries ...string) []byte {
		return []byte(`{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(entries, ",") + `]}`)
	}
	big := `{"resource":{"resourceType":"Patient","name":[{"text":"` + strings.Repeat("x", 3000) + `"}]},"request":{"method":"POST","url":"Patient"}}`
	badHash := `{"resource":` + string(docWith(content(100, 1), `,"size":3`)) + `,"request":{"method":"POST","url":"DocumentReference"}}`
	cases := []struct {
		name     string
		engines  int // 1: the embedded engine only (transactions)
		body     []byte
		status   int
		expr     string // the expression of the first issue
		diagnose string // in its diagnostics
	}{
		{"too many entries", 2, bundle("batch", patient, patient, patient, patient), 413, "Bundle.entry[3]", "4 entries; at most 3"},
		{"body over the size limit", 2, bundle("batch", big, big), 413, "", "larger than the limit of 4 KiB"},
		{"entry without a method", 2, bundle("batch", patient, `{"resource":{"resourceType":"Patient"},"request":{"url":"Patient"}}`), 400, "Bundle.entry[1].request.method", ""},
		{"entry without a url", 2, bundle("transaction", patient, `{"resource":{"resourceType":"Patient"},"request":{"method":"POST"}}`), 400, "Bundle.entry[1].request.url", ""},
		{"invalid element in an entry", 2, bundle("transaction", patient, patient, `{"resource":{"resourceType":"Observation","status":"bogus","code":{"text":"x"}},"request":{"method":"POST","url":"Observation"}}`), 400, "Bundle.entry[2].resource.status", ""},
		{"an entry's handler refuses an element", 1, bundle("transaction", patient, badHash), 422, "Bundle.entry[1].resource.content[0].attachment.size", "entry 1:"},
		{"conditional reference without a match", 1, bundle("transaction", patient, `{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient?identifier=urn:x|nobody"}},"request":{"method":"POST","url":"Observation"}}`), 412, "Bundle.entry[1].resource", "matches no resource"},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := newServer(t, e, api.Config{MaxBundleEntries: 3, MaxBodyBytes: 4 << 10, InlineMaxBytes: inlineLimit})
			for _, c := range cases {
				if c.engines == 1 && e.name != "sqlite" {
					continue
				}
				r := s.do("POST", "", c.body)
				_, expr, diag := outcome(t, r)
				if r.status != c.status || expr != c.expr || !strings.Contains(diag, c.diagnose) {
					t.Errorf("%s: %d %q %q, want %d %q with %q", c.name, r.status, expr, diag, c.status, c.expr, c.diagnose)
				}
			}
			// A batch entry's own outcome names the element from its resource.
			r := s.do("POST", "", bundle("batch", badHash))
			if r.status != 200 || !strings.Contains(string(r.body), `"expression":["DocumentReference.content[0].attachment.size"]`) {
				t.Errorf("batch entry outcome: %d %s", r.status, r.body)
			}
		})
	}
}
