package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dmp-fhir/dmp-fhir/api"
	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// Professionals of the consent matrix, by what the patient decided.
const (
	psAuthorized = "810000000011"
	psTreating   = "810000000022"
	psBlocked    = "810000000033"
	psStranger   = "810000000044"
	psExpired    = "810000000055"
	psRegulator  = "810000000066" // a SAMU regulator the patient never authorized
)

// newConsentServer is a server with the consent decision and the audit on.
func newConsentServer(t *testing.T, e engine) *server {
	t.Helper()
	st := e.open(t)
	key := signingKey(t)
	v, err := auth.NewVerifier(auth.VerifierConfig{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	auditor := auth.NewAuditor(st, auth.AuditorOptions{JournalDir: t.TempDir()})
	outbox, err := auth.NewOutbox(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { outbox.Close() })
	s := newServerOn(t, st, api.Config{Auth: &api.Auth{Verifier: v, Key: key, Auditor: auditor, Notifier: outbox}}) // closes the auditor
	s.outbox, s.auditor = outbox, auditor
	return s
}

func (s *server) practitioner(idnps string, regulator bool) string {
	return s.tokenFor(auth.Claims{Kind: auth.KindPractitioner, IDNatPs: idnps, Profession: "10", Regulator: regulator, Scope: "user/*.cruds"})
}

func (s *server) patient(id string) string {
	return s.tokenFor(auth.Claims{Kind: auth.KindPatient, Patient: id, Scope: "patient/*.cruds"})
}

func (s *server) system() string {
	return s.tokenFor(auth.Claims{Kind: auth.KindSystem, ClientID: "his-demo", Scope: "system/*.cruds"})
}

func params(kv ...string) []byte {
	var ps []string
	for i := 0; i+1 < len(kv); i += 2 {
		ps = append(ps, fmt.Sprintf(`{"name":%q,"valueString":%q}`, kv[i], kv[i+1]))
	}
	return []byte(`{"resourceType":"Parameters","parameter":[` + strings.Join(ps, ",") + `]}`)
}

// record is one patient's DMP with a document of each visibility.
type record struct {
	patient                       string
	plain, masked, invisible, obs string
}

func (s *server) seedRecord(t *testing.T) record {
	t.Helper()
	feeder := s.practitioner(psAuthorized, false)
	create := func(body string) string {
		typ := strings.Split(strings.Split(body, `"resourceType":"`)[1], `"`)[0]
		r := s.do("POST", "/"+typ, []byte(body), "Authorization", "Bearer "+feeder)
		if r.status != 201 {
			t.Fatalf("seed %s: %d %s", typ, r.status, r.body)
		}
		return r.json(t)["id"].(string)
	}
	var rec record
	rec.patient, _, _ = s.createDMP(t, feeder, "283052A12345681", "Dupré")
	pat := "Bearer " + s.patient(rec.patient)
	past, future := time.Now().Add(-48*time.Hour).Format(time.RFC3339), time.Now().Add(-24*time.Hour).Format(time.RFC3339)
	for _, op := range []struct {
		name string
		body []byte
	}{
		{"$authorize", params("practitioner", psAuthorized)},
		{"$authorize", params("practitioner", psExpired, "start", past, "end", future)},
		{"$set-treating-doctor", params("practitioner", psTreating)},
		{"$block", params("practitioner", psBlocked)},
	} {
		if r := s.do("POST", "/Patient/"+rec.patient+"/"+op.name, op.body, "Authorization", pat); r.status != 200 {
			t.Fatalf("%s: %d %s", op.name, r.status, r.body)
		}
	}
	doc := func(title string) string {
		return create(`{"resourceType":"DocumentReference","status":"current","type":{"coding":[{"system":"http://loinc.org","code":"11488-4"}]},"subject":{"reference":"Patient/` + rec.patient + `"},"description":"` + title + `","content":[{"attachment":{"contentType":"text/plain","data":"Y29tcHRlIHJlbmR1"}}]}`)
	}
	rec.plain, rec.masked, rec.invisible = doc("plain"), doc("masked"), doc("invisible")
	rec.obs = create(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/` + rec.patient + `"},"effectiveDateTime":"2024-01-02"}`)
	if r := s.do("POST", "/DocumentReference/"+rec.masked+"/$mask", nil, "Authorization", pat); r.status != 200 {
		t.Fatalf("$mask: %d %s", r.status, r.body)
	}
	if r := s.do("POST", "/DocumentReference/"+rec.invisible+"/$hide-from-patient", nil, "Authorization", "Bearer "+feeder); r.status != 200 {
		t.Fatalf("$hide-from-patient: %d %s", r.status, r.body)
	}
	return rec
}

// caller is one row of the matrix: a token, an access mode, and the
// documents it must see (by the rules of DOMAIN.md §4.2, written out here
// independently of the code that applies them).
type caller struct {
	name, token string
	headers     []string
	// sees lists what the caller must see among plain, masked, invisible,
	// obs; nil: nothing of the record.
	sees func(emergencyPermitted bool) []string
	// browse: a search without a patient parameter shows the record too.
	browse bool
}

// TestConsentMatrixOnEveryReadPath runs every caller of the matrix on every
// read path on the embedded engine, and a cross-section of it (one caller
// per rule family) on the MongoDB engine, whose test server (FerretDB, no
// index, no transaction) is too slow for the whole matrix within go test's
// time limit.
func TestConsentMatrixOnEveryReadPath(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { runConsentMatrix(t, e, e.name == "sqlite") })
	}
}

// onMongo are the callers of the cross-section run on the MongoDB engine.
var onMongo = map[string]bool{"the patient": true, "authorized professional": true, "blocked professional": true, "stranger breaking the glass": true}

func runConsentMatrix(t *testing.T, e engine, full bool) {
	s := newConsentServer(t, e)
	rec := s.seedRecord(t)
	all := []string{"plain", "masked", "invisible", "obs"}
	unmasked := []string{"plain", "invisible", "obs"}
	none := func(bool) []string { return nil }
	emergency := func(permitted bool) []string {
		if permitted {
			return all
		}
		return nil
	}
	btg := []string{"X-Access-Mode", "bris_de_glace", "X-Access-Reason", "patient inconscient aux urgences"}
	c15 := []string{"X-Access-Mode", "centre_15"}
	callers := []caller{
		{name: "the patient", token: s.patient(rec.patient), sees: func(bool) []string { return []string{"plain", "masked", "obs"} }, browse: true},
		{name: "another patient", token: s.patient("someone-else"), sees: none},
		{name: "a system client", token: s.system(), sees: none},
		{name: "authorized professional", token: s.practitioner(psAuthorized, false), sees: func(bool) []string { return unmasked }, browse: true},
		{name: "médecin traitant", token: s.practitioner(psTreating, false), sees: func(bool) []string { return all }, browse: true},
		{name: "blocked professional", token: s.practitioner(psBlocked, false), sees: none},
		{name: "blocked professional breaking the glass", token: s.practitioner(psBlocked, false), headers: btg, sees: none},
		{name: "stranger", token: s.practitioner(psStranger, false), sees: none},
		{name: "expired authorization", token: s.practitioner(psExpired, false), sees: none},
		{name: "stranger breaking the glass", token: s.practitioner(psStranger, false), headers: btg, sees: emergency},
		{name: "stranger breaking the glass without a reason", token: s.practitioner(psStranger, false), headers: []string{"X-Access-Mode", "bris_de_glace"}, sees: none},
		{name: "SAMU regulator, centre 15", token: s.practitioner(psRegulator, true), headers: c15, sees: emergency},
		{name: "centre 15 by a non-regulator", token: s.practitioner(psStranger, false), headers: c15, sees: none},
		{name: "SAMU regulator in normal mode", token: s.practitioner(psRegulator, true), sees: none},
	}
	ids := map[string]string{"plain": rec.plain, "masked": rec.masked, "invisible": rec.invisible, "obs": rec.obs}
	for _, permitted := range []bool{true, false} {
		if !full && !permitted {
			continue
		}
		if !permitted {
			// The patient opposes every emergency access (and masked
			// documents in an emergency).
			r := s.do("POST", "/Patient/"+rec.patient+"/$emergency-preferences", params("ETREAT", "deny", "BTG", "deny", "MASKED", "deny"), "Authorization", "Bearer "+s.patient(rec.patient))
			if r.status != 200 {
				t.Fatalf("$emergency-preferences: %d %s", r.status, r.body)
			}
		}
		for _, c := range callers {
			if !full && !onMongo[c.name] {
				continue
			}
			t.Run(fmt.Sprintf("%s/emergency-permitted=%v", c.name, permitted), func(t *testing.T) {
				want := c.sees(permitted)
				wantSet := map[string]bool{}
				for _, w := range want {
					wantSet[ids[w]] = true
				}
				hdr := append([]string{"Authorization", "Bearer " + c.token}, c.headers...)
				// read, vread, instance history: 200 exactly for what the caller may see, else 403.
				for name, id := range ids {
					typ := "DocumentReference"
					if name == "obs" {
						typ = "Observation"
					}
					for _, path := range []string{"/" + typ + "/" + id, "/" + typ + "/" + id + "/_history/1", "/" + typ + "/" + id + "/_history"} {
						r := s.do("GET", path, nil, hdr...)
						switch {
						case wantSet[id] && r.status != 200:
							t.Errorf("GET %s (%s): %d, want 200: %s", path, name, r.status, r.body)
						case !wantSet[id] && r.status != 403:
							t.Errorf("GET %s (%s): %d, want 403", path, name, r.status)
						}
					}
				}
				// Searches, compartments, includes: exactly the visible set.
				// visible follows next links: every page is decided again.
				visible := func(path string) map[string]bool {
					got := map[string]bool{}
					for pages := 0; path != "" && pages < 10; pages++ {
						r := s.do("GET", path, nil, hdr...)
						if r.status == 403 {
							return got
						}
						ids, _, _, next := entries(t, r)
						for _, id := range ids {
							if i := strings.IndexByte(id, '/'); i > 0 && id[:i] != "Patient" && id[:i] != "OperationOutcome" {
								got[id[i+1:]] = true
							}
						}
						path = strings.TrimPrefix(next, s.url)
					}
					return got
				}
				wantDocs := map[string]bool{}
				for id := range wantSet {
					if id != rec.obs {
						wantDocs[id] = true
					}
				}
				for _, path := range []string{
					"/DocumentReference?patient=" + rec.patient,
					"/DocumentReference?subject=Patient/" + rec.patient + "&_total=accurate",
					"/Patient/" + rec.patient + "/DocumentReference",
					"/Patient?_id=" + rec.patient + "&_revinclude=DocumentReference:subject",
					"/DocumentReference?patient=" + rec.patient + "&_sort=-date&_count=2",
				} {
					if got := visible(path); !sameSet(got, wantDocs) {
						t.Errorf("GET %s: %v, want %v", path, keys(got), keys(wantDocs))
					}
				}
				browseWant := map[string]bool{}
				if c.browse {
					browseWant = wantDocs
				}
				if got := visible("/DocumentReference"); !sameSet(got, browseWant) {
					t.Errorf("search without patient: %v, want %v", keys(got), keys(browseWant))
				}
				// _include reaches the Patient only for whom may see the record.
				r := s.do("GET", "/Observation?patient="+rec.patient+"&_include=Observation:patient", nil, hdr...)
				if strings.Contains(string(r.body), `"resourceType":"Patient"`) != wantSet[rec.obs] {
					t.Errorf("_include of the patient: %d %s", r.status, r.body)
				}
				// Batch reads.
				batch := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"DocumentReference/` + rec.plain + `"}},{"request":{"method":"GET","url":"DocumentReference?patient=` + rec.patient + `"}}]}`
				r = s.do("POST", "", []byte(batch), hdr...)
				statuses := responseStatuses(t, r)
				if (statuses[0] == "200 OK") != wantSet[rec.plain] {
					t.Errorf("batch read of the plain document: %v", statuses)
				}
			})
		}
	}
}

func sameSet(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestAuthenticationAndScopes(t *testing.T) {
	s := newConsentServer(t, engines[0])
	expired := s.tokenFor(auth.Claims{Kind: auth.KindPractitioner, IDNatPs: psAuthorized, Profession: "10", Scope: "user/*.cruds"})
	cases := []struct {
		name, method, path string
		headers            []string
		status             int
	}{
		{"metadata needs no token", "GET", "/metadata", []string{"Authorization", "none"}, 200},
		{"no token", "GET", "/Patient", []string{"Authorization", "none"}, 401},
		{"garbage token", "GET", "/Patient", []string{"Authorization", "Bearer abc.def.ghi"}, 401},
		{"read-only scope cannot create", "POST", "/Observation", []string{"Authorization", "Bearer " + s.tokenFor(auth.Claims{Kind: auth.KindPractitioner, IDNatPs: psAuthorized, Profession: "10", Scope: "user/*.rs"})}, 403},
		{"Observation scope cannot search Patient", "GET", "/Patient", []string{"Authorization", "Bearer " + s.tokenFor(auth.Claims{Kind: auth.KindPractitioner, IDNatPs: psAuthorized, Profession: "10", Scope: "user/Observation.rs"})}, 403},
		{"valid token", "GET", "/Practitioner", []string{"Authorization", "Bearer " + expired}, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body []byte
			if c.method == "POST" {
				body = []byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"}}`)
			}
			r := s.do(c.method, c.path, body, c.headers...)
			if r.status != c.status {
				t.Fatalf("%d, want %d: %s", r.status, c.status, r.body)
			}
			if c.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("401 without WWW-Authenticate: Bearer")
			}
		})
	}
}

