package api_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dmp-fhir/dmp-fhir/api"
	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/store"
	"github.com/dmp-fhir/dmp-fhir/store/sqlite"
)

// inlineLimit is the inline limit of these tests: small, so that small
// contents exercise blob storage.
const inlineLimit = 64

// forEachEngineWith runs fn once per engine with cfg.
func forEachEngineWith(t *testing.T, cfg api.Config, fn func(t *testing.T, s *server)) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { fn(t, newServer(t, e, cfg)) })
	}
}

// content is n bytes of a document (not valid UTF-8 past the first bytes,
// so that nothing treats it as text by accident).
func content(n int, seed byte) []byte {
	b := make([]byte, n)
	copy(b, "%PDF-1.4\n")
	for i := 9; i < n; i++ {
		b[i] = byte(i*31) ^ seed
	}
	return b
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func sha1b64(b []byte) string {
	s := sha1.Sum(b)
	return base64.StdEncoding.EncodeToString(s[:])
}

func docWith(data []byte, extra string) []byte {
	return []byte(`{"resourceType":"DocumentReference","status":"current","type":{"coding":[{"system":"http://loinc.org","code":"11488-4"}]},"subject":{"reference":"Patient/p1"},"content":[{"attachment":{"contentType":"application/pdf","title":"CR"` + extra + `,"data":"` + b64(data) + `"}}]}`)
}

type attachment struct {
	ContentType string `json:"contentType"`
	URL         string `json:"url"`
	Size        int64  `json:"size"`
	Hash        string `json:"hash"`
	Data        string `json:"data"`
	Title       string `json:"title"`
}

func firstAttachment(t *testing.T, body []byte) attachment {
	t.Helper()
	var d struct {
		Content []struct {
			Attachment attachment `json:"attachment"`
		} `json:"content"`
	}
	if err := json.Unmarshal(body, &d); err != nil || len(d.Content) == 0 {
		t.Fatalf("no attachment in %s", body)
	}
	return d.Content[0].Attachment
}

// countBinaries counts the live Binary resources in the store.
func countBinaries(t *testing.T, s *server) int {
	t.Helper()
	page, err := s.store.Search(context.Background(), store.Query{Type: "Binary", Total: true, Count: 0})
	if err != nil {
		t.Fatal(err)
	}
	return int(page.Total)
}

// TestLargeAttachmentBecomesABinaryWrittenWithItsDocument: an attachment's
// data over the inline limit is moved to a Binary whose securityContext is
// the document; the attachment keeps url, size and SHA-1 hash without the
// data; the Binary gives the bytes back raw or as FHIR JSON; the same
// update sent again changes nothing; smaller data stays inline.
func TestLargeAttachmentBecomesABinaryWrittenWithItsDocument(t *testing.T) {
	forEachEngineWith(t, api.Config{InlineMaxBytes: inlineLimit}, func(t *testing.T, s *server) {
		pdf := content(5000, 1)
		r := s.do("POST", "/DocumentReference", docWith(pdf, ""))
		if r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		docID := r.json(t)["id"].(string)
		att := firstAttachment(t, r.body)
		if att.Data != "" || !strings.HasPrefix(att.URL, "Binary/") || att.Size != int64(len(pdf)) || att.Hash != sha1b64(pdf) || att.Title != "CR" {
			t.Fatalf("attachment as stored: %+v", att)
		}
		// The stored row holds no data either.
		stored, err := s.store.Read(context.Background(), "DocumentReference", docID)
		if err != nil || bytes.Contains(stored.Body, []byte(`"data"`)) {
			t.Fatalf("the stored document still carries data (%v): %.200s", err, stored.Body)
		}

		raw := s.do("GET", "/"+att.URL, nil)
		if raw.status != 200 || !bytes.Equal(raw.body, pdf) {
			t.Fatalf("raw read: %d, %d bytes", raw.status, len(raw.body))
		}
		if ct, cl := raw.header.Get("Content-Type"), raw.header.Get("Content-Length"); ct != "application/pdf" || cl != fmt.Sprint(len(pdf)) {
			t.Fatalf("raw read headers: Content-Type %q Content-Length %q", ct, cl)
		}
		if raw.header.Get("ETag") != `W/"1"` || raw.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("raw read headers: %v", raw.header)
		}
		js := s.do("GET", "/"+att.URL, nil, "Accept", "application/fhir+json")
		var bin struct {
			ResourceType    string         `json:"resourceType"`
			ContentType     string         `json:"contentType"`
			Data            string         `json:"data"`
			Meta            map[string]any `json:"meta"`
			SecurityContext struct {
				Reference string `json:"reference"`
			} `json:"securityContext"`
		}
		if err := json.Unmarshal(js.body, &bin); err != nil || js.status != 200 {
			t.Fatalf("JSON read: %d %v", js.status, err)
		}
		if bin.ResourceType != "Binary" || bin.ContentType != "application/pdf" || bin.Data != b64(pdf) || bin.SecurityContext.Reference != "DocumentReference/"+docID {
			t.Fatalf("JSON form: %.300s", js.body)
		}
		if bytes.Contains(js.body, []byte("binary-blob")) {
			t.Fatalf("the JSON form shows the blob pointer: %.300s", js.body)
		}

		// The same update twice: no new version of the document nor its Binary.
		put := func() response {
			body := bytes.Replace(docWith(pdf, ""), []byte(`{"resourceType":"DocumentReference",`), []byte(`{"resourceType":"DocumentReference","id":"doc-put",`), 1)
			return s.do("PUT", "/DocumentReference/doc-put", body)
		}
		first := put()
		if first.status != 201 {
			t.Fatalf("put: %d %s", first.status, first.body)
		}
		again := put()
		if again.status != 200 || again.header.Get("X-Write-Outcome") != "unchanged" {
			t.Fatalf("the same update again: %d %s", again.status, again.header.Get("X-Write-Outcome"))
		}
		if firstAttachment(t, again.body).URL != firstAttachment(t, first.body).URL {
			t.Fatal("the same update again pointed at another Binary")
		}
		if n := countBinaries(t, s); n != 2 {
			t.Fatalf("%d Binaries, want 2 (one per document)", n)
		}

		// Small data stays inline.
		small := content(inlineLimit, 2)
		r = s.do("POST", "/DocumentReference", docWith(small, ""))
		if att := firstAttachment(t, r.body); r.status != 201 || att.Data != b64(small) || att.URL != "" {
			t.Fatalf("small attachment: %d %+v", r.status, att)
		}
	})
}

