package sqlite

import (
	"slices"
	"sync"
	"sync/atomic"
)

// txWrites are the resource types one write transaction changed.
type txWrites struct{ types []string }

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
