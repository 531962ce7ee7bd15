package sqlite

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
)

// walSync makes commits durable by syncing the WAL file after them, one
// sync for every commit made meanwhile (group commit).
//
// The write connection runs with synchronous(NORMAL): a commit writes its
// frames to the WAL without syncing it, so that the single write
// connection is free again at once; SQLite keeps the database consistent
// through a crash in that mode and syncs the WAL before every checkpoint.
// What NORMAL alone would lose in a power failure are the last commits:
// inTx therefore waits, before a commit is acknowledged, for a sync of the
// WAL file that started after the commit. Under synchronous(FULL) every
// commit synced the WAL while holding the write connection, so small
// writes queued one fsync each (W4's 2-entry transactions: about 400/s).
//
// A commit is visible to readers before its sync, for the milliseconds
// the sync takes; it is acknowledged to its writer only after.
type walSync struct {
	path string

	mu        sync.Mutex
	cond      *sync.Cond
	committed uint64 // commits made, numbered from 1
	synced    uint64 // commits known to be on disk
	syncing   bool   // a sync is running (outside mu)
	err       error  // a sync failed: no commit is acknowledged any more
	closed    bool   // the store closed (after its final checkpoint)
	f         *os.File
}

func newWALSync(path string) *walSync {
	w := &walSync{path: path}
	w.cond = sync.NewCond(&w.mu)
	return w
}

// commit numbers a commit that has just returned.
func (w *walSync) commit() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.committed++
	return w.committed
}

// wait returns once commit n is on disk: after a sync that started once n
// was made, by this caller or another one.
func (w *walSync) wait(n uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		switch {
		case w.err != nil:
			return w.err
		case w.synced >= n || w.closed:
			// Closed: Close's checkpoint synced the WAL, then the
			// database, after every commit made before it.
			return nil
		case !w.syncing:
			w.syncing = true
			target := w.committed
			w.mu.Unlock()
			err := w.sync()
			w.mu.Lock()
			w.syncing = false
			if err != nil {
				// Sticky: Linux reports a failed writeback once per file, so
				// a second sync could succeed over pages that never reached
				// the disk. Every commit from here on is refused (failed).
				w.err = fmt.Errorf("sqlite: sync the WAL: %w (the store refuses writes until it is restarted)", err)
			} else if target > w.synced {
				w.synced = target
			}
			w.cond.Broadcast()
		default:
			w.cond.Wait()
		}
	}
}

// failed is the sync error that stopped the store's writes, or nil.
func (w *walSync) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// sync syncs the WAL file, opened again should SQLite have replaced it
// (it deletes the WAL when its last connection closes). Only one runs at a
// time (syncing). A WAL gone is synced: SQLite deletes it only after a
// complete checkpoint, which synced the database.
func (w *walSync) sync() error {
	fi, err := os.Stat(w.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if w.f != nil {
		if cur, err := w.f.Stat(); err != nil || !os.SameFile(cur, fi) {
			w.f.Close()
			w.f = nil
		}
	}
	if w.f == nil {
		// Read-write: Windows' FlushFileBuffers needs write access.
		if w.f, err = os.OpenFile(w.path, os.O_RDWR, 0); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
	}
	return walFileSync(w.f)
}

func (w *walSync) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.syncing {
		w.cond.Wait()
	}
	w.closed = true
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}
