package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dmp-fhir/dmp-fhir/api"
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
	t   *testing.T
	url string // the FHIR base, ending in /fhir
	api *api.Server
}

func newServer(t *testing.T, e engine, cfg api.Config) *server {
	t.Helper()
	st := e.open(t)
	a := api.New(cfg, st, validator(t))
	hs := httptest.NewServer(a)
	t.Cleanup(func() {
		hs.Close()
		st.Close()
	})
	return &server{t: t, url: hs.URL + "/fhir", api: a}
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
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
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
