package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dmp-fhir/dmp-fhir/store"
)

var _ store.Searcher = (*Store)(nil)

// How a query is planned
//
// Every condition is one of two SQL shapes over the index tables:
//
//   - a set: SELECT rid FROM <kind>_idx WHERE type = ? AND param = ? AND
//     <value test>, one range of a (type, param, value...) index;
//   - a filter: EXISTS (SELECT 1 FROM <kind>_idx WHERE rid = r.rid AND
//     param = ? AND <value test>), one seek of the (rid, param, value...)
//     primary key for the candidate r.
//
// The page is one statement over resources r, read in one of three ways:
//
//   - driven: the most selective clause (an OR of sets) gives the candidate
//     rids (r.rid IN (...), rowid lookups), every other clause is a filter,
//     and the matches are sorted;
//   - in order along a token: when the order is the default (id) and a
//     clause is one exact system|code, its tok_code range is read in id
//     order from the cursor on, the other clauses as filters, until the
//     page is full;
//   - streamed: when the order is that of a resources index (id, or
//     _lastUpdated), r is read in that order from the cursor on, every
//     clause a filter, until the page is full.
//
// The choice is by cost in rows read (choose): sizes are measured, not
// guessed. Each candidate clause's set is counted up to a limit (an index
// range read of at most that many entries), most likely selective first,
// stopping at a very selective one; the number of live resources of the
// type comes from type_stats. Reading in order costs the page size over the
// share of resources that match, whatever the size of the table; driving
// costs the driver's matches. So a patient's observations are driven by the
// patient reference, and a frequent code in the default order is read
// along the code until the page is full.
const (
	probeGood  = 50    // a clause with at most this many matches drives at once
	innerProbe = 1000  // probe limit when no order can be read from an index
	minProbe   = 100   // lower bound of the probe limit otherwise (probeLimit)
	maxProbe   = 20000 // upper bound of the probe limit otherwise
	unbounded  = math.MaxInt
)

// indexTable is the table holding each value kind.
var indexTable = map[store.Kind]string{
	store.KindToken:     "tok_idx",
	store.KindString:    "str_idx",
	store.KindReference: "ref_idx",
	store.KindDate:      "date_idx",
	store.KindNumber:    "num_idx",
	store.KindURI:       "uri_idx",
}

// valueTable is the table holding the values of c's parameter of typ.
func valueTable(typ string, c *store.Condition) (string, bool) {
	switch c.Kind {
	case store.KindReference:
		return refTable(typ, c.Param), true
	case store.KindToken:
		return tokTable(typ, c.Param), true
	}
	t, ok := indexTable[c.Kind]
	return t, ok
}

// frag is a piece of SQL and its arguments, in order.
type frag struct {
	sql  string
	args []any
}

// joinFrags joins parts with sep.
func joinFrags(parts []frag, sep string) frag {
	var f frag
	ss := make([]string, len(parts))
	for i, p := range parts {
		ss[i] = p.sql
		f.args = append(f.args, p.args...)
	}
	f.sql = strings.Join(ss, sep)
	return f
}

// planner builds the SQL of a query; it probes selectivity in tx, the read
// transaction the query then runs in (or on db, without one).
type planner struct {
	ctx   context.Context
	tx    *sql.Tx
	db    *sql.DB
	stmts *stmtCache
	n     int // alias counter: every subquery gets its own table aliases
}

// query runs f, with a cached prepared statement when there is one: the
// text of a statement depends only on the shape of the query (values are
// arguments), so the same searches reuse their statements.
func (p *planner) query(f frag) (*sql.Rows, error) {
	if p.tx == nil {
		return p.db.QueryContext(p.ctx, f.sql, f.args...)
	}
	if st := p.stmts.lookup(f.sql); st != nil {
		return p.tx.StmtContext(p.ctx, st).QueryContext(p.ctx, f.args...)
	}
	p.stmts.prepareLater(p.db, f.sql) // not now: this transaction holds a connection (see stmtCache)
	return p.tx.QueryContext(p.ctx, f.sql, f.args...)
}

// scalar runs f, which returns one integer.
func (p *planner) scalar(f frag) (int, error) {
	rows, err := p.query(f)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var n int
	if rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return 0, err
		}
	}
	return n, rows.Err()
}

// maxStmts bounds the statement cache; shapes beyond it run unprepared.
const maxStmts = 512

// stmtCache holds prepared statements of the read pool by SQL text.
//
// Preparing a statement on the pool takes a connection of it. A search runs
// in a read transaction, which already holds one: were it to wait for a
// second one (and others the same), the pool would deadlock once every
// connection is held by a waiting search. So a search only uses what is
// prepared already and asks for the rest to be prepared in the background
// (prepareLater); callers holding no connection may prepare and wait (get).
type stmtCache struct {
	mu      sync.Mutex
	m       map[string]*sql.Stmt
	pending map[string]bool
	closed  bool
	// background counts the prepareLater goroutines, which close waits
	// for: one still running could open a connection, and with it the
	// database's -wal and -shm files, after the store was closed.
	background sync.WaitGroup
	stop       context.Context
	cancel     context.CancelFunc
}

// lookup returns the prepared statement of text, or nil.
func (c *stmtCache) lookup(text string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[text]
}

// get returns the statement of text, preparing it on db when needed; nil
// when the cache is full or preparing failed (the caller runs the text
// directly). The caller must hold no connection of db.
func (c *stmtCache) get(ctx context.Context, db *sql.DB, text string) *sql.Stmt {
	c.mu.Lock()
	if st, ok := c.m[text]; ok || c.closed || len(c.m) >= maxStmts {
		c.mu.Unlock()
		return st
	}
	c.mu.Unlock()
	st, err := db.PrepareContext(ctx, text) // without the lock: it may wait for a connection
	if err != nil {
		return nil
	}
	return c.keep(text, st)
}

// prepareLater prepares text on db in the background, for a caller inside a
// transaction of db.
func (c *stmtCache) prepareLater(db *sql.DB, text string) {
	c.mu.Lock()
	if _, ok := c.m[text]; ok || c.closed || c.pending[text] || len(c.m)+len(c.pending) >= maxStmts {
		c.mu.Unlock()
		return
	}
	if c.pending == nil {
		c.pending = map[string]bool{}
	}
	c.pending[text] = true
	if c.stop == nil {
		c.stop, c.cancel = context.WithCancel(context.Background())
	}
	stop := c.stop
	c.background.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.background.Done()
		st, err := db.PrepareContext(stop, text)
		c.mu.Lock()
		delete(c.pending, text)
		c.mu.Unlock()
		if err == nil {
			c.keep(text, st)
		}
	}()
}

