package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// The jobs of the Bulk Data export (bulk_export.go is its HTTP side).
//
// A job is a record of the store (type DMPExportJob, which no route of the
// API reaches, like the DMP's accounts), so that a finished job and its
// files outlive a restart. Its files are blobs of the engine's blob storage
// (files under DMP_DATA_DIR, GridFS), written as the resources stream out
// of the store page by page. The job runs in this process's worker pool
// (Config.ExportWorkers at once, one by default) under the identity of the
// caller who started it: the consent filter of a search (searchScope) is
// decided when it runs and goes inside each store query. While it runs,
// its record's heartbeat is renewed; a queued or running job whose
// heartbeat stopped (the process that ran it crashed) is reported and
// marked failed. Jobs expire (Config.ExportTTL after they end) and are
// removed with their files by a sweep that runs at start-up and every
// minute.

const (
	// exportJobType is the store type of the job records.
	exportJobType = "DMPExportJob"
	// DefaultExportTTL is how long a job and its files are kept.
	DefaultExportTTL = 24 * time.Hour
	// DefaultExportFileMax is the most resources in one output file.
	DefaultExportFileMax = 10000
	// exportPageSize is the page of each store query of a job.
	exportPageSize = 500
	// exportQueue is how many jobs may wait for a worker.
	exportQueue = 64
	// exportHeartbeat is how often a held job's record is renewed;
	// exportStale is how old a heartbeat must be for the job to be dead.
	exportHeartbeat = 15 * time.Second
	exportStale     = 90 * time.Second
	// exportSweepEvery is how often expired and dead jobs are looked for.
	exportSweepEvery = time.Minute
)

// Job states.
const (
	exportQueued  = "queued"
	exportRunning = "running"
	exportDone    = "done"
	exportFailed  = "failed"
)

// exportJob is the stored record of a job.
type exportJob struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	// Owner is the caller who started it (kind|id): the only one who may
	// see its status and files.
	Owner string `json:"owner"`
	// Level: "system" (/$export) or "patient" (/Patient/$export).
	Level   string `json:"level"`
	Request string `json:"request"` // the kick-off URL, for the manifest
	// Types are the types exported, in the order of the output.
	Types       []string          `json:"types"`
	Since       *time.Time        `json:"since,omitempty"`
	TypeFilters map[string]string `json:"typeFilters,omitempty"` // type -> search query
	// Patients are the patients the kick-off named (POST patient).
	Patients []string `json:"patients,omitempty"`
	Mode     string   `json:"mode,omitempty"`
	Reason   string   `json:"reason,omitempty"`

	Status     string    `json:"status"`
	Runner     string    `json:"runner"` // the process that holds it
	Heartbeat  time.Time `json:"heartbeat"`
	Progress   string    `json:"progress,omitempty"`
	Created    time.Time `json:"created"`
	Expires    time.Time `json:"expires"`
	TxTime     time.Time `json:"transactionTime,omitzero"`
	Failure    string    `json:"failure,omitempty"`
	FailStatus int       `json:"failStatus,omitempty"`

	Output []exportOutput `json:"output,omitempty"`
	Errors []exportOutput `json:"errors,omitempty"`
	// Exported are the patients whose consent let the caller read their
	// record when the job ran; Masked and Invisible those of them whose
	// MASQUE_PS and INVISIBLE_PATIENT resources were let through. A
	// download decides them again (consentChanged).
	Exported  []string `json:"exported,omitempty"`
	Masked    []string `json:"masked,omitempty"`
	Invisible []string `json:"invisible,omitempty"`
}

// exportOutput is one file of a job.
type exportOutput struct {
	N     int    `json:"n"` // its number in the file URL
	Type  string `json:"type"`
	Blob  string `json:"blob"`
	Count int    `json:"count"`
	Bytes int64  `json:"bytes"`
}

func (j *exportJob) file(n int) (exportOutput, bool) {
	for _, o := range append(append([]exportOutput(nil), j.Output...), j.Errors...) {
		if o.N == n {
			return o, true
		}
	}
	return exportOutput{}, false
}