// TestEveryAccessIsAuditedAndThePatientReadsTheirTrace: reads, refusals and
// consent changes leave AuditEvents that the patient, and only the
// patient, can list.
func TestEveryAccessIsAuditedAndThePatientReadsTheirTrace(t *testing.T) {
	s := newConsentServer(t, engines[0])
	rec := s.seedRecord(t)
	s.do("GET", "/DocumentReference/"+rec.plain, nil, "Authorization", "Bearer "+s.practitioner(psAuthorized, false))
	s.do("GET", "/DocumentReference/"+rec.plain, nil, "Authorization", "Bearer "+s.practitioner(psStranger, false))
	s.do("GET", "/DocumentReference/"+rec.plain, nil, "Authorization", "Bearer "+s.practitioner(psStranger, false), "X-Access-Mode", "bris_de_glace", "X-Access-Reason", "coma")
	pat := "Bearer " + s.patient(rec.patient)
	r := s.do("GET", "/AuditEvent?patient="+rec.patient+"&_count=200&_sort=-date", nil, "Authorization", pat)
	if r.status != 200 {
		t.Fatalf("patient reads their trace: %d %s", r.status, r.body)
	}
	var b struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	json.Unmarshal(r.body, &b)
	var refused, emergency, consent int
	for _, e := range b.Entry {
		ev := string(e.Resource)
		if strings.Contains(ev, `"outcome":"4"`) && strings.Contains(ev, psStranger) {
			refused++
		}
		if strings.Contains(ev, "bris_de_glace") && strings.Contains(ev, psStranger) {
			emergency++
		}
		if strings.Contains(ev, "Consent/dmp-"+rec.patient) {
			consent++
		}
	}
	if refused < 1 || emergency < 1 || consent < 4 {
		t.Fatalf("trace: %d refused, %d emergency, %d consent changes in %d events", refused, emergency, consent, len(b.Entry))
	}
	// Who saw that document: the trace searched by the resource it lists.
	r = s.do("GET", "/AuditEvent?patient="+rec.patient+"&entity=DocumentReference/"+rec.plain+"&action=R&outcome=0", nil, "Authorization", pat)
	b.Entry = nil
	json.Unmarshal(r.body, &b)
	if r.status != 200 || len(b.Entry) != 2 {
		t.Fatalf("the document's reads in the trace: %d, %d events, want 2 (the authorized and the emergency read): %s", r.status, len(b.Entry), r.body)
	}
	for _, e := range b.Entry {
		if !strings.Contains(string(e.Resource), `"DocumentReference/`+rec.plain+`"`) {
			t.Fatalf("an event that does not list the document: %s", e.Resource)
		}
	}
	// The texts of AuditEvent's tokens are not indexed: :text is refused, not answered empty.
	if r := s.do("GET", "/AuditEvent?patient="+rec.patient+"&type:text=rest", nil, "Authorization", pat); r.status != 400 || !strings.Contains(string(r.body), "type:text") {
		t.Fatalf("type:text on AuditEvent: %d %s", r.status, r.body)
	}
	for _, tok := range []string{s.practitioner(psTreating, false), s.patient("someone-else")} {
		r := s.do("GET", "/AuditEvent?patient="+rec.patient, nil, "Authorization", "Bearer "+tok)
		if r.status != 403 {
			t.Fatalf("someone else read the patient's trace: %d %s", r.status, r.body)
		}
	}
	if r := s.do("DELETE", "/AuditEvent/x", nil, "Authorization", pat); r.status != 403 {
		t.Fatalf("delete of an AuditEvent: %d", r.status)
	}
	// The patient was told of the first access and of the emergency access.
	notes, err := s.outbox.List(rec.patient)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, n := range notes {
		kinds[n.Kind]++
	}
	if kinds[auth.NotifyFirstAccess] < 1 || kinds[auth.NotifyEmergencyAccess] != 1 {
		t.Fatalf("notifications: %v", kinds)
	}
	s.do("GET", "/DocumentReference/"+rec.plain, nil, "Authorization", "Bearer "+s.practitioner(psAuthorized, false))
	if again, _ := s.outbox.List(rec.patient); len(again) != len(notes) {
		t.Fatalf("a second access by the same professional notified the patient again")
	}
	// The access decision explains itself.
	r = s.do("GET", "/Patient/"+rec.patient+"/$access-decision?practitioner="+psBlocked+"&mode=normal", nil, "Authorization", pat)
	if r.status != 200 || !strings.Contains(string(r.body), `"valueCode":"blocked"`) || !strings.Contains(string(r.body), "INTERDIT") {
		t.Fatalf("$access-decision: %d %s", r.status, r.body)
	}
}

