package api_test

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"
)

// seedClinical writes two patients and their observations, returning the
// patients' ids.
func seedClinical(t *testing.T, s *server) (helene, marc string) {
	t.Helper()
	create := func(body string) string {
		r := s.do("POST", "/"+strings.Split(strings.Split(body, `"resourceType":"`)[1], `"`)[0], []byte(body))
		if r.status != 201 {
			t.Fatalf("seed: %d %s", r.status, r.body)
		}
		return r.json(t)["id"].(string)
	}
	helene = create(`{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.250.1.213.1.4.10","value":"283052A123456"}],"name":[{"family":"Dupré","given":["Hélène"]}],"gender":"female","birthDate":"1983-05-12"}`)
	marc = create(`{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.250.1.213.1.4.10","value":"180017512345699"}],"name":[{"family":"Martin","given":["Marc"]}],"gender":"male","birthDate":"1980-01-01"}`)
	obs := func(patient, code, date string, value float64) {
		create(fmt.Sprintf(`{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"%s"}],"text":"Fréquence cardiaque"},"subject":{"reference":"Patient/%s"},"effectiveDateTime":"%s","valueQuantity":{"value":%v,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`, code, patient, date, value))
	}
	for i := 0; i < 25; i++ {
		obs(helene, "8867-4", fmt.Sprintf("2024-01-%02dT08:00:00Z", i+1), 60+float64(i))
	}
	obs(helene, "29463-7", "2019-06-01", 61)
	obs(marc, "8867-4", "2023-12-31T23:00:00Z", 80)
	return helene, marc
}

func entries(t *testing.T, r response) (ids []string, modes []string, total float64, next string) {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("search: %d %s", r.status, r.body)
	}
	b := r.json(t)
	if b["type"] != "searchset" {
		t.Fatalf("not a searchset: %s", r.body)
	}
	total = -1
	if v, ok := b["total"].(float64); ok {
		total = v
	}
	for _, l := range b["link"].([]any) {
		if l.(map[string]any)["relation"] == "next" {
			next = l.(map[string]any)["url"].(string)
		}
	}
	es, _ := b["entry"].([]any)
	for _, e := range es {
		m := e.(map[string]any)
		mode := m["search"].(map[string]any)["mode"].(string)
		modes = append(modes, mode)
		res := m["resource"].(map[string]any)
		if mode == "outcome" {
			ids = append(ids, "OperationOutcome")
			continue
		}
		ids = append(ids, res["resourceType"].(string)+"/"+res["id"].(string))
	}
	return
}