func (j *exportJob) blobs() []string {
	var out []string
	for _, o := range append(append([]exportOutput(nil), j.Output...), j.Errors...) {
		out = append(out, o.Blob)
	}
	return out
}

// stale says whether an unfinished job's runner stopped renewing it.
func (j *exportJob) stale(now time.Time) bool {
	return (j.Status == exportQueued || j.Status == exportRunning) && now.Sub(j.Heartbeat) > exportStale
}

// ownerOf names a caller for the ownership of jobs.
func ownerOf(c *auth.Caller) string { return string(c.Kind) + "|" + c.ID }

// exportTask is a job held by this process: queued or running.
type exportTask struct {
	mu      sync.Mutex // serializes the writes of the record
	job     *exportJob
	version int64
	caller  *auth.Caller
	ctx     context.Context
	cancel  context.CancelFunc
	blobs   []string // every blob written, finished or not
	// released is closed once no worker holds the task any more.
	released    chan struct{}
	releaseOnce sync.Once
	started     atomic.Bool // a worker took it
}

// exporter runs the jobs of one process.
type exporter struct {
	s       *Server
	ttl     time.Duration
	fileMax int
	runner  string
	queue   chan *exportTask

	mu      sync.Mutex
	tasks   map[string]*exportTask // job id ->
	byOwner map[string]string      // owner -> job id
	// reserved counts the queue slots of jobs being submitted (their
	// records being created).
	reserved int
	// purgedUpTo: every removed job's record deleted before it was purged
	// (purgeDeleted).
	purgedUpTo time.Time

	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
	// hook, set by tests only, runs as a job starts.
	hook func(job string)
}

func newExporter(s *Server, cfg Config) *exporter {
	e := &exporter{s: s, ttl: cfg.ExportTTL, fileMax: cfg.ExportFileMax, runner: newID(),
		queue: make(chan *exportTask, exportQueue), tasks: map[string]*exportTask{}, byOwner: map[string]string{}}
	if e.ttl <= 0 {
		e.ttl = DefaultExportTTL
	}
	if e.fileMax <= 0 {
		e.fileMax = DefaultExportFileMax
	}
	workers := cfg.ExportWorkers
	if workers <= 0 {
		workers = 1
	}
	e.ctx, e.stop = context.WithCancel(context.Background())
	for range workers {
		e.wg.Add(1)
		go e.work()
	}
	e.wg.Add(1)
	go e.keep()
	return e
}

// close stops the workers: the running jobs are cancelled and marked failed.
func (e *exporter) close() {
	e.stop()
	e.wg.Wait()
	e.mu.Lock()
	queued := make([]*exportTask, 0, len(e.tasks))
	for _, t := range e.tasks {
		queued = append(queued, t)
	}
	e.mu.Unlock()
	for _, t := range queued { // never ran
		e.save(t, func(j *exportJob) {
			j.Status, j.Failure, j.FailStatus = exportFailed, "the server stopped before the export ran; start it again", http.StatusServiceUnavailable
		})
		e.release(t)
	}
}

func (e *exporter) work() {
	defer e.wg.Done()
	for {
		select {
		case <-e.ctx.Done():
			return
		case t := <-e.queue:
			if t.ctx.Err() == nil {
				e.run(t)
			}
			e.release(t)
		}
	}
}

// keep renews the held jobs' heartbeats and sweeps expired and dead jobs.
func (e *exporter) keep() {
	defer e.wg.Done()
	e.sweep(e.ctx, time.Now())
	beat, sweep := time.NewTicker(exportHeartbeat), time.NewTicker(exportSweepEvery)
	defer beat.Stop()
	defer sweep.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-beat.C:
			e.mu.Lock()
			held := make([]*exportTask, 0, len(e.tasks))
			for _, t := range e.tasks {
				held = append(held, t)
			}
			e.mu.Unlock()
			for _, t := range held {
				if err := e.save(t, func(j *exportJob) {}); err != nil {
					t.cancel() // cancelled (or lost) elsewhere
				}
			}
		case now := <-sweep.C:
			e.sweep(e.ctx, now)
		}
	}
}