// TestHabilitationMatrixHidesDocumentTypesFromProfessions: an infirmier the
// patient authorized reads the consultation report but not the certificat
// médical, by read and by search.
func TestHabilitationMatrixHidesDocumentTypesFromProfessions(t *testing.T) {
	s := newConsentServer(t, engines[0])
	rec := s.seedRecord(t)
	const nurse = "810000000077"
	if r := s.do("POST", "/Patient/"+rec.patient+"/$authorize", params("practitioner", nurse), "Authorization", "Bearer "+s.patient(rec.patient)); r.status != 200 {
		t.Fatalf("$authorize: %d %s", r.status, r.body)
	}
	cert := s.do("POST", "/DocumentReference", []byte(`{"resourceType":"DocumentReference","status":"current","type":{"coding":[{"system":"http://loinc.org","code":"89601-9"}]},"subject":{"reference":"Patient/`+rec.patient+`"},"content":[{"attachment":{"contentType":"text/plain","data":"Y2VydGlmaWNhdA=="}}]}`), "Authorization", "Bearer "+s.practitioner(psAuthorized, false)).json(t)["id"].(string)
	tok := "Bearer " + s.tokenFor(auth.Claims{Kind: auth.KindPractitioner, IDNatPs: nurse, Profession: "60", Scope: "user/*.rs"})
	if r := s.do("GET", "/DocumentReference/"+rec.plain, nil, "Authorization", tok); r.status != 200 {
		t.Fatalf("nurse reads a consultation report: %d", r.status)
	}
	if r := s.do("GET", "/DocumentReference/"+cert, nil, "Authorization", tok); r.status != 403 || !strings.Contains(string(r.body), auth.RuleHabilitation) {
		t.Fatalf("nurse reads a certificat médical: %d %s", r.status, r.body)
	}
	ids, _, _, _ := entries(t, s.do("GET", "/DocumentReference?patient="+rec.patient, nil, "Authorization", tok))
	for _, id := range ids {
		if strings.HasSuffix(id, cert) {
			t.Fatalf("the nurse's search returned the certificat médical")
		}
	}
	if len(ids) == 0 {
		t.Fatalf("the nurse's search returned nothing")
	}
	if r := s.do("GET", "/DocumentReference/"+cert, nil, "Authorization", "Bearer "+s.practitioner(psTreating, false)); r.status != 200 {
		t.Fatalf("the médecin traitant reads the certificat: %d", r.status)
	}
}

