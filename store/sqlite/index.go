package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// indexTables are the tables holding the search values of current versions.
var indexTables = []string{"tok_idx", "str_idx", "ref_idx", "fwd_idx", "date_idx", "num_idx", "uri_idx", "pat_idx"}

// forwardOnly are the reference and token parameters (type, then
// parameter) kept in fwd_idx instead of ref_idx and tok_idx: listed by
// their resource, never searched by value alone, so that writing them
// appends one row (read through the views ref_fwd and tok_fwd). They are
// AuditEvent's, written on every access: entity lists the resources read (up
// to a page of them), which an index by target would write on a random page
// each; action, outcome, type and
// subtype take a handful of values, each shared by a large part of the
// trail, useless to drive a search. A search by them is still answered, by
// testing the candidates another clause finds (the patient, the agent, the
// professional's altid, the date) or, without one, every AuditEvent.
var forwardOnly = map[string]map[string]bool{"AuditEvent": {
	"entity": true, "action": true, "outcome": true, "type": true, "subtype": true}}

// refTable is the table of the values of reference parameter param of typ.
func refTable(typ, param string) string {
	if forwardOnly[typ][param] {
		return "ref_fwd"
	}
	return "ref_idx"
}

// refNarrowing is a reference parameter whose expression is another's
// (wider) narrowed to one target type: Observation's patient is
// subject.where(resolve() is Patient), Encounter's practitioner is
// participant.individual.where(resolve() is Practitioner). Every value of the
// narrower parameter is a value of the wider one, extracted from the same
// reference: ref_idx keeps it once, under the narrower parameter, and the
// wider parameter's values are its own rows and those of its narrower ones
// (paramTest). A Patient-subject Observation's reference was two rows (two
// B-tree inserts each, three with a URL) in the write path; it is one.
type refNarrowing struct{ typ, wider, narrower string }

// refNarrowings are every type's narrowings, in a fixed order.
var refNarrowings = sync.OnceValue(func() []refNarrowing {
	var out []refNarrowing
	for _, t := range fhir.TypeNames() {
		wider := map[string]string{} // expression to parameter
		for _, sp := range fhir.SearchParams(t) {
			if sp.Type == "reference" && !forwardOnly[t][sp.Name] {
				wider[sp.Expression] = sp.Name
			}
		}
		for _, sp := range fhir.SearchParams(t) {
			if sp.Type != "reference" || forwardOnly[t][sp.Name] {
				continue
			}
			// Exactly "<base>.where(resolve() is <Type>)", base a single path.
			base, rest, ok := strings.Cut(sp.Expression, ".where(resolve() is ")
			target, closed := strings.CutSuffix(rest, ")")
			if w, found := wider[base]; ok && closed && found && w != sp.Name && target != "" && !strings.ContainsAny(target, " .()|") && !strings.Contains(base, "|") {
				out = append(out, refNarrowing{t, w, sp.Name})
			}
		}
	}
	return out
})

// narrowerRefs maps, by type, a wider reference parameter to its narrower
// ones (refNarrowings).
var narrowerRefs = sync.OnceValue(func() map[string]map[string][]string {
	m := map[string]map[string][]string{}
	for _, n := range refNarrowings() {
		if m[n.typ] == nil {
			m[n.typ] = map[string][]string{}
		}
		m[n.typ][n.wider] = append(m[n.typ][n.wider], n.narrower)
	}
	return m
})

// paramTest is the test of column col (a ref_idx or other index table's
// param) for the values of parameter param of typ: param itself, or for a
// reference parameter with narrower ones (narrowerRefs), any of them.
func paramTest(col, typ string, kind store.Kind, param string) frag {
	if kind == store.KindReference {
		if narrower := narrowerRefs()[typ][param]; len(narrower) > 0 {
			args := []any{param}
			for _, n := range narrower {
				args = append(args, n)
			}
			return frag{col + " IN (" + placeholders(len(args)) + ")", args}
		}
	}
	return frag{col + " = ?", []any{param}}
}

// tokTable is the table of the values of token parameter param of typ.
func tokTable(typ, param string) string {
	if forwardOnly[typ][param] {
		return "tok_fwd"
	}
	return "tok_idx"
}

