// Package sqlite is the embedded storage engine: one SQLite database file in
// WAL mode under the data directory, through the pure-Go modernc.org/sqlite
// driver (no cgo). It is the default engine for `go run .`, tests and
// benchmarks.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/dmp-fhir/dmp-fhir/store"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// FileName is the database file inside the data directory.
const FileName = "dmp.sqlite"

// Store is the SQLite engine. Writes go through one connection (SQLite has
// one writer at a time; BEGIN IMMEDIATE takes the lock up front so that
// transactions never deadlock on upgrade); reads use a pool of read-only
// connections that WAL lets run beside the writer.
type Store struct {
	write *sql.DB
	read  *sql.DB
	stmts stmtCache // prepared statements on read (search.go, reads)
	// writes are the write path's statements, prepared once on the single
	// writer connection at Open (preparing later would wait for the
	// connection a transaction holds): modernc's SQLite compiles an
	// unprepared statement at every call, a fifth of a write's cost.
	writes map[string]*sql.Stmt
	blobs  *fileBlobs
	wal    *walSync      // makes each acknowledged commit durable
	ckpt   *checkpointer // copies the WAL back into the database, off the write lock
	// owner is the data directory's lock, held while the store is open:
	// no other process writes the database, so counts is every write.
	owner  *dirLock
	counts writeCounts
}

var _ store.Store = (*Store)(nil)

