package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/store"
	"github.com/dmp-fhir/dmp-fhir/store/sqlite"
)

// auditTestAccesses are the kinds of accesses the server records.
func auditTestAccesses() map[string]Access {
	at := time.Date(2024, 3, 1, 10, 30, 0, 123e6, time.FixedZone("CET", 3600))
	return map[string]Access{
		"practitioner read": {
			Time: at, Action: "R", Interaction: "read", Outcome: AuditSuccess,
			CallerKind: AuditCallerPractitioner, CallerID: "810003461033", CallerName: "Dr Jean Martin",
			Organization: "750712184", AccessMode: "normal",
			PatientIDs: []string{"p1"}, Resources: []string{"DocumentReference/d1"},
			SourceAddr: "192.0.2.10:51234", RequestID: "req-1",
		},
		"practitioner search": {
			Time: at, Action: "E", Interaction: "search-type", Outcome: AuditSuccess,
			CallerKind: AuditCallerPractitioner, CallerID: "810003461033",
			PatientIDs: []string{"Patient/p1"},
			Resources:  []string{"Observation/o1", "Observation/o2", "Patient/p1"},
			Query:      "?patient=p1&_sort=-date&access_token=SECRET", SourceAddr: "2001:db8::1",
		},
		"bris de glace": {
			Time: at, Action: "R", Interaction: "search-type", Outcome: AuditSuccess,
			CallerKind: AuditCallerPractitioner, CallerID: "810003461033", CallerName: "Dr Jean Martin",
			AccessMode: "bris_de_glace", Reason: "patient inconscient, urgence vitale",
			PatientIDs: []string{"p1"},
		},
		"centre 15": {
			Time: at, Action: "R", Interaction: "read", Outcome: AuditSuccess,
			CallerKind: AuditCallerPractitioner, CallerID: "810000000001", AccessMode: "centre_15",
			PatientIDs: []string{"p1"}, Resources: []string{"AllergyIntolerance/a1"},
		},
		"refused": {
			Time: at, Action: "R", Interaction: "read", Outcome: AuditMinorFailure, OutcomeDesc: "blocked",
			CallerKind: AuditCallerPractitioner, CallerID: "810003461033", PatientIDs: []string{"p1"},
		},
		"unknown mode": {
			Time: at, Action: "R", Interaction: "read", Outcome: AuditMinorFailure, OutcomeDesc: "unknown-access-mode",
			CallerKind: AuditCallerPractitioner, CallerID: "810003461033", AccessMode: "vip", PatientIDs: []string{"p1"},
		},
		"patient reads own record": {
			Time: at, Action: "R", Interaction: "search-type", Outcome: AuditSuccess,
			CallerKind: AuditCallerPatient, CallerID: "p1", CallerName: "Hélène Dupont",
			PatientIDs: []string{"p1"}, Resources: []string{"Condition/c1"}, Query: "patient=p1",
		},
		"patient consent change": {
			Action: "U", Interaction: "update", Outcome: AuditSuccess,
			CallerKind: AuditCallerPatient, CallerID: "Patient/p1",
			PatientIDs: []string{"p1"}, Resources: []string{"Consent/dmp-p1"},
		},
		"system transaction": {
			Time: at, Action: "C", Interaction: "transaction", Outcome: AuditSuccess,
			CallerKind: AuditCallerSystem, CallerID: "hopital-sih", CallerName: "SIH Hôpital",
			Organization: "750712184", PatientIDs: []string{"p1", "p2"},
			Resources: []string{"Encounter/e1", "Observation/o9"},
		},
		"anonymous refused": {
			Time: at, Action: "R", Interaction: "read", Outcome: AuditMinorFailure, OutcomeDesc: "no token",
			SourceAddr: "198.51.100.7",
		},
		"messy input": {
			Time: at, Action: "R", Interaction: "read", Outcome: AuditMinorFailure,
			OutcomeDesc: strings.Repeat("règle é", 400), CallerKind: AuditCallerPractitioner,
			CallerID: " ", CallerName: "\x00\x01", Organization: "  ", RequestID: "\n",
			Reason: "  \t ", SourceAddr: "client.example.org:443", Query: "&&access_token=x&",
		},
		"server error": {
			Time: at, Action: "C", Interaction: "create", Outcome: AuditSeriousFailure,
			CallerKind: AuditCallerSystem, CallerID: "hopital-sih",
		},
	}
}

// buildAuditEvent is the AuditEvent JSON that Record journals for ev.
func buildAuditEvent(ev Access, maxResources int) ([]byte, error) {
	ae, err := newAuditEvent(ev, maxResources)
	if err != nil {
		return nil, err
	}
	return json.Marshal(ae)
}