// TestAttachmentHashAndSizeMustMatchItsData: a hash or size that is not
// the data's is refused with 422 naming the element, and nothing is stored.
func TestAttachmentHashAndSizeMustMatchItsData(t *testing.T) {
	forEachEngineWith(t, api.Config{InlineMaxBytes: inlineLimit}, func(t *testing.T, s *server) {
		pdf := content(500, 3)
		for _, c := range []struct{ extra, want string }{
			{`,"hash":"` + sha1b64([]byte("other")) + `"`, "DocumentReference.content[0].attachment.hash"},
			{`,"size":12`, "DocumentReference.content[0].attachment.size"},
			{`,"url":"http://elsewhere.example/doc.pdf"`, "DocumentReference.content[0].attachment.url"},
		} {
			r := s.do("POST", "/DocumentReference", docWith(pdf, c.extra))
			if _, expr, _ := outcome(t, r); r.status/100 != 4 || expr != c.want {
				t.Errorf("%s: %d %s, want a 4xx naming %s", c.extra, r.status, r.body, c.want)
			}
		}
		if ok := s.do("POST", "/DocumentReference", docWith(pdf, `,"size":500,"hash":"`+sha1b64(pdf)+`"`)); ok.status != 201 {
			t.Fatalf("right hash and size: %d %s", ok.status, ok.body)
		}
		if n := countBinaries(t, s); n != 1 {
			t.Fatalf("%d Binaries, want only the accepted document's", n)
		}
	})
}