// pending holds index rows of a transaction's writes, by table, to be
// inserted together: in chunks of 32 rows across resources, rather than a
// few statements for each resource. Every row's first column is its rid.
type pending struct {
	rows map[string][][]any
	rids map[int64]bool // the resources with rows here
	n    int
	err  error // a failed flush: the transaction must not commit
	// lastRead is the transaction's last read of a current version, until
	// its next write (ops.current).
	lastRead *lastRead
}

// pendingMax bounds the rows held (a few megabytes).
const pendingMax = 16384

func (p *pending) add(table string, rows [][]any) {
	if len(rows) == 0 {
		return
	}
	if p.rows == nil {
		p.rows, p.rids = map[string][][]any{}, map[int64]bool{}
	}
	p.rows[table] = append(p.rows[table], rows...)
	p.rids[rows[0][0].(int64)] = true
	p.n += len(rows)
}

// drop forgets the pending rows of resource rid.
func (p *pending) drop(rid int64) {
	if !p.rids[rid] {
		return
	}
	delete(p.rids, rid)
	for t, rows := range p.rows {
		kept := rows[:0]
		for _, r := range rows {
			if r[0].(int64) != rid {
				kept = append(kept, r)
			}
		}
		p.n -= len(rows) - len(kept)
		p.rows[t] = kept
	}
}

// flush inserts the pending rows, table by table.
func (p *pending) flush(ctx context.Context, tx *sql.Tx, stmts map[string]*sql.Stmt) error {
	if p.err != nil || p.n == 0 {
		return p.err
	}
	q := txQuerier{tx: tx, stmts: stmts}
	for _, t := range indexTables {
		if err := insertRows(ctx, q, t, p.rows[t]); err != nil {
			p.err = err
			return err
		}
	}
	clear(p.rows)
	clear(p.rids)
	p.n = 0
	return nil
}

// clearTexts are the DELETEs of clearIndex, by table.
var clearTexts = func() map[string]string {
	m := map[string]string{}
	for _, t := range indexTables {
		m[t] = `DELETE FROM ` + t + ` WHERE rid = ?`
	}
	return m
}()

// indexFree are the statements that need no pending index row written
// first: the write path's reads and writes of history and resources, and
// clearIndex's DELETEs (clearIndex drops its resource's pending rows).
var indexFree = func() map[string]bool {
	m := map[string]bool{sqlCurrent: true, sqlVRead: true, sqlInsertHistory: true, sqlInsertResource: true, sqlUpdateResource: true}
	for _, t := range clearTexts {
		m[t] = true
	}
	return m
}()

// clearIndex removes every index row of resource rid: its pending ones
// (a resource written twice in one transaction), then its stored ones.
func clearIndex(ctx context.Context, q querier, rid int64) error {
	if tq, ok := q.(txQuerier); ok && tq.pend != nil {
		tq.pend.drop(rid)
	}
	for _, t := range indexTables {
		if _, err := q.ExecContext(ctx, clearTexts[t], rid); err != nil {
			return fmt.Errorf("sqlite: clear index: %w", err)
		}
	}
	return nil
}

// chunkSizes are the row counts of the multi-row INSERTs: the rows of one
// resource are written in chunks of these sizes (largest first), so that a
// handful of statement texts, prepared once, serve every write.
var chunkSizes = []int{32, 16, 8, 4, 2, 1}

// insertSQL is the INSERT of n rows of cols (ncols values each) into table.
func insertSQL(table, cols string, ncols, n int) string {
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", ncols), ", ") + ")"
	return "INSERT OR IGNORE INTO " + table + "(" + cols + ") VALUES " + strings.TrimSuffix(strings.Repeat(one+", ", n), ", ")
}

// indexColumns are the columns of each index table.
var indexColumns = []struct {
	table, cols string
	n           int
}{
	{"tok_idx", "rid, type, param, system, code, id", 6},
	{"str_idx", "rid, type, param, norm, exact", 5},
	{"ref_idx", "rid, type, param, ref_type, ref_id, url", 6},
	{"fwd_idx", "rid, refs, toks", 3},
	{"date_idx", "rid, type, param, low, high", 5},
	{"num_idx", "rid, type, param, value, system, code", 6},
	{"uri_idx", "rid, type, param, value", 4},
	{"pat_idx", "rid, type, patient, param, lo, hi, id, via, vid, sec", 10},
}

