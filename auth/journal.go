package auth

// The audit journal: an append-only, fsynced log of AuditEvents in front of
// the store (AuditorOptions.JournalDir).
//
// Record appends the AuditEvent to the journal and returns once the journal
// is fsynced: that is the durable trace the response waits for. Concurrent
// Records share one write and one fsync (group commit). A materializer
// goroutine then copies the journal into the store as AuditEvent resources
// in large transactions, records how far it got in a checkpoint, and
// deletes the segments it has copied entirely.
//
// The directory (mode 0700) holds:
//
//	journal-000001.jsonl  segments (0600): one JSON line per AuditEvent,
//	                      {"id":"<UUID>","crc":"<crc32c of ae, 8 hex>","ae":{...}}
//	                      A new segment is started at each start, after a
//	                      failed write, and when the current one would exceed
//	                      AuditorOptions.SegmentSize. The writer zero-fills a
//	                      segment 1 MiB ahead of its records, so that a
//	                      group commit overwrites allocated blocks and its
//	                      fdatasync has no metadata to commit (a third less
//	                      CPU and latency than an fsync of an append here);
//	                      a segment is cut back to its records when the
//	                      writer leaves it, and a crash leaves zeros after
//	                      its last record, which the reader takes for the end.
//	checkpoint            (0600) two 64-byte slots written alternately, each
//	                      "ckpt <seq> <segment> <offset> <crc32c>": every
//	                      record before that position is in the store.
//	LOCK                  (0600) "<pid> <host> <token>", refreshed every few
//	                      seconds: one process at a time owns the directory.
//
// Durability: a record is acknowledged only after its bytes and, for a new
// segment, the segment's directory entry are fsynced; the checkpoint moves
// only after the store committed the records before it; a segment is
// deleted only after all its records are in the store. A crash therefore
// leaves every acknowledged record either in the store or in a segment at or
// after the checkpoint, and the next start copies the segments again from
// the checkpoint. Copying is idempotent: the AuditEvent id is chosen when
// the record is journaled, and store.ErrExists means "already copied".

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// Names in the journal directory.
const (
	journalLockName       = "LOCK"
	journalCheckpointName = "checkpoint"
	journalSegmentPrefix  = "journal-"
	journalSegmentSuffix  = ".jsonl"
)

// Defaults of the journal options.
const (
	defaultSegmentSize      = 64 << 20
	defaultMaterializeBatch = 1000
	defaultMaterializeBytes = 1 << 20
	defaultMaterializeDelay = 50 * time.Millisecond
	defaultCloseTimeout     = 10 * time.Second
	// journalZeroAhead is how far ahead of its records a segment is
	// zero-filled at a time: the group commit that does it waits for those
	// zeros to reach the disk too (1.3 ms for 1 MiB here, 13 ms for 4).
	journalZeroAhead = 1 << 20
)

// ErrJournalLost is returned by Record when another process took the
// journal directory over (this one stopped refreshing its lock for too
// long): the Auditor no longer acknowledges anything.
var ErrJournalLost = errors.New("audit: the journal directory was taken over by another process")

// The lock of the journal directory: refreshed every journalLockRefresh; a
// lock not refreshed for journalLockStale is abandoned; a start waits up to
// journalLockWait for a live holder to leave; an unreadable (torn) lock is
// abandoned once journalLockTornGrace old. Variables for the tests.
var (
	journalLockRefresh   = 5 * time.Second
	journalLockStale     = 30 * time.Second
	journalLockWait      = 45 * time.Second
	journalLockTornGrace = time.Second
)

var journalCRC = crc32.MakeTable(crc32.Castagnoli)

// journalDirs are the journal directories open in this process.
var journalDirs sync.Map

// jpos is a position in the journal: a segment number and a byte offset.
type jpos struct{ seg, off int64 }

func (p jpos) before(q jpos) bool { return p.seg < q.seg || p.seg == q.seg && p.off < q.off }

// journalBatch is one group commit: its Records wait for done.
type journalBatch struct {
	done chan struct{}
	err  error
}

type journalEntry struct {
	id   string
	body []byte
}