// schema is applied at every Open; every statement is idempotent.
//
// history holds every version, body included, once; resources points at the
// current version of each resource (vid) so that a read is two primary-key
// lookups and no body is stored twice.
//
// The index tables (one per fhir.Index kind) hold the values of current,
// non-deleted versions only, keyed by the resource's rid: a write replaces
// the rows of its resource, a deletion removes them. Each table is clustered
// on (rid, param, value...) so that testing one candidate resource, or
// computing its sort value, is a primary-key seek; its secondary indexes
// lead with (type, param) then the value, so that every search condition is
// one index range (search.go).
const schema = `
CREATE TABLE IF NOT EXISTS history (
	vid          INTEGER PRIMARY KEY,
	type         TEXT    NOT NULL,
	id           TEXT    NOT NULL,
	version      INTEGER NOT NULL,
	last_updated INTEGER NOT NULL,
	deleted      INTEGER NOT NULL DEFAULT 0,
	body         BLOB
);
CREATE UNIQUE INDEX IF NOT EXISTS history_version ON history(type, id, version);
CREATE INDEX IF NOT EXISTS history_type_time ON history(type, last_updated, id, version);
CREATE INDEX IF NOT EXISTS history_time ON history(last_updated, type, id, version);

CREATE TABLE IF NOT EXISTS resources (
	rid          INTEGER PRIMARY KEY,
	type         TEXT    NOT NULL,
	id           TEXT    NOT NULL,
	version      INTEGER NOT NULL,
	vid          INTEGER NOT NULL,
	last_updated INTEGER NOT NULL,
	deleted      INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS resources_id ON resources(type, id);
DROP INDEX IF EXISTS resources_lu;
DROP INDEX IF EXISTS resources_lu_desc;
CREATE INDEX IF NOT EXISTS resources_live ON resources(type, id) WHERE deleted = 0;
CREATE INDEX IF NOT EXISTS resources_live_lu ON resources(type, last_updated, id) WHERE deleted = 0;
CREATE INDEX IF NOT EXISTS resources_live_lu_desc ON resources(type, last_updated DESC, id) WHERE deleted = 0;

DROP TABLE IF EXISTS token_idx;

-- type_stats counts the live (not deleted) resources of each type, for the
-- search planner's cost estimates. A transaction's new resources are
-- counted by type in Go and added once per type before its commit
-- (txWrites.born, sqlCountBorn): a trigger on every INSERT was a third of
-- the row's cost, a tenth of the write lock's time under Bundle ingest.
-- Deletions, restorations and purges, rarer, keep their triggers.
CREATE TABLE IF NOT EXISTS type_stats (
	type TEXT    PRIMARY KEY,
	live INTEGER NOT NULL
) WITHOUT ROWID;
DROP TRIGGER IF EXISTS resources_live_insert;
CREATE TRIGGER IF NOT EXISTS resources_live_update AFTER UPDATE OF deleted ON resources WHEN old.deleted <> new.deleted BEGIN
	INSERT INTO type_stats(type, live) VALUES (new.type, CASE WHEN new.deleted = 0 THEN 1 ELSE -1 END)
		ON CONFLICT(type) DO UPDATE SET live = live + excluded.live;
END;
CREATE TRIGGER IF NOT EXISTS resources_live_delete AFTER DELETE ON resources WHEN old.deleted = 0 BEGIN
	UPDATE type_stats SET live = live - 1 WHERE type = old.type;
END;

-- Token rows also carry the resource id: tok_code lists the resources
-- holding one system|code in id order, so that a search in the default
-- order reads that range from its keyset position and stops at the page.
CREATE TABLE IF NOT EXISTS tok_idx (
	rid    INTEGER NOT NULL,
	type   TEXT    NOT NULL,
	param  TEXT    NOT NULL,
	system TEXT    NOT NULL,
	code   TEXT    NOT NULL,
	id     TEXT    NOT NULL,
	PRIMARY KEY (rid, param, code, system)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tok_code ON tok_idx(type, param, code, system, id);

CREATE TABLE IF NOT EXISTS str_idx (
	rid   INTEGER NOT NULL,
	type  TEXT    NOT NULL,
	param TEXT    NOT NULL,
	norm  TEXT    NOT NULL,
	exact TEXT    NOT NULL,
	PRIMARY KEY (rid, param, norm, exact)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS str_norm ON str_idx(type, param, norm, rid);
-- exact is '' on the rows of a token's :text (searched by norm only, never
-- :exact), and they stay out of the index by exact: one B-tree insert less
-- for each of them, two or three an Observation. An :exact search says
-- exact <> '' for SQLite to take this index. (A database from before keeps
-- its :text rows' exact values; they are in the index, and harmless.)
DROP INDEX IF EXISTS str_exact;
CREATE INDEX IF NOT EXISTS str_exact_set ON str_idx(type, param, exact, rid) WHERE exact <> '';

CREATE TABLE IF NOT EXISTS ref_idx (
	rid      INTEGER NOT NULL,
	type     TEXT    NOT NULL,
	param    TEXT    NOT NULL,
	ref_type TEXT    NOT NULL,
	ref_id   TEXT    NOT NULL,
	url      TEXT    NOT NULL,
	PRIMARY KEY (rid, param, ref_type, ref_id, url)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ref_target ON ref_idx(type, param, ref_id, ref_type, rid);
CREATE INDEX IF NOT EXISTS ref_url ON ref_idx(type, param, url, rid) WHERE url <> '';

-- fwd_idx holds the references and tokens of the parameters in forwardOnly
-- (what an AuditEvent lists, its action, outcome, type and subtype): one row
-- per resource, keyed by its rid and nothing else, so that writing them
-- appends one row, where an index by value would take a random page for each
-- of the up to a hundred resources an access lists, and a row each would be
-- as many B-tree inserts. refs is a JSON array of [param, type, id, url],
-- toks of [param, system, code]. They are tested on a candidate (a
-- primary-key seek), never read by value, through the views ref_fwd and
-- tok_fwd (forwardViews), which list them a row each as the tables of those
-- names did before schema 8.
CREATE TABLE IF NOT EXISTS fwd_idx (
	rid  INTEGER PRIMARY KEY,
	refs TEXT    NOT NULL,
	toks TEXT    NOT NULL
);
` + forwardViews + `
CREATE TABLE IF NOT EXISTS date_idx (
	rid   INTEGER NOT NULL,
	type  TEXT    NOT NULL,
	param TEXT    NOT NULL,
	low   INTEGER NOT NULL,
	high  INTEGER NOT NULL,
	PRIMARY KEY (rid, param, low, high)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS date_low ON date_idx(type, param, low, high, rid);
CREATE INDEX IF NOT EXISTS date_high ON date_idx(type, param, high, low, rid);

CREATE TABLE IF NOT EXISTS num_idx (
	rid    INTEGER NOT NULL,
	type   TEXT    NOT NULL,
	param  TEXT    NOT NULL,
	value  REAL    NOT NULL,
	system TEXT    NOT NULL,
	code   TEXT    NOT NULL,
	PRIMARY KEY (rid, param, value, system, code)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS num_value ON num_idx(type, param, value, system, code, rid);

CREATE TABLE IF NOT EXISTS uri_idx (
	rid   INTEGER NOT NULL,
	type  TEXT    NOT NULL,
	param TEXT    NOT NULL,
	value TEXT    NOT NULL,
	PRIMARY KEY (rid, param, value)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS uri_value ON uri_idx(type, param, value, rid);

-- pat_idx lists the resources of each patient in the orders a patient's
-- record is read in (search.go, the patient plan): for every patient a
-- resource refers to (any reference parameter to a Patient; a Patient is
-- its own, by the parameter '_id'), one row in id order (param '_id', lo =
-- hi = 0) and one per date parameter of its type but unsortedByPatient's,
-- lo the smallest Low of its values and hi the largest High (the values an
-- ascending and a descending sort use), or noDateLo / noDateHi when it has
-- none, so that it sorts last either way. via lists the parameters that refer to the
-- patient (",patient,subject,"): a clause naming the patient is tested on
-- the index entry itself; so is a clause on a _security label, which the
-- consent puts on every professional's search, or on a token parameter of
-- patientTokenParams (an Observation's category) (secEntries: the resource's
-- labels and those tokens, "\x1fsystem|code\x1fcategory\x1ecode\x1esystem\x1f...");
-- vid is the current version's history row. So a
-- patient's observations newest first, or in id order, are one range of
-- pat_hi read from the cursor on until the page is full, each entry leading
-- to its body without the resources row.
CREATE TABLE IF NOT EXISTS pat_idx (
	rid     INTEGER NOT NULL,
	type    TEXT    NOT NULL,
	patient TEXT    NOT NULL,
	param   TEXT    NOT NULL,
	lo      INTEGER NOT NULL,
	hi      INTEGER NOT NULL,
	id      TEXT    NOT NULL,
	via     TEXT    NOT NULL,
	vid     INTEGER NOT NULL,
	sec     TEXT    NOT NULL DEFAULT '',
	PRIMARY KEY (rid, patient, param)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pat_hi ON pat_idx(patient, type, param, hi DESC, id, via, vid, sec);
CREATE INDEX IF NOT EXISTS pat_lo ON pat_idx(patient, type, param, lo, id, via, vid, sec) WHERE param <> '_id';
`

