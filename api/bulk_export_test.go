package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// exportFixture is a consent server with two records: the seedRecord one
// (patient A: a plain, a masked, an invisible document and an
// observation; psAuthorized authorized, psTreating médecin traitant) and a
// patient B who authorized nobody of them.
type exportFixture struct {
	s        *server
	rec      record
	other    string // patient B
	otherObs string
	// otherMasked is a document of B that B masked.
	otherMasked string
	authorized  string // tokens
	treating    string
	patientA    string
}

func newExportFixture(t *testing.T, e engine) *exportFixture {
	t.Helper()
	s := newConsentServer(t, e)
	t.Cleanup(s.api.Close) // before the store closes
	f := &exportFixture{s: s, rec: s.seedRecord(t)}
	desk := s.practitioner(psStranger, false)
	f.other, _, _ = s.createDMP(t, desk, testNIR(7), "Martin")
	r := s.do("POST", "/Observation", []byte(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/`+f.other+`"},"effectiveDateTime":"2024-01-03"}`), "Authorization", "Bearer "+desk)
	if r.status != 201 {
		t.Fatalf("observation of B: %d %s", r.status, r.body)
	}
	f.otherObs = r.json(t)["id"].(string)
	// B authorizes the médecin traitant of A (not theirs) and masks a document.
	r = s.do("POST", "/DocumentReference", []byte(`{"resourceType":"DocumentReference","status":"current","type":{"coding":[{"system":"http://loinc.org","code":"11488-4"}]},"subject":{"reference":"Patient/`+f.other+`"},"content":[{"attachment":{"contentType":"text/plain","data":"Y29tcHRlIHJlbmR1"}}]}`), "Authorization", "Bearer "+desk)
	if r.status != 201 {
		t.Fatalf("document of B: %d %s", r.status, r.body)
	}
	f.otherMasked = r.json(t)["id"].(string)
	patB := "Bearer " + s.patient(f.other)
	if r := s.do("POST", "/DocumentReference/"+f.otherMasked+"/$mask", nil, "Authorization", patB); r.status != 200 {
		t.Fatalf("$mask by B: %d %s", r.status, r.body)
	}
	if r := s.do("POST", "/Patient/"+f.other+"/$authorize", params("practitioner", psTreating), "Authorization", patB); r.status != 200 {
		t.Fatalf("$authorize by B: %d %s", r.status, r.body)
	}
	f.authorized, f.treating, f.patientA = s.practitioner(psAuthorized, false), s.practitioner(psTreating, false), s.patient(f.rec.patient)
	return f
}

// kickoff starts an export; the response is returned whatever its status.
func (s *server) kickoff(method, path, token string, body []byte, headers ...string) response {
	s.t.Helper()
	h := append([]string{"Authorization", "Bearer " + token, "Prefer", "respond-async", "Accept", "application/fhir+json"}, headers...)
	return s.do(method, path, body, h...)
}

// local turns an absolute URL of the server into a path for s.do.
func (s *server) local(t *testing.T, abs string) string {
	t.Helper()
	p, ok := strings.CutPrefix(abs, s.url)
	if !ok {
		t.Fatalf("URL %q is not under %q", abs, s.url)
	}
	return p
}

// startExport kicks off and returns the status path.
func (s *server) startExport(t *testing.T, path, token string) string {
	t.Helper()
	r := s.kickoff("GET", path, token, nil)
	if r.status != 202 {
		t.Fatalf("kick-off %s: %d %s", path, r.status, r.body)
	}
	loc := r.header.Get("Content-Location")
	if !strings.Contains(loc, "/$export-status/") {
		t.Fatalf("Content-Location %q", loc)
	}
	return s.local(t, loc)
}

// manifest is the completed job's answer.
type manifest struct {
	TransactionTime     string `json:"transactionTime"`
	Request             string `json:"request"`
	RequiresAccessToken bool   `json:"requiresAccessToken"`
	Output              []struct {
		Type  string `json:"type"`
		URL   string `json:"url"`
		Count int    `json:"count"`
	} `json:"output"`
	Error []struct {
		Type string `json:"type"`
		URL  string `json:"url"`
	} `json:"error"`
}

// waitExport polls the status URL until the job ends; the last answer.
func (s *server) waitExport(t *testing.T, status, token string) response {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	// Every poll is an audited access: back off as a client honouring
	// Retry-After would, from 10 ms to a quarter of a second.
	wait := 10 * time.Millisecond
	for {
		r := s.do("GET", status, nil, "Authorization", "Bearer "+token)
		if r.status != 202 {
			return r
		}
		if r.header.Get("X-Progress") == "" || r.header.Get("Retry-After") == "" {
			t.Fatalf("202 without X-Progress or Retry-After: %v", r.header)
		}
		if time.Now().After(deadline) {
			t.Fatalf("export still running: %s", r.header.Get("X-Progress"))
		}
		time.Sleep(wait) // a poll interval, not an assertion
		wait = min(2*wait, 250*time.Millisecond)
	}
}

func (s *server) finishedExport(t *testing.T, status, token string) manifest {
	t.Helper()
	r := s.waitExport(t, status, token)
	if r.status != 200 {
		t.Fatalf("export ended with %d %s", r.status, r.body)
	}
	var m manifest
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("manifest: %v %s", err, r.body)
	}
	if !m.RequiresAccessToken || m.TransactionTime == "" || m.Request == "" {
		t.Fatalf("manifest fields: %s", r.body)
	}
	return m
}

// exported downloads every output file and returns the "Type/id" exported,
// checking that each line is a resource of its file's type and that each
// file has the count the manifest says.
func (s *server) exported(t *testing.T, m manifest, token string) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	for _, o := range m.Output {
		r := s.do("GET", s.local(t, o.URL), nil, "Authorization", "Bearer "+token, "Accept", "application/fhir+ndjson")
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/fhir+ndjson") {
			t.Fatalf("download %s: %d %s %s", o.URL, r.status, r.header.Get("Content-Type"), r.body)
		}
		lines := bytes.Split(bytes.TrimSuffix(r.body, []byte("\n")), []byte("\n"))
		if len(lines) != o.Count {
			t.Errorf("%s: %d lines, the manifest says %d", o.URL, len(lines), o.Count)
		}
		for _, line := range lines {
			var res struct {
				ResourceType string `json:"resourceType"`
				ID           string `json:"id"`
			}
			if err := json.Unmarshal(line, &res); err != nil || res.ResourceType != o.Type || res.ID == "" {
				t.Fatalf("%s: line %q is not a %s (%v)", o.URL, line, o.Type, err)
			}
			got[res.ResourceType+"/"+res.ID] = true
		}
	}
	return got
}