// keep stores st as the statement of text, unless another one got there
// first or the cache is closed; it returns the statement to use.
func (c *stmtCache) keep(text string, st *sql.Stmt) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[text]; ok || c.closed {
		st.Close()
		return old
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[text] = st
	return st
}

// close closes the statements and waits for the background preparations
// (which then keep nothing).
func (c *stmtCache) close() {
	c.mu.Lock()
	for _, st := range c.m {
		st.Close()
	}
	c.m, c.closed = nil, true
	if c.cancel != nil {
		c.cancel()
	}
	c.mu.Unlock()
	c.background.Wait()
}

func (p *planner) alias(prefix string) string {
	p.n++
	return prefix + strconv.Itoa(p.n)
}

// scope is the candidate resource a filter tests: the SQL of its rid, of its
// type (a constant), and the alias of its resources row when one is joined
// ("" otherwise).
type scope struct {
	typ string
	rid string
	res string
}

var errUnsupported = errors.New("sqlite: unsupported search condition")

// valueTest is the test of c's value on the index row aliased a, without
// the rid, type and param columns. seek says whether an index on (type,
// param, value...) serves it as a range.
func valueTest(c *store.Condition, a string) (f frag, seek bool, err error) {
	var w []string
	add := func(s string, v ...any) {
		w = append(w, strings.ReplaceAll(s, "$", a))
		f.args = append(f.args, v...)
	}
	seek = true
	switch c.Kind {
	case store.KindToken:
		if c.Code != "" {
			add("$.code = ?", c.Code)
		}
		if !c.AnySystem {
			add("$.system = ?", c.System)
		}
		// system| without a code is a scan of the parameter's values.
		seek = c.Code != "" || c.AnySystem
	case store.KindString, store.KindURI:
		col := "$.norm"
		exact := "$.exact"
		if c.Kind == store.KindURI {
			col, exact = "$.value", "$.value"
		}
		switch {
		case c.Match == store.StringExact && c.Kind == store.KindString:
			// exact <> '': the index by exact holds only those rows
			// (str_exact_set); a :text row's exact is ''.
			add(exact+" = ? AND "+exact+" <> ''", c.Value)
		case c.Match == store.StringExact:
			add(exact+" = ?", c.Value)
		case c.Match == store.StringContains:
			add("instr("+col+", ?) > 0", c.Value)
			seek = false
		default: // prefix: [v, v+0xFF), 0xFF never occurring in UTF-8
			add(col+" >= ? AND "+col+" < ?", c.Value, c.Value+"\xff")
		}
	case store.KindReference:
		switch {
		case c.URL != "":
			add("$.url = ? AND $.url <> ''", c.URL)
		case c.RefID != "":
			add("$.ref_id = ?", c.RefID)
			if c.RefType != "" {
				add("$.ref_type = ?", c.RefType)
			}
		case c.RefType != "":
			add("$.ref_type = ?", c.RefType)
			seek = false
		}
	case store.KindDate:
		r := c.Range
		if r.LowAtLeast != nil {
			add("$.low >= ?", *r.LowAtLeast)
		}
		if r.LowAtMost != nil {
			add("$.low <= ?", *r.LowAtMost)
		}
		if r.HighAtLeast != nil {
			add("$.high >= ?", *r.HighAtLeast)
		}
		if r.HighAtMost != nil {
			add("$.high <= ?", *r.HighAtMost)
		}
		// Implied by low <= high, they bound the index range on either
		// column: eq [a, b] reads low in [a, b], not low >= a.
		if r.HighAtMost != nil && (r.LowAtMost == nil || *r.HighAtMost < *r.LowAtMost) {
			add("$.low <= ?", *r.HighAtMost)
		}
		if r.LowAtLeast != nil && (r.HighAtLeast == nil || *r.LowAtLeast > *r.HighAtLeast) {
			add("$.high >= ?", *r.LowAtLeast)
		}
	case store.KindNumber:
		lo, hi := point(c.Range)
		if lo != nil {
			add("$.value >= ?", *lo)
		}
		if hi != nil {
			add("$.value <= ?", *hi)
		}
		if c.System != "" {
			add("$.system = ?", c.System)
		}
		if c.Code != "" {
			add("$.code = ?", c.Code)
		}
	default:
		return f, false, fmt.Errorf("%w: kind %d", errUnsupported, c.Kind)
	}
	if len(w) == 0 {
		f.sql = "1"
	} else {
		f.sql = strings.Join(w, " AND ")
	}
	return f, seek, nil
}

// point turns the bounds on a range [v, v] (a number, a lastUpdated) into
// bounds on v.
func point(r store.Interval) (lo, hi *float64) {
	for _, b := range []*float64{r.LowAtLeast, r.HighAtLeast} {
		if b != nil && (lo == nil || *b > *lo) {
			lo = b
		}
	}
	for _, b := range []*float64{r.LowAtMost, r.HighAtMost} {
		if b != nil && (hi == nil || *b < *hi) {
			hi = b
		}
	}
	return lo, hi
}

// onResource applies test (with $ for the alias of a resources row) to the
// candidate's resources row.
func (p *planner) onResource(s scope, test string, args ...any) frag {
	if s.res != "" {
		return frag{strings.ReplaceAll(test, "$", s.res), args}
	}
	a := p.alias("o")
	return frag{"EXISTS (SELECT 1 FROM resources " + a + " WHERE " + a + ".rid = " + s.rid + " AND " +
		strings.ReplaceAll(test, "$", a) + ")", args}
}

// lastUpdatedTest is the test of a KindLastUpdated range on a resources row $.
func lastUpdatedTest(r store.Interval) (string, []any) {
	lo, hi := point(r)
	w, args := []string{"1"}, []any(nil)
	if lo != nil {
		w = append(w, "$.last_updated >= ?")
		args = append(args, *lo)
	}
	if hi != nil {
		w = append(w, "$.last_updated <= ?")
		args = append(args, *hi)
	}
	if len(w) > 1 {
		w = w[1:]
	}
	return strings.Join(w, " AND "), args
}

// clauseFilter is a clause as a filter on the candidate of s. A clause
// without conditions is an empty OR: nothing meets it.
func (p *planner) clauseFilter(s scope, cl store.Clause) (frag, error) {
	if len(cl.Any) == 0 {
		return frag{sql: "0"}, nil
	}
	ids, rest := plainIDs(cl.Any)
	var parts []frag
	if len(ids) > 0 {
		parts = append(parts, p.onResource(s, "$.id IN ("+placeholders(len(ids))+")", ids...))
	}
	for i := range rest {
		f, err := p.filter(s, &rest[i])
		if err != nil {
			return frag{}, err
		}
		parts = append(parts, f)
	}
	f := joinFrags(parts, " OR ")
	f.sql = "(" + f.sql + ")"
	return f, nil
}