// submit stores a new job and queues it; errBusy when the caller already
// has one (429), errFull when the queue is full (503).
var (
	errExportBusy = errors.New("export: the caller already has an export in progress")
	errExportFull = errors.New("export: too many exports are waiting")
)

func (e *exporter) submit(job *exportJob, caller *auth.Caller) error {
	// The caller's place and a queue slot are reserved under e.mu, and the
	// record is created without it: a store write can wait for the writer
	// (seconds when it is busy), and e.mu serves every status poll.
	e.mu.Lock()
	if _, busy := e.byOwner[job.Owner]; busy {
		e.mu.Unlock()
		return errExportBusy
	}
	if len(e.queue)+e.reserved >= cap(e.queue) {
		e.mu.Unlock()
		return errExportFull
	}
	e.byOwner[job.Owner] = job.ID
	e.reserved++
	e.mu.Unlock()

	now := time.Now().UTC()
	job.ResourceType, job.Status, job.Runner, job.Heartbeat, job.Created, job.Expires = exportJobType, exportQueued, e.runner, now, now, now.Add(e.ttl)
	t := &exportTask{job: job, caller: caller, released: make(chan struct{})}
	t.ctx, t.cancel = context.WithCancel(e.ctx)
	body, err := json.Marshal(job)
	var r *store.Resource
	if err == nil {
		r, err = e.s.store.Create(e.ctx, exportJobType, job.ID, body)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if err == nil && e.ctx.Err() != nil {
		// Closed meanwhile (close stops e.ctx before it takes the tasks
		// under e.mu): the record, left queued, is failed by the next sweep.
		err = e.ctx.Err()
	}
	e.reserved--
	if err != nil {
		delete(e.byOwner, job.Owner)
		t.cancel()
		return err
	}
	t.version = r.Version
	e.tasks[job.ID] = t
	e.queue <- t // cannot block: the slot was reserved under e.mu, and submit is the only sender
	return nil
}

func (e *exporter) release(t *exportTask) {
	t.releaseOnce.Do(func() {
		t.cancel()
		e.freeOwner(t)
		e.mu.Lock()
		defer e.mu.Unlock()
		delete(e.tasks, t.job.ID)
		close(t.released)
	})
}

// freeOwner lets the job's caller start another one.
func (e *exporter) freeOwner(t *exportTask) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.byOwner[t.job.Owner] == t.job.ID {
		delete(e.byOwner, t.job.Owner)
	}
}

// task is the job held here under id, or nil.
func (e *exporter) task(id string) *exportTask {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tasks[id]
}

// cancelHeld cancels a job held here; it says whether it was.
func (e *exporter) cancelHeld(id string) bool {
	if t := e.task(id); t != nil {
		t.cancel()
		return true
	}
	return false
}

func (e *exporter) held(id string) bool { return e.task(id) != nil }

// save applies change to the held job and writes its record, with the
// heartbeat renewed; an error means the record changed elsewhere (the job
// was cancelled) or cannot be written.
func (e *exporter) save(t *exportTask, change func(*exportJob)) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	change(t.job)
	t.job.Heartbeat = time.Now().UTC()
	body, err := json.Marshal(t.job)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, _, err := e.s.store.Put(ctx, exportJobType, t.job.ID, body, t.version)
	if err != nil {
		return err
	}
	t.version = r.Version
	return nil
}

// loadJob reads a job's record.
func (s *Server) loadJob(ctx context.Context, id string) (*exportJob, int64, error) {
	var j exportJob
	version, err := auth.ReadRecord(ctx, s.store, exportJobType, id, &j)
	if err != nil {
		return nil, 0, err
	}
	return &j, version, nil
}

