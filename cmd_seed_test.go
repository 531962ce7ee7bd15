package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmp-fhir/dmp-fhir/api"
	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/internal/ins"
	"github.com/dmp-fhir/dmp-fhir/internal/mongotest"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// TestSeedLoadsEveryDMPCategoryOnceWithItsConsentStates runs `seed` on an
// empty data directory, checks what it stored (counts per DMP category and
// patient, identities, consent settings, validity of every resource), that
// a second run writes nothing, and that the demo's access rules hold over
// HTTP.
//
// On MongoDB it runs when MONGODB_URI names a server: the seed takes about
// three minutes on the in-process FerretDB, against 3 s on SQLite.
func TestSeedLoadsEveryDMPCategoryOnceWithItsConsentStates(t *testing.T) {
	realMongo := os.Getenv(mongotest.EnvURI) != ""
	for _, engine := range []string{"sqlite", "mongodb"} {
		t.Run(engine, func(t *testing.T) {
			if engine == "mongodb" && !realMongo {
				t.Skip("set MONGODB_URI to a MongoDB server to seed it (on the in-process FerretDB the seed takes minutes)")
			}
			testSeed(t, engine)
		})
	}
}

func testSeed(t *testing.T, engine string) {
	dir := t.TempDir()
	if engine == "mongodb" {
		uri, db := mongotest.Start(t), mongotest.Database(t)
		t.Setenv("MONGODB_URI", uri)
		t.Setenv("DMP_MONGODB_DATABASE", db)
	} else {
		t.Setenv("MONGODB_URI", "")
	}
	c, err := loadConfig("test", []string{"--data-dir", dir}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run([]string{"seed", "--data-dir", dir}, &out, io.Discard); err != nil {
		t.Fatalf("seed: %v\n%s", err, out.String())
	}
	for _, p := range seedPatients {
		if !strings.Contains(out.String(), p.nir) {
			t.Errorf("the table does not show %s's NIR %s:\n%s", p.name(), p.nir, out.String())
		}
	}
	if !strings.Contains(out.String(), "go run . token practitioner --idnps 810002345675 --profession 10") {
		t.Errorf("the output does not give the médecin traitant's token command:\n%s", out.String())
	}

	ctx := context.Background()
	st, err := openStore(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	found, err := seedFind(ctx, st)
	if err != nil || len(found) != len(seedPatients) {
		t.Fatalf("demo DMPs found after the seed: %d (%v), want %d", len(found), err, len(seedPatients))
	}
	byID := map[string]string{} // patient id -> demo key
	for key, f := range found {
		byID[f.patient] = key
	}

	t.Run("every DMP category for every patient", func(t *testing.T) {
		got := map[string]map[string]int{}
		count := func(patient, category string) {
			key := byID[patient]
			if key == "" {
				t.Errorf("a %s resource belongs to no demo patient (%q)", category, patient)
				return
			}
			if got[key] == nil {
				got[key] = map[string]int{}
			}
			got[key][category]++
		}
		for _, typ := range []string{"MedicationRequest", "DocumentReference", "DiagnosticReport", "Observation", "ImagingStudy",
			"AllergyIntolerance", "Condition", "Procedure", "Immunization", "ExplanationOfBenefit"} {
			for _, r := range seedAll(t, st, typ) {
				var res struct {
					Subject, Patient struct{ Reference string }
					Type             struct{ Coding []struct{ Code string } }
					Code             struct{ Coding []struct{ Code string } }
					Category         json.RawMessage
				}
				json.Unmarshal(r.Body, &res)
				patient := strings.TrimPrefix(res.Subject.Reference+res.Patient.Reference, "Patient/")
				category := typ
				switch typ {
				case "DocumentReference":
					category = "DocumentReference " + res.Type.Coding[0].Code
					if res.Type.Coding[0].Code != "57833-6" {
						category = "DocumentReference report"
					}
				case "DiagnosticReport":
					category = "DiagnosticReport " + res.Code.Coding[0].Code
				case "Observation":
					category = "Observation laboratory"
					if strings.Contains(string(res.Category), `"vital-signs"`) {
						category = "Observation vital-signs"
					}
				}
				count(patient, category)
			}
		}
		// What each patient's record holds, per DMP category (DOMAIN.md §3).
		want := map[string]map[string]int{
			"santoni": {"MedicationRequest": 4, "DocumentReference 57833-6": 1, "DocumentReference report": 4, "DiagnosticReport 11502-2": 1, "Observation laboratory": 6,
				"DiagnosticReport 18748-4": 1, "ImagingStudy": 1, "AllergyIntolerance": 1, "Condition": 3, "Procedure": 1, "Immunization": 2, "ExplanationOfBenefit": 2, "Observation vital-signs": 5},
			"lefevre": {"MedicationRequest": 2, "DocumentReference 57833-6": 1, "DocumentReference report": 3, "DiagnosticReport 11502-2": 1, "Observation laboratory": 5,
				"DiagnosticReport 18748-4": 1, "ImagingStudy": 1, "AllergyIntolerance": 2, "Condition": 2, "Procedure": 1, "Immunization": 2, "ExplanationOfBenefit": 2, "Observation vital-signs": 5},
			"moreau": {"MedicationRequest": 3, "DocumentReference 57833-6": 1, "DocumentReference report": 2, "DiagnosticReport 11502-2": 1, "Observation laboratory": 4,
				"DiagnosticReport 18748-4": 1, "ImagingStudy": 1, "AllergyIntolerance": 1, "Condition": 2, "Procedure": 1, "Immunization": 3, "ExplanationOfBenefit": 2, "Observation vital-signs": 5},
			"benali": {"MedicationRequest": 2, "DocumentReference 57833-6": 1, "DocumentReference report": 5, "DiagnosticReport 11502-2": 1, "Observation laboratory": 4,
				"DiagnosticReport 18748-4": 1, "ImagingStudy": 1, "AllergyIntolerance": 1, "Condition": 3, "Procedure": 1, "Immunization": 2, "ExplanationOfBenefit": 2, "Observation vital-signs": 5},
			"girard": {"MedicationRequest": 4, "DocumentReference 57833-6": 1, "DocumentReference report": 3, "DiagnosticReport 11502-2": 1, "Observation laboratory": 5,
				"DiagnosticReport 18748-4": 1, "ImagingStudy": 1, "AllergyIntolerance": 1, "Condition": 4, "Procedure": 1, "Immunization": 2, "ExplanationOfBenefit": 2, "Observation vital-signs": 4},
		}
		for key, categories := range want {
			for category, n := range categories {
				if got[key][category] != n {
					t.Errorf("%s: %d %s, want %d", key, got[key][category], category, n)
				}
			}
			if len(got[key]) != len(categories) {
				t.Errorf("%s: categories %v, want %v", key, got[key], categories)
			}
		}
		for typ, n := range map[string]int{"Patient": 5, "Consent": 5, "Practitioner": 5, "PractitionerRole": 5, "Organization": 5, "Binary": 5} {
			if got := len(seedAll(t, st, typ)); got != n {
				t.Errorf("%d %s, want %d", got, typ, n)
			}
		}
	})

	t.Run("identities, professionals and consent settings", func(t *testing.T) {
		corsica := 0
		for _, p := range seedPatients {
			f := found[p.key]
			r, err := st.Read(ctx, "Patient", f.patient)
			if err != nil {
				t.Fatal(err)
			}
			var pt struct {
				Identifier []struct{ System, Value string }
				Active     bool
			}
			json.Unmarshal(r.Body, &pt)
			if len(pt.Identifier) != 1 || pt.Identifier[0].System != ins.SystemTest || pt.Identifier[0].Value != p.nir {
				t.Errorf("%s: identifier %+v, want %s|%s", p.name(), pt.Identifier, ins.SystemTest, p.nir)
			}
			if err := ins.Validate(p.nir); err != nil || p.nir == "283052A12345681" {
				t.Errorf("%s: NIR %s: %v (and it must not be the README walkthrough's)", p.name(), p.nir, err)
			}
			if p.nir[5] == '2' && (p.nir[6] == 'A' || p.nir[6] == 'B') {
				corsica++
			}
			if pt.Active != (p.closeReason == "") {
				t.Errorf("%s: active %v", p.name(), pt.Active)
			}
			desk := "system/assurance-maladie"
			if p.desk != "cnam" {
				desk = "practitioner/" + proByKey(p.desk).idnps
			}
			if author := seedAuthorOf(r.Body); author != desk {
				t.Errorf("%s: DMP created by %q, want the desk %s", p.name(), author, p.desk)
			}
		}
		if corsica == 0 {
			t.Error("no demo patient born in Corsica (2A or 2B)")
		}
		for _, p := range seedPros {
			r, err := st.Read(ctx, "Practitioner", p.idnps)
			if err != nil {
				t.Fatal(err)
			}
			var pr struct {
				Identifier []struct{ System, Value string }
			}
			json.Unmarshal(r.Body, &pr)
			if len(pr.Identifier) == 0 || pr.Identifier[0].System != "urn:oid:1.2.250.1.71.4.2.1" || pr.Identifier[0].Value != p.idnps {
				t.Errorf("Practitioner/%s: identifiers %+v, want the idNatPs first", p.idnps, pr.Identifier)
			}
		}
		policy := func(key string) *auth.Policy {
			r, err := st.Read(ctx, "Consent", auth.PolicyID(found[key].patient))
			if err != nil {
				t.Fatal(err)
			}
			p, err := auth.ParsePolicy(r.Body)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		durand, roux, lambert, lemaire := proByKey("durand").idnps, proByKey("roux").idnps, proByKey("lambert").idnps, proByKey("lemaire").idnps
		now := time.Now()
		for _, c := range []struct {
			name string
			ok   bool
		}{
			{"Durand is every patient's médecin traitant", policy("santoni").IsTreatingDoctor(durand) && policy("lefevre").IsTreatingDoctor(durand) &&
				policy("moreau").IsTreatingDoctor(durand) && policy("benali").IsTreatingDoctor(durand) && policy("girard").IsTreatingDoctor(durand)},
			{"Santoni authorized Roux", auth.AuthorizationStatus(policy("santoni"), roux, now) == "VALIDE"},
			{"Santoni blocked Lemaire", auth.AuthorizationStatus(policy("santoni"), lemaire, now) == "INTERDIT"},
			{"Lambert's authorization by Lefèvre expired", auth.AuthorizationStatus(policy("lefevre"), lambert, now) == "EXPIRE"},
			{"Lefèvre denies MASKED", !policy("lefevre").Emergency.MASKED && policy("lefevre").Emergency.BTG},
			{"Benali denies BTG", !policy("benali").Emergency.BTG && policy("benali").Emergency.ETREAT},
		} {
			if !c.ok {
				t.Error(c.name + ": not so in the stored policy")
			}
		}
	})

	t.Run("every seeded resource validates", func(t *testing.T) {
		v, err := fhir.NewValidator()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, typ := range []string{"Patient", "Consent", "Practitioner", "PractitionerRole", "Organization", "MedicationRequest", "DocumentReference", "Binary",
			"DiagnosticReport", "Observation", "ImagingStudy", "AllergyIntolerance", "Condition", "Procedure", "Immunization", "ExplanationOfBenefit", "AuditEvent"} {
			for _, r := range seedAll(t, st, typ) {
				n++
				if err := v.Validate(r.Body); err != nil {
					t.Errorf("%s/%s: %v", typ, r.ID, err)
				}
			}
		}
		if n < 170 {
			t.Errorf("only %d resources validated", n)
		}
	})

	before := seedSnapshot(t, st)
	outbox, _ := os.ReadFile(filepath.Join(dir, "outbox.jsonl"))
	st.Close()

	t.Run("a second run changes nothing", func(t *testing.T) {
		var again bytes.Buffer
		if err := run([]string{"seed", "--data-dir", dir}, &again, io.Discard); err != nil {
			t.Fatalf("second seed: %v", err)
		}
		if !strings.Contains(again.String(), "already loaded (5 of 5 demo DMPs exist): nothing was written") {
			t.Errorf("second seed said:\n%s", again.String())
		}
		st2, err := openStore(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		defer st2.Close()
		if after := seedSnapshot(t, st2); after != before {
			t.Errorf("the second run changed the store")
		}
		if outbox2, _ := os.ReadFile(filepath.Join(dir, "outbox.jsonl")); !bytes.Equal(outbox, outbox2) {
			t.Errorf("the second run notified patients again")
		}
	})

	t.Run("the demo's access rules over HTTP", func(t *testing.T) {
		st, err := openStore(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		v, _ := fhir.NewValidator()
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		access, closeAccess, err := openAccess(ctx, c, st, log, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer closeAccess()
		h := api.New(api.Config{InlineMaxBytes: c.InlineMaxBytes, Logger: log, Auth: access}, st, v)
		defer h.Close() // its export jobs stop before the audit writer and the store close
		token := func(cl auth.Claims) string {
			cl.Scope = "user/*.cruds"
			if cl.Kind == auth.KindPatient {
				cl.Scope = "patient/*.rs"
			}
			tok, err := access.Key.Issue(cl, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		pro := func(key, mode, reason string) string {
			p := proByKey(key)
			return token(auth.Claims{Kind: auth.KindPractitioner, IDNatPs: p.idnps, Profession: p.profession, Regulator: p.regulator, AccessMode: mode, AccessReason: reason})
		}
		get := func(tok, path string) (int, string) {
			req := httptest.NewRequest("GET", "/fhir/"+path, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec.Code, rec.Body.String()
		}
		for _, c := range []struct {
			name, token, path string
			status            int
			contains          string
		}{
			{"the médecin traitant reads the document the patient masked", pro("durand", "", ""), "DocumentReference/santoni-cr-addictologie-2026-06-15", 200, `"code":"MASQUE_PS"`},
			{"the professional the patient blocked is refused it", pro("lemaire", "", ""), "DocumentReference/santoni-cr-addictologie-2026-06-15", 403, "blocked"},
			{"the blocked professional is refused the rest of the record too", pro("lemaire", "", ""), "Condition?patient=" + found["santoni"].patient, 403, "blocked"},
			{"the pharmacist the patient authorized reads his lab results", pro("roux", "", ""), "Observation/santoni-bilan-2026-09-28-hba1c", 200, `"code":"4548-4"`},
			{"but not the masked document", pro("roux", "", ""), "DocumentReference/santoni-cr-addictologie-2026-06-15", 403, "masked"},
			{"a closed DMP answers 409 to its médecin traitant", pro("durand", "", ""), "Condition/girard-insuffisance-cardiaque", 409, "closed"},
			{"and to a search of it", pro("durand", "", ""), "MedicationRequest?patient=" + found["girard"].patient, 409, "closed"},
			{"an expired authorization no longer opens the record", pro("lambert", "", ""), "DocumentReference/lefevre-cr-consultation-2026-09-15", 403, "authorization-expired"},
			{"the patient does not see the report kept from her", token(auth.Claims{Kind: auth.KindPatient, Patient: found["lefevre"].patient}), "DocumentReference/lefevre-cr-anapath-2026-10-02", 403, "invisible-to-patient"},
			{"her médecin traitant does", pro("durand", "", ""), "DocumentReference/lefevre-cr-anapath-2026-10-02", 200, `"code":"INVISIBLE_PATIENT"`},
			{"the SAMU regulator reads a child's allergy (centre 15)", pro("haddad", auth.ModeCentre15, ""), "AllergyIntolerance/moreau-arachide", 200, "Anaphylaxie"},
			{"breaking the glass is refused when the patient opposed it", pro("haddad", auth.ModeBrisDeGlace, "patiente inconsciente"), "Condition/benali-migraine", 403, "emergency-opposed"},
			{"the replaced discharge letter is superseded", pro("durand", "", ""), "DocumentReference/benali-lettre-liaison-2019-03-19", 200, `"status":"superseded"`},
			{"the archived consultation carries PDSm's flag", pro("durand", "", ""), "DocumentReference/benali-cr-consultation-2023-02-14", 200, api.ArchivedExtension},
			{"default searches leave the archived consultation out", pro("durand", "", ""), "DocumentReference?patient=" + found["benali"].patient + "&_elements=id", 200, "benali-lettre-liaison-2019-03-19-v2"},
			{"archived=true finds it", pro("durand", "", ""), "DocumentReference?patient=" + found["benali"].patient + "&archived=true&_elements=id", 200, "benali-cr-consultation-2023-02-14"},
			{"a hospital report's PDF is read through its document's consent", pro("durand", "", ""), "Binary/santoni-cr-operatoire-2023-05-16-pdf", 200, "%PDF-1.4"},
		} {
			status, body := get(c.token, c.path)
			if status != c.status || !strings.Contains(body, c.contains) {
				t.Errorf("%s: GET %s: %d, want %d with %q\n%.400s", c.name, c.path, status, c.status, c.contains, body)
			}
		}
		if _, body := get(pro("durand", "", ""), "DocumentReference?patient="+found["benali"].patient+"&_elements=id"); strings.Contains(body, "benali-cr-consultation-2023-02-14") {
			t.Error("the archived consultation is in a default search")
		}
		if _, pdf := get(pro("durand", "", ""), "Binary/santoni-cr-operatoire-2023-05-16-pdf"); !strings.HasSuffix(pdf, "%%EOF\n") {
			t.Errorf("the Binary is not a whole PDF: %.40q", pdf)
		}
	})
}

// seedAll returns every current resource of a type.
func seedAll(t *testing.T, st store.Store, typ string) []*store.Resource {
	t.Helper()
	var all []*store.Resource
	q := store.Query{Type: typ, Count: 500}
	for {
		page, err := st.Search(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Resources...)
		if page.Next == "" {
			return all
		}
		q.After = page.Next
	}
}

// seedSnapshot lists every version in the store (its whole history).
func seedSnapshot(t *testing.T, st store.Store) string {
	t.Helper()
	var b strings.Builder
	q := store.HistoryQuery{Count: 1000}
	for {
		list, err := st.History(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range list {
			fmt.Fprintf(&b, "%s/%s/%d %s\n", r.Type, r.ID, r.Version, r.LastUpdated.Format(time.RFC3339Nano))
		}
		if len(list) < q.Count {
			return b.String()
		}
		k := list[len(list)-1].Key()
		q.After = &k
	}
}

func seedAuthorOf(body []byte) string {
	var r struct {
		Meta struct {
			Extension []struct{ URL, ValueString string }
		}
	}
	json.Unmarshal(body, &r)
	for _, e := range r.Meta.Extension {
		if e.URL == api.AuthorExtension {
			return e.ValueString
		}
	}
	return ""
}

// TestSeedTimesAreParisTime checks the offsets of the demo's dates around
// the changes of time.
func TestSeedTimesAreParisTime(t *testing.T) {
	for local, want := range map[string]string{
		"2026-03-29 01:59": "2026-03-29T01:59:00+01:00",
		"2026-03-29 03:00": "2026-03-29T03:00:00+02:00",
		"2026-10-06 09:30": "2026-10-06T09:30:00+02:00",
		"2026-10-25 03:30": "2026-10-25T03:30:00+01:00",
		"2026-11-20 10:00": "2026-11-20T10:00:00+01:00",
	} {
		if got := seedTime(local); got != want {
			t.Errorf("seedTime(%s) = %s, want %s", local, got, want)
		}
	}
}

// TestSeedRefusesWhileAServerHoldsTheDataDirectory: the seed says to stop
// the server instead of waiting for the audit journal's lock.
func TestSeedRefusesWhileAServerHoldsTheDataDirectory(t *testing.T) {
	t.Setenv("MONGODB_URI", "")
	dir := t.TempDir()
	cmd, _, _ := startServer(t, dir)
	err := run([]string{"seed", "--data-dir", dir}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("a dmp-fhir server (pid %d) is running on the data directory", cmd.Process.Pid)) {
		t.Fatalf("seed with a server running: %v", err)
	}
}