// whereFilter is every clause as a filter, ANDed ("1" for none).
func (p *planner) whereFilter(s scope, where []store.Clause, skip int) (frag, error) {
	parts := []frag{{sql: "1"}}
	for i, cl := range where {
		if i == skip {
			continue
		}
		f, err := p.clauseFilter(s, cl)
		if err != nil {
			return frag{}, err
		}
		parts = append(parts, f)
	}
	if len(parts) > 1 {
		parts = parts[1:]
	}
	return joinFrags(parts, " AND "), nil
}

// filter is condition c as a boolean test of the candidate of s.
func (p *planner) filter(s scope, c *store.Condition) (frag, error) {
	f, err := p.positiveFilter(s, c)
	if err != nil {
		return f, err
	}
	if c.Not {
		f.sql = "NOT (" + f.sql + ")"
	}
	return f, nil
}

func (p *planner) positiveFilter(s scope, c *store.Condition) (frag, error) {
	switch {
	case c.Has != nil:
		h := c.Has
		id := frag{sql: s.res + ".id"}
		if s.res == "" {
			id.sql = "(SELECT id FROM resources WHERE rid = " + s.rid + ")"
		}
		if forwardOnly[h.Type][h.Param] {
			// ref_fwd cannot be read by target: the ids the matching
			// resources refer to, computed once.
			inner, err := p.matchSet(h.Type, h.Where)
			if err != nil {
				return frag{}, err
			}
			x := p.alias("hx")
			f := frag{sql: id.sql + " IN (SELECT " + x + ".ref_id FROM ref_fwd " + x + " WHERE " + x + ".rid IN (" + inner.sql + ") AND " +
				x + ".param = ? AND " + x + ".ref_type = ?)"}
			f.args = append(append(append([]any{}, id.args...), inner.args...), h.Param, s.typ)
			return f, nil
		}
		x := p.alias("hx")
		inner, err := p.whereFilter(scope{typ: h.Type, rid: x + ".rid"}, h.Where, -1)
		if err != nil {
			return frag{}, err
		}
		pt := paramTest(x+".param", h.Type, store.KindReference, h.Param)
		f := frag{sql: "EXISTS (SELECT 1 FROM ref_idx " + x + " WHERE " + x + ".type = ? AND " + pt.sql + " AND " +
			x + ".ref_type = ? AND " + x + ".ref_id = " + id.sql + " AND " + inner.sql + ")"}
		f.args = append(append(append(append([]any{h.Type}, pt.args...), s.typ), id.args...), inner.args...)
		return f, nil
	case c.Missing != nil:
		if c.Kind == store.KindID || c.Kind == store.KindLastUpdated {
			if *c.Missing {
				return frag{sql: "0"}, nil
			}
			return frag{sql: "1"}, nil
		}
		t, ok := valueTable(s.typ, c)
		if !ok {
			return frag{}, fmt.Errorf("%w: kind %d", errUnsupported, c.Kind)
		}
		a := p.alias("m")
		pt := paramTest(a+".param", s.typ, c.Kind, c.Param)
		f := frag{"EXISTS (SELECT 1 FROM " + t + " " + a + " WHERE " + a + ".rid = " + s.rid + " AND " + pt.sql + ")", pt.args}
		if *c.Missing {
			f.sql = "NOT " + f.sql
		}
		return f, nil
	case c.Chain != nil:
		if c.Kind != store.KindReference {
			return frag{}, fmt.Errorf("%w: chain on a kind %d parameter", errUnsupported, c.Kind)
		}
		x, cp := p.alias("cx"), p.alias("cp")
		pt := paramTest(x+".param", s.typ, c.Kind, c.Param)
		inner, err := p.whereFilter(scope{typ: c.Chain.Type, rid: cp + ".rid", res: cp}, c.Chain.Where, -1)
		if err != nil {
			return frag{}, err
		}
		f := frag{sql: "EXISTS (SELECT 1 FROM " + refTable(s.typ, c.Param) + " " + x + " CROSS JOIN resources " + cp +
			" ON " + cp + ".type = " + x + ".ref_type AND " + cp + ".id = " + x + ".ref_id" +
			" WHERE " + x + ".rid = " + s.rid + " AND " + pt.sql + " AND " + x + ".ref_type = ? AND " +
			cp + ".deleted = 0 AND " + inner.sql + ")"}
		f.args = append(append(pt.args, c.Chain.Type), inner.args...)
		return f, nil
	case c.Kind == store.KindID:
		return p.onResource(s, "$.id = ?", c.Value), nil
	case c.Kind == store.KindLastUpdated:
		test, args := lastUpdatedTest(c.Range)
		return p.onResource(s, test, args...), nil
	}
	t, ok := valueTable(s.typ, c)
	if !ok {
		return frag{}, fmt.Errorf("%w: kind %d", errUnsupported, c.Kind)
	}
	a := p.alias("v")
	vt, _, err := valueTest(c, a)
	if err != nil {
		return frag{}, err
	}
	pt := paramTest(a+".param", s.typ, c.Kind, c.Param)
	f := frag{sql: "EXISTS (SELECT 1 FROM " + t + " " + a + " WHERE " + a + ".rid = " + s.rid + " AND " + pt.sql + " AND " + vt.sql + ")"}
	f.args = append(pt.args, vt.args...)
	return f, nil
}

