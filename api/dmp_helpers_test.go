package api_test

import (
	"testing"
)

// createDMP creates a DMP at a desk (token of a professional or a system)
// and returns the patient id and the credentials handed to the patient.
func (s *server) createDMP(t *testing.T, deskToken, nir, family string, extra ...string) (patient, login, password string) {
	t.Helper()
	kv := append([]string{"system", "urn:oid:1.2.250.1.213.1.4.10", "nir", nir, "family", family, "given", "Hélène",
		"birthDate", "1983-05-12", "gender", "female", "patientConsent", "true"}, extra...)
	r := s.do("POST", "/Patient/$dmp-create", params(kv...), "Authorization", "Bearer "+deskToken)
	if r.status != 201 {
		t.Fatalf("$dmp-create: %d %s", r.status, r.body)
	}
	out := map[string]any{}
	for _, p := range r.json(t)["parameter"].([]any) {
		p := p.(map[string]any)
		switch p["name"] {
		case "patient":
			out["patient"] = p["resource"].(map[string]any)["id"]
		default:
			out[p["name"].(string)] = p["valueString"]
		}
	}
	return out["patient"].(string), out["dmpIdentifier"].(string), out["password"].(string)
}