// insertTexts holds the INSERT of each table and chunk size.
var insertTexts = func() map[string]map[int]string {
	m := map[string]map[int]string{}
	for _, t := range indexColumns {
		m[t.table] = map[int]string{}
		for _, size := range chunkSizes {
			m[t.table][size] = insertSQL(t.table, t.cols, t.n, size)
		}
	}
	return m
}()

// insertRows writes rows (each with a value for every column of table, as
// indexColumns lists them) into table. Duplicate values (same primary key)
// are kept once.
func insertRows(ctx context.Context, q querier, table string, rows [][]any) error {
	if tq, ok := q.(txQuerier); ok && tq.pend != nil {
		tq.pend.add(table, rows)
		if tq.pend.n >= pendingMax {
			return tq.pend.flush(ctx, tq.tx, tq.stmts)
		}
		return nil
	}
	for len(rows) > 0 {
		size := 1
		for _, c := range chunkSizes {
			if len(rows) >= c {
				size = c
				break
			}
		}
		chunk := rows[:size]
		rows = rows[size:]
		args := make([]any, 0, len(chunk[0])*len(chunk))
		for _, r := range chunk {
			args = append(args, r...)
		}
		if _, err := q.ExecContext(ctx, insertTexts[table][size], args...); err != nil {
			return fmt.Errorf("sqlite: write index %s: %w", table, err)
		}
	}
	return nil
}

// heldByNarrower says whether reference v is also a value of one of the
// parameters narrower (narrowerRefs of v.Param), which holds it in ref_idx.
func heldByNarrower(refs []fhir.Reference, narrower []string, v fhir.Reference) bool {
	for _, n := range narrower {
		for _, r := range refs {
			if r.Param == n && r.Type == v.Type && r.ID == v.ID && r.URL == v.URL {
				return true
			}
		}
	}
	return false
}

// dropWiderRefs deletes the ref_idx rows of a wider reference parameter that
// a narrower one holds too (narrowerRefs), which databases of schema 9 and
// before hold twice.
func (s *Store) dropWiderRefs(ctx context.Context) error {
	for _, n := range refNarrowings() {
		if _, err := s.write.ExecContext(ctx, `DELETE FROM ref_idx WHERE type = ? AND param = ? AND EXISTS (
			SELECT 1 FROM ref_idx n WHERE n.rid = ref_idx.rid AND n.param = ? AND n.ref_type = ref_idx.ref_type
				AND n.ref_id = ref_idx.ref_id AND n.url = ref_idx.url)`, n.typ, n.wider, n.narrower); err != nil {
			return err
		}
	}
	return nil
}

// packValues is the JSON array of fwd_idx's refs or toks column: the
// values sorted, each once (as the primary key of the tables ref_fwd and
// tok_fwd kept them before).
func packValues(vals [][]string) string {
	slices.SortFunc(vals, slices.Compare)
	vals = slices.CompactFunc(vals, slices.Equal)
	var b []byte
	b = append(b, '[')
	for i, v := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		for j, s := range v {
			if j > 0 {
				b = append(b, ',')
			}
			b = fhir.AppendString(b, s)
		}
		b = append(b, ']')
	}
	return string(append(b, ']'))
}

