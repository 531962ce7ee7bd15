package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// journalTestOptions are the options of a journaled Auditor in dir.
func journalTestOptions(dir string) AuditorOptions {
	return AuditorOptions{JournalDir: dir, Logger: auditTestQuiet(), Timeout: 10 * time.Second}
}

// journalTestOpen opens a journaled Auditor, closed at the end of the test
// (a no-op when the test crashed or closed it).
func journalTestOpen(t testing.TB, st store.Store, opts AuditorOptions) *Auditor {
	t.Helper()
	a, err := OpenAuditor(st, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// journalTestRecord records n events for patients prefix0..prefix<n-1>
// concurrently and fails the test on any error.
func journalTestRecord(t *testing.T, a *Auditor, prefix string, n int) {
	t.Helper()
	for i, err := range auditTestRecordMany(t, a, prefix, n) {
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
}

// journalTestExactlyOnce checks that each of the n patients has one
// AuditEvent, and that the store holds want AuditEvents in all.
func journalTestExactlyOnce(t *testing.T, st store.Store, prefix string, n, want int) {
	t.Helper()
	if got := auditTestCount(t, st, ""); got != want {
		t.Errorf("%d AuditEvents stored, want %d", got, want)
	}
	for i := range n {
		if got := auditTestCount(t, st, fmt.Sprintf("%s%d", prefix, i)); got != 1 {
			t.Fatalf("patient %s%d: %d AuditEvents, want 1", prefix, i, got)
		}
	}
}

// journalTestDown is a store that refuses every write while down is set.
func journalTestDown(real store.Store) (*auditTestStore, *atomic.Bool) {
	var down atomic.Bool
	boom := errors.New("store unreachable")
	st := &auditTestStore{Store: real}
	st.tx = func(ctx context.Context, fn func(store.Ops) error) error {
		if down.Load() {
			return boom
		}
		return real.Transaction(ctx, fn)
	}
	st.create = func(ctx context.Context, typ, id string, body []byte) (*store.Resource, error) {
		if down.Load() {
			return nil, boom
		}
		return real.Create(ctx, typ, id, body)
	}
	return st, &down
}

// Record returns only once its line is fsynced: while the fsync is held,
// Record waits, and once it returns the line is in the segment file.
func TestJournalRecordWaitsForFsync(t *testing.T) {
	st := auditTestSQLite(t)
	inSync := make(chan struct{}, 10)
	release := make(chan struct{})
	opts := journalTestOptions(t.TempDir())
	opts.testSync = func(f *os.File) error {
		inSync <- struct{}{}
		<-release
		return f.Sync()
	}
	a := journalTestOpen(t, st, opts)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before Close (cleanups run last first)
	done := make(chan error, 1)
	go func() { done <- a.Record(context.Background(), auditTestAccess("fsync")) }()
	<-inSync
	select {
	case err := <-done:
		t.Fatalf("Record returned (%v) before its fsync completed", err)
	case <-time.After(50 * time.Millisecond):
	}
	unblock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	segs, err := journalSegments(opts.JournalDir)
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments %v (%v)", segs, err)
	}
	data, err := os.ReadFile(filepath.Join(opts.JournalDir, journalSegmentName(segs[0])))
	if err != nil {
		t.Fatal(err)
	}
	// The segment is zero-filled ahead of its records while it is written.
	line, _, _ := bytes.Cut(data, []byte("\n"))
	if rest := data[len(line)+1:]; len(bytes.Trim(rest, "\x00")) != 0 {
		t.Fatalf("after the record: %d bytes, not all zeros", len(rest))
	}
	e, err := parseJournalLine(append(line, '\n'))
	if err != nil || !bytes.Contains(e.body, []byte(`"reference":"Patient/fsync"`)) || len(e.id) != 36 {
		t.Fatalf("journal line %q: %v", data, err)
	}
}

// Every acknowledged record survives a crash at any point of the copy into
// the store, and appears in the store exactly once after the next start.
func TestJournalAcknowledgedRecordsSurviveACrash(t *testing.T) {
	const n = 60
	for _, tc := range []struct {
		name string
		opts func(*AuditorOptions)
		// run records the events with the first Auditor, then the test
		// crashes it.
		run func(t *testing.T, a *Auditor, down *atomic.Bool)
		// after the crash, before the restart
		damage func(t *testing.T, dir string)
	}{
		{
			name: "store down: nothing copied",
			run: func(t *testing.T, a *Auditor, down *atomic.Bool) {
				down.Store(true)
				journalTestRecord(t, a, "c", n)
			},
		},
		{
			name: "crash between copy batches",
			opts: func(o *AuditorOptions) { o.MaterializeBatch = 7; o.MaterializeDelay = -1 },
			run: func(t *testing.T, a *Auditor, down *atomic.Bool) {
				journalTestRecord(t, a, "c", n/2)
				if err := a.Materialize(context.Background()); err != nil {
					t.Fatal(err)
				}
				down.Store(true)
				for i := n / 2; i < n; i++ {
					if err := a.Record(context.Background(), auditTestAccess(fmt.Sprintf("c%d", i))); err != nil {
						t.Fatal(err)
					}
				}
			},
		},
		{
			name: "everything copied, checkpoint lost",
			run: func(t *testing.T, a *Auditor, down *atomic.Bool) {
				journalTestRecord(t, a, "c", n)
				if err := a.Materialize(context.Background()); err != nil {
					t.Fatal(err)
				}
			},
			damage: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, journalCheckpointName)); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "many segments",
			opts: func(o *AuditorOptions) { o.SegmentSize = 3000 },
			run: func(t *testing.T, a *Auditor, down *atomic.Bool) {
				down.Store(true)
				for i := range n {
					if err := a.Record(context.Background(), auditTestAccess(fmt.Sprintf("c%d", i))); err != nil {
						t.Fatal(err)
					}
				}
				if segs, _ := journalSegments(a.opts.JournalDir); len(segs) < 10 {
					t.Fatalf("%d segments, want the journal rolled", len(segs))
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			real := auditTestSQLite(t)
			st, down := journalTestDown(real)
			opts := journalTestOptions(t.TempDir())
			if tc.opts != nil {
				tc.opts(&opts)
			}
			a := journalTestOpen(t, st, opts)
			tc.run(t, a, down)
			a.j.crash()
			// The crash left the zeros written ahead of the last records.
			segs, _ := journalSegments(opts.JournalDir)
			last, err := os.ReadFile(filepath.Join(opts.JournalDir, journalSegmentName(segs[len(segs)-1])))
			if err != nil || len(last) == 0 || last[len(last)-1] != 0 {
				t.Fatalf("the last segment (%d bytes, %v) does not end with the zeros written ahead", len(last), err)
			}
			if tc.damage != nil {
				tc.damage(t, opts.JournalDir)
			}

			// The next start copies what the crash left before returning,
			// taking the zeros for the end of the segment.
			b := journalTestOpen(t, real, opts)
			journalTestExactlyOnce(t, real, "c", n, n)
			if s := b.Stats(); s.JournalBacklog != 0 || s.JournalSkipped != 0 {
				t.Errorf("backlog %d, %d lines skipped after the restart", s.JournalBacklog, s.JournalSkipped)
			}
			// The copied segments are gone: only the new run's one is left.
			if segs, _ := journalSegments(opts.JournalDir); len(segs) != 1 {
				t.Errorf("segments left: %v", segs)
			}
			// And the new run goes on.
			if err := b.Record(context.Background(), auditTestAccess("after")); err != nil {
				t.Fatal(err)
			}
			b.Close()
			if got := auditTestCount(t, real, "after"); got != 1 {
				t.Errorf("the record after the restart: %d stored", got)
			}
			// A clean close cuts the segment back to its records.
			if segs, _ := journalSegments(opts.JournalDir); len(segs) != 1 {
				t.Errorf("segments after a clean close: %v", segs)
			} else {
				data, _ := os.ReadFile(filepath.Join(opts.JournalDir, journalSegmentName(segs[0])))
				if len(data) == 0 || data[len(data)-1] != '\n' {
					t.Errorf("after a clean close the segment ends with %q, not a record's newline", data[len(data)-1])
				}
			}
		})
	}
}

// Concurrent Records share fsyncs, and every acknowledged one reaches the
// store once.
func TestJournalGroupCommit(t *testing.T) {
	st := auditTestSQLite(t)
	var syncs atomic.Int64
	opts := journalTestOptions(t.TempDir())
	opts.testSync = func(f *os.File) error {
		syncs.Add(1)
		return f.Sync()
	}
	a := journalTestOpen(t, st, opts)
	const workers, each = 32, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := a.Record(context.Background(), auditTestAccess(fmt.Sprintf("p-%d-%d", w, i))); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s := a.Stats()
	t.Logf("%d events in %d journal writes (%d fsyncs, largest batch %d)", s.Events, s.Batches, syncs.Load(), s.MaxBatch)
	if s.Events != workers*each || s.Failed != 0 || s.QueueDepth != 0 || !s.Journal {
		t.Fatalf("stats %+v", s)
	}
	if syncs.Load() >= workers*each || s.MaxBatch < 2 || s.Batches != syncs.Load() {
		t.Errorf("no group commit: %d fsyncs for %d events (%+v)", syncs.Load(), workers*each, s)
	}
	if err := a.Materialize(context.Background()); err != nil {
		t.Fatal(err)
	}
	s = a.Stats()
	if s.JournalBacklog != 0 || s.Materialized != workers*each {
		t.Errorf("after Materialize: %+v", s)
	}
	for w := range workers {
		journalTestExactlyOnce(t, st, fmt.Sprintf("p-%d-", w), each, workers*each)
	}
	// What is stored is a valid AuditEvent.
	page, err := st.Search(context.Background(), store.Query{Type: "AuditEvent", Count: 1})
	if err != nil || len(page.Resources) != 1 {
		t.Fatalf("search: %v", err)
	}
	v, err := fhir.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(page.Resources[0].Body); err != nil {
		t.Errorf("stored AuditEvent: %v", err)
	}
	a.Close()
	if err := a.Record(context.Background(), auditTestAccess("late")); !errors.Is(err, ErrAuditorClosed) {
		t.Errorf("Record after Close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(opts.JournalDir, journalLockName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LOCK left after Close: %v", err)
	}
}

// A last line torn by a crash was never acknowledged: it is ignored, and
// so is a line that does not check out; the records around them are not.
func TestJournalTornOrCorruptLinesAreSkipped(t *testing.T) {
	const n = 20
	for _, tc := range []struct {
		name    string
		tail    string
		skipped int64
	}{
		{"torn JSON", `{"id":"0123456789abcdef0123456789abcdef","crc":"00000000","ae":{"resourceType":"Au`, 0},
		{"zeros of an unwritten page", strings.Repeat("\x00", 700), 0},
		{"torn id", `{"id":"01`, 0},
		{"complete line, bad checksum", `{"id":"0123456789abcdef0123456789abcdef","crc":"00000000","ae":{"resourceType":"AuditEvent"}}` + "\n", 1},
		{"garbage line", "\x00\x00\x00garbage\n", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			real := auditTestSQLite(t)
			st, down := journalTestDown(real)
			opts := journalTestOptions(t.TempDir())
			a := journalTestOpen(t, st, opts)
			down.Store(true)
			journalTestRecord(t, a, "t", n)
			a.j.crash()
			segs, _ := journalSegments(opts.JournalDir)
			last := filepath.Join(opts.JournalDir, journalSegmentName(segs[len(segs)-1]))
			f, err := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(tc.tail)
			f.Close()

			b := journalTestOpen(t, real, opts)
			journalTestExactlyOnce(t, real, "t", n, n)
			if s := b.Stats(); s.JournalSkipped != tc.skipped || s.JournalBacklog != 0 {
				t.Errorf("stats %+v, want %d skipped", s, tc.skipped)
			}
			if _, err := os.Stat(last); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the copied segment is still there: %v", err)
			}
		})
	}
}