// set is condition c as the SQL of the rids of current resources of type
// typ that meet it (possibly repeated), and whether that is an index range
// (seek). ok is false for conditions that cannot be a set (Not, Missing).
func (p *planner) set(typ string, c *store.Condition) (f frag, seek, ok bool, err error) {
	if c.Not || (c.Missing != nil && *c.Missing) {
		return frag{}, false, false, nil
	}
	if c.Has == nil && forwardOnly[typ][c.Param] {
		return frag{}, false, false, nil // ref_fwd and tok_fwd are not read by value
	}
	switch {
	case c.Has != nil:
		h := c.Has
		inner, err := p.matchSet(h.Type, h.Where)
		if err != nil {
			return frag{}, false, false, err
		}
		a, x := p.alias("hp"), p.alias("hx")
		pt := paramTest(x+".param", h.Type, store.KindReference, h.Param)
		f := frag{sql: "SELECT " + a + ".rid FROM resources " + a + " WHERE " + a + ".type = ? AND " + a + ".deleted = 0 AND " +
			a + ".id IN (SELECT " + x + ".ref_id FROM " + refTable(h.Type, h.Param) + " " + x + " WHERE " + x + ".rid IN (" + inner.sql + ") AND " +
			pt.sql + " AND " + x + ".ref_type = ?)"}
		f.args = append(append(append([]any{typ}, inner.args...), pt.args...), typ)
		return f, true, true, nil
	case c.Missing != nil: // Missing false: any value
		if c.Kind == store.KindID || c.Kind == store.KindLastUpdated {
			return frag{}, false, false, nil
		}
		t, known := indexTable[c.Kind]
		if !known {
			return frag{}, false, false, fmt.Errorf("%w: kind %d", errUnsupported, c.Kind)
		}
		pt := paramTest("param", typ, c.Kind, c.Param)
		return frag{"SELECT rid FROM " + t + " WHERE type = ? AND " + pt.sql, append([]any{typ}, pt.args...)}, true, true, nil
	case c.Chain != nil:
		if c.Kind != store.KindReference {
			return frag{}, false, false, fmt.Errorf("%w: chain on a kind %d parameter", errUnsupported, c.Kind)
		}
		inner, err := p.matchSet(c.Chain.Type, c.Chain.Where)
		if err != nil {
			return frag{}, false, false, err
		}
		x, cp := p.alias("cx"), p.alias("cp")
		pt := paramTest(x+".param", typ, c.Kind, c.Param)
		f := frag{sql: "SELECT " + x + ".rid FROM ref_idx " + x + " WHERE " + x + ".type = ? AND " + pt.sql + " AND " +
			x + ".ref_type = ? AND " + x + ".ref_id IN (SELECT " + cp + ".id FROM resources " + cp + " WHERE " + cp + ".rid IN (" + inner.sql + "))"}
		f.args = append(append(append([]any{typ}, pt.args...), c.Chain.Type), inner.args...)
		return f, true, true, nil
	case c.Kind == store.KindID:
		return frag{"SELECT rid FROM resources WHERE type = ? AND id = ? AND deleted = 0", []any{typ, c.Value}}, true, true, nil
	case c.Kind == store.KindLastUpdated:
		test, args := lastUpdatedTest(c.Range)
		a := p.alias("l")
		return frag{"SELECT " + a + ".rid FROM resources " + a + " INDEXED BY resources_live_lu WHERE " + a + ".type = ? AND " +
			strings.ReplaceAll(test, "$", a) + " AND " + a + ".deleted = 0", append([]any{typ}, args...)}, true, true, nil
	}
	t, known := indexTable[c.Kind]
	if !known {
		return frag{}, false, false, fmt.Errorf("%w: kind %d", errUnsupported, c.Kind)
	}
	a := p.alias("s")
	vt, seek, err := valueTest(c, a)
	if err != nil {
		return frag{}, false, false, err
	}
	pt := paramTest(a+".param", typ, c.Kind, c.Param)
	f = frag{sql: "SELECT " + a + ".rid FROM " + t + " " + a + " WHERE " + a + ".type = ? AND " + pt.sql + " AND " + vt.sql}
	f.args = append(append([]any{typ}, pt.args...), vt.args...)
	return f, seek, true, nil
}

// candidate is a clause that can drive: its set and the number of its
// matches.
type candidate struct {
	clause int
	set    frag
	est    int  // matches, counted up to the probe cap; unbounded when not counted
	capped bool // the count reached the cap: at least est matches
	// ordered is the clause's one condition when it is an exact
	// system|code token: tok_code then lists its resources in id order.
	ordered *store.Condition
	// patient is the patient whose record holds every match of the clause
	// (patientPin), or "": pat_idx then lists them in the orders it keeps.
	patient string
}

// known reports whether the candidate's size is known exactly.
func (c *candidate) known() bool { return c.est != unbounded && !c.capped }

// rank orders clauses for probing, the likely most selective first, so
// that probing can stop early.
func rank(cl store.Clause) int {
	r := 0
	for _, c := range cl.Any {
		k := 3
		switch {
		case c.Missing != nil:
			k = 5
		case c.Kind == store.KindID:
			k = 0
		case c.Chain != nil, c.Has != nil, c.Kind == store.KindReference:
			k = 1
		case c.Kind == store.KindToken && c.Code != "", c.Kind == store.KindString && c.Match == store.StringExact:
			k = 2
		case c.Kind == store.KindDate, c.Kind == store.KindNumber, c.Kind == store.KindLastUpdated:
			k = 4
		}
		r = max(r, k)
	}
	return r
}

// exactToken reports whether c is system|code (or |code) on a token.
func exactToken(c *store.Condition) bool {
	return c.Kind == store.KindToken && !c.Not && c.Missing == nil && c.Chain == nil && c.Has == nil &&
		c.Code != "" && !c.AnySystem
}

// candidates lists the clauses of where that can drive, their sizes probed
// in rank order, each up to limit(candidate); probing stops at the first
// clause with at most probeGood matches.
func (p *planner) candidates(typ string, where []store.Clause, limit func(c *candidate) int) ([]candidate, error) {
	var cands []candidate
outer:
	for i, cl := range where {
		if len(cl.Any) == 0 {
			continue
		}
		var parts []frag
		seekAll := true
		ids, rest := plainIDs(cl.Any)
		if len(ids) > 0 {
			parts = append(parts, frag{"SELECT rid FROM resources WHERE type = ? AND id IN (" + placeholders(len(ids)) + ") AND deleted = 0", append([]any{typ}, ids...)})
		}
		for j := range rest {
			f, seek, ok, err := p.set(typ, &rest[j])
			if err != nil {
				return nil, err
			}
			if !ok {
				continue outer
			}
			seekAll = seekAll && seek
			parts = append(parts, f)
		}
		c := candidate{clause: i, set: joinFrags(parts, " UNION ALL "), est: unbounded}
		if seekAll {
			c.est = -1 // to probe
		}
		if len(cl.Any) == 1 && exactToken(&cl.Any[0]) {
			c.ordered = &cl.Any[0]
		}
		c.patient = patientPin(typ, cl)
		cands = append(cands, c)
	}
	order := make([]int, len(cands))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int {
		return rank(where[cands[i].clause]) - rank(where[cands[j].clause])
	})
	stop := false
	for _, i := range order {
		c := &cands[i]
		if c.est != -1 {
			continue
		}
		if stop {
			c.est = unbounded
			continue
		}
		if rank(where[c.clause]) == 0 { // ids: at most one match each
			c.est = len(where[c.clause].Any)
		} else {
			l := limit(c)
			if l == 0 { // not to be counted
				c.est = unbounded
				continue
			}
			l = limitBucket(l)
			n, err := p.scalar(frag{"SELECT count(*) FROM (" + c.set.sql + " LIMIT " + strconv.Itoa(l) + ")", c.set.args})
			if err != nil {
				return nil, fmt.Errorf("sqlite: search: %w", err)
			}
			c.est, c.capped = n, n >= l
		}
		stop = c.known() && c.est <= probeGood
	}
	return cands, nil
}

// best is the candidate with the fewest matches, or nil.
func best(cands []candidate) *candidate {
	var b *candidate
	for i := range cands {
		c := &cands[i]
		if b == nil || c.est < b.est || (c.est == b.est && b.capped && !c.capped) {
			b = c
		}
	}
	return b
}

