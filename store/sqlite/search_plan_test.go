package sqlite

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/dmp-fhir/dmp-fhir/store"
)

// TestSearchPlans checks, with EXPLAIN QUERY PLAN on a store of 6,000
// resources, that every search shape reads index ranges only: no SCAN of a
// table or a whole index (SCAN p, the page of at most Count+1 rows, is the
// only scan), and that the benchmark shapes get the plan meant for them.
func TestSearchPlans(t *testing.T) {
	f := fillSearch(t, t.TempDir(), 6000)
	ctx := context.Background()
	p := f.patients[5]
	ref := func(param, typ, id string) store.Condition {
		return store.Condition{Param: param, Kind: store.KindReference, RefType: typ, RefID: id}
	}
	tok := func(param, system, code string) store.Condition {
		return store.Condition{Param: param, Kind: store.KindToken, System: system, Code: code, AnySystem: system == ""}
	}
	one := func(c store.Condition) store.Clause { return store.Clause{Any: []store.Condition{c}} }
	yes, no := true, false
	code := tok("code", "http://loinc.org", "8867-4")
	ge := store.Condition{Param: "date", Kind: store.KindDate, Range: store.Interval{HighAtLeast: ge2020()}}
	nir := one(tok("identifier", "urn:oid:1.2.250.1.213.1.4.8", "nir-"+p))
	cases := []struct {
		name string
		q    store.Query
		want string // "drive", "ordered", "stream", "patient" or "" (any)
	}{
		{"patient sort -date", benchShapes[0].query(p), "patient"},
		{"patient and status", benchShapes[1].query(p), "patient"},
		{"patient sort date", store.Query{Type: "Observation", Where: benchShapes[0].query(p).Where, Sort: []store.Sort{{Param: "date", Kind: store.KindDate}}}, "patient"},
		{"patient sort -_id", store.Query{Type: "Observation", Where: benchShapes[0].query(p).Where, Sort: []store.Sort{{Kind: store.KindID, Desc: true}}}, "patient"},
		{"patient sort -date after a cursor without a date", store.Query{Type: "Observation", Where: benchShapes[0].query(p).Where, Sort: benchShapes[0].query(p).Sort,
			After: encodeCursor(sortKeysOf(t, benchShapes[0].query(p).Sort), []any{nil, "o12"})}, "patient"},
		{"compartment OR, category, not masked, sort -date", store.Query{Type: "Observation", Where: []store.Clause{
			one(tok("category", "http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs")), one(ref("patient", "Patient", p)),
			{Any: []store.Condition{ref("subject", "Patient", p), ref("performer", "Patient", p)}},
			one(store.Condition{Param: "_security", Kind: store.KindToken, System: "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", Code: "R", Not: true})},
			Sort: []store.Sort{{Param: "date", Kind: store.KindDate, Desc: true}}}, "patient"},
		{"patient and an id", store.Query{Type: "Observation", Where: []store.Clause{one(ref("patient", "Patient", p)), one(store.Condition{Kind: store.KindID, Value: "o1"})}}, "drive"},
		{"AuditEvent patient sort -date (no pat_idx rows)", store.Query{Type: "AuditEvent", Where: []store.Clause{one(ref("patient", "Patient", p))}, Sort: []store.Sort{{Param: "date", Kind: store.KindDate, Desc: true}}}, "drive"},
		{"patient sort -_lastUpdated", store.Query{Type: "Observation", Where: benchShapes[0].query(p).Where, Sort: []store.Sort{{Kind: store.KindLastUpdated, Desc: true}}}, ""},
		{"patient, category, sort -date (W2)", benchShapes[2].query(p), "patient"},
		{"code and date", benchShapes[3].query(p), "ordered"},
		{"code and date after a cursor", store.Query{Type: "Observation", Where: benchShapes[3].query(p).Where, After: encodeCursor([]sortKey{{expr: frag{sql: "r.id"}, sig: "id"}}, []any{"o1234"})}, "ordered"},
		{"every observation", store.Query{Type: "Observation"}, "stream"},
		{"-_lastUpdated", store.Query{Type: "Observation", Sort: []store.Sort{{Kind: store.KindLastUpdated, Desc: true}}}, "stream"},
		{"date and _lastUpdated", store.Query{Type: "Observation", Where: []store.Clause{one(ge)}, Sort: []store.Sort{{Kind: store.KindLastUpdated}}}, "stream"},
		{"status:not", store.Query{Type: "Observation", Where: []store.Clause{one(store.Condition{Param: "status", Kind: store.KindToken, Code: "final", AnySystem: true, Not: true})}}, "stream"},
		{"date:missing", store.Query{Type: "Observation", Where: []store.Clause{one(store.Condition{Param: "date", Kind: store.KindDate, Missing: &yes})}}, "stream"},
		{"value-quantity:missing=false sort -date", store.Query{Type: "Observation", Where: []store.Clause{one(store.Condition{Param: "value-quantity", Kind: store.KindNumber, Missing: &no}), one(ref("patient", "Patient", p))}, Sort: []store.Sort{{Param: "date", Kind: store.KindDate, Desc: true}}}, "patient"},
		{"quantity range and patient", store.Query{Type: "Observation", Where: []store.Clause{one(store.Condition{Param: "value-quantity", Kind: store.KindNumber, Range: store.Interval{LowAtLeast: ge2020()}}), one(ref("patient", "Patient", p))}}, ""},
		{"code OR code sort date", store.Query{Type: "Observation", Where: []store.Clause{{Any: []store.Condition{code, tok("code", "http://loinc.org", "8310-5")}}, one(ref("subject", "", p))}, Sort: []store.Sort{{Param: "date", Kind: store.KindDate}}}, "drive"},
		{"code:text", store.Query{Type: "Observation", Where: []store.Clause{one(store.Condition{Param: "code:text", Kind: store.KindString, Value: "heart"})}}, ""},
		{"family:exact", store.Query{Type: "Patient", Where: []store.Clause{one(store.Condition{Param: "family", Kind: store.KindString, Value: "Nom-p1", Match: store.StringExact})}}, "drive"},
		{"_id", store.Query{Type: "Observation", Where: []store.Clause{{Any: []store.Condition{{Kind: store.KindID, Value: "o1"}, {Kind: store.KindID, Value: "o2"}}}}}, "drive"},
		{"_lastUpdated range", store.Query{Type: "MedicationRequest", Where: []store.Clause{one(store.Condition{Kind: store.KindLastUpdated, Range: store.Interval{HighAtLeast: ge2020()}})}}, ""},
		{"patient identifier", store.Query{Type: "Patient", Where: []store.Clause{nir}}, ""},
		{"patient name sort family", store.Query{Type: "Patient", Where: []store.Clause{one(store.Condition{Param: "name", Kind: store.KindString, Value: "nom-p1"})}, Sort: []store.Sort{{Param: "family", Kind: store.KindString}}}, "drive"},
		{"chain subject:Patient.identifier", store.Query{Type: "Observation", Where: []store.Clause{one(store.Condition{Param: "subject", Kind: store.KindReference, Chain: &store.Query{Type: "Patient", Where: []store.Clause{nir}}})}, Sort: []store.Sort{{Param: "date", Kind: store.KindDate, Desc: true}}}, "drive"},
		{"chain beside a code", store.Query{Type: "Observation", Where: []store.Clause{one(code), one(store.Condition{Param: "subject", Kind: store.KindReference, Chain: &store.Query{Type: "Patient", Where: []store.Clause{nir}}})}}, ""},
		{"_has", store.Query{Type: "Patient", Where: []store.Clause{one(store.Condition{Has: &store.HasQuery{Type: "Observation", Param: "patient", Where: []store.Clause{one(code), one(ge)}}})}}, ""},
		{"_has beside an identifier", store.Query{Type: "Patient", Where: []store.Clause{nir, one(store.Condition{Has: &store.HasQuery{Type: "MedicationRequest", Param: "patient", Where: []store.Clause{one(tok("status", "", "active"))}}})}}, ""},
	}
	for _, c := range cases {
		c.q.Count = 20
		pl, lines, err := f.s.explain(ctx, c.q)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got := "scan"
		switch {
		case pl.drive != nil:
			got = "drive"
		case pl.ordered != nil:
			got = "ordered"
		case pl.index != "":
			got = "stream"
		case pl.patient != nil:
			got = "patient"
		}
		plan := strings.Join(lines, "\n    ")
		if c.want != "" && got != c.want {
			t.Errorf("%s: plan %s, want %s:\n    %s", c.name, got, c.want, plan)
		}
		for _, l := range lines {
			if strings.HasPrefix(l, "SCAN ") && l != "SCAN p" {
				t.Errorf("%s: %s in\n    %s", c.name, l, plan)
			}
		}
		// Read in order: only the page itself is sorted (the patient plan's
		// page not even that).
		if got == "patient" && strings.Contains(plan, "USE TEMP B-TREE") {
			t.Errorf("%s: read along pat_idx but sorted:\n    %s", c.name, plan)
		}
		if got != "drive" && strings.Count(plan, "USE TEMP B-TREE FOR ORDER BY") > 1 {
			t.Errorf("%s: read in order but sorted:\n    %s", c.name, plan)
		}
		if testing.Verbose() {
			t.Logf("%s (%s):\n    %s", c.name, got, plan)
		}
	}
}