// removeJob deletes a job's record and files, then purges the record. The
// record is deleted first, at the version whose files are deleted: a
// runner that writes it in between (its files listed) makes the deletion
// start again; a runner that comes after finds it gone and removes its own
// files.
func (s *Server) removeJob(ctx context.Context, id string) error {
	for {
		j, version, err := s.loadJob(ctx, id)
		if errors.Is(err, store.ErrDeleted) {
			// Deleted, but its purge failed (or never ran, before purges):
			// its versions still name the patients.
			return s.store.Purge(ctx, exportJobType, id)
		}
		if err != nil {
			return err
		}
		_, _, err = s.store.Delete(ctx, exportJobType, id, version)
		if errors.Is(err, store.ErrVersionMismatch) || errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return err
		}
		for _, b := range j.blobs() {
			if err := s.store.Blobs().Delete(ctx, b); err != nil {
				return err
			}
		}
		// Then every version of the record, which name the exported
		// patients and would otherwise stay in history for good. The job
		// is removed either way: a failed purge is the sweep's to redo.
		if err := s.store.Purge(ctx, exportJobType, id); err != nil {
			s.log.Error("export: purging a removed job's record (the sweep retries)", "job", id, "err", err)
		}
		return nil
	}
}

// sweep removes expired jobs, marks dead ones failed and purges the
// records of removed jobs whose purge did not happen.
func (e *exporter) sweep(ctx context.Context, now time.Time) {
	e.purgeDeleted(ctx)
	q := store.Query{Type: exportJobType, Count: maxPageSize}
	for {
		page, err := e.s.store.Search(ctx, q)
		if err != nil {
			if ctx.Err() == nil {
				e.s.log.Error("export: listing the jobs", "err", err)
			}
			return
		}
		for _, r := range page.Resources {
			var j exportJob
			if err := json.Unmarshal(r.Body, &j); err != nil {
				e.s.log.Error("export: unreadable job record", "job", r.ID, "err", err)
				continue
			}
			switch {
			case now.After(j.Expires):
				// A job still queued or running is its worker's to clean up.
				// One that ended (done or failed) has written its last record
				// and files, though its worker may not have released it yet.
				if (j.Status == exportQueued || j.Status == exportRunning) && e.cancelHeld(j.ID) {
					continue
				}
				if err := e.s.removeJob(ctx, j.ID); err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrDeleted) && ctx.Err() == nil {
					e.s.log.Error("export: removing an expired job", "job", j.ID, "err", err)
				}
			case j.stale(now) && !e.held(j.ID):
				e.s.markDead(ctx, &j, r.Version)
			}
		}
		if page.Next == "" {
			return
		}
		q.After = page.Next
	}
}

// purgeDeleted purges the job records whose newest version is a deletion:
// a removal whose purge failed, or one from before removals purged. The
// first sweep reads the records' whole history (at most purgeScan
// versions), later ones only what was written since the last complete scan
// (heartbeats mostly), so that a sweep a minute stays cheap.
func (e *exporter) purgeDeleted(ctx context.Context) {
	const purgeScan = 5000
	e.mu.Lock()
	since := e.purgedUpTo
	e.mu.Unlock()
	started := time.Now()
	hq := store.HistoryQuery{Type: exportJobType, Since: since, Count: 500}
	seen := map[string]bool{}
	for read := 0; ; {
		versions, err := e.s.store.History(ctx, hq)
		if err != nil || read >= purgeScan {
			return // the next sweep scans from the same point
		}
		if len(versions) == 0 {
			break
		}
		read += len(versions)
		for _, v := range versions {
			if seen[v.ID] {
				continue
			}
			seen[v.ID] = true // newest first: this is its current version
			if !v.Deleted {
				continue
			}
			if err := e.s.store.Purge(ctx, exportJobType, v.ID); err != nil {
				if ctx.Err() == nil {
					e.s.log.Error("export: purging a removed job's record", "job", v.ID, "err", err)
				}
				return
			}
		}
		k := versions[len(versions)-1].Key()
		hq.After = &k
	}
	e.mu.Lock()
	e.purgedUpTo = started.Add(-time.Minute) // a margin for writes committed late with earlier stamps
	e.mu.Unlock()
}