func TestAuditEventIsValidR4(t *testing.T) {
	v, err := fhir.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	for name, ev := range auditTestAccesses() {
		t.Run(name, func(t *testing.T) {
			body, err := buildAuditEvent(ev, 100)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Validate(body); err != nil {
				t.Fatalf("invalid AuditEvent: %v\n%s", err, body)
			}
			if !strings.HasPrefix(string(body), `{"resourceType":"AuditEvent",`) {
				t.Errorf("resourceType is not first: %.60s", body)
			}
			var ae map[string]any
			if err := json.Unmarshal(body, &ae); err != nil {
				t.Fatal(err)
			}
			// R4 cardinalities the schema validator does not check: type,
			// recorded, source.observer 1..1, agent 1..*, agent.requestor 1..1.
			for _, k := range []string{"type", "recorded", "source", "agent", "action", "outcome"} {
				if ae[k] == nil {
					t.Errorf("no %s", k)
				}
			}
			for _, a := range ae["agent"].([]any) {
				if _, ok := a.(map[string]any)["requestor"].(bool); !ok {
					t.Error("an agent without requestor")
				}
			}
			// TDE profile: subtype ..1, period.start 1.., agent ..2, agent.who 1..
			if s, _ := ae["subtype"].([]any); len(s) > 1 {
				t.Errorf("%d subtypes", len(s))
			}
			if p, _ := ae["period"].(map[string]any); p["start"] == nil {
				t.Error("no period.start")
			}
			agents, _ := ae["agent"].([]any)
			if len(agents) == 0 || len(agents) > 2 {
				t.Errorf("%d agents", len(agents))
			}
			for _, a := range agents {
				if a.(map[string]any)["who"] == nil {
					t.Error("an agent without who")
				}
			}
			if obs := ae["source"].(map[string]any)["observer"].(map[string]any); obs["display"] != "dmp-fhir" {
				t.Errorf("source.observer %v", obs)
			}
			if !ev.Time.IsZero() && ae["recorded"] != ev.Time.UTC().Format(fhir.InstantFormat) {
				t.Errorf("recorded %v", ae["recorded"])
			}

			// The `patient` search parameter finds every patient reached.
			want := map[string]bool{}
			for _, p := range ev.PatientIDs {
				want[strings.TrimPrefix(p, "Patient/")] = true
			}
			if ev.CallerKind == AuditCallerPatient {
				want[strings.TrimPrefix(ev.CallerID, "Patient/")] = true
			}
			got := map[string]bool{}
			for _, r := range fhir.ExtractIndex(body).References {
				if r.Param == "patient" {
					if r.Type != "Patient" {
						t.Errorf("patient index %+v", r)
					}
					got[r.ID] = true
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("patient index %v, want %v", got, want)
			}
		})
	}
}

func TestAuditEventContent(t *testing.T) {
	evs := auditTestAccesses()
	decode := func(t *testing.T, ev Access) (map[string]any, string) {
		t.Helper()
		body, err := buildAuditEvent(ev, 100)
		if err != nil {
			t.Fatal(err)
		}
		var ae map[string]any
		if err := json.Unmarshal(body, &ae); err != nil {
			t.Fatal(err)
		}
		return ae, string(body)
	}

	t.Run("practitioner", func(t *testing.T) {
		ae, body := decode(t, evs["practitioner read"])
		agent := ae["agent"].([]any)[0].(map[string]any)
		who := agent["who"].(map[string]any)
		id := who["identifier"].(map[string]any)
		if id["system"] != "urn:oid:1.2.250.1.71.4.2.1" || id["value"] != "810003461033" || agent["altId"] != "810003461033" {
			t.Errorf("practitioner agent %v", agent)
		}
		if agent["requestor"] != true {
			t.Error("caller is not the requestor")
		}
		if nw := agent["network"].(map[string]any); nw["address"] != "192.0.2.10" || nw["type"] != "2" {
			t.Errorf("network %v", nw)
		}
		org := ae["agent"].([]any)[1].(map[string]any)["who"].(map[string]any)["identifier"].(map[string]any)
		if org["system"] != "https://finess.esante.gouv.fr" || org["value"] != "750712184" {
			t.Errorf("organization %v", org)
		}
		for _, want := range []string{
			`"code":"normal"`, `"code":"TREAT"`, `"subtype":[{"system":"http://hl7.org/fhir/restful-interaction","code":"read"`,
			`"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest"`,
			`{"what":{"reference":"Patient/p1"},"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"1"`,
			`{"what":{"reference":"DocumentReference/d1"}`, `"XrequestId"`, `"value":"req-1"`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("no %s in %s", want, body)
			}
		}
	})

	t.Run("emergency modes", func(t *testing.T) {
		_, body := decode(t, evs["bris de glace"])
		for _, want := range []string{
			`"system":"https://mos.esante.gouv.fr/NOS/TRE_R248-ModeAcces/FHIR/TRE-R248-ModeAcces","code":"bris_de_glace"`,
			`"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"BTG"`,
			`"text":"patient inconscient, urgence vitale"`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("no %s in %s", want, body)
			}
		}
		_, body = decode(t, evs["centre 15"])
		if !strings.Contains(body, `"code":"centre_15"`) || !strings.Contains(body, `"code":"ETREAT"`) {
			t.Errorf("centre 15 purpose: %s", body)
		}
		_, body = decode(t, evs["unknown mode"])
		if !strings.Contains(body, `"text":"unknown access mode: vip"`) || strings.Contains(body, `"code":"vip"`) {
			t.Errorf("unknown mode purpose: %s", body)
		}
	})

	t.Run("query without secrets", func(t *testing.T) {
		ae, body := decode(t, evs["practitioner search"])
		if strings.Contains(body, "SECRET") {
			t.Fatalf("token in AuditEvent: %s", body)
		}
		var q string
		for _, e := range ae["entity"].([]any) {
			if s, ok := e.(map[string]any)["query"].(string); ok {
				b, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					t.Fatal(err)
				}
				q = string(b)
			}
		}
		if q != "patient=p1&_sort=-date" {
			t.Errorf("query %q", q)
		}
		if n := strings.Count(body, `"reference":"Patient/p1"`); n != 1 {
			t.Errorf("Patient/p1 listed %d times", n)
		}
	})

	t.Run("patient caller: reference only, no name", func(t *testing.T) {
		ae, body := decode(t, evs["patient reads own record"])
		if strings.Contains(body, "Hélène") || strings.Contains(body, "Dupont") {
			t.Fatalf("patient name in AuditEvent: %s", body)
		}
		who := ae["agent"].([]any)[0].(map[string]any)["who"].(map[string]any)
		if who["reference"] != "Patient/p1" {
			t.Errorf("patient agent %v", who)
		}
		if ae["purposeOfEvent"] != nil {
			t.Errorf("purposeOfEvent for a patient: %v", ae["purposeOfEvent"])
		}
	})

	t.Run("anonymous", func(t *testing.T) {
		ae, _ := decode(t, evs["anonymous refused"])
		agent := ae["agent"].([]any)[0].(map[string]any)
		if agent["who"].(map[string]any)["display"] != "anonymous" || ae["outcome"] != "4" || ae["outcomeDesc"] != "no token" {
			t.Errorf("anonymous %v", ae)
		}
	})

	t.Run("resources capped", func(t *testing.T) {
		ev := evs["practitioner search"]
		ev.Resources = nil
		for i := range 150 {
			ev.Resources = append(ev.Resources, fmt.Sprintf("Observation/o%d", i))
		}
		ae, body := decode(t, ev)
		listed := strings.Count(body, `"reference":"Observation/`)
		if listed != 100 {
			t.Errorf("%d resources listed, want 100", listed)
		}
		found := false
		for _, e := range ae["entity"].([]any) {
			if d, ok := e.(map[string]any)["description"]; ok {
				found = d == "50 more resources, not listed"
			}
		}
		if !found {
			t.Errorf("no count of the resources left out: %s", body)
		}
		v, err := fhir.NewValidator()
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Validate([]byte(body)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("time defaults to now", func(t *testing.T) {
		before := time.Now().Add(-time.Second)
		ae, _ := decode(t, evs["patient consent change"])
		rec, err := time.Parse(time.RFC3339, ae["recorded"].(string))
		if err != nil || rec.Before(before) || rec.After(time.Now().Add(time.Second)) {
			t.Errorf("recorded %v (%v)", ae["recorded"], err)
		}
	})
}

func TestAuditEventRefusesMalformedAccess(t *testing.T) {
	ok := Access{Action: "R", Interaction: "read", Outcome: "0", CallerKind: AuditCallerPractitioner, CallerID: "8123"}
	if _, err := buildAuditEvent(ok, 100); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*Access){
		"action":        func(a *Access) { a.Action = "X" },
		"no action":     func(a *Access) { a.Action = "" },
		"outcome":       func(a *Access) { a.Outcome = "200" },
		"caller kind":   func(a *Access) { a.CallerKind = "admin" },
		"patient id":    func(a *Access) { a.PatientIDs = []string{"p 1"} },
		"resource":      func(a *Access) { a.Resources = []string{"Observation"} },
		"resource id":   func(a *Access) { a.Resources = []string{"Observation/a/b"} },
		"patient agent": func(a *Access) { a.CallerKind, a.CallerID = AuditCallerPatient, "" },
		"interaction":   func(a *Access) { a.Interaction = "read all" },
	} {
		ev := ok
		change(&ev)
		if _, err := buildAuditEvent(ev, 100); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// --- the Auditor against a real engine --------------------------------------

func auditTestSQLite(t testing.TB) store.Store {
	t.Helper()
	st, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func auditTestQuiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// auditTestCount returns how many AuditEvents the `patient` search finds.
func auditTestCount(t *testing.T, st store.Store, patient string) int {
	t.Helper()
	q := store.Query{Type: "AuditEvent", Count: 0, Total: true}
	if patient != "" {
		q.Where = []store.Clause{{Any: []store.Condition{{Param: "patient", Kind: store.KindReference, RefType: "Patient", RefID: patient}}}}
	}
	page, err := st.Search(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return page.Total
}

func auditTestAccess(patient string) Access {
	return Access{
		Action: "R", Interaction: "read", Outcome: AuditSuccess,
		CallerKind: AuditCallerPractitioner, CallerID: "810003461033", AccessMode: "normal",
		PatientIDs: []string{patient}, Resources: []string{"Observation/o-" + patient},
		SourceAddr: "192.0.2.1", RequestID: "r-" + patient,
	}
}

// TestAuditorGroupCommit: concurrent Records share transactions, and every
// Record that returned nil is in the store, found by the patient it names.
func TestAuditorGroupCommit(t *testing.T) {
	st := auditTestSQLite(t)
	a := NewAuditor(st, AuditorOptions{Logger: auditTestQuiet()})
	const workers, each = 32, 40
	var wg sync.WaitGroup
	var okCount atomic.Int64
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := a.Record(context.Background(), auditTestAccess(fmt.Sprintf("p-%d-%d", w, i))); err != nil {
					errs <- err
					continue
				}
				okCount.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s := a.Stats()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events in %d batches (average %.1f, largest %d)", s.Events, s.Batches, float64(s.Events)/float64(s.Batches), s.MaxBatch)
	if s.Events != workers*each || okCount.Load() != workers*each {
		t.Fatalf("stats %+v, %d ok", s, okCount.Load())
	}
	if s.Batches >= s.Events || s.MaxBatch < 2 {
		t.Errorf("no group commit: %+v", s)
	}
	if s.OneByOne || s.Failed != 0 || s.QueueDepth != 0 {
		t.Errorf("stats %+v", s)
	}
	// Every acknowledged event is stored, once, and the patient search finds it.
	if n := auditTestCount(t, st, ""); n != workers*each {
		t.Errorf("%d AuditEvents stored, want %d", n, workers*each)
	}
	for w := range workers {
		for i := range each {
			if n := auditTestCount(t, st, fmt.Sprintf("p-%d-%d", w, i)); n != 1 {
				t.Fatalf("patient p-%d-%d: %d AuditEvents", w, i, n)
			}
		}
	}
	// And what is stored is a valid AuditEvent.
	page, err := st.Search(context.Background(), store.Query{Type: "AuditEvent", Count: 1})
	if err != nil || len(page.Resources) != 1 {
		t.Fatalf("search: %v", err)
	}
	v, err := fhir.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(page.Resources[0].Body); err != nil {
		t.Errorf("stored AuditEvent: %v", err)
	}
	if err := a.Record(context.Background(), auditTestAccess("late")); !errors.Is(err, ErrAuditorClosed) {
		t.Errorf("Record after Close: %v", err)
	}
}

// auditTestStore wraps an engine to simulate other servers and failures.
type auditTestStore struct {
	store.Store
	noTxInfo bool
	tx       func(ctx context.Context, fn func(store.Ops) error) error
	create   func(ctx context.Context, typ, id string, body []byte) (*store.Resource, error)
	txCalls  atomic.Int64
}

func (s *auditTestStore) Info() store.Info {
	i := s.Store.Info()
	if s.noTxInfo {
		i.Transactions = false
	}
	return i
}

func (s *auditTestStore) Transaction(ctx context.Context, fn func(store.Ops) error) error {
	s.txCalls.Add(1)
	if s.tx != nil {
		return s.tx(ctx, fn)
	}
	return s.Store.Transaction(ctx, fn)
}

func (s *auditTestStore) Create(ctx context.Context, typ, id string, body []byte) (*store.Resource, error) {
	if s.create != nil {
		return s.create(ctx, typ, id, body)
	}
	return s.Store.Create(ctx, typ, id, body)
}

func auditTestRecordMany(t *testing.T, a *Auditor, prefix string, n int) []error {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = a.Record(context.Background(), auditTestAccess(fmt.Sprintf("%s%d", prefix, i))) })
	}
	wg.Wait()
	return errs
}

// Without transactions (standalone MongoDB, FerretDB) each event is written
// alone, and acknowledged once written.
func TestAuditorWithoutTransactions(t *testing.T) {
	for _, detected := range []bool{true, false} {
		t.Run(fmt.Sprintf("announced=%v", detected), func(t *testing.T) {
			real := auditTestSQLite(t)
			st := &auditTestStore{Store: real, noTxInfo: detected,
				tx: func(context.Context, func(store.Ops) error) error { return store.ErrNoTransactions }}
			a := NewAuditor(st, AuditorOptions{Logger: auditTestQuiet()})
			for i, err := range auditTestRecordMany(t, a, "n", 50) {
				if err != nil {
					t.Errorf("event %d: %v", i, err)
				}
			}
			a.Close()
			s := a.Stats()
			if !s.OneByOne || s.Events != 50 {
				t.Errorf("stats %+v", s)
			}
			if detected && st.txCalls.Load() != 0 {
				t.Errorf("%d transactions tried on a store without them", st.txCalls.Load())
			}
			if !detected && st.txCalls.Load() != 1 {
				t.Errorf("%d transactions tried, want 1 then one by one", st.txCalls.Load())
			}
			if n := auditTestCount(t, real, ""); n != 50 {
				t.Errorf("%d stored", n)
			}
		})
	}
}

// A transaction whose commit reply was lost (it did commit) is retried
// event by event; the events already stored are recognized by their id.
func TestAuditorLostCommit(t *testing.T) {
	real := auditTestSQLite(t)
	st := &auditTestStore{Store: real}
	st.tx = func(ctx context.Context, fn func(store.Ops) error) error {
		if err := real.Transaction(ctx, fn); err != nil {
			return err
		}
		return errors.New("connection reset")
	}
	a := NewAuditor(st, AuditorOptions{Logger: auditTestQuiet()})
	for i, err := range auditTestRecordMany(t, a, "l", 20) {
		if err != nil {
			t.Errorf("event %d: %v", i, err)
		}
	}
	a.Close()
	if n := auditTestCount(t, real, ""); n != 20 {
		t.Errorf("%d stored, want 20", n)
	}
}

// When the store refuses, every waiter gets an error: the HTTP layer will
// not return data it could not audit.
func TestAuditorStoreFailure(t *testing.T) {
	real := auditTestSQLite(t)
	boom := errors.New("disk full")
	st := &auditTestStore{Store: real,
		tx:     func(context.Context, func(store.Ops) error) error { return boom },
		create: func(context.Context, string, string, []byte) (*store.Resource, error) { return nil, boom },
	}
	a := NewAuditor(st, AuditorOptions{Logger: auditTestQuiet()})
	for i, err := range auditTestRecordMany(t, a, "f", 20) {
		if !errors.Is(err, boom) {
			t.Errorf("event %d: %v, want %v", i, err, boom)
		}
	}
	a.Close()
	if s := a.Stats(); s.Failed != 20 || s.Events != 0 {
		t.Errorf("stats %+v", s)
	}

	// One event the store refuses does not fail the others of its batch.
	st2 := &auditTestStore{Store: real}
	st2.tx = func(ctx context.Context, fn func(store.Ops) error) error { return boom }
	st2.create = func(ctx context.Context, typ, id string, body []byte) (*store.Resource, error) {
		if strings.Contains(string(body), "Patient/poison") {
			return nil, boom
		}
		return real.Create(ctx, typ, id, body)
	}
	a2 := NewAuditor(st2, AuditorOptions{Logger: auditTestQuiet()})
	var wg sync.WaitGroup
	var poisonErr error
	wg.Go(func() { poisonErr = a2.Record(context.Background(), auditTestAccess("poison")) })
	for i, err := range auditTestRecordMany(t, a2, "g", 10) {
		if err != nil {
			t.Errorf("event %d: %v", i, err)
		}
	}
	wg.Wait()
	a2.Close()
	if !errors.Is(poisonErr, boom) {
		t.Errorf("poisoned event: %v", poisonErr)
	}
}

// auditTestBlocking wraps an engine whose transactions wait until release
// is closed; entered receives one value per transaction begun.
func auditTestBlocking(t *testing.T) (*auditTestStore, store.Store, chan struct{}, chan struct{}) {
	real := auditTestSQLite(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 100)
	st := &auditTestStore{Store: real}
	st.tx = func(ctx context.Context, fn func(store.Ops) error) error {
		entered <- struct{}{}
		<-release
		return real.Transaction(ctx, fn)
	}
	return st, real, release, entered
}

func TestAuditorMaxBatchAndClose(t *testing.T) {
	st, real, release, entered := auditTestBlocking(t)
	a := NewAuditor(st, AuditorOptions{MaxBatch: 4, Logger: auditTestQuiet()})

	// The first event holds the writer; 20 more queue up behind it.
	var wg sync.WaitGroup
	errs := make([]error, 21)
	wg.Go(func() { errs[0] = a.Record(context.Background(), auditTestAccess("m0")) })
	<-entered
	for i := 1; i < 21; i++ {
		wg.Go(func() { errs[i] = a.Record(context.Background(), auditTestAccess(fmt.Sprintf("m%d", i))) })
	}
	for a.Stats().QueueDepth < 20 {
		time.Sleep(time.Millisecond)
	}
	// Close waits for the queue to be written.
	closed := make(chan struct{})
	go func() { a.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned before the queued events were written")
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	<-closed
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("event %d: %v", i, err)
		}
	}
	s := a.Stats()
	if s.MaxBatch != 4 || s.Batches != 6 || s.Events != 21 {
		t.Errorf("stats %+v, want batches 1+5 of at most 4", s)
	}
	if n := auditTestCount(t, real, ""); n != 21 {
		t.Errorf("%d stored", n)
	}
}

// A Record whose context ends first returns; its event is still written.
func TestAuditorContextDone(t *testing.T) {
	st, real, release, entered := auditTestBlocking(t)
	a := NewAuditor(st, AuditorOptions{Logger: auditTestQuiet()})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	done := make(chan error)
	go func() { done <- a.Record(ctx, auditTestAccess("ctx")) }()
	<-entered
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Record: %v", err)
	}
	close(release)
	a.Close()
	if n := auditTestCount(t, real, "ctx"); n != 1 {
		t.Errorf("%d stored", n)
	}
}

