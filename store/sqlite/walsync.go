package sqlite

import (
	"fmt"
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
		if w.synced >= n {
			return nil
		}
		if !w.syncing {
			break
		}
		w.cond.Wait()
	}
	w.syncing = true
	target := w.committed
	w.mu.Unlock()
	err := w.sync()
	w.mu.Lock()
	w.syncing = false
	if err == nil && target > w.synced {
		w.synced = target
	}
	w.cond.Broadcast()
	if err != nil {
		return fmt.Errorf("sqlite: sync the WAL: %w", err)
	}
	return nil
}

// sync syncs the WAL file, opened again should SQLite have replaced it
// (it deletes the WAL when its last connection closes). Only one runs at a
// time (syncing).
func (w *walSync) sync() error {
	fi, err := os.Stat(w.path)
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
		if w.f, err = os.Open(w.path); err != nil {
			return err
		}
	}
	return walFileSync(w.f)
}

func (w *walSync) close() {
	w.mu.Lock()
	for w.syncing {
		w.cond.Wait()
	}
	defer w.mu.Unlock()
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}
