package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// openWithWALSync opens a store whose WAL syncs go through hook (given the
// real sync), until the test ends.
func openWithWALSync(t *testing.T, hook func(f *os.File, sync func(*os.File) error) error) *Store {
	t.Helper()
	orig := walFileSync
	walFileSync = func(f *os.File) error { return hook(f, orig) }
	s, err := Open(t.TempDir())
	if err != nil {
		walFileSync = orig
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		walFileSync = orig
	})
	return s
}

// A commit is acknowledged only after a sync of the WAL that started after
// it, and concurrent commits share syncs; the writer's connection itself
// no longer syncs (synchronous NORMAL), the readers' keep FULL.
func TestCommitsAreAcknowledgedAfterASharedWALSync(t *testing.T) {
	var syncs atomic.Int64
	s := openWithWALSync(t, func(f *os.File, sync func(*os.File) error) error {
		time.Sleep(20 * time.Millisecond) // a slow disk, so that commits queue behind a sync
		syncs.Add(1)
		return sync(f)
	})
	var w, r int
	if err := s.write.QueryRow("PRAGMA synchronous").Scan(&w); err != nil {
		t.Fatal(err)
	}
	if err := s.read.QueryRow("PRAGMA synchronous").Scan(&r); err != nil {
		t.Fatal(err)
	}
	if w != 1 || r != 2 {
		t.Fatalf("synchronous: writer %d, readers %d; want 1 (NORMAL) and 2 (FULL)", w, r)
	}

	ctx := context.Background()
	before := syncs.Load()
	if _, err := s.Create(ctx, "Patient", "p0", []byte(`{"resourceType":"Patient"}`)); err != nil {
		t.Fatal(err)
	}
	if n := syncs.Load() - before; n != 1 {
		t.Fatalf("one create made %d syncs, want 1", n)
	}
	s.wal.mu.Lock()
	committed, synced := s.wal.committed, s.wal.synced
	s.wal.mu.Unlock()
	if synced != committed {
		t.Fatalf("a create returned with commit %d made and %d synced", committed, synced)
	}

	const writers = 16
	before, first := syncs.Load(), committed
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Create(ctx, "Patient", fmt.Sprint("p", i+1), []byte(`{"resourceType":"Patient"}`)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := syncs.Load() - before; n < 1 || n >= writers {
		t.Fatalf("%d concurrent creates made %d syncs, want fewer than one each and at least one", writers, n)
	}
	s.wal.mu.Lock()
	committed, synced = s.wal.committed, s.wal.synced
	s.wal.mu.Unlock()
	if synced != committed || committed != first+writers {
		t.Fatalf("after the creates: %d commits made, %d synced; want %d and %d", committed, synced, first+writers, first+writers)
	}
}

// A failed sync of the WAL stops the store's writes for good: the commit it
// covered is not acknowledged, and no later one is, even if a second sync
// would succeed (Linux reports a failed writeback only once).
func TestAFailedWALSyncStopsTheWrites(t *testing.T) {
	var fail atomic.Bool
	s := openWithWALSync(t, func(f *os.File, sync func(*os.File) error) error {
		if fail.Swap(false) {
			return errors.New("EIO")
		}
		return sync(f)
	})
	ctx := context.Background()
	if _, err := s.Create(ctx, "Patient", "before", []byte(`{"resourceType":"Patient"}`)); err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	if _, err := s.Create(ctx, "Patient", "during", []byte(`{"resourceType":"Patient"}`)); err == nil {
		t.Fatal("a commit whose sync failed was acknowledged")
	}
	if _, err := s.Create(ctx, "Patient", "after", []byte(`{"resourceType":"Patient"}`)); err == nil {
		t.Fatal("a write after a failed sync was acknowledged")
	}
	if _, err := s.Read(ctx, "Patient", "before"); err != nil {
		t.Fatalf("reads go on: %v", err)
	}
}

// The writer leaves the WAL to the checkpointer: its own checkpoint is a
// backstop at walAutocheckpointPages (not SQLite's 1,000 pages, which a
// commit would copy back inside the write lock), and the checkpointer
// copies the WAL back once commits come.
func TestTheCheckpointerCopiesTheWALBackBesideTheWriter(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var pages int
	if err := s.write.QueryRow("PRAGMA wal_autocheckpoint").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if pages != walAutocheckpointPages {
		t.Fatalf("wal_autocheckpoint %d, want %d", pages, walAutocheckpointPages)
	}
	before := s.ckpt.copied.Load()
	ctx := context.Background()
	text := strings.Repeat("x", 100<<10)
	for i := range 100 {
		body := fmt.Sprintf(`{"resourceType":"Basic","id":"b%d","text":{"status":"generated","div":%q}}`, i, text)
		if _, err := s.Create(ctx, "Basic", fmt.Sprintf("b%d", i), []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	// A liveness wait, not a timing: the checkpointer runs every
	// checkpointInterval while commits come.
	deadline := time.Now().Add(30 * time.Second)
	for s.ckpt.copied.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("the checkpointer copied nothing back in 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Each pool runs with its own pragmas where they differ from the common
// ones (withPragmas replaces a pragma of the same name, never adds a second
// one the driver would order by its text): the writer's page cache and
// synchronous mode, the readers' smaller cache and query_only, the
// checkpointer's tiny cache.
func TestEachPoolRunsWithItsOwnPragmas(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	pragma := func(db *sql.DB, name string) int {
		t.Helper()
		var v int
		if err := db.QueryRow("PRAGMA " + name).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []struct {
		pool  string
		db    *sql.DB
		name  string
		value int
	}{
		{"writer", s.write, "cache_size", -32000},
		{"writer", s.write, "synchronous", 1}, // NORMAL
		{"writer", s.write, "query_only", 0},
		{"reader", s.read, "cache_size", -2000},
		{"reader", s.read, "synchronous", 2}, // FULL
		{"reader", s.read, "query_only", 1},
		{"checkpointer", s.ckpt.db, "cache_size", -512},
		{"checkpointer", s.ckpt.db, "query_only", 1},
	}
	for _, c := range cases {
		if got := pragma(c.db, c.name); got != c.value {
			t.Errorf("%s: %s = %d, want %d", c.pool, c.name, got, c.value)
		}
	}
}
