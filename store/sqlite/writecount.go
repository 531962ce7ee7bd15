package sqlite

import (
	"context"
	"database/sql"
	"slices"
	"sync"
	"sync/atomic"
)

// txWrites are the resource types one write transaction changed, and the
// live resources it created, by type, for type_stats.
type txWrites struct {
	types []string
	born  map[string]int64
}

// bear counts a live resource of type typ created by the transaction.
func (w *txWrites) bear(typ string) {
	if w.born == nil {
		w.born = map[string]int64{}
	}
	w.born[typ]++
}

// countBorn adds the transaction's new live resources to type_stats (st is
// sqlCountBorn prepared on the writer), a statement per type.
func (w *txWrites) countBorn(ctx context.Context, tx *sql.Tx, st *sql.Stmt) error {
	if w == nil {
		return nil
	}
	for typ, n := range w.born {
		if _, err := tx.StmtContext(ctx, st).ExecContext(ctx, typ, n); err != nil {
			return err
		}
	}
	return nil
}

func (w *txWrites) add(typ string) {
	if !slices.Contains(w.types, typ) {
		w.types = append(w.types, typ)
	}
}

// writeCounts counts, by resource type, the commits that wrote it.
type writeCounts struct{ m sync.Map } // type → *atomic.Uint64

func (c *writeCounts) counter(typ string) *atomic.Uint64 {
	if v, ok := c.m.Load(typ); ok {
		return v.(*atomic.Uint64)
	}
	v, _ := c.m.LoadOrStore(typ, new(atomic.Uint64))
	return v.(*atomic.Uint64)
}

func (c *writeCounts) moved(types []string) {
	for _, t := range types {
		c.counter(t).Add(1)
	}
}

// WriteCount returns how many commits of this store wrote a resource of
// type typ, and true: the store holds its data directory's lock, so no
// other process writes the database and the count misses no write. It
// moves after a commit is visible to reads and before the commit is
// acknowledged (store.Store).
func (s *Store) WriteCount(typ string) (uint64, bool) {
	return s.counts.counter(typ).Load(), s.owner.held()
}
