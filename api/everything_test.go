package api_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmp-fhir/dmp-fhir/api"
	"github.com/dmp-fhir/dmp-fhir/fhir"
)

// syntheaRecord is one Synthea patient loaded into a server: every resource
// of its Bundle under the id its urn:uuid gave, as stored.
type syntheaRecord struct {
	patient   string
	resources map[string]map[string]any // "Type/id" -> resource
}

var urnUUID = regexp.MustCompile(`urn:uuid:([0-9a-fA-F-]{36})`)

// loadSynthea loads a Synthea transaction Bundle as a batch of PUTs (one
// write each, which the MongoDB test server, without transactions, takes
// too): each resource under the id of its urn:uuid, references rewritten
// to Type/id. With a NIR, the patient's DMP is created first at a desk
// ($dmp-create: professionals feed an existing DMP only), and stands for
// the Bundle's Patient.
func loadSynthea(t *testing.T, s *server, file, nir string) syntheaRecord {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		Entry []struct {
			FullURL  string          `json:"fullUrl"`
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	rec := syntheaRecord{resources: map[string]map[string]any{}}
	local := map[string]string{} // uuid -> Type/id
	for _, e := range b.Entry {
		var head struct {
			ResourceType string `json:"resourceType"`
		}
		json.Unmarshal(e.Resource, &head)
		u := strings.TrimPrefix(e.FullURL, "urn:uuid:")
		local[u] = head.ResourceType + "/" + u
		if head.ResourceType == "Patient" {
			rec.patient = u
			if nir != "" {
				rec.patient, _, _ = s.createDMP(t, s.token, nir, "Synthea")
				local[u] = "Patient/" + rec.patient
				r := s.do("GET", "/Patient/"+rec.patient, nil, "Authorization", "Bearer "+s.patient(rec.patient))
				var p map[string]any
				if r.status != 200 || json.Unmarshal(r.body, &p) != nil {
					t.Fatalf("read the new DMP's Patient: %d %s", r.status, r.body)
				}
				rec.resources["Patient/"+rec.patient] = p
			}
		}
	}
	var batch []string
	for _, e := range b.Entry {
		ref := local[strings.TrimPrefix(e.FullURL, "urn:uuid:")]
		if nir != "" && ref == "Patient/"+rec.patient {
			continue // the DMP's Patient stands for it
		}
		body := urnUUID.ReplaceAllStringFunc(string(e.Resource), func(m string) string {
			if l, ok := local[m[len("urn:uuid:"):]]; ok {
				return l
			}
			return m
		})
		var res map[string]any
		if err := json.Unmarshal([]byte(body), &res); err != nil {
			t.Fatal(err)
		}
		res["id"] = strings.SplitN(ref, "/", 2)[1]
		rec.resources[ref] = res
		j, _ := json.Marshal(res)
		batch = append(batch, `{"resource":`+string(j)+`,"request":{"method":"PUT","url":"`+ref+`"}}`)
	}
	r := s.do("POST", "", []byte(`{"resourceType":"Bundle","type":"batch","entry":[`+strings.Join(batch, ",")+`]}`))
	if r.status != 200 {
		t.Fatalf("load %s: %d %s", filepath.Base(file), r.status, r.body)
	}
	for i, st := range responseStatuses(t, r) {
		if st != "201 Created" && st != "200 OK" { // 200: an Organization another Bundle brought
			t.Fatalf("load %s: entry %d: %s", filepath.Base(file), i, st)
		}
	}
	return rec
}

// testNIR is the i-th NIR of a series, with its key (97 - n mod 97).
func testNIR(i int) string {
	base := fmt.Sprintf("1830575123%03d", i)
	n, _ := strconv.ParseInt(base, 10, 64)
	return fmt.Sprintf("%s%02d", base, 97-n%97)
}

// references lists every reference in v (contained resources included).
func references(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		if r, ok := x["reference"].(string); ok {
			*out = append(*out, r)
		}
		for _, vv := range x {
			references(vv, out)
		}
	case []any:
		for _, vv := range x {
			references(vv, out)
		}
	}
}