// plan is how the page statement reads its resources: driven by a
// candidate's set (then sorted), along an ordered candidate's tok_code
// range, or streamed along a resources index; all zero: every resource of
// the type, sorted.
type plan struct {
	drive   *candidate
	ordered *candidate
	index   string
	// patient: the pinned candidate whose patient's pat_idx range is read
	// in the order of param ("_id" for the id order), descending or not.
	patient *candidate
	param   string
	desc    bool
}

// choose picks the cheapest plan for a page of count resources among live
// resources of the type, in rows read. Driving reads and sorts the
// candidate's matches (twice the cost of a row read in order); reading in
// order stops once count+1 rows meet every clause, which with independent
// clauses takes count+1 over the product of their selectivities (clauses
// of unknown or capped size count as selectivity 1).
func choose(cands []candidate, keys []sortKey, count, live int) plan {
	live = max(live, 1)
	inOrder := func(skip *candidate, limit int) float64 {
		sel := 1.0
		for i := range cands {
			if c := &cands[i]; c != skip && c.known() {
				sel *= min(1, float64(c.est)/float64(live))
			}
		}
		if sel == 0 {
			return 0
		}
		return min(float64(limit), float64(count+1)/sel)
	}
	var pl plan
	cost := math.Inf(1)
	if b := best(cands); b != nil && b.known() {
		pl, cost = plan{drive: b}, 2*float64(b.est)
	}
	if len(keys) == 1 && keys[0].expr.sql == "r.id" {
		for i := range cands {
			c := &cands[i]
			if c.ordered == nil {
				continue
			}
			limit := live
			if c.known() {
				limit = c.est
			}
			if r := inOrder(c, limit); r < cost {
				pl, cost = plan{ordered: c}, r
			}
		}
	}
	if idx := streamIndex(keys); idx != "" {
		if r := 1.2 * inOrder(nil, live); r < cost {
			pl, cost = plan{index: idx}, r
		}
	}
	if math.IsInf(cost, 1) {
		pl = plan{drive: best(cands)} // sizes unknown: the smallest, if any
	}
	return pl
}

// probeLimit is how far candidate c is counted for a page of count among
// live resources. When an order can be read from an index, a clause with
// more than sqrt((count+1) live / 2) matches never drives: reading in order
// costs less (see choose); and a clause that can itself be read in order
// drives only when it has fewer matches than the page. Otherwise the counts
// only rank the candidates.
func probeLimit(c *candidate, keys []sortKey, count, live int) int {
	idOrder := len(keys) == 1 && keys[0].expr.sql == "r.id"
	switch {
	case !idOrder && streamIndex(keys) == "":
		return innerProbe
	case idOrder && c.ordered != nil:
		return max(probeGood, count+1) + 1
	}
	return min(max(int(math.Sqrt(float64(count+1)*float64(live)/2)), minProbe), maxProbe)
}

// matches is the FROM and WHERE of the resources r (alias a) of type typ
// that meet where, read per pl.
func (p *planner) matches(a, typ string, where []store.Clause, pl plan) (from string, cond frag, err error) {
	if slices.ContainsFunc(where, func(cl store.Clause) bool { return len(cl.Any) == 0 }) {
		// An empty OR: nothing matches (and no index is to be forced).
		return "resources " + a, frag{sql: "0"}, nil
	}
	skip := -1
	var parts []frag
	switch {
	case pl.drive != nil:
		from = "resources " + a + " NOT INDEXED"
		parts = append(parts, frag{a + ".rid IN (" + pl.drive.set.sql + ")", pl.drive.set.args})
		skip = pl.drive.clause
	case pl.ordered != nil:
		c := pl.ordered.ordered
		from = "tok_idx d INDEXED BY tok_code CROSS JOIN resources " + a + " ON " + a + ".rid = d.rid"
		parts = append(parts, frag{"d.type = ? AND d.param = ? AND d.code = ? AND d.system = ?", []any{typ, c.Param, c.Code, c.System}})
		skip = pl.ordered.clause
	case pl.patient != nil:
		// The pinned clause stays a filter: pat_idx holds every patient a
		// resource refers to, by any parameter.
		idx, test := "pat_hi", "d.patient = ? AND d.type = ? AND d.param = ?"
		switch {
		case pl.param == "_id":
			test += " AND d.hi = 0" // one value: the range is in id order
		case !pl.desc:
			idx, test = "pat_lo", test+" AND d.param <> '_id'" // the partial index's condition
		}
		// Only current, live resources have pat_idx rows: no resources row
		// is read (the filters that need one read it themselves).
		from = "pat_idx d INDEXED BY " + idx
		parts = append(parts, frag{test, []any{pl.patient.patient, typ, pl.param}})
	case pl.index != "":
		from = "resources " + a + " INDEXED BY " + pl.index
	default:
		from = "resources " + a + " INDEXED BY resources_live"
	}
	sc := scope{typ: typ, rid: a + ".rid", res: a}
	if pl.patient == nil {
		parts = append(parts, frag{a + ".type = ? AND " + a + ".deleted = 0", []any{typ}})
	} else {
		sc = scope{typ: typ, rid: "d.rid"}
		// The clauses naming the patient are tested on the pat_idx entry,
		// whose via lists the parameters referring to the patient.
		var rest []store.Clause
		for _, cl := range where {
			if f, ok := entryTest(typ, cl); ok {
				parts = append(parts, f)
				continue
			}
			if patientPin(typ, cl) != pl.patient.patient {
				rest = append(rest, cl)
				continue
			}
			var ors []frag
			for _, c := range cl.Any {
				param := c.Param
				if c.Kind == store.KindID {
					param = "_id"
				}
				ors = append(ors, frag{"instr(d.via, ?) > 0", []any{"," + param + ","}})
			}
			f := joinFrags(ors, " OR ")
			f.sql = "(" + f.sql + ")"
			parts = append(parts, f)
		}
		where = rest
	}
	f, err := p.whereFilter(sc, where, skip)
	if err != nil {
		return "", frag{}, err
	}
	if f.sql != "1" {
		parts = append(parts, f)
	}
	return from, joinFrags(parts, " AND "), nil
}

