package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dmp-fhir/dmp-fhir/api"
	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/store"
)

const (
	testINS = "urn:oid:1.2.250.1.213.1.4.10"
	nirA    = "283052A12345681" // Corsica 2A, key 81
	nirB    = "183062B12345677" // Corsica 2B, key 77
	nirC    = "255081416802538"
)

// anonymous is the header pair of a request without a token.
var anonymous = []string{"Authorization", "none"}

// codeSentTo reads the last creation code the outbox holds for an address.
func (s *server) codeSentTo(t *testing.T, to string) string {
	t.Helper()
	notes, err := s.outbox.List(to)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(notes) - 1; i >= 0; i-- {
		if m := regexp.MustCompile(`\b(\d{6})\b`).FindStringSubmatch(notes[i].Body); notes[i].Kind == "dmp-code" && m != nil {
			return m[1]
		}
	}
	t.Fatalf("no code sent to %s (%d notifications)", to, len(notes))
	return ""
}

// signIn posts the password grant; it returns the status and the JSON answer.
func (s *server) signIn(t *testing.T, login, password string) (int, map[string]any) {
	t.Helper()
	res, err := http.PostForm(strings.TrimSuffix(s.url, "/fhir")+"/auth/token", url.Values{"grant_type": {"password"}, "username": {login}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	out := map[string]any{}
	json.Unmarshal(b, &out)
	return res.StatusCode, out
}

func onlineCreation(nir, code string, extra ...string) []byte {
	return params(append([]string{"system", testINS, "nir", nir, "code", code, "family", "Martin", "given", "Léa Marie",
		"birthDate", "1983-05-12", "gender", "female", "email", "lea@example.org"}, extra...)...)
}

func requestCode(nir string) []byte {
	return params("system", testINS, "nir", nir, "birthDate", "1983-05-12", "email", "lea@example.org")
}

func TestNIRIsCheckedWithItsKey(t *testing.T) {
	s := newConsentServer(t, engines[0])
	for _, tc := range []struct {
		name, nir string
		status    int
		says      string
	}{
		{"Corsica 2A with its key", nirA, 202, ""},
		{"Corsica 2B with its key", nirB, 202, ""},
		{"mainland number", nirC, 202, ""},
		{"wrong key", "283052A12345682", 422, "the key is 82 but the number gives 81"},
		{"14 characters", "28305212345681", 422, "14 characters"},
		{"a letter", "28305212X456781", 422, "character 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do("POST", "/Patient/$dmp-request-code", requestCode(tc.nir), anonymous...)
			if r.status != tc.status {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if tc.says != "" {
				_, expr, diag := outcome(t, r)
				if expr != "Parameters.parameter.nir" || !strings.Contains(diag, tc.says) {
					t.Fatalf("outcome at %q: %q, want nir saying %q", expr, diag, tc.says)
				}
			}
		})
	}
}

func TestDMPCreatedOnlineWithACode(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := newConsentServer(t, e)
			if r := s.do("POST", "/Patient/$dmp-request-code", params("nir", nirC, "birthDate", "1983-05-12"), anonymous...); r.status != 422 {
				t.Fatalf("no address: %d %s", r.status, r.body)
			}
			if r := s.do("POST", "/Patient/$dmp-request-code", requestCode(nirA), anonymous...); r.status != 202 {
				t.Fatalf("request code: %d %s", r.status, r.body)
			}
			code := s.codeSentTo(t, "lea@example.org")
			wrong := "000000"
			if code == wrong {
				wrong = "111111"
			}
			r := s.do("POST", "/Patient/$dmp-create", onlineCreation(nirA, wrong), anonymous...)
			if _, _, diag := outcome(t, r); r.status != 422 || !strings.Contains(diag, "4 attempt(s) left") {
				t.Fatalf("wrong code: %d %s", r.status, r.body)
			}
			r = s.do("POST", "/Patient/$dmp-create", onlineCreation(nirA, code), anonymous...)
			if r.status != 201 || r.header.Get("Cache-Control") != "no-store" || !strings.Contains(r.header.Get("Location"), "/Patient/") {
				t.Fatalf("create: %d %v %s", r.status, r.header, r.body)
			}
			var created struct {
				Parameter []struct {
					Name        string
					ValueString string
					Resource    map[string]any
				}
			}
			json.Unmarshal(r.body, &created)
			got := map[string]string{}
			var patient map[string]any
			for _, p := range created.Parameter {
				got[p.Name] = p.ValueString
				if p.Name == "patient" {
					patient = p.Resource
				}
			}
			if patient["active"] != true || got["dmpIdentifier"] == "" || len(got["password"]) < 12 {
				t.Fatalf("answer: %s", r.body)
			}
			pid := patient["id"].(string)
			// The code is spent; a second DMP for the same INS is refused.
			if r := s.do("POST", "/Patient/$dmp-create", onlineCreation(nirA, code), anonymous...); r.status != 422 {
				t.Fatalf("spent code: %d %s", r.status, r.body)
			}
			if r := s.do("POST", "/Patient/$dmp-request-code", requestCode(nirA), anonymous...); r.status != 202 {
				t.Fatalf("second request: %d (must not tell a DMP exists)", r.status)
			}
			if r := s.do("POST", "/Patient/$dmp-create", onlineCreation(nirA, s.codeSentTo(t, "lea@example.org")), anonymous...); r.status != 409 {
				t.Fatalf("second DMP for one INS: %d %s", r.status, r.body)
			}
			// The patient signs in and reads their record and policy.
			status, tok := s.signIn(t, got["dmpIdentifier"], got["password"])
			if status != 200 || tok["patient"] != pid {
				t.Fatalf("sign-in: %d %v", status, tok)
			}
			bearer := "Bearer " + tok["access_token"].(string)
			if r := s.do("GET", "/Patient/"+pid, nil, "Authorization", bearer); r.status != 200 {
				t.Fatalf("own Patient: %d %s", r.status, r.body)
			}
			if r := s.do("GET", "/Consent?patient="+pid, nil, "Authorization", bearer); r.status != 200 || !strings.Contains(string(r.body), `"total":1`) {
				t.Fatalf("own policy: %d %s", r.status, r.body)
			}
			// The password is nowhere in the store but as a hash.
			if err := s.auditor.Materialize(context.Background()); err != nil {
				t.Fatal(err)
			}
			for _, typ := range []string{"Patient", "Consent", "AuditEvent", auth.TypeAccount, auth.TypeIdentity} {
				page, err := s.store.Search(context.Background(), store.Query{Type: typ, Count: 1000})
				if err != nil {
					t.Fatal(err)
				}
				for _, res := range page.Resources {
					if strings.Contains(string(res.Body), got["password"]) {
						t.Fatalf("%s/%s holds the password in clear", res.Type, res.ID)
					}
				}
			}
		})
	}
}

