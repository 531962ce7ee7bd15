package api_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dmp-fhir/dmp-fhir/api"
	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/store/sqlite"
)

// BenchmarkConsentAndAuditCost measures read-by-id and a patient search as
// an authorized professional, with the consent decision and the audit on,
// with the consent decision only (no Auth.Auditor), and with both off
// (Auth.Unrestricted: tokens and scopes still checked), on the embedded
// engine, through the HTTP handler without a network.
//
//	go test -run '^$' -bench ConsentAndAuditCost -benchtime 2000x ./api/
//
// c=1 is one client (each request waits for its own audit commit); c=16
// are 16 concurrent clients, whose audit events share commits.
func BenchmarkConsentAndAuditCost(b *testing.B) {
	st, err := sqlite.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	t := &testing.T{}
	key := signingKey(t)
	v, _ := auth.NewVerifier(auth.VerifierConfig{Key: key})
	auditor := auth.NewAuditor(st, auth.AuditorOptions{JournalDir: b.TempDir()}) // as the server runs
	b.Cleanup(func() { auditor.Close() })
	val := validator(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	on := api.New(api.Config{Logger: quiet, Auth: &api.Auth{Verifier: v, Key: key, Auditor: auditor}}, st, val)
	consentOnly := api.New(api.Config{Logger: quiet, Auth: &api.Auth{Verifier: v, Key: key}}, st, val)
	off := api.New(api.Config{Logger: quiet, Auth: &api.Auth{Verifier: v, Key: key, Unrestricted: true}}, st, val)
	b.Cleanup(func() { on.Close(); consentOnly.Close(); off.Close() }) // before the auditor and the store

	doctor, _ := key.Issue(auth.Claims{Kind: auth.KindPractitioner, IDNatPs: psAuthorized, Profession: "10", Scope: "user/*.cruds"}, time.Hour)
	call := func(h http.Handler, method, path, token, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if body != "" {
			req.Header.Set("Content-Type", "application/fhir+json")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	idOf := func(rec *httptest.ResponseRecorder) string {
		loc := rec.Header().Get("Location")
		parts := strings.Split(loc, "/")
		return parts[len(parts)-3]
	}
	rec := call(on, "POST", "/fhir/Patient/$dmp-create", doctor, string(params("system", "urn:oid:1.2.250.1.213.1.4.10", "nir", "255081416802538",
		"family", "Bench", "given", "Paul", "birthDate", "1955-08-14", "gender", "male", "patientConsent", "true")))
	if rec.Code != 201 {
		b.Fatalf("DMP: %d %s", rec.Code, rec.Body)
	}
	patient := idOf(rec)
	patTok, _ := key.Issue(auth.Claims{Kind: auth.KindPatient, Patient: patient, Scope: "patient/*.cruds"}, time.Hour)
	if rec := call(on, "POST", "/fhir/Patient/"+patient+"/$authorize", patTok, `{"resourceType":"Parameters","parameter":[{"name":"practitioner","valueString":"`+psAuthorized+`"}]}`); rec.Code != 200 {
		b.Fatalf("authorize: %d %s", rec.Code, rec.Body)
	}
	var obs string
	for i := 0; i < 200; i++ {
		rec := call(off, "POST", "/fhir/Observation", doctor, fmt.Sprintf(`{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/%s"},"effectiveDateTime":"2024-01-%02dT08:00:00Z","valueQuantity":{"value":%d,"unit":"/min"}}`, patient, i%28+1, 60+i%40))
		if rec.Code != 201 {
			b.Fatalf("observation: %d %s", rec.Code, rec.Body)
		}
		obs = idOf(rec)
	}
	for _, path := range []struct{ name, path string }{
		{"ReadByID", "/fhir/Observation/" + obs},
		{"PatientSearch", "/fhir/Observation?patient=" + patient + "&_sort=-date&_count=20"},
	} {
		for _, mode := range []struct {
			name string
			h    http.Handler
		}{{"consent+audit", on}, {"consent", consentOnly}, {"unrestricted", off}} {
			b.Run(path.name+"/"+mode.name+"/c=1", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if rec := call(mode.h, "GET", path.path, doctor, ""); rec.Code != 200 {
						b.Fatalf("%d %s", rec.Code, rec.Body)
					}
				}
			})
			// 16 concurrent clients, as practice software and hospital
			// systems are: the audit's group commit shares writes.
			b.Run(path.name+"/"+mode.name+"/c=16", func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(8) // 8 x GOMAXPROCS(2) = 16 goroutines
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if rec := call(mode.h, "GET", path.path, doctor, ""); rec.Code != 200 {
							b.Errorf("%d %s", rec.Code, rec.Body)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkEverything measures GET /fhir/Patient/{id}/$everything for a
// patient of about 1,000 resources (Synthea's Laticia Dibbert, 388
// resources, and 612 more observations, reports, documents with their
// Binaries, conditions), on the embedded engine, with the consent decision
// and the audit on, as the professional the patient authorized: every page
// of _count=100 (the default), then the whole record as one page
// (_count=1000). It reports resources/s.
//
//	go test -run '^$' -bench Everything -benchtime 20x ./api/
func BenchmarkEverything(b *testing.B) {
	st, err := sqlite.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	t := &testing.T{}
	key := signingKey(t)
	v, _ := auth.NewVerifier(auth.VerifierConfig{Key: key})
	auditor := auth.NewAuditor(st, auth.AuditorOptions{JournalDir: b.TempDir()})
	b.Cleanup(func() { auditor.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := api.New(api.Config{Logger: quiet, Auth: &api.Auth{Verifier: v, Key: key, Auditor: auditor}}, st, validator(t))
	b.Cleanup(h.Close) // after the HTTP server, before the auditor and the store
	hs := httptest.NewServer(h)
	b.Cleanup(hs.Close)
	s := &server{t: t, url: hs.URL + "/fhir", key: key, store: st}
	s.token = s.tokenFor(auth.Claims{Kind: auth.KindSystem, ClientID: "his-demo", Scope: "system/*.cruds"})
	rec := loadSynthea(t, s, "../testdata/synthea/bundles/Laticia_Dibbert_b23f172c-8c92-4757-87a8-7f64c13639d3.json", testNIR(1))
	if t.Failed() {
		b.Fatal("loading the Synthea patient failed")
	}
	var batch []string
	for i := 0; len(rec.resources)+len(batch) < 1000; i++ {
		ref := "Patient/" + rec.patient
		switch i % 4 {
		case 0:
			batch = append(batch, fmt.Sprintf(`{"resource":{"resourceType":"Binary","id":"bin-%d","contentType":"text/plain","securityContext":{"reference":"DocumentReference/doc-%d"},"data":"Y29tcHRlIHJlbmR1"},"request":{"method":"PUT","url":"Binary/bin-%d"}}`, i, i, i))
			batch = append(batch, fmt.Sprintf(`{"resource":{"resourceType":"DocumentReference","id":"doc-%d","status":"current","type":{"coding":[{"system":"http://loinc.org","code":"11488-4"}]},"subject":{"reference":"%s"},"date":"2023-01-%02dT10:00:00Z","content":[{"attachment":{"contentType":"text/plain","url":"Binary/bin-%d"}}]},"request":{"method":"PUT","url":"DocumentReference/doc-%d"}}`, i, ref, i%28+1, i, i))
		case 1:
			batch = append(batch, fmt.Sprintf(`{"resource":{"resourceType":"Condition","subject":{"reference":"%s"},"code":{"text":"condition %d"},"onsetDateTime":"2022-02-%02d"},"request":{"method":"POST","url":"Condition"}}`, ref, i, i%28+1))
		default:
			batch = append(batch, fmt.Sprintf(`{"resource":{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"2339-0"}]},"subject":{"reference":"%s"},"effectiveDateTime":"2023-03-%02dT08:00:00Z","valueQuantity":{"value":%d,"unit":"mg/dL"}},"request":{"method":"POST","url":"Observation"}}`, ref, i%28+1, 80+i%40))
		}
	}
	if r := s.do("POST", "", []byte(`{"resourceType":"Bundle","type":"batch","entry":[`+strings.Join(batch, ",")+`]}`)); r.status != 200 {
		b.Fatalf("batch: %d %s", r.status, r.body)
	}
	patTok, _ := key.Issue(auth.Claims{Kind: auth.KindPatient, Patient: rec.patient, Scope: "patient/*.cruds"}, time.Hour)
	if r := s.do("POST", "/Patient/"+rec.patient+"/$authorize", params("practitioner", psAuthorized), "Authorization", "Bearer "+patTok); r.status != 200 {
		b.Fatalf("authorize: %d %s", r.status, r.body)
	}
	doctor := "Bearer " + s.tokenFor(auth.Claims{Kind: auth.KindPractitioner, IDNatPs: psAuthorized, Profession: "10", Scope: "user/*.cruds"})
	for _, count := range []int{100, 1000} {
		b.Run(fmt.Sprintf("_count=%d", count), func(b *testing.B) {
			resources := 0
			for b.Loop() {
				got, _, _ := everythingPages(t, s, fmt.Sprintf("/Patient/%s/$everything?_count=%d", rec.patient, count), count, "Authorization", doctor)
				if t.Failed() || len(got) < 1000 {
					b.Fatalf("%d resources", len(got))
				}
				resources += len(got)
			}
			b.ReportMetric(float64(resources)/float64(b.N), "resources/op")
			b.ReportMetric(float64(resources)/b.Elapsed().Seconds(), "resources/s")
		})
	}
}
