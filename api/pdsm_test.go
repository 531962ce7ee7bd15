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

// The pdsm4dmp examples name their patient by conditional reference to an
// INS, Patient?identifier=urn:oid:1.2.250.1.213.1.4.8|123456789012345,
// which is not a valid NIR (its key would be 11, not 45): no DMP can be
// opened for it. The tests open a DMP for a valid test INS and point the
// examples' conditional references at it, changing nothing else.
const (
	exampleINS = "urn:oid:1.2.250.1.213.1.4.8|123456789012345"
	pdsmNIR    = "183051234567834"
	pdsmINS    = "urn:oid:1.2.250.1.213.1.4.10|" + pdsmNIR
)

// pdsmPatient opens the DMP of the examples' patient, which authorizes
// psAuthorized; it returns the patient's id.
func pdsmPatient(t *testing.T, s *server) string {
	t.Helper()
	id, _, _ := s.createDMP(t, s.practitioner(psAuthorized, false), pdsmNIR, "Martin")
	if r := s.do("POST", "/Patient/"+id+"/$authorize", params("practitioner", psAuthorized), "Authorization", "Bearer "+s.patient(id)); r.status != 200 {
		t.Fatalf("$authorize: %d %s", r.status, r.body)
	}
	return id
}

// readTestdata reads an example, its patient's INS changed as said above.
func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../testdata/pdsm/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(strings.ReplaceAll(string(b), exampleINS, pdsmINS))
}

// transactionLocations returns each entry's "Type/id" and status from a
// transaction-response.
func transactionLocations(t *testing.T, r response) (locs, statuses []string) {
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
	for _, e := range b.Entry {
		_, loc, _ := strings.Cut(e.Response.Location, "/fhir/")
		loc, _, _ = strings.Cut(loc, "/_history/")
		locs = append(locs, loc)
		statuses = append(statuses, e.Response.Status)
	}
	return locs, statuses
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
			locs, statuses := transactionLocations(t, r)
			if strings.Join(statuses, ",") != "201 Created,201 Created,201 Created" {
				t.Fatalf("entry statuses %v", statuses)
			}
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

// TestPDSmReplacementSupersedesTheOldDocument sends the pdsm4dmp
// replacement (List + new DocumentReference that replaces doc-x-id + a
// FHIRPath Patch marking doc-x-id superseded + Binary): 201, 201, 200, 201;
// the old document is superseded, the new one points at it and at its
// Binary, which only an authorized professional reads.
func TestPDSmReplacementSupersedesTheOldDocument(t *testing.T) {
	s := newConsentServer(t, engines[0])
	patient := pdsmPatient(t, s)
	authorized := "Bearer " + s.practitioner(psAuthorized, false)
	// The document being replaced, as it stood before (the example shows it
	// after: superseded), in the patient's record.
	old := strings.Replace(string(readTestdata(t, "DocumentReference-doc-x-id.json")), `"status" : "superseded"`, `"status" : "current"`, 1)
	old = strings.Replace(old, `"reference" : "Patient?identifier=`+pdsmINS+`"`, `"reference" : "Patient/`+patient+`"`, 1)
	// Written by the hospital system that replaces it (only a document's author replaces it).
	if r := s.do("PUT", "/DocumentReference/doc-x-id", []byte(old), "Authorization", "Bearer "+s.system()); r.status != 201 {
		t.Fatalf("the document to replace: %d %s", r.status, r.body)
	}
	bundle := readTestdata(t, "Bundle-example-td2-1-remplacement.json")
	r := s.do("POST", "", bundle, "Authorization", "Bearer "+s.system())
	if r.status != 200 {
		t.Fatalf("replacement: %d %s", r.status, r.body)
	}
	locs, statuses := transactionLocations(t, r)
	if strings.Join(statuses, ",") != "201 Created,201 Created,200 OK,201 Created" {
		t.Fatalf("entry statuses %v", statuses)
	}
	doc, bin := locs[1], locs[3]
	if got := s.do("GET", "/DocumentReference/doc-x-id", nil, "Authorization", authorized).json(t); got["status"] != "superseded" || got["meta"].(map[string]any)["versionId"] != "2" {
		t.Fatalf("the replaced document: %v %v", got["status"], got["meta"])
	}
	dr := s.do("GET", "/"+doc, nil, "Authorization", authorized)
	if !strings.Contains(string(dr.body), `"relatesTo":[{"code":"replaces","target":{"reference":"DocumentReference/doc-x-id"}}]`) || firstAttachment(t, dr.body).URL != bin {
		t.Fatalf("the new document: %s", dr.body)
	}
	if raw := s.do("GET", "/"+bin, nil, "Authorization", authorized); raw.status != 200 || string(raw.body) != string(exampleBinaryData(t, bundle)) {
		t.Fatalf("raw read of %s: %d %s", bin, raw.status, raw.body)
	}
	if raw := s.do("GET", "/"+bin, nil, "Authorization", "Bearer "+s.practitioner(psStranger, false)); raw.status != 403 {
		t.Fatalf("a stranger read the new document's bytes: %d", raw.status)
	}
}

// TestPDSmExampleWithAWrongHashIsRefused: the PDSm 3.1.1 replacement example
// is not valid as published: its attachment's hash
// (qvTGHdzF6KLavt4PO0gs2a6pQ00=) is not the SHA-1 of its Binary's bytes
// ("Hello": 9/+ei3uy4Jtwk1pdeF4MxdnQq/A=). The transaction is refused with
// 422 naming the element, and nothing is stored.
func TestPDSmExampleWithAWrongHashIsRefused(t *testing.T) {
	s := newConsentServer(t, engines[0])
	feeder := "Bearer " + s.practitioner(psAuthorized, false)
	if r := s.do("PUT", "/Patient/fr-patient-123", readTestdata(t, "Patient-fr-patient-123.json"), "Authorization", feeder); r.status != 201 {
		t.Fatalf("patient: %d %s", r.status, r.body)
	}
	bundle := readTestdata(t, "Bundle-bundle-exemple-comprehensiveprovidedocument-replace.json")
	r := s.do("POST", "", bundle, "Authorization", "Bearer "+s.system())
	if _, expr, diag := outcome(t, r); r.status != 422 || expr != "Bundle.entry[1].resource.content[0].attachment.hash" || !strings.Contains(diag, "9/+ei3uy4Jtwk1pdeF4MxdnQq/A=") {
		t.Fatalf("the example with a wrong hash: %d %s", r.status, r.body)
	}
	fixed := strings.ReplaceAll(string(bundle), "qvTGHdzF6KLavt4PO0gs2a6pQ00=", "9/+ei3uy4Jtwk1pdeF4MxdnQq/A=")
	// With its hash right, it fails on what it replaces: doc-old is in no record here.
	if r := s.do("POST", "", []byte(fixed), "Authorization", "Bearer "+s.system()); r.status != 422 || !strings.Contains(string(r.body), "Bundle.entry[1].resource.relatesTo[0].target") {
		t.Fatalf("the example with its hash fixed, replacing a missing document: %d %s", r.status, r.body)
	}
	if n := countBinaries(t, s); n != 0 {
		t.Fatalf("a refused transaction stored %d Binaries", n)
	}
}