// markDead records that a job's runner stopped before it ended.
func (s *Server) markDead(ctx context.Context, j *exportJob, version int64) {
	j.Output, j.Errors = nil, nil
	j.Status, j.Failure, j.FailStatus = exportFailed, "the server stopped while the export was running; start it again", http.StatusInternalServerError
	// The record first: when another process renewed the job meanwhile
	// (version mismatch), its files are its own and stay.
	if err := auth.WriteRecord(ctx, s.store, exportJobType, j.ID, j, version, false); err != nil {
		if !errors.Is(err, store.ErrVersionMismatch) && ctx.Err() == nil {
			s.log.Error("export: marking a dead job", "job", j.ID, "err", err)
		}
		return
	}
	// A running job's files are not in its record yet: they are numbered
	// from 1, each finished before the next is opened, so they are removed
	// up to the first one missing.
	for n := 1; ; n++ {
		id := exportBlobID(j.ID, n)
		rc, _, err := s.store.Blobs().Get(ctx, id)
		if err != nil {
			return
		}
		rc.Close()
		s.store.Blobs().Delete(ctx, id)
	}
}

// exportBlobID names file n of a job in blob storage.
func exportBlobID(job string, n int) string { return "export-" + job + "-" + strconv.Itoa(n) }

// run exports a job's resources.
func (e *exporter) run(t *exportTask) {
	s := e.s
	t.started.Store(true)
	err := e.save(t, func(j *exportJob) {
		j.Status, j.TxTime, j.Progress = exportRunning, store.Now(), "started"
	})
	if err != nil {
		return // cancelled before it ran
	}
	e.mu.Lock()
	hook := e.hook
	e.mu.Unlock()
	if hook != nil {
		hook(t.job.ID)
	}
	outcome, err := e.export(t)
	if err == nil && t.ctx.Err() != nil {
		err = t.ctx.Err()
	}
	if err != nil {
		for _, b := range t.blobs {
			s.store.Blobs().Delete(context.Background(), b)
		}
		if t.ctx.Err() != nil && e.ctx.Err() == nil {
			return // cancelled: DELETE removes the record
		}
		msg, status := "internal error", http.StatusInternalServerError
		if fe, ok := fhir.AsError(err); ok && len(fe.Issues) > 0 {
			msg, status = fe.Issues[0].Diagnostics, fe.Status
		} else if e.ctx.Err() != nil {
			msg = "the server stopped while the export was running; start it again"
		} else {
			s.log.Error("export failed", "job", t.job.ID, "err", err)
		}
		e.freeOwner(t) // before the status says it ended
		e.save(t, func(j *exportJob) {
			j.Status, j.Failure, j.FailStatus, j.Output, j.Errors, j.Progress = exportFailed, msg, status, nil, nil, ""
			j.Expires = time.Now().UTC().Add(e.ttl)
		})
		return
	}
	e.freeOwner(t)
	err = e.save(t, func(j *exportJob) {
		j.Output, j.Errors = outcome.output, outcome.errors
		j.Exported, j.Masked, j.Invisible = outcome.exported, outcome.masked, outcome.invisible
		j.Status, j.Progress, j.Expires = exportDone, "done", time.Now().UTC().Add(e.ttl)
	})
	if err != nil {
		for _, b := range t.blobs {
			s.store.Blobs().Delete(context.Background(), b)
		}
	}
}

// exportResult is what a job produced.
type exportResult struct {
	output, errors []exportOutput
	// exported are the patients whose record the job let through; masked
	// and invisible those of them whose MASQUE_PS, INVISIBLE_PATIENT
	// resources it let through.
	exported, masked, invisible []string
}

