package api_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
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
// with its secret (and a wrong one), registers a patient with an INS-NIR
// and names, the patient authorizes a médecin, who writes and reads
// clinical resources, searches by INS and by name, breaks the glass with a
// free-text reason; refused and forged tokens, bad bodies and a batch. Not
// one log line may hold the NIR, a name, a token, the client secret, the
// reason or the patient's id; every line is JSON with a request id.
func TestLogsCarryNoPatientDataNorSecrets(t *testing.T) {
	const (
		nir    = "283052A123456"
		insNIR = "urn:oid:1.2.250.1.213.1.4.8"
		family = "Dupré-Lefèvre"
		given  = "Éloïse"
		reason = "Madame Dupré-Lefèvre inconsciente"
	)
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			var logs syncBuffer
			st := e.open(t)
			key := signingKey(t)
			v, _ := auth.NewVerifier(auth.VerifierConfig{Key: key})
			dir := t.TempDir()
			clientID, secret, err := auth.AddClient(dir, "SIH Démo", "750712184", "system/*.cruds")
			if err != nil {
				t.Fatal(err)
			}
			clients, err := auth.OpenClients(dir)
			if err != nil {
				t.Fatal(err)
			}
			auditor := auth.NewAuditor(st, auth.AuditorOptions{JournalDir: t.TempDir(), Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			t.Cleanup(func() { auditor.Close() })
			log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			s := newServerOn(t, st, api.Config{Logger: log, Auth: &api.Auth{Verifier: v, Key: key, Auditor: auditor, Clients: clients}})
			root := strings.TrimSuffix(s.url, "/fhir")
			expect := func(what string, r response, want int) response {
				t.Helper()
				if r.status != want {
					t.Fatalf("%s: %d, want %d: %s", what, r.status, want, r.body)
				}
				return r
			}

			// A hospital system gets a token with its secret; a wrong secret fails.
			form := func(secret string) int {
				res, err := http.PostForm(root+"/auth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}})
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				var tok struct {
					AccessToken string `json:"access_token"`
				}
				json.NewDecoder(res.Body).Decode(&tok)
				if tok.AccessToken != "" {
					s.token = tok.AccessToken
				}
				return res.StatusCode
			}
			if status := form(secret + "x"); status != 401 {
				t.Fatalf("wrong client secret: %d", status)
			}
			if status := form(secret); status != 200 {
				t.Fatalf("client_credentials: %d", status)
			}
			system := s.token

			// It registers the patient, with an INS-NIR and names.
			patientBody := `{"resourceType":"Patient","identifier":[{"use":"official","system":"` + insNIR + `","value":"` + nir + `"}],"name":[{"use":"official","family":"` + family + `","given":["` + given + `"]}],"gender":"female","birthDate":"1983-05-02"}`
			patient := expect("register the patient", s.do("POST", "/Patient", []byte(patientBody), "Authorization", "Bearer "+system), 201).json(t)["id"].(string)
			patTok := s.patient(patient)
			doc := s.practitioner(psAuthorized, false)
			expect("authorize", s.do("POST", "/Patient/"+patient+"/$authorize", params("practitioner", psAuthorized), "Authorization", "Bearer "+patTok), 200)

			// The médecin writes clinical resources, reads them, searches.
			subject := `"subject":{"reference":"Patient/` + patient + `","display":"` + given + " " + family + `"}`
			obs := expect("Observation", s.do("POST", "/Observation", []byte(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},`+subject+`,"valueQuantity":{"value":72,"unit":"/min"}}`), "Authorization", "Bearer "+doc), 201).json(t)["id"].(string)
			expect("Condition", s.do("POST", "/Condition", []byte(`{"resourceType":"Condition",`+subject+`,"code":{"text":"asthme de `+given+`"}}`), "Authorization", "Bearer "+doc), 201)
			expect("read", s.do("GET", "/Observation/"+obs, nil, "Authorization", "Bearer "+doc), 200)
			expect("read the patient", s.do("GET", "/Patient/"+patient, nil, "Authorization", "Bearer "+doc), 200)
			expect("search by INS", s.do("GET", "/Patient?identifier="+url.QueryEscape(insNIR+"|"+nir), nil, "Authorization", "Bearer "+doc), 200)
			expect("search by name", s.do("GET", "/Patient?family="+url.QueryEscape(family)+"&given="+url.QueryEscape(given), nil, "Authorization", "Bearer "+doc), 200)
			expect("search by INS (POST)", s.do("POST", "/Patient/_search", []byte("identifier="+url.QueryEscape(insNIR+"|"+nir)), "Authorization", "Bearer "+doc, "Content-Type", "application/x-www-form-urlencoded"), 200)
			expect("chained search", s.do("GET", "/Observation?subject:Patient.identifier="+url.QueryEscape(insNIR+"|"+nir), nil, "Authorization", "Bearer "+doc), 200)
			expect("the patient's own record", s.do("GET", "/Patient/"+patient+"/Observation", nil, "Authorization", "Bearer "+patTok), 200)
			expect("bris de glace", s.do("GET", "/Observation?patient="+patient, nil, "Authorization", "Bearer "+s.practitioner(psStranger, false), "X-Access-Mode", "bris_de_glace", "X-Access-Reason", reason), 200)

			// Refusals and mistakes.
			forged := doc[:len(doc)-4] + "AAAA"
			expect("no consent", s.do("GET", "/Patient/"+patient, nil, "Authorization", "Bearer "+s.practitioner(psStranger, false)), 403)
			expect("not a token", s.do("GET", "/Patient?identifier="+nir, nil, "Authorization", "Bearer not-a-token-"+nir), 401)
			expect("forged token", s.do("GET", "/Patient/"+patient, nil, "Authorization", "Bearer "+forged), 401)
			expect("bad body", s.do("POST", "/Patient", []byte(strings.Replace(patientBody, `"1983-05-02"`, `"le 2 mai 1983"`, 1)), "Authorization", "Bearer "+doc), 400)
			expect("broken JSON", s.do("POST", "/Patient", []byte(`{"resourceType":"Patient","name":[{"family":"`+family+`"}]`), "Authorization", "Bearer "+doc), 400)
			expect("wrong type", s.do("PUT", "/Patient/"+patient, []byte(`{"resourceType":"Observation","id":"`+patient+`","status":"final","code":{"text":"`+nir+`"}}`), "Authorization", "Bearer "+doc), 400)
			expect("unknown id", s.do("GET", "/Patient/"+nir, nil, "Authorization", "Bearer "+doc), 404)

			// A batch, with the request id the client chose.
			batch := `{"resourceType":"Bundle","type":"batch","entry":[
			 {"resource":{"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/` + patient + `"},"code":{"text":"pénicilline"}},"request":{"method":"POST","url":"AllergyIntolerance"}},
			 {"request":{"method":"GET","url":"Patient?identifier=` + url.QueryEscape(insNIR+"|"+nir) + `"}},
			 {"request":{"method":"GET","url":"Patient/` + patient + `"}},
			 {"request":{"method":"GET","url":"Patient/` + nir + `"}}]}`
			expect("batch", s.do("POST", "", []byte(batch), "Authorization", "Bearer "+doc, "X-Request-Id", "batch-0001"), 200)
			auditor.Close() // its last lines are in the log too

			out := logs.String()
			secrets := []string{nir, family, given, url.QueryEscape(family), url.QueryEscape(given), url.PathEscape(family), reason,
				doc, patTok, system, forged, secret, "not-a-token", patient, "pénicilline", "asthme"}
			for _, secret := range secrets {
				if strings.Contains(out, secret) {
					t.Errorf("the log holds %q", secret)
				}
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
			if requests < 20 || entries != 4 {
				t.Errorf("%d request lines, %d bundle entry lines:\n%s", requests, entries, out)
			}
			if !strings.Contains(out, `"caller_kind":"practitioner","caller_id":"`+psAuthorized+`"`) || !strings.Contains(out, `"caller_kind":"system","caller_id":"`+clientID+`"`) {
				t.Errorf("request lines do not name the callers:\n%s", out)
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
