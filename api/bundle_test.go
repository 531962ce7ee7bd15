package api_test

import (
	"encoding/json"
	"github.com/dmp-fhir/dmp-fhir/api"
	"github.com/dmp-fhir/dmp-fhir/fhir"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const transactionPatientObs = `{"resourceType":"Bundle","type":"transaction","entry":[
 {"fullUrl":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a","resource":{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"},"effectiveDateTime":"2024-02-01"},"request":{"method":"POST","url":"Observation"}},
 {"fullUrl":"urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0","resource":{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.250.1.213.1.4.10","value":"277076322082910"}],"name":[{"family":"Durand"}]},"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:oid:1.2.250.1.213.1.4.10|277076322082910"}}
]}`

func responseStatuses(t *testing.T, r response) []string {
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
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range b.Entry {
		out = append(out, e.Response.Status)
	}
	return out
}

func TestTransactionRewritesReferencesAndIsIdempotentByIdentifier(t *testing.T) {
	s := newServer(t, engines[0], apiConfig())
	r := s.do("POST", "", []byte(transactionPatientObs))
	if r.status != 200 {
		t.Fatalf("transaction: %d %s", r.status, r.body)
	}
	if got := responseStatuses(t, r); strings.Join(got, ",") != "201 Created,201 Created" {
		t.Fatalf("entry statuses %v", got)
	}
	ids, _, _, _ := entries(t, s.do("GET", "/Patient?identifier=urn:oid:1.2.250.1.213.1.4.10|277076322082910", nil))
	if len(ids) != 1 {
		t.Fatalf("patients: %v", ids)
	}
	obs, _, _, _ := entries(t, s.do("GET", "/Observation?subject="+ids[0], nil))
	if len(obs) != 1 {
		t.Fatalf("the urn:uuid reference was not rewritten to %s: %v", ids[0], obs)
	}
	// Sent again (a retry after a timeout): the patient is found, not duplicated.
	r = s.do("POST", "/", []byte(transactionPatientObs))
	if got := responseStatuses(t, r); r.status != 200 || strings.Join(got, ",") != "201 Created,200 OK" {
		t.Fatalf("retry: %d %v", r.status, got)
	}
	if ids2, _, _, _ := entries(t, s.do("GET", "/Patient", nil)); len(ids2) != 1 {
		t.Fatalf("the retry duplicated the patient: %v", ids2)
	}
	obs, _, _, _ = entries(t, s.do("GET", "/Observation?subject="+ids[0], nil))
	if len(obs) != 2 {
		t.Fatalf("the retried observation must point at the existing patient: %v", obs)
	}
}

func TestTransactionIsAllOrNothing(t *testing.T) {
	s := newServer(t, engines[0], apiConfig())
	bad := strings.Replace(transactionPatientObs, `"name":[{"family":"Durand"}]`, `"birthDate":"1983-02-30x"`, 1)
	r := s.do("POST", "", []byte(bad))
	if r.status != 400 {
		t.Fatalf("invalid transaction: %d %s", r.status, r.body)
	}
	if _, expr, _ := outcome(t, r); !strings.HasPrefix(expr, "Bundle.entry[1].resource") {
		t.Fatalf("expression %q does not name the entry", expr)
	}
	// A failure found while writing (a stale If-Match) rolls back the entries before it.
	failing := `{"resourceType":"Bundle","type":"transaction","entry":[
	 {"resource":{"resourceType":"Patient","name":[{"family":"A"}]},"request":{"method":"POST","url":"Patient"}},
	 {"resource":{"resourceType":"Patient","id":"p9","name":[{"family":"B"}]},"request":{"method":"PUT","url":"Patient/p9","ifMatch":"W/\"4\""}}]}`
	r = s.do("POST", "", []byte(failing))
	if r.status != 412 {
		t.Fatalf("transaction with a stale If-Match: %d %s", r.status, r.body)
	}
	if _, expr, _ := outcome(t, r); expr != "Bundle.entry[1]" {
		t.Fatalf("expression %q, want Bundle.entry[1]", expr)
	}
	if ids, _, _, _ := entries(t, s.do("GET", "/Patient", nil)); len(ids) != 0 {
		t.Fatalf("a failed transaction stored %v", ids)
	}
	noMatch := strings.Replace(transactionPatientObs, `"reference":"urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"`, `"reference":"Patient?identifier=urn:x|nobody"`, 1)
	if r := s.do("POST", "", []byte(noMatch)); r.status != 412 {
		t.Fatalf("conditional reference without match: %d %s", r.status, r.body)
	}
}

func TestBatchEntriesSucceedOrFailOneByOne(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *server) {
		batch := `{"resourceType":"Bundle","type":"batch","entry":[
		 {"resource":{"resourceType":"Patient","name":[{"family":"A"}]},"request":{"method":"POST","url":"Patient"}},
		 {"resource":{"resourceType":"Patient","id":"p1","name":[{"family":"B"}]},"request":{"method":"PUT","url":"Patient/p1","ifMatch":"W/\"3\""}},
		 {"request":{"method":"GET","url":"Patient/nope"}},
		 {"resource":{"resourceType":"Patient","id":"p2","name":[{"family":"C"}]},"request":{"method":"PUT","url":"Patient/p2"}},
		 {"request":{"method":"GET","url":"Patient?family=c"}}]}`
		r := s.do("POST", "", []byte(batch))
		if r.status != 200 {
			t.Fatalf("batch: %d %s", r.status, r.body)
		}
		got := strings.Join(responseStatuses(t, r), ",")
		if got != "201 Created,412 Precondition Failed,404 Not Found,201 Created,200 OK" {
			t.Fatalf("batch statuses: %s", got)
		}
		if !strings.Contains(string(r.body), `"type":"batch-response"`) {
			t.Fatalf("not a batch-response: %s", r.body)
		}
	})
}