// expected is the brute-force $everything of a record, from the Bundle
// itself: the Patient, every resource that refers to it, and the resources
// outside the patient compartment those refer to. keep selects the
// resources of the compartment (nil: all).
func (rec syntheaRecord) expected(keep func(ref string, res map[string]any) bool) map[string]bool {
	out := map[string]bool{}
	self := "Patient/" + rec.patient
	for ref, res := range rec.resources {
		var refs []string
		references(res, &refs)
		in := ref == self
		for _, r := range refs {
			in = in || r == self
		}
		if !in || (keep != nil && !keep(ref, res)) {
			continue
		}
		out[ref] = true
		for _, r := range refs {
			typ, _, _ := strings.Cut(r, "/")
			if rt, ok := fhir.LookupType(typ); ok && typ != "Patient" && len(rt.PatientCompartment) == 0 {
				if _, known := rec.resources[r]; known {
					out[r] = true
				}
			}
		}
	}
	return out
}

// everythingPages follows next links to the end; it fails on a duplicate
// and on a page with more than count matches.
func everythingPages(t *testing.T, s *server, path string, count int, hdr ...string) (got map[string]bool, total float64, pages int) {
	t.Helper()
	got = map[string]bool{}
	total = -1
	for path != "" {
		pages++
		if pages > 2000 {
			t.Fatalf("more than 2000 pages")
		}
		r := s.do("GET", path, nil, hdr...)
		ids, modes, tot, next := entries(t, r)
		if pages == 1 {
			total = tot
		}
		matches := 0
		for i, id := range ids {
			if modes[i] == "outcome" {
				continue
			}
			if modes[i] == "match" {
				matches++
			}
			if got[id] {
				t.Fatalf("%s appears twice (page %d)", id, pages)
			}
			got[id] = true
		}
		if count > 0 && matches > count {
			t.Fatalf("page %d has %d matches, _count=%d", pages, matches, count)
		}
		if next != "" && !strings.HasPrefix(next, s.url) {
			t.Fatalf("next link %s is not on this server", next)
		}
		path = strings.TrimPrefix(next, s.url)
	}
	return got, total, pages
}

func diff(got, want map[string]bool) string {
	var missing, extra []string
	for k := range want {
		if !got[k] {
			missing = append(missing, k)
		}
	}
	for k := range got {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	if len(missing)+len(extra) == 0 {
		return ""
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 10 {
		missing = append(missing[:10], "...")
	}
	if len(extra) > 10 {
		extra = append(extra[:10], "...")
	}
	return fmt.Sprintf("%d missing %v, %d extra %v", len(missing), missing, len(extra), extra)
}

// TestEverythingGivesTheWholeSyntheaRecordPageByPage loads the Synthea
// patients and pages through each one's $everything: exactly the
// brute-force expectation, each resource once, with an accurate total. On
// the embedded engine, all six, 7 resources a page, as a professional the
// patient authorized (consent and audit on); on the MongoDB test server
// (FerretDB, which reads every document for every query), the smallest,
// 25 a page, with the consent decision off (TestEverythingAndSummary-
// FollowTheConsent runs it there).
func TestEverythingGivesTheWholeSyntheaRecordPageByPage(t *testing.T) {
	files, _ := filepath.Glob("../testdata/synthea/bundles/*.json")
	sort.Slice(files, func(i, j int) bool { return size(files[i]) < size(files[j]) })
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			full := e.name == "sqlite"
			use, count := files, 7
			var s *server
			if full {
				s = newConsentServer(t, e)
			} else {
				s, use, count = newServer(t, e, apiConfig()), files[:1], 25
			}
			doctor := "Bearer " + s.practitioner(psAuthorized, false)
			for i, f := range use {
				nir := ""
				if full {
					nir = testNIR(i)
				}
				rec := loadSynthea(t, s, f, nir)
				if full {
					if r := s.do("POST", "/Patient/"+rec.patient+"/$authorize", params("practitioner", psAuthorized), "Authorization", "Bearer "+s.patient(rec.patient)); r.status != 200 {
						t.Fatalf("$authorize: %d %s", r.status, r.body)
					}
				}
				want := rec.expected(nil)
				got, total, pages := everythingPages(t, s, fmt.Sprintf("/Patient/%s/$everything?_count=%d&_total=accurate", rec.patient, count), count, "Authorization", doctor)
				if d := diff(got, want); d != "" {
					t.Errorf("%s: %s", filepath.Base(f), d)
				}
				if wantPages := (len(want) + count - 1) / count; int(total) != len(want) || pages != wantPages {
					t.Errorf("%s: total %v in %d pages, want %d in %d", filepath.Base(f), total, pages, len(want), wantPages)
				}
			}
		})
	}
}

func size(f string) int64 {
	st, err := os.Stat(f)
	if err != nil {
		return 0
	}
	return st.Size()
}