// entryTest is clause cl tested on the pat_idx entry d, whose sec lists the
// resource's security labels and its values of patientTokenParams
// (secEntries), when every condition of cl is a test sec answers exactly: a
// system|code or |code of _security (the consent's "not masked" is one), a
// code, system|code or |code of a parameter of patientTokenParams (an
// Observation's category), or the :not of one. No seek into tok_idx for
// each entry.
func entryTest(typ string, cl store.Clause) (frag, bool) {
	var ors []frag
	for _, c := range cl.Any {
		if c.Kind != store.KindToken || c.Missing != nil || c.Chain != nil || c.Has != nil {
			return frag{}, false
		}
		var needle string
		switch {
		case c.Param == "_security" && !c.AnySystem && secTestable(c.System, c.Code):
			needle = secNeedle(c.System, c.Code)
		case slices.Contains(patientTokenParams[typ], c.Param) && tokTestable(c.System, c.Code):
			needle = tokNeedle(c.Param, c.System, c.Code, c.AnySystem)
		default:
			return frag{}, false
		}
		f := frag{"(instr(d.sec, ?) > 0)", []any{needle}}
		if c.Not {
			f.sql = "NOT " + f.sql
		}
		ors = append(ors, f)
	}
	if len(ors) == 0 {
		return frag{}, false
	}
	f := joinFrags(ors, " OR ")
	f.sql = "(" + f.sql + ")"
	return f, true
}

// matchSet is the SQL of the rids of all resources of typ meeting where
// (for Chain and Has).
func (p *planner) matchSet(typ string, where []store.Clause) (frag, error) {
	cands, err := p.candidates(typ, where, func(*candidate) int { return innerProbe })
	if err != nil {
		return frag{}, err
	}
	a := p.alias("r")
	from, cond, err := p.matches(a, typ, where, plan{drive: best(cands)})
	if err != nil {
		return frag{}, err
	}
	return frag{"SELECT " + a + ".rid FROM " + from + " WHERE " + cond.sql, cond.args}, nil
}

// sortKey is one ORDER BY key of the page query, on the resources row r.
type sortKey struct {
	expr     frag
	desc     bool
	nullable bool   // a parameter value, which a resource may lack
	sig      string // for the cursor's signature
	kind     store.Kind
	param    string
}

// sortKeys turns the query's sort into ORDER BY keys, ending with id.
func sortKeys(typ string, sorts []store.Sort) ([]sortKey, error) {
	var keys []sortKey
	for i, s := range sorts {
		sig := fmt.Sprintf("%d:%s:%t", s.Kind, s.Param, s.Desc)
		switch s.Kind {
		case store.KindID:
			return append(keys, sortKey{expr: frag{sql: "r.id"}, desc: s.Desc, sig: sig, kind: store.KindID}), nil
		case store.KindLastUpdated:
			keys = append(keys, sortKey{expr: frag{sql: "r.last_updated"}, desc: s.Desc, sig: sig, kind: store.KindLastUpdated})
			continue
		}
		t, ok := valueTable(typ, &store.Condition{Param: s.Param, Kind: s.Kind})
		var col string
		switch s.Kind {
		case store.KindDate:
			col = "low"
			if s.Desc {
				col = "high"
			}
		case store.KindNumber, store.KindURI:
			col = "value"
		case store.KindString:
			col = "norm"
		case store.KindToken:
			col = "code"
		default:
			ok = false
		}
		if !ok {
			return nil, fmt.Errorf("%w: sort on kind %d", errUnsupported, s.Kind)
		}
		agg := "MIN"
		if s.Desc {
			agg = "MAX"
		}
		a := "k" + strconv.Itoa(i)
		expr := frag{"(SELECT " + agg + "(" + a + "." + col + ") FROM " + t + " " + a + " WHERE " + a + ".rid = r.rid AND " + a + ".param = ?)", []any{s.Param}}
		keys = append(keys, sortKey{expr: expr, desc: s.Desc, nullable: true, sig: sig, kind: s.Kind, param: s.Param})
	}
	return append(keys, sortKey{expr: frag{sql: "r.id"}, sig: "id", kind: store.KindID}), nil
}

// streamIndex is the resources index that yields keys in order, or "".
func streamIndex(keys []sortKey) string {
	switch {
	case len(keys) == 1 && keys[0].expr.sql == "r.id":
		return "resources_live"
	case len(keys) == 2 && keys[0].expr.sql == "r.last_updated" && !keys[1].desc:
		if keys[0].desc {
			return "resources_live_lu_desc"
		}
		return "resources_live_lu"
	}
	return ""
}

func signature(keys []sortKey) string {
	h := fnv.New32a()
	for _, k := range keys {
		h.Write([]byte(k.sig + "|"))
	}
	return strconv.FormatUint(uint64(h.Sum32()), 36)
}

// cursor is what Page.Next encodes: the sort values of the page's last
// resource (its id last), and the signature of the sort they belong to.
type cursor struct {
	Sig string `json:"s"`
	Key []any  `json:"k"`
}

func encodeCursor(keys []sortKey, vals []any) string {
	b, _ := json.Marshal(cursor{Sig: signature(keys), Key: vals})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string, keys []sortKey) ([]any, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, store.ErrBadCursor
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var c cursor
	if dec.Decode(&c) != nil || c.Sig != signature(keys) || len(c.Key) != len(keys) {
		return nil, store.ErrBadCursor
	}
	for i, v := range c.Key {
		switch v := v.(type) {
		case json.Number:
			if n, err := v.Int64(); err == nil {
				c.Key[i] = n
			} else if f, err := v.Float64(); err == nil {
				c.Key[i] = f
			} else {
				return nil, store.ErrBadCursor
			}
		case string:
		case nil:
			if !keys[i].nullable {
				return nil, store.ErrBadCursor
			}
		default:
			return nil, store.ErrBadCursor
		}
	}
	return c.Key, nil
}

// keyset is the test "the row comes after vals in the order of keys"
// (ascending or descending per key, a missing value after all values).
func keyset(keys []sortKey, vals []any) frag {
	var ors []frag
	var eqs []frag
	for i, k := range keys {
		v := vals[i]
		if v != nil {
			op := " > ?"
			if k.desc {
				op = " < ?"
			}
			after := frag{k.expr.sql + op, append(append([]any(nil), k.expr.args...), v)}
			if k.nullable {
				after.sql = "(" + after.sql + " OR " + k.expr.sql + " IS NULL)"
				after.args = append(after.args, k.expr.args...)
			}
			ors = append(ors, joinFrags(append(append([]frag(nil), eqs...), after), " AND "))
			eqs = append(eqs, frag{k.expr.sql + " = ?", append(append([]any(nil), k.expr.args...), v)})
		} else {
			// Nothing sorts after a missing value but other missing values.
			eqs = append(eqs, frag{k.expr.sql + " IS NULL", k.expr.args})
		}
	}
	f := joinFrags(ors, ") OR (")
	f.sql = "((" + f.sql + "))"
	if len(ors) == 0 {
		f.sql = "0"
	}
	// A bound on the leading key lets an index range start at the cursor.
	if k := keys[0]; !k.nullable && vals[0] != nil {
		op := " >= ?"
		if k.desc {
			op = " <= ?"
		}
		f = joinFrags([]frag{{k.expr.sql + op, append(append([]any(nil), k.expr.args...), vals[0])}, f}, " AND ")
	}
	return f
}