type journal struct {
	dir  string
	st   store.Store
	opts AuditorOptions
	log  *slog.Logger
	lock *journalLock
	ckpt *journalCheckpoint
	sync func(*os.File) error

	// Records append their line to buf and wait for batch.
	mu      sync.Mutex
	buf     []byte
	nbuf    int
	batch   *journalBatch
	closed  bool  // no more Records
	crashed bool  // tests: stop as a crash would, writing nothing more
	fatal   error // the journal no longer acknowledges records
	wake    chan struct{}
	wdone   chan struct{}

	// Owned by the writer goroutine.
	f      *os.File
	seg    int64
	size   int64
	zeroed int64 // the segment is zero-filled up to there (>= size)
	broken bool  // the last write failed: the next one starts a new segment
	spare  []byte

	// Progress, under pmu.
	pmu      sync.Mutex
	durable  jpos          // end of the fsynced records
	applied  jpos          // every record before it is in the store
	progress chan struct{} // closed and replaced when applied moves, a pass fails, or the materializer stops
	errGen   uint64
	lastErr  error
	mstopped bool

	// indexes are the search indexes of the records this process
	// journaled (a keptIndex by id), until their copy into the store;
	// indexBytes is the size of their bodies, bounded by
	// journalIndexBudget so that a store that falls behind (or is down)
	// costs no more memory: past it, the copy extracts the index itself.
	indexes    sync.Map
	indexBytes atomic.Int64

	mwake   chan struct{} // capacity 1: new records are durable
	kick    chan struct{} // capacity 1: Materialize is waiting
	waiters atomic.Int32  // Materialize calls waiting: no MaterializeDelay
	mctx    context.Context
	mcancel context.CancelFunc
	mstop   chan struct{}
	mdone   chan struct{}
	hbstop  chan struct{}
	hbdone  chan struct{}

	closeOnce sync.Once

	fsyncs, batches, events, failed atomic.Int64
	lastBatch, maxBatch             atomic.Int64
	backlog                         atomic.Int64
	materialized, mbatches, merrors atomic.Int64
	skipped                         atomic.Int64
	noTx                            atomic.Bool
}

// openJournal takes the directory, finds where the previous run stopped,
// starts a new segment, and starts the writer, the materializer and the
// lock refresher. It waits up to opts.Timeout for what a previous run left
// to be copied into the store (the rest goes on in the background).
func openJournal(st store.Store, opts AuditorOptions, log *slog.Logger) (_ *journal, err error) {
	dir, err := filepath.Abs(opts.JournalDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if !isWindows() {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, err
		}
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real // one name per directory for journalDirs
	}
	if _, loaded := journalDirs.LoadOrStore(dir, true); loaded {
		return nil, fmt.Errorf("%s is already open in this process", dir)
	}
	j := &journal{
		dir: dir, st: st, opts: opts, log: log,
		sync:     journalSync,
		batch:    &journalBatch{done: make(chan struct{})},
		wake:     make(chan struct{}, 1),
		wdone:    make(chan struct{}),
		progress: make(chan struct{}),
		mwake:    make(chan struct{}, 1),
		kick:     make(chan struct{}, 1),
		mstop:    make(chan struct{}),
		mdone:    make(chan struct{}),
		hbstop:   make(chan struct{}),
		hbdone:   make(chan struct{}),
	}
	if opts.testSync != nil {
		j.sync = opts.testSync
	}
	defer func() {
		if err != nil {
			if j.f != nil {
				j.f.Close()
			}
			if j.ckpt != nil {
				j.ckpt.f.Close()
			}
			if j.lock != nil {
				j.lock.release()
			}
			journalDirs.Delete(dir)
		}
	}()
	if j.lock, err = acquireJournalLock(dir, log); err != nil {
		return nil, err
	}
	ckpt, saved, found, err := openJournalCheckpoint(dir)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	j.ckpt = ckpt
	segs, err := journalSegments(dir)
	if err != nil {
		return nil, err
	}
	// Segments before the checkpoint are in the store: a deletion the
	// crash did not let reach the disk.
	var left []int64
	for _, s := range segs {
		if found && s < saved.seg {
			os.Remove(filepath.Join(dir, journalSegmentName(s)))
			continue
		}
		left = append(left, s)
	}
	j.seg = saved.seg
	if len(left) > 0 {
		j.seg = max(j.seg, left[len(left)-1])
	}
	if err := j.roll(); err != nil {
		return nil, err
	}
	start := jpos{seg: j.seg}
	if len(left) > 0 {
		start = jpos{seg: left[0]}
		if found && left[0] == saved.seg {
			start.off = saved.off
		}
		n, err := journalCountLines(dir, left, start.off)
		if err != nil {
			return nil, err
		}
		j.backlog.Store(n)
	}
	j.applied = start
	if !st.Info().Transactions {
		j.noTx.Store(true)
	}
	j.mctx, j.mcancel = context.WithCancel(context.Background())
	go j.run()
	go j.materializer(start)
	go j.heartbeat()
	j.pmu.Lock()
	replay := j.applied.before(j.durable)
	j.pmu.Unlock()
	if replay {
		log.Info("audit: copying the journal left by the previous run into the store",
			"records", j.backlog.Load())
		ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
		if err := j.materialize(ctx, false); err != nil {
			log.Warn("audit: the previous run's journal is not in the store yet; copying goes on in the background",
				"records", j.backlog.Load(), "err", err)
		}
		cancel()
	}
	return j, nil
}