func TestSearchSelectsAndSortsAndPages(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *server) {
		helene, marc := seedClinical(t, s)
		cases := []struct {
			name  string
			query string
			want  int
		}{
			{"by patient", "/Observation?patient=" + helene, 26},
			{"by subject with type", "/Observation?subject=Patient/" + marc, 1},
			{"code system|code", "/Observation?code=http://loinc.org|8867-4", 26},
			{"code without system", "/Observation?code=29463-7", 1},
			{"code :not", "/Observation?patient=" + helene + "&code:not=http://loinc.org|8867-4", 1},
			{"code :text folds accents", "/Observation?code:text=frequence", 27},
			{"date ge", "/Observation?date=ge2024-01-20", 6},
			{"date year", "/Observation?date=2019", 1},
			{"date lt with zone", "/Observation?date=lt2024-01-01T00:30:00%2B01:00", 2},
			{"quantity gt", "/Observation?value-quantity=gt80", 4},
			{"quantity with unit", "/Observation?value-quantity=80|http://unitsofmeasure.org|/min", 2},
			{"name folds accents", "/Patient?name=helene", 1},
			{"name prefix", "/Patient?family=dup", 1},
			{"name exact is exact", "/Patient?family:exact=Dupre", 0},
			{"name contains", "/Patient?name:contains=artI", 1},
			{"identifier", "/Patient?identifier=urn:oid:1.2.250.1.213.1.4.10|283052A123456", 1},
			{"birthdate", "/Patient?birthdate=le1982", 1},
			{"comma is OR", "/Patient?gender=female,male", 2},
			{"repeat is AND", "/Observation?date=ge2024-01-10&date=lt2024-01-12", 2},
			{"_id list", "/Patient?_id=" + helene + "," + marc, 2},
			{"missing", "/Patient?address:missing=true", 2},
			{"not missing", "/Patient?birthdate:missing=false", 2},
			{"chain", "/Observation?subject:Patient.identifier=urn:oid:1.2.250.1.213.1.4.10|180017512345699", 1},
			{"has", "/Patient?_has:Observation:patient:code=29463-7", 1},
			{"_lastUpdated", "/Patient?_lastUpdated=gt2000-01-01", 2},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ids, _, total, _ := entries(t, s.do("GET", c.query+"&_count=100&_total=accurate", nil))
				if len(ids) != c.want || int(total) != c.want {
					t.Fatalf("%s: %d entries, total %v, want %d: %v", c.query, len(ids), total, c.want, ids)
				}
			})
		}

		// Newest first, 10 a page, every one exactly once.
		var dates []string
		next := "/Observation?patient=" + helene + "&_sort=-date&_count=10"
		for pages := 0; next != ""; pages++ {
			if pages > 5 {
				t.Fatal("paging does not end")
			}
			r := s.do("GET", strings.TrimPrefix(next, s.url), nil)
			b := r.json(t)
			_, _, _, next = entries(t, r)
			for _, e := range b["entry"].([]any) {
				res := e.(map[string]any)["resource"].(map[string]any)
				dates = append(dates, res["effectiveDateTime"].(string))
			}
			if pages == 1 && !strings.Contains(string(r.body), `"relation":"prev"`) {
				t.Errorf("page 2 has no prev link")
			}
		}
		if len(dates) != 26 || !sort.SliceIsSorted(dates, func(i, j int) bool { return dates[i] > dates[j] }) {
			t.Fatalf("paged %d dates, sorted newest first: %v", len(dates), dates)
		}
	})
}