// An :exact string search reads the index by exact, which holds only the
// rows with one (a token's :text rows have none): the search must say so
// for SQLite to take it, and the :text rows must stay out of it.
func TestAnExactStringSearchReadsTheIndexOfExactValues(t *testing.T) {
	f := fillSearch(t, t.TempDir(), 600)
	ctx := context.Background()
	if _, err := f.s.Create(ctx, "Observation", "with-text", []byte(`{"resourceType":"Observation","status":"final",
		"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}],"text":"Fréquence cardiaque"}}`)); err != nil {
		t.Fatal(err)
	}
	q := store.Query{Type: "Patient", Count: 20, Where: []store.Clause{{Any: []store.Condition{
		{Param: "family", Kind: store.KindString, Value: "Nom-p1", Match: store.StringExact}}}}}
	_, lines, err := f.s.explain(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if plan := strings.Join(lines, "\n    "); !strings.Contains(plan, "str_exact_set") {
		t.Fatalf(":exact does not read str_exact_set:\n    %s", plan)
	}
	var texts, inIndex int
	if err := f.s.read.QueryRow(`SELECT count(*) FROM str_idx WHERE param LIKE '%:text'`).Scan(&texts); err != nil {
		t.Fatal(err)
	}
	if err := f.s.read.QueryRow(`SELECT count(*) FROM str_idx INDEXED BY str_exact_set WHERE exact <> '' AND param LIKE '%:text'`).Scan(&inIndex); err != nil {
		t.Fatal(err)
	}
	if texts == 0 || inIndex != 0 {
		t.Fatalf("%d :text rows, %d of them in str_exact_set", texts, inIndex)
	}
}

// TestReindex: Reindex rebuilds the index rows from the current bodies (here
// after they were lost), in batches, reporting progress; deleted resources
// stay out.
func TestReindex(t *testing.T) {
	f := fillSearch(t, t.TempDir(), 2500)
	ctx := context.Background()
	if _, _, err := f.s.Delete(ctx, "Observation", "o1", 0); err != nil {
		t.Fatal(err)
	}
	q := store.Query{Type: "Observation", Count: 5000, Total: true,
		Where: []store.Clause{{Any: []store.Condition{{Param: "status", Kind: store.KindToken, Code: "final", AnySystem: true}}}}}
	before, err := f.s.Search(ctx, q)
	if err != nil || before.Total < 2000 {
		t.Fatalf("before: %v %v", before.Total, err)
	}
	for _, tbl := range indexTables {
		if _, err := f.s.write.Exec("DELETE FROM " + tbl); err != nil {
			t.Fatal(err)
		}
	}
	if p, _ := f.s.Search(ctx, q); p.Total != 0 {
		t.Fatalf("index rows left: %d", p.Total)
	}
	var calls []int
	if err := f.s.Reindex(ctx, func(done int) { calls = append(calls, done) }); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 3 || calls[2] != 2500 {
		t.Fatalf("progress %v, want three batches ending at 2500", calls)
	}
	after, err := f.s.Search(ctx, q)
	if err != nil || after.Total != before.Total {
		t.Fatalf("after reindex: %d (%v), want %d", after.Total, err, before.Total)
	}
	var n int
	f.s.read.QueryRow(`SELECT count(*) FROM tok_idx t JOIN resources r ON r.rid = t.rid WHERE r.deleted = 1`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d index rows of deleted resources", n)
	}
}

// TestOpenUpgradesOldDatabase: a database of an older schema version is
// reindexed and its type statistics rebuilt at Open.
func TestOpenUpgradesOldDatabase(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := s.Create(ctx, "Patient", fmt.Sprint("p", i), benchPatient(fmt.Sprint("p", i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, stmt := range []string{"DELETE FROM tok_idx", "DELETE FROM str_idx", "DELETE FROM type_stats", "PRAGMA user_version = 0"} {
		if _, err := s.write.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := s.Search(ctx, store.Query{Type: "Patient", Count: 10, Total: true,
		Where: []store.Clause{{Any: []store.Condition{{Param: "identifier", Kind: store.KindToken, System: "urn:oid:1.2.250.1.213.1.4.8", Code: "nir-p1"}}}}})
	if err != nil || p.Total != 1 || len(p.Resources) != 1 || p.Resources[0].ID != "p1" {
		t.Fatalf("after upgrade: %+v %v", p, err)
	}
	var live int
	s.read.QueryRow("SELECT live FROM type_stats WHERE type = 'Patient'").Scan(&live)
	if live != 3 {
		t.Fatalf("type_stats: %d live patients, want 3", live)
	}
}

func sortKeysOf(t *testing.T, sorts []store.Sort) []sortKey {
	t.Helper()
	keys, err := sortKeys("Observation", sorts)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestOpenFillsPatientIndexOfSchema2: a database of schema 2 (without
// pat_idx rows), or of schema 5 (without their labels), gets at Open, from
// its other index tables, the very rows its resources' writes would have
// made: dates and their absence, every patient referred to, the Patient's
// own, the security labels, and none for deleted resources.
func TestOpenFillsPatientIndexOfSchema2(t *testing.T) {
	for _, schema := range []int{2, 5, 6} {
		t.Run(fmt.Sprint("schema ", schema), func(t *testing.T) { testOpenFillsPatientIndex(t, schema) })
	}
}

func testOpenFillsPatientIndex(t *testing.T, schema int) {
	dir := t.TempDir()
	f := fillSearch(t, dir, 600)
	ctx := context.Background()
	extra := map[string]string{
		"nodate":   `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"}}`,
		"twodates": `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"},"performer":[{"reference":"Patient/p2"}],"effectivePeriod":{"start":"2020-01-01","end":"2020-03-01"},"valueDateTime":"2019-05-05"}`,
		"deleted":  `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2021-01-01"}`,
		"labelled": `{"resourceType":"Observation","meta":{"security":[{"system":"urn:lab","code":"N"},{"system":"urn:lab","code":"MASQUE_PS"},{"system":"urn:a|b","code":"c"},{"code":"X"}]},"status":"final","category":[{"coding":[{"code":"survey"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2021-01-01"}`,
	}
	for id, body := range extra {
		if _, err := f.s.Create(ctx, "Observation", id, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := f.s.Delete(ctx, "Observation", "deleted", 0); err != nil {
		t.Fatal(err)
	}
	dump := func(s *Store) []string {
		rows, err := s.read.Query(`SELECT rid, type, patient, param, lo, hi, id || via || vid || '/' || sec FROM pat_idx ORDER BY rid, patient, param`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var rid, lo, hi int64
			var typ, pat, param, id string
			if err := rows.Scan(&rid, &typ, &pat, &param, &lo, &hi, &id); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%d %s %s %s %d %d %s", rid, typ, pat, param, lo, hi, id))
		}
		return out
	}
	want := dump(f.s)
	if !slices.ContainsFunc(want, func(r string) bool {
		return strings.Contains(r, "p2 date") && strings.Contains(r, "twodates,performer,")
	}) {
		t.Fatalf("no row of twodates in the record of p2, its performer: %v", want[len(want)-6:])
	}
	// The category and the labels, sorted, without the label whose system holds '|'.
	if !slices.ContainsFunc(want, func(r string) bool {
		return strings.Contains(r, "labelled") && strings.HasSuffix(r, "/\x1fcategory\x1esurvey\x1e\x1furn:lab|MASQUE_PS\x1furn:lab|N\x1f|X\x1f")
	}) {
		t.Fatalf("no labels on the entries of labelled: %q", want[len(want)-3:])
	}
	// An Observation's category beside its labels (none here).
	if !slices.ContainsFunc(want, func(r string) bool {
		return strings.HasSuffix(r, "/\x1fcategory\x1evital-signs\x1ehttp://terminology.hl7.org/CodeSystem/observation-category\x1f")
	}) {
		t.Fatalf("no category on the entries of the observations: %q", want[:3])
	}
	older := []string{"DELETE FROM pat_idx", "PRAGMA user_version = 2"}
	if schema == 5 { // pat_idx as it was: no sec column, indexes without it
		older = []string{"DROP INDEX pat_hi", "DROP INDEX pat_lo", "ALTER TABLE pat_idx DROP COLUMN sec",
			"CREATE INDEX pat_hi ON pat_idx(patient, type, param, hi DESC, id, via, vid)",
			"CREATE INDEX pat_lo ON pat_idx(patient, type, param, lo, id, via, vid) WHERE param <> '_id'",
			"PRAGMA user_version = 5"}
	}
	if schema == 6 { // the labels only: what a database of schema 6 holds
		older = []string{`UPDATE pat_idx SET sec = coalesce((SELECT char(31) || group_concat(system || '|' || code, char(31) ORDER BY system || '|' || code) || char(31)
			FROM tok_idx WHERE rid = pat_idx.rid AND param = '_security' AND instr(system, '|') = 0), '')`, "PRAGMA user_version = 6"}
	}
	for _, stmt := range older {
		if _, err := f.s.write.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	f.s.Close()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := dump(s); !slices.Equal(got, want) {
		t.Fatalf("after the upgrade: %d rows, want %d (first: %v / %v)", len(got), len(want), got[:min(3, len(got))], want[:3])
	}
}

// TestOpenPacksAuditEntitiesOfOlderSchemas: a database of schema 3, whose
// AuditEvent entity references and codes were in ref_idx and tok_idx (with
// their indexes by value), and one of schema 7, which had them in the tables
// ref_fwd and tok_fwd (a row each), have them in fwd_idx (a row per event)
// after Open, and searches by entity and by action find the same events
// before and after.
func TestOpenPacksAuditEntitiesOfOlderSchemas(t *testing.T) {
	for _, schema := range []int{3, 7} {
		t.Run(fmt.Sprint("schema ", schema), func(t *testing.T) { testOpenPacksAuditEntities(t, schema) })
	}
}

func testOpenPacksAuditEntities(t *testing.T, schema int) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 30 {
		body := fmt.Sprintf(`{"resourceType":"AuditEvent","type":{"code":"rest"},"action":"`+[]string{"R", "C", "U"}[i%3]+`","recorded":"2024-01-02T03:04:05Z",`+
			`"agent":[{"who":{"reference":"Practitioner/pr1"},"requestor":true}],"source":{"observer":{"display":"t"}},`+
			`"entity":[{"what":{"reference":"Patient/p%d"}},{"what":{"reference":"Observation/o%d"}}]}`, i%2, i%7)
		if _, err := s.Create(ctx, "AuditEvent", fmt.Sprintf("ae%d", i), []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	q := store.Query{Type: "AuditEvent", Count: 100, Total: true, Where: []store.Clause{{Any: []store.Condition{
		{Param: "entity", Kind: store.KindReference, RefType: "Observation", RefID: "o3"}}}}}
	qa := store.Query{Type: "AuditEvent", Count: 100, Total: true, Where: []store.Clause{{Any: []store.Condition{
		{Param: "action", Kind: store.KindToken, Code: "C", AnySystem: true}}}}}
	count := func(s *Store, table, param string) (n int) {
		if err := s.read.QueryRow("SELECT count(*) FROM "+table+" WHERE param = ?", param).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before, err := s.Search(ctx, q)
	if err != nil || before.Total != 4 {
		t.Fatalf("before: %v %v", before, err)
	}
	beforeA, err := s.Search(ctx, qa)
	if err != nil || beforeA.Total != 10 {
		t.Fatalf("before, by action: %v %v", beforeA, err)
	}
	if e, a := count(s, "ref_fwd", "entity"), count(s, "tok_fwd", "action"); e != 60 || a != 30 {
		t.Fatalf("ref_fwd holds %d entity rows, tok_fwd %d action rows, want 60 and 30", e, a)
	}
	packed := func(s *Store) (n int) {
		if err := s.read.QueryRow("SELECT count(*) FROM fwd_idx").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := packed(s); n != 30 {
		t.Fatalf("fwd_idx holds %d rows, want one per event, 30", n)
	}
	older := []string{ // what a database of schema 3 holds
		`INSERT INTO ref_idx(rid, type, param, ref_type, ref_id, url) SELECT rid, 'AuditEvent', param, ref_type, ref_id, url FROM ref_fwd`,
		`INSERT INTO tok_idx(rid, type, param, system, code, id) SELECT f.rid, 'AuditEvent', f.param, f.system, f.code, r.id FROM tok_fwd f JOIN resources r ON r.rid = f.rid`,
		`DELETE FROM fwd_idx`, "PRAGMA user_version = 3"}
	if schema == 7 { // the tables ref_fwd and tok_fwd, a row per value
		older = []string{
			`CREATE TABLE old_ref AS SELECT * FROM ref_fwd`, `CREATE TABLE old_tok AS SELECT * FROM tok_fwd`,
			`DROP VIEW ref_fwd`, `DROP VIEW tok_fwd`, `DELETE FROM fwd_idx`,
			`CREATE TABLE ref_fwd (rid INTEGER NOT NULL, param TEXT NOT NULL, ref_type TEXT NOT NULL, ref_id TEXT NOT NULL, url TEXT NOT NULL,
				PRIMARY KEY (rid, param, ref_type, ref_id, url)) WITHOUT ROWID`,
			`CREATE TABLE tok_fwd (rid INTEGER NOT NULL, param TEXT NOT NULL, system TEXT NOT NULL, code TEXT NOT NULL,
				PRIMARY KEY (rid, param, code, system)) WITHOUT ROWID`,
			`INSERT INTO ref_fwd SELECT * FROM old_ref`, `INSERT INTO tok_fwd SELECT * FROM old_tok`,
			`DROP TABLE old_ref`, `DROP TABLE old_tok`, "PRAGMA user_version = 7"}
	}
	for _, stmt := range older {
		if _, err := s.write.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var kinds string
	if err := s.read.QueryRow(`SELECT group_concat(type, ' ') FROM sqlite_schema WHERE name IN ('ref_fwd', 'tok_fwd')`).Scan(&kinds); err != nil || kinds != "view view" {
		t.Fatalf("after the upgrade ref_fwd and tok_fwd are %q (%v), want two views", kinds, err)
	}
	if n := packed(s); n != 30 {
		t.Fatalf("after the upgrade: fwd_idx holds %d rows, want 30", n)
	}
	if f, x := count(s, "ref_fwd", "entity"), count(s, "ref_idx", "entity"); f != 60 || x != 0 {
		t.Fatalf("after the upgrade: ref_fwd %d rows, ref_idx %d, want 60 and 0", f, x)
	}
	if f, x := count(s, "tok_fwd", "action"), count(s, "tok_idx", "action"); f != 30 || x != 0 {
		t.Fatalf("after the upgrade: tok_fwd %d action rows, tok_idx %d, want 30 and 0", f, x)
	}
	after, err := s.Search(ctx, q)
	if err != nil || after.Total != 4 || !slices.Equal(resourceIDs(after.Resources), resourceIDs(before.Resources)) {
		t.Fatalf("after: %v %v", after, err)
	}
	afterA, err := s.Search(ctx, qa)
	if err != nil || afterA.Total != 10 || !slices.Equal(resourceIDs(afterA.Resources), resourceIDs(beforeA.Resources)) {
		t.Fatalf("after, by action: %v %v", afterA, err)
	}
}

func resourceIDs(rs []*store.Resource) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

// The planner's live count per type follows a purge, of a live resource or
// of a deleted one (the trigger on resources' deletion).
func TestPurgeKeepsTheLiveCount(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		if _, err := s.Create(ctx, "Patient", id, []byte(`{"resourceType":"Patient"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Delete(ctx, "Patient", "b", 0); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		if err := s.Purge(ctx, "Patient", id); err != nil {
			t.Fatal(err)
		}
	}
	var live int
	if err := s.read.QueryRow(`SELECT live FROM type_stats WHERE type = 'Patient'`).Scan(&live); err != nil || live != 1 {
		t.Fatalf("type_stats counts %d live Patients (%v), want 1", live, err)
	}
}

// TestLiveCountFollowsEveryWrite: type_stats (the planner's live count per
// type) equals the live resources of each type after every kind of write:
// creations inside and outside a transaction, a transaction rolled back, a
// creation refused as already there inside a transaction that goes on (as
// the audit copy does), an update, a deletion, a restoration by update, a
// creation by update, purges.
func TestLiveCountFollowsEveryWrite(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	patient := []byte(`{"resourceType":"Patient"}`)
	obs := []byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"}}`)
	errRollback := errors.New("rolled back")
	steps := []struct {
		name string
		do   func() error
	}{
		{"creations", func() error {
			for _, id := range []string{"a", "b", "c"} {
				if _, err := s.Create(ctx, "Patient", id, patient); err != nil {
					return err
				}
			}
			return nil
		}},
		{"a transaction", func() error {
			return s.Transaction(ctx, func(tx store.Ops) error {
				for _, x := range []struct{ typ, id string }{{"Observation", "o1"}, {"Observation", "o2"}, {"Patient", "d"}} {
					body := obs
					if x.typ == "Patient" {
						body = patient
					}
					if _, err := tx.Create(ctx, x.typ, x.id, body); err != nil {
						return err
					}
				}
				return nil
			})
		}},
		{"a transaction rolled back", func() error {
			err := s.Transaction(ctx, func(tx store.Ops) error {
				for _, id := range []string{"o3", "o4"} {
					if _, err := tx.Create(ctx, "Observation", id, obs); err != nil {
						return err
					}
				}
				return errRollback
			})
			if !errors.Is(err, errRollback) {
				return fmt.Errorf("the transaction returned %v", err)
			}
			return nil
		}},
		{"a creation refused, the transaction going on", func() error {
			return s.Transaction(ctx, func(tx store.Ops) error {
				if _, err := tx.Create(ctx, "Observation", "o1", obs); !errors.Is(err, store.ErrExists) {
					return fmt.Errorf("creating o1 again: %v", err)
				}
				_, err := tx.Create(ctx, "Observation", "o5", obs)
				return err
			})
		}},
		{"an update", func() error { _, _, err := s.Put(ctx, "Patient", "a", patient, 0); return err }},
		{"a deletion", func() error { _, _, err := s.Delete(ctx, "Patient", "b", 0); return err }},
		{"a restoration", func() error { _, _, err := s.Put(ctx, "Patient", "b", patient, 0); return err }},
		{"a creation by update", func() error { _, _, err := s.Put(ctx, "Observation", "o6", obs, 0); return err }},
		{"purges", func() error {
			if _, _, err := s.Delete(ctx, "Patient", "c", 0); err != nil {
				return err
			}
			for _, id := range []string{"a", "c"} {
				if err := s.Purge(ctx, "Patient", id); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	counts := func(q string) map[string]int {
		rows, err := s.read.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		m := map[string]int{}
		for rows.Next() {
			var typ string
			var n int
			if err := rows.Scan(&typ, &n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				m[typ] = n
			}
		}
		return m
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		live := counts(`SELECT type, count(*) FROM resources WHERE deleted = 0 GROUP BY type`)
		if stats := counts(`SELECT type, live FROM type_stats`); !maps.Equal(stats, live) {
			t.Fatalf("after %s: type_stats counts %v, the live resources are %v", st.name, stats, live)
		}
	}
}

// TestPatientSearchTestsCategoryOnTheEntry: a patient's search on a
// category is tested on the pat_idx entries (no seek into tok_idx) and
// finds what the token's semantics say, for each form of the test: code in
// a system, in any system, without a system, :not, an OR of two, a code
// holding '|', beside the consent's label test; a system alone is tested
// by tok_idx, and finds the same as it did.
func TestPatientSearchTestsCategoryOnTheEntry(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	const sys = "http://terminology.hl7.org/CodeSystem/observation-category"
	cat := func(system, code string) string {
		if system == "" {
			return fmt.Sprintf(`{"coding":[{"code":%q}]}`, code)
		}
		return fmt.Sprintf(`{"coding":[{"system":%q,"code":%q}]}`, system, code)
	}
	obs := map[string]string{
		"a": `"category":[` + cat(sys, "vital-signs") + `],`,
		"b": `"category":[` + cat("", "vital-signs") + `],`,
		"c": `"category":[` + cat(sys, "laboratory") + `],`,
		"d": ``,
		"e": `"category":[` + cat(sys, "vital-signs") + `,` + cat(sys, "laboratory") + `],`,
		"f": `"category":[` + cat(sys, "a|b") + `],`,
		"g": `"meta":{"security":[{"system":"urn:lab","code":"MASQUE_PS"}]},"category":[` + cat(sys, "vital-signs") + `],`,
	}
	day := 1
	for _, id := range slices.Sorted(maps.Keys(obs)) {
		body := `{"resourceType":"Observation",` + obs[id] + `"status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2024-01-0` + fmt.Sprint(day) + `"}`
		day++
		if _, err := s.Create(ctx, "Observation", id, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	// Older vital signs, enough for the planner to read along pat_idx
	// rather than drive by the category (the pages hold 3).
	for i := range 40 {
		body := `{"resourceType":"Observation","category":[` + cat(sys, "vital-signs") + `],"status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2023-01-01"}`
		if _, err := s.Create(ctx, "Observation", fmt.Sprintf("old%02d", i), []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	// Another patient's observation, which no search of p1 may find.
	if _, err := s.Create(ctx, "Observation", "other", []byte(`{"resourceType":"Observation","category":[`+cat(sys, "vital-signs")+`],"status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p2"}}`)); err != nil {
		t.Fatal(err)
	}
	tok := func(system, code string, anySystem, not bool) store.Condition {
		return store.Condition{Param: "category", Kind: store.KindToken, System: system, Code: code, AnySystem: anySystem, Not: not}
	}
	notMasked := store.Clause{Any: []store.Condition{{Param: "_security", Kind: store.KindToken, System: "urn:lab", Code: "MASQUE_PS", Not: true}}}
	cases := []struct {
		name  string
		where []store.Clause
		test  string // "entry" or "seek" along pat_idx; "" any plan (a rare category drives)
		want  string // ids, newest first, a page of 3
	}{
		{"system|code", []store.Clause{{Any: []store.Condition{tok(sys, "vital-signs", false, false)}}}, "entry", "g e a"},
		{"code in any system", []store.Clause{{Any: []store.Condition{tok("", "vital-signs", true, false)}}}, "entry", "g e b"},
		{"|code", []store.Clause{{Any: []store.Condition{tok("", "vital-signs", false, false)}}}, "", "b"},
		{":not", []store.Clause{{Any: []store.Condition{tok(sys, "vital-signs", false, true)}}}, "entry", "f d c"},
		{"OR", []store.Clause{{Any: []store.Condition{tok(sys, "laboratory", false, false), tok(sys, "vital-signs", false, false)}}}, "entry", "g e c"},
		{"code holding |", []store.Clause{{Any: []store.Condition{tok(sys, "a|b", false, false)}}}, "", "f"},
		{"beside not masked", []store.Clause{{Any: []store.Condition{tok("", "vital-signs", true, false)}}, notMasked}, "entry", "e b a"},
		{"system|", []store.Clause{{Any: []store.Condition{tok(sys, "", false, false)}}}, "seek", "g f e"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := store.Query{Type: "Observation", Count: 3, Sort: []store.Sort{{Param: "date", Kind: store.KindDate, Desc: true}},
				Where: append([]store.Clause{{Any: []store.Condition{{Param: "patient", Kind: store.KindReference, RefType: "Patient", RefID: "p1"}}}}, c.where...)}
			page, err := s.Search(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range page.Resources {
				got = append(got, r.ID)
			}
			if strings.Join(got, " ") != c.want {
				t.Errorf("found %q, want %q", got, c.want)
			}
			pl, lines, err := s.explain(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			plan := strings.Join(lines, "\n    ")
			if c.test == "" {
				return
			}
			if pl.patient == nil {
				t.Fatalf("not the patient plan:\n    %s", plan)
			}
			if seeks := strings.Contains(plan, "code=?") || strings.Contains(plan, "(rid=? AND param=?)"); seeks != (c.test == "seek") {
				t.Errorf("seeks into tok_idx: %t, want %t:\n    %s", seeks, c.test == "seek", plan)
			}
		})
	}
}

// pat_idx holds no row for the dates of unsortedByPatient: none is written,
// and the placeholders a database of schema 8 holds are dropped at Open;
// a patient's search sorted by one gives the same page before and after.
func TestPatientIndexLeavesOutTheDatesNotSortedBy(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 6 {
		value := ""
		if i%2 == 0 {
			value = fmt.Sprintf(`,"valueDateTime":"2024-0%d-01"`, 6-i)
		}
		body := fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2024-01-0%d"%s}`, i+1, value)
		if _, err := s.Create(ctx, "Observation", fmt.Sprint("o", i), []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	rows := func(s *Store, param string) (n int) {
		if err := s.read.QueryRow(`SELECT count(*) FROM pat_idx WHERE type = 'Observation' AND param = ?`, param).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if d, v := rows(s, "date"), rows(s, "value-date"); d != 6 || v != 0 {
		t.Fatalf("pat_idx holds %d date rows and %d value-date rows, want 6 and 0", d, v)
	}
	q := store.Query{Type: "Observation", Count: 4, Where: []store.Clause{{Any: []store.Condition{
		{Param: "patient", Kind: store.KindReference, RefType: "Patient", RefID: "p1"}}}},
		Sort: []store.Sort{{Param: "value-date", Kind: store.KindDate, Desc: true}}}
	want := []string{"o0", "o2", "o4", "o1"} // newest value first, then those without one, by id
	before, err := s.Search(ctx, q)
	if err != nil || !slices.Equal(resourceIDs(before.Resources), want) {
		t.Fatalf("before: %v %v, want %v", resourceIDs(before.Resources), err, want)
	}
	// What schema 8 wrote: a row for value-date, a placeholder where none.
	if _, err := s.write.Exec(`INSERT INTO pat_idx(rid, type, patient, param, lo, hi, id, via, vid, sec)
		SELECT rid, type, patient, 'value-date', ?, ?, id, via, vid, sec FROM pat_idx WHERE param = '_id'`, int64(noDateLo), int64(noDateHi)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.write.Exec("PRAGMA user_version = 8"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if d, v := rows(s, "date"), rows(s, "value-date"); d != 6 || v != 0 {
		t.Fatalf("after the upgrade pat_idx holds %d date rows and %d value-date rows, want 6 and 0", d, v)
	}
	after, err := s.Search(ctx, q)
	if err != nil || !slices.Equal(resourceIDs(after.Resources), want) {
		t.Fatalf("after: %v %v, want %v", resourceIDs(after.Resources), err, want)
	}
}

// A reference held by a narrower parameter (Observation's patient is its
// subject when that is a Patient) is one ref_idx row, under the narrower
// one; the wider parameter still finds it, in every search form, and a
// database of schema 9 that holds it twice is brought to one row at Open.
func TestReferenceOfANarrowerParameterIsStoredOnce(t *testing.T) {
	if got := narrowerRefs()["Observation"]["subject"]; !slices.Equal(got, []string{"patient"}) {
		t.Fatalf("Observation subject's narrower parameters: %v, want [patient]", got)
	}
	if got := narrowerRefs()["Encounter"]["participant"]; !slices.Equal(got, []string{"practitioner"}) {
		t.Fatalf("Encounter participant's narrower parameters: %v, want [practitioner]", got)
	}
	if got := narrowerRefs()["AuditEvent"]; len(got) != 0 {
		t.Fatalf("AuditEvent's narrower parameters: %v, want none (its patient is a union)", got)
	}
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	subjects := []string{`{"reference":"Patient/p1"}`, `{"reference":"Group/g1"}`, `{"reference":"http://other.example/fhir/Patient/p1"}`,
		`{"reference":"#c1"}`, `{"reference":"Patient/p2"}`}
	if _, err := s.Create(ctx, "Patient", "p1", []byte(`{"resourceType":"Patient","name":[{"family":"Durand"}]}`)); err != nil {
		t.Fatal(err)
	}
	for i, subj := range subjects {
		body := fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":%s,"contained":[{"resourceType":"Patient","id":"c1"}]}`, subj)
		if _, err := s.Create(ctx, "Observation", fmt.Sprint("o", i), []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	rows := func(s *Store) (out []string) {
		r, err := s.read.Query(`SELECT r.id || ' ' || x.param FROM ref_idx x JOIN resources r ON r.rid = x.rid
			WHERE x.type = 'Observation' AND x.param IN ('subject', 'patient') ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for r.Next() {
			var v string
			r.Scan(&v)
			out = append(out, v)
		}
		return out
	}
	wantRows := []string{"o0 patient", "o1 subject", "o2 patient", "o3 patient", "o4 patient"}
	if got := rows(s); !slices.Equal(got, wantRows) {
		t.Fatalf("ref_idx rows %q, want %q", got, wantRows)
	}
	ref := func(param, typ, id string) store.Condition {
		return store.Condition{Param: param, Kind: store.KindReference, RefType: typ, RefID: id}
	}
	missing := true
	queries := []struct {
		name string
		cond store.Condition
		want []string
	}{
		{"subject=Patient/p1", ref("subject", "Patient", "p1"), []string{"o0", "o2"}},
		{"subject=p1 (any type)", store.Condition{Param: "subject", Kind: store.KindReference, RefID: "p1"}, []string{"o0", "o2"}},
		{"subject=Group/g1", ref("subject", "Group", "g1"), []string{"o1"}},
		{"subject by URL", store.Condition{Param: "subject", Kind: store.KindReference, URL: "http://other.example/fhir/Patient/p1"}, []string{"o2"}},
		{"subject:Patient", store.Condition{Param: "subject", Kind: store.KindReference, RefType: "Patient"}, []string{"o0", "o2", "o4"}},
		{"patient=Patient/p1", ref("patient", "Patient", "p1"), []string{"o0", "o2"}},
		{"patient=Group/g1", ref("patient", "Group", "g1"), nil},
		{"subject:missing=true", store.Condition{Param: "subject", Kind: store.KindReference, Missing: &missing}, nil},
		{"patient:missing=true", store.Condition{Param: "patient", Kind: store.KindReference, Missing: &missing}, []string{"o1"}},
		{"subject:Patient.name=durand", store.Condition{Param: "subject", Kind: store.KindReference, Chain: &store.Query{Type: "Patient",
			Where: []store.Clause{{Any: []store.Condition{{Param: "name", Kind: store.KindString, Value: "durand"}}}}}}, []string{"o0", "o2"}}, // o2: by type and id, as before
	}
	search := func(s *Store, label string) {
		for _, q := range queries {
			for _, not := range []bool{false, true} {
				c := q.cond
				c.Not = not
				want := q.want
				if not {
					want = slices.DeleteFunc([]string{"o0", "o1", "o2", "o3", "o4"}, func(id string) bool { return slices.Contains(q.want, id) })
				}
				p, err := s.Search(ctx, store.Query{Type: "Observation", Count: 20, Where: []store.Clause{{Any: []store.Condition{c}}}})
				if err != nil {
					t.Fatalf("%s, %s (not %v): %v", label, q.name, not, err)
				}
				if got := resourceIDs(p.Resources); !slices.Equal(got, want) {
					t.Errorf("%s, %s (not %v): %v, want %v", label, q.name, not, got, want)
				}
			}
		}
		// _has: the patients an Observation's subject names.
		p, err := s.Search(ctx, store.Query{Type: "Patient", Count: 20, Where: []store.Clause{{Any: []store.Condition{{Kind: store.KindReference,
			Has: &store.HasQuery{Type: "Observation", Param: "subject", Where: []store.Clause{{Any: []store.Condition{{Param: "status", Kind: store.KindToken, Code: "final", AnySystem: true}}}}}}}}}})
		if err != nil || !slices.Equal(resourceIDs(p.Resources), []string{"p1"}) {
			t.Errorf("%s, _has:Observation:subject:status=final: %v %v, want [p1]", label, resourceIDs(p.Resources), err)
		}
	}
	search(s, "now")
	// What schema 9 wrote: the subject row beside the patient row.
	if _, err := s.write.Exec(`INSERT INTO ref_idx(rid, type, param, ref_type, ref_id, url)
		SELECT rid, type, 'subject', ref_type, ref_id, url FROM ref_idx WHERE type = 'Observation' AND param = 'patient'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.write.Exec("PRAGMA user_version = 9"); err != nil {
		t.Fatal(err)
	}
	search(s, "with both rows")
	s.Close()
	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := rows(s); !slices.Equal(got, wantRows) {
		t.Fatalf("after the upgrade: ref_idx rows %q, want %q", got, wantRows)
	}
	search(s, "after the upgrade")
}

// A clause another one implies is not tested: the consent's compartment
// clause beside the search's own patient parameter costs nothing, and the
// page is the same.
func TestImpliedClausesAreDropped(t *testing.T) {
	ref := func(param, typ, id string) store.Condition {
		return store.Condition{Param: param, Kind: store.KindReference, RefType: typ, RefID: id}
	}
	one := func(c store.Condition) store.Clause { return store.Clause{Any: []store.Condition{c}} }
	not := ref("patient", "Patient", "p1")
	not.Not = true
	chained := ref("patient", "Patient", "")
	chained.Chain = &store.Query{Type: "Patient", Where: []store.Clause{one(store.Condition{Param: "name", Kind: store.KindString, Value: "x"})}}
	url := store.Condition{Param: "subject", Kind: store.KindReference, URL: "http://elsewhere/Patient/p1"}
	patient, compartment := one(ref("patient", "Patient", "p1")), store.Clause{Any: []store.Condition{ref("subject", "Patient", "p1"), ref("performer", "Patient", "p1")}}
	category := one(store.Condition{Param: "category", Kind: store.KindToken, Code: "vital-signs", AnySystem: true})
	cases := []struct {
		name        string
		where, want []store.Clause
	}{
		{"the compartment beside the patient", []store.Clause{compartment, patient, category}, []store.Clause{patient, category}},
		{"the wider parameter alone", []store.Clause{one(ref("subject", "Patient", "p1")), patient}, []store.Clause{patient}},
		{"the narrower parameter is not implied by the wider", []store.Clause{one(ref("subject", "Patient", "p1")), one(ref("patient", "Patient", "p1"))}, []store.Clause{one(ref("patient", "Patient", "p1"))}},
		{"a duplicate is kept once", []store.Clause{patient, patient}, []store.Clause{patient}},
		{"another patient", []store.Clause{patient, {Any: []store.Condition{ref("subject", "Patient", "p2"), ref("performer", "Patient", "p2")}}}, nil},
		{"another type of target", []store.Clause{patient, one(ref("subject", "Group", "p1"))}, nil},
		{"a wider clause does not imply a narrower one", []store.Clause{compartment, one(ref("patient", "Patient", "p1")), category}, []store.Clause{one(ref("patient", "Patient", "p1")), category}},
		{"a negated reference implies nothing", []store.Clause{one(not), compartment}, nil},
		{"a chain implies nothing", []store.Clause{one(chained), compartment}, nil},
		{"a URL reference implies nothing", []store.Clause{one(url), compartment}, nil},
		{"a clause of two alternatives implies nothing", []store.Clause{compartment, one(ref("subject", "Patient", "p1"))}, []store.Clause{one(ref("subject", "Patient", "p1"))}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := c.want
			if want == nil {
				want = c.where
			}
			got := withoutImplied("Observation", c.where)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("kept\n%v\nwant\n%v", got, want)
			}
		})
	}

	// Over a real store: the statement is the one without the compartment
	// clause, and so is the page.
	f := fillSearch(t, t.TempDir(), 3000)
	ctx := context.Background()
	p := f.patients[2]
	notMasked := one(store.Condition{Param: "_security", Kind: store.KindToken, System: "urn:lab", Code: "MASQUE_PS", Not: true})
	scoped := store.Query{Type: "Observation", Count: 50, Sort: []store.Sort{{Param: "date", Kind: store.KindDate, Desc: true}},
		Where: []store.Clause{one(ref("patient", "Patient", p)), category,
			{Any: []store.Condition{ref("subject", "Patient", p), ref("performer", "Patient", p)}}, notMasked}}
	plain := scoped
	plain.Where = []store.Clause{one(ref("patient", "Patient", p)), category, notMasked}
	statement := func(q store.Query) string {
		pl := &planner{ctx: ctx, db: f.s.read}
		keys, after, _, plan, err := pl.prepare(&q)
		if err != nil {
			t.Fatal(err)
		}
		fr, err := pl.buildPage(q, keys, after, plan)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(fr.sql, fr.args)
	}
	if a, b := statement(scoped), statement(plain); a != b {
		t.Errorf("with the compartment clause:\n%s\nwithout:\n%s", a, b)
	}
	ids := func(q store.Query) string {
		page, err := f.s.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range page.Resources {
			out = append(out, r.ID)
		}
		return strings.Join(out, " ")
	}
	if a, b := ids(scoped), ids(plain); a != b || a == "" {
		t.Errorf("pages differ or are empty:\n%s\n%s", a, b)
	}
}