// TestTransactionWithAuditOn: a transaction's entries are audited after its
// store transaction commits (they cannot wait for the audit writer while the
// transaction holds the write lock), in one AuditEvent per patient that
// names every entry's resource, beside the Bundle's own.
func TestTransactionWithAuditOn(t *testing.T) {
	s := newConsentServer(t, engines[0])
	// Were an entry's audit to wait inside the transaction, the audit
	// writer's timeout would fail the entry, and the transaction with it.
	// A hospital system's feed (a professional could not feed a patient
	// who has no DMP yet).
	r := s.do("POST", "", []byte(transactionPatientObs), "Authorization", "Bearer "+s.system())
	if r.status != 200 {
		t.Fatalf("transaction: %d %s", r.status, r.body)
	}
	var created []string // Type/id of the entries
	for _, e := range r.json(t)["entry"].([]any) {
		loc := e.(map[string]any)["response"].(map[string]any)["location"].(string)
		parts := strings.Split(loc, "/")
		created = append(created, parts[len(parts)-4]+"/"+parts[len(parts)-3])
	}
	if err := s.auditor.Materialize(context.Background()); err != nil {
		t.Fatal(err)
	}
	page, err := s.store.Search(context.Background(), store.Query{Type: "AuditEvent", Count: 0, Total: true})
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != 2 { // the Bundle's, and the patient's with both entries
		t.Fatalf("%d AuditEvents, want the Bundle's and one for the patient's entries", page.Total)
	}
	patient := ""
	for _, c := range created {
		if strings.HasPrefix(c, "Patient/") {
			patient = strings.TrimPrefix(c, "Patient/")
		}
	}
	page, err = s.store.Search(context.Background(), store.Query{Type: "AuditEvent", Count: 10, Where: []store.Clause{
		{Any: []store.Condition{{Param: "patient", Kind: store.KindReference, RefType: "Patient", RefID: patient}}},
	}})
	if err != nil || len(page.Resources) != 1 {
		t.Fatalf("the patient's AuditEvents: %v %v", page, err)
	}
	for _, c := range created {
		if !strings.Contains(string(page.Resources[0].Body), `"reference":"`+c+`"`) {
			t.Errorf("the patient's AuditEvent does not name %s: %s", c, page.Resources[0].Body)
		}
	}
}

