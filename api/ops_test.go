package api_test

import (
	"bytes"
	"log/slog"
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

// TestLogsCarryNoPatientDataNorSecrets runs a DMP scenario (registration,
// consent, documents, searches by NIR and name, refusals) and scans every
// log line for the NIR, the names and the tokens.
func TestLogsCarryNoPatientDataNorSecrets(t *testing.T) {
	var logs syncBuffer
	st := engines[0].open(t)
	key := signingKey(t)
	v, _ := auth.NewVerifier(auth.VerifierConfig{Key: key})
	auditor := auth.NewAuditor(st, auth.AuditorOptions{})
	t.Cleanup(func() { auditor.Close() })
	s := newServerOn(t, st, api.Config{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Auth: &api.Auth{Verifier: v, Key: key, Auditor: auditor}})
	rec := s.seedRecord(t)
	doc := s.practitioner(psAuthorized, false)
	s.do("GET", "/Patient?identifier=urn:oid:1.2.250.1.213.1.4.10|283052A123456&name=Dupr%C3%A9", nil, "Authorization", "Bearer "+doc)
	s.do("GET", "/DocumentReference/"+rec.masked, nil, "Authorization", "Bearer "+doc)
	s.do("GET", "/Patient/"+rec.patient, nil, "Authorization", "Bearer "+s.practitioner(psStranger, false))
	s.do("GET", "/Patient", nil, "Authorization", "Bearer not-a-token")
	out := logs.String()
	if !strings.Contains(out, `"msg":"request"`) || !strings.Contains(out, `"request_id"`) {
		t.Fatalf("no request lines in the log:\n%s", out)
	}
	for _, secret := range []string{"283052A123456", "Dupré", "Dupr%C3%A9", doc, s.patient(rec.patient), "not-a-token", rec.patient} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds %q", secret)
		}
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