func TestCodeAttemptsAndExpiry(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { checkCodeAttemptsAndExpiry(t, e) })
	}
}

func checkCodeAttemptsAndExpiry(t *testing.T, e engine) {
	s := newConsentServer(t, e)
	s.do("POST", "/Patient/$dmp-request-code", requestCode(nirB), anonymous...)
	code := s.codeSentTo(t, "lea@example.org")
	wrong := "999999"
	if code == wrong {
		wrong = "888888"
	}
	for i := 0; i < auth.MaxCodeAttempts; i++ {
		s.do("POST", "/Patient/$dmp-create", onlineCreation(nirB, wrong), anonymous...)
	}
	r := s.do("POST", "/Patient/$dmp-create", onlineCreation(nirB, code), anonymous...)
	if _, _, diag := outcome(t, r); r.status != 422 || !strings.Contains(diag, "too many wrong codes") {
		t.Fatalf("right code after 5 wrong ones: %d %s", r.status, r.body)
	}
	// A wrong birth date counts as a wrong code.
	s.do("POST", "/Patient/$dmp-request-code", requestCode(nirB), anonymous...)
	code = s.codeSentTo(t, "lea@example.org")
	if r := s.do("POST", "/Patient/$dmp-create", onlineCreation(nirB, code, "birthDate", "1984-05-12"), anonymous...); r.status != 422 {
		t.Fatalf("other birth date: %d %s", r.status, r.body)
	}
	// An expired code: the record's expiry moved into the past.
	ctx := context.Background()
	key := auth.IdentityKey(testINS, nirB)
	var rec auth.OneTimeCode
	v, err := auth.ReadRecord(ctx, s.store, auth.TypeCode, key, &rec)
	if err != nil {
		t.Fatal(err)
	}
	rec.Expires = time.Now().Add(-time.Second)
	if err := auth.WriteRecord(ctx, s.store, auth.TypeCode, key, &rec, v, false); err != nil {
		t.Fatal(err)
	}
	r = s.do("POST", "/Patient/$dmp-create", onlineCreation(nirB, code), anonymous...)
	if _, _, diag := outcome(t, r); r.status != 422 || !strings.Contains(diag, "expire") {
		t.Fatalf("expired code: %d %s", r.status, r.body)
	}
}