// MaxDelay lets events that arrive close together share a batch even when
// the writer is idle.
func TestAuditorMaxDelay(t *testing.T) {
	st := auditTestSQLite(t)
	// A second: the ten Records must all be queued within it to share
	// one batch, even on a starved CPU.
	const maxDelay = time.Second
	a := NewAuditor(st, AuditorOptions{MaxDelay: maxDelay, Logger: auditTestQuiet()})
	start := time.Now()
	errs := auditTestRecordMany(t, a, "d", 10)
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	s := a.Stats()
	if s.Batches != 1 || s.Events != 10 {
		t.Errorf("stats %+v, want one batch of 10", s)
	}
	if time.Since(start) < maxDelay*3/4 {
		t.Errorf("the writer did not wait for MaxDelay")
	}
}

// BenchmarkAudit: 16 goroutines recording events on the SQLite engine
// (synchronous=FULL): with group commit straight to the store, with one
// store.Create per event, or through the journal (Record waits for the
// journal's fsync; the materializer copies into the store meanwhile).
// "journal" times the Records only and then reports how long the copy of
// what was left took (drain-ms); "journal+materialize" also times that copy,
// which is the rate the journal can sustain.
//
//	go test ./auth/ -run '^$' -bench Audit -benchtime 3s
func BenchmarkAudit(b *testing.B) {
	const workers = 16
	ev := auditTestAccess("bench")
	ev.Time = time.Now()
	run := func(b *testing.B, record func(ctx context.Context, i int64) error, finish func()) {
		var next atomic.Int64
		var wg sync.WaitGroup
		b.ResetTimer()
		for range workers {
			wg.Go(func() {
				for {
					i := next.Add(1)
					if i > int64(b.N) {
						return
					}
					if err := record(context.Background(), i); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if finish != nil {
			finish()
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	}
	for _, delay := range []time.Duration{0, 2 * time.Millisecond} {
		b.Run(fmt.Sprintf("group-commit/delay=%v", delay), func(b *testing.B) {
			st := auditTestSQLite(b)
			a := NewAuditor(st, AuditorOptions{MaxDelay: delay, Logger: auditTestQuiet()})
			defer a.Close()
			run(b, func(ctx context.Context, _ int64) error { return a.Record(ctx, ev) }, nil)
			s := a.Stats()
			b.ReportMetric(float64(s.Events)/float64(max(s.Batches, 1)), "events/batch")
			// One WAL fsync per SQLite commit.
			b.ReportMetric(float64(s.Batches)/float64(max(s.Events, 1)), "fsyncs/event")
		})
	}
	b.Run("one-by-one", func(b *testing.B) {
		st := auditTestSQLite(b)
		run(b, func(ctx context.Context, _ int64) error {
			body, err := buildAuditEvent(ev, 100)
			if err != nil {
				return err
			}
			_, err = st.Create(ctx, "AuditEvent", auditNewID(), body)
			return err
		}, nil)
		b.ReportMetric(1, "events/batch")
		b.ReportMetric(1, "fsyncs/event")
	})
	for _, sustained := range []bool{false, true} {
		name := "journal"
		if sustained {
			name = "journal+materialize"
		}
		b.Run(name, func(b *testing.B) {
			st := auditTestSQLite(b)
			a, err := OpenAuditor(st, AuditorOptions{JournalDir: b.TempDir(), Logger: auditTestQuiet()})
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			materialize := func() {
				if err := a.Materialize(context.Background()); err != nil {
					b.Error(err)
				}
			}
			var finish func()
			if sustained {
				finish = materialize
			}
			run(b, func(ctx context.Context, _ int64) error { return a.Record(ctx, ev) }, finish)
			s := a.Stats()
			b.ReportMetric(float64(s.Events)/float64(max(s.Batches, 1)), "events/batch")
			b.ReportMetric(float64(s.JournalFsyncs)/float64(max(s.Events, 1)), "fsyncs/event")
			if !sustained {
				b.ReportMetric(float64(s.JournalBacklog), "backlog")
				start := time.Now()
				materialize()
				b.ReportMetric(float64(time.Since(start).Milliseconds()), "drain-ms")
			}
			s = a.Stats()
			b.ReportMetric(float64(s.Materialized)/float64(max(s.MaterializeBatches, 1)), "events/copy-tx")
		})
	}
}

// AuditEvent ids are valid FHIR ids that grow with time (the store's
// indexes on them grow at their end) and never repeat.
func TestAuditIDsGrowWithTime(t *testing.T) {
	seen := map[string]bool{}
	for range 10000 {
		id := auditNewID()
		if !auditIsID(id) || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
	first := auditNewID()
	time.Sleep(2 * time.Millisecond)
	if later := auditNewID(); later <= first {
		t.Fatalf("%s, made later, does not sort after %s", later, first)
	}
}

// The index and the stamp the journal hands to the copy into the store are
// what the store would extract from the AuditEvent itself, row for row, and
// stamp on it, byte for byte, for every shape of access: a wrong or missing
// row would make the access trail unsearchable by it, a wrong stamp would
// store a different event (and only for the events this process journaled).
func TestAuditEventIndexAndStampAreWhatTheStoreMakes(t *testing.T) {
	accesses := auditEdgeAccesses()
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	for name, ev := range accesses {
		for _, limit := range []int{100, 2} {
			t.Run(fmt.Sprintf("%s/limit %d", name, limit), func(t *testing.T) {
				ae, err := newAuditEvent(ev, limit)
				if err != nil {
					t.Fatal(err)
				}
				body, err := json.Marshal(ae)
				if err != nil {
					t.Fatal(err)
				}
				stamped, err := fhir.Stamp(body, "ae-1", 1, at)
				if err != nil {
					t.Fatal(err)
				}
				// The journal's copy splices the stamp in (copyContext).
				ahead, err := fhir.PrepareStampOfNew(body, "ae-1", 1)
				if err != nil {
					t.Fatal(err)
				}
				if spliced := ahead.At(at); !bytes.Equal(spliced, stamped) {
					t.Errorf("spliced stamp differs from the store's\n got %s\nwant %s", spliced, stamped)
				}
				want, got := fhir.ExtractIndexOfStamped(stamped), ae.index()
				if len(want.Tokens)+len(want.References)+len(want.Dates) == 0 {
					t.Fatal("extraction found nothing: the comparison would prove nothing")
				}
				for _, ix := range []*fhir.Index{&want, &got} {
					slices.SortFunc(ix.Tokens, func(a, b fhir.Token) int {
						return strings.Compare(a.Param+"|"+a.System+"|"+a.Code, b.Param+"|"+b.System+"|"+b.Code)
					})
					slices.SortFunc(ix.References, func(a, b fhir.Reference) int {
						return strings.Compare(a.Param+"|"+a.Type+"|"+a.ID+"|"+a.URL, b.Param+"|"+b.Type+"|"+b.ID+"|"+b.URL)
					})
				}
				if !reflect.DeepEqual(want, got) {
					t.Errorf("index from the struct differs from the extraction\n got %+v\nwant %+v\n%s", got, want, body)
				}
			})
		}
	}
}

// TestAuditEventJSONIsEncodingJSONs: the AuditEvent Record journals,
// written by hand (appendJSON), is what encoding/json makes of the same
// struct, byte for byte, for every shape of access, and for a struct with
// every member set, one with every optional member empty, and nil and empty
// slices.
func TestAuditEventJSONIsEncodingJSONs(t *testing.T) {
	events := map[string]*aeAuditEvent{}
	for name, ev := range auditEdgeAccesses() {
		for _, limit := range []int{100, 2} {
			ae, err := newAuditEvent(ev, limit)
			if err != nil {
				t.Fatal(err)
			}
			events[fmt.Sprintf("%s/limit %d", name, limit)] = ae
		}
	}
	odd := "<a> & \"b\" \\ \u2028\u2029 é \t \x01 \xff"
	c := aeCoding{System: "s" + odd, Code: "c", Display: "d" + odd}
	ref := aeReference{Reference: "Patient/p1", Type: "Patient", Identifier: &aeIdentifier{System: "urn:x", Value: odd}, Display: odd}
	events["every member"] = &aeAuditEvent{ResourceType: "AuditEvent", Type: c, Subtype: []aeCoding{c, {}},
		Action: "R", Period: aePeriod{Start: "2026"}, Recorded: "2026", Outcome: "0", OutcomeDesc: odd,
		PurposeOfEvent: []aeCodeable{{Coding: []aeCoding{c}, Text: odd}, {}},
		Agent:          []aeAgent{{Who: ref, AltID: odd, Requestor: true, Network: &aeNetwork{Address: "::1", Type: "2"}}, {Who: aeReference{Identifier: &aeIdentifier{}}}},
		Source:         aeSource{Observer: ref, Type: []aeCoding{c}},
		Entity: []aeEntity{{What: &ref, Type: &c, Role: &aeCoding{}, Description: odd, Query: odd, Detail: []aeDetail{{Type: odd, ValueString: odd}, {}}},
			{}, {Query: "q"}, {Detail: []aeDetail{}}}}
	events["nothing optional, nil slices"] = &aeAuditEvent{}
	events["empty slices"] = &aeAuditEvent{Subtype: []aeCoding{}, PurposeOfEvent: []aeCodeable{}, Agent: []aeAgent{},
		Source: aeSource{Type: []aeCoding{}}, Entity: []aeEntity{}}
	for name, ae := range events {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(ae)
			if err != nil {
				t.Fatal(err)
			}
			if got := ae.appendJSON([]byte("xyz")); !bytes.Equal(got[3:], want) || string(got[:3]) != "xyz" {
				t.Errorf("appendJSON differs from encoding/json\n got %s\nwant %s", got, want)
			}
		})
	}
}

// auditEdgeAccesses are auditTestAccesses and the edges of what an Access
// becomes: a patient reading another, a listing cut at the limit, no
// interaction, characters JSON escapes.
func auditEdgeAccesses() map[string]Access {
	accesses := auditTestAccesses()
	accesses["patient reads another patient"] = Access{
		Action: "R", Interaction: "read", Outcome: AuditSuccess,
		CallerKind: AuditCallerPatient, CallerID: "p1",
		PatientIDs: []string{"p2", "p2"}, Resources: []string{"Patient/p2", "Patient/p1", "Observation/o1"},
	}
	accesses["many resources, listed up to the limit"] = Access{
		Action: "E", Interaction: "search-type", Outcome: AuditSuccess,
		CallerKind: AuditCallerSystem, CallerID: "client-1", PatientIDs: []string{"p1"},
		Resources: []string{"Observation/o1", "Observation/o2", "Observation/o1", "Patient/p1", "Condition/c1", "Condition/c2"},
	}
	accesses["no interaction"] = Access{Action: "E", Outcome: AuditMajorFailure}
	accesses["text JSON escapes"] = Access{Action: "R", Interaction: "read", Outcome: AuditMinorFailure,
		OutcomeDesc: "a <b> & \"c\" \\ d\u2028é\t", CallerKind: AuditCallerPractitioner, CallerID: "8100<&>", CallerName: "Dr \"X\" <y>"}
	return accesses
}