// A PUT entry's resource must say the type and id its url says, as a PUT
// on its own must: the entry's type and id are read ahead of the write
// lock, and the checks still apply to them, in a transaction (which fails,
// naming the entry) and in a batch (where the entry fails alone).
func TestPutEntriesWhoseResourceDisagreesWithTheirURLAreRefused(t *testing.T) {
	s := newServer(t, engines[0], apiConfig())
	cases := []struct{ name, resource, url, expr, diagnostics string }{
		{"another id", `{"resourceType":"Patient","id":"p2"}`, "Patient/p1", "Bundle.entry[1].resource.id", "the id in the body (p2) does not match"},
		{"no id", `{"resourceType":"Patient"}`, "Patient/p1", "Bundle.entry[1].resource.id", "must carry the resource id"},
		{"another type", `{"resourceType":"Practitioner","id":"p1"}`, "Patient/p1", "Bundle.entry[1].resource.resourceType", `resourceType "Practitioner" does not match`},
	}
	const good = `{"resource":{"resourceType":"Patient","id":"ok1","name":[{"family":"Bon"}]},"request":{"method":"PUT","url":"Patient/ok1"}}`
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			entries := good + `,{"resource":` + c.resource + `,"request":{"method":"PUT","url":"` + c.url + `"}}`
			r := s.do("POST", "", []byte(`{"resourceType":"Bundle","type":"transaction","entry":[`+entries+`]}`))
			if r.status != 400 {
				t.Fatalf("transaction: status %d, want 400: %s", r.status, r.body)
			}
			if _, expr, diag := outcome(t, r); expr != c.expr || !strings.Contains(diag, c.diagnostics) {
				t.Fatalf("transaction: expression %q, diagnostics %q; want %q, %q", expr, diag, c.expr, c.diagnostics)
			}
			if r := s.do("GET", "/Patient/ok1", nil); r.status != 404 && r.status != 410 { // 410: the previous case's batch
				t.Fatalf("the failed transaction stored its other entry: %d", r.status)
			}
			r = s.do("POST", "", []byte(`{"resourceType":"Bundle","type":"batch","entry":[`+entries+`]}`))
			if got := strings.Join(responseStatuses(t, r), ","); r.status != 200 || !strings.HasPrefix(got, "20") || !strings.HasSuffix(got, ",400 Bad Request") {
				t.Fatalf("batch: %d, entry statuses %s, want the first written and the second 400", r.status, got)
			}
			s.do("DELETE", "/Patient/ok1", nil)
		})
	}
}