func TestDeskCreationNeedsThePatientsAgreement(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { checkDeskCreationNeedsThePatientsAgreement(t, e) })
	}
}

func checkDeskCreationNeedsThePatientsAgreement(t *testing.T, e engine) {
	s := newConsentServer(t, e)
	doc := s.practitioner(psAuthorized, false)
	desk := params("system", testINS, "nir", nirC, "family", "Durand", "given", "Paul", "birthDate", "1955-08-14", "gender", "male", "phone", "+33 6 12 34 56 78")
	r := s.do("POST", "/Patient/$dmp-create", desk, "Authorization", "Bearer "+doc)
	if _, expr, diag := outcome(t, r); r.status != 422 || expr != "Parameters.parameter.patientConsent" || !strings.Contains(diag, "explicit agreement") {
		t.Fatalf("without agreement: %d %s", r.status, r.body)
	}
	if r := s.do("POST", "/Patient/$dmp-create", desk, "Authorization", "Bearer "+s.patient("x")); r.status != 403 {
		t.Fatalf("patient token: %d %s", r.status, r.body)
	}
	pid, login, password := s.createDMP(t, doc, nirC, "Durand", "phone", "+33 6 12 34 56 78")
	notes, err := s.outbox.List("+33 6 12 34 56 78")
	if err != nil || len(notes) != 1 || notes[0].Kind != auth.NotifyDMPCreated || strings.Contains(notes[0].Body, password) {
		t.Fatalf("creation notice: %v %+v", err, notes)
	}
	// The emergency preferences given at the desk are the policy's.
	_, _, _ = s.createDMP(t, s.system(), nirA, "Corse", "BTG", "deny")
	if status, _ := s.signIn(t, login, password); status != 200 {
		t.Fatalf("sign-in with the desk's credentials: %d", status)
	}
	if r := s.do("GET", "/Patient/"+pid+"/$access-decision?practitioner=810000000077&mode=bris_de_glace", nil, "Authorization", "Bearer "+s.patient(pid)); r.status != 200 {
		t.Fatalf("decision: %d %s", r.status, r.body)
	}
}

func TestPasswordLockoutAndChange(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := newConsentServer(t, e)
			pid, login, password := s.createDMP(t, s.practitioner(psAuthorized, false), nirA, "Martin")
			if status, out := s.signIn(t, "NOPE-NOPE-NOPE", password); status != 400 || out["error"] != "invalid_grant" {
				t.Fatalf("unknown identifier: %d %v", status, out)
			}
			for i := 0; i < auth.MaxPasswordFailures; i++ {
				if status, _ := s.signIn(t, login, "wrong password"); status != 400 {
					t.Fatalf("failure %d: %d", i, status)
				}
			}
			status, out := s.signIn(t, login, password)
			if desc, _ := out["error_description"].(string); status != 400 || !strings.Contains(desc, "locked until") {
				t.Fatalf("right password on a locked account: %d %v", status, out)
			}
			// Fifteen minutes later (the lock moved into the past).
			ctx := context.Background()
			var acct auth.Account
			v, err := auth.ReadRecord(ctx, s.store, auth.TypeAccount, login, &acct)
			if err != nil {
				t.Fatal(err)
			}
			acct.LockedUntil = time.Now().Add(-time.Second)
			if err := auth.WriteRecord(ctx, s.store, auth.TypeAccount, login, &acct, v, false); err != nil {
				t.Fatal(err)
			}
			status, out = s.signIn(t, login, password)
			if status != 200 {
				t.Fatalf("after the lock: %d %v", status, out)
			}
			bearer := "Bearer " + out["access_token"].(string)
			change := func(cur, next string) response {
				return s.do("POST", "/Patient/"+pid+"/$change-password", params("currentPassword", cur, "newPassword", next), "Authorization", bearer)
			}
			if r := change("wrong", "Un-nouveau-mot-2-passe"); r.status != 403 {
				t.Fatalf("wrong current password: %d %s", r.status, r.body)
			}
			if r := change(password, "short"); r.status != 422 {
				t.Fatalf("weak new password: %d %s", r.status, r.body)
			}
			if r := change(password, "Un-nouveau-mot-2-passe"); r.status != 200 {
				t.Fatalf("change: %d %s", r.status, r.body)
			}
			if status, _ := s.signIn(t, login, password); status != 400 {
				t.Fatalf("old password still works: %d", status)
			}
			if status, _ := s.signIn(t, login, "Un-nouveau-mot-2-passe"); status != 200 {
				t.Fatalf("new password: %d", status)
			}
			if r := s.do("POST", "/Patient/"+pid+"/$change-password", params("currentPassword", password, "newPassword", "Un-autre-mot-2-passe"), "Authorization", "Bearer "+s.practitioner(psAuthorized, false)); r.status != 403 {
				t.Fatalf("a professional changing the password: %d", r.status)
			}
		})
	}
}