// record journals one AuditEvent and waits for its fsync. ix is its search
// index, kept for the copy into the store until then.
func (j *journal) record(ctx context.Context, id string, body []byte, ix fhir.Index) error {
	if bytes.IndexByte(body, '\n') >= 0 {
		return errors.New("audit: an AuditEvent with a newline cannot be journaled")
	}
	line := journalLine(make([]byte, 0, len(body)+len(id)+40), id, body)
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return ErrAuditorClosed
	}
	if j.fatal != nil {
		err := j.fatal
		j.mu.Unlock()
		j.failed.Add(1)
		return err
	}
	kept := j.indexBytes.Load() < journalIndexBudget
	if kept {
		j.indexBytes.Add(int64(len(body)))
		j.indexes.Store(id, keptIndex{ix, int64(len(body))})
	}
	j.buf = append(j.buf, line...)
	j.nbuf++
	b := j.batch
	j.mu.Unlock()
	journalSignal(j.wake)
	select {
	case <-b.done:
		if b.err != nil && kept {
			j.dropIndex(id) // not acknowledged: may never be copied
		}
		return b.err
	case <-ctx.Done():
		// Whether the batch will fail is not known here: release the
		// index rather than keep one that may never be copied (if the
		// record is durable, its copy extracts the index itself).
		if kept {
			j.dropIndex(id)
		}
		return ctx.Err()
	}
}

// keptIndex is a record's search index, kept for its copy.
type keptIndex struct {
	ix   fhir.Index
	size int64 // of the record's body
}

// journalIndexBudget bounds the bodies of the records whose index is kept
// (the indexes are smaller than their bodies). A variable for the tests.
var journalIndexBudget int64 = 16 << 20

// copyContext is ctx carrying what the copy of r into the store can take
// instead of computing it: the index kept for r, if any, and then its
// stamp, since a record with a kept index was marshalled from its struct
// by Record in this process (no id, no meta, resourceType first), so the
// stamp can be spliced in rather than parsed out of the body.
func (j *journal) copyContext(ctx context.Context, r journalEntry) context.Context {
	v, ok := j.indexes.LoadAndDelete(r.id)
	if !ok {
		return ctx
	}
	k := v.(keptIndex)
	j.indexBytes.Add(-k.size)
	ctx = store.WithIndex(ctx, r.body, k.ix)
	if st, err := fhir.PrepareStampOfNew(r.body, r.id, 1); err == nil {
		ctx = store.WithStamp(ctx, r.body, r.id, 1, st)
	}
	return ctx
}

func (j *journal) dropIndex(id string) {
	if v, ok := j.indexes.LoadAndDelete(id); ok {
		j.indexBytes.Add(-v.(keptIndex).size)
	}
}

// run is the writer: it takes every line appended since its last write,
// writes them in one write and one fsync, then answers their Records.
func (j *journal) run() {
	defer close(j.wdone)
	defer func() {
		if j.f != nil {
			j.mu.Lock()
			crashed := j.crashed
			j.mu.Unlock()
			if !crashed { // a crash leaves the zeros ahead
				j.f.Truncate(j.size)
			}
			j.f.Close()
			j.f = nil
		}
	}()
	for {
		j.mu.Lock()
		for j.nbuf == 0 && !j.closed {
			j.mu.Unlock()
			<-j.wake
			j.mu.Lock()
		}
		if j.crashed {
			b := j.batch
			j.mu.Unlock()
			b.err = ErrAuditorClosed
			close(b.done)
			return
		}
		if j.nbuf == 0 {
			j.mu.Unlock()
			return
		}
		j.mu.Unlock()
		if j.opts.MaxDelay > 0 {
			j.gather()
		} else {
			// Let the goroutines ready to run (requests about to record
			// their access) run first and join this batch: under load
			// that doubles the batch, halving the fsyncs (each ~90 µs of
			// CPU here) without a timer; idle, it returns at once.
			runtime.Gosched()
		}
		j.mu.Lock()
		buf, n, b, fatal := j.buf, j.nbuf, j.batch, j.fatal
		j.buf, j.nbuf, j.batch = j.spare[:0], 0, &journalBatch{done: make(chan struct{})}
		j.mu.Unlock()

		err := fatal
		if err == nil {
			err = j.write(buf)
		}
		if cap(buf) <= 4<<20 {
			j.spare = buf
		} else {
			j.spare = nil
		}
		if err == nil {
			j.pmu.Lock()
			j.durable = jpos{j.seg, j.size}
			j.pmu.Unlock()
			j.events.Add(int64(n))
			j.backlog.Add(int64(n))
			j.batches.Add(1)
			j.lastBatch.Store(int64(n))
			if int64(n) > j.maxBatch.Load() {
				j.maxBatch.Store(int64(n))
			}
			if j.opts.OnBatch != nil {
				j.opts.OnBatch(n)
			}
			journalSignal(j.mwake)
		} else {
			j.failed.Add(int64(n))
			if !errors.Is(err, ErrJournalLost) {
				j.log.Error("audit: journal write failed", "records", n, "err", err)
			}
		}
		b.err = err
		close(b.done)
	}
}

// gather waits up to MaxDelay for more records to join the batch.
func (j *journal) gather() {
	timer := time.NewTimer(j.opts.MaxDelay)
	defer timer.Stop()
	for {
		j.mu.Lock()
		n, closed := j.nbuf, j.closed
		j.mu.Unlock()
		if n >= j.opts.MaxBatch || closed {
			return
		}
		select {
		case <-j.wake:
		case <-timer.C:
			return
		}
	}
}