// writeIndex stores the index values ix of resource typ/id (rid), whose
// current version is the history row vid.
func writeIndex(ctx context.Context, q querier, rid, vid int64, typ, id string, ix *fhir.Index) error {
	// The values every row of the resource repeats, boxed once: each
	// row's []any would box them again, an allocation each.
	ridV, typV, idV := any(rid), any(typ), any(id)
	fwdParams := forwardOnly[typ]
	var fwdRefs, fwdToks [][]string
	if len(ix.Tokens) > 0 {
		rows := make([][]any, 0, len(ix.Tokens))
		for _, v := range ix.Tokens {
			if fwdParams[v.Param] {
				fwdToks = append(fwdToks, []string{v.Param, v.System, v.Code})
				continue
			}
			rows = append(rows, []any{ridV, typV, v.Param, v.System, v.Code, idV})
		}
		if err := insertRows(ctx, q, "tok_idx", rows); err != nil {
			return err
		}
	}
	if len(ix.Strings) > 0 {
		rows := make([][]any, len(ix.Strings))
		for i, v := range ix.Strings {
			exact := v.Exact
			if fhir.IsTextParam(v.Param) {
				exact = "" // searched by norm only: out of str_exact_set
			}
			rows[i] = []any{ridV, typV, v.Param, v.Norm, exact}
		}
		if err := insertRows(ctx, q, "str_idx", rows); err != nil {
			return err
		}
	}
	if len(ix.References) > 0 {
		rows := make([][]any, 0, len(ix.References))
		narrower := narrowerRefs()[typ]
		for _, v := range ix.References {
			if fwdParams[v.Param] {
				fwdRefs = append(fwdRefs, []string{v.Param, v.Type, v.ID, v.URL})
				continue
			}
			if heldByNarrower(ix.References, narrower[v.Param], v) {
				continue
			}
			rows = append(rows, []any{ridV, typV, v.Param, v.Type, v.ID, v.URL})
		}
		if err := insertRows(ctx, q, "ref_idx", rows); err != nil {
			return err
		}
	}
	if len(fwdRefs) > 0 || len(fwdToks) > 0 {
		if err := insertRows(ctx, q, "fwd_idx", [][]any{{ridV, packValues(fwdRefs), packValues(fwdToks)}}); err != nil {
			return err
		}
	}
	if len(ix.Dates) > 0 {
		rows := make([][]any, len(ix.Dates))
		for i, v := range ix.Dates {
			rows[i] = []any{ridV, typV, v.Param, v.Low, v.High}
		}
		if err := insertRows(ctx, q, "date_idx", rows); err != nil {
			return err
		}
	}
	if len(ix.Numbers) > 0 {
		rows := make([][]any, len(ix.Numbers))
		for i, v := range ix.Numbers {
			rows[i] = []any{ridV, typV, v.Param, v.Value, v.System, v.Code}
		}
		if err := insertRows(ctx, q, "num_idx", rows); err != nil {
			return err
		}
	}
	if len(ix.URIs) > 0 {
		rows := make([][]any, len(ix.URIs))
		for i, v := range ix.URIs {
			rows[i] = []any{ridV, typV, v.Param, v.Value}
		}
		if err := insertRows(ctx, q, "uri_idx", rows); err != nil {
			return err
		}
	}
	if rows := patientRows(rid, vid, typ, id, ix); len(rows) > 0 {
		if err := insertRows(ctx, q, "pat_idx", rows); err != nil {
			return err
		}
	}
	return nil
}

// The pat_idx values of a resource without a value for a date parameter:
// after every date in either order.
const (
	noDateLo = math.MaxInt64
	noDateHi = math.MinInt64
)

// patientsOf maps each patient whose record holds a resource to the
// parameters that say so, as pat_idx.via: those referring to the patient
// (any reference parameter to a Patient), and '_id' on a Patient itself.
// The patients come in the order they are first named.
func patientsOf(typ, id string, ix *fhir.Index) (patients []string, via map[string]string) {
	params := map[string][]string{}
	add := func(patient, param string) {
		if _, ok := params[patient]; !ok {
			patients = append(patients, patient)
		}
		if !slices.Contains(params[patient], param) {
			params[patient] = append(params[patient], param)
		}
	}
	if typ == "Patient" {
		add(id, "_id")
	}
	for _, r := range ix.References {
		if r.Type == "Patient" && r.ID != "" {
			add(r.ID, r.Param)
		}
	}
	via = make(map[string]string, len(params))
	for p, ps := range params {
		slices.Sort(ps)
		via[p] = "," + strings.Join(ps, ",") + ","
	}
	return patients, via
}