// walAutocheckpointPages is the WAL size, in pages, at which a commit copies
// the WAL back into the database itself, inside the write lock (SQLite's
// default is 1,000, 4 MB): a backstop only, 160 MB, since the checkpointer
// does it beside the writer every checkpointInterval. Checkpoints in the
// lock were a ninth of the CPU of small transactions at 1,000 pages, and a
// tenth of the lock's time under Bundle ingest at 10,000.
const walAutocheckpointPages = 40000

// forwardViews list fwd_idx's values a row each, with the columns of the
// tables ref_fwd and tok_fwd of schemas 5 to 7. (On a database of those
// schemas the tables are still there when the schema runs, so IF NOT EXISTS
// leaves them; the upgrade replaces them, packForwardOnly.)
const forwardViews = `
CREATE VIEW IF NOT EXISTS ref_fwd(rid, param, ref_type, ref_id, url) AS
	SELECT f.rid, e.value->>0, e.value->>1, e.value->>2, e.value->>3 FROM fwd_idx f, json_each(f.refs) e;
CREATE VIEW IF NOT EXISTS tok_fwd(rid, param, system, code) AS
	SELECT f.rid, e.value->>0, e.value->>1, e.value->>2 FROM fwd_idx f, json_each(f.toks) e;
`

// schemaVersion is stored in PRAGMA user_version. A database written by an
// older schema (whose index tables were different or missing) is reindexed
// once at Open; one of version 2 only gets its pat_idx rows, computed from
// its other index tables (fillPatientIndex); one of version 2 to 4 moves the
// forwardOnly references and tokens from ref_idx and tok_idx to fwd_idx
// (moveForwardOnly), one of version 5 to 7 from its tables ref_fwd and
// tok_fwd (packForwardOnly); one of version 2 to 6 gets the security labels
// and the tokens of patientTokenParams on its pat_idx entries
// (addPatientLabels); one of version 3 to 8 loses the pat_idx rows of
// unsortedByPatient (dropUnsortedPatientRows); one of version 2 to 9 loses
// the ref_idx rows a narrower parameter holds too (dropWiderRefs).
const schemaVersion = 10

// Open opens (creating if needed) the database in dir.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: data directory: %w", err)
	}
	owner, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s, err := open(dir, owner)
	if err != nil {
		owner.release()
		return nil, err
	}
	return s, nil
}