// write appends buf to the current segment and fsyncs it, starting a new
// segment first when needed. The batch is acknowledged only if this process
// still owns the directory once the bytes are durable.
func (j *journal) write(buf []byte) error {
	if j.f == nil || j.broken || j.size > 0 && j.size+int64(len(buf)) > j.opts.SegmentSize {
		if err := j.roll(); err != nil {
			return fmt.Errorf("audit: journal segment: %w", err)
		}
	}
	var err error
	if end := j.size + int64(len(buf)); end > j.zeroed {
		z := max(end, min(j.zeroed+journalZeroAhead, j.opts.SegmentSize))
		if err = journalZeroFill(j.f, j.zeroed, z); err == nil {
			j.zeroed = z
		}
	}
	n := 0
	if err == nil {
		n, err = j.f.WriteAt(buf, j.size)
	}
	j.size += int64(n)
	if err == nil {
		err = j.sync(j.f)
		j.fsyncs.Add(1)
	}
	if err != nil {
		// What reached the file is unknown: the bytes of this batch stay
		// behind, unacknowledged, and the next batch goes to a new segment.
		j.broken = true
		return fmt.Errorf("audit: journal write: %w", err)
	}
	if !j.lock.held() {
		j.setFatal(ErrJournalLost)
		return ErrJournalLost
	}
	return nil
}

// roll closes the current segment and creates the next one, whose name is
// fsynced into the directory before any record in it is acknowledged.
func (j *journal) roll() error {
	if j.f != nil {
		j.f.Truncate(j.size) // the zeros ahead; harmless if this fails
		j.f.Close()
		j.f = nil
	}
	next := j.seg + 1
	for {
		f, err := os.OpenFile(filepath.Join(j.dir, journalSegmentName(next)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if errors.Is(err, fs.ErrExist) {
			next++
			continue
		}
		if err != nil {
			return err
		}
		if err := journalSyncDir(j.dir); err != nil {
			f.Close()
			os.Remove(f.Name())
			return err
		}
		j.fsyncs.Add(1)
		j.f, j.seg, j.size, j.zeroed, j.broken = f, next, 0, 0, false
		j.pmu.Lock()
		j.durable = jpos{seg: next}
		j.pmu.Unlock()
		return nil
	}
}

func (j *journal) setFatal(err error) {
	j.mu.Lock()
	if j.fatal == nil {
		j.fatal = err
		j.log.Error("audit: the journal directory is owned by another process: no access is acknowledged any more", "dir", j.dir)
	}
	j.mu.Unlock()
}

// heartbeat refreshes the lock, and notices when it was taken over.
func (j *journal) heartbeat() {
	defer close(j.hbdone)
	t := time.NewTicker(journalLockRefresh)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if !j.lock.refresh() {
				j.setFatal(ErrJournalLost)
				return
			}
		case <-j.hbstop:
			return
		}
	}
}

// ---------------------------------------------------------------------------
// Materialization.

// materializer copies the journal into the store, from start on.
func (j *journal) materializer(start jpos) {
	defer close(j.mdone)
	defer func() {
		j.pmu.Lock()
		j.mstopped = true
		close(j.progress)
		j.progress = make(chan struct{})
		j.pmu.Unlock()
	}()
	r := &journalReader{j: j}
	defer r.close()
	pos := start
	backoff := time.Duration(0)
	for {
		select {
		case <-j.mstop:
			return
		default:
		}
		j.pmu.Lock()
		durable := j.durable
		j.pmu.Unlock()
		if !pos.before(durable) {
			select {
			case <-j.mwake:
			case <-j.kick:
			case <-j.mstop:
				return
			}
			continue
		}
		// Let a small backlog grow into a batch; a full one (by count or
		// bytes) is copied at once.
		full := j.backlog.Load() >= int64(j.opts.MaterializeBatch) || pos.seg != durable.seg || durable.off-pos.off >= j.opts.MaterializeBytes
		if backoff > 0 || j.opts.MaterializeDelay > 0 && j.waiters.Load() == 0 && !full {
			wait := j.opts.MaterializeDelay
			if backoff > 0 {
				wait = backoff
			}
			timer := time.NewTimer(wait)
			select {
			case <-timer.C:
			case <-j.kick:
			case <-j.mstop:
				timer.Stop()
				return
			}
			timer.Stop()
			j.pmu.Lock()
			durable = j.durable
			j.pmu.Unlock()
		}
		next, err := j.pass(r, pos, durable)
		if errors.Is(err, ErrJournalLost) {
			return
		}
		if err != nil {
			j.merrors.Add(1)
			if j.mctx.Err() == nil {
				j.log.Error("audit: copying the journal into the store failed; retrying", "err", err)
			}
			j.pmu.Lock()
			j.errGen++
			j.lastErr = err
			close(j.progress)
			j.progress = make(chan struct{})
			j.pmu.Unlock()
			backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
			continue
		}
		backoff = 0
		pos = next
	}
}