// patientRows are the pat_idx rows of a resource (see the schema).
func patientRows(rid, vid int64, typ, id string, ix *fhir.Index) [][]any {
	if !patientIndexed(typ) {
		return nil
	}
	patients, via := patientsOf(typ, id, ix)
	if len(patients) == 0 {
		return nil
	}
	params := patientSortParams(typ)
	type bounds struct{ lo, hi int64 }
	vals := make([]bounds, len(params))
	for i, p := range params {
		vals[i] = bounds{noDateLo, noDateHi}
		for _, d := range ix.Dates {
			if d.Param == p {
				vals[i].lo, vals[i].hi = min(vals[i].lo, d.Low), max(vals[i].hi, d.High)
			}
		}
	}
	// Boxed once, as in writeIndex.
	ridV, typV, idV, vidV, secV := any(rid), any(typ), any(id), any(vid), any(secEntries(typ, ix))
	rows := make([][]any, 0, len(patients)*(1+len(params)))
	for _, pat := range patients {
		patV, viaV := any(pat), any(via[pat])
		rows = append(rows, []any{ridV, typV, patV, "_id", int64(0), int64(0), idV, viaV, vidV, secV})
		for i, p := range params {
			rows = append(rows, []any{ridV, typV, patV, p, vals[i].lo, vals[i].hi, idV, viaV, vidV, secV})
		}
	}
	return rows
}

// secSep separates the entries of pat_idx.sec, tokSep the parts of a
// token's entry: control characters, which no valid FHIR string holds.
const (
	secSep = "\x1f"
	tokSep = "\x1e"
)

// patientTokenParams are, by type, the token parameters whose values the
// pat_idx entries hold in sec beside the labels, so that a patient's search
// filtered on one (Observation?patient=X&category=vital-signs) tests each
// entry itself instead of seeking into tok_idx for each.
var patientTokenParams = map[string][]string{
	"Observation":       {"category"},
	"Condition":         {"category"},
	"DiagnosticReport":  {"category"},
	"DocumentReference": {"category"},
}

// secEntries is pat_idx.sec of a resource of type typ: its _security labels
// as "system|code" and its values of patientTokenParams as
// "param\x1ecode\x1esystem", between and around secSep, in sorted order
// ("" without any), so that the entry answers a label's test (secNeedle)
// and a token's (tokNeedle) exactly. A value that could be read across its
// bounds (a label's system holding '|', a separator in any part) is left
// out, and no needle ever tests one like it.
func secEntries(typ string, ix *fhir.Index) string {
	var entries []string
	params := patientTokenParams[typ]
	for _, t := range ix.Tokens {
		switch {
		case t.Param == "_security" && secTestable(t.System, t.Code):
			entries = append(entries, t.System+"|"+t.Code)
		case slices.Contains(params, t.Param) && tokTestable(t.System, t.Code):
			entries = append(entries, t.Param+tokSep+t.Code+tokSep+t.System)
		}
	}
	if len(entries) == 0 {
		return ""
	}
	slices.Sort(entries)
	entries = slices.Compact(entries)
	return secSep + strings.Join(entries, secSep) + secSep
}

// secTestable says whether a label system|code is kept in pat_idx.sec.
func secTestable(system, code string) bool {
	return code != "" && !strings.Contains(system, "|") && !strings.ContainsAny(system, secSep+tokSep) && !strings.ContainsAny(code, secSep+tokSep)
}

// tokTestable says whether a token value system|code of a parameter of
// patientTokenParams is kept in pat_idx.sec.
func tokTestable(system, code string) bool {
	return code != "" && !strings.ContainsAny(system, secSep+tokSep) && !strings.ContainsAny(code, secSep+tokSep)
}

// tokNeedle is what instr(sec, needle) looks for to test param on a
// pat_idx entry: code in system, code in any system (anySystem), or code
// without a system (system "").
func tokNeedle(param, system, code string, anySystem bool) string {
	if anySystem {
		return secSep + param + tokSep + code + tokSep
	}
	return secSep + param + tokSep + code + tokSep + system + secSep
}

// secNeedle is what instr(sec, needle) looks for to test the label
// system|code on a pat_idx entry.
func secNeedle(system, code string) string { return secSep + system + "|" + code + secSep }