// TestBinaryDataOverTheLimitIsKeptInBlobStorage: a Binary resource's large
// data leaves the resource row for blob storage and comes back on read, by
// read and vread; a client cannot point a Binary at a blob of its choosing.
func TestBinaryDataOverTheLimitIsKeptInBlobStorage(t *testing.T) {
	forEachEngineWith(t, api.Config{InlineMaxBytes: inlineLimit}, func(t *testing.T, s *server) {
		pdf := content(300<<10, 4)
		r := s.do("POST", "/Binary", []byte(`{"resourceType":"Binary","contentType":"application/pdf","data":"`+b64(pdf)+`"}`))
		if r.status != 201 {
			t.Fatalf("create: %d %.300s", r.status, r.body)
		}
		if bytes.Contains(r.body, []byte("binary-blob")) || bytes.Contains(r.body, []byte(`"data"`)) {
			t.Fatalf("the answer to the create shows the blob pointer or the data: %.300s", r.body)
		}
		id := r.json(t)["id"].(string)
		stored, err := s.store.Read(context.Background(), "Binary", id)
		if err != nil || len(stored.Body) > 1000 {
			t.Fatalf("the stored row is %d bytes (%v), want the data out of it", len(stored.Body), err)
		}
		for _, path := range []string{"/Binary/" + id, "/Binary/" + id + "/_history/1"} {
			if raw := s.do("GET", path, nil, "Accept", "application/pdf"); raw.status != 200 || !bytes.Equal(raw.body, pdf) {
				t.Fatalf("GET %s: %d, %d bytes", path, raw.status, len(raw.body))
			}
			js := s.do("GET", path+"?_format=json", nil)
			if js.status != 200 || js.json(t)["data"] != b64(pdf) {
				t.Fatalf("GET %s?_format=json: %d %.200s", path, js.status, js.body)
			}
		}
		// A client's own pointer is dropped: the Binary has no content.
		forged := `{"resourceType":"Binary","meta":{"extension":[{"url":"https://dmp-fhir.fr/StructureDefinition/binary-blob","valueString":"` + blobOf(t, s, id) + `"}]},"contentType":"application/pdf"}`
		r = s.do("POST", "/Binary", []byte(forged))
		if r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		if raw := s.do("GET", "/Binary/"+r.json(t)["id"].(string), nil); raw.status != 200 || len(raw.body) != 0 {
			t.Fatalf("a forged blob pointer gave %d bytes", len(raw.body))
		}
	})
}

// blobOf reads the blob id a stored Binary points at.
func blobOf(t *testing.T, s *server, id string) string {
	t.Helper()
	r, err := s.store.Read(context.Background(), "Binary", id)
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		Meta struct {
			Extension []struct {
				URL         string `json:"url"`
				ValueString string `json:"valueString"`
			} `json:"extension"`
		} `json:"meta"`
	}
	json.Unmarshal(r.Body, &b)
	for _, e := range b.Meta.Extension {
		if strings.HasSuffix(e.URL, "/binary-blob") {
			return e.ValueString
		}
	}
	t.Fatalf("no blob pointer in %s", r.Body)
	return ""
}

// TestRawBinaryUploadAndContentNegotiation: POST and PUT of raw bytes under
// their own media type (XML included: a CDA document) make a Binary with
// the X-Security-Context; a read answers the bytes for their type, */* or
// no Accept, the resource for FHIR JSON, 406 for anything else; the body
// size limit holds.
func TestRawBinaryUploadAndContentNegotiation(t *testing.T) {
	forEachEngineWith(t, api.Config{InlineMaxBytes: inlineLimit, MaxBodyBytes: 64 << 10}, func(t *testing.T, s *server) {
		pdf := content(20<<10, 5)
		r := s.do("POST", "/Binary", pdf, "Content-Type", "application/pdf", "X-Security-Context", "DocumentReference/doc-1")
		if r.status != 201 || r.header.Get("Location") == "" {
			t.Fatalf("raw create: %d %s", r.status, r.body)
		}
		id := r.json(t)["id"].(string)
		if sc := r.json(t)["securityContext"].(map[string]any)["reference"]; sc != "DocumentReference/doc-1" {
			t.Fatalf("securityContext %v", sc)
		}
		for _, c := range []struct {
			accept string
			status int
			raw    bool
		}{
			{"", 200, true},
			{"*/*", 200, true},
			{"application/pdf", 200, true},
			{"application/*;q=0.5", 200, true},
			{"text/html,application/xhtml+xml,*/*;q=0.8", 200, true},
			{"application/fhir+json", 200, false},
			{"application/json", 200, false},
			{"application/fhir+json, */*", 200, false},
			{"application/pdf, application/fhir+json;q=0.5", 200, true},
			{"image/png", 406, false},
			{"application/xml", 406, false},
		} {
			got := s.do("GET", "/Binary/"+id, nil, "Accept", c.accept)
			if got.status != c.status {
				t.Errorf("Accept %q: %d, want %d", c.accept, got.status, c.status)
				continue
			}
			if c.status == 200 && c.raw != bytes.Equal(got.body, pdf) {
				t.Errorf("Accept %q: raw bytes %v, want %v (Content-Type %s)", c.accept, !c.raw, c.raw, got.header.Get("Content-Type"))
			}
		}
		// A CDA document sent raw as XML, and asked for as XML.
		cda := []byte(`<?xml version="1.0" encoding="UTF-8"?><ClinicalDocument xmlns="urn:hl7-org:v3"/>`)
		r = s.do("PUT", "/Binary/cda-1", cda, "Content-Type", "application/xml", "X-Security-Context", "DocumentReference/doc-1")
		if r.status != 201 {
			t.Fatalf("raw put: %d %s", r.status, r.body)
		}
		if got := s.do("GET", "/Binary/cda-1", nil, "Accept", "application/xml"); got.status != 200 || !bytes.Equal(got.body, cda) || got.header.Get("Content-Type") != "application/xml" {
			t.Fatalf("XML read: %d %q %s", got.status, got.header.Get("Content-Type"), got.body)
		}
		if got := s.do("PUT", "/Binary/cda-1", cda, "Content-Type", "application/xml", "X-Security-Context", "DocumentReference/doc-1"); got.header.Get("X-Write-Outcome") != "unchanged" {
			t.Fatalf("the same raw put again: %d %s", got.status, got.header.Get("X-Write-Outcome"))
		}
		for _, c := range []struct {
			name    string
			body    []byte
			headers []string
			status  int
		}{
			{"too large", content(65<<10, 6), []string{"Content-Type", "application/pdf"}, 413},
			{"empty", []byte{}, []string{"Content-Type", "application/pdf"}, 400},
			{"bad security context", pdf, []string{"Content-Type", "application/pdf", "X-Security-Context", "../etc/passwd"}, 400},
			{"unknown type in security context", pdf, []string{"Content-Type", "application/pdf", "X-Security-Context", "Nothing/1"}, 400},
			{"no write scope", pdf, []string{"Content-Type", "application/pdf", "Authorization", "Bearer " + s.readOnlyToken()}, 403},
		} {
			if got := s.do("POST", "/Binary", c.body, c.headers...); got.status != c.status {
				t.Errorf("%s: %d, want %d: %s", c.name, got.status, c.status, got.body)
			}
		}
	})
}