// pass copies up to MaterializeBatch records from pos into the store and
// moves the checkpoint past them; at the end of a finished segment it moves
// to the next segment and deletes the finished one. It returns the new
// position.
func (j *journal) pass(r *journalReader, pos, durable jpos) (jpos, error) {
	finished := pos.seg < durable.seg
	limit := durable.off
	if finished {
		limit = -1
	}
	recs, next, lines, eof, err := r.read(pos, limit, j.opts.MaterializeBatch, j.opts.MaterializeBytes)
	if errors.Is(err, fs.ErrNotExist) && finished {
		j.log.Error("audit: a journal segment vanished before it was copied into the store", "segment", journalSegmentName(pos.seg))
		recs, next, eof, err = nil, pos, true, nil
	}
	if err != nil {
		return pos, fmt.Errorf("audit: reading the journal: %w", err)
	}
	if len(recs) > 0 {
		ctx, cancel := context.WithTimeout(j.mctx, j.opts.Timeout)
		err := j.apply(ctx, recs)
		cancel()
		if err != nil {
			return pos, err
		}
	}
	done := int64(-1) // a segment entirely in the store
	if finished && eof {
		done = pos.seg
		segs, err := journalSegments(j.dir)
		if err != nil {
			return pos, fmt.Errorf("audit: reading the journal: %w", err)
		}
		next = jpos{seg: durable.seg}
		for _, s := range segs {
			if s > pos.seg {
				next = jpos{seg: s}
				break
			}
		}
	}
	if next == pos {
		return pos, nil
	}
	if !j.lock.held() {
		j.setFatal(ErrJournalLost)
		return pos, ErrJournalLost
	}
	if err := j.ckpt.write(next); err != nil {
		// The store has the records: a lost checkpoint only means they
		// are offered to it again (and skipped) after a crash.
		j.log.Warn("audit: journal checkpoint not written", "err", err)
	}
	if done >= 0 {
		r.close()
		{
			if err := os.Remove(filepath.Join(j.dir, journalSegmentName(done))); err != nil && !errors.Is(err, fs.ErrNotExist) {
				j.log.Warn("audit: a copied journal segment could not be deleted", "err", err)
			}
		}
	}
	j.backlog.Add(-lines)
	j.materialized.Add(int64(len(recs)))
	j.pmu.Lock()
	j.applied = next
	close(j.progress)
	j.progress = make(chan struct{})
	j.pmu.Unlock()
	return next, nil
}

// apply stores recs in one transaction, or one by one when the store has
// none or the transaction failed. An id already stored was copied before a
// crash or a lost commit reply: it is skipped.
func (j *journal) apply(ctx context.Context, recs []journalEntry) error {
	j.mbatches.Add(1)
	// Prepared before the store's write lock, and kept for the one-by-one
	// copy should the transaction fail.
	ctxs := make([]context.Context, len(recs))
	for i, r := range recs {
		ctxs[i] = j.copyContext(ctx, r)
	}
	if !j.noTx.Load() {
		err := j.st.Transaction(ctx, func(tx store.Ops) error {
			for i, r := range recs {
				if _, err := tx.Create(ctxs[i], auditResourceType, r.id, r.body); err != nil && !errors.Is(err, store.ErrExists) {
					return err
				}
			}
			return nil
		})
		if err == nil {
			return nil
		}
		switch {
		case errors.Is(err, store.ErrNoTransactions):
			j.noTx.Store(true)
			j.log.Info("audit: the store has no transactions; the journal is copied one event at a time")
		case ctx.Err() != nil:
			return err
		default:
			j.log.Warn("audit: journal batch transaction failed; copying its events one by one",
				"events", len(recs), "err", err)
		}
	}
	for i, r := range recs {
		if _, err := j.st.Create(ctxs[i], auditResourceType, r.id, r.body); err != nil && !errors.Is(err, store.ErrExists) {
			return fmt.Errorf("audit: journal record not copied into the store: %w", err)
		}
	}
	return nil
}