func open(dir string, owner *dirLock) (*Store, error) {
	blobs, err := openBlobs(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, FileName)
	// synchronous(FULL) for the readers' connections; the writer's runs
	// with NORMAL and syncs the WAL after its commits, several at once
	// (walSync): either way a commit is on disk before it is acknowledged,
	// so an acknowledged write survives kill -9 and power loss alike.
	common := url.Values{}
	common.Add("_pragma", "journal_mode(WAL)")
	common.Add("_pragma", "synchronous(FULL)")
	common.Add("_pragma", "busy_timeout(10000)")
	common.Add("_pragma", "foreign_keys(OFF)")
	common.Add("_pragma", "cache_size(-32000)")
	// Statement journals (written by every INSERT of a transaction that may
	// have to undo that statement alone) and sort spills in memory, not in
	// temporary files: they were a tenth of the CPU of the audit trail's
	// copy, in pwrite system calls.
	common.Add("_pragma", "temp_store(MEMORY)")

	wq := withPragmas(common, "synchronous(NORMAL)", fmt.Sprintf("wal_autocheckpoint(%d)", walAutocheckpointPages))
	wq.Set("_txlock", "immediate")
	write, err := sql.Open("sqlite", "file:"+path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	keepConns(write, 1)
	if _, err := write.Exec(schema); err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite: schema: %w", err)
	}
	// Commits are made durable by syncing the WAL file (walSync): without
	// WAL mode (a file system without shared memory) no write could be.
	var mode string
	if err := write.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		write.Close()
		return nil, fmt.Errorf("sqlite: the database is not in WAL mode (journal_mode %q, %v): commits could not be made durable", mode, err)
	}

	// A 2 MB page cache for each reader, the writer keeps 32 MB. Every
	// commit (the audit's copy commits many times a second) empties the
	// cache of each reader at its next read, which then allocates its
	// pages anew, one by one: a small cache refills for less, and costs
	// less memory; what it misses comes from the OS's page cache (8 MB
	// each before: W1, W2 and W3 were 4-11% slower at D1, W2 2-5% faster at
	// D2, 60 MB more resident). No memory map: it saved a seventh of
	// $everything's CPU (no pread of the bodies) but put every mapped page
	// of the file in the process's resident set (2.2 GB at D1 after
	// $everything, 400 MB is the target).
	rq := withPragmas(common, "query_only(1)", "cache_size(-2000)")
	read, err := sql.Open("sqlite", "file:"+path+"?"+rq.Encode())
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	n := 2 * runtime.GOMAXPROCS(0)
	if n < 4 {
		n = 4
	}
	keepConns(read, n)
	if err := read.Ping(); err != nil {
		write.Close()
		read.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	// The checkpointer's connection reads (query_only lets a checkpoint
	// run) and needs no page cache: a checkpoint copies WAL frames.
	ckpt, err := sql.Open("sqlite", "file:"+path+"?"+withPragmas(rq, "cache_size(-512)").Encode())
	if err != nil {
		write.Close()
		read.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	keepConns(ckpt, 1)
	s := &Store{write: write, read: read, blobs: blobs, wal: newWALSync(path + "-wal"), ckpt: startCheckpointer(ckpt), owner: owner}
	// The columns an older database lacks, before the writes are prepared;
	// upgrade fills them.
	if err := addPatientLabelColumn(write); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: schema: %w", err)
	}
	if err := s.prepareWrites(); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.upgrade(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// withPragmas is a copy of the DSN parameters q in which each pragma of set
// replaces q's pragma of the same name. (The driver runs a DSN's pragmas
// sorted by their text, so two of one name would leave the last in that
// order, not the last added: the readers' cache_size(-8000) of an earlier
// version won over the common cache_size(-32000) only because "-3" sorts
// before "-8".)
func withPragmas(q url.Values, set ...string) url.Values {
	out := make(url.Values, len(q))
	for k, v := range q {
		out[k] = slices.Clone(v)
	}
	for _, p := range set {
		name, _, _ := strings.Cut(p, "(")
		out["_pragma"] = slices.DeleteFunc(out["_pragma"], func(x string) bool { return strings.HasPrefix(x, name+"(") })
		out.Add("_pragma", p)
	}
	return out
}

// keepConns sizes db's pool to n connections, kept open for good: each
// holds its page cache and prepared statements.
func keepConns(db *sql.DB, n int) {
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxLifetime(0)
}

// upgrade reindexes a database written by an older schema.
func (s *Store) upgrade() error {
	var v int
	if err := s.write.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("sqlite: schema version: %w", err)
	}
	if v >= schemaVersion {
		return nil
	}
	ctx := context.Background()
	switch v {
	case 8, 9: // only the deletions below
	case 2, 3, 4, 5, 6, 7:
		if v == 2 {
			if err := s.fillPatientIndex(ctx); err != nil {
				return fmt.Errorf("sqlite: patient index for schema %d: %w", schemaVersion, err)
			}
		}
		if v < 7 {
			if err := s.addPatientLabels(ctx); err != nil {
				return fmt.Errorf("sqlite: patient index labels for schema %d: %w", schemaVersion, err)
			}
		}
		move := s.packForwardOnly
		if v < 5 {
			move = s.moveForwardOnly
		}
		if err := move(ctx); err != nil {
			return fmt.Errorf("sqlite: forward-only references for schema %d: %w", schemaVersion, err)
		}
	default:
		if err := s.Reindex(ctx, nil); err != nil {
			return fmt.Errorf("sqlite: reindex for schema %d: %w", schemaVersion, err)
		}
	}
	// Schema 2 had no pat_idx (fillPatientIndex wrote today's rows), and
	// Reindex writes today's rows of both tables.
	if v >= 3 && v <= 8 {
		if err := s.dropUnsortedPatientRows(ctx); err != nil {
			return fmt.Errorf("sqlite: patient index for schema %d: %w", schemaVersion, err)
		}
	}
	if v >= 2 && v <= 9 {
		if err := s.dropWiderRefs(ctx); err != nil {
			return fmt.Errorf("sqlite: references for schema %d: %w", schemaVersion, err)
		}
	}
	if _, err := s.write.Exec(`DELETE FROM type_stats;
		INSERT INTO type_stats(type, live) SELECT type, count(*) FROM resources WHERE deleted = 0 GROUP BY type`); err != nil {
		return fmt.Errorf("sqlite: type statistics: %w", err)
	}
	if _, err := s.write.Exec(fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return fmt.Errorf("sqlite: schema version: %w", err)
	}
	return nil
}

// Info describes the engine.
func (s *Store) Info() store.Info {
	return store.Info{Engine: "sqlite", Transactions: true, ConcurrentSafe: true}
}

// Ping checks both pools answer.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.read.PingContext(ctx); err != nil {
		return err
	}
	return s.write.PingContext(ctx)
}

