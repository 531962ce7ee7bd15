package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/dmp-fhir/dmp-fhir/fhir"
)

// modelResponseBundle is how response Bundles were written before
// responseBundle: through the Bundle model and fhir.Marshal. It is the
// reference the hand-written writer must match byte for byte.
func modelResponseBundle(id string, kind models.BundleType, results []entryResult) ([]byte, error) {
	out := models.Bundle{Id: &id, Type: kind}
	for _, r := range results {
		e := models.BundleEntry{Response: &models.BundleEntryResponse{Status: strconv.Itoa(r.status) + " " + http.StatusText(r.status)}}
		if v := r.header.Get("Location"); v != "" {
			e.Response.Location = &v
		}
		if v := r.header.Get("ETag"); v != "" {
			e.Response.Etag = &v
		}
		if v := r.lastUpdated; v != "" {
			e.Response.LastModified = &v // an instant, not the HTTP date of Last-Modified
		}
		if wo := r.header.Get("X-Write-Outcome"); wo != "" {
			e.Response.Outcome = fhir.OperationOutcome(fhir.Issue{Severity: "information", Code: "informational", Diagnostics: wo})
		}
		if len(r.body) > 0 {
			if r.status >= 400 {
				e.Response.Outcome = r.body
			} else {
				e.Resource = r.body
			}
		}
		out.Entry = append(out.Entry, e)
	}
	return fhir.Marshal(out)
}

var htmlUnescaper = strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&")

func TestResponseBundleIsWrittenAsTheBundleModelWritesIt(t *testing.T) {
	header := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	created := entryResult{status: 201, header: header("Location", "Observation/o1/_history/1", "ETag", `W/"1"`, "Last-Modified", "Tue, 02 Jan 2024 03:04:05 GMT"), lastUpdated: "2024-01-02T03:04:05.678Z"}
	cases := []struct {
		name    string
		kind    models.BundleType
		results []entryResult
	}{
		{"no entries", models.BundleTypeBatchResponse, nil},
		{"a minimal create", models.BundleTypeTransactionResponse, []entryResult{created}},
		{"an update that made no version, with its outcome", models.BundleTypeTransactionResponse, []entryResult{
			{status: 200, header: header("Location", "Patient/p1/_history/3", "ETag", `W/"3"`, "X-Write-Outcome", "unchanged: the same content")}}},
		{"a representation, spaced out and with escapes", models.BundleTypeBatchResponse, []entryResult{
			{status: 200, header: header("ETag", `W/"2"`), body: []byte("{ \"resourceType\" : \"Patient\",\n \"id\":\"p1\", \"name\":[{\"text\":\"Zoé \\\"Z\\\" <b>\"}] }")}}},
		{"a failure's outcome wins over the write outcome", models.BundleTypeBatchResponse, []entryResult{
			created,
			{status: 412, header: header("X-Write-Outcome", "ignored"), body: fhir.OperationOutcome(fhir.Issue{Severity: "error", Code: "conflict", Diagnostics: "version 2 is not current"})},
			{status: 404, header: header()},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want, err := modelResponseBundle("b1", tc.kind, tc.results)
			if err != nil {
				t.Fatal(err)
			}
			got := responseBundle("b1", tc.kind.Code(), tc.results)
			// encoding/json escapes <, > and & in HTML's favour; the writer
			// keeps them as they came, which is the same JSON.
			if string(got) != htmlUnescaper.Replace(string(want)) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
	// An answer that is not JSON becomes a 406 entry; the others stand.
	got := responseBundle("b1", "batch-response", []entryResult{created, {status: 200, header: header("Content-Type", "application/fhir+ndjson"), body: []byte("{\"a\":1}\n{\"b\":2}\n")}})
	var b struct {
		Entry []struct {
			Resource json.RawMessage
			Response struct {
				Status  string
				Outcome json.RawMessage
			}
		}
	}
	if err := json.Unmarshal(got, &b); err != nil || len(b.Entry) != 2 {
		t.Fatalf("%v %s", err, got)
	}
	if e := b.Entry[1]; e.Response.Status != "406 Not Acceptable" || e.Resource != nil || !strings.Contains(string(e.Response.Outcome), "not JSON") {
		t.Fatalf("the NDJSON entry: %s", got)
	}
	if b.Entry[0].Response.Status != "201 Created" {
		t.Fatalf("the other entry: %s", got)
	}
}

func TestEntriesTakeTheReturnAndHandlingOfTheBundlesPrefer(t *testing.T) {
	cases := []struct{ prefer, want string }{
		{"", ""},
		{"return=minimal", "return=minimal"},
		{"respond-async, return=OperationOutcome", "return=OperationOutcome"},
		{`Return="OperationOutcome"`, `Return="OperationOutcome"`},
		{"handling=strict,respond-async", "handling=strict"},
		{"respond-async", ""},
	}
	for _, tc := range cases {
		if got := entryPrefer(http.Header{"Prefer": {tc.prefer}}); got != tc.want {
			t.Errorf("entryPrefer(%q) = %q, want %q", tc.prefer, got, tc.want)
		}
	}
	if got := entryPrefer(http.Header{"Prefer": {"respond-async", "return=minimal"}}); got != "return=minimal" {
		t.Errorf("two Prefer lines: %q, want return=minimal", got)
	}
}