// materialize waits until every record durable when it is called is in the
// store. Unless persist, it returns the materializer's error as soon as a
// copy fails meanwhile; with persist it waits for the retries until ctx ends.
func (j *journal) materialize(ctx context.Context, persist bool) error {
	j.pmu.Lock()
	target, gen := j.durable, j.errGen
	j.pmu.Unlock()
	j.waiters.Add(1)
	defer j.waiters.Add(-1)
	journalSignal(j.kick)
	for {
		j.pmu.Lock()
		applied, errGen, lastErr, stopped, ch := j.applied, j.errGen, j.lastErr, j.mstopped, j.progress
		j.pmu.Unlock()
		switch {
		case !applied.before(target):
			return nil
		case errGen != gen && !persist:
			return lastErr
		case stopped:
			return ErrAuditorClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// close writes what is queued, copies what it can into the store within
// CloseTimeout, and stops; what is not copied stays in the journal.
func (j *journal) close() {
	j.closeOnce.Do(func() {
		j.mu.Lock()
		j.closed = true
		j.mu.Unlock()
		journalSignal(j.wake)
		<-j.wdone
		ctx, cancel := context.WithTimeout(context.Background(), j.opts.CloseTimeout)
		err := j.materialize(ctx, true)
		cancel()
		if err != nil {
			j.log.Warn("audit: records left in the journal for the next start", "records", j.backlog.Load(), "err", err)
		}
		j.stop()
		j.mu.Lock()
		lost := j.fatal != nil
		j.mu.Unlock()
		if !lost {
			j.lock.release()
		}
		journalDirs.Delete(j.dir)
	})
}

// crash stops the journal as a crash would: nothing more is written or
// copied, the lock stays. For the tests.
func (j *journal) crash() {
	j.closeOnce.Do(func() {
		j.mu.Lock()
		j.closed, j.crashed = true, true
		j.mu.Unlock()
		journalSignal(j.wake)
		<-j.wdone
		j.stop()
		journalDirs.Delete(j.dir)
	})
}

func (j *journal) stop() {
	close(j.mstop)
	j.mcancel()
	<-j.mdone
	close(j.hbstop)
	<-j.hbdone
	j.ckpt.f.Close()
}

func (j *journal) stats(s *AuditStats) {
	j.mu.Lock()
	s.QueueDepth = j.nbuf
	j.mu.Unlock()
	s.Journal = true
	s.Batches = j.batches.Load()
	s.Events = j.events.Load()
	s.Failed = j.failed.Load()
	s.LastBatch = int(j.lastBatch.Load())
	s.MaxBatch = int(j.maxBatch.Load())
	s.OneByOne = j.noTx.Load()
	s.JournalFsyncs = j.fsyncs.Load()
	s.JournalBacklog = max(j.backlog.Load(), 0)
	s.Materialized = j.materialized.Load()
	s.MaterializeBatches = j.mbatches.Load()
	s.MaterializeErrors = j.merrors.Load()
	s.JournalSkipped = j.skipped.Load()
}

// ---------------------------------------------------------------------------
// Segments and records.

func journalSegmentName(n int64) string {
	return fmt.Sprintf("%s%06d%s", journalSegmentPrefix, n, journalSegmentSuffix)
}

// journalSegments lists the segment numbers in dir, in order.
func journalSegments(dir string) ([]int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []int64
	for _, e := range entries {
		num, ok := strings.CutPrefix(e.Name(), journalSegmentPrefix)
		if !ok {
			continue
		}
		if num, ok = strings.CutSuffix(num, journalSegmentSuffix); !ok || num == "" || strings.Trim(num, "0123456789") != "" {
			continue
		}
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n <= 0 {
			continue
		}
		segs = append(segs, n)
	}
	slices.Sort(segs)
	return segs, nil
}

// journalCountLines counts the records of segs, the first from offset off.
func journalCountLines(dir string, segs []int64, off int64) (int64, error) {
	var n int64
	buf := make([]byte, 1<<20)
	for i, s := range segs {
		f, err := os.Open(filepath.Join(dir, journalSegmentName(s)))
		if err != nil {
			return 0, err
		}
		pos := int64(0)
		if i == 0 {
			pos = off
		}
		for {
			k, err := f.ReadAt(buf, pos)
			for _, c := range buf[:k] {
				if c == '\n' {
					n++
				}
			}
			pos += int64(k)
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				return 0, err
			}
		}
		f.Close()
	}
	return n, nil
}

// journalLine appends the journal line of one AuditEvent to dst. body is
// compact JSON (json.Marshal output): it holds no newline.
func journalLine(dst []byte, id string, body []byte) []byte {
	crc := journalChecksum(body)
	dst = append(dst, `{"id":"`...)
	dst = append(dst, id...)
	dst = append(dst, `","crc":"`...)
	dst = hex.AppendEncode(dst, crc[:])
	dst = append(dst, `","ae":`...)
	dst = append(dst, body...)
	return append(dst, "}\n"...)
}

// parseJournalLine reads one journal line (with its newline).
func parseJournalLine(line []byte) (journalEntry, error) {
	if e, ok := parseOwnJournalLine(line); ok {
		return e, nil
	}
	var l struct {
		ID  string          `json:"id"`
		CRC string          `json:"crc"`
		AE  json.RawMessage `json:"ae"`
	}
	if err := json.Unmarshal(line, &l); err != nil {
		return journalEntry{}, errors.New("not a journal record")
	}
	if !auditIsID(l.ID) || len(l.AE) == 0 || l.AE[0] != '{' {
		return journalEntry{}, errors.New("not a journal record")
	}
	want := journalChecksum(l.AE)
	if got, err := hex.DecodeString(l.CRC); err != nil || string(got) != string(want[:]) {
		return journalEntry{}, errors.New("checksum mismatch")
	}
	return journalEntry{id: l.ID, body: l.AE}, nil
}

// parseOwnJournalLine reads a line laid out as journalLine writes it
// without decoding its JSON: the checksum of the AuditEvent's bytes says
// they are the json.Marshal output that was written. ok is false for any
// other line, which parseJournalLine then decodes (and refuses if need be).
func parseOwnJournalLine(line []byte) (e journalEntry, ok bool) {
	rest, found := bytes.CutPrefix(line, []byte(`{"id":"`))
	if !found {
		return e, false
	}
	i := bytes.IndexByte(rest, '"')
	if i < 0 || !auditIsID(string(rest[:i])) {
		return e, false
	}
	id := string(rest[:i])
	rest, found = bytes.CutPrefix(rest[i:], []byte(`","crc":"`))
	if !found || len(rest) < 8 {
		return e, false
	}
	var want [4]byte
	if n, err := hex.Decode(want[:], rest[:8]); err != nil || n != 4 {
		return e, false
	}
	body, found := bytes.CutPrefix(rest[8:], []byte(`","ae":`))
	if !found {
		return e, false
	}
	body, found = bytes.CutSuffix(body, []byte("}\n"))
	if !found || len(body) == 0 || body[0] != '{' {
		return e, false
	}
	if want != journalChecksum(body) {
		return e, false
	}
	return journalEntry{id: id, body: body}, true
}

// journalChecksum is the crc32c of an AuditEvent's bytes, big-endian, as a
// journal line carries it (in hex).
func journalChecksum(body []byte) [4]byte {
	c := crc32.Checksum(body, journalCRC)
	return [4]byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)}
}