func TestTransactionWithoutEngineTransactionsIsRefused(t *testing.T) {
	s := newServer(t, engines[1], apiConfig()) // FerretDB: no transactions
	r := s.do("POST", "", []byte(transactionPatientObs))
	if code, _, _ := outcome(t, r); r.status != 422 || code != "not-supported" {
		t.Fatalf("transaction on a server without transactions: %d %s", r.status, r.body)
	}
	if ids, _, _, _ := entries(t, s.do("GET", "/Patient", nil)); len(ids) != 0 {
		t.Fatalf("a refused transaction stored %v", ids)
	}
}

// TestSyntheaBundlesLoadAndEveryResourceIsInItsPatientCompartment loads the
// Synthea transaction Bundles and checks, against a count made from the
// Bundles themselves, that each patient's compartment search returns every
// resource that references the patient.
func TestSyntheaBundlesLoadAndEveryResourceIsInItsPatientCompartment(t *testing.T) {
	files, _ := filepath.Glob("../testdata/synthea/bundles/*.json")
	if len(files) != 6 {
		t.Fatalf("%d Synthea bundles, want 6", len(files))
	}
	s := newServer(t, engines[0], apiConfig())
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r := s.do("POST", "", body)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", filepath.Base(f), r.status, r.body)
		}
		var b struct {
			Entry []struct {
				FullURL  string          `json:"fullUrl"`
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		json.Unmarshal(body, &b)
		patientURL, byType := "", map[string]int{}
		for _, e := range b.Entry {
			var head struct {
				ResourceType string `json:"resourceType"`
			}
			json.Unmarshal(e.Resource, &head)
			if head.ResourceType == "Patient" {
				patientURL = e.FullURL
			}
		}
		for _, e := range b.Entry {
			var head struct {
				ResourceType string `json:"resourceType"`
			}
			json.Unmarshal(e.Resource, &head)
			if head.ResourceType != "Patient" && strings.Contains(string(e.Resource), `"`+patientURL+`"`) {
				byType[head.ResourceType]++
			}
		}
		pids, _, _, _ := entries(t, s.do("GET", "/Patient?_count=1000&_sort=-_lastUpdated", nil))
		pid := strings.TrimPrefix(pids[0], "Patient/")
		for typ, want := range byType {
			if typ == "Organization" || typ == "Practitioner" {
				continue
			}
			_, _, total, _ := entries(t, s.do("GET", "/Patient/"+pid+"/"+typ+"?_summary=count", nil))
			if int(total) != want {
				t.Errorf("%s: Patient/%s/%s has %v resources, want %d", filepath.Base(f), pid, typ, total, want)
			}
		}
	}
}

// TestConcurrentConditionalCreatesMakeOneResource: 16 clients send the same
// conditional create at once (a hospital system retrying); exactly one
// resource exists afterwards. On the embedded engine the lookup and the
// write share the one write lock; the MongoDB engine needs a replica set
// for this (docs/MONGODB.md).
func TestConcurrentConditionalCreatesMakeOneResource(t *testing.T) {
	s := newServer(t, engines[0], apiConfig())
	body := []byte(`{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.250.1.213.1.4.10","value":"163117512345696"}],"name":[{"family":"Roux"}]}`)
	var wg sync.WaitGroup
	statuses := make(chan int, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- s.do("POST", "/Patient", body, "If-None-Exist", "identifier=urn:oid:1.2.250.1.213.1.4.10|163117512345696").status
		}()
	}
	wg.Wait()
	close(statuses)
	created := 0
	for st := range statuses {
		switch st {
		case 201:
			created++
		case 200:
		default:
			t.Errorf("status %d", st)
		}
	}
	ids, _, _, _ := entries(t, s.do("GET", "/Patient?identifier=urn:oid:1.2.250.1.213.1.4.10|163117512345696", nil))
	if created != 1 || len(ids) != 1 {
		t.Fatalf("%d creates answered 201 and %d patients exist, want 1 and 1", created, len(ids))
	}
}