// TestBinariesAreReachedOnlyThroughTheirDocument: nobody lists Binaries by
// search (a Binary is a patient's document); a read follows its
// securityContext to the document's patient and their consent.
func TestBinariesAreReachedOnlyThroughTheirDocument(t *testing.T) {
	s := newConsentServer(t, engines[0])
	rec := s.seedRecord(t)
	sys := "Bearer " + s.system()
	r := s.do("POST", "/Binary", []byte(`{"resourceType":"Binary","contentType":"text/plain","securityContext":{"reference":"DocumentReference/`+rec.plain+`"},"data":"Y29tcHRlIHJlbmR1"}`), "Authorization", sys)
	if r.status != 201 {
		t.Fatalf("create Binary: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	for _, tok := range []string{sys, "Bearer " + s.practitioner(psTreating, false)} {
		if ids, _, _, _ := entries(t, s.do("GET", "/Binary", nil, "Authorization", tok)); len(ids) != 0 {
			t.Fatalf("a search listed Binaries: %v", ids)
		}
	}
	for tok, want := range map[string]int{
		sys: 403, "Bearer " + s.practitioner(psStranger, false): 403,
		"Bearer " + s.practitioner(psAuthorized, false): 200, "Bearer " + s.patient(rec.patient): 200,
	} {
		if r := s.do("GET", "/Binary/"+id, nil, "Authorization", tok); r.status != want {
			t.Errorf("read Binary: %d, want %d", r.status, want)
		}
	}
}

// TestClosedDMPIsRefusedToProfessionals: a Patient with active=false is a
// closed DMP: professionals are refused, the patient still reads it; an
// "active": false deeper in the resource does not close it.
func TestClosedDMPIsRefusedToProfessionals(t *testing.T) {
	s := newConsentServer(t, engines[0])
	rec := s.seedRecord(t)
	doc := "Bearer " + s.practitioner(psAuthorized, false)
	// A contained resource's active:false does not close the DMP.
	cur := s.do("GET", "/Patient/"+rec.patient, nil, "Authorization", doc).json(t)
	cur["contained"] = []any{map[string]any{"resourceType": "Practitioner", "id": "gp", "active": false}}
	cur["generalPractitioner"] = []any{map[string]any{"reference": "#gp"}}
	body, _ := json.Marshal(cur)
	if r := s.do("PUT", "/Patient/"+rec.patient, body, "Authorization", doc); r.status != 200 {
		t.Fatalf("update patient: %d %s", r.status, r.body)
	}
	if r := s.do("GET", "/DocumentReference/"+rec.plain, nil, "Authorization", doc); r.status != 200 {
		t.Fatalf("open DMP: %d %s", r.status, r.body)
	}
	if r := s.do("POST", "/Patient/"+rec.patient+"/$dmp-close", params("reason", "je déménage"), "Authorization", "Bearer "+s.patient(rec.patient)); r.status != 200 {
		t.Fatalf("$dmp-close: %d %s", r.status, r.body)
	}
	if r := s.do("GET", "/DocumentReference/"+rec.plain, nil, "Authorization", doc); r.status != 409 || !strings.Contains(string(r.body), auth.RuleClosed) {
		t.Fatalf("closed DMP, professional: %d %s", r.status, r.body)
	}
	if r := s.do("GET", "/DocumentReference/"+rec.plain, nil, "Authorization", "Bearer "+s.patient(rec.patient)); r.status != 200 {
		t.Fatalf("closed DMP, patient: %d", r.status)
	}
}

// TestAConsentChangedByAnotherServerCountsAtOnce: two servers on one
// store. After a professional's read on the first (which keeps the parsed
// policy), the patient blocks them through the second: the first refuses
// their next read, its cached policy notwithstanding, and lets them read
// again once unblocked and authorized again.
func TestAConsentChangedByAnotherServerCountsAtOnce(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			a := newConsentServer(t, e)
			rec := a.seedRecord(t)
			v, err := auth.NewVerifier(auth.VerifierConfig{Key: a.key})
			if err != nil {
				t.Fatal(err)
			}
			// The second server shares the store, which the first one closes.
			auditor := auth.NewAuditor(a.store, auth.AuditorOptions{JournalDir: t.TempDir()})
			second := api.New(api.Config{Auth: &api.Auth{Verifier: v, Key: a.key, Auditor: auditor}}, a.store, validator(t))
			hb := httptest.NewServer(second)
			t.Cleanup(func() { hb.Close(); second.Close(); auditor.Close() })
			b := &server{t: t, url: hb.URL + "/fhir", key: a.key, store: a.store}

			doctor := "Bearer " + a.practitioner(psAuthorized, false)
			pat := "Bearer " + a.patient(rec.patient)
			read := func(step string, want int) {
				t.Helper()
				if r := a.do("GET", "/DocumentReference/"+rec.plain, nil, "Authorization", doctor); r.status != want {
					t.Fatalf("%s: read on the first server %d, want %d: %s", step, r.status, want, r.body)
				}
			}
			read("authorized", 200)
			if r := b.do("POST", "/Patient/"+rec.patient+"/$block", params("practitioner", psAuthorized), "Authorization", pat); r.status != 200 {
				t.Fatalf("$block on the second server: %d %s", r.status, r.body)
			}
			read("blocked on the other server", 403)
			for _, op := range []string{"$unblock", "$authorize"} {
				if r := b.do("POST", "/Patient/"+rec.patient+"/"+op, params("practitioner", psAuthorized), "Authorization", pat); r.status != 200 {
					t.Fatalf("%s on the second server: %d %s", op, r.status, r.body)
				}
			}
			read("unblocked and authorized again on the other server", 200)
		})
	}
}