// journalReader reads records from the segments, keeping the current one open.
type journalReader struct {
	j   *journal
	f   *os.File
	seg int64
}

func (r *journalReader) close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// read returns up to max records from pos, and no more once their lines
// reach maxBytes, not reading past limit (-1: the end of the file, for a
// finished segment). next is the position after the
// last line read, lines how many lines were read (skipped ones included),
// eof whether the segment ended (a last line without its newline is a write
// that was never acknowledged: it is ignored).
func (r *journalReader) read(pos jpos, limit int64, max int, maxBytes int64) (recs []journalEntry, next jpos, lines int64, eof bool, err error) {
	next = pos
	if r.f == nil || r.seg != pos.seg {
		r.close()
		f, err := os.Open(filepath.Join(r.j.dir, journalSegmentName(pos.seg)))
		if err != nil {
			return nil, pos, 0, false, err
		}
		r.f, r.seg = f, pos.seg
	}
	finished := limit < 0
	if finished {
		fi, err := r.f.Stat()
		if err != nil {
			return nil, pos, 0, false, err
		}
		limit = fi.Size()
	}
	if pos.off >= limit {
		return nil, pos, 0, finished, nil
	}
	br := bufio.NewReaderSize(io.NewSectionReader(r.f, pos.off, limit-pos.off), 256<<10)
	for len(recs) < max && next.off-pos.off < maxBytes {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			if len(bytes.TrimLeft(line, "\x00")) > 0 && finished {
				r.j.log.Warn("audit: ignoring the torn end of a journal segment (never acknowledged)",
					"segment", journalSegmentName(pos.seg), "offset", next.off, "bytes", len(line))
			}
			return recs, next, lines, finished, nil
		}
		if err != nil {
			return nil, pos, 0, false, err
		}
		next.off += int64(len(line))
		lines++
		e, perr := parseJournalLine(line)
		if perr != nil {
			r.j.skipped.Add(1)
			r.j.log.Error("audit: unreadable journal record skipped",
				"segment", journalSegmentName(pos.seg), "offset", next.off-int64(len(line)), "err", perr)
			continue
		}
		recs = append(recs, e)
	}
	return recs, next, lines, false, nil
}

// journalZeroFill writes zeros into f from offset from to offset to.
func journalZeroFill(f *os.File, from, to int64) error {
	zeros := make([]byte, min(to-from, 1<<20))
	for off := from; off < to; {
		n, err := f.WriteAt(zeros[:min(int64(len(zeros)), to-off)], off)
		if err != nil {
			return err
		}
		off += int64(n)
	}
	return nil
}