// Materialize makes every record acknowledged before it searchable: the
// patient finds their own previous accesses.
func TestJournalMaterializeMakesPriorRecordsSearchable(t *testing.T) {
	st := auditTestSQLite(t)
	opts := journalTestOptions(t.TempDir())
	opts.MaterializeDelay = time.Hour // only Materialize makes the copy run now
	a := journalTestOpen(t, st, opts)
	for range 5 {
		if err := a.Record(context.Background(), auditTestAccess("searcher")); err != nil {
			t.Fatal(err)
		}
	}
	if got := auditTestCount(t, st, "searcher"); got != 0 {
		t.Fatalf("%d AuditEvents in the store before Materialize: the test does not test", got)
	}
	// Were the hour of MaterializeDelay applied to it, Materialize would
	// fail with the context's deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Materialize(ctx); err != nil {
		t.Fatal(err)
	}
	if got := auditTestCount(t, st, "searcher"); got != 5 {
		t.Errorf("the patient search finds %d AuditEvents, want 5", got)
	}
	// Nothing new: Materialize returns at once.
	if err := a.Materialize(ctx); err != nil {
		t.Fatal(err)
	}
}

// While the store fails, Records are still acknowledged (the journal holds
// them), Materialize reports the store's error, and once the store is back
// everything is copied.
func TestJournalStoreOutage(t *testing.T) {
	real := auditTestSQLite(t)
	st, down := journalTestDown(real)
	opts := journalTestOptions(t.TempDir())
	a := journalTestOpen(t, st, opts)
	down.Store(true)
	journalTestRecord(t, a, "o", 30)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Materialize(ctx); err == nil || !strings.Contains(err.Error(), "store unreachable") {
		t.Fatalf("Materialize during the outage: %v", err)
	}
	if s := a.Stats(); s.MaterializeErrors == 0 || s.JournalBacklog != 30 || s.Events != 30 {
		t.Errorf("stats during the outage %+v", s)
	}
	down.Store(false)
	if err := a.Materialize(ctx); err != nil {
		t.Fatal(err)
	}
	journalTestExactlyOnce(t, real, "o", 30, 30)
}

