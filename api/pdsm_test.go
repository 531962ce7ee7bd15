package api_test

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// PDSm (the French profile of IHE MHD) "provide document bundle": a
// transaction with a List (the submission set), DocumentReferences and
// their Binaries, linked by urn:uuid, the patient named by a conditional
// reference. The examples are ANS's own (testdata/pdsm, see SOURCES.md).

// insIdentifier is the patient identifier the pdsm4dmp examples name by
// conditional reference (Patient?identifier=urn:oid:1.2.250.1.213.1.4.8|...).
const insIdentifier = `{"system":"urn:oid:1.2.250.1.213.1.4.8","value":"123456789012345"}`

// pdsmPatient registers the examples' patient, with a DMP that authorizes
// psAuthorized; it returns the patient's id.
func pdsmPatient(t *testing.T, s *server) string {
	t.Helper()
	r := s.do("POST", "/Patient", []byte(`{"resourceType":"Patient","identifier":[`+insIdentifier+`],"name":[{"family":"Martin"}]}`),
		"Authorization", "Bearer "+s.practitioner(psAuthorized, false))
	if r.status != 201 {
		t.Fatalf("patient: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	if r := s.do("POST", "/Patient/"+id+"/$authorize", params("practitioner", psAuthorized), "Authorization", "Bearer "+s.patient(id)); r.status != 200 {
		t.Fatalf("$authorize: %d %s", r.status, r.body)
	}
	return id
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../testdata/pdsm/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// transactionLocations returns each entry's "Type/id" from the response.
func transactionLocations(t *testing.T, r response) []string {
	t.Helper()
	var b struct {
		Type  string `json:"type"`
		Entry []struct {
			Response struct {
				Status   string `json:"status"`
				Location string `json:"location"`
			} `json:"response"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(r.body, &b); err != nil || b.Type != "transaction-response" {
		t.Fatalf("not a transaction-response: %v %.300s", err, r.body)
	}
	var out []string
	for i, e := range b.Entry {
		if e.Response.Status != "201 Created" {
			t.Fatalf("entry %d: %s", i, e.Response.Status)
		}
		_, loc, _ := strings.Cut(e.Response.Location, "/fhir/")
		loc, _, _ = strings.Cut(loc, "/_history/")
		out = append(out, loc)
	}
	return out
}

// exampleBinaryData is the bytes of the Binary entry of an example Bundle.
func exampleBinaryData(t *testing.T, bundle []byte) []byte {
	t.Helper()
	var b struct {
		Entry []struct {
			Resource struct {
				ResourceType string `json:"resourceType"`
				Data         string `json:"data"`
			} `json:"resource"`
		} `json:"entry"`
	}
	json.Unmarshal(bundle, &b)
	for _, e := range b.Entry {
		if e.Resource.ResourceType == "Binary" {
			data, err := base64.StdEncoding.DecodeString(e.Resource.Data)
			if err != nil {
				t.Fatal(err)
			}
			return data
		}
	}
	t.Fatal("no Binary in the example")
	return nil
}

// TestPDSmProvideDocumentBundleIsStoredAndItsDocumentReadUnderConsent sends
// the pdsm4dmp ITI-65 submission (List + DocumentReference + Binary) as a
// hospital system: 200 with 201 entries; the List points at the stored
// document, the document at the stored Binary, the Binary belongs to the
// document; an authorized professional reads the document's bytes raw, one
// the patient never authorized is refused. On the MongoDB engine of the
// tests (FerretDB, no transactions) the transaction is refused whole.
func TestPDSmProvideDocumentBundleIsStoredAndItsDocumentReadUnderConsent(t *testing.T) {
	bundle := readTestdata(t, "Bundle-example-td2-iti65-lot-soumission.json")
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := newConsentServer(t, e)
			patient := pdsmPatient(t, s)
			r := s.do("POST", "", bundle, "Authorization", "Bearer "+s.system())
			if e.name == "mongodb" {
				if code, _, _ := outcome(t, r); r.status != 422 || code != "not-supported" {
					t.Fatalf("transaction on a server without transactions: %d %s", r.status, r.body)
				}
				return
			}
			if r.status != 200 {
				t.Fatalf("provide document bundle: %d %s", r.status, r.body)
			}
			locs := transactionLocations(t, r)
			if len(locs) != 3 || !strings.HasPrefix(locs[0], "List/") || !strings.HasPrefix(locs[1], "DocumentReference/") || !strings.HasPrefix(locs[2], "Binary/") {
				t.Fatalf("locations %v", locs)
			}
			list, doc, bin := locs[0], locs[1], locs[2]
			authorized := "Bearer " + s.practitioner(psAuthorized, false)

			var l struct {
				Subject struct{ Reference string } `json:"subject"`
				Entry   []struct {
					Item struct{ Reference string } `json:"item"`
				} `json:"entry"`
			}
			lr := s.do("GET", "/"+list, nil, "Authorization", authorized)
			if err := json.Unmarshal(lr.body, &l); err != nil || lr.status != 200 {
				t.Fatalf("read %s: %d %s", list, lr.status, lr.body)
			}
			if l.Subject.Reference != "Patient/"+patient || len(l.Entry) != 1 || l.Entry[0].Item.Reference != doc {
				t.Fatalf("the submission set does not point at the stored document: %s", lr.body)
			}
			dr := s.do("GET", "/"+doc, nil, "Authorization", authorized)
			if dr.status != 200 {
				t.Fatalf("read %s: %d %s", doc, dr.status, dr.body)
			}
			if att := firstAttachment(t, dr.body); att.URL != bin || att.Size != 80 || att.Hash != "A/hMRrv6Y15BjSM8kMLidrz+mHc=" {
				t.Fatalf("the document's attachment: %+v, want url %s", att, bin)
			}
			if !strings.Contains(string(dr.body), `"subject":{"reference":"Patient/`+patient+`"}`) {
				t.Fatalf("the conditional subject was not resolved: %.400s", dr.body)
			}
			want := exampleBinaryData(t, bundle)
			raw := s.do("GET", "/"+bin, nil, "Authorization", authorized)
			if raw.status != 200 || string(raw.body) != string(want) || raw.header.Get("Content-Type") != "application/xml" {
				t.Fatalf("raw read of %s: %d %q %s", bin, raw.status, raw.header.Get("Content-Type"), raw.body)
			}
			js := s.do("GET", "/"+bin, nil, "Authorization", authorized, "Accept", "application/fhir+json")
			if sc := js.json(t)["securityContext"]; sc == nil || sc.(map[string]any)["reference"] != doc {
				t.Fatalf("the Binary does not belong to its document: %s", js.body)
			}
			for _, who := range []string{psStranger, psBlocked} {
				if r := s.do("GET", "/"+bin, nil, "Authorization", "Bearer "+s.practitioner(who, false)); r.status != 403 {
					t.Fatalf("practitioner %s read the document's bytes: %d", who, r.status)
				}
			}
		})
	}
}
