package sqlite

import (
	"database/sql"
	"sync"
	"sync/atomic"
	"time"
)

// checkpointInterval is how often, while commits come, the checkpointer
// copies the WAL back into the database. A page several commits change in
// that time is copied once.
//
// Under a bulk load the WAL grows by tens of megabytes a second, and the
// writer starts it over only once every frame has been copied back, which
// a checkpoint running beside the commits seldom sees: the writer's own
// checkpoint at walAutocheckpointPages then copies what is left, in its
// lock. So while the WAL holds more than checkpointBusyFrames, the
// checkpointer comes back after checkpointBusyInterval, and what is left
// for the writer is the frames of the last moments.
const (
	checkpointInterval     = time.Second
	checkpointBusyInterval = 50 * time.Millisecond
	checkpointBusyFrames   = walAutocheckpointPages / 4
)

// checkpointer copies the WAL back into the database (a PASSIVE checkpoint)
// on a connection of its own, beside the writer, instead of the commit
// that crosses wal_autocheckpoint doing it inside the write lock: the
// checkpoint was a tenth of the lock's time under a Bundle ingest, which
// the lock bounds. A PASSIVE checkpoint waits for nobody: it copies the
// frames no reader still needs, and the writer starts the WAL over once
// all are copied. The writer's own checkpoint stays, at a WAL four times
// larger, as a backstop should this one fall behind or fail.
type checkpointer struct {
	db     *sql.DB
	kick   chan struct{} // a commit was made
	stop   chan struct{}
	done   chan struct{}
	copied atomic.Int64 // checkpoints that copied frames (tests)
	once   sync.Once
	err    error
}

func startCheckpointer(db *sql.DB) *checkpointer {
	c := &checkpointer{db: db, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go c.loop()
	return c
}

// committed tells the checkpointer a commit was made. It never blocks.
func (c *checkpointer) committed() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *checkpointer) loop() {
	defer close(c.done)
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
		}
		// An error (the database closing, I/O) leaves the WAL to the
		// writer's backstop checkpoint and to the next round.
		var busy, frames, backfilled int
		wait := checkpointInterval
		if err := c.db.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &backfilled); err == nil {
			if backfilled > 0 {
				c.copied.Add(1)
			}
			if frames > checkpointBusyFrames {
				wait = checkpointBusyInterval
			}
		}
		select {
		case <-c.stop:
			return
		case <-time.After(wait):
		}
	}
}

// close stops the checkpointer and closes its connection; again, it does
// nothing (a store may be closed twice).
func (c *checkpointer) close() error {
	c.once.Do(func() {
		close(c.stop)
		<-c.done
		c.err = c.db.Close()
	})
	return c.err
}