// noSeparators is secTestable's and tokTestable's test of separators in SQL.
const noSeparators = `instr(system, char(31)) = 0 AND instr(code, char(31)) = 0 AND instr(system, char(30)) = 0 AND instr(code, char(30)) = 0`

// patientTokenSQL is the SQL test of the tok_idx rows of patientTokenParams.
func patientTokenSQL() string {
	var ors []string
	for _, typ := range slices.Sorted(maps.Keys(patientTokenParams)) {
		for _, p := range patientTokenParams[typ] {
			ors = append(ors, fmt.Sprintf("(type = '%s' AND param = '%s')", typ, p))
		}
	}
	return strings.Join(ors, " OR ")
}

// addPatientLabelColumn adds pat_idx.sec to a database of schema 3 to 5
// (empty: addPatientLabels fills it).
func addPatientLabelColumn(db *sql.DB) error {
	var has int
	if err := db.QueryRow(`SELECT count(*) FROM pragma_table_info('pat_idx') WHERE name = 'sec'`).Scan(&has); err != nil {
		return err
	}
	if has > 0 {
		return nil
	}
	_, err := db.Exec(`ALTER TABLE pat_idx ADD COLUMN sec TEXT NOT NULL DEFAULT ''`)
	return err
}

// addPatientLabels gives the pat_idx entries of a database of schema 2 to 6
// their labels and tokens (secEntries) from tok_idx, and the indexes that
// cover them, in one transaction.
func (s *Store) addPatientLabels(ctx context.Context) error {
	return s.inTx(ctx, nil, func(tx *sql.Tx) error {
		stmts := []string{
			`DROP INDEX IF EXISTS pat_hi`,
			`DROP INDEX IF EXISTS pat_lo`,
			// What secEntries writes, in the same order (BINARY is bytewise).
			`UPDATE pat_idx SET sec = coalesce((SELECT char(31) || group_concat(t.e, char(31) ORDER BY t.e) || char(31)
				FROM (SELECT DISTINCT system || '|' || code AS e FROM tok_idx WHERE rid = pat_idx.rid AND param = '_security' AND code <> ''
						AND instr(system, '|') = 0 AND ` + noSeparators + `
					UNION SELECT param || char(30) || code || char(30) || system FROM tok_idx WHERE rid = pat_idx.rid AND code <> '' AND ` + noSeparators + `
						AND (` + patientTokenSQL() + `)) t), '')`,
			`CREATE INDEX pat_hi ON pat_idx(patient, type, param, hi DESC, id, via, vid, sec)`,
			`CREATE INDEX pat_lo ON pat_idx(patient, type, param, lo, id, via, vid, sec) WHERE param <> '_id'`,
		}
		for _, st := range stmts {
			if _, err := tx.ExecContext(ctx, st); err != nil {
				return err
			}
		}
		return nil
	})
}

// patientIndexed says whether typ has pat_idx rows: every type but
// AuditEvent, written on every access (the hottest write of the server,
// kept to the fewest index rows); a patient's access history is read with
// the other plans.
func patientIndexed(typ string) bool { return typ != "AuditEvent" }

// unsortedByPatient are the date parameters of each type that pat_idx does
// not hold: dates of something other than when the resource happened (an
// observed value, a dosage schedule, a later reaction, abatement or death),
// which most resources of the type lack. Each resource without one had a
// row for it all the same, a placeholder sorting last: they were a quarter
// of pat_idx at D1 (value-date alone, every Observation's, a fifth), three
// B-tree inserts each on every write. A patient's search sorted by one of
// them takes the general plan.
var unsortedByPatient = map[string][]string{
	"Observation":        {"value-date"},
	"MedicationRequest":  {"date"},
	"Immunization":       {"reaction-date"},
	"Condition":          {"abatement-date"},
	"AllergyIntolerance": {"last-date", "onset"},
	"Patient":            {"death-date"},
}

// sortParams are the date parameters of each type, in pat_idx.
var sortParams = sync.OnceValue(func() map[string][]string {
	m := map[string][]string{}
	for _, t := range fhir.TypeNames() {
		for _, sp := range fhir.SearchParams(t) {
			if sp.Type == "date" && !strings.HasPrefix(sp.Name, "_") && !slices.Contains(unsortedByPatient[t], sp.Name) {
				m[t] = append(m[t], sp.Name)
			}
		}
	}
	return m
})