func TestClosedDMPRefusesFeedingAndReading(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := newConsentServer(t, e)
			rec := s.seedRecord(t)
			doc := "Bearer " + s.practitioner(psAuthorized, false)
			pat := "Bearer " + s.patient(rec.patient)
			if r := s.do("POST", "/Patient/"+rec.patient+"/$dmp-close", nil, "Authorization", pat); r.status != 422 {
				t.Fatalf("close without a reason: %d %s", r.status, r.body)
			}
			if r := s.do("POST", "/Patient/"+rec.patient+"/$dmp-close", params("reason", "x"), "Authorization", doc); r.status != 403 {
				t.Fatalf("a professional closing: %d %s", r.status, r.body)
			}
			r := s.do("POST", "/Patient/"+rec.patient+"/$dmp-close", params("reason", "je n'en veux plus"), "Authorization", pat)
			if r.status != 200 || !strings.Contains(string(r.body), api.ClosureExtension) || !strings.Contains(string(r.body), `"active":false`) {
				t.Fatalf("close: %d %s", r.status, r.body)
			}
			obs := `{"resourceType":"Observation","status":"final","code":{"text":"poids"},"subject":{"reference":"Patient/` + rec.patient + `"}}`
			for _, tc := range []struct {
				name, method, path, body, token string
				want                            int
			}{
				{"professional reads", "GET", "/DocumentReference/" + rec.plain, "", doc, 409},
				{"professional searches", "GET", "/Observation?patient=" + rec.patient, "", doc, 409},
				{"professional feeds", "POST", "/Observation", obs, doc, 409},
				{"system feeds", "POST", "/Observation", obs, "Bearer " + s.system(), 409},
				{"patient reads", "GET", "/DocumentReference/" + rec.plain, "", pat, 200},
				{"professional reopens by PUT", "PUT", "/Patient/" + rec.patient, `{"resourceType":"Patient","id":"` + rec.patient + `","active":true}`, doc, 403},
			} {
				var body []byte
				if tc.body != "" {
					body = []byte(tc.body)
				}
				if r := s.do(tc.method, tc.path, body, "Authorization", tc.token); r.status != tc.want {
					t.Errorf("%s: %d, want %d: %s", tc.name, r.status, tc.want, r.body)
				}
			}
			if r := s.do("POST", "/Patient/"+rec.patient+"/$dmp-reopen", nil, "Authorization", pat); r.status != 200 || strings.Contains(string(r.body), api.ClosureExtension) {
				t.Fatalf("reopen: %d %s", r.status, r.body)
			}
			if r := s.do("GET", "/DocumentReference/"+rec.plain, nil, "Authorization", doc); r.status != 200 {
				t.Fatalf("after reopening: %d %s", r.status, r.body)
			}
		})
	}
}