// Observation's combo- parameters are the union of two others (combo-code
// is code | component-code), whose values the index does not store twice: a
// search on one is answered from its parts and finds what R4's expression
// says, for every value, modifier and prefix, :not and ne (which must hold
// for both parts) and :missing included; a sort on one is refused.
func TestComboParametersFindWhatTheirExpressionSays(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *server) {
		coding := func(code, display string) string {
			return `{"coding":[{"system":"urn:test:lab","code":"` + code + `","display":"` + display + `"}]}`
		}
		quantity := func(v string) string { return `{"value":` + v + `,"system":"http://unitsofmeasure.org","code":"mg"}` }
		seed := map[string]string{
			"c1": `{"resourceType":"Observation","id":"c1","status":"final","code":` + coding("A", "Alpha") + `,"valueQuantity":` + quantity("5") +
				`,"component":[{"code":` + coding("B", "Beta") + `,"valueQuantity":` + quantity("7") + `}]}`,
			"c2": `{"resourceType":"Observation","id":"c2","status":"final","code":` + coding("B", "Beta") + `,"valueQuantity":` + quantity("10") + `}`,
			"c3": `{"resourceType":"Observation","id":"c3","status":"final","code":` + coding("C", "Gamma") +
				`,"component":[{"code":` + coding("A", "Alpha") + `,"dataAbsentReason":{"coding":[{"system":"urn:test:dar","code":"x"}]}}]}`,
			"c4": `{"resourceType":"Observation","id":"c4","status":"final","code":` + coding("D", "Delta") + `,"dataAbsentReason":{"coding":[{"system":"urn:test:dar","code":"y"}]}}`,
		}
		for id, body := range seed {
			if r := s.do("PUT", "/Observation/"+id, []byte(body)); r.status != 201 {
				t.Fatalf("seed %s: %d %s", id, r.status, r.body)
			}
		}
		cases := []struct{ query, want string }{
			{"combo-code=A", "c1,c3"},
			{"combo-code=urn:test:lab|B", "c1,c2"},
			{"combo-code=A,D", "c1,c3,c4"},
			{"combo-code:not=A", "c2,c4"},
			{"combo-code:not=A,B", "c2,c3,c4"},
			{"combo-code:text=bet", "c1,c2"},
			{"combo-code=A&combo-code=B", "c1"},
			{"combo-code:missing=false", "c1,c2,c3,c4"},
			{"combo-value-quantity=7", "c1"},
			{"combo-value-quantity=gt6", "c1,c2"},
			{"combo-value-quantity=ne5", "c2,c3,c4"},
			{"combo-value-quantity:missing=true", "c3,c4"},
			{"combo-value-quantity:missing=false", "c1,c2"},
			{"combo-data-absent-reason=x,y", "c3,c4"},
			{"combo-data-absent-reason:not=x", "c1,c2,c4"},
			{"combo-code=A&code=C", "c3"},
		}
		for _, c := range cases {
			ids, _, _, _ := entries(t, s.do("GET", "/Observation?"+c.query+"&_sort=_id", nil))
			for i := range ids {
				ids[i] = strings.TrimPrefix(ids[i], "Observation/")
			}
			if got := strings.Join(ids, ","); got != c.want {
				t.Errorf("%s: found %q, want %q", c.query, got, c.want)
			}
		}
		// through a chain, where the union's clauses go into the chained query
		for id, result := range map[string]string{"r1": "c3", "r2": "c2"} {
			body := `{"resourceType":"DiagnosticReport","id":"` + id + `","status":"final","code":{"text":"r"},"result":[{"reference":"Observation/` + result + `"}]}`
			if r := s.do("PUT", "/DiagnosticReport/"+id, []byte(body)); r.status != 201 {
				t.Fatalf("seed %s: %d %s", id, r.status, r.body)
			}
		}
		for query, want := range map[string]string{"result.combo-code=A": "DiagnosticReport/r1", "result.combo-code=B": "DiagnosticReport/r2", "result.combo-value-quantity=ne10": "DiagnosticReport/r1"} {
			ids, _, _, _ := entries(t, s.do("GET", "/DiagnosticReport?"+query, nil))
			if got := strings.Join(ids, ","); got != want {
				t.Errorf("%s: found %q, want %q", query, got, want)
			}
		}
		r := s.do("GET", "/Observation?_sort=combo-code", nil)
		if _, expr, diag := outcome(t, r); r.status != 400 || expr != "_sort" || !strings.Contains(diag, "code and component-code") {
			t.Errorf("_sort=combo-code: %d %q %q, want 400 naming its parts", r.status, expr, diag)
		}
	})
}

func TestSearchRefusalsAndLenience(t *testing.T) {
	s := newServer(t, engines[0], apiConfig())
	helene, _ := seedClinical(t, s)
	cases := []struct {
		name, query string
		headers     []string
		status      int
		expression  string
	}{
		{"malformed date", "/Observation?date=2024-13", nil, 400, "date"},
		{"bad prefix becomes a bad date", "/Observation?date=xx2024", nil, 400, "date"},
		{"malformed number", "/Observation?value-quantity=lots", nil, 400, "value-quantity"},
		{"unknown modifier", "/Patient?name:phonetic=x", nil, 400, "name:phonetic"},
		{"strict refuses unknown", "/Patient?colour=red", []string{"Prefer", "handling=strict"}, 400, "colour"},
		{"bad _count", "/Patient?_count=many", nil, 400, "_count"},
		{"bad _sort", "/Patient?_sort=colour", nil, 400, "_sort"},
		{"tampered cursor", "/Patient?_cursor=abc.def", nil, 400, "_cursor"},
		{"ambiguous chain", "/Observation?performer.name=x", nil, 400, "performer.name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.do("GET", c.query, nil, c.headers...)
			if r.status != c.status {
				t.Fatalf("%d, want %d: %s", r.status, c.status, r.body)
			}
			if _, expr, _ := outcome(t, r); expr != c.expression {
				t.Fatalf("expression %q, want %q", expr, c.expression)
			}
		})
	}
	// Lenient: the unknown parameter is ignored and reported.
	ids, modes, _, _ := entries(t, s.do("GET", "/Patient?colour=red&_id="+helene, nil))
	if len(ids) != 2 || modes[1] != "outcome" {
		t.Fatalf("lenient search: %v %v", ids, modes)
	}
	// A cursor of one search does not open another.
	_, _, _, next := entries(t, s.do("GET", "/Observation?patient="+helene+"&_count=5", nil))
	u, _ := url.Parse(next)
	if r := s.do("GET", "/Observation?code=29463-7&_cursor="+url.QueryEscape(u.Query().Get("_cursor")), nil); r.status != 400 {
		t.Fatalf("cursor reused on another search: %d", r.status)
	}
}

