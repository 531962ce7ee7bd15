package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dmp-fhir/dmp-fhir/api"
	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/internal/mongotest"
	"github.com/dmp-fhir/dmp-fhir/store"
	"github.com/dmp-fhir/dmp-fhir/store/mongo"
	"github.com/dmp-fhir/dmp-fhir/store/sqlite"
)

// engine opens a fresh, empty store of one kind for one test.
type engine struct {
	name string
	open func(t *testing.T) store.Store
}

var engines = []engine{
	{"sqlite", func(t *testing.T) store.Store {
		s, err := sqlite.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
	{"mongodb", func(t *testing.T) store.Store {
		s, err := mongo.Open(context.Background(), mongotest.Start(t), mongotest.Database(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

var sharedValidator *fhir.Validator

func validator(t *testing.T) *fhir.Validator {
	t.Helper()
	if sharedValidator == nil {
		v, err := fhir.NewValidator()
		if err != nil {
			t.Fatal(err)
		}
		sharedValidator = v
	}
	return sharedValidator
}

// server is a running dmp-fhir over one engine.
type server struct {
	t     *testing.T
	url   string // the FHIR base, ending in /fhir
	api   *api.Server
	key   *auth.SigningKey
	store store.Store
	// token is sent when a request names no Authorization header: a
	// médecin with every scope.
	token   string
	outbox  *auth.Outbox  // the notifier of a consent server
	auditor *auth.Auditor // the audit writer of a consent server
}

var sharedKey *auth.SigningKey

func signingKey(t *testing.T) *auth.SigningKey {
	t.Helper()
	if sharedKey == nil {
		k, err := auth.GenerateSigningKey()
		if err != nil {
			t.Fatal(err)
		}
		sharedKey = k
	}
	return sharedKey
}

// newServer starts a server over a fresh store of engine e. Unless cfg
// brings its own Auth, the consent decision and the audit are off (tests of
// the REST mechanics); tokens and scopes are always checked.
func newServer(t *testing.T, e engine, cfg api.Config) *server {
	t.Helper()
	return newServerOn(t, e.open(t), cfg)
}

// newServerOn starts a server over st. At the end of the test it closes,
// in this order, the HTTP server (no request in flight), the API server
// (its export jobs stop), the audit writer of cfg.Auth if any (its last
// events go to the store) and st.
func newServerOn(t *testing.T, st store.Store, cfg api.Config) *server {
	t.Helper()
	key := signingKey(t)
	if cfg.Auth == nil {
		v, err := auth.NewVerifier(auth.VerifierConfig{Key: key})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Auth = &api.Auth{Verifier: v, Key: key, Unrestricted: true}
	}
	a := api.New(cfg, st, validator(t))
	hs := httptest.NewServer(a)
	t.Cleanup(func() {
		hs.Close()
		a.Close()
		if cfg.Auth.Auditor != nil {
			cfg.Auth.Auditor.Close()
		}
		st.Close()
	})
	srv := &server{t: t, url: hs.URL + "/fhir", api: a, key: key, store: st}
	srv.token = srv.tokenFor(auth.Claims{Kind: auth.KindPractitioner, IDNatPs: "810000000001", Profession: "10", Scope: "user/*.cruds"})
	return srv
}

// tokenFor issues a token signed with the test key.
func (s *server) tokenFor(c auth.Claims) string {
	s.t.Helper()
	tok, err := s.key.Issue(c, time.Hour)
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// forEachEngine runs fn once per engine, each with a fresh server.
func forEachEngine(t *testing.T, fn func(t *testing.T, s *server)) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			fn(t, newServer(t, e, api.Config{}))
		})
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not JSON (%d): %v\n%s", r.status, err, r.body)
	}
	return m
}

// do sends a request; headers come in pairs.
func (s *server) do(method, path string, body []byte, headers ...string) response {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if req.Header.Get("Authorization") == "none" {
		req.Header.Del("Authorization")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// outcome returns the first issue of an OperationOutcome response.
func outcome(t *testing.T, r response) (code, expression, diagnostics string) {
	t.Helper()
	m := r.json(t)
	if m["resourceType"] != "OperationOutcome" {
		t.Fatalf("want an OperationOutcome, got %s", r.body)
	}
	is := m["issue"].([]any)[0].(map[string]any)
	code, _ = is["code"].(string)
	diagnostics, _ = is["diagnostics"].(string)
	if ex, ok := is["expression"].([]any); ok && len(ex) > 0 {
		expression, _ = ex[0].(string)
	}
	return
}

// withoutServerMeta removes what the server sets (id, meta.versionId,
// meta.lastUpdated) so that a read can be compared with what was sent.
func withoutServerMeta(t *testing.T, body []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	delete(m, "id")
	if meta, ok := m["meta"].(map[string]any); ok {
		delete(meta, "versionId")
		delete(meta, "lastUpdated")
		if len(meta) == 0 {
			delete(m, "meta")
		}
	}
	return m
}

// TestMain stops the shared FerretDB (the MongoDB test target) after the tests.
func TestMain(m *testing.M) { mongotest.Main(m) }

func apiConfig() api.Config { return api.Config{} }
