package api_test

import (
	"strings"
	"testing"
)

func patchOp(parts ...string) string {
	return `{"name":"operation","part":[` + strings.Join(parts, ",") + `]}`
}

func patchBody(ops ...string) []byte {
	return []byte(`{"resourceType":"Parameters","parameter":[` + strings.Join(ops, ",") + `]}`)
}

// TestPatchAppliesFHIRPathReplaceAddDelete: a FHIRPath Patch replaces, adds
// and deletes elements and keeps the rest as written; what this server does
// not apply is refused with 422 naming the operation, a stale If-Match
// with 412, JSON Patch with 415, and nothing changes.
func TestPatchAppliesFHIRPathReplaceAddDelete(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *server) {
		r := s.do("PUT", "/Observation/o1", []byte(`{"resourceType":"Observation","id":"o1","status":"preliminary","code":{"text":"poids"},"valueQuantity":{"value":72.50,"unit":"kg"},"issued":"2024-01-02T10:00:00Z","note":[{"text":"a"}]}`))
		if r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		r = s.do("PATCH", "/Observation/o1", patchBody(
			patchOp(`{"name":"type","valueCode":"replace"}`, `{"name":"path","valueString":"Observation.status"}`, `{"name":"value","valueCode":"final"}`),
			patchOp(`{"name":"type","valueCode":"add"}`, `{"name":"path","valueString":"Observation"}`, `{"name":"name","valueString":"note"}`, `{"name":"value","valueAnnotation":{"text":"b"}}`),
			patchOp(`{"name":"type","valueCode":"delete"}`, `{"name":"path","valueString":"Observation.issued"}`),
		), "If-Match", `W/"1"`)
		if r.status != 200 {
			t.Fatalf("patch: %d %s", r.status, r.body)
		}
		got := string(r.body)
		for _, want := range []string{`"status":"final"`, `"note":[{"text":"a"},{"text":"b"}]`, `"value":72.50`, `"versionId":"2"`} {
			if !strings.Contains(got, want) {
				t.Errorf("patched resource lacks %s: %s", want, got)
			}
		}
		if strings.Contains(got, "issued") {
			t.Errorf("issued was not deleted: %s", got)
		}
		replace := func(path string) string {
			return patchOp(`{"name":"type","valueCode":"replace"}`, `{"name":"path","valueString":"`+path+`"}`, `{"name":"value","valueCode":"final"}`)
		}
		for _, c := range []struct {
			name    string
			body    []byte
			headers []string
			status  int
		}{
			{"stale If-Match", patchBody(replace("Observation.status")), []string{"If-Match", `W/"1"`}, 412},
			{"unsupported operation", patchBody(patchOp(`{"name":"type","valueCode":"move"}`, `{"name":"path","valueString":"Observation.note"}`)), nil, 422},
			{"path with a function", patchBody(replace("Observation.note.where(text='a').text")), nil, 422},
			{"path of another type", patchBody(replace("Patient.status")), nil, 422},
			{"replace of a missing element", patchBody(replace("Observation.method")), nil, 422},
			{"a result the schema refuses", patchBody(patchOp(`{"name":"type","valueCode":"replace"}`, `{"name":"path","valueString":"Observation.status"}`, `{"name":"value","valueCode":"bogus"}`)), nil, 400},
			{"not a Parameters", []byte(`{"resourceType":"Observation"}`), nil, 400},
			{"JSON Patch", []byte(`[{"op":"replace","path":"/status","value":"final"}]`), []string{"Content-Type", "application/json-patch+json"}, 415},
			{"unknown resource", patchBody(replace("Observation.status")), []string{"X-Path", "/Observation/nope"}, 404},
		} {
			path := "/Observation/o1"
			if len(c.headers) == 2 && c.headers[0] == "X-Path" {
				path, c.headers = c.headers[1], nil
			}
			if r := s.do("PATCH", path, c.body, c.headers...); r.status != c.status {
				t.Errorf("%s: %d, want %d: %s", c.name, r.status, c.status, r.body)
			}
		}
		if v := s.do("GET", "/Observation/o1", nil).json(t)["meta"].(map[string]any)["versionId"]; v != "2" {
			t.Fatalf("refused patches made version %v", v)
		}
	})
}