// TestAuthorStampChangesNoIndexValue: a Bundle entry's index values are
// extracted before its author is stamped (meta.extension) and handed to
// the store with the stamped body (store.WithIndex): for that to be
// right, the stamp, and the store's version stamp, must change no index
// value of any example resource.
func TestAuthorStampChangesNoIndexValue(t *testing.T) {
	files, err := filepath.Glob("../testdata/examples/*/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		stamped, err := api.WithAuthor(body, "810000000042")
		if err != nil {
			continue // not a resource object: nothing is written
		}
		stored, err := fhir.Stamp(stamped, "x1", 2, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if want, got := fhir.ExtractIndex(body), fhir.ExtractIndex(stored); !reflect.DeepEqual(want, got) {
			t.Errorf("%s: the stamps changed the index values:\n%+v\n%+v", f, want, got)
		}
	}
}

// bundleAnswer is a batch's or transaction's answer, its entries' resources
// and responses.
type bundleAnswer struct {
	Entry []struct {
		Resource json.RawMessage `json:"resource"`
		Response struct {
			Status  string          `json:"status"`
			Outcome json.RawMessage `json:"outcome"`
		} `json:"response"`
	} `json:"entry"`
}

// entryAnswers decodes r, a response Bundle of n entries.
func entryAnswers(t *testing.T, r response, n int) bundleAnswer {
	t.Helper()
	var b bundleAnswer
	if err := json.Unmarshal(r.body, &b); err != nil || len(b.Entry) != n {
		t.Fatalf("response: %v %s", err, r.body)
	}
	return b
}

// Prefer: return=... of a batch or transaction applies to each of its
// entries (FHIR R4 http.html#prefer): an importer asking for minimal
// answers gets no copy of what it sent back; a read entry still answers
// its resource.
func TestBundlePreferReturnAppliesToEachEntry(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *server) {
		cases := []struct {
			prefer            string
			resource, outcome bool // the written entry carries its resource; the outcome asked for
		}{
			{"", true, false},
			{"return=representation", true, false},
			{"return=minimal", false, false},
			{"return=OperationOutcome", false, true},
		}
		for i, tc := range cases {
			t.Run("Prefer "+tc.prefer, func(t *testing.T) {
				batch := `{"resourceType":"Bundle","type":"batch","entry":[
				 {"resource":{"resourceType":"Patient","id":"pr` + strconv.Itoa(i) + `","name":[{"family":"Prefer"}]},"request":{"method":"PUT","url":"Patient/pr` + strconv.Itoa(i) + `"}},
				 {"request":{"method":"GET","url":"Patient/pr` + strconv.Itoa(i) + `"}}]}`
				var headers []string
				if tc.prefer != "" {
					headers = []string{"Prefer", tc.prefer}
				}
				r := s.do("POST", "", []byte(batch), headers...)
				if r.status != 200 {
					t.Fatalf("batch: %d %s", r.status, r.body)
				}
				b := entryAnswers(t, r, 2)
				written, read := b.Entry[0], b.Entry[1]
				if written.Response.Status != "201 Created" || read.Response.Status != "200 OK" {
					t.Fatalf("statuses %q, %q", written.Response.Status, read.Response.Status)
				}
				if got := written.Resource != nil; got != tc.resource {
					t.Errorf("the written entry carries its resource: %v, want %v (%s)", got, tc.resource, r.body)
				}
				if got := strings.Contains(string(written.Response.Outcome), "is at version"); got != tc.outcome {
					t.Errorf("the written entry's outcome is the OperationOutcome asked for: %v, want %v (%s)", got, tc.outcome, r.body)
				}
				if read.Resource == nil {
					t.Errorf("the read entry lost its resource: %s", r.body)
				}
			})
		}
	})
}

