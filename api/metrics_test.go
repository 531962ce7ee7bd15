package api_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/dmp-fhir/dmp-fhir/api"
	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/internal/metrics"
)

// newMeteredServer is a consent server (decision and audit on) whose store
// is timed and whose audit writer reports its batches, as main wires them.
func newMeteredServer(t *testing.T, e engine, cfg api.Config) *server {
	t.Helper()
	m := metrics.New("test")
	st := m.Store(e.open(t))
	key := signingKey(t)
	v, err := auth.NewVerifier(auth.VerifierConfig{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	auditor := auth.NewAuditor(st, auth.AuditorOptions{JournalDir: t.TempDir(), OnBatch: m.AuditBatch})
	cfg.Auth, cfg.Metrics = &api.Auth{Verifier: v, Key: key, Auditor: auditor}, m
	s := newServerOn(t, st, cfg) // closes the auditor
	s.auditor = auditor
	return s
}

// scrape gets /metrics (with a bearer token when given).
func (s *server) scrape(token string) (int, string) {
	s.t.Helper()
	req, _ := http.NewRequest("GET", strings.TrimSuffix(s.url, "/fhir")+"/metrics", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// series finds the value of one series of the server's registry: a
// counter's or gauge's value, a histogram's sample count; -1 when absent.
func (s *server) series(name string, labels ...string) float64 {
	s.t.Helper()
	fams, err := s.api.Metrics().Registry().Gather()
	if err != nil {
		s.t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			return value(m)
		}
	}
	return -1
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return -1
}

// TestMetricsMeasureEachLayerWithoutPatientData runs a DMP scenario, then
// reads /metrics: requests by route template and status, store operations
// by engine, audit group commits, consent decisions by rule, validation
// failures by type; and no patient id or NIR anywhere in it.
func TestMetricsMeasureEachLayerWithoutPatientData(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := newMeteredServer(t, e, api.Config{})
			rec := s.seedRecord(t)
			doc := "Bearer " + s.practitioner(psAuthorized, false)
			if r := s.do("GET", "/DocumentReference/"+rec.plain, nil, "Authorization", doc); r.status != 200 {
				t.Fatalf("read: %d %s", r.status, r.body)
			}
			if r := s.do("GET", "/Patient/"+rec.patient, nil, "Authorization", "Bearer "+s.practitioner(psStranger, false)); r.status != 403 {
				t.Fatalf("stranger read: %d %s", r.status, r.body)
			}
			if r := s.do("POST", "/Observation", []byte(`{"resourceType":"Observation","status":"bogus","code":{"text":"x"}}`), "Authorization", doc); r.status != 400 {
				t.Fatalf("invalid Observation: %d %s", r.status, r.body)
			}
			status, text := s.scrape("")
			if status != 200 {
				t.Fatalf("/metrics: %d %s", status, text)
			}
			for _, secret := range []string{rec.patient, rec.plain, "283052A123456", "Dupré"} {
				if strings.Contains(text, secret) {
					t.Errorf("/metrics names %q", secret)
				}
			}
			checks := []struct {
				what   string
				name   string
				labels []string
			}{
				{"reads by route template", "dmp_http_requests_total", []string{"method", "GET", "route", "/fhir/:type/:id", "status", "200"}},
				{"refusals by route template", "dmp_http_requests_total", []string{"method", "GET", "route", "/fhir/:type/:id", "status", "403"}},
				{"durations by route template", "dmp_http_request_duration_seconds", []string{"method", "POST", "route", "/fhir/:type", "status", "201"}},
				{"store reads", "dmp_store_operation_duration_seconds", []string{"engine", e.name, "operation", "read", "outcome", "ok"}},
				{"store creates", "dmp_store_operation_duration_seconds", []string{"engine", e.name, "operation", "create", "outcome", "ok"}},
				{"audit group commits", "dmp_audit_batch_size", nil},
				{"audit events", "dmp_audit_events_total", nil},
				{"consent permits by rule", "dmp_consent_decisions_total", []string{"outcome", "permit", "rule", auth.RuleAuthorized}},
				{"consent denials by rule", "dmp_consent_decisions_total", []string{"outcome", "deny", "rule", auth.RuleNotAuthorized}},
				{"validation failures by type", "dmp_validation_failures_total", []string{"resource_type", "Observation"}},
			}
			for _, c := range checks {
				if v := s.series(c.name, c.labels...); v <= 0 {
					t.Errorf("%s: %s%v = %v", c.what, c.name, c.labels, v)
				}
			}
			if v := s.series("dmp_audit_queue_depth"); v < 0 {
				t.Errorf("no dmp_audit_queue_depth")
			}
			if !strings.Contains(text, "# TYPE dmp_http_request_duration_seconds histogram") {
				t.Errorf("the scrape is not in the Prometheus text format:\n%.500s", text)
			}
		})
	}
}

func TestMetricsTokenWhenConfigured(t *testing.T) {
	const token = "metrics-scraper-secret-0123"
	s := newServer(t, engines[0], api.Config{MetricsToken: token})
	for _, c := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", 401},
		{"wrong token", "metrics-scraper-secret-0124", 401},
		{"a prefix of the token", token[:10], 401},
		{"the token", token, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			if status, body := s.scrape(c.token); status != c.want {
				t.Fatalf("%d, want %d: %.200s", status, c.want, body)
			}
		})
	}
}

