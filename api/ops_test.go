package api_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/dmp-fhir/dmp-fhir/api"
	"github.com/dmp-fhir/dmp-fhir/auth"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestLogsCarryNoPatientDataNorSecrets runs a whole DMP scenario over HTTP
// with the server logging at debug level: a system client gets a token
// with its secret (and a wrong one); a patient creates their DMP online
// with a one-time code (a wrong one first), another DMP is created at a
// desk; the patient signs in with their password (a wrong one first),
// changes it, authorizes a médecin, who writes and reads clinical
// resources, searches by INS and by name, breaks the glass with a
// free-text reason; refused and forged tokens, bad bodies and a batch. Not
// one log line may hold a NIR, a name, an address, a token, a secret, a
// password, a code, the reason or a patient's id; every line is JSON, and
// request lines carry their fields.
func TestLogsCarryNoPatientDataNorSecrets(t *testing.T) {
	const (
		family  = "Dupré-Lefèvre"
		given   = "Éloïse"
		email   = "eloise.dupre@example.org"
		phone   = "+33 6 98 76 54 32"
		reason  = "Madame Dupré-Lefèvre inconsciente"
		newPass = "Un-nouveau-mot-2-passe-secret"
	)
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			var logs syncBuffer
			log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			st := e.open(t)
			key := signingKey(t)
			v, _ := auth.NewVerifier(auth.VerifierConfig{Key: key, Logger: log})
			dir := t.TempDir()
			clientID, secret, err := auth.AddClient(dir, "SIH Démo", "750712184", "system/*.cruds")
			if err != nil {
				t.Fatal(err)
			}
			clients, err := auth.OpenClients(dir)
			if err != nil {
				t.Fatal(err)
			}
			outbox, err := auth.NewOutbox(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { outbox.Close() })
			auditor := auth.NewAuditor(st, auth.AuditorOptions{JournalDir: t.TempDir(), Logger: log})
			s := newServerOn(t, st, api.Config{Logger: log, Auth: &api.Auth{Verifier: v, Key: key, Auditor: auditor, Notifier: outbox, Clients: clients}}) // closes the auditor
			s.outbox, s.auditor = outbox, auditor
			root := strings.TrimSuffix(s.url, "/fhir")
			expect := func(what string, r response, want int) response {
				t.Helper()
				if r.status != want {
					t.Fatalf("%s: %d, want %d: %s", what, r.status, want, r.body)
				}
				return r
			}
			tokenGrant := func(form url.Values) (int, string) {
				res, err := http.PostForm(root+"/auth/token", form)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				var tok struct {
					AccessToken string `json:"access_token"`
				}
				json.NewDecoder(res.Body).Decode(&tok)
				return res.StatusCode, tok.AccessToken
			}

			// A hospital system gets a token with its secret; a wrong secret fails.
			if status, _ := tokenGrant(url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret + "x"}}); status != 401 {
				t.Fatalf("wrong client secret: %d", status)
			}
			status, system := tokenGrant(url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}})
			if status != 200 || system == "" {
				t.Fatalf("client_credentials: %d", status)
			}

			// The patient creates their DMP online with a one-time code.
			expect("request a code", s.do("POST", "/Patient/$dmp-request-code", params("system", testINS, "nir", nirA, "birthDate", "1983-05-12", "email", email), anonymous...), 202)
			code := s.codeSentTo(t, email)
			wrong := "000000"
			if code == wrong {
				wrong = "111111"
			}
			creation := func(code string) []byte {
				return params("system", testINS, "nir", nirA, "code", code, "family", family, "given", given,
					"birthDate", "1983-05-12", "gender", "female", "email", email, "phone", phone)
			}
			expect("wrong code", s.do("POST", "/Patient/$dmp-create", creation(wrong), anonymous...), 422)
			var patient, login, password string
			for _, p := range expect("online creation", s.do("POST", "/Patient/$dmp-create", creation(code), anonymous...), 201).json(t)["parameter"].([]any) {
				p := p.(map[string]any)
				switch p["name"] {
				case "patient":
					patient = p["resource"].(map[string]any)["id"].(string)
				case "dmpIdentifier":
					login = p["valueString"].(string)
				case "password":
					password = p["valueString"].(string)
				}
			}
			// Another one at a desk, by the hospital system.
			other, otherLogin, otherPassword := s.createDMP(t, system, nirB, family, "email", email)

			// The patient signs in (a wrong password first), changes the
			// password, authorizes a médecin.
			if status, _ := tokenGrant(url.Values{"grant_type": {"password"}, "username": {login}, "password": {password + "x"}}); status != 400 {
				t.Fatalf("wrong password: %d", status)
			}
			status, patTok := tokenGrant(url.Values{"grant_type": {"password"}, "username": {login}, "password": {password}})
			if status != 200 || patTok == "" {
				t.Fatalf("sign-in: %d", status)
			}
			expect("change password", s.do("POST", "/Patient/"+patient+"/$change-password", params("currentPassword", password, "newPassword", newPass), "Authorization", "Bearer "+patTok), 200)
			doc := s.practitioner(psAuthorized, false)
			expect("authorize", s.do("POST", "/Patient/"+patient+"/$authorize", params("practitioner", psAuthorized), "Authorization", "Bearer "+patTok), 200)

			// The médecin writes clinical resources, reads them, searches.
			subject := `"subject":{"reference":"Patient/` + patient + `","display":"` + given + " " + family + `"}`
			obs := expect("Observation", s.do("POST", "/Observation", []byte(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},`+subject+`,"valueQuantity":{"value":72,"unit":"/min"}}`), "Authorization", "Bearer "+doc), 201).json(t)["id"].(string)
			expect("Condition", s.do("POST", "/Condition", []byte(`{"resourceType":"Condition",`+subject+`,"code":{"text":"asthme de `+given+`"}}`), "Authorization", "Bearer "+doc), 201)
			expect("read", s.do("GET", "/Observation/"+obs, nil, "Authorization", "Bearer "+doc), 200)
			expect("read the patient", s.do("GET", "/Patient/"+patient, nil, "Authorization", "Bearer "+doc), 200)
			expect("search by INS", s.do("GET", "/Patient?identifier="+url.QueryEscape(testINS+"|"+nirA), nil, "Authorization", "Bearer "+doc), 200)
			expect("search by name", s.do("GET", "/Patient?family="+url.QueryEscape(family)+"&given="+url.QueryEscape(given), nil, "Authorization", "Bearer "+doc), 200)
			expect("search by INS (POST)", s.do("POST", "/Patient/_search", []byte("identifier="+url.QueryEscape(testINS+"|"+nirA)), "Authorization", "Bearer "+doc, "Content-Type", "application/x-www-form-urlencoded"), 200)
			expect("chained search", s.do("GET", "/Observation?subject:Patient.identifier="+url.QueryEscape(testINS+"|"+nirA), nil, "Authorization", "Bearer "+doc), 200)
			expect("the patient's own record", s.do("GET", "/Patient/"+patient+"/Observation", nil, "Authorization", "Bearer "+patTok), 200)
			expect("bris de glace", s.do("GET", "/Observation?patient="+patient, nil, "Authorization", "Bearer "+s.practitioner(psStranger, false), "X-Access-Mode", "bris_de_glace", "X-Access-Reason", reason), 200)

			// Refusals and mistakes.
			forged := doc[:len(doc)-4] + "AAAA"
			expect("no consent", s.do("GET", "/Patient/"+patient, nil, "Authorization", "Bearer "+s.practitioner(psStranger, false)), 403)
			expect("not a token", s.do("GET", "/Patient?identifier="+nirA, nil, "Authorization", "Bearer not-a-token-"+nirA), 401)
			expect("forged token", s.do("GET", "/Patient/"+patient, nil, "Authorization", "Bearer "+forged), 401)
			patientBody := `{"resourceType":"Patient","identifier":[{"system":"` + testINS + `","value":"` + nirB + `"}],"name":[{"family":"` + family + `","given":["` + given + `"]}],"birthDate":"le 2 mai 1983"}`
			expect("bad body", s.do("POST", "/Observation", []byte(`{"resourceType":"Observation","status":"final","code":{"text":"`+nirA+`"},`+subject+`,"effectiveDateTime":"le 2 mai"}`), "Authorization", "Bearer "+doc), 400)
			expect("broken JSON", s.do("POST", "/Observation", []byte(`{"resourceType":"Observation","note":[{"text":"`+given+`"}]`), "Authorization", "Bearer "+doc), 400)
			expect("wrong type", s.do("PUT", "/Observation/"+obs, []byte(patientBody), "Authorization", "Bearer "+doc), 400)
			expect("unknown id", s.do("GET", "/Patient/"+nirA, nil, "Authorization", "Bearer "+doc), 404)

			// A batch, with the request id the client chose.
			batch := `{"resourceType":"Bundle","type":"batch","entry":[
			 {"resource":{"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/` + patient + `"},"code":{"text":"pénicilline"}},"request":{"method":"POST","url":"AllergyIntolerance"}},
			 {"request":{"method":"GET","url":"Patient?identifier=` + url.QueryEscape(testINS+"|"+nirA) + `"}},
			 {"request":{"method":"GET","url":"Patient/` + patient + `"}},
			 {"request":{"method":"GET","url":"Patient/` + nirA + `"}}]}`
			expect("batch", s.do("POST", "", []byte(batch), "Authorization", "Bearer "+doc, "X-Request-Id", "batch-0001"), 200)
			auditor.Close() // its last lines are in the log too

			out := logs.String()
			secrets := []string{nirA, nirA[:13], nirB, nirB[:13], family, given, "Hélène", url.QueryEscape(family), url.QueryEscape(given),
				url.PathEscape(family), email, phone, reason, doc, patTok, system, forged, secret, login, password, newPass,
				otherLogin, otherPassword, "not-a-token", patient, other, "pénicilline", "asthme"}
			for _, secret := range secrets {
				if strings.Contains(out, secret) {
					t.Errorf("the log holds %q", secret)
				}
			}
			if regexp.MustCompile(`\b` + code + `\b`).MatchString(out) {
				t.Errorf("the log holds the one-time code %s", code)
			}
			requests, entries := 0, 0
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("not a JSON log line: %s", line)
				}
				switch m["msg"] {
				case "request":
					requests++
					if m["request_id"] == nil || m["route"] == nil || m["status"] == nil || m["duration_ms"] == nil {
						t.Errorf("request line without its fields: %s", line)
					}
				case "bundle entry":
					entries++
					if m["request_id"] != "batch-0001" {
						t.Errorf("a bundle entry not under its batch's request id: %s", line)
					}
				}
			}
			if requests < 25 || entries != 4 {
				t.Errorf("%d request lines, %d bundle entry lines:\n%s", requests, entries, out)
			}
			for _, want := range []string{
				`"caller_kind":"practitioner","caller_id":"` + psAuthorized + `"`,
				`"caller_kind":"system","caller_id":"` + clientID + `"`,
				`"caller_kind":"patient","caller_id":"patient"`,
				`"access_mode":"bris_de_glace"`,
			} {
				if !strings.Contains(out, want) {
					t.Errorf("no request line with %s:\n%s", want, out)
				}
			}
		})
	}
}

// TestRequestIDIsKeptOnlyWhenSane: a client's X-Request-Id is echoed when
// short and plain, replaced by a generated one otherwise.
func TestRequestIDIsKeptOnlyWhenSane(t *testing.T) {
	s := newServer(t, engines[0], api.Config{})
	for _, c := range []struct {
		name, sent string
		kept       bool
	}{
		{"uuid", "3f2b8c1e-7d4a-4e8b-9c1f-0a2b3c4d5e6f", true},
		{"trace id", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{"too long", strings.Repeat("a", 65), false},
		{"spaces", "a b", false},
		{"log injection", `x","level":"ERROR`, false},
		{"none", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := s.do("GET", "/metadata", nil, "X-Request-Id", c.sent)
			got := r.header.Get("X-Request-Id")
			if c.kept && got != c.sent || !c.kept && (got == c.sent || len(got) != 24) {
				t.Fatalf("sent %q, echoed %q", c.sent, got)
			}
		})
	}
}

func TestHealthAndReadinessNeedNoToken(t *testing.T) {
	s := newServer(t, engines[0], api.Config{})
	base := strings.TrimSuffix(s.url, "/fhir")
	for _, path := range []string{"/healthz", "/readyz"} {
		s.url = base
		r := s.do("GET", path, nil, "Authorization", "none")
		if r.status != 200 {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
	s.url = base + "/fhir"
	r := s.do("GET", "/metadata", nil, "X-Request-Id", "abc-123")
	if r.header.Get("X-Request-Id") != "abc-123" {
		t.Errorf("X-Request-Id not echoed: %q", r.header.Get("X-Request-Id"))
	}
	if r := s.do("GET", "/metadata", nil); len(r.header.Get("X-Request-Id")) < 16 {
		t.Errorf("no generated X-Request-Id")
	}
}