// dropUnsortedPatientRows deletes the pat_idx rows of unsortedByPatient,
// which databases of schema 8 and before hold.
func (s *Store) dropUnsortedPatientRows(ctx context.Context) error {
	var pairs []string
	var args []any
	for typ, params := range unsortedByPatient {
		for _, p := range params {
			pairs = append(pairs, "(?, ?)")
			args = append(args, typ, p)
		}
	}
	_, err := s.write.ExecContext(ctx, `DELETE FROM pat_idx WHERE (type, param) IN (VALUES `+strings.Join(pairs, ", ")+`)`, args...)
	return err
}

// patientSortParams are the date parameters of typ that pat_idx holds.
func patientSortParams(typ string) []string { return sortParams()[typ] }

// fillPatientIndex computes the pat_idx rows of every current resource from
// its other index rows (ref_idx, date_idx), in one transaction: the upgrade
// of a database of schema 2, without reading the bodies again. The result
// is what writeIndex writes.
func (s *Store) fillPatientIndex(ctx context.Context) error {
	var values []string
	var args []any
	for typ, params := range sortParams() {
		for _, p := range params {
			values = append(values, "(?, ?)")
			args = append(args, typ, p)
		}
	}
	params := "SELECT '' AS type, '' AS param WHERE 0"
	if len(values) > 0 {
		params = "VALUES " + strings.Join(values, ", ")
	}
	// A narrower parameter's row stands for the wider one's too.
	var widerValues []string
	for _, n := range refNarrowings() {
		widerValues = append(widerValues, "(?, ?, ?)")
		args = append(args, n.typ, n.narrower, n.wider)
	}
	wider := "SELECT '' AS type, '' AS narrower, '' AS wider WHERE 0"
	if len(widerValues) > 0 {
		wider = "VALUES " + strings.Join(widerValues, ", ")
	}
	q := `WITH sp(type, param) AS (` + params + `), wn(type, narrower, wider) AS (` + wider + `),
	refs(rid, patient, param) AS (
		SELECT rid, ref_id, param FROM ref_idx WHERE ref_type = 'Patient' AND ref_id <> ''
		UNION
		SELECT x.rid, x.ref_id, wn.wider FROM ref_idx x JOIN wn ON wn.type = x.type AND wn.narrower = x.param
			WHERE x.ref_type = 'Patient' AND x.ref_id <> ''
		UNION
		SELECT rid, id, '_id' FROM resources WHERE type = 'Patient' AND deleted = 0),
	pats(rid, type, id, patient, via, vid) AS (
		SELECT x.rid, r.type, r.id, x.patient, ',' || group_concat(x.param, ',' ORDER BY x.param) || ',', r.vid
		FROM refs x JOIN resources r ON r.rid = x.rid
		WHERE r.deleted = 0 AND r.type <> 'AuditEvent' GROUP BY x.rid, x.patient)
	INSERT OR IGNORE INTO pat_idx(rid, type, patient, param, lo, hi, id, via, vid)
		SELECT rid, type, patient, '_id', 0, 0, id, via, vid FROM pats
		UNION ALL
		SELECT p.rid, p.type, p.patient, sp.param,
			coalesce((SELECT min(low) FROM date_idx d WHERE d.rid = p.rid AND d.param = sp.param), ?),
			coalesce((SELECT max(high) FROM date_idx d WHERE d.rid = p.rid AND d.param = sp.param), ?),
			p.id, p.via, p.vid
		FROM pats p JOIN sp ON sp.type = p.type`
	args = append(args, int64(noDateLo), int64(noDateHi))
	return s.inTx(ctx, nil, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM pat_idx`); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	})
}

// packFrom is the SQL that packs reference rows (param, ref_type, ref_id,
// url) and token rows (param, system, code) into fwd_idx, a row per rid, in
// packValues' format: refsFrom and toksFrom are what follows FROM (a table
// and its WHERE).
func packFrom(refsFrom, toksFrom string) []string {
	return []string{
		`INSERT INTO fwd_idx(rid, refs, toks)
			SELECT rid, json_group_array(json_array(param, ref_type, ref_id, url)), '[]' FROM ` + refsFrom + ` GROUP BY rid
			ON CONFLICT(rid) DO UPDATE SET refs = excluded.refs`,
		`INSERT INTO fwd_idx(rid, refs, toks)
			SELECT rid, '[]', json_group_array(json_array(param, system, code)) FROM ` + toksFrom + ` GROUP BY rid
			ON CONFLICT(rid) DO UPDATE SET toks = excluded.toks`,
	}
}

// moveForwardOnly moves the values of forwardOnly parameters from ref_idx
// and tok_idx into fwd_idx, in one transaction: the upgrade of a database
// of schema 2 to 4.
func (s *Store) moveForwardOnly(ctx context.Context) error {
	return s.inTx(ctx, nil, func(tx *sql.Tx) error {
		for typ, params := range forwardOnly {
			where := ` WHERE type = ? AND param IN ('` + strings.Join(slices.Sorted(maps.Keys(params)), "', '") + `')`
			stmts := append(packFrom("ref_idx"+where, "tok_idx"+where), "DELETE FROM ref_idx"+where, "DELETE FROM tok_idx"+where)
			for _, stmt := range stmts {
				if _, err := tx.ExecContext(ctx, stmt, typ); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// packForwardOnly packs the rows of the tables ref_fwd and tok_fwd (schemas
// 5 to 7), one per value, into fwd_idx, one per resource, and replaces the
// tables by the views of those names, in one transaction: the upgrade of a
// database of schema 5 to 7.
func (s *Store) packForwardOnly(ctx context.Context) error {
	return s.inTx(ctx, nil, func(tx *sql.Tx) error {
		var kind string
		if err := tx.QueryRowContext(ctx, `SELECT type FROM sqlite_schema WHERE name = 'ref_fwd'`).Scan(&kind); err != nil {
			return err
		}
		if kind != "table" {
			return nil // already the view
		}
		for _, stmt := range append(packFrom("ref_fwd", "tok_fwd"), "DROP TABLE ref_fwd", "DROP TABLE tok_fwd", forwardViews) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
}

// reindexBatch is how many resources one Reindex transaction handles.
const reindexBatch = 1000

// Reindex extracts the index values of every current resource again, one
// write transaction per batch of resources (so writers interleave), in rid
// order. Deleted resources get no index rows.
func (s *Store) Reindex(ctx context.Context, progress func(done int)) error {
	var last int64
	done := 0
	for {
		n := 0
		err := s.inTx(ctx, nil, func(tx *sql.Tx) error {
			rows, err := tx.QueryContext(ctx, `SELECT r.rid, r.vid, r.type, r.id, r.deleted, h.body
				FROM resources r JOIN history h ON h.vid = r.vid
				WHERE r.rid > ? ORDER BY r.rid LIMIT ?`, last, reindexBatch)
			if err != nil {
				return fmt.Errorf("sqlite: reindex: %w", err)
			}
			type row struct {
				rid     int64
				vid     int64
				typ, id string
				deleted bool
				body    []byte
			}
			var batch []row
			for rows.Next() {
				var r row
				if err := rows.Scan(&r.rid, &r.vid, &r.typ, &r.id, &r.deleted, &r.body); err != nil {
					rows.Close()
					return fmt.Errorf("sqlite: reindex: %w", err)
				}
				batch = append(batch, r)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("sqlite: reindex: %w", err)
			}
			for _, r := range batch {
				if err := clearIndex(ctx, s.txOps(tx, nil).q, r.rid); err != nil {
					return err
				}
				if r.deleted {
					continue
				}
				ix := fhir.ExtractIndex(r.body)
				if err := writeIndex(ctx, s.txOps(tx, nil).q, r.rid, r.vid, r.typ, r.id, &ix); err != nil {
					return err
				}
			}
			n = len(batch)
			if n > 0 {
				last = batch[n-1].rid
			}
			return nil
		})
		if err != nil {
			return err
		}
		done += n
		if progress != nil && n > 0 {
			progress(done)
		}
		if n < reindexBatch {
			return nil
		}
	}
}