// Close checkpoints the WAL into the database file and closes both pools.
func (s *Store) Close() error {
	s.stmts.close()
	for _, st := range s.writes {
		st.Close()
	}
	kerr := s.ckpt.close()
	_, cerr := s.write.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	rerr := s.read.Close()
	werr := s.write.Close()
	s.wal.close()
	s.owner.release()
	return errors.Join(kerr, cerr, rerr, werr)
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// ops runs the store operations on one querier: the read pool, or the
// transaction of a write.
type ops struct{ q querier }

// The statements of the write path.
const (
	sqlCurrent = `SELECT r.rid, h.version, h.last_updated, h.deleted, h.body
		FROM resources r JOIN history h ON h.vid = r.vid WHERE r.type = ? AND r.id = ?`
	sqlVRead          = `SELECT last_updated, deleted, body FROM history WHERE type = ? AND id = ? AND version = ?`
	sqlInsertHistory  = `INSERT INTO history(type, id, version, last_updated, deleted, body) VALUES (?, ?, ?, ?, ?, ?)`
	sqlInsertResource = `INSERT INTO resources(type, id, version, vid, last_updated, deleted) VALUES (?, ?, ?, ?, ?, ?)`
	sqlUpdateResource = `UPDATE resources SET version = ?, vid = ?, last_updated = ?, deleted = ? WHERE rid = ?`
	sqlCountBorn      = `INSERT INTO type_stats(type, live) VALUES (?, ?) ON CONFLICT(type) DO UPDATE SET live = live + excluded.live`
)

func (s *Store) prepareWrites() error {
	texts := []string{sqlCurrent, sqlVRead, sqlInsertHistory, sqlInsertResource, sqlUpdateResource, sqlCountBorn}
	for _, t := range clearTexts {
		texts = append(texts, t)
	}
	for _, bySize := range insertTexts {
		for _, t := range bySize {
			texts = append(texts, t)
		}
	}
	s.writes = make(map[string]*sql.Stmt, len(texts))
	for _, t := range texts {
		st, err := s.write.Prepare(t)
		if err != nil {
			return fmt.Errorf("sqlite: prepare: %w", err)
		}
		s.writes[t] = st
	}
	return nil
}

// txQuerier runs a write transaction's statements, the prepared ones
// through tx.StmtContext (which reuses the writer connection's statement).
type txQuerier struct {
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
	// pend, when set, holds the index rows of the transaction's writes
	// until a statement that may read them, or the commit (pending).
	pend *pending
	// wrote collects the types of the resources the transaction writes.
	wrote *txWrites
}

func (q txQuerier) ExecContext(ctx context.Context, text string, args ...any) (sql.Result, error) {
	if q.pend != nil {
		q.pend.lastRead = nil // what it read may change
	}
	if err := q.flushBefore(ctx, text); err != nil {
		return nil, err
	}
	// A write of the transaction is a few rows: without the context's
	// Done, the driver does not start a goroutine to interrupt it (one per
	// statement, some 40,000 for a 7,000-resource import, each woken twice).
	// A context ended before it still fails it.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ctx = context.WithoutCancel(ctx)
	if st := q.stmts[text]; st != nil {
		return q.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return q.tx.ExecContext(ctx, text, args...)
}

func (q txQuerier) QueryContext(ctx context.Context, text string, args ...any) (*sql.Rows, error) {
	if err := q.flushBefore(ctx, text); err != nil {
		return nil, err
	}
	if st := q.stmts[text]; st != nil {
		return q.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return q.tx.QueryContext(ctx, text, args...)
}

func (q txQuerier) QueryRowContext(ctx context.Context, text string, args ...any) *sql.Row {
	if err := q.flushBefore(ctx, text); err != nil {
		// The pending rows could not be written: the read would miss
		// them. Its error fails the transaction (pending.err), and the
		// row it answers fails with the context's.
		failed, cancel := context.WithCancel(ctx)
		cancel()
		return q.tx.QueryRowContext(failed, text, args...)
	}
	if ctx.Err() == nil { // a point read, as readQuerier's
		ctx = context.WithoutCancel(ctx)
	}
	if st := q.stmts[text]; st != nil {
		return q.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return q.tx.QueryRowContext(ctx, text, args...)
}

// flushBefore writes the pending index rows before a statement that may
// read or change index tables: every statement but those of the write
// path that touch history and resources only, and the DELETEs of
// clearIndex (which drops the pending rows of its resource first).
func (q txQuerier) flushBefore(ctx context.Context, text string) error {
	if q.pend == nil || q.pend.n == 0 || indexFree[text] {
		return nil
	}
	return q.pend.flush(ctx, q.tx, q.stmts)
}

// readQuerier runs reads on the read pool with cached prepared statements.
type readQuerier struct {
	db    *sql.DB
	stmts *stmtCache
}

func (q readQuerier) ExecContext(ctx context.Context, text string, args ...any) (sql.Result, error) {
	return q.db.ExecContext(ctx, text, args...)
}

func (q readQuerier) QueryContext(ctx context.Context, text string, args ...any) (*sql.Rows, error) {
	if st := q.stmts.get(ctx, q.db, text); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return q.db.QueryContext(ctx, text, args...)
}

// QueryRowContext runs a point read (a version by type and id): without the
// context's Done, as a transaction's writes, so that the driver starts no
// goroutine to interrupt it; a context ended before it still fails it.
func (q readQuerier) QueryRowContext(ctx context.Context, text string, args ...any) *sql.Row {
	if ctx.Err() == nil {
		ctx = context.WithoutCancel(ctx)
	}
	if st := q.stmts.get(ctx, q.db, text); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.db.QueryRowContext(ctx, text, args...)
}

// txOps are the operations of a write transaction; w records the types its
// writes change (nil for index maintenance, which writes no resource).
func (s *Store) txOps(tx *sql.Tx, w *txWrites) ops {
	return ops{txQuerier{tx: tx, stmts: s.writes, wrote: w}}
}

func (s *Store) readOps() ops { return ops{readQuerier{s.read, &s.stmts}} }

// Transaction runs fn in one SQLite transaction.
//
// The index rows of its writes are inserted together (pending): at the
// commit, or before a statement that may read them. Inserted resource by
// resource, a 500-resource import spent a fifth of its time in the write
// lock on the statements' own cost.
func (s *Store) Transaction(ctx context.Context, fn func(tx store.Ops) error) error {
	w := &txWrites{}
	return s.inTx(ctx, w, func(tx *sql.Tx) error {
		p := &pending{}
		if err := fn(ops{txQuerier{tx: tx, stmts: s.writes, pend: p, wrote: w}}); err != nil {
			return err
		}
		return p.flush(ctx, tx, s.writes)
	})
}

// inTx runs fn in a write transaction and commits it. w, when not nil,
// holds the resource types fn wrote: their write counts move once the
// commit is visible to readers and before it is acknowledged.
func (s *Store) inTx(ctx context.Context, w *txWrites, fn func(tx *sql.Tx) error) (err error) {
	if err := s.wal.failed(); err != nil {
		return err
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			tx.Rollback()
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := w.countBorn(ctx, tx, s.writes[sqlCountBorn]); err != nil {
		tx.Rollback()
		return fmt.Errorf("sqlite: type statistics: %w", err)
	}
	cerr := tx.Commit()
	if w != nil {
		// Even when the commit failed: a count that moves for nothing
		// only costs a cache its entries.
		s.counts.moved(w.types)
	}
	if cerr != nil {
		return fmt.Errorf("sqlite: commit: %w", cerr)
	}
	// Committed and visible; acknowledged once on disk.
	s.ckpt.committed()
	return s.wal.wait(s.wal.commit())
}

// Create stores version 1 of a new resource.
func (s *Store) Create(ctx context.Context, typ, id string, body []byte) (r *store.Resource, err error) {
	w := &txWrites{}
	err = s.inTx(ctx, w, func(tx *sql.Tx) error {
		r, err = s.txOps(tx, w).Create(ctx, typ, id, body)
		return err
	})
	return r, err
}

// Put stores the next version of a resource, or creates it.
func (s *Store) Put(ctx context.Context, typ, id string, body []byte, ifMatch int64) (r *store.Resource, out store.Outcome, err error) {
	w := &txWrites{}
	err = s.inTx(ctx, w, func(tx *sql.Tx) error {
		r, out, err = s.txOps(tx, w).Put(ctx, typ, id, body, ifMatch)
		return err
	})
	return r, out, err
}

// Delete writes a deletion version.
func (s *Store) Delete(ctx context.Context, typ, id string, ifMatch int64) (r *store.Resource, out store.Outcome, err error) {
	w := &txWrites{}
	err = s.inTx(ctx, w, func(tx *sql.Tx) error {
		r, out, err = s.txOps(tx, w).Delete(ctx, typ, id, ifMatch)
		return err
	})
	return r, out, err
}

// Read returns the current version.
func (s *Store) Read(ctx context.Context, typ, id string) (*store.Resource, error) {
	return s.readOps().Read(ctx, typ, id)
}

// VRead returns one version.
func (s *Store) VRead(ctx context.Context, typ, id string, version int64) (*store.Resource, error) {
	return s.readOps().VRead(ctx, typ, id, version)
}

// FindByToken returns ids of current resources indexed with the token.
func (s *Store) FindByToken(ctx context.Context, typ string, tq store.TokenQuery, limit int) ([]string, error) {
	return s.readOps().FindByToken(ctx, typ, tq, limit)
}

// current is the current row of a resource, with its body.
type current struct {
	rid int64
	res store.Resource
}

// lastRead is the current version a transaction read last (cur nil: none),
// kept until its next statement that writes: a write's handler reads the
// resource for its checks, then the store's Put reads it again to version
// it, the second read inside the write lock for nothing.
type lastRead struct {
	typ, id string
	cur     *current
}

func (o ops) current(ctx context.Context, typ, id string) (*current, error) {
	q, inTx := o.q.(txQuerier)
	if inTx && q.pend != nil {
		if m := q.pend.lastRead; m != nil && m.typ == typ && m.id == id {
			if m.cur == nil {
				return nil, nil
			}
			c := *m.cur
			return &c, nil
		}
	}
	c, err := o.readCurrent(ctx, typ, id)
	if err == nil && inTx && q.pend != nil {
		m := &lastRead{typ: typ, id: id}
		if c != nil {
			cp := *c
			m.cur = &cp
		}
		q.pend.lastRead = m
	}
	return c, err
}

func (o ops) readCurrent(ctx context.Context, typ, id string) (*current, error) {
	var c current
	var lu int64
	var deleted int
	err := o.q.QueryRowContext(ctx, sqlCurrent, typ, id).
		Scan(&c.rid, &c.res.Version, &lu, &deleted, &c.res.Body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: read %s/%s: %w", typ, id, err)
	}
	c.res.Type, c.res.ID = typ, id
	c.res.LastUpdated = time.UnixMilli(lu).UTC()
	c.res.Deleted = deleted != 0
	return &c, nil
}

func (o ops) Read(ctx context.Context, typ, id string) (*store.Resource, error) {
	c, err := o.current(ctx, typ, id)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, store.ErrNotFound
	}
	if c.res.Deleted {
		return &c.res, store.ErrDeleted
	}
	return &c.res, nil
}

func (o ops) VRead(ctx context.Context, typ, id string, version int64) (*store.Resource, error) {
	r := store.Resource{Type: typ, ID: id, Version: version}
	var lu int64
	var deleted int
	err := o.q.QueryRowContext(ctx, sqlVRead, typ, id, version).Scan(&lu, &deleted, &r.Body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: vread %s/%s/%d: %w", typ, id, version, err)
	}
	r.LastUpdated = time.UnixMilli(lu).UTC()
	r.Deleted = deleted != 0
	if r.Deleted {
		return &r, store.ErrDeleted
	}
	return &r, nil
}

// Create lets the unique index on history(type, id, version) say whether
// typ/id exists (deleted or not, it has a version 1): no read first (a
// sixth of the cost of copying the audit trail into the store). The
// failed INSERT ends only its own statement, not the transaction.
func (o ops) Create(ctx context.Context, typ, id string, body []byte) (*store.Resource, error) {
	nv, err := store.Prepare(ctx, typ, id, body, 1, store.Now())
	if err != nil {
		return nil, err
	}
	if err := o.write(ctx, 0, nv); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, store.ErrExists
		}
		return nil, err
	}
	return &nv.Resource, nil
}

func (o ops) Put(ctx context.Context, typ, id string, body []byte, ifMatch int64) (*store.Resource, store.Outcome, error) {
	c, err := o.current(ctx, typ, id)
	if err != nil {
		return nil, 0, err
	}
	if ifMatch != 0 && (c == nil || c.res.Version != ifMatch) {
		return nil, 0, store.ErrVersionMismatch
	}
	if c != nil && store.SameAsCurrent(&c.res, body) {
		return &c.res, store.Unchanged, nil
	}
	version, rid, out := int64(1), int64(0), store.Created
	if c != nil {
		version, rid = c.res.Version+1, c.rid
		if !c.res.Deleted {
			out = store.Updated
		}
	}
	nv, err := store.Prepare(ctx, typ, id, body, version, store.Now())
	if err != nil {
		return nil, 0, err
	}
	if err := o.write(ctx, rid, nv); err != nil {
		return nil, 0, err
	}
	return &nv.Resource, out, nil
}

func (o ops) Delete(ctx context.Context, typ, id string, ifMatch int64) (*store.Resource, store.Outcome, error) {
	c, err := o.current(ctx, typ, id)
	if err != nil {
		return nil, 0, err
	}
	if ifMatch != 0 && (c == nil || c.res.Version != ifMatch) {
		return nil, 0, store.ErrVersionMismatch
	}
	if c == nil || c.res.Deleted {
		return nil, store.NoOp, nil
	}
	nv := store.Deletion(typ, id, c.res.Version+1, store.Now())
	if err := o.write(ctx, c.rid, nv); err != nil {
		return nil, 0, err
	}
	return &nv.Resource, store.Deleted, nil
}

// write appends nv to history, points the resource row at it (rid 0: a new
// resource) and replaces the resource's index values.
func (o ops) write(ctx context.Context, rid int64, nv *store.NewVersion) error {
	r := &nv.Resource
	// Every write transaction records its types (a nil wrote would let a
	// cache of them go stale: it panics here, in every test that writes).
	o.q.(txQuerier).wrote.add(r.Type)
	deleted := 0
	if r.Deleted {
		deleted = 1
	}
	res, err := o.q.ExecContext(ctx, sqlInsertHistory, r.Type, r.ID, r.Version, r.LastUpdated.UnixMilli(), deleted, r.Body)
	if err != nil {
		if isConstraint(err) {
			return store.ErrConflict
		}
		return fmt.Errorf("sqlite: write history: %w", err)
	}
	vid, _ := res.LastInsertId()
	if rid == 0 {
		res, err = o.q.ExecContext(ctx, sqlInsertResource, r.Type, r.ID, r.Version, vid, r.LastUpdated.UnixMilli(), deleted)
		if err != nil {
			if isConstraint(err) {
				return store.ErrExists
			}
			return fmt.Errorf("sqlite: write resource: %w", err)
		}
		rid, _ = res.LastInsertId()
		if deleted == 0 {
			o.q.(txQuerier).wrote.bear(r.Type)
		}
	} else {
		if _, err := o.q.ExecContext(ctx, sqlUpdateResource, r.Version, vid, r.LastUpdated.UnixMilli(), deleted, rid); err != nil {
			return fmt.Errorf("sqlite: write resource: %w", err)
		}
		if err := clearIndex(ctx, o.q, rid); err != nil {
			return err
		}
	}
	return writeIndex(ctx, o.q, rid, vid, r.Type, r.ID, &nv.Index)
}

func isConstraint(err error) bool {
	return err != nil && strings.Contains(err.Error(), "constraint failed")
}

func (o ops) FindByToken(ctx context.Context, typ string, tq store.TokenQuery, limit int) ([]string, error) {
	q := `SELECT r.id FROM tok_idx t JOIN resources r ON r.rid = t.rid WHERE t.type = ? AND t.param = ? AND t.code = ?`
	if forwardOnly[typ][tq.Param] { // not indexed by value: every resource of the type
		q = `SELECT r.id FROM resources r JOIN tok_fwd t ON t.rid = r.rid WHERE r.type = ? AND t.param = ? AND t.code = ?`
	}
	args := []any{typ, tq.Param, tq.Code}
	switch {
	case tq.NoSystem:
		q += ` AND t.system = ''`
	case tq.System != "":
		q += ` AND t.system = ?`
		args = append(args, tq.System)
	}
	q += ` GROUP BY r.id ORDER BY r.id LIMIT ?`
	args = append(args, limit)
	rows, err := o.q.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: find: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sqlite: find: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// History lists versions newest first with keyset paging.
func (s *Store) History(ctx context.Context, hq store.HistoryQuery) ([]*store.Resource, error) {
	var where []string
	var args []any
	if hq.Type != "" {
		where = append(where, "type = ?")
		args = append(args, hq.Type)
	}
	if hq.ID != "" {
		where = append(where, "id = ?")
		args = append(args, hq.ID)
	}
	if !hq.Since.IsZero() {
		where = append(where, "last_updated >= ?")
		args = append(args, hq.Since.UnixMilli())
	}
	if a := hq.After; a != nil {
		where = append(where, "(last_updated, type, id, version) < (?, ?, ?, ?)")
		args = append(args, a.LastUpdated.UnixMilli(), a.Type, a.ID, a.Version)
	}
	q := `SELECT type, id, version, last_updated, deleted, body FROM history`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY last_updated DESC, type DESC, id DESC, version DESC LIMIT ?"
	count := hq.Count
	if count <= 0 {
		count = 50
	}
	args = append(args, count)
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: history: %w", err)
	}
	defer rows.Close()
	var out []*store.Resource
	for rows.Next() {
		r := &store.Resource{}
		var lu int64
		var deleted int
		if err := rows.Scan(&r.Type, &r.ID, &r.Version, &lu, &deleted, &r.Body); err != nil {
			return nil, fmt.Errorf("sqlite: history: %w", err)
		}
		r.LastUpdated = time.UnixMilli(lu).UTC()
		r.Deleted = deleted != 0
		out = append(out, r)
	}
	return out, rows.Err()
}

// Purge removes every version of typ/id, its index rows and its resources
// row (whose trigger keeps type_stats), in one transaction.
func (s *Store) Purge(ctx context.Context, typ, id string) error {
	w := &txWrites{types: []string{typ}}
	return s.inTx(ctx, w, func(tx *sql.Tx) error {
		var rid int64
		err := tx.QueryRowContext(ctx, `SELECT rid FROM resources WHERE type = ? AND id = ?`, typ, id).Scan(&rid)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("sqlite: purge %s/%s: %w", typ, id, err)
		}
		if err := clearIndex(ctx, tx, rid); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM history WHERE type = ? AND id = ?`, typ, id); err != nil {
			return fmt.Errorf("sqlite: purge %s/%s history: %w", typ, id, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM resources WHERE rid = ?`, rid); err != nil {
			return fmt.Errorf("sqlite: purge %s/%s: %w", typ, id, err)
		}
		return nil
	})
}