// TestEverythingFilters: _type, _since, start and end select from the
// brute-force expectation as FHIR R4 Patient-everything says; bad
// parameters and foreign cursors are 400 naming the parameter.
func TestEverythingFilters(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := newServer(t, e, apiConfig())
			rec := loadSynthea(t, s, "../testdata/synthea/bundles/Chet_Thompson_eda17701-070d-4fae-9f7d-c8cd6263b63a.json", "")
			full := e.name == "sqlite" // FerretDB reads every document for every query: a cross-section there
			var other syntheaRecord
			if full {
				other = loadSynthea(t, s, "../testdata/synthea/bundles/Louis_Erdman_55bbe118-e08d-4408-86e5-6084457500d4.json", "")
			}
			ofTypes := func(types ...string) func(map[string]bool) map[string]bool {
				return func(all map[string]bool) map[string]bool {
					out := map[string]bool{}
					for k := range all {
						for _, typ := range types {
							if strings.HasPrefix(k, typ+"/") {
								out[k] = true
							}
						}
					}
					return out
				}
			}
			// Care dates in 2019-2020: the resource's care date overlaps
			// the range, or it has none; and what those refer to.
			lo, _, _ := fhir.DateRange("2019-03")
			_, hi, _ := fhir.DateRange("2020")
			inRange := func(ref string, res map[string]any) bool { return careDateIn(ref, res, lo, hi) }
			all := rec.expected(nil)
			tests := []struct {
				name, query string
				want        map[string]bool
				cross       bool // run on MongoDB too
			}{
				{"everything", "", all, false},
				{"_type of the compartment and outside it", "_type=Observation,Practitioner", ofTypes("Observation", "Practitioner")(all), true},
				{"_type repeated", "_type=Condition&_type=Organization", ofTypes("Condition", "Organization")(all), false},
				{"_type Binary (none in Synthea)", "_type=Binary", map[string]bool{}, false},
				{"start and end", "start=2019-03&end=2020", rec.expected(inRange), true},
				{"start and end with _type", "start=2019-03&end=2020&_type=Encounter,Practitioner", ofTypes("Encounter", "Practitioner")(rec.expected(inRange)), false},
				{"end before every record", "end=1900", rec.expected(func(ref string, res map[string]any) bool { return careDateIn(ref, res, fhir.MinDate, mustHigh("1900")) }), false},
			}
			for _, tt := range tests {
				if !full && !tt.cross {
					continue
				}
				t.Run(tt.name, func(t *testing.T) {
					path := "/Patient/" + rec.patient + "/$everything?_count=50"
					if tt.query != "" {
						path += "&" + tt.query
					}
					got, _, _ := everythingPages(t, s, path, 50)
					if d := diff(got, tt.want); d != "" {
						t.Fatal(d)
					}
				})
			}
			t.Run("_since: only what changed", func(t *testing.T) {
				since := time.Now().UTC().Truncate(time.Millisecond)
				var obs string
				for ref := range rec.resources {
					if strings.HasPrefix(ref, "Observation/") {
						obs = ref
						break
					}
				}
				res := rec.resources[obs]
				res["status"] = "amended"
				body, _ := json.Marshal(res)
				if r := s.do("PUT", "/"+obs, body); r.status != 200 {
					t.Fatalf("update: %d %s", r.status, r.body)
				}
				got, total, _ := everythingPages(t, s, "/Patient/"+rec.patient+"/$everything?_since="+url.QueryEscape(since.Format(time.RFC3339Nano)), 0)
				if d := diff(got, map[string]bool{obs: true}); d != "" || total != 1 {
					t.Fatalf("total %v: %s", total, d)
				}
			})
			t.Run("POST with a Parameters body", func(t *testing.T) {
				body := `{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Immunization,Organization"},{"name":"_count","valueInteger":2}]}`
				r := s.do("POST", "/Patient/"+rec.patient+"/$everything", []byte(body))
				ids, _, _, next := entries(t, r)
				if len(ids) != 2 || next == "" {
					t.Fatalf("first page %v, next %q", ids, next)
				}
				got, _, _ := everythingPages(t, s, strings.TrimPrefix(next, s.url), 2)
				for _, id := range ids {
					got[id] = true
				}
				if d := diff(got, ofTypes("Immunization", "Organization")(all)); d != "" {
					t.Fatal(d)
				}
			})
			t.Run("bad requests", func(t *testing.T) {
				r := s.do("GET", "/Patient/"+rec.patient+"/$everything?_count=3", nil)
				_, _, _, next := entries(t, r)
				u, _ := url.Parse(next)
				cursor := u.Query().Get("_cursor")
				for _, c := range []struct{ name, path, expression string }{
					{"unknown _type", "_type=Observation,Nope", "_type"},
					{"malformed start", "start=yesterday", "start"},
					{"malformed end", "end=2024-13", "end"},
					{"start after end", "start=2024&end=2020", "start"},
					{"malformed _since", "_since=2024-01-01T10", "_since"},
					{"negative _count", "_count=-1", "_count"},
					{"tampered cursor", "_count=3&_cursor=" + url.QueryEscape(cursor[:len(cursor)-2]+"xx"), "_cursor"},
					{"cursor of another search", "_count=4&_cursor=" + url.QueryEscape(cursor), "_cursor"},
				} {
					r := s.do("GET", "/Patient/"+rec.patient+"/$everything?"+c.path, nil)
					if _, ex, _ := outcome(t, r); r.status != 400 || ex != c.expression {
						t.Errorf("%s: %d %s", c.name, r.status, r.body)
					}
				}
				// Another patient's cursor is another search.
				if full {
					r = s.do("GET", "/Patient/"+other.patient+"/$everything?_count=3&_cursor="+url.QueryEscape(cursor), nil)
					if r.status != 400 {
						t.Errorf("cursor used for another patient: %d", r.status)
					}
				}
				r = s.do("POST", "/Patient/"+rec.patient+"/$everything", []byte(`{"resourceType":"Parameters","parameter":[{"name":"_type","valueCodeableConcept":{"text":"x"}}]}`))
				if _, ex, _ := outcome(t, r); r.status != 400 || !strings.Contains(ex, "Parameters.parameter[0]") {
					t.Errorf("POST with a complex value: %d %s", r.status, r.body)
				}
				if full {
					r = s.do("GET", "/Patient/"+rec.patient+"/$everything?_count=0&foo=bar", nil)
					ids, modes, total, _ := entries(t, r)
					if int(total) != len(all) || len(ids) != 1 || modes[0] != "outcome" {
						t.Errorf("_count=0 with an unknown parameter: total %v, entries %v", total, ids)
					}
				}
				if r := s.do("GET", "/Patient/"+rec.patient+"/$everything?foo=bar", nil, "Prefer", "handling=strict"); r.status != 400 {
					t.Errorf("unknown parameter, strict: %d", r.status)
				}
				if r := s.do("GET", "/Observation/x/$everything", nil); r.status != 404 {
					t.Errorf("$everything on Observation: %d", r.status)
				}
			})
		})
	}
}