func TestDMPLookupGivesIdentityAndTheCallersStatus(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := newConsentServer(t, e)
			rec := s.seedRecord(t) // nirA on the test OID
			// A Patient with the same INS but no DMP is not a DMP.
			if r := s.do("POST", "/Patient", []byte(`{"resourceType":"Patient","identifier":[{"system":"`+testINS+`","value":"`+nirA+`"}]}`), "Authorization", "Bearer "+s.system()); r.status != 201 {
				t.Fatalf("plain Patient: %d %s", r.status, r.body)
			}
			lookup := func(idnps, nir string) map[string]any {
				t.Helper()
				r := s.do("GET", "/Patient?identifier="+url.QueryEscape(testINS+"|"+nir), nil, "Authorization", "Bearer "+s.practitioner(idnps, false))
				if r.status != 200 {
					t.Fatalf("lookup: %d %s", r.status, r.body)
				}
				return r.json(t)
			}
			for _, tc := range []struct {
				idnps, status string
				treating      bool
			}{
				{psAuthorized, "VALIDE", false},
				{psTreating, "VALIDE", true},
				{psBlocked, "INTERDIT", false},
				{psExpired, "EXPIRE", false},
				{psStranger, "NON_EXISTE", false},
			} {
				b := lookup(tc.idnps, nirA)
				entries, _ := b["entry"].([]any)
				if b["total"] != float64(1) || len(entries) != 1 {
					t.Fatalf("%s: %v", tc.idnps, b)
				}
				p := entries[0].(map[string]any)["resource"].(map[string]any)
				if p["id"] != rec.patient {
					t.Fatalf("%s: another Patient %v", tc.idnps, p["id"])
				}
				ext := map[string]any{}
				for _, x := range p["extension"].([]any) {
					x := x.(map[string]any)
					ext[x["url"].(string)] = x["valueCode"]
					if v, ok := x["valueBoolean"]; ok {
						ext[x["url"].(string)] = v
					}
				}
				if ext[api.AuthorizationStatusExtension] != tc.status || ext[api.TreatingDoctorExtension] != tc.treating {
					t.Errorf("%s: extensions %v, want %s treating=%v", tc.idnps, ext, tc.status, tc.treating)
				}
				for _, k := range []string{"telecom", "address", "generalPractitioner", "contact"} {
					if _, ok := p[k]; ok {
						t.Errorf("%s: %s is not an identity trait", tc.idnps, k)
					}
				}
			}
			if b := lookup(psStranger, nirC); b["total"] != float64(0) {
				t.Fatalf("no DMP: %v", b)
			}
		})
	}
}

func TestFeedingDeletionAndReplacementFollowTheDMPRules(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := newConsentServer(t, e)
			rec := s.seedRecord(t)
			author := "Bearer " + s.practitioner(psAuthorized, false)
			other := "Bearer " + s.practitioner(psTreating, false)
			pat := "Bearer " + s.patient(rec.patient)
			post := func(token, body string, want int) string {
				t.Helper()
				r := s.do("POST", "/"+strings.Split(strings.Split(body, `"resourceType":"`)[1], `"`)[0], []byte(body), "Authorization", token)
				if r.status != want {
					t.Fatalf("POST %s: %d, want %d: %s", body[:40], r.status, want, r.body)
				}
				if want != 201 {
					return ""
				}
				return r.json(t)["id"].(string)
			}
			docBody := func(extra string) string {
				return `{"resourceType":"DocumentReference","status":"current",` + extra + `"type":{"coding":[{"system":"http://loinc.org","code":"11488-4"}]},"subject":{"reference":"Patient/` + rec.patient + `"},"content":[{"attachment":{"contentType":"text/plain","data":"Y3I="}}]}`
			}
			// No DMP: a professional cannot feed it; a hospital system can.
			bare := post("Bearer "+s.system(), `{"resourceType":"Patient","name":[{"family":"Sans DMP"}]}`, 201)
			post(author, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+bare+`"}}`, 422)
			post("Bearer "+s.system(), `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+bare+`"}}`, 201)

			// Only the author deletes; the patient deletes their own documents.
			x := post(author, docBody(""), 201)
			if r := s.do("GET", "/DocumentReference/"+x, nil, "Authorization", author); !strings.Contains(string(r.body), api.AuthorExtension) {
				t.Fatalf("no author recorded: %s", r.body)
			}
			mine := post(pat, docBody(""), 201)
			for _, tc := range []struct {
				name, path, token string
				want              int
			}{
				{"another professional", "/DocumentReference/" + x, other, 403},
				{"the patient, a professional's document", "/DocumentReference/" + x, pat, 403},
				{"a professional, the patient's document", "/DocumentReference/" + mine, author, 403},
				{"the DMP's Patient", "/Patient/" + rec.patient, author, 403},
				{"the patient, their own document", "/DocumentReference/" + mine, pat, 204},
			} {
				if r := s.do("DELETE", tc.path, nil, "Authorization", tc.token); r.status != tc.want {
					t.Errorf("delete by %s: %d, want %d: %s", tc.name, r.status, tc.want, r.body)
				}
			}

			// Replacement: the old document becomes superseded, in the same write.
			replaces := func(id string) string {
				return `"relatesTo":[{"code":"replaces","target":{"reference":"DocumentReference/` + id + `"}}],`
			}
			post(other, docBody(replaces(x)), 403) // not the author
			y := post(author, docBody(replaces(x)), 201)
			if r := s.do("GET", "/DocumentReference/"+x, nil, "Authorization", author); !strings.Contains(string(r.body), `"status":"superseded"`) {
				t.Fatalf("replaced document: %s", r.body)
			}
			post(author, docBody(replaces(x)), 409) // already replaced
			if ids := entryIDs(t, s.do("GET", "/DocumentReference?patient="+rec.patient+"&status=current&_count=100", nil, "Authorization", author)); ids[x] || !ids[y] {
				t.Fatalf("current documents: %v, want %s and not %s", ids, y, x)
			}
			if r := s.do("DELETE", "/DocumentReference/"+x, nil, "Authorization", author); r.status != 204 {
				t.Fatalf("the author deletes: %d %s", r.status, r.body)
			}

			// Archived documents leave the default searches.
			arch := post(author, docBody(`"extension":[{"url":"`+api.ArchivedExtension+`","valueBoolean":true}],`), 201)
			if ids := entryIDs(t, s.do("GET", "/DocumentReference?patient="+rec.patient+"&_count=100", nil, "Authorization", author)); ids[arch] || !ids[y] {
				t.Fatalf("default search: %v, want %s and not the archived %s", ids, y, arch)
			}
			if ids := entryIDs(t, s.do("GET", "/DocumentReference?patient="+rec.patient+"&archived=true", nil, "Authorization", author)); !ids[arch] || len(ids) != 1 {
				t.Fatalf("archived=true: %v, want only %s", ids, arch)
			}
		})
	}
}