// The store's transaction troubles: without transactions events are
// copied one by one; a transaction that fails, or whose commit reply is
// lost, is replayed one by one, the ids already stored being skipped.
func TestJournalStoreWithoutOrWithFailingTransactions(t *testing.T) {
	for _, tc := range []struct {
		name     string
		noTxInfo bool
		tx       func(real store.Store) func(context.Context, func(store.Ops) error) error
		oneByOne bool
		txCalls  func(int64) bool
	}{
		{
			name: "announced", noTxInfo: true, oneByOne: true,
			tx: func(store.Store) func(context.Context, func(store.Ops) error) error {
				return func(context.Context, func(store.Ops) error) error { return store.ErrNoTransactions }
			},
			txCalls: func(n int64) bool { return n == 0 },
		},
		{
			name: "discovered", oneByOne: true,
			tx: func(store.Store) func(context.Context, func(store.Ops) error) error {
				return func(context.Context, func(store.Ops) error) error { return store.ErrNoTransactions }
			},
			txCalls: func(n int64) bool { return n == 1 },
		},
		{
			name: "lost commit reply",
			tx: func(real store.Store) func(context.Context, func(store.Ops) error) error {
				return func(ctx context.Context, fn func(store.Ops) error) error {
					if err := real.Transaction(ctx, fn); err != nil {
						return err
					}
					return errors.New("connection reset")
				}
			},
			txCalls: func(n int64) bool { return n >= 1 },
		},
		{
			name: "transaction refused",
			tx: func(store.Store) func(context.Context, func(store.Ops) error) error {
				return func(context.Context, func(store.Ops) error) error { return errors.New("write conflict") }
			},
			txCalls: func(n int64) bool { return n >= 1 },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			real := auditTestSQLite(t)
			st := &auditTestStore{Store: real, noTxInfo: tc.noTxInfo, tx: tc.tx(real)}
			a := journalTestOpen(t, st, journalTestOptions(t.TempDir()))
			journalTestRecord(t, a, "n", 50)
			if err := a.Materialize(context.Background()); err != nil {
				t.Fatal(err)
			}
			journalTestExactlyOnce(t, real, "n", 50, 50)
			s := a.Stats()
			if s.OneByOne != tc.oneByOne || s.Materialized != 50 {
				t.Errorf("stats %+v", s)
			}
			if !tc.txCalls(st.txCalls.Load()) {
				t.Errorf("%d transactions tried", st.txCalls.Load())
			}
		})
	}
}

