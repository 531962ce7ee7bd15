package api

import (
	"slices"
	"testing"
)

// binaryIDs finds the Binaries an attachment points to however its URL is
// written, and skips decoding a body that cannot name one.
func TestBinaryIDsFindsEveryWayOfWritingTheURL(t *testing.T) {
	const base = "http://h/fhir"
	cases := []struct {
		name, body string
		want       []string
	}{
		{"inline data only", `{"resourceType":"DocumentReference","content":[{"attachment":{"contentType":"text/plain","data":"Qm9uam91cg=="}}]}`, nil},
		{"relative", `{"resourceType":"DocumentReference","content":[{"attachment":{"url":"Binary/b1"}}]}`, []string{"b1"}},
		{"absolute on this server", `{"resourceType":"DocumentReference","content":[{"attachment":{"url":"http://h/fhir/Binary/b2"}}]}`, []string{"b2"}},
		{"another server's", `{"resourceType":"DocumentReference","content":[{"attachment":{"url":"http://other/fhir/Binary/b9"}}]}`, nil},
		{"escaped letter", `{"resourceType":"DocumentReference","content":[{"attachment":{"url":"\u0042inary/b3"}}]}`, []string{"b3"}},
		{"escaped slash", `{"resourceType":"DocumentReference","content":[{"attachment":{"url":"Binary\/b4"}}]}`, []string{"b4"}},
		{"presentedForm, twice", `{"resourceType":"DiagnosticReport","presentedForm":[{"url":"Binary/b5"},{"url":"Binary/b5"}]}`, []string{"b5"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := binaryIDs([]byte(c.body), base); !slices.Equal(got, c.want) {
				t.Errorf("binaryIDs = %q, want %q", got, c.want)
			}
		})
	}
}