// orderBy is the ORDER BY of keys, over expressions named by name.
func orderBy(keys []sortKey, name func(i int, k sortKey) frag) frag {
	parts := make([]frag, len(keys))
	for i, k := range keys {
		f := name(i, k)
		switch {
		case k.desc: // SQLite sorts NULL first: descending puts it last
			f.sql += " DESC"
		case k.nullable:
			f.sql += " ASC NULLS LAST"
		}
		parts[i] = f
	}
	return joinFrags(parts, ", ")
}

// buildPage is the statement of one page: the Count+1 first matches after
// the cursor, in order, with their bodies and sort values.
func (p *planner) buildPage(q store.Query, keys []sortKey, after []any, pl plan) (frag, error) {
	from, cond, err := p.matches("r", q.Type, q.Where, pl)
	if err != nil {
		return frag{}, err
	}
	if pl.ordered != nil { // the same id, from the index that is in order
		keys = []sortKey{keys[0]}
		keys[0].expr = frag{sql: "d.id"}
	}
	cols, outer := "r.id, r.version, r.vid, r.last_updated", "SELECT p.id, p.version, p.last_updated, h.body"
	if pl.patient != nil { // the same values, from the pat_idx row
		keys, after = patientKeys(keys, after)
		cols, outer = "d.id, d.vid", "SELECT p.id, h.version, h.last_updated, h.body"
	}
	if after != nil {
		cond = joinFrags([]frag{cond, keyset(keys, after)}, " AND ")
	}
	sel := []frag{{sql: cols}}
	for i, k := range keys {
		sel = append(sel, frag{k.expr.sql + " AS s" + strconv.Itoa(i), k.expr.args})
	}
	inner := joinFrags([]frag{
		{sql: "SELECT "}, joinFrags(sel, ", "),
		{sql: " FROM " + from + " WHERE "}, cond,
		{sql: " ORDER BY "}, orderBy(keys, func(i int, k sortKey) frag {
			if k.nullable { // the selected value, not a second evaluation
				return frag{sql: "s" + strconv.Itoa(i)}
			}
			return k.expr
		}),
		{sql: " LIMIT " + strconv.Itoa(limitBucket(q.Count+1))}, // Search reads Count+1 rows of it
	}, "")
	for i := range keys {
		outer += ", p.s" + strconv.Itoa(i)
	}
	return joinFrags([]frag{
		{sql: outer + " FROM ("}, inner, {sql: ") p JOIN history h ON h.vid = p.vid ORDER BY "},
		orderBy(keys, func(i int, _ sortKey) frag { return frag{sql: "p.s" + strconv.Itoa(i)} }),
	}, ""), nil
}

// limitBucket is the LIMIT written for n rows: the power of two at or above
// n, as a literal. SQLite's planner reads the value of a bound LIMIT, so a
// statement run again with another one was compiled again (a third of the
// cost of a small search); a few literal sizes keep a handful of texts,
// each prepared once, and at most twice the rows asked for.
func limitBucket(n int) int {
	b := 1
	for b < n {
		b *= 2
	}
	return b
}

// buildCount is the statement counting all matches: driven by the
// smallest candidate when its size is known, else along a pinned patient's
// pat_idx range when there is one.
func (p *planner) buildCount(q store.Query, cands []candidate) (frag, error) {
	pl := plan{drive: best(cands)}
	if (pl.drive == nil || !pl.drive.known()) && patientIndexed(q.Type) {
		for i := range cands {
			if cands[i].patient != "" {
				pl = plan{patient: &cands[i], param: "_id"}
				break
			}
		}
	}
	from, cond, err := p.matches("r", q.Type, q.Where, pl)
	if err != nil {
		return frag{}, err
	}
	return joinFrags([]frag{{sql: "SELECT count(*) FROM " + from + " WHERE "}, cond}, ""), nil
}

// prepare decodes the sort and cursor of q and plans it: its candidates
// and the page plan. It first drops the clauses q.Where implies twice
// (withoutImplied), in q itself: the candidates' clause numbers and the
// page statement then read the same clauses.
func (p *planner) prepare(q *store.Query) (keys []sortKey, after []any, cands []candidate, pl plan, err error) {
	q.Where = withoutImplied(q.Type, q.Where)
	if q.Type == "" {
		return nil, nil, nil, plan{}, errors.New("sqlite: search without a type")
	}
	if keys, err = sortKeys(q.Type, q.Sort); err != nil {
		return nil, nil, nil, plan{}, err
	}
	if q.After != "" {
		if after, err = decodeCursor(q.After, keys); err != nil {
			return nil, nil, nil, plan{}, err
		}
	}
	count := max(q.Count, 1)
	if param, desc, ok := patientOrder(q.Type, keys); ok && slices.ContainsFunc(q.Where, func(cl store.Clause) bool { return patientPin(q.Type, cl) != "" }) {
		// A patient's record in an order pat_idx keeps: read along it, unless
		// another clause has fewer matches than the page (counted that far;
		// the pinned clauses are not counted).
		limit := func(c *candidate) int {
			if c.patient != "" {
				return 0
			}
			return max(probeGood, count+1) + 1
		}
		if cands, err = p.candidates(q.Type, q.Where, limit); err != nil {
			return nil, nil, nil, plan{}, err
		}
		if b := best(cands); b != nil && b.known() && b.est <= count+1 {
			return keys, after, cands, plan{drive: b}, nil
		}
		for i := range cands {
			if cands[i].patient != "" {
				return keys, after, cands, plan{patient: &cands[i], param: param, desc: desc}, nil
			}
		}
	}
	live, err := p.scalar(frag{"SELECT live FROM type_stats WHERE type = ?", []any{q.Type}})
	if err != nil {
		return nil, nil, nil, plan{}, fmt.Errorf("sqlite: search: %w", err)
	}
	limit := func(c *candidate) int { return probeLimit(c, keys, count, live) }
	if cands, err = p.candidates(q.Type, q.Where, limit); err != nil {
		return nil, nil, nil, plan{}, err
	}
	return keys, after, cands, choose(cands, keys, count, live), nil
}