// A batch's entries are FHIR interactions: an absolute url outside the FHIR
// base is refused for that entry alone, and an operation answering an
// OperationOutcome (\$validate) keeps it as the entry's resource.
func TestBatchEntriesStayFHIRInteractions(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *server) {
		batch := `{"resourceType":"Bundle","type":"batch","entry":[
		 {"request":{"method":"GET","url":"http://elsewhere.example/healthz"}},
		 {"resource":{"resourceType":"Patient","name":[{"family":"V"}]},"request":{"method":"POST","url":"Patient/$validate"}},
		 {"resource":{"resourceType":"Patient","id":"sf1","name":[{"family":"S"}]},"request":{"method":"PUT","url":"http://elsewhere.example/fhir/Patient/sf1"}}]}`
		r := s.do("POST", "", []byte(batch), "Prefer", "return=OperationOutcome")
		if r.status != 200 {
			t.Fatalf("batch: %d %s", r.status, r.body)
		}
		b := entryAnswers(t, r, 3)
		if e := b.Entry[0]; e.Response.Status != "400 Bad Request" || !strings.Contains(string(e.Response.Outcome), "FHIR base") {
			t.Errorf("an entry outside the FHIR base: %s %s", e.Response.Status, e.Response.Outcome)
		}
		if e := b.Entry[1]; e.Response.Status != "200 OK" || !strings.Contains(string(e.Resource), `"OperationOutcome"`) {
			t.Errorf("$validate's answer is not the entry's resource: %s", r.body)
		}
		if e := b.Entry[2]; e.Response.Status != "201 Created" || e.Resource != nil || !strings.Contains(string(e.Response.Outcome), "is at version") {
			t.Errorf("a write with return=OperationOutcome: %s", r.body)
		}
	})
}

// A Bundle whose entries are not what FHIR's JSON says is refused with 400,
// an OperationOutcome naming the element at fault, and nothing stored.
func TestMalformedBundlesAreRefusedNamingTheElement(t *testing.T) {
	s := newServer(t, engines[0], apiConfig())
	patient := `{"resource":{"resourceType":"Patient","name":[{"family":"M"}]},"request":{"method":"POST","url":"Patient"}}`
	cases := []struct{ name, body, expr string }{
		{"entry is not a list", `{"resourceType":"Bundle","type":"batch","entry":{"request":{"method":"GET","url":"Patient"}}}`, "Bundle.entry"},
		{"an entry is not an object", `{"resourceType":"Bundle","type":"transaction","entry":[` + patient + `,3]}`, "Bundle.entry[1]"},
		{"a fullUrl that is not a string", `{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":7,"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]}`, "Bundle.entry[0].fullUrl"},
		{"a request url that is not a string", `{"resourceType":"Bundle","type":"transaction","entry":[` + patient + `,{"request":{"method":"GET","url":true}}]}`, "Bundle.entry[1].request.url"},
		{"a request that is not an object", `{"resourceType":"Bundle","type":"batch","entry":[{"request":"GET Patient"}]}`, "Bundle.entry[0].request"},
		{"an entry with a member twice", `{"resourceType":"Bundle","type":"transaction","entry":[` + patient + `,{"request":{"method":"GET","url":"Patient"},"request":{"method":"GET","url":"Patient"}}]}`, "Bundle.entry[1]"},
		{"a type that is not a string", `{"resourceType":"Bundle","type":["batch"],"entry":[]}`, "Bundle.type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.do("POST", "", []byte(c.body))
			if r.status != 400 {
				t.Fatalf("status %d, want 400: %s", r.status, r.body)
			}
			if _, expr, _ := outcome(t, r); expr != c.expr {
				t.Fatalf("expression %q, want %q", expr, c.expr)
			}
		})
	}
	if ids, _, _, _ := entries(t, s.do("GET", "/Patient", nil)); len(ids) != 0 {
		t.Fatalf("a refused Bundle stored %v", ids)
	}
}