// A Record whose context ends first returns; its event is still journaled
// and copied.
func TestJournalRecordContextDone(t *testing.T) {
	st := auditTestSQLite(t)
	release := make(chan struct{})
	opts := journalTestOptions(t.TempDir())
	opts.testSync = func(f *os.File) error {
		<-release
		return f.Sync()
	}
	a := journalTestOpen(t, st, opts)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := a.Record(ctx, auditTestAccess("ctx")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Record: %v", err)
	}
	// The caller gave up: its index is not kept (the copy, if the record
	// turns out durable, extracts its own: the count below).
	if n := a.j.indexBytes.Load(); n != 0 {
		t.Errorf("%d bytes of kept indexes after the caller gave up", n)
	}
	unblock()
	a.Close()
	if got := auditTestCount(t, st, "ctx"); got != 1 {
		t.Errorf("%d stored", got)
	}
}

// Close copies what it can within CloseTimeout; what the store did not
// take stays in the journal and is copied at the next start.
func TestJournalCloseIsBoundedAndLeavesTheRestForTheNextStart(t *testing.T) {
	real := auditTestSQLite(t)
	st, down := journalTestDown(real)
	opts := journalTestOptions(t.TempDir())
	opts.CloseTimeout = 300 * time.Millisecond
	a := journalTestOpen(t, st, opts)
	down.Store(true)
	journalTestRecord(t, a, "k", 25)
	start := time.Now()
	a.Close()
	// At least CloseTimeout; at most well below the default (10 s), so
	// that the option is seen to apply, with seconds to spare for a busy
	// machine.
	if d := time.Since(start); d < opts.CloseTimeout || d >= defaultCloseTimeout {
		t.Errorf("Close took %v with the store down (CloseTimeout %v)", d, opts.CloseTimeout)
	}
	if got := auditTestCount(t, real, ""); got != 0 {
		t.Fatalf("%d stored while the store was down", got)
	}
	journalTestOpen(t, real, opts)
	journalTestExactlyOnce(t, real, "k", 25, 25)
}