func mustHigh(v string) int64 {
	_, h, ok := fhir.DateRange(v)
	if !ok {
		panic(v)
	}
	return h
}

// careDateIn is the selection of start and end: the resource's care date
// overlaps [lo, hi], or it has none.
func careDateIn(ref string, res map[string]any, lo, hi int64) bool {
	typ := strings.SplitN(ref, "/", 2)[0]
	p := fhir.CareDateParam(typ)
	if p == "" {
		return true
	}
	body, _ := json.Marshal(res)
	dated := false
	for _, d := range fhir.ExtractIndex(body).Dates {
		if d.Param == p {
			dated = true
			if d.Low <= hi && d.High >= lo {
				return true
			}
		}
	}
	return !dated
}

// TestEverythingAndSummaryFollowTheConsent: on the record of the consent
// matrix (a plain, a masked, a hidden-from-the-patient document, an
// observation) and two documents whose report is a Binary (one masked),
// each caller gets exactly what a search shows them, Binaries following
// their document; whom the patient did not authorize is refused (403) as
// for a compartment search.
func TestEverythingAndSummaryFollowTheConsent(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := newConsentServer(t, e)
			rec := s.seedRecord(t)
			feeder := "Bearer " + s.practitioner(psAuthorized, false)
			pat := "Bearer " + s.patient(rec.patient)
			put := func(path, body string) {
				t.Helper()
				if r := s.do("PUT", path, []byte(body), "Authorization", feeder); r.status != 201 {
					t.Fatalf("PUT %s: %d %s", path, r.status, r.body)
				}
			}
			for _, n := range []string{"open", "masked"} {
				put("/Binary/bin-"+n, `{"resourceType":"Binary","id":"bin-`+n+`","contentType":"application/pdf","securityContext":{"reference":"DocumentReference/doc-`+n+`"},"data":"JVBERi0="}`)
				put("/DocumentReference/doc-"+n, `{"resourceType":"DocumentReference","id":"doc-`+n+`","status":"current","type":{"coding":[{"system":"http://loinc.org","code":"11488-4"}]},"subject":{"reference":"Patient/`+rec.patient+`"},"content":[{"attachment":{"contentType":"application/pdf","url":"Binary/bin-`+n+`"}}]}`)
			}
			if r := s.do("POST", "/DocumentReference/doc-masked/$mask", nil, "Authorization", pat); r.status != 200 {
				t.Fatalf("$mask: %d %s", r.status, r.body)
			}
			// A report too large for its row: the server keeps its bytes
			// in blob storage, as a Binary of its own.
			big := s.do("POST", "/DocumentReference", []byte(`{"resourceType":"DocumentReference","status":"current","type":{"coding":[{"system":"http://loinc.org","code":"11488-4"}]},"subject":{"reference":"Patient/`+rec.patient+`"},"content":[{"attachment":{"contentType":"application/pdf","data":"`+strings.Repeat("JVBERi0x", 12000)+`"}}]}`), "Authorization", feeder)
			if big.status != 201 {
				t.Fatalf("large document: %d", big.status)
			}
			var bigDoc struct {
				ID      string `json:"id"`
				Content []struct {
					Attachment struct {
						URL string `json:"url"`
					} `json:"attachment"`
				} `json:"content"`
			}
			json.Unmarshal(big.body, &bigDoc)
			if !strings.HasPrefix(bigDoc.Content[0].Attachment.URL, "Binary/") {
				t.Fatalf("the large attachment (72 kB) was not moved to a Binary")
			}
			d := func(id string) string { return "DocumentReference/" + id }
			base := []string{"Patient/" + rec.patient, "Observation/" + rec.obs, d(rec.plain), d("doc-open"), "Binary/bin-open", d(bigDoc.ID), bigDoc.Content[0].Attachment.URL}
			masked := []string{d(rec.masked), d("doc-masked"), "Binary/bin-masked"}
			set := func(lists ...[]string) map[string]bool {
				out := map[string]bool{}
				for _, l := range lists {
					for _, x := range l {
						out[x] = true
					}
				}
				return out
			}
			btg := []string{"X-Access-Mode", "bris_de_glace", "X-Access-Reason", "patient inconscient"}
			callers := []struct {
				name    string
				token   string
				headers []string
				want    map[string]bool // nil: 403
			}{
				{"the patient", pat, nil, set(base, masked, []string{"Consent/dmp-" + rec.patient})},
				{"authorized professional", feeder, nil, set(base, []string{d(rec.invisible)})},
				{"médecin traitant", "Bearer " + s.practitioner(psTreating, false), nil, set(base, masked, []string{d(rec.invisible)})},
				{"stranger breaking the glass", "Bearer " + s.practitioner(psStranger, false), btg, set(base, masked, []string{d(rec.invisible)})},
				{"stranger", "Bearer " + s.practitioner(psStranger, false), nil, nil},
				{"blocked professional", "Bearer " + s.practitioner(psBlocked, false), nil, nil},
				{"another patient", "Bearer " + s.patient("someone-else"), nil, nil},
				{"a system client", "Bearer " + s.system(), nil, nil},
			}
			for _, c := range callers {
				if e.name != "sqlite" && !onMongo[c.name] && c.name != "stranger" {
					continue // FerretDB reads every document for every query: a cross-section there
				}
				t.Run(c.name, func(t *testing.T) {
					hdr := append([]string{"Authorization", c.token}, c.headers...)
					path := "/Patient/" + rec.patient + "/$everything?_count=3"
					if c.want == nil {
						if r := s.do("GET", path, nil, hdr...); r.status != 403 {
							t.Fatalf("$everything: %d, want 403: %s", r.status, r.body)
						}
						if r := s.do("GET", "/Patient/"+rec.patient+"/$summary", nil, hdr...); r.status != 403 {
							t.Fatalf("$summary: %d, want 403: %s", r.status, r.body)
						}
						return
					}
					got, _, _ := everythingPages(t, s, path, 3, hdr...)
					if df := diff(got, c.want); df != "" {
						t.Errorf("$everything: %s", df)
					}
					// The summary's reports are the documents among them.
					_, _, sections := readSummary(t, s, s.do("GET", "/Patient/"+rec.patient+"/$summary", nil, hdr...))
					reports := map[string]bool{}
					for _, ref := range sections["reports"] {
						reports[ref] = true
					}
					wantReports := map[string]bool{}
					for ref := range c.want {
						if strings.HasPrefix(ref, "DocumentReference/") {
							wantReports[ref] = true
						}
					}
					if df := diff(reports, wantReports); df != "" {
						t.Errorf("$summary reports: %s", df)
					}
				})
			}
			// A Binary in blob storage comes without its data (read at its
			// URL), and never with the server's pointer to its blob.
			r := s.do("GET", "/Patient/"+rec.patient+"/$everything?_type=Binary", nil, "Authorization", pat)
			if ids, _, _, _ := entries(t, r); len(ids) != 3 || strings.Contains(string(r.body), "binary-blob") {
				t.Errorf("Binaries: %v (blob pointer shown: %v)", ids, strings.Contains(string(r.body), "binary-blob"))
			}
			// The access history only when asked for, and only to the patient.
			if got, _, _ := everythingPages(t, s, "/Patient/"+rec.patient+"/$everything?_type=AuditEvent", 0, "Authorization", pat); len(got) == 0 {
				t.Errorf("the patient's _type=AuditEvent gave nothing")
			}
			if got, _, _ := everythingPages(t, s, "/Patient/"+rec.patient+"/$everything?_type=AuditEvent,Consent", 0, "Authorization", feeder); len(got) != 0 {
				t.Errorf("a professional got the patient's settings or trace: %v", keys(got))
			}
		})
	}
}