// A transaction stamps its creates ahead of its write lock (author, id,
// versionId) and the store writes the time in: what is stored must be what
// a create on its own stores. Each created resource read back has its id,
// the versionId, lastUpdated and ETag its entry answered, and the caller as
// author, as a plain POST's resource has: a transaction's POSTs and its PUT
// at a new id, a batch's PUT at a new id, and a PUT at the id of a deleted
// resource (a new life: version 3, after the deletion's 2).
// (The embedded engine only: the test MongoDB, FerretDB, has no
// transactions.)
func TestATransactionsCreatesAreStampedAsAPlainCreateIs(t *testing.T) {
	s := newConsentServer(t, engines[0])
	hospital := "Bearer " + s.system()
	type meta struct {
		VersionID   string `json:"versionId"`
		LastUpdated string `json:"lastUpdated"`
		Extension   []struct {
			URL         string `json:"url"`
			ValueString string `json:"valueString"`
		} `json:"extension"`
	}
	type stored struct {
		ID   string `json:"id"`
		Meta meta   `json:"meta"`
	}
	authorOf := func(m meta) string {
		for _, e := range m.Extension {
			if e.URL == api.AuthorExtension {
				return e.ValueString
			}
		}
		return ""
	}
	plain := s.do("POST", "/Organization", []byte(`{"resourceType":"Organization","name":"Seule"}`), "Authorization", hospital)
	var one stored
	if plain.status != 201 || json.Unmarshal(plain.body, &one) != nil || authorOf(one.Meta) == "" {
		t.Fatalf("a plain create, with its author: %d %s", plain.status, plain.body)
	}
	wantAuthor := authorOf(one.Meta)

	// check posts bundle as the hospital and compares each entry's
	// resource, read back, with what the entry answered.
	check := func(name, bundle string, wantVersions ...string) {
		t.Helper()
		r := s.do("POST", "", []byte(bundle), "Authorization", hospital)
		var answer struct {
			Entry []struct {
				Response struct {
					Location, Etag, LastModified string
				} `json:"response"`
			} `json:"entry"`
		}
		if r.status != 200 || json.Unmarshal(r.body, &answer) != nil || len(answer.Entry) != len(wantVersions) {
			t.Fatalf("%s: %d %s", name, r.status, r.body)
		}
		for i, e := range answer.Entry {
			loc := e.Response.Location[strings.Index(e.Response.Location, "/fhir/")+len("/fhir"):]
			loc = strings.Split(loc, "/_history/")[0]
			var res stored
			if got := s.do("GET", loc, nil, "Authorization", hospital); got.status != 200 || json.Unmarshal(got.body, &res) != nil {
				t.Fatalf("%s: read %s: %d %s", name, loc, got.status, got.body)
			}
			switch {
			case !strings.HasSuffix(loc, "/"+res.ID):
				t.Errorf("%s %s: stored id %q", name, loc, res.ID)
			case res.Meta.VersionID != wantVersions[i] || e.Response.Etag != `W/"`+wantVersions[i]+`"`:
				t.Errorf("%s %s: versionId %q, ETag %s, want %s", name, loc, res.Meta.VersionID, e.Response.Etag, wantVersions[i])
			case res.Meta.LastUpdated != e.Response.LastModified:
				t.Errorf("%s %s: lastUpdated %q, the entry answered %q", name, loc, res.Meta.LastUpdated, e.Response.LastModified)
			case authorOf(res.Meta) != wantAuthor:
				t.Errorf("%s %s: author %q, a plain create's %q", name, loc, authorOf(res.Meta), wantAuthor)
			}
			if _, err := time.Parse(fhir.InstantFormat, res.Meta.LastUpdated); err != nil {
				t.Errorf("%s %s: lastUpdated %q: %v", name, loc, res.Meta.LastUpdated, err)
			}
		}
	}
	check("transaction", `{"resourceType":"Bundle","type":"transaction","entry":[
	 {"fullUrl":"urn:uuid:9a1d1c43-46a3-4a6f-8b0e-0a5f3c1d2e01","resource":{"resourceType":"Organization","name":"CH Exemple"},"request":{"method":"POST","url":"Organization"}},
	 {"resource":{"resourceType":"Organization","name":"Service","partOf":{"reference":"urn:uuid:9a1d1c43-46a3-4a6f-8b0e-0a5f3c1d2e01"}},"request":{"method":"POST","url":"Organization"}},
	 {"resource":{"resourceType":"Organization","id":"org-put-new","name":"Créée par PUT"},"request":{"method":"PUT","url":"Organization/org-put-new"}}]}`, "1", "1", "1")
	if d := s.do("DELETE", "/Organization/org-put-new", nil, "Authorization", hospital); d.status >= 300 {
		t.Fatalf("delete: %d %s", d.status, d.body)
	}
	check("batch", `{"resourceType":"Bundle","type":"batch","entry":[
	 {"resource":{"resourceType":"Organization","id":"org-batch-put","name":"Lot"},"request":{"method":"PUT","url":"Organization/org-batch-put"}},
	 {"resource":{"resourceType":"Organization","id":"org-put-new","name":"Seconde vie"},"request":{"method":"PUT","url":"Organization/org-put-new"}}]}`, "1", "3")
}