// get sends a GET with the server's default token from any goroutine.
func (s *server) get(path string) (int, error) {
	req, _ := http.NewRequest("GET", s.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, nil
}

// TestConcurrencyCapAnswers503WithRetryAfter holds MaxInFlight requests
// inside the server, then sends one more: it is refused at once with 503,
// Retry-After and an OperationOutcome, while /healthz still answers; once
// the held requests finish, requests are served again.
func TestConcurrencyCapAnswers503WithRetryAfter(t *testing.T) {
	const max = 3
	s := newServer(t, engines[0], api.Config{MaxInFlight: max})
	entered, release := make(chan struct{}, 16), make(chan struct{})
	s.api.SetAdmittedHook(func(context.Context) {
		entered <- struct{}{}
		<-release
	})
	held := make(chan int, max)
	for range max {
		go func() {
			status, err := s.get("/Patient")
			if err != nil {
				t.Error(err)
			}
			held <- status
		}()
	}
	for range max {
		<-entered
	}
	r := s.do("GET", "/Patient", nil)
	if code, _, _ := outcome(t, r); r.status != 503 || code != "throttled" || r.header.Get("Retry-After") != "1" {
		t.Fatalf("request beyond the cap: %d Retry-After %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	base := s.url
	s.url = strings.TrimSuffix(base, "/fhir")
	if r := s.do("GET", "/healthz", nil); r.status != 200 {
		t.Errorf("/healthz at the cap: %d", r.status)
	}
	s.url = base
	close(release)
	for range max {
		if status := <-held; status != 200 {
			t.Errorf("held request: %d", status)
		}
	}
	if r := s.do("GET", "/Patient", nil); r.status != 200 {
		t.Fatalf("after the held requests: %d %s", r.status, r.body)
	}
	if v := s.series("dmp_http_requests_rejected_total", "reason", "overload"); v != 1 {
		t.Errorf("rejections counted: %v, want 1", v)
	}
}

// TestBundleEntriesRunInTheirBundlesSlot: with a cap of one request, a
// batch's entries (internal requests) still run.
func TestBundleEntriesRunInTheirBundlesSlot(t *testing.T) {
	s := newServer(t, engines[0], api.Config{MaxInFlight: 1})
	r := s.do("POST", "", []byte(`{"resourceType":"Bundle","type":"batch","entry":[
	 {"resource":{"resourceType":"Patient","name":[{"family":"A"}]},"request":{"method":"POST","url":"Patient"}},
	 {"request":{"method":"GET","url":"Patient?family=a"}}]}`))
	if got := strings.Join(responseStatuses(t, r), ","); r.status != 200 || got != "201 Created,200 OK" {
		t.Fatalf("batch under a cap of 1: %d %s", r.status, r.body)
	}
}

// TestRequestDeadlineReachesTheStore holds requests until their deadline
// has passed, then lets them go on: the store gets the expired context and
// the answer is 503 timeout, the write is not made, and the access is
// still audited.
func TestRequestDeadlineReachesTheStore(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			// The setup ($dmp-create, consents, documents) runs with no
			// deadline: on FerretDB, on a busy machine, it can take seconds.
			s := newMeteredServer(t, e, api.Config{})
			var hold atomic.Bool
			s.api.SetAdmittedHook(func(ctx context.Context) {
				if hold.Load() {
					<-ctx.Done()
				}
			})
			rec := s.seedRecord(t)
			doc := "Bearer " + s.practitioner(psAuthorized, false)
			events := s.auditor.Stats().Events
			s.api.SetRequestTimeout(200 * time.Millisecond)
			hold.Store(true)
			cases := []struct {
				name, method, path, body string
			}{
				{"read", "GET", "/DocumentReference/" + rec.plain, ""},
				{"search", "GET", "/Observation?patient=" + rec.patient, ""},
				{"create", "POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"too late"},"subject":{"reference":"Patient/` + rec.patient + `"}}`},
			}
			for _, c := range cases {
				var body []byte
				if c.body != "" {
					body = []byte(c.body)
				}
				r := s.do(c.method, c.path, body, "Authorization", doc)
				if code, _, _ := outcome(t, r); r.status != 503 || code != "timeout" {
					t.Errorf("%s past its deadline: %d %s", c.name, r.status, r.body)
				}
			}
			hold.Store(false)
			s.api.SetRequestTimeout(0)
			r := s.do("GET", "/Observation?patient="+rec.patient, nil, "Authorization", doc)
			if r.status != 200 || strings.Contains(string(r.body), "too late") {
				t.Errorf("the write past its deadline was made: %d %s", r.status, r.body)
			}
			if got := s.auditor.Stats().Events - events; got < int64(len(cases)) {
				t.Errorf("%d of %d timed-out accesses audited", got, len(cases))
			}
			if v := s.series("dmp_http_requests_rejected_total", "reason", "deadline"); v != float64(len(cases)) {
				t.Errorf("deadline rejections counted: %v", v)
			}
		})
	}
}