// journalSyncDir makes the directory's entries durable.
func journalSyncDir(dir string) error {
	if isWindows() {
		return nil // no directory fsync; NTFS journals its metadata
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ---------------------------------------------------------------------------
// The checkpoint.

const journalCheckpointSlot = 64

// journalCheckpoint is the materializer's position: two slots written in
// turn, each with a sequence number and a checksum, so that a write torn
// by a crash leaves the other slot.
type journalCheckpoint struct {
	f   *os.File
	seq uint64
}

func openJournalCheckpoint(dir string) (c *journalCheckpoint, p jpos, found bool, err error) {
	path := filepath.Join(dir, journalCheckpointName)
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, p, false, err
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		if err := journalSyncDir(dir); err != nil {
			f.Close()
			return nil, p, false, err
		}
	}
	var buf [2 * journalCheckpointSlot]byte
	n, err := f.ReadAt(buf[:], 0)
	if err != nil && err != io.EOF {
		f.Close()
		return nil, p, false, err
	}
	c = &journalCheckpoint{f: f}
	for i := 0; i+journalCheckpointSlot <= n; i += journalCheckpointSlot {
		if seq, q, ok := parseJournalCheckpoint(buf[i : i+journalCheckpointSlot]); ok && (!found || seq > c.seq) {
			c.seq, p, found = seq, q, true
		}
	}
	return c, p, found, nil
}

func parseJournalCheckpoint(slot []byte) (seq uint64, p jpos, ok bool) {
	f := strings.Fields(string(slot))
	if len(f) != 5 || f[0] != "ckpt" {
		return 0, p, false
	}
	text := strings.Join(f[:4], " ")
	if fmt.Sprintf("%08x", crc32.Checksum([]byte(text), journalCRC)) != f[4] {
		return 0, p, false
	}
	seq, err1 := strconv.ParseUint(f[1], 10, 64)
	seg, err2 := strconv.ParseInt(f[2], 10, 64)
	off, err3 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || seg < 0 || off < 0 {
		return 0, p, false
	}
	return seq, jpos{seg, off}, true
}

// write records p in the older slot and fsyncs it.
func (c *journalCheckpoint) write(p jpos) error {
	c.seq++
	text := fmt.Sprintf("ckpt %d %d %d", c.seq, p.seg, p.off)
	line := fmt.Sprintf("%s %08x", text, crc32.Checksum([]byte(text), journalCRC))
	var slot [journalCheckpointSlot]byte
	for i := range slot {
		slot[i] = ' '
	}
	copy(slot[:], line)
	slot[len(slot)-1] = '\n'
	if _, err := c.f.WriteAt(slot[:], int64(c.seq%2)*journalCheckpointSlot); err != nil {
		return err
	}
	return c.f.Sync()
}

// ---------------------------------------------------------------------------
// The lock of the directory.

// journalLock is the LOCK file this process wrote; it owns the directory
// as long as LOCK is still that file.
type journalLock struct {
	path string
	fi   os.FileInfo
}

// acquireJournalLock takes the directory: it creates LOCK, or replaces an
// abandoned one (its process is gone, or it was not refreshed for
// journalLockStale), waiting up to journalLockWait for a live owner.
func acquireJournalLock(dir string, log *slog.Logger) (*journalLock, error) {
	path := filepath.Join(dir, journalLockName)
	host, _ := os.Hostname()
	host = strings.Join(strings.Fields(host), "_")
	if host == "" {
		host = "-"
	}
	content := []byte(fmt.Sprintf("%d %s %s\n", os.Getpid(), host, auditNewID()))
	deadline := time.Now().Add(journalLockWait)
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			_, err = f.Write(content)
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = journalSyncDir(dir)
			}
			if err != nil {
				os.Remove(path)
				return nil, fmt.Errorf("lock: %w", err)
			}
			return newJournalLock(path)
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("lock: %w", err)
		}
		abandoned, holder := journalLockAbandoned(path, host)
		if abandoned {
			if err := writeFileAtomic(path, content); err != nil {
				return nil, fmt.Errorf("lock: %w", err)
			}
			log.Warn("audit: took over the journal lock of a process that is gone", "dir", dir, "previous", holder)
			return newJournalLock(path)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s is held by a running process (%s); one server per journal directory", path, holder)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func newJournalLock(path string) (*journalLock, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	return &journalLock{path: path, fi: fi}, nil
}

// journalLockAbandoned tells whether the LOCK at path may be taken over.
func journalLockAbandoned(path, host string) (bool, string) {
	fi, err := os.Stat(path)
	if err != nil {
		return errors.Is(err, fs.ErrNotExist), ""
	}
	data, _ := os.ReadFile(path)
	f := strings.Fields(string(data))
	stale := time.Since(fi.ModTime()) > journalLockStale
	if len(f) != 3 {
		// Torn by a crash while it was created; give a live creator a moment.
		return stale || time.Since(fi.ModTime()) > journalLockTornGrace, "unreadable lock"
	}
	holder := "pid " + f[0] + " on " + f[1]
	pid, err := strconv.Atoi(f[0])
	if err == nil && f[1] == host && (pid == os.Getpid() || !processAlive(pid)) {
		return true, holder // a run of this host that has ended (the same pid: this process's predecessor)
	}
	return stale, holder
}

// processAlive tells whether a process with that pid runs on this host.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	defer p.Release()
	if isWindows() {
		return true // FindProcess opened it
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}

// held tells whether LOCK is still the file this process wrote.
func (l *journalLock) held() bool {
	fi, err := os.Stat(l.path)
	return err == nil && os.SameFile(l.fi, fi)
}

// refresh marks the lock alive; false when it is no longer ours.
func (l *journalLock) refresh() bool {
	if !l.held() {
		return false
	}
	now := time.Now()
	os.Chtimes(l.path, now, now)
	return true
}

func (l *journalLock) release() {
	if l.held() {
		os.Remove(l.path)
	}
}

func journalSignal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