// TestBulkExport runs the Bulk Data export end to end: kick-off, polling,
// manifest, downloads, under the consent of each kind of caller.
func TestBulkExport(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			f := newExportFixture(t, e)
			run := t.Run
			s, rec := f.s, f.rec
			A, B := "Patient/"+rec.patient, "Patient/"+f.other
			doc := func(id string) string { return "DocumentReference/" + id }

			run("a professional exports only the records that authorize them, without masked documents", func(t *testing.T) {
				m := s.finishedExport(t, s.startExport(t, "/$export", f.authorized), f.authorized)
				got := s.exported(t, m, f.authorized)
				for _, want := range []string{A, doc(rec.plain), doc(rec.invisible), "Observation/" + rec.obs} {
					if !got[want] {
						t.Errorf("%s missing from the export: %v", want, got)
					}
				}
				for _, not := range []string{doc(rec.masked), B, "Observation/" + f.otherObs, "Consent/dmp-" + rec.patient} {
					if got[not] {
						t.Errorf("%s must not be exported to an authorized professional", not)
					}
				}
			})

			run("the médecin traitant's export has the masked documents of their patient only", func(t *testing.T) {
				m := s.finishedExport(t, s.startExport(t, "/Patient/$export", f.treating), f.treating)
				got := s.exported(t, m, f.treating)
				for _, want := range []string{doc(rec.masked), doc(rec.plain), B, "Observation/" + f.otherObs} {
					if !got[want] {
						t.Errorf("%s missing from the médecin traitant's export: %v", want, got)
					}
				}
				if got[doc(f.otherMasked)] {
					t.Errorf("the masked document of B, who only authorized them, is in the médecin traitant's export")
				}
			})

			run("a patient exports their own record without INVISIBLE_PATIENT", func(t *testing.T) {
				m := s.finishedExport(t, s.startExport(t, "/Patient/$export", f.patientA), f.patientA)
				got := s.exported(t, m, f.patientA)
				for _, want := range []string{A, doc(rec.plain), doc(rec.masked), "Observation/" + rec.obs, "Consent/dmp-" + rec.patient} {
					if !got[want] {
						t.Errorf("%s missing from the patient's export: %v", want, got)
					}
				}
				if got[doc(rec.invisible)] || got[B] || got["Observation/"+f.otherObs] {
					t.Errorf("the patient's export has what they may not see: %v", got)
				}
			})

			run("a system client exports no patient data", func(t *testing.T) {
				sys := s.system()
				m := s.finishedExport(t, s.startExport(t, "/$export", sys), sys)
				for k := range s.exported(t, m, sys) {
					if strings.HasPrefix(k, "Patient/") || strings.HasPrefix(k, "Observation/") || strings.HasPrefix(k, "DocumentReference/") {
						t.Errorf("system export has %s", k)
					}
				}
			})

			run("_type and _since select the types and the recent changes", func(t *testing.T) {
				m := s.finishedExport(t, s.startExport(t, "/Patient/$export?_type=Observation", f.authorized), f.authorized)
				got := s.exported(t, m, f.authorized)
				if len(got) != 1 || !got["Observation/"+rec.obs] {
					t.Errorf("_type=Observation: %v", got)
				}
				since := time.Now().UTC().Add(-time.Millisecond)
				r := s.do("POST", "/Observation", []byte(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8310-5"}]},"subject":{"reference":"Patient/`+rec.patient+`"}}`), "Authorization", "Bearer "+f.authorized)
				if r.status != 201 {
					t.Fatalf("new observation: %d %s", r.status, r.body)
				}
				fresh := "Observation/" + r.json(t)["id"].(string)
				m = s.finishedExport(t, s.startExport(t, "/$export?_since="+url.QueryEscape(since.Format(time.RFC3339Nano)), f.authorized), f.authorized)
				got = s.exported(t, m, f.authorized)
				if len(got) != 1 || !got[fresh] {
					t.Errorf("_since: want only %s, got %v", fresh, got)
				}
			})

			run("_typeFilter narrows a type with a search query", func(t *testing.T) {
				m := s.finishedExport(t, s.startExport(t, "/Patient/$export?_type=DocumentReference&_typeFilter="+url.QueryEscape("DocumentReference?_id="+rec.plain), f.authorized), f.authorized)
				if got := s.exported(t, m, f.authorized); len(got) != 1 || !got[doc(rec.plain)] {
					t.Errorf("_typeFilter: %v", got)
				}
			})

			run("POST kick-off with a Parameters body and the patient parameter", func(t *testing.T) {
				body := []byte(`{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Observation"},{"name":"patient","valueReference":{"reference":"` + A + `"}}]}`)
				r := s.kickoff("POST", "/Patient/$export", f.authorized, body)
				if r.status != 202 {
					t.Fatalf("POST kick-off: %d %s", r.status, r.body)
				}
				m := s.finishedExport(t, s.local(t, r.header.Get("Content-Location")), f.authorized)
				got := s.exported(t, m, f.authorized)
				if !got["Observation/"+rec.obs] || got["Observation/"+f.otherObs] {
					t.Errorf("POST export: %v", got)
				}
				for k := range got {
					if !strings.HasPrefix(k, "Observation/") {
						t.Errorf("POST export with _type=Observation has %s", k)
					}
				}
				body = []byte(`{"resourceType":"Parameters","parameter":[{"name":"patient","valueReference":{"reference":"` + B + `"}}]}`)
				r = s.kickoff("POST", "/Patient/$export", f.authorized, body)
				if r.status != 202 {
					t.Fatalf("POST kick-off for B: %d %s", r.status, r.body)
				}
				if end := s.waitExport(t, s.local(t, r.header.Get("Content-Location")), f.authorized); end.status != 403 {
					t.Errorf("export of a record that refuses the caller: %d %s", end.status, end.body)
				}
			})

			run("bad kick-offs are refused", func(t *testing.T) {
				for _, c := range []struct {
					name, method, path string
					noPrefer           bool
					status             int
					expression, says   string
				}{
					{"no Prefer: respond-async", "GET", "/$export", true, 400, "", "respond-async"},
					{"unknown _type", "GET", "/$export?_type=Observation,Spaceship", false, 400, "_type", "Spaceship"},
					{"Binary in _type", "GET", "/$export?_type=Binary", false, 400, "_type", "Binary"},
					{"type outside the compartment at patient level", "GET", "/Patient/$export?_type=Practitioner", false, 400, "_type", "Practitioner"},
					{"bad _since", "GET", "/$export?_since=yesterday", false, 400, "_since", "instant"},
					{"bad _outputFormat", "GET", "/$export?_outputFormat=text/csv", false, 400, "_outputFormat", "text/csv"},
					{"bad _typeFilter", "GET", "/$export?_typeFilter=" + url.QueryEscape("Observation?nonsense=1"), false, 400, "_typeFilter", "nonsense"},
					{"_typeFilter with _include", "GET", "/$export?_typeFilter=" + url.QueryEscape("Observation?_include=Observation:subject"), false, 400, "_typeFilter", "_include"},
					{"another type's $export", "GET", "/Observation/$export", false, 404, "", "$export"},
					{"Group export", "GET", "/Group/g1/$export", false, 404, "", "Group"},
				} {
					t.Run(c.name, func(t *testing.T) {
						var r response
						if c.noPrefer {
							r = s.do(c.method, c.path, nil, "Authorization", "Bearer "+f.authorized)
						} else {
							r = s.kickoff(c.method, c.path, f.authorized, nil)
						}
						if r.status != c.status {
							t.Fatalf("%d %s", r.status, r.body)
						}
						_, expr, diag := outcome(t, r)
						if expr != c.expression || !strings.Contains(diag, c.says) {
							t.Errorf("expression %q diagnostics %q", expr, diag)
						}
					})
				}
				scoped := s.tokenFor(auth.Claims{Kind: auth.KindPractitioner, IDNatPs: psAuthorized, Profession: "10", Scope: "user/Observation.rs"})
				if r := s.kickoff("GET", "/$export?_type=DocumentReference", scoped, nil); r.status != 403 {
					t.Errorf("_type outside the token's scopes: %d %s", r.status, r.body)
				}
				m := s.finishedExport(t, s.startExport(t, "/$export", scoped), scoped)
				for _, o := range m.Output {
					if o.Type != "Observation" {
						t.Errorf("a user/Observation.rs token exported %s", o.Type)
					}
				}
			})

			run("another caller gets 404 for the status and the files", func(t *testing.T) {
				status := s.startExport(t, "/Patient/$export", f.authorized)
				m := s.finishedExport(t, status, f.authorized)
				if len(m.Output) == 0 {
					t.Fatal("no output")
				}
				file := s.local(t, m.Output[0].URL)
				for _, tok := range []string{f.treating, f.patientA, s.system()} {
					for _, p := range []string{status, file} {
						if r := s.do("GET", p, nil, "Authorization", "Bearer "+tok); r.status != 404 {
							t.Errorf("GET %s by another caller: %d", p, r.status)
						}
					}
					if r := s.do("DELETE", status, nil, "Authorization", "Bearer "+tok); r.status != 404 {
						t.Errorf("DELETE by another caller: %d", r.status)
					}
				}
				other := s.practitioner(psAuthorized, false) // another token of the same professional
				if r := s.do("GET", file, nil, "Authorization", "Bearer "+other); r.status != 200 {
					t.Errorf("the same caller with another token: %d", r.status)
				}
			})

			run("cancel removes the job and its files", func(t *testing.T) {
				status := s.startExport(t, "/Patient/$export", f.authorized)
				m := s.finishedExport(t, status, f.authorized)
				if r := s.do("DELETE", status, nil, "Authorization", "Bearer "+f.authorized); r.status != 202 {
					t.Fatalf("DELETE: %d %s", r.status, r.body)
				}
				if r := s.do("GET", status, nil, "Authorization", "Bearer "+f.authorized); r.status != 404 {
					t.Errorf("status after cancel: %d", r.status)
				}
				if r := s.do("GET", s.local(t, m.Output[0].URL), nil, "Authorization", "Bearer "+f.authorized); r.status != 404 {
					t.Errorf("file after cancel: %d", r.status)
				}
				s.noJobRecord(t, status)
			})

			run("a running job: progress, one export per caller, cancel", func(t *testing.T) {
				hold, held := make(chan struct{}), make(chan string, 1)
				s.api.SetExportHook(func(job string) { held <- job; <-hold })
				defer s.api.SetExportHook(nil)
				status := s.startExport(t, "/Patient/$export", f.authorized)
				<-held
				r := s.do("GET", status, nil, "Authorization", "Bearer "+f.authorized)
				if r.status != 202 || !strings.HasPrefix(r.header.Get("X-Progress"), "running") || r.header.Get("Retry-After") == "" {
					t.Errorf("running job's status: %d %v", r.status, r.header)
				}
				if r := s.kickoff("GET", "/$export", f.authorized, nil); r.status != 429 || r.header.Get("Retry-After") == "" {
					t.Errorf("second export of the same caller: %d %s", r.status, r.body)
				}
				// Another caller's job waits for the one worker; cancelled, it never runs.
				queued := s.startExport(t, "/Patient/$export", f.treating)
				if r := s.do("GET", queued, nil, "Authorization", "Bearer "+f.treating); r.status != 202 || r.header.Get("X-Progress") != "queued" {
					t.Errorf("queued job's status: %d %v", r.status, r.header)
				}
				if r := s.do("DELETE", queued, nil, "Authorization", "Bearer "+f.treating); r.status != 202 {
					t.Errorf("DELETE of a queued job: %d %s", r.status, r.body)
				}
				if r := s.do("GET", queued, nil, "Authorization", "Bearer "+f.treating); r.status != 404 {
					t.Errorf("status after cancelling a queued job: %d", r.status)
				}
				done := make(chan response)
				go func() { done <- s.do("DELETE", status, nil, "Authorization", "Bearer "+f.authorized) }()
				close(hold)
				if r := <-done; r.status != 202 {
					t.Errorf("DELETE of a running job: %d %s", r.status, r.body)
				}
				if r := s.do("GET", status, nil, "Authorization", "Bearer "+f.authorized); r.status != 404 {
					t.Errorf("status after cancel: %d", r.status)
				}
				s.api.SetExportHook(nil)
				s.finishedExport(t, s.startExport(t, "/Patient/$export?_type=Patient", f.authorized), f.authorized) // the caller may start again
			})

			run("the exported patients see the export in their access history", func(t *testing.T) {
				status := s.startExport(t, "/$export?_type=Observation", f.authorized)
				s.finishedExport(t, status, f.authorized)
				job := status[strings.LastIndex(status, "/")+1:]
				if !auditMentions(t, s, rec.patient, f.patientA, job) {
					t.Errorf("patient A does not see export %s in their AuditEvents", job)
				}
				if auditMentions(t, s, f.other, s.patient(f.other), job) {
					t.Errorf("patient B sees export %s, which has none of their data", job)
				}
			})

			// A consent change after the job ran counts at download: a
			// revocation keeps the patient's data out, a mask the document.
			for _, c := range []struct {
				name, export, change, undo string
				body                       []byte
				gone                       string
			}{
				{"a revocation after the job ran keeps the patient's data out of the download", "/$export",
					"/Patient/" + rec.patient + "/$revoke", "/Patient/" + rec.patient + "/$authorize", params("practitioner", psAuthorized), rec.patient},
				{"a mask put on after the job ran keeps the document out of the download", "/$export?_type=DocumentReference",
					"/DocumentReference/" + rec.plain + "/$mask", "/DocumentReference/" + rec.plain + "/$unmask", nil, rec.plain},
			} {
				run(c.name, func(t *testing.T) {
					m := s.finishedExport(t, s.startExport(t, c.export, f.authorized), f.authorized)
					if r := s.do("POST", c.change, c.body, "Authorization", "Bearer "+f.patientA); r.status != 200 {
						t.Fatalf("%s: %d %s", c.change, r.status, r.body)
					}
					defer func() {
						if r := s.do("POST", c.undo, c.body, "Authorization", "Bearer "+f.patientA); r.status != 200 {
							t.Fatalf("%s: %d %s", c.undo, r.status, r.body)
						}
					}()
					for _, o := range m.Output {
						r := s.do("GET", s.local(t, o.URL), nil, "Authorization", "Bearer "+f.authorized)
						if r.status != 200 {
							t.Fatalf("download: %d %s", r.status, r.body)
						}
						if bytes.Contains(r.body, []byte(c.gone)) {
							t.Errorf("%s file still has %s after the change", o.Type, c.gone)
						}
					}
				})
			}

			run("a download needs a token that may still search the file's type", func(t *testing.T) {
				m := s.finishedExport(t, s.startExport(t, "/$export?_type=Patient,Observation", f.authorized), f.authorized)
				narrow := s.tokenFor(auth.Claims{Kind: auth.KindPractitioner, IDNatPs: psAuthorized, Profession: "10", Scope: "user/Patient.rs"})
				for _, o := range m.Output {
					want := 200
					if o.Type == "Observation" {
						want = 403
					}
					if r := s.do("GET", s.local(t, o.URL), nil, "Authorization", "Bearer "+narrow); r.status != want {
						t.Errorf("%s file with a Patient-only token: %d, want %d: %s", o.Type, r.status, want, r.body)
					}
				}
			})

			run("a job whose server died is failed, expired jobs are removed", func(t *testing.T) {
				ctx := context.Background()
				dead := `{"resourceType":"DMPExportJob","id":"dead-job","owner":"practitioner|` + psAuthorized + `","level":"system","types":["Patient"],"status":"running","runner":"gone","heartbeat":"2020-01-01T00:00:00Z","created":"2020-01-01T00:00:00Z","expires":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"}`
				if _, _, err := s.store.Put(ctx, "DMPExportJob", "dead-job", []byte(dead), 0); err != nil {
					t.Fatal(err)
				}
				// The files the dead job had written, which its record does not list.
				for _, b := range []string{"export-dead-job-1", "export-dead-job-2"} {
					if err := s.store.Blobs().Put(ctx, b, strings.NewReader("{}\n")); err != nil {
						t.Fatal(err)
					}
				}
				if r := s.do("GET", "/$export-status/dead-job", nil, "Authorization", "Bearer "+f.authorized); r.status != 500 {
					t.Errorf("dead job: %d %s", r.status, r.body)
				} else if _, _, diag := outcome(t, r); !strings.Contains(diag, "stopped") {
					t.Errorf("dead job: %s", diag)
				}
				for _, b := range []string{"export-dead-job-1", "export-dead-job-2"} {
					if rc, _, err := s.store.Blobs().Get(ctx, b); err == nil {
						rc.Close()
						t.Errorf("the dead job's file %s is still stored", b)
					}
				}
				status := s.startExport(t, "/Patient/$export?_type=Patient", f.authorized)
				m := s.finishedExport(t, status, f.authorized)
				blob := "export-" + status[strings.LastIndex(status, "/")+1:] + "-1"
				if _, _, err := s.store.Blobs().Get(ctx, blob); err != nil || len(m.Output) != 1 {
					t.Fatalf("blob %s: %v (%d outputs)", blob, err, len(m.Output))
				}
				// A job removed before removals purged (or whose purge failed):
				// deleted, its versions kept.
				legacy := `{"resourceType":"DMPExportJob","id":"legacy-job","owner":"practitioner|x","level":"system","types":["Patient"],"status":"done"}`
				if _, err := s.store.Create(ctx, "DMPExportJob", "legacy-job", []byte(legacy)); err != nil {
					t.Fatal(err)
				}
				if _, _, err := s.store.Delete(ctx, "DMPExportJob", "legacy-job", 0); err != nil {
					t.Fatal(err)
				}
				s.api.SweepExports(time.Now().Add(25 * time.Hour))
				if r := s.do("GET", status, nil, "Authorization", "Bearer "+f.authorized); r.status != 404 {
					t.Errorf("expired job: %d", r.status)
				}
				s.noJobRecord(t, "/legacy-job")
				if _, _, err := s.store.Blobs().Get(ctx, blob); err == nil {
					t.Errorf("the expired job's file is still stored")
				}
				s.noJobRecord(t, status)
			})
		})
	}
}