func TestCapabilityStatementListsEverythingAndSummaryOnPatient(t *testing.T) {
	s := newServer(t, engines[0], apiConfig())
	var cs struct {
		Rest []struct {
			Resource []struct {
				Type      string `json:"type"`
				Operation []struct {
					Name       string `json:"name"`
					Definition string `json:"definition"`
				} `json:"operation"`
			} `json:"resource"`
		} `json:"rest"`
	}
	if err := json.Unmarshal(s.do("GET", "/metadata", nil).body, &cs); err != nil {
		t.Fatal(err)
	}
	ops := map[string]string{}
	for _, r := range cs.Rest[0].Resource {
		if r.Type == "Patient" {
			for _, op := range r.Operation {
				ops[op.Name] = op.Definition
			}
		}
	}
	if ops["everything"] != "http://hl7.org/fhir/OperationDefinition/Patient-everything" || ops["summary"] == "" {
		t.Fatalf("Patient operations: %v", ops)
	}
}

// TestLocalReferencesReadsReferenceKeysOnly: the references $everything
// follows are read from the stored bytes: string values of "reference"
// keys at any depth (contained resources' included), escapes decoded,
// relative or under the base, and nothing from a value that only looks
// like one.
func TestLocalReferencesReadsReferenceKeysOnly(t *testing.T) {
	base := "http://srv/fhir"
	cases := []struct {
		name, body string
		want       []string
	}{
		{"relative and versioned", `{"subject":{"reference":"Patient/p1"},"encounter":{"reference":"Encounter/e1/_history/2"}}`, []string{"Patient/p1", "Encounter/e1"}},
		{"absolute under the base only", `{"a":{"reference":"http://srv/fhir/Organization/o1"},"b":{"reference":"http://other/fhir/Organization/o2"}}`, []string{"Organization/o1"}},
		{"spaces and escapes", `{"a" : { "reference" : "Practitioner\/pr1" }}`, []string{"Practitioner/pr1"}},
		{"in a contained resource and an array", `{"contained":[{"resourceType":"Medication","x":[{"reference":"Location/l1"}]}]}`, []string{"Location/l1"}},
		{"a value, an object, a quoted key in text", `{"code":"reference","reference":{"x":1},"div":"<p>\"reference\":\"Patient/p9\"</p>"}`, nil},
		{"unknown type, bad id, urn, fragment", `{"a":{"reference":"Nope/x"},"b":{"reference":"Patient/a b"},"c":{"reference":"urn:uuid:1"},"d":{"reference":"#c1"}}`, nil},
		{"cut short", `{"a":{"reference":"Patient/p1`, nil},
		{"a key ending in an escaped quote and reference", `{"x\"reference":"Organization/o1","y":{"reference":"Location/l1"}}`, []string{"Location/l1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := api.LocalReferences([]byte(c.body), base); !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}