// export writes the files of a job. What the caller may see is decided as
// for a search, by searchScope: once for the record's patients (which
// patients the caller may read, as a search without a patient finds them),
// then for each type and each of those patients, whose clauses go inside
// the store query. Per patient, so that each query is an indexed lookup of
// one record and each record's labels are decided on its own verdict.
func (e *exporter) export(t *exportTask) (*exportResult, error) {
	s, job := e.s, t.job
	a := &access{caller: t.caller, mode: job.Mode, reason: job.Reason, verdict: map[string]auth.Verdict{}}
	ctx := context.WithValue(t.ctx, accessKey{}, a)
	var patients []string
	if !s.auth.Unrestricted {
		_, none, rule, err := s.searchScope(ctx, "Patient", job.Patients)
		if err != nil {
			return nil, err
		}
		if none && len(job.Patients) > 0 {
			// The patients named refuse the caller: the job fails with
			// the rule, as a read would be refused.
			if rule == auth.RuleClosed {
				return nil, fhir.NewError(http.StatusConflict, "conflict", "", "the patient's DMP is closed ("+rule+")")
			}
			return nil, fhir.NewError(http.StatusForbidden, "forbidden", "", "access refused by the patient's consent rules: "+rule)
		}
		patients = append(patients, a.patients...) // those searchScope allowed
		sort.Strings(patients)
	}
	res := &exportResult{}
	n := 0
	var problems []fhir.Issue
	txMillis := float64(job.TxTime.UnixMilli())
	for ti, typ := range job.Types {
		common := []store.Clause{{Any: []store.Condition{{Param: "_lastUpdated", Kind: store.KindLastUpdated, Range: store.Interval{LowAtMost: &txMillis}}}}}
		if job.Since != nil {
			v := float64(job.Since.UnixMilli())
			common = append(common, store.Clause{Any: []store.Condition{{Param: "_lastUpdated", Kind: store.KindLastUpdated, Range: store.Interval{HighAtLeast: &v}}}})
		}
		if f, ok := job.TypeFilters[typ]; ok {
			values, _ := url.ParseQuery(f)
			sr, err := parseSearch(typ, values, "", true)
			if err != nil {
				return nil, err // checked at kick-off
			}
			common = append(common, sr.Query.Where...)
		}
		rt, _ := fhir.LookupType(typ)
		inRecords := typ == "Patient" || len(rt.PatientCompartment) > 0
		if s.auth.Unrestricted && job.Level == "patient" && typ != "Patient" {
			// Without a consent scope, a resource of no patient is still
			// not part of a patient-level export.
			var in store.Clause
			for _, p := range rt.PatientCompartment {
				f := false
				in.Any = append(in.Any, store.Condition{Param: p, Kind: store.KindReference, Missing: &f})
			}
			common = append(common, in)
		}
		if err := s.auditVisible(ctx, typ); err != nil {
			return nil, err
		}
		var w *exportWriter
		// stream writes what the query finds, page by page.
		stream := func(where []store.Clause) error {
			q := store.Query{Type: typ, Where: where, Count: exportPageSize}
			for {
				page, err := s.store.Search(ctx, q)
				if err != nil {
					return err
				}
				for _, r := range page.Resources {
					var line bytes.Buffer
					if err := json.Compact(&line, r.Body); err != nil {
						problems = append(problems, fhir.Issue{Severity: "error", Code: "exception", Diagnostics: r.Type + "/" + r.ID + " could not be exported: its stored JSON is unreadable"})
						continue
					}
					if w != nil && w.out.Count >= e.fileMax {
						if err := w.close(); err != nil {
							w = nil
							return err
						}
						res.output = append(res.output, w.out)
						w = nil
					}
					if w == nil {
						n++
						w = e.openFile(t, n, typ)
					}
					if err := w.line(line.Bytes()); err != nil {
						return err
					}
				}
				if page.Next == "" || t.ctx.Err() != nil {
					return t.ctx.Err()
				}
				q.After = page.Next
				e.progress(t, ti, typ, w)
			}
		}
		var err error
		switch {
		case s.auth.Unrestricted || !inRecords:
			// Outside the patients' records (Practitioner, Organization,
			// ...): searchScope restricts nothing, as for a search.
			clauses, none, _, serr := s.searchScope(ctx, typ, nil)
			if err = serr; err == nil && !none {
				err = stream(append(clauses, common...))
			}
		default:
			for _, p := range patients {
				clauses, none, _, serr := s.searchScope(ctx, typ, []string{p})
				if err = serr; err != nil || none {
					if err != nil {
						break
					}
					continue
				}
				if err = stream(append(clauses, common...)); err != nil {
					break
				}
			}
		}
		if err != nil {
			if w != nil {
				w.abort(err)
			}
			return nil, err
		}
		if w != nil {
			if err := w.close(); err != nil {
				return nil, err
			}
			res.output = append(res.output, w.out)
		}
		e.progress(t, ti+1, "", nil)
	}
	if len(problems) > 0 {
		n++
		w := e.openFile(t, n, "OperationOutcome")
		for _, p := range problems {
			if err := w.line(fhir.OperationOutcome(p)); err != nil {
				w.abort(err)
				return nil, err
			}
		}
		if err := w.close(); err != nil {
			return nil, err
		}
		res.errors = append(res.errors, w.out)
	}
	res.exported = patients
	for _, p := range patients {
		v := a.verdict[p]
		if v.SeeMasked {
			res.masked = append(res.masked, p)
		}
		if !v.HideFromPatient {
			res.invisible = append(res.invisible, p)
		}
	}
	if err := s.auditExported(t, res.exported); err != nil {
		return nil, err
	}
	return res, nil
}