// entryIDs lists the ids of a search answer's entries.
func entryIDs(t *testing.T, r response) map[string]bool {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("search: %d %s", r.status, r.body)
	}
	ids := map[string]bool{}
	entries, _ := r.json(t)["entry"].([]any)
	for _, e := range entries {
		if res, ok := e.(map[string]any)["resource"].(map[string]any); ok {
			ids[res["id"].(string)] = true
		}
	}
	return ids
}

// TestOneDMPPerINSUnderConcurrentCreations: sixteen desks creating the same
// person's DMP at once end with one DMP, the others told it exists.
func TestOneDMPPerINSUnderConcurrentCreations(t *testing.T) {
	s := newConsentServer(t, engines[0])
	desk := params("system", testINS, "nir", nirC, "family", "Durand", "given", "Paul", "birthDate", "1955-08-14", "gender", "male", "patientConsent", "true")
	tok := "Bearer " + s.practitioner(psAuthorized, false)
	statuses := make(chan int, 16)
	for range 16 {
		go func() {
			req, _ := http.NewRequest("POST", s.url+"/Patient/$dmp-create", strings.NewReader(string(desk)))
			req.Header.Set("Authorization", tok)
			req.Header.Set("Content-Type", "application/fhir+json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			res.Body.Close()
			statuses <- res.StatusCode
		}()
	}
	count := map[int]int{}
	for range 16 {
		count[<-statuses]++
	}
	if count[201] != 1 || count[409] != 15 {
		t.Fatalf("statuses %v, want one 201 and fifteen 409", count)
	}
	page, err := s.store.Search(context.Background(), store.Query{Type: "Consent", Count: 100, Total: true})
	if err != nil || page.Total != 1 {
		t.Fatalf("%v policies (%v), want 1", page, err)
	}
}

// TestRecordNamedByINSIsDecidedLikeByID: a search naming the record by the
// patient's INS (patient.identifier, the DMP's TD3.1a) gets the decision a
// search by patient id gets: the documents, 403 or 409, and an emergency
// access may name the patient this way.
func TestRecordNamedByINSIsDecidedLikeByID(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := newConsentServer(t, e)
			rec := s.seedRecord(t) // nirA on the test OID
			path := "/DocumentReference?patient.identifier=" + url.QueryEscape(testINS+"|"+nirA)
			for _, tc := range []struct {
				name, token string
				headers     []string
				want        int
				sees        bool
			}{
				{"authorized", s.practitioner(psAuthorized, false), nil, 200, true},
				{"blocked", s.practitioner(psBlocked, false), nil, 403, false},
				{"breaking the glass", s.practitioner(psStranger, false), []string{"X-Access-Mode", "bris_de_glace", "X-Access-Reason", "inconscient aux urgences"}, 200, true},
			} {
				r := s.do("GET", path, nil, append([]string{"Authorization", "Bearer " + tc.token}, tc.headers...)...)
				if r.status != tc.want {
					t.Fatalf("%s: %d, want %d: %s", tc.name, r.status, tc.want, r.body)
				}
				if tc.want == 200 && entryIDs(t, r)[rec.plain] != tc.sees {
					t.Fatalf("%s: sees %v, want the plain document", tc.name, entryIDs(t, r))
				}
			}
			s.do("POST", "/Patient/"+rec.patient+"/$dmp-close", params("reason", "x"), "Authorization", "Bearer "+s.patient(rec.patient))
			if r := s.do("GET", path, nil, "Authorization", "Bearer "+s.practitioner(psAuthorized, false)); r.status != 409 {
				t.Fatalf("closed DMP: %d %s", r.status, r.body)
			}
		})
	}
}