// Restarts: each run's journal is copied and deleted; the segment numbers
// go on past the checkpoint even when no segment is left.
func TestJournalRestarts(t *testing.T) {
	st := auditTestSQLite(t)
	opts := journalTestOptions(t.TempDir())
	var prev int64
	for run := range 4 {
		a := journalTestOpen(t, st, opts)
		if seg := a.j.seg; seg <= prev {
			t.Errorf("run %d writes segment %d after segment %d", run, seg, prev)
		} else {
			prev = seg
		}
		journalTestRecord(t, a, fmt.Sprintf("r%d-", run), 10)
		a.Close()
		if run == 1 {
			// Leave nothing but the checkpoint.
			segs, _ := journalSegments(opts.JournalDir)
			for _, s := range segs {
				os.Remove(filepath.Join(opts.JournalDir, journalSegmentName(s)))
			}
		}
	}
	for run := range 4 {
		journalTestExactlyOnce(t, st, fmt.Sprintf("r%d-", run), 10, 40)
	}
}

// The journal's files are private: directory 0700, files 0600.
func TestJournalFileModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix modes")
	}
	st := auditTestSQLite(t)
	dir := filepath.Join(t.TempDir(), "audit")
	opts := journalTestOptions(dir)
	opts.SegmentSize = 2000
	opts.MaterializeDelay = time.Hour
	a := journalTestOpen(t, st, opts)
	for i := range 10 {
		if err := a.Record(context.Background(), auditTestAccess(fmt.Sprintf("m%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("journal directory: %v %v", fi.Mode(), err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var segs int
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", e.Name(), fi.Mode().Perm())
		}
		if strings.HasPrefix(e.Name(), journalSegmentPrefix) {
			segs++
		}
	}
	if segs < 2 {
		t.Errorf("%d segments: the journal did not roll", segs)
	}
	if err := a.Materialize(context.Background()); err != nil {
		t.Fatal(err)
	}
	if segs, _ := journalSegments(dir); len(segs) != 1 {
		t.Errorf("segments %v after Materialize: the copied ones should be gone", segs)
	}
}

// One process at a time owns a journal directory: a live owner is waited
// for, then refused; a lock whose owner is gone is taken over.
func TestJournalLock(t *testing.T) {
	defer func(wait, grace time.Duration) { journalLockWait, journalLockTornGrace = wait, grace }(journalLockWait, journalLockTornGrace)
	journalLockWait = 300 * time.Millisecond
	// A fresh torn lock must still be fresh when OpenAuditor looks at it,
	// however long the disk stalls in between.
	journalLockTornGrace = 10 * time.Second
	host, _ := os.Hostname()
	host = strings.Join(strings.Fields(host), "_")
	for _, tc := range []struct {
		name  string
		lock  string
		age   time.Duration
		taken bool
	}{
		{"live process on this host", fmt.Sprintf("%d %s x\n", os.Getppid(), host), 0, false},
		{"live process on another host", "1 other-host x\n", 0, false},
		{"process gone", fmt.Sprintf("%d %s x\n", 1<<30, host), 0, true},
		{"this process's predecessor (same pid)", fmt.Sprintf("%d %s x\n", os.Getpid(), host), 0, true},
		{"not refreshed for long", "1 other-host x\n", time.Hour, true},
		{"torn lock file", "12", 0, false},
		{"old torn lock file", "12", time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			st := auditTestSQLite(t) // before LOCK is written: opening it may take a while
			lock := filepath.Join(dir, journalLockName)
			if err := os.WriteFile(lock, []byte(tc.lock), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.age > 0 {
				old := time.Now().Add(-tc.age)
				os.Chtimes(lock, old, old)
			}
			a, err := OpenAuditor(st, journalTestOptions(dir))
			if tc.taken != (err == nil) {
				t.Fatalf("taken %v, want %v (%v)", err == nil, tc.taken, err)
			}
			if err != nil {
				return
			}
			defer a.Close()
			if data, _ := os.ReadFile(lock); !strings.HasPrefix(string(data), fmt.Sprintf("%d %s ", os.Getpid(), host)) {
				t.Errorf("LOCK %q", data)
			}
		})
	}

	t.Run("open twice in one process", func(t *testing.T) {
		dir := t.TempDir()
		journalTestOpen(t, auditTestSQLite(t), journalTestOptions(dir))
		if _, err := OpenAuditor(auditTestSQLite(t), journalTestOptions(dir)); err == nil {
			t.Fatal("a second Auditor opened the same journal")
		}
	})

	t.Run("taken over while running", func(t *testing.T) {
		st := auditTestSQLite(t)
		opts := journalTestOptions(t.TempDir())
		a := journalTestOpen(t, st, opts)
		journalTestRecord(t, a, "before", 3)
		lock := filepath.Join(opts.JournalDir, journalLockName)
		if err := writeFileAtomic(lock, []byte("1 other-host y\n")); err != nil {
			t.Fatal(err)
		}
		if err := a.Record(context.Background(), auditTestAccess("after")); !errors.Is(err, ErrJournalLost) {
			t.Fatalf("Record after the takeover: %v", err)
		}
		if err := a.Record(context.Background(), auditTestAccess("after2")); !errors.Is(err, ErrJournalLost) {
			t.Fatalf("second Record after the takeover: %v", err)
		}
		a.Close()
		if data, _ := os.ReadFile(lock); string(data) != "1 other-host y\n" {
			t.Errorf("Close removed or changed the other owner's lock: %q", data)
		}
	})
}

// A journal that cannot be opened: OpenAuditor says why; NewAuditor
// returns an Auditor that refuses every Record, so that nothing is
// answered unaudited.
func TestJournalUnusableDirectoryRefusesEverything(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	opts := journalTestOptions(filepath.Join(file, "audit"))
	st := auditTestSQLite(t)
	if _, err := OpenAuditor(st, opts); err == nil {
		t.Fatal("OpenAuditor accepted a journal under a file")
	}
	a := NewAuditor(st, opts)
	if err := a.Record(context.Background(), auditTestAccess("x")); err == nil {
		t.Fatal("Record succeeded without a journal")
	}
	if err := a.Materialize(context.Background()); err == nil {
		t.Fatal("Materialize succeeded without a journal")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

// Without a journal, Materialize has nothing to wait for.
func TestDirectAuditorMaterialize(t *testing.T) {
	st := auditTestSQLite(t)
	a := NewAuditor(st, AuditorOptions{Logger: auditTestQuiet()})
	defer a.Close()
	if err := a.Record(context.Background(), auditTestAccess("d")); err != nil {
		t.Fatal(err)
	}
	if err := a.Materialize(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := auditTestCount(t, st, "d"); got != 1 {
		t.Errorf("%d stored", got)
	}
	if s := a.Stats(); s.Journal || s.Events != 1 {
		t.Errorf("stats %+v", s)
	}
}

// The checkpoint survives a torn write of one slot: the other one is read.
func TestJournalCheckpointSlots(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []jpos
		tear   int // slot to overwrite with garbage, -1 none
		want   jpos
		found  bool
	}{
		{"none", nil, -1, jpos{}, false},
		{"one", []jpos{{3, 100}}, -1, jpos{3, 100}, true},
		{"latest of two", []jpos{{3, 100}, {4, 0}}, -1, jpos{4, 0}, true},
		{"latest of many", []jpos{{3, 100}, {4, 0}, {4, 50}, {5, 7}, {5, 9}}, -1, jpos{5, 9}, true},
		{"latest torn", []jpos{{3, 100}, {4, 0}}, 0, jpos{3, 100}, true},
		{"older torn", []jpos{{3, 100}, {4, 0}}, 1, jpos{4, 0}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c, _, _, err := openJournalCheckpoint(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.writes {
				if err := c.write(p); err != nil {
					t.Fatal(err)
				}
			}
			if tc.tear >= 0 {
				// seq 2 lands in slot 0, seq 1 in slot 1.
				c.f.WriteAt([]byte("ckpt 2 4 0 deadbeef"), int64(tc.tear)*journalCheckpointSlot)
			}
			c.f.Close()
			c2, p, found, err := openJournalCheckpoint(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer c2.f.Close()
			if p != tc.want || found != tc.found {
				t.Errorf("checkpoint %v %v, want %v %v", p, found, tc.want, tc.found)
			}
		})
	}
}

// TestJournalLinesAreCheckedWhateverTheirLayout: a line as journalLine
// writes it is read without decoding its JSON, and its checksum still
// refuses a damaged AuditEvent; a line laid out otherwise is decoded.
func TestJournalLinesAreCheckedWhateverTheirLayout(t *testing.T) {
	id := auditNewID()
	body := []byte(`{"resourceType":"AuditEvent","action":"R"}`)
	own := journalLine(nil, id, body)
	crc := string(own[len(`{"id":"`)+len(id)+len(`","crc":"`):][:8])
	flip := func(b []byte, i int) []byte { c := bytes.Clone(b); c[i] ^= 0x20; return c }
	for _, tc := range []struct {
		name string
		line []byte
		ok   bool
	}{
		{"as written", own, true},
		{"members in another order", []byte(`{"crc":"` + crc + `","ae":` + string(body) + `,"id":"` + id + `"}` + "\n"), true},
		{"a byte of the AuditEvent changed", flip(own, len(own)-10), false},
		{"a byte of the checksum changed", flip(own, len(`{"id":"`)+len(id)+len(`","crc":"`)+1), false},
		{"cut short", own[:len(own)-5], false},
		{"not an id", journalLine(nil, "not an id", body), false},
		{"not JSON", []byte("garbage\n"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := parseJournalLine(tc.line)
			if tc.ok != (err == nil) {
				t.Fatalf("err %v, want ok %v", err, tc.ok)
			}
			if tc.ok && (e.id != id || !bytes.Equal(e.body, body)) {
				t.Fatalf("read %q %s", e.id, e.body)
			}
		})
	}
}

// A copy transaction holds the store's write lock: it takes at most
// MaterializeBytes of journal lines (at least one), whatever
// MaterializeBatch allows, and every record still reaches the store once.
func TestJournalCopyTransactionsAreBoundedInBytes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxBytes int64
		atLeast  int64 // copy transactions for n records
	}{
		{"about three lines a transaction", 5000, 10},
		{"smaller than a line: one line a transaction", 10, 30},
		{"the default", 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 30
			st := auditTestSQLite(t)
			opts := journalTestOptions(t.TempDir())
			opts.MaterializeBytes = tc.maxBytes
			opts.MaterializeDelay = time.Hour // copy only when asked: the backlog is whole
			a := journalTestOpen(t, st, opts)
			for i := range n {
				if err := a.Record(context.Background(), auditTestAccess(fmt.Sprintf("c%d", i))); err != nil {
					t.Fatal(err)
				}
			}
			if err := a.Materialize(context.Background()); err != nil {
				t.Fatal(err)
			}
			journalTestExactlyOnce(t, st, "c", n, n)
			s := a.Stats()
			if s.MaterializeBatches < tc.atLeast || tc.maxBytes == 0 && s.MaterializeBatches > 2 {
				t.Errorf("%d records copied in %d transactions, want at least %d", n, s.MaterializeBatches, tc.atLeast)
			}
		})
	}
}

// While the copy into the store lags, the indexes kept for it stay within
// their budget (past it, a record goes without one and the copy extracts
// its index itself), and every record is still copied once and found by
// its patient, with or without a kept index.
func TestJournalKeptIndexesStayWithinTheirBudget(t *testing.T) {
	defer func(b int64) { journalIndexBudget = b }(journalIndexBudget)
	journalIndexBudget = 4 << 10
	st := auditTestSQLite(t)
	opts := journalTestOptions(t.TempDir())
	opts.MaterializeDelay = time.Hour // only Materialize makes the copy run now
	a := journalTestOpen(t, st, opts)
	const n = 40
	for i := range n {
		if err := a.Record(context.Background(), auditTestAccess(fmt.Sprintf("b%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	kept := 0
	a.j.indexes.Range(func(_, _ any) bool { kept++; return true })
	if kept == 0 || kept == n {
		t.Fatalf("%d of %d indexes kept: the budget of %d bytes was not reached or not applied", kept, n, journalIndexBudget)
	}
	if got := a.j.indexBytes.Load(); got >= journalIndexBudget+2<<10 {
		t.Errorf("kept indexes of %d bytes of events, budget %d", got, journalIndexBudget)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Materialize(ctx); err != nil {
		t.Fatal(err)
	}
	journalTestExactlyOnce(t, st, "b", n, n)
	left := 0
	a.j.indexes.Range(func(_, _ any) bool { left++; return true })
	if left != 0 || a.j.indexBytes.Load() != 0 {
		t.Errorf("after the copy %d indexes (%d bytes) are still kept", left, a.j.indexBytes.Load())
	}
}