func TestSearchIncludesCompartmentsAndSummaries(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *server) {
		helene, _ := seedClinical(t, s)
		ids, modes, _, _ := entries(t, s.do("GET", "/Observation?code=29463-7&_include=Observation:patient", nil))
		if len(ids) != 2 || modes[0] != "match" || modes[1] != "include" || ids[1] != "Patient/"+helene {
			t.Fatalf("_include: %v %v", ids, modes)
		}
		ids, modes, _, _ = entries(t, s.do("GET", "/Patient?_id="+helene+"&_revinclude=Observation:patient&_count=100", nil))
		if len(ids) != 27 || modes[0] != "match" || modes[26] != "include" {
			t.Fatalf("_revinclude: %d %v", len(ids), modes)
		}
		ids, _, total, _ := entries(t, s.do("GET", "/Patient/"+helene+"/Observation?code=29463-7", nil))
		if len(ids) != 1 || total != 1 {
			t.Fatalf("compartment search: %v", ids)
		}
		r := s.do("POST", "/Observation/_search", []byte("patient="+helene+"&_summary=count"), "Content-Type", "application/x-www-form-urlencoded")
		ids, _, total, _ = entries(t, r)
		if len(ids) != 0 || total != 26 {
			t.Fatalf("POST _search with _summary=count: %d entries, total %v", len(ids), total)
		}
		r = s.do("GET", "/Patient?_id="+helene+"&_elements=birthDate", nil)
		res := r.json(t)["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
		if res["birthDate"] == nil || res["name"] != nil || !strings.Contains(string(r.body), "SUBSETTED") {
			t.Fatalf("_elements: %v", res)
		}
	})
}

func TestIncludeIterateFollowsOneMoreLevel(t *testing.T) {
	s := newServer(t, engines[0], apiConfig())
	gp := s.do("POST", "/Practitioner", []byte(`{"resourceType":"Practitioner","name":[{"family":"Généraliste"}]}`)).json(t)["id"].(string)
	pat := s.do("POST", "/Patient", []byte(`{"resourceType":"Patient","generalPractitioner":[{"reference":"Practitioner/`+gp+`"}]}`)).json(t)["id"].(string)
	s.do("POST", "/Observation", []byte(`{"resourceType":"Observation","status":"final","code":{"text":"poids"},"subject":{"reference":"Patient/`+pat+`"}}`))
	ids, modes, _, _ := entries(t, s.do("GET", "/Observation?patient="+pat+"&_include=Observation:patient&_include:iterate=Patient:general-practitioner", nil))
	want := []string{"match", "include", "include"}
	if fmt.Sprint(modes) != fmt.Sprint(want) || ids[1] != "Patient/"+pat || ids[2] != "Practitioner/"+gp {
		t.Fatalf("entries %v %v, want the observation, its patient, and the patient's practitioner", ids, modes)
	}
	ids, _, _, _ = entries(t, s.do("GET", "/Observation?patient="+pat+"&_include=Observation:patient", nil))
	if len(ids) != 2 {
		t.Fatalf("without :iterate the practitioner came too: %v", ids)
	}
}