func (s *server) readOnlyToken() string {
	return s.tokenFor(auth.Claims{Kind: auth.KindPractitioner, IDNatPs: "810000000001", Profession: "10", Scope: "user/*.rs"})
}

// TestTransactionWithALargeAttachmentIsAllOrNothing: a transaction whose
// document's attachment becomes a Binary stores the Binary with the
// document or neither.
func TestTransactionWithALargeAttachmentIsAllOrNothing(t *testing.T) {
	s := newServer(t, engines[0], api.Config{InlineMaxBytes: inlineLimit})
	pdf := content(2000, 7)
	bundle := func(ifMatch string) []byte {
		return []byte(`{"resourceType":"Bundle","type":"transaction","entry":[
		 {"fullUrl":"urn:uuid:8e3b7a3c-2f5e-4c8e-9a51-3a1f6c0d2b11","resource":{"resourceType":"Patient","name":[{"family":"A"}]},"request":{"method":"POST","url":"Patient"}},
		 {"resource":` + strings.Replace(string(docWith(pdf, "")), `"Patient/p1"`, `"urn:uuid:8e3b7a3c-2f5e-4c8e-9a51-3a1f6c0d2b11"`, 1) + `,"request":{"method":"POST","url":"DocumentReference"}},
		 {"resource":{"resourceType":"Patient","id":"p9","name":[{"family":"B"}]},"request":{"method":"PUT","url":"Patient/p9"` + ifMatch + `}}]}`)
	}
	r := s.do("POST", "", bundle(`,"ifMatch":"W/\"4\""`))
	if r.status != 412 {
		t.Fatalf("transaction with a stale If-Match: %d %s", r.status, r.body)
	}
	if n := countBinaries(t, s); n != 0 {
		t.Fatalf("a failed transaction left %d Binaries", n)
	}
	r = s.do("POST", "", bundle(""))
	if r.status != 200 {
		t.Fatalf("transaction: %d %s", r.status, r.body)
	}
	var resp struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	json.Unmarshal(r.body, &resp)
	att := firstAttachment(t, resp.Entry[1].Resource)
	if raw := s.do("GET", "/"+att.URL, nil); raw.status != 200 || !bytes.Equal(raw.body, pdf) {
		t.Fatalf("the transaction's Binary: %d", raw.status)
	}
	// Read as a Bundle entry, a Binary is its FHIR JSON form.
	get := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"` + att.URL + `"}}]}`
	r = s.do("POST", "", []byte(get))
	if !bytes.Contains(r.body, []byte(`"data":"`+b64(pdf)+`"`)) {
		t.Fatalf("a batch read of a Binary: %.300s", r.body)
	}
}

// TestBinaryReadsFollowTheDocumentsConsentAndAreAudited: the raw and the
// JSON forms of a document's Binary are given to whom may read the
// document only, and every read of it, allowed or refused, is in the
// patient's access trail.
func TestBinaryReadsFollowTheDocumentsConsentAndAreAudited(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := newConsentServer(t, e)
			rec := s.seedRecord(t)
			feeder := "Bearer " + s.practitioner(psAuthorized, false)
			pdf := content(api.DefaultInlineMaxBytes+1, 8)
			doc := strings.Replace(string(docWith(pdf, "")), "Patient/p1", "Patient/"+rec.patient, 1)
			r := s.do("POST", "/DocumentReference", []byte(doc), "Authorization", feeder)
			if r.status != 201 {
				t.Fatalf("create: %d %s", r.status, r.body)
			}
			bin := firstAttachment(t, r.body).URL
			if !strings.HasPrefix(bin, "Binary/") {
				t.Fatalf("content over the default limit stayed inline: %s", bin)
			}
			for _, c := range []struct {
				who, token string
				want       int
			}{
				{"authorized", feeder, 200},
				{"stranger", "Bearer " + s.practitioner(psStranger, false), 403},
				{"blocked", "Bearer " + s.practitioner(psBlocked, false), 403},
				{"system", "Bearer " + s.system(), 403},
				{"patient", "Bearer " + s.patient(rec.patient), 200},
			} {
				raw := s.do("GET", "/"+bin, nil, "Authorization", c.token)
				js := s.do("GET", "/"+bin, nil, "Authorization", c.token, "Accept", "application/fhir+json")
				if raw.status != c.want || js.status != c.want {
					t.Errorf("%s: raw %d, JSON %d, want %d", c.who, raw.status, js.status, c.want)
				}
				if c.want == 200 && (!bytes.Equal(raw.body, pdf) || js.json(t)["data"] != b64(pdf)) {
					t.Errorf("%s: the content read back differs", c.who)
				}
			}
			trail := s.do("GET", "/AuditEvent?patient="+rec.patient+"&_count=500", nil, "Authorization", "Bearer "+s.patient(rec.patient))
			if n := strings.Count(string(trail.body), `"reference":"`+bin+`"`); n < 8 {
				t.Fatalf("the patient's trail names %s %d times, want the 8 professional reads (and the patient's)", bin, n)
			}
		})
	}
}

// BenchmarkBinaryContent measures a raw upload (POST /fhir/Binary, blob
// written and flushed) and a raw read of a 1 MiB document on the embedded
// engine, through the HTTP handler without a network, consent and audit off:
//
//	go test -run ^$ -bench BinaryContent -benchtime 200x ./api/
func BenchmarkBinaryContent(b *testing.B) {
	st, err := sqlite.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	t := &testing.T{}
	key := signingKey(t)
	v, _ := auth.NewVerifier(auth.VerifierConfig{Key: key})
	h := api.New(api.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Auth: &api.Auth{Verifier: v, Key: key, Unrestricted: true}}, st, validator(t))
	b.Cleanup(h.Close) // before the store
	tok, _ := key.Issue(auth.Claims{Kind: auth.KindPractitioner, IDNatPs: "810000000001", Profession: "10", Scope: "user/*.cruds"}, time.Hour)
	send := func(method, path string, body []byte, ct string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	const size = 1 << 20
	b.Run("upload-1MiB", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			doc := content(size, byte(i)) // distinct bytes: a new blob each time
			doc[100], doc[101] = byte(i>>8), byte(i>>16)
			if rec := send("POST", "/fhir/Binary", doc, "application/pdf"); rec.Code != 201 {
				b.Fatalf("upload: %d %s", rec.Code, rec.Body)
			}
		}
	})
	rec := send("POST", "/fhir/Binary", content(size, 1), "application/pdf")
	var created struct{ ID string }
	json.Unmarshal(rec.Body.Bytes(), &created)
	b.Run("read-1MiB", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			if rec := send("GET", "/fhir/Binary/"+created.ID, nil, ""); rec.Code != 200 || rec.Body.Len() != size {
				b.Fatalf("read: %d", rec.Code)
			}
		}
	})
}