// TestOnlyTheAuthorChangesAResource: an update (PUT) or a PATCH of a live
// resource is its author's only, as a delete or a replacement is (DMP
// TD3.3c). A professional who may read the document (the médecin traitant)
// gets 403 author-only; one the patient never authorized or blocked gets
// the read's refusal, which shows nothing of the document (a PATCH answers
// the whole patched resource); the document is unchanged after each
// refusal; the author stamp cannot be patched away.
func TestOnlyTheAuthorChangesAResource(t *testing.T) {
	s := newConsentServer(t, engines[0])
	rec := s.seedRecord(t) // documents written by psAuthorized
	author := "Bearer " + s.practitioner(psAuthorized, false)
	patch := func(value string) []byte {
		return []byte(`{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"replace"},{"name":"path","valueString":"DocumentReference.description"},{"name":"value","valueString":"` + value + `"}]}]}`)
	}
	put := func(value string) []byte {
		r := s.do("GET", "/DocumentReference/"+rec.plain, nil, "Authorization", author)
		doc := r.json(t)
		doc["description"] = value
		delete(doc, "meta")
		b, _ := json.Marshal(doc)
		return b
	}
	for _, method := range []string{"PUT", "PATCH"} {
		for _, tc := range []struct {
			name, token string
			want        int
			rule        string
		}{
			{"stranger", s.practitioner(psStranger, false), 403, ""},
			{"blocked", s.practitioner(psBlocked, false), 403, ""},
			{"treating doctor, who may read it", s.practitioner(psTreating, false), 403, "author-only"},
			{"the patient", s.patient(rec.patient), 403, "author-only"},
			{"author", s.practitioner(psAuthorized, false), 200, ""},
		} {
			value := method + " par " + tc.name
			body := patch(value)
			if method == "PUT" {
				body = put(value)
			}
			r := s.do(method, "/DocumentReference/"+rec.plain, body, "Authorization", "Bearer "+tc.token, "Content-Type", "application/fhir+json")
			if r.status != tc.want {
				t.Fatalf("%s by %s: %d, want %d: %s", method, tc.name, r.status, tc.want, r.body)
			}
			if tc.want != 200 && strings.Contains(string(r.body), "Y29tcHRlIHJlbmR1") {
				t.Fatalf("%s by %s: the refusal shows the document", method, tc.name)
			}
			if tc.rule != "" && !strings.Contains(string(r.body), tc.rule) {
				t.Fatalf("%s by %s: the refusal does not name %s: %s", method, tc.name, tc.rule, r.body)
			}
			got := s.do("GET", "/DocumentReference/"+rec.plain, nil, "Authorization", author).json(t)["description"]
			if changed := got == value; changed != (tc.want == 200) {
				t.Fatalf("%s by %s: description now %q", method, tc.name, got)
			}
		}
	}
	forged := []byte(`{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"replace"},{"name":"path","valueString":"DocumentReference.meta.extension.value"},{"name":"value","valueString":"practitioner/810000000044"}]}]}`)
	s.do("PATCH", "/DocumentReference/"+rec.plain, forged, "Authorization", "Bearer "+s.practitioner(psAuthorized, false), "Content-Type", "application/fhir+json")
	if r := s.do("GET", "/DocumentReference/"+rec.plain, nil, "Authorization", "Bearer "+s.practitioner(psAuthorized, false)); !strings.Contains(string(r.body), "practitioner/"+psAuthorized) {
		t.Fatalf("the author was patched away: %s", r.body)
	}
}