// noJobRecord checks that no version of the job's record is left: each
// names the patients the job exported.
func (s *server) noJobRecord(t *testing.T, status string) {
	t.Helper()
	job := status[strings.LastIndex(status, "/")+1:]
	h, err := s.store.History(context.Background(), store.HistoryQuery{Type: "DMPExportJob", ID: job, Count: 10})
	if err != nil || len(h) != 0 {
		t.Errorf("the removed job %s keeps %d versions in history (%v)", job, len(h), err)
	}
}

// auditMentions says whether the patient's AuditEvents name the export job.
func auditMentions(t *testing.T, s *server, patient, token, job string) bool {
	t.Helper()
	r := s.do("GET", "/AuditEvent?patient="+patient+"&_count=200", nil, "Authorization", "Bearer "+token)
	if r.status != 200 {
		t.Fatalf("AuditEvent search: %d %s", r.status, r.body)
	}
	var b struct {
		Entry []struct {
			Resource struct {
				Entity []struct {
					Query string `json:"query"`
				} `json:"entity"`
			} `json:"resource"`
		} `json:"entry"`
	}
	json.Unmarshal(r.body, &b)
	for _, e := range b.Entry {
		for _, en := range e.Resource.Entity {
			q, _ := base64.StdEncoding.DecodeString(en.Query)
			if strings.Contains(string(q), "export-job="+job) {
				return true
			}
		}
	}
	return false
}
