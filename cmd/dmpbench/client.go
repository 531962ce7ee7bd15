package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/dmp-fhir/dmp-fhir/auth"
)

// benchPractitioner is the idNatPs of the professional every patient
// authorizes; benchProfession 10 is médecin.
const (
	benchPractitioner = "810000000042"
	benchProfession   = "10"
)

// tokens are the bearer tokens of the benchmark's callers, signed with the
// server's own key (read from the data directory, as `dmp-fhir token`).
type tokens struct {
	key          *auth.SigningKey
	system       string // a hospital information system: loads and ingests
	practitioner string // the consented médecin: reads, small writes
}

func newTokens(dataDir string) (*tokens, error) {
	key, err := auth.LoadOrCreateSigningKey(dataDir)
	if err != nil {
		return nil, err
	}
	t := &tokens{key: key}
	if t.system, err = key.Issue(auth.Claims{Kind: auth.KindSystem, ClientID: "dmpbench", Name: "dmpbench", Scope: "system/*.cruds"}, auth.MaxTTL); err != nil {
		return nil, err
	}
	t.practitioner, err = key.Issue(auth.Claims{Kind: auth.KindPractitioner, IDNatPs: benchPractitioner, Profession: benchProfession,
		Name: "Dr Banc d'Essai", Scope: "user/*.cruds"}, auth.MaxTTL)
	return t, err
}

func (t *tokens) patient(id string) (string, error) {
	return t.key.Issue(auth.Claims{Kind: auth.KindPatient, Patient: id, Scope: "patient/*.cruds"}, time.Hour)
}

// client talks to one server.
type client struct {
	base string // http://host:port/fhir
	hc   *http.Client
}

func newClient(addr string, conns int) *client {
	tr := &http.Transport{
		MaxIdleConns: conns + 16, MaxIdleConnsPerHost: conns + 16, IdleConnTimeout: time.Minute,
		DisableCompression: true,
	}
	return &client{base: "http://" + addr + "/fhir", hc: &http.Client{Transport: tr, Timeout: 5 * time.Minute}}
}

// do sends a request and reads the answer into buf (reset first).
func (c *client) do(ctx context.Context, method, url, token string, body []byte, buf *bytes.Buffer) (int, http.Header, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	if url == "" || url[0] == '/' {
		url = c.base + url
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
		// Writes need no resource back: less to send and to read.
		req.Header.Set("Prefer", "return=minimal")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	buf.Reset()
	_, err = buf.ReadFrom(resp.Body)
	return resp.StatusCode, resp.Header, err
}

// call is do for the set-up steps: any status but want is an error.
func (c *client) call(ctx context.Context, method, url, token string, body []byte, want int) ([]byte, error) {
	var buf bytes.Buffer
	status, _, err := c.do(ctx, method, url, token, body, &buf)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	if status != want {
		return nil, fmt.Errorf("%s %s: %d, want %d: %.300s", method, url, status, want, buf.String())
	}
	return buf.Bytes(), nil
}

// parameters is a FHIR Parameters body of string values.
func parameters(kv ...string) []byte {
	type param struct {
		Name        string `json:"name"`
		ValueString string `json:"valueString"`
	}
	p := struct {
		ResourceType string  `json:"resourceType"`
		Parameter    []param `json:"parameter"`
	}{ResourceType: "Parameters"}
	for i := 0; i+1 < len(kv); i += 2 {
		p.Parameter = append(p.Parameter, param{kv[i], kv[i+1]})
	}
	b, _ := json.Marshal(p)
	return b
}

// Scanning a Bundle without decoding it: the load generator shares two
// cores with the server, so it does as little as it can.
var (
	fullURLKey  = []byte(`"fullUrl":`)
	relNext     = []byte(`"relation":"next"`)
	urlKey      = []byte(`"url":`)
	locationKey = []byte(`"location":`)
)

// entries counts a Bundle's entries.
func entries(body []byte) int { return bytes.Count(body, fullURLKey) }

// nextLink returns a Bundle's next link, "" when none.
func nextLink(body []byte) string {
	i := bytes.Index(body, relNext)
	if i < 0 {
		return ""
	}
	rest := body[i+len(relNext):]
	j := bytes.Index(rest, urlKey)
	if j < 0 {
		return ""
	}
	return jsonString(rest[j+len(urlKey):])
}

// jsonString decodes the JSON string at the start of b.
func jsonString(b []byte) string {
	b = bytes.TrimLeft(b, " ")
	if len(b) == 0 || b[0] != '"' {
		return ""
	}
	end := 1
	for end < len(b) && b[end] != '"' {
		if b[end] == '\\' {
			end++
		}
		end++
	}
	if end >= len(b) {
		return ""
	}
	var s string
	if json.Unmarshal(b[:end+1], &s) != nil {
		return ""
	}
	return s
}

// locations returns the response.location of each entry of a
// transaction-response Bundle, in order.
func locations(body []byte) []string {
	var out []string
	for {
		i := bytes.Index(body, locationKey)
		if i < 0 {
			return out
		}
		body = body[i+len(locationKey):]
		out = append(out, jsonString(body))
	}
}