// auditExported records one AuditEvent per patient whose record went into
// the files, so that each patient finds it in their access history (and
// only their own patient id in it).
func (s *Server) auditExported(t *exportTask, patients []string) error {
	if s.auth.Unrestricted || s.auth.Auditor == nil {
		return nil
	}
	events := make([]auth.Access, 0, len(patients))
	for _, p := range patients {
		ev := auth.Access{Action: "R", Interaction: "operation", Outcome: auth.AuditSuccess, OutcomeDesc: "bulk export",
			AccessMode: t.job.Mode, Reason: t.job.Reason, PatientIDs: []string{p}, Query: "export-job=" + t.job.ID}
		setCaller(&ev, t.caller)
		events = append(events, ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), auditWait)
	defer cancel()
	// By chunks: each chunk is one group commit of the audit writer.
	for len(events) > 0 {
		k := min(len(events), 256)
		if err := s.recordAll(ctx, events[:k]); err != nil {
			return err
		}
		events = events[k:]
	}
	return nil
}

func (e *exporter) progress(t *exportTask, done int, typ string, w *exportWriter) {
	p := strconv.Itoa(done) + "/" + strconv.Itoa(len(t.job.Types)) + " types"
	if typ != "" && w != nil {
		p += ", " + typ + ": " + strconv.Itoa(w.out.Count) + " resources"
	}
	t.mu.Lock()
	beat := time.Since(t.job.Heartbeat) > exportHeartbeat
	t.job.Progress = p
	t.mu.Unlock()
	if beat {
		if err := e.save(t, func(*exportJob) {}); err != nil {
			t.cancel()
		}
	}
}

// exportWriter streams one output file into blob storage.
type exportWriter struct {
	pw   *io.PipeWriter
	bw   *bufio.Writer
	done chan error
	out  exportOutput
}

func (e *exporter) openFile(t *exportTask, n int, typ string) *exportWriter {
	id := exportBlobID(t.job.ID, n)
	t.blobs = append(t.blobs, id)
	pr, pw := io.Pipe()
	w := &exportWriter{pw: pw, bw: bufio.NewWriterSize(pw, 64<<10), done: make(chan error, 1), out: exportOutput{N: n, Type: typ, Blob: id}}
	go func() {
		err := e.s.store.Blobs().Put(t.ctx, id, pr)
		pr.CloseWithError(errors.New("export: the blob writer stopped"))
		w.done <- err
	}()
	return w
}

func (w *exportWriter) line(b []byte) error {
	if _, err := w.bw.Write(b); err != nil {
		return err
	}
	if err := w.bw.WriteByte('\n'); err != nil {
		return err
	}
	w.out.Count++
	w.out.Bytes += int64(len(b)) + 1
	return nil
}

func (w *exportWriter) close() error {
	if err := w.bw.Flush(); err != nil {
		w.abort(err)
		return err
	}
	w.pw.Close()
	return <-w.done
}

func (w *exportWriter) abort(err error) {
	w.pw.CloseWithError(err)
	<-w.done
}