// withoutImplied drops the clauses that another clause implies, which the
// statement would test on every row for nothing: a clause of one plain
// reference (patient=Patient/X) implies any clause offering the same
// reference under the same parameter or a wider one (subject=Patient/X or
// performer=Patient/X, the consent's compartment clause beside the
// search's own patient parameter). where is not modified.
func withoutImplied(typ string, where []store.Clause) []store.Clause {
	plain := func(c *store.Condition) bool {
		return c.Kind == store.KindReference && !c.Not && c.Missing == nil && c.Chain == nil && c.Has == nil &&
			c.URL == "" && c.RefType != "" && c.RefID != ""
	}
	// implies reports whether every resource that meets c meets a.
	implies := func(c, a *store.Condition) bool {
		return plain(c) && plain(a) && c.RefType == a.RefType && c.RefID == a.RefID &&
			(c.Param == a.Param || slices.Contains(narrowerRefs()[typ][a.Param], c.Param))
	}
	var dropped []bool
	for i := range where {
		for j := range where {
			if i == j || len(where[j].Any) != 1 || dropped != nil && dropped[j] {
				continue
			}
			if slices.ContainsFunc(where[i].Any, func(a store.Condition) bool { return implies(&where[j].Any[0], &a) }) {
				if dropped == nil {
					dropped = make([]bool, len(where))
				}
				dropped[i] = true
				break
			}
		}
	}
	if dropped == nil {
		return where
	}
	var kept []store.Clause
	for i, cl := range where {
		if !dropped[i] {
			kept = append(kept, cl)
		}
	}
	return kept
}

// patientPin is the patient whose record holds every match of cl, or "":
// each of its conditions a plain reference to Patient/X (on a Patient, or
// its _id X), the same X for all.
func patientPin(typ string, cl store.Clause) string {
	pin := ""
	for _, c := range cl.Any {
		var id string
		switch {
		case c.Not || c.Missing != nil || c.Chain != nil || c.Has != nil:
			return ""
		case c.Kind == store.KindReference && c.RefType == "Patient" && c.RefID != "" && c.URL == "":
			id = c.RefID
		case c.Kind == store.KindID && typ == "Patient" && c.Value != "":
			id = c.Value
		default:
			return ""
		}
		if pin != "" && id != pin {
			return ""
		}
		pin = id
	}
	return pin
}

// patientOrder says whether pat_idx keeps the order of keys, and in which
// of its params ("_id" for the id order) and direction.
func patientOrder(typ string, keys []sortKey) (param string, desc, ok bool) {
	switch {
	case !patientIndexed(typ):
		return "", false, false
	case len(keys) == 1 && keys[0].kind == store.KindID:
		return "_id", keys[0].desc, true
	case len(keys) == 2 && keys[0].kind == store.KindDate && keys[1].kind == store.KindID && !keys[1].desc &&
		slices.Contains(patientSortParams(typ), keys[0].param):
		return keys[0].param, keys[0].desc, true
	}
	return "", false, false
}

// patientKeys are keys and the cursor's values after, read from the
// pat_idx row d of the patient plan: the id, and the date bound the sort
// uses, where a missing date is noDateHi or noDateLo.
func patientKeys(keys []sortKey, after []any) ([]sortKey, []any) {
	if len(keys) == 1 {
		return []sortKey{{expr: frag{sql: "d.id"}, desc: keys[0].desc}}, after
	}
	col, none := "d.lo", int64(noDateLo)
	if keys[0].desc {
		col, none = "d.hi", int64(noDateHi)
	}
	out := []sortKey{{expr: frag{sql: col}, desc: keys[0].desc}, {expr: frag{sql: "d.id"}}}
	if after != nil {
		after = slices.Clone(after)
		if after[0] == nil {
			after[0] = none
		}
	}
	return out, after
}

// Search runs q in one read transaction (so that the page and the total see
// the same data): a few bounded probes of the candidate clauses, then one
// statement for the page (and one for the total when asked).
func (s *Store) Search(ctx context.Context, q store.Query) (*store.Page, error) {
	tx, err := s.read.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: search: %w", err)
	}
	defer tx.Rollback()
	p := &planner{ctx: ctx, tx: tx, db: s.read, stmts: &s.stmts}
	keys, after, cands, pl, err := p.prepare(&q)
	if err != nil {
		return nil, err
	}
	page := &store.Page{Total: -1}
	if q.Total {
		f, err := p.buildCount(q, cands)
		if err != nil {
			return nil, err
		}
		if page.Total, err = p.scalar(f); err != nil {
			return nil, fmt.Errorf("sqlite: search count: %w", err)
		}
	}
	if q.Count <= 0 {
		return page, nil
	}
	f, err := p.buildPage(q, keys, after, pl)
	if err != nil {
		return nil, err
	}
	rows, err := p.query(f)
	if err != nil {
		return nil, fmt.Errorf("sqlite: search: %w", err)
	}
	defer rows.Close()
	var last []any
	for rows.Next() {
		if len(page.Resources) == q.Count {
			page.Next = encodeCursor(keys, last)
			break
		}
		r := &store.Resource{Type: q.Type}
		var lu int64
		vals := make([]any, len(keys))
		dest := []any{&r.ID, &r.Version, &lu, &r.Body}
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("sqlite: search: %w", err)
		}
		r.LastUpdated = time.UnixMilli(lu).UTC()
		for i, v := range vals {
			switch v := v.(type) {
			case []byte:
				vals[i] = string(v)
			case int64:
				if pl.patient != nil && i == 0 && len(vals) == 2 && (v == noDateHi || v == noDateLo) {
					vals[i] = nil // no date: the cursor says so, whichever plan reads it
				}
			}
		}
		page.Resources = append(page.Resources, r)
		last = vals
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: search: %w", err)
	}
	return page, nil
}

// explain returns the plan chosen for q's page and SQLite's query plan of
// its statement (tests).
func (s *Store) explain(ctx context.Context, q store.Query) (plan, []string, error) {
	p := &planner{ctx: ctx, db: s.read}
	keys, after, _, pl, err := p.prepare(&q)
	if err != nil {
		return plan{}, nil, err
	}
	q.Count = max(q.Count, 1)
	f, err := p.buildPage(q, keys, after, pl)
	if err != nil {
		return plan{}, nil, err
	}
	lines, err := explainSQL(ctx, s.read, f)
	return pl, lines, err
}

func explainSQL(ctx context.Context, db *sql.DB, f frag) ([]string, error) {
	rows, err := db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+f.sql, f.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			return nil, err
		}
		out = append(out, detail)
	}
	return out, rows.Err()
}

// plainIDs takes the plain _id conditions out of a clause's OR: they are
// tested as one IN list, as a clause of a thousand ids (an _include's
// targets) would make an OR or UNION deeper than SQLite allows.
func plainIDs(any []store.Condition) (ids []any, rest []store.Condition) {
	for _, c := range any {
		if c.Kind == store.KindID && !c.Not && c.Missing == nil && c.Chain == nil && c.Has == nil {
			ids = append(ids, c.Value)
			continue
		}
		rest = append(rest, c)
	}
	if len(ids) < 2 {
		return nil, any // one id keeps its plan (and its probe)
	}
	return ids, rest
}

// placeholders is "?, ?, ..." n times.
func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }
